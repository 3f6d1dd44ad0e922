r"""Final-answer extraction: the number a solution ends with (GSM8K-style numeric answers).

Voting searches group candidates by it, and the ``math_answer`` verifier
(:mod:`ponder.verifiers.answers`) compares it with a reference. :func:`extract_answer` tries, in order:

1. the GSM8K marker ``#### 42`` (the last one),
2. "answer is 42" / "answer is: $42" (the last one, case-insensitive),
3. ``\boxed{42}`` (the last one),
4. the last number anywhere in the text.

A number may carry a sign (``-`` or the Unicode minus), a ``$``, thousands separators
(``1,000``: only well-formed groups of three count, so ``1,2,3`` is three numbers) and a decimal
part; a trailing period is punctuation. A minus directly after a letter or digit is a hyphen
(``2019-2020`` ends with ``2020``). The result is normalised so that equal numbers compare equal
as strings, which is what majority voting needs: ``"1,000.50" -> "1000.5"``, ``"72.0" -> "72"``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["extract_answer", "normalize_number"]

# sign, optional currency, then 1,234,567.89 | 1234.5 | .5.
# A sign counts only when not glued to a word or number (2019-2020); digits never continue one.
_NUMBER = (
    r"(?:(?<![\w.])(?P<sign>[-\u2212]))?\s?\\?\$?\s?"
    r"(?<![\w.])(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?![\d,]*\d)"
)
_ANY_NUMBER = re.compile(_NUMBER)
_GSM8K = re.compile(r"####[\s:*]*" + _NUMBER)
_ANSWER_IS = re.compile(r"answer\s+is[\s:*]*" + _NUMBER, re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")


def normalize_number(text: str) -> str | None:
    """Canonical string of a number written as ``text`` ("$1,000.50" -> "1000.5"), or None.

    Integers lose any ``.0``; other decimals lose trailing zeros; ``-0`` is ``0``.
    """
    cleaned = text.strip().replace(",", "").replace("$", "").replace("\\", "").replace("\u2212", "-").replace(" ", "")
    cleaned = cleaned.rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _from_match(match: re.Match) -> str | None:
    return normalize_number((match.group("sign") or "") + match.group("digits"))


def _last(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):
        pass
    return last


def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}``, braces matched (so ``\\boxed{\\text{5}}`` works)."""
    out = []
    for opening in _BOXED.finditer(text):
        depth, start = 1, opening.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    out.append(text[start:i])
                    break
    return out


def extract_answer(text: str) -> str | None:
    r"""The final numeric answer of ``text``, normalised, or None if it has no number.

    Tries ``#### n``, then "answer is n", then ``\boxed{n}``, then the last number (see the
    module docstring for what counts as a number).

    >>> extract_answer("48/2 = <<48/2=24>>24 clips.\n#### 1,072")
    '1072'
    >>> extract_answer("So the answer is -3.50.")
    '-3.5'
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_answer takes a str, got {type(text).__name__}")
    for pattern in (_GSM8K, _ANSWER_IS):
        match = _last(pattern, text)
        if match is not None:
            return _from_match(match)
    for content in reversed(_boxed_contents(text)):
        match = _last(_ANY_NUMBER, content)
        if match is not None:
            return _from_match(match)
    match = _last(_ANY_NUMBER, text)
    return _from_match(match) if match is not None else None
