"""Verifiers: the base class, the error type and the checked call path.

A verifier scores candidates in batches, higher is better (see
:class:`ponder.search.protocols.Verifier`). Its ``kind`` says what it can judge:

- ``"outcome"``: whole answers;
- ``"process"``: partial answers or single steps (scored exactly like whole ones: the text
  generated so far, after the prompt);
- ``"token"``: a vector over the vocabulary for one prefix, entry ``v`` scoring the prefix
  extended by token ``v`` (Saffron's multifurcation reward model); see :meth:`Verifier.score_tokens`.

:func:`run_verifier` is the one checked path: an exception, a timeout, a NaN or infinite score,
or the wrong number of scores becomes a :class:`VerifierError` naming the verifier and the
candidate, and nothing from the failed batch is cached.

Plain functions become verifiers in :mod:`ponder.verifiers.function`; searches score nodes,
with the per-node cache, through :mod:`ponder.verifiers.nodes`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ponder.search.protocols import KINDS, ConfigError, SearchInterrupted, check_choice

__all__ = [
    "Verifier",
    "VerifierError",
    "run_verifier",
    "run_token_verifier",
]


def excerpt(text: str, width: int = 60) -> str:
    """``repr`` of ``text``, shortened to about ``width`` characters around a " ... " in the middle."""
    if len(text) > width:
        half = (width - 5) // 2
        text = text[:half] + " ... " + text[-half:]
    return repr(text)


class VerifierError(SearchInterrupted):
    """A verifier failed: it raised, timed out, or returned NaN/inf or the wrong number of scores.

    The original exception, if any, is chained as ``__cause__``. Scores computed for other
    candidates of the failed batch are discarded (not cached); scores cached by earlier
    successful batches stay on their nodes.

    Attributes:
        verifier: name of the verifier that failed.
        problem: what went wrong ("raised ValueError: ...", "returned nan", "timed out after 2 s").
        index: position of the failing candidate in the caller's batch, or None when the failure
            concerns the whole batch (e.g. a batched function raised, or returned 3 scores for 4).
        text: the failing candidate's text (the message shows a short excerpt), or None.
        batch_size: how many candidates the failing call was given.
        node_id: ``Node.id`` of the failing candidate when scored through :func:`~ponder.verifiers.nodes.score_nodes`.
        within: name of the composite verifier the failing one was part of, if any.
        partial: None here; a search that catches this error fills in its partial result
            (best candidates, tree, ledger) before re-raising.
    """

    def __init__(
        self,
        verifier: str,
        problem: str,
        *,
        index: int | None = None,
        text: str | None = None,
        batch_size: int | None = None,
        node_id: int | None = None,
    ):
        super().__init__(verifier, problem)
        self.verifier = verifier
        self.problem = problem
        self.index = index
        self.text = text
        self.batch_size = batch_size
        self.node_id = node_id
        self.within: str | None = None
        self.partial = None

    def __str__(self) -> str:
        who = f"verifier {self.verifier!r}"
        if self.within is not None:
            who += f" (in {self.within!r})"
        of = f" of {self.batch_size}" if self.batch_size is not None else ""
        details = []
        if self.index is not None:
            where = f"candidate {self.index}{of}"
            if self.node_id is not None:
                details.append(f"node {self.node_id}")
            if self.text is not None:
                details.append(f"text {excerpt(self.text)}")
        else:
            n = self.batch_size
            where = "a batch" if n is None else f"a batch of {n} candidate{'' if n == 1 else 's'}"
            if self.text is not None:
                details.append(f"first text {excerpt(self.text)}")
        if details:
            where += f" ({', '.join(details)})"
        return f"{who} failed on {where}: {self.problem}"

    def __reduce__(self):
        return (type(self), (self.verifier, self.problem), dict(self.__dict__))


class Verifier:
    """Base class of verifiers.

    Subclasses set ``name`` (the cache key under ``Node.scores``; defaults to the class name) and
    ``kind`` (one of ``KINDS``), and implement :meth:`score`; token verifiers implement
    :meth:`score_tokens` (and :meth:`score` if they can score a text as it stands).

    Calling a verifier on one pair, ``v(prompt, text)``, returns one checked float.
    """

    name: str = "verifier"
    kind: str = "outcome"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """One float per (prompt, text) pair, higher is better.                # [B] float64"""
        raise NotImplementedError(f"{type(self).__name__} ({self.kind} verifier {self.name!r}) does not implement score()")

    def score_tokens(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """For token verifiers: ``out[b, v]`` scores ``texts[b]`` extended by token ``v``.  # [B, V]"""
        raise NotImplementedError(f"{type(self).__name__} ({self.kind} verifier {self.name!r}) does not implement score_tokens()")

    def __call__(self, prompt: str, text: str) -> float:
        return float(run_verifier(self, [prompt], [text])[0])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} kind={self.kind!r}>"


