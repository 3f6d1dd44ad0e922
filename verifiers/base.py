"""Verifiers: the base class, the function wrapper, checked calls and per-node caching.

A verifier scores candidates in batches, higher is better (see
:class:`ponder.search.protocols.Verifier`). Its ``kind`` says what it can judge:

- ``"outcome"``: whole answers;
- ``"process"``: partial answers or single steps (scored exactly like whole ones: the text
  generated so far, after the prompt);
- ``"token"``: a vector over the vocabulary for one prefix, entry ``v`` scoring the prefix
  extended by token ``v`` (Saffron's multifurcation reward model); see :meth:`Verifier.score_tokens`.

Searches never call ``verifier.score`` directly. They call :func:`score_nodes`, which

1. reads ``node.scores[verifier.name]`` where present, so no node is scored twice,
2. scores the missing nodes in **one** batched call through :func:`run_verifier`,
3. charges ``verifier_calls=1, items_scored=len(missing)`` to the active ledgers,
4. stores the new scores back on the nodes.

:func:`run_verifier` is the one checked path: an exception, a timeout, a NaN or infinite score,
or the wrong number of scores becomes a :class:`VerifierError` naming the verifier and the
candidate, and nothing from the failed batch is cached.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ponder.search.ledger import charge
from ponder.search.protocols import KINDS, ConfigError, Node, SearchInterrupted, check_choice
from ponder.search.protocols import Verifier as VerifierProtocol

__all__ = [
    "Verifier",
    "FunctionVerifier",
    "VerifierError",
    "verifier",
    "as_verifier",
    "run_verifier",
    "run_token_verifier",
    "score_nodes",
    "score_node_tokens",
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
        node_id: ``Node.id`` of the failing candidate when scored through :func:`score_nodes`.
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


# --------------------------------------------------------------------------------------------
# Wrapping plain functions


def _calls(fn: Callable, arglist: Sequence[tuple], timeout: float | None) -> Iterator[tuple[str, Any]]:
    """Yield ``("ok", fn(*args))``, ``("error", exception)`` or ``("timeout", None)`` per args, in order.

    With a timeout the calls run one after another in a daemon worker thread (in a copy of the
    caller's context, so active ledgers still see what ``fn`` charges) and each result is awaited
    for at most ``timeout`` seconds; after a timeout nothing more is yielded. Python cannot stop a
    thread, so an abandoned call runs on in the background and its result is dropped; the worker
    starts no further call once abandoned.
    """
    if timeout is None:
        for args in arglist:
            try:
                yield "ok", fn(*args)
            except Exception as exc:  # noqa: BLE001 - reported with its index by the caller
                yield "error", exc
        return

    results: queue.SimpleQueue = queue.SimpleQueue()
    abandoned = threading.Event()

    def work():
        for args in arglist:
            if abandoned.is_set():
                return
            try:
                results.put(("ok", fn(*args)))
            except Exception as exc:  # noqa: BLE001
                results.put(("error", exc))

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), daemon=True, name=f"ponder-verifier-{getattr(fn, '__name__', 'fn')}").start()
    try:
        for _ in arglist:
            try:
                yield results.get(timeout=timeout)
            except queue.Empty:
                yield "timeout", None
                return
    finally:
        abandoned.set()


class FunctionVerifier(Verifier):
    """A verifier made from a plain function; build it with :func:`verifier`.

    Args:
        fn: ``fn(prompt, text) -> float`` or, with ``batched=True``,
            ``fn(prompts, texts) -> sequence of B floats``. For ``kind="token"`` the function
            returns a vector over the vocabulary per candidate (``[V]``, or ``[B, V]`` batched).
        name: the verifier's name (default: ``fn.__name__``).
        kind: "outcome", "process" or "token".
        batched: whether ``fn`` takes whole batches.
        timeout: seconds one call of ``fn`` may take (per candidate when unbatched, per batch when
            batched), or None for no limit. With a limit, ``fn`` runs in a worker thread.
    """

    def __init__(
        self,
        fn: Callable,
        *,
        name: str | None = None,
        kind: str = "outcome",
        batched: bool = False,
        timeout: float | None = None,
    ):
        if not callable(fn):
            raise ConfigError(f"verifier() needs a function fn(prompt, text) -> float, got {fn!r} (pass name= as a keyword)")
        self.fn = fn
        self.name = name if name is not None else getattr(fn, "__name__", type(fn).__name__)
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"verifier name must be a non-empty string, got {self.name!r}")
        self.kind = check_choice("verifier kind", kind, KINDS)
        if batched not in (True, False):
            raise ConfigError(f"batched must be True or False, got {batched!r}")
        self.batched = bool(batched)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf")):
            raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self.timeout = timeout
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        if self.kind == "token":
            raise NotImplementedError(f"token verifier {self.name!r} made from a function scores only next tokens: use score_tokens()")
        return self._evaluate(prompts, texts, ndim=1)

    def score_tokens(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        if self.kind != "token":
            raise NotImplementedError(f"{self.kind} verifier {self.name!r} has no token scores")
        return self._evaluate(prompts, texts, ndim=2)

    def _evaluate(self, prompts: Sequence[str], texts: Sequence[str], ndim: int) -> np.ndarray:
        prompts, texts = _pairs(prompts, texts)
        batch = len(texts)
        if batch == 0:
            return np.zeros((0,) if ndim == 1 else (0, 0))
        if self.batched:
            with contextlib.closing(_calls(self.fn, [(prompts, texts)], self.timeout)) as calls:
                status, value = next(calls)
            if status != "ok":
                raise self._failure(status, value, None, texts)
            return _check_array(value, self.name, texts, ndim)

        rows = []
        with contextlib.closing(_calls(self.fn, list(zip(prompts, texts)), self.timeout)) as calls:
            for i, (status, value) in enumerate(calls):
                if status != "ok":
                    raise self._failure(status, value, i, texts)
                try:
                    rows.append(_as_score(value) if ndim == 1 else self._as_vector(value))
                except ValueError as exc:
                    raise VerifierError(self.name, str(exc), index=i, text=texts[i], batch_size=batch) from None
        if ndim == 1:
            return np.asarray(rows, dtype=np.float64)
        widths = {len(row) for row in rows}
        if len(widths) != 1:
            raise VerifierError(self.name, f"returned token vectors of different lengths {sorted(widths)}", batch_size=batch, text=texts[0])
        return np.stack(rows)

    @staticmethod
    def _as_vector(value: Any) -> np.ndarray:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.dtype.kind not in "biuf" or arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"returned {type(value).__name__} of shape {arr.shape} and dtype {arr.dtype}, expected a vector [V] of real numbers")
        arr = arr.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"returned {arr[bad[0]]} at token {int(bad[0])}")
        return arr

    def _failure(self, status: str, value: Any, index: int | None, texts: Sequence[str]) -> VerifierError:
        text = texts[index] if index is not None else texts[0]
        if status == "timeout":
            problem = f"timed out after {self.timeout:g} s"
        else:
            problem = f"raised {type(value).__name__}: {value}"
        error = VerifierError(self.name, problem, index=index, text=text, batch_size=len(texts))
        if status == "error":
            error.__cause__ = value
        return error


def verifier(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    kind: str = "outcome",
    batched: bool = False,
    timeout: float | None = None,
):
    """Turn ``fn(prompt, text) -> float`` into a :class:`Verifier`; usable as a decorator.

    ::

        @ponder.verifier
        def mentions_paris(prompt, text):
            return float("Paris" in text)

        @ponder.verifier(name="judge", batched=True, timeout=30)
        def judge(prompts, texts):
            return my_reward_model(prompts, texts)        # B floats

    Args:
        fn: the scoring function (omit it to get a decorator).
        name: the verifier's name, used as the cache key in ``Node.scores`` and in composite
            names (default: ``fn.__name__``).
        kind: "outcome" (whole answers), "process" (partial answers / steps) or "token".
        batched: True when ``fn(prompts, texts)`` scores a whole batch and returns B floats.
        timeout: seconds one call of ``fn`` may take (per candidate, or per batch when batched);
            ``fn`` then runs in a worker thread and a call that overruns raises
            :class:`VerifierError`. To limit a class-based verifier, wrap its method:
            ``verifier(obj.score, batched=True, name=obj.name, timeout=5)``.

    Returns:
        A :class:`FunctionVerifier`, or a decorator making one when ``fn`` is omitted. It stays
        callable as ``v(prompt, text) -> float``.
    """

    def wrap(f: Callable) -> FunctionVerifier:
        return FunctionVerifier(f, name=name, kind=kind, batched=batched, timeout=timeout)

    return wrap if fn is None else wrap(fn)


# --------------------------------------------------------------------------------------------
# Scoring nodes, with the per-node cache


def as_verifier(verifier: Any) -> Any:
    """``verifier`` itself if it follows the protocol, the registered verifier if it is a name.

    Raises:
        ConfigError: ``verifier`` is neither (e.g. a bare function: wrap it with :func:`verifier`).
    """
    if isinstance(verifier, str):
        from ponder.verifiers.registry import get

        return get(verifier)
    if isinstance(verifier, type) or not isinstance(verifier, VerifierProtocol):
        hint = " (wrap a function with ponder.verifier first)" if callable(verifier) else ""
        raise ConfigError(f"expected a verifier (with name, kind and score) or a registered name, got {verifier!r}{hint}")
    _name_of(verifier)
    return verifier


def _unique(nodes: Iterable[Node]) -> tuple[list[Node], list[int]]:
    """Distinct nodes (by identity) in first-seen order, and each one's first position."""
    seen: dict[int, int] = {}
    distinct, first = [], []
    for i, node in enumerate(nodes):
        if id(node) not in seen:
            seen[id(node)] = len(distinct)
            distinct.append(node)
            first.append(i)
    return distinct, first


def score_nodes(verifier: Any, nodes: Sequence[Node]) -> np.ndarray:
    """Scores of ``nodes``, cached per node under ``node.scores[verifier.name]``.

    Nodes already holding a score for this verifier's name are not scored again; the others
    (each distinct node once, even if listed twice) are scored in one batched call with
    ``node.prompt`` as the prompt and ``node.text`` (the generated text after the prompt, whole
    or partial) as the candidate. That call charges ``verifier_calls=1`` and
    ``items_scored=len(missing)`` to the active ledgers, also when it fails; nothing is charged
    when every node was cached.

    The cache is keyed by name: give verifiers that score differently different names.

    Args:
        verifier: a verifier, or a registered name (see :func:`ponder.verifiers.get`).
        nodes: the candidates.                                                # [B]

    Returns:
        Their scores, float64.                                                # [B]

    Raises:
        VerifierError: the verifier failed; ``index`` is the failing node's position in ``nodes``
            and ``node_id`` its id. No score of the failed batch is cached.
    """
    verifier = as_verifier(verifier)
    key = _name_of(verifier)
    nodes = list(nodes)
    out = np.empty(len(nodes), dtype=np.float64)  # [B]
    missing, positions = [], []
    for i, node in enumerate(nodes):
        cached = node.scores.get(key)
        if cached is not None:
            out[i] = float(cached)
        else:
            missing.append(node)
            positions.append(i)
    if not missing:
        return out

    todo, first = _unique(missing)
    charge(verifier_calls=1, items_scored=len(todo))
    try:
        fresh = run_verifier(verifier, [node.prompt for node in todo], [node.text for node in todo])  # [M]
    except VerifierError as exc:
        _locate(exc, todo, [positions[j] for j in first], len(nodes))
        raise
    for node, value in zip(todo, fresh):
        node.scores[key] = float(value)
    for node, i in zip(missing, positions):
        out[i] = node.scores[key]
    return out


def score_node_tokens(verifier: Any, nodes: Sequence[Node]) -> np.ndarray:
    """Token scores of a token verifier for ``nodes`` (not cached: one vector per node is large).

    Charges ``verifier_calls=1, items_scored=len(nodes)``.

    Returns:
        ``out[b, v]``: the score of ``nodes[b]`` extended by token ``v``.     # [B, V]
    """
    verifier = as_verifier(verifier)
    nodes = list(nodes)
    if not nodes:
        return np.zeros((0, 0))
    charge(verifier_calls=1, items_scored=len(nodes))
    try:
        return run_token_verifier(verifier, [node.prompt for node in nodes], [node.text for node in nodes])
    except VerifierError as exc:
        _locate(exc, nodes, list(range(len(nodes))), len(nodes))
        raise


def _locate(exc: VerifierError, batch: Sequence[Node], positions: Sequence[int], total: int) -> None:
    """Re-point ``exc`` from its index in ``batch`` to the position and id in the caller's list.

    A whole-batch failure keeps the size of the call actually made (the missing nodes only).
    """
    if exc.index is not None and 0 <= exc.index < len(batch):
        exc.node_id = batch[exc.index].id
        exc.index = positions[exc.index]
        exc.batch_size = total
