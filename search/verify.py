"""Checked verifier calls, the one failure path of scoring, and scoring states with a cache.

A verifier scores candidates in batches, higher is better
(:class:`~ponder.search.protocols.Verifier`). Searches never call ``verifier.score``
directly. They call :func:`score_states`, which

1. reads ``state.scores[verifier.name]`` where present, so no state is scored twice,
2. scores the missing states in **one** batched call through :func:`run_verifier`, with
   ``state.prompt`` as the prompt and ``state.candidate`` as the candidate (the generated text,
   for text states),
3. charges ``verifier_calls=1``, ``items_scored=len(missing)`` and the call's
   ``verifier_seconds`` to the active ledgers,
4. stores the new scores back on the states.

:func:`run_verifier` is the one checked path: an exception, a NaN or infinite score, or the
wrong number of scores becomes a :class:`VerifierError` naming the verifier and the candidate
(re-pointed by :func:`score_states` to the failing state's position in the caller's list and its
``State.index``), and nothing from the failed batch is cached. The search that called it attaches
its partial result to the error (:class:`~ponder.search.result.Trace`).

This module lives in ``search/`` so that searches score states without importing
``ponder.verifiers``; ``ponder.verifiers`` re-exports its names.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Sequence

import numpy as np

from ponder.search.errors import ConfigError, SearchInterrupted, check_choice
from ponder.search.ledger import charge
from ponder.search.protocols import KINDS, State
from ponder.search.protocols import Verifier as VerifierProtocol

__all__ = [
    "VerifierError",
    "check_verifier",
    "run_token_verifier",
    "run_verifier",
    "score_nodes",
    "score_state_tokens",
    "score_states",
]


def excerpt(text: str, width: int = 60) -> str:
    """``repr`` of ``text``, shortened to about ``width`` characters around a " ... " in the middle
    (a candidate that is not a string is shown by its ``repr``)."""
    if not isinstance(text, str):
        text = repr(text)
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
        node_id: ``State.index`` of the failing candidate when scored through :func:`score_states`.
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


# --------------------------------------------------------------------------------------------
# Checking what a verifier returned


def name_of(verifier: Any) -> str:
    name = getattr(verifier, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"verifier {verifier!r} needs a non-empty string `name` (it keys the per-node score cache)")
    return name


def short(value: Any, width: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."


def as_score(value: Any) -> float:
    """``value`` as a float; raises ValueError with a description when it is not a real scalar."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "biuf" or arr.ndim != 0:
        raise ValueError(f"returned {short(value)} ({type(value).__name__}), expected one real number")
    score = float(arr)
    if not np.isfinite(score):
        raise ValueError(f"returned {score}")
    return score


def check_scores(raw: Any, name: str, texts: Sequence[str], ndim: int) -> np.ndarray:
    """``raw`` as a finite float64 array of ``ndim`` dims with ``len(texts)`` rows, else VerifierError."""
    batch = len(texts)
    first = texts[0] if batch else None
    try:
        arr = np.asarray(raw)
    except (TypeError, ValueError):  # ragged nesting
        arr = np.asarray(None)
    if arr.dtype.kind not in "biuf":
        raise VerifierError(name, f"returned {type(raw).__name__} {short(raw)}, expected an array of real numbers", batch_size=batch, text=first)
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


def pair_up(prompts: Sequence[str], texts: Sequence[str]) -> tuple[list[str], list[str]]:
    prompts, texts = list(prompts), list(texts)
    if len(prompts) != len(texts):
        raise ValueError(f"got {len(prompts)} prompts for {len(texts)} texts; pass one prompt per text")
    return prompts, texts


def _run(verifier: Any, method: str, prompts: Sequence[str], texts: Sequence[str], ndim: int) -> np.ndarray:
    name = name_of(verifier)
    check_choice("verifier kind", getattr(verifier, "kind", None), KINDS)
    prompts, texts = pair_up(prompts, texts)
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
    return check_scores(raw, name, texts, ndim)


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


# --------------------------------------------------------------------------------------------
# Scoring states, with the per-state cache


def check_verifier(verifier: Any) -> Any:
    """``verifier`` itself if it follows the protocol (``name``, ``kind``, ``score``), else ConfigError.

    Names and plain functions become verifiers at the front door (``ponder.search(...)``,
    :func:`ponder.verifiers.as_verifier`), not here.
    """
    if isinstance(verifier, type) or not isinstance(verifier, VerifierProtocol):
        hint = " (wrap a function with ponder.verifier, or pass it through ponder.search)" if callable(verifier) else ""
        raise ConfigError(f"expected a verifier (with name, kind and score), got {verifier!r}{hint}")
    name_of(verifier)
    return verifier