# --------------------------------------------------------------------------------------------
# Checking what a verifier returned


def _name_of(verifier: Any) -> str:
    name = getattr(verifier, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"verifier {verifier!r} needs a non-empty string `name` (it keys the per-node score cache)")
    return name


def _short(value: Any, width: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."


def _as_score(value: Any) -> float:
    """``value`` as a float; raises ValueError with a description when it is not a real scalar."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "biuf" or arr.ndim != 0:
        raise ValueError(f"returned {_short(value)} ({type(value).__name__}), expected one real number")
    score = float(arr)
    if not np.isfinite(score):
        raise ValueError(f"returned {score}")
    return score


def _check_array(raw: Any, name: str, texts: Sequence[str], ndim: int) -> np.ndarray:
    """``raw`` as a finite float64 array of ``ndim`` dims with ``len(texts)`` rows, else VerifierError."""
    batch = len(texts)
    first = texts[0] if batch else None
    try:
        arr = np.asarray(raw)
    except (TypeError, ValueError):  # ragged nesting
        arr = np.asarray(None)
    if arr.dtype.kind not in "biuf":
        raise VerifierError(name, f"returned {type(raw).__name__} {_short(raw)}, expected an array of real numbers", batch_size=batch, text=first)
    if arr.ndim != ndim or arr.shape[0] != batch or (ndim == 2 and arr.shape[1] == 0):
        what = "scores" if ndim == 1 else "score vectors"
        if arr.ndim == ndim:
            problem = f"returned {arr.shape[0]} {what} for {batch} candidates"
        else:
            expected = "[B]" if ndim == 1 else "[B, V]"
            problem = f"returned an array of shape {arr.shape}, expected {expected} with B={batch}"
        raise VerifierError(name, problem, batch_size=batch, text=first)
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        i = int(bad[0])
        problem = f"returned {arr[tuple(bad)]}" + (f" at token {int(bad[1])}" if ndim == 2 else "")
        raise VerifierError(name, problem, index=i, text=texts[i], batch_size=batch)
    return arr


def _pairs(prompts: Sequence[str], texts: Sequence[str]) -> tuple[list[str], list[str]]:
    prompts, texts = list(prompts), list(texts)
    if len(prompts) != len(texts):
        raise ValueError(f"got {len(prompts)} prompts for {len(texts)} texts; pass one prompt per text")
    return prompts, texts


def _run(verifier: Any, method: str, prompts: Sequence[str], texts: Sequence[str], ndim: int) -> np.ndarray:
    name = _name_of(verifier)
    check_choice("verifier kind", getattr(verifier, "kind", None), KINDS)
    prompts, texts = _pairs(prompts, texts)
    if not texts:
        return np.zeros((0,) if ndim == 1 else (0, 0))
    try:
        raw = getattr(verifier, method)(prompts, texts)
    except VerifierError as exc:
        if exc.verifier != name:
            exc.within = name
        raise
    except Exception as exc:
        raise VerifierError(name, f"raised {type(exc).__name__}: {exc}", batch_size=len(texts), text=texts[0]) from exc
    return _check_array(raw, name, texts, ndim)


def run_verifier(verifier: Any, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """``verifier.score(prompts, texts)``, checked.

    Args:
        verifier: anything with ``name``, ``kind`` and ``score`` (a :class:`Verifier` or an object
            following the protocol).
        prompts: one prompt per candidate.                                    # [B]
        texts: the candidates: text generated after the prompt (whole or partial).  # [B]

    Returns:
        The scores as float64, all finite.                                    # [B]

    Raises:
        VerifierError: the verifier raised, timed out, or returned non-finite scores or the wrong
            number of them; the message names the verifier and the candidate.
    """
    return _run(verifier, "score", prompts, texts, ndim=1)


def run_token_verifier(verifier: Any, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """``verifier.score_tokens(prompts, texts)``, checked like :func:`run_verifier`.

    Returns:
        ``out[b, v]``: the score of ``texts[b]`` extended by token ``v``, all finite.   # [B, V]
    """
    if getattr(verifier, "kind", None) != "token":
        raise ConfigError(f"verifier {getattr(verifier, 'name', verifier)!r} is of kind {getattr(verifier, 'kind', None)!r}; token scores need kind 'token'")
    return _run(verifier, "score_tokens", prompts, texts, ndim=2)
