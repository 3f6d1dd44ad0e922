"""Composing verifiers: weighted sums, products and thresholds.

A composite is itself a verifier. It calls each part through the checked path
(:func:`~ponder.verifiers.base.run_verifier`), so a failing part raises a ``VerifierError``
naming that part (and the composite, as ``within``). One call to a composite is one verifier
call in the ledger, whatever the number of parts.

Names compose readably and serve as cache keys:
``weighted_sum([(math_answer(), 0.5), (length(), 0.5)]).name == "0.5*math_answer+0.5*length"``,
``product([a, b]).name == "a*b"``, ``threshold(v, 0.5).name == "[v>=0.5]"``.

The kind of a composite is the common kind of its parts; a mix of "outcome" and "process" is
"outcome" (the outcome part only means something on whole answers); "token" verifiers combine
only with each other, entry by entry over the vocabulary.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ponder.search.protocols import ConfigError
from ponder.verifiers.base import Verifier, VerifierError, run_token_verifier, run_verifier
from ponder.verifiers.nodes import as_verifier

__all__ = ["weighted_sum", "combine", "product", "threshold"]

# Binding strength of a verifier's name: parts that bind less tightly are parenthesised.
_SUM, _PRODUCT, _ATOM = 1, 2, 3


def _wrap(verifier: Any, needed: int) -> str:
    if getattr(verifier, "_precedence", _ATOM) < needed:
        return f"({verifier.name})"
    return verifier.name


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite real number, got {value!r}")
    return float(value)


def _common_kind(parts: Sequence[Any]) -> str:
    kinds = {part.kind for part in parts}
    if len(kinds) == 1:
        return kinds.pop()
    if "token" in kinds:
        names = ", ".join(f"{p.name} ({p.kind})" for p in parts)
        raise ConfigError(f"cannot combine token verifiers with other kinds: {names}")
    return "outcome"


class _Composite(Verifier):
    """Scores every part through the checked path and merges the arrays with ``_merge``."""

    parts: tuple
    _precedence: int

    def _merge(self, arrays: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        return self._merge([run_verifier(part, prompts, texts) for part in self.parts])  # [B]

    def score_tokens(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        arrays = [run_token_verifier(part, prompts, texts) for part in self.parts]  # each [B, V]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            widths = ", ".join(f"{p.name}: {a.shape[1]}" for p, a in zip(self.parts, arrays))
            raise VerifierError(self.name, f"got token vectors of different widths ({widths})", batch_size=len(texts))
        return self._merge(arrays)


class WeightedSum(_Composite):
    r"""``s(x) = \sum_i w_i s_i(x)``."""

    _precedence = _SUM

    def __init__(self, terms: Sequence[tuple[Any, float]], *, name: str | None = None):
        if not terms:
            raise ConfigError("weighted_sum needs at least one (verifier, weight) pair")
        self.parts = tuple(as_verifier(v) for v, _ in terms)
        self.weights = tuple(_number(w, f"the weight of {p.name!r}") for p, (_, w) in zip(self.parts, terms))
        self.kind = _common_kind(self.parts)
        self.name = name or self._compose_name()

    def _compose_name(self) -> str:
        out = []
        for k, (part, w) in enumerate(zip(self.parts, self.weights)):
            sign = "-" if w < 0 else ("+" if k else "")
            if abs(w) == 1:
                body = _wrap(part, _SUM if w > 0 else _PRODUCT)
            else:
                body = f"{abs(w):g}*{_wrap(part, _PRODUCT)}"
            out.append(sign + body)
        return "".join(out)

    def _merge(self, arrays: list[np.ndarray]) -> np.ndarray:
        total = self.weights[0] * arrays[0]
        for w, a in zip(self.weights[1:], arrays[1:]):
            total = total + w * a
        return total


class Product(_Composite):
    r"""``s(x) = \prod_i s_i(x)``."""

    _precedence = _PRODUCT

    def __init__(self, verifiers: Sequence[Any], *, name: str | None = None):
        if not verifiers:
            raise ConfigError("product needs at least one verifier")
        self.parts = tuple(as_verifier(v) for v in verifiers)
        self.kind = _common_kind(self.parts)
        self.name = name or "*".join(_wrap(p, _PRODUCT) for p in self.parts)

    def _merge(self, arrays: list[np.ndarray]) -> np.ndarray:
        out = arrays[0]
        for a in arrays[1:]:
            out = out * a
        return out


class Threshold(_Composite):
    """``s(x) = above if s_v(x) >= t else below``."""

    _precedence = _ATOM

    def __init__(self, verifier: Any, t: float, *, above: float = 1.0, below: float = 0.0, name: str | None = None):
        part = as_verifier(verifier)
        self.parts = (part,)
        self.t = _number(t, "threshold t")
        self.above = _number(above, "above")
        self.below = _number(below, "below")
        self.kind = part.kind
        test = f"{part.name}>={self.t:g}"
        default = f"[{test}]" if (self.above, self.below) == (1.0, 0.0) else f"({test}?{self.above:g}:{self.below:g})"
        self.name = name or default

    def _merge(self, arrays: list[np.ndarray]) -> np.ndarray:
        return np.where(arrays[0] >= self.t, self.above, self.below)


def weighted_sum(terms: Sequence[tuple[Any, float]] | Mapping[Any, float], *, name: str | None = None) -> Verifier:
    r"""A verifier scoring :math:`s(x) = \sum_i w_i\, s_i(x)`.

    Args:
        terms: ``[(verifier, weight), ...]`` or a mapping ``{verifier: weight}``; a verifier may be
            given by its registered name. Weights are any finite reals (negative ones subtract).
        name: overrides the composed name (e.g. ``"0.5*math_answer+0.5*length"``).
    """
    items = list(terms.items()) if isinstance(terms, Mapping) else list(terms)
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ConfigError(f"weighted_sum takes (verifier, weight) pairs, got {item!r}")
    return WeightedSum(items, name=name)


combine: Callable[..., Verifier] = weighted_sum
"""Alias of :func:`weighted_sum`."""


def product(verifiers: Sequence[Any], *, name: str | None = None) -> Verifier:
    r"""A verifier scoring :math:`s(x) = \prod_i s_i(x)` (e.g. a 0/1 gate times a graded score).

    Args:
        verifiers: the factors (verifiers or registered names).
        name: overrides the composed name (e.g. ``"math_answer*judge"``).
    """
    if isinstance(verifiers, (str, Verifier)):
        raise ConfigError("product takes a sequence of verifiers, e.g. product([a, b])")
    return Product(list(verifiers), name=name)


def threshold(verifier: Any, t: float, *, above: float = 1.0, below: float = 0.0, name: str | None = None) -> Verifier:
    r"""A verifier scoring ``above`` where ``verifier`` scores at least ``t``, else ``below``.

    :math:`s(x) = \text{above} \cdot [s_v(x) \ge t] + \text{below} \cdot [s_v(x) < t]`.

    Args:
        verifier: the verifier thresholded (or its registered name).
        t: the threshold (inclusive).
        above: the score where ``s_v(x) >= t``.
        below: the score where ``s_v(x) < t``.
        name: overrides the composed name (``"[v>=t]"``, or ``"(v>=t?above:below)"``).
    """
    return Threshold(verifier, t, above=above, below=below, name=name)
