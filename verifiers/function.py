"""Verifiers made from plain functions: :class:`FunctionVerifier` and the :func:`verifier` decorator.

Any ``fn(prompt, text) -> float`` (or, batched, ``fn(prompts, texts) -> B floats``; for token
verifiers a vector ``[V]`` per candidate) becomes a :class:`~ponder.verifiers.base.Verifier`.
Each result is checked as in :func:`~ponder.verifiers.base.run_verifier`: an exception, a NaN or
infinite score or the wrong number of scores becomes a
:class:`~ponder.verifiers.base.VerifierError` naming the verifier and the candidate.

With ``timeout=``, the calls run in a daemon worker thread (in a copy of the caller's context, so
active ledgers still see what ``fn`` charges) and a call that overruns raises ``VerifierError``.
Python cannot stop a thread, so an overrunning call runs on in the background and its result is
dropped.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ponder.search.protocols import KINDS, ConfigError, check_choice
from ponder.search.verify import VerifierError, as_score, check_scores, pair_up
from ponder.verifiers.base import Verifier

__all__ = [
    "FunctionVerifier",
    "verifier",
]


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
        prompts, texts = pair_up(prompts, texts)
        batch = len(texts)
        if batch == 0:
            return np.zeros((0,) if ndim == 1 else (0, 0))
        if self.batched:
            with contextlib.closing(_calls(self.fn, [(prompts, texts)], self.timeout)) as calls:
                status, value = next(calls)
            if status != "ok":
                raise self._failure(status, value, None, texts)
            return check_scores(value, self.name, texts, ndim)

        rows = []
        with contextlib.closing(_calls(self.fn, list(zip(prompts, texts)), self.timeout)) as calls:
            for i, (status, value) in enumerate(calls):
                if status != "ok":
                    raise self._failure(status, value, i, texts)
                try:
                    rows.append(as_score(value) if ndim == 1 else self._as_vector(value))
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