def _unique(states: Iterable[State]) -> tuple[list[State], list[int]]:
    """Distinct states (by identity) in first-seen order, and each one's first position."""
    seen: set[int] = set()
    distinct, first = [], []
    for i, state in enumerate(states):
        if id(state) not in seen:
            seen.add(id(state))
            distinct.append(state)
            first.append(i)
    return distinct, first


def score_states(verifier: Any, states: Sequence[State]) -> np.ndarray:
    """Scores of ``states``, cached per state under ``state.scores[verifier.name]``.

    States already holding a score for this verifier's name are not scored again; the others
    (each distinct state once, even if listed twice) are scored in one batched call with
    ``state.prompt`` as the prompt and ``state.candidate`` as the candidate (for text states the
    generated text after the prompt, whole or partial). That call charges ``verifier_calls=1``,
    ``items_scored=len(missing)`` and its ``verifier_seconds`` to the active ledgers, also when it
    fails; nothing is charged when every state was cached.

    The cache is keyed by name: give verifiers that score differently different names.

    Args:
        verifier: a verifier object (names and functions are resolved at the front door).
        states: the candidates.                                               # [B]

    Returns:
        Their scores, float64.                                                # [B]

    Raises:
        VerifierError: the verifier failed; ``index`` is the failing state's position in
            ``states`` and ``node_id`` its ``State.index``. No score of the failed batch is cached.
    """
    verifier = check_verifier(verifier)
    key = name_of(verifier)
    states = list(states)
    out = np.empty(len(states), dtype=np.float64)  # [B]
    missing, positions = [], []
    for i, state in enumerate(states):
        cached = state.scores.get(key)
        if cached is not None:
            out[i] = float(cached)
        else:
            missing.append(state)
            positions.append(i)
    if not missing:
        return out

    todo, first = _unique(missing)
    started = time.perf_counter()
    try:
        fresh = run_verifier(verifier, [state.prompt for state in todo], [state.candidate for state in todo])  # [M]
    except VerifierError as exc:
        _locate(exc, todo, [positions[j] for j in first], len(states))
        raise
    finally:
        charge(verifier_calls=1, items_scored=len(todo), verifier_seconds=time.perf_counter() - started)
    for state, value in zip(todo, fresh):
        state.scores[key] = float(value)
    for state, i in zip(missing, positions):
        out[i] = state.scores[key]
    return out


def score_state_tokens(verifier: Any, states: Sequence[State]) -> np.ndarray:
    """Token scores of a token verifier for ``states`` (not cached: one vector per state is large).

    Charges ``verifier_calls=1``, ``items_scored=len(states)`` and the call's seconds.

    Returns:
        ``out[b, v]``: the score of ``states[b]`` extended by token ``v``.    # [B, V]
    """
    verifier = check_verifier(verifier)
    states = list(states)
    if not states:
        return np.zeros((0, 0))
    started = time.perf_counter()
    try:
        return run_token_verifier(verifier, [state.prompt for state in states], [state.candidate for state in states])
    except VerifierError as exc:
        _locate(exc, states, list(range(len(states))), len(states))
        raise
    finally:
        charge(verifier_calls=1, items_scored=len(states), verifier_seconds=time.perf_counter() - started)


score_nodes = score_states  # the text searches' name


def _locate(exc: VerifierError, batch: Sequence[State], positions: Sequence[int], total: int) -> None:
    """Re-point ``exc`` from its index in ``batch`` to the position and index in the caller's list.

    A whole-batch failure keeps the size of the call actually made (the missing states only).
    """
    if exc.index is not None and 0 <= exc.index < len(batch):
        exc.node_id = batch[exc.index].index
        exc.index = positions[exc.index]
        exc.batch_size = total


def require_verifier(verifier: Any, *, algorithm: str, required: bool = True) -> Any:
    """The verifier a text search scores with: checked against the protocol, not a token verifier.

    Args:
        verifier: a verifier object or None (names and functions are resolved before, at the
            front door).
        algorithm: named in error messages.
        required: whether None is an error.

    Raises:
        ConfigError: None where a verifier is required, a token verifier, or not a verifier.
    """
    if verifier is None:
        if required:
            raise ConfigError(
                f"{algorithm} needs a verifier: pass a Verifier, a registered name (see ponder.verifiers.available()) "
                "or a function fn(prompt, text) -> float"
            )
        return None
    verifier = check_verifier(verifier)
    if verifier.kind == "token":
        raise ConfigError(
            f"{algorithm} scores texts, but verifier {verifier.name!r} is a token verifier (a vector over the "
            "vocabulary); use an outcome or process verifier"
        )
    return verifier
