r"""The ``math_answer`` verifier (GSM8K-style numeric answers), on the answer extraction of
:mod:`ponder.search.answers`.

:func:`math_answer` scores 1.0 when the final number of a candidate (:func:`extract_answer`, which
tries ``#### n``, "answer is n", ``\boxed{n}`` and then the last number; the rules are in
:mod:`ponder.search.answers`) equals the reference, else 0.0.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Sequence

import numpy as np

from ponder.search.answers import extract_answer, normalize_number  # noqa: F401 - re-exported
from ponder.search.protocols import KINDS, ConfigError, check_choice
from ponder.verifiers.base import Verifier, VerifierError

__all__ = ["extract_answer", "normalize_number", "math_answer", "MathAnswer"]

def _reference_value(reference: Any) -> float | None:
    """A reference given as a number or as text (a bare number or a whole worked solution)."""
    if isinstance(reference, bool):
        return None
    if isinstance(reference, (int, float, Decimal, np.integer, np.floating)):
        return float(reference)
    if isinstance(reference, str):
        answer = normalize_number(reference)
        if answer is None:
            answer = extract_answer(reference)
        return float(answer) if answer is not None else None
    return None


class MathAnswer(Verifier):
    """1.0 when the final number of the text equals the reference, else 0.0; see :func:`math_answer`."""

    def __init__(
        self,
        reference: Any = None,
        *,
        rel_tol: float = 1e-6,
        abs_tol: float = 1e-6,
        name: str = "math_answer",
        kind: str = "outcome",
    ):
        if rel_tol < 0 or abs_tol < 0:
            raise ConfigError(f"tolerances must be >= 0, got rel_tol={rel_tol}, abs_tol={abs_tol}")
        if isinstance(reference, (str, int, float, Decimal, np.integer, np.floating)) and not isinstance(reference, bool):
            value = _reference_value(reference)
            if value is None:
                raise ConfigError(f"math_answer reference {reference!r} contains no number")
        elif not (reference is None or isinstance(reference, Mapping) or callable(reference)):
            raise ConfigError(f"math_answer reference must be a number, a str, a mapping prompt -> answer or a callable, got {reference!r}")
        self.reference = reference
        self.rel_tol, self.abs_tol = float(rel_tol), float(abs_tol)
        self.name, self.kind = name, check_choice("verifier kind", kind, KINDS)

    def reference_for(self, prompt: str) -> float:
        """The reference value for ``prompt``; raises LookupError when there is none."""
        ref = self.reference
        if ref is None:
            raise LookupError("math_answer has no reference; pass reference= (a value, a mapping prompt -> answer, or a callable)")
        if isinstance(ref, Mapping):
            if prompt not in ref:
                raise LookupError(f"no reference answer for prompt {prompt[:60]!r}")
            ref = ref[prompt]
        elif callable(ref):
            ref = ref(prompt)
        value = _reference_value(ref)
        if value is None:
            raise LookupError(f"the reference {ref!r} for this prompt contains no number")
        return value

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(texts))  # [B]
        for i, (prompt, text) in enumerate(zip(prompts, texts)):
            try:
                expected = self.reference_for(prompt)
            except LookupError as exc:
                raise VerifierError(self.name, f"cannot score: {exc.args[0]}", index=i, text=text, batch_size=len(texts)) from exc
            answer = extract_answer(text)
            if answer is not None and math.isclose(float(answer), expected, rel_tol=self.rel_tol, abs_tol=self.abs_tol):
                out[i] = 1.0
        return out

    def extract(self, text: str) -> str | None:
        """:func:`extract_answer`, for searches that vote over answers."""
        return extract_answer(text)


def math_answer(
    reference: Any = None,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-6,
    name: str = "math_answer",
    kind: str = "outcome",
) -> MathAnswer:
    """Outcome verifier: 1.0 when the text's final number equals the reference, else 0.0.

    The answer is found with :func:`extract_answer`; it matches when
    ``|a - r| <= max(rel_tol * max(|a|, |r|), abs_tol)`` (``math.isclose``). A text with no
    number scores 0.0.

    Args:
        reference: the correct answer: a number or a string (a bare number such as "1,000", or a
            whole GSM8K solution ending in "#### n"), the same for every prompt; or a mapping
            ``{prompt: answer}``; or a callable ``prompt -> answer``. With None (or a prompt
            missing from the mapping) scoring raises ``VerifierError``; ``extract`` still works.
        rel_tol: relative tolerance.
        abs_tol: absolute tolerance.
        name: the verifier's name (the cache key: give differently-referenced instances scoring
            the same nodes different names).
        kind: "outcome" by default.
    """
    return MathAnswer(reference, rel_tol=rel_tol, abs_tol=abs_tol, name=name, kind=kind)
