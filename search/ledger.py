"""The compute ledger and the budget.

Every generator and verifier call charges what it spent to the ledgers that are *active* when
it runs. A search activates its own ledger for its duration::

    ledger = Ledger()
    with ledger.active():
        generator.expand(nodes, k=4)     # charges prefill/decode/cached tokens, forward calls
        verifier_scores(...)             # charges verifier calls and items scored

Ledgers nest: a search run inside another search charges both. Activation is tracked with a
context variable, so concurrent searches in different threads keep separate accounts.

A :class:`Budget` caps a search; ``ledger.exhausted(budget)`` names the first cap reached.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from typing import Iterator

_ACTIVE: contextvars.ContextVar[tuple["Ledger", ...]] = contextvars.ContextVar("ponder_ledgers", default=())

_COUNTERS = (
    "prefill_tokens",
    "decode_tokens",
    "cached_tokens",
    "generated_tokens",
    "forward_calls",
    "verifier_calls",
    "items_scored",
    "nodes",
)


@dataclasses.dataclass
class Ledger:
    """What a search spent.

    Attributes:
        prefill_tokens: tokens run through the model in multi-token forwards (prompts, extensions,
            recomputation after eviction).
        decode_tokens: tokens run through the model one per row per forward (sampling loops).
        cached_tokens: tokens whose KV was served from the shared cache instead of computed.
        generated_tokens: tokens sampled (the quantity a token budget caps).
        forward_calls: model forward passes.
        verifier_calls: batched verifier invocations.
        items_scored: candidates scored by verifiers (cache hits excluded).
        nodes: search-tree nodes created.
        wall_time: seconds the ledger was active (outermost activation only).
        peak_cached_tokens: the most KV entries held at once while the ledger was active: the
            shared cache's tokens plus the live batch's (rows x columns, padding included).
    """

    prefill_tokens: int = 0
    decode_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    forward_calls: int = 0
    verifier_calls: int = 0
    items_scored: int = 0
    nodes: int = 0
    wall_time: float = 0.0
    peak_cached_tokens: int = 0
    _depth: int = dataclasses.field(default=0, repr=False, compare=False)
    _started: float = dataclasses.field(default=0.0, repr=False, compare=False)

    @property
    def computed_tokens(self) -> int:
        """Tokens the model actually ran: prefill + decode."""
        return self.prefill_tokens + self.decode_tokens

    @property
    def elapsed(self) -> float:
        """Wall time so far, including the current activation."""
        if self._depth:
            return self.wall_time + time.perf_counter() - self._started
        return self.wall_time

    @contextlib.contextmanager
    def active(self) -> Iterator["Ledger"]:
        """Charge every generator/verifier call made inside the block to this ledger."""
        if self._depth == 0:
            self._started = time.perf_counter()
        self._depth += 1
        active = _ACTIVE.get()
        token = _ACTIVE.set(active if any(a is self for a in active) else active + (self,))  # re-entry charges once
        try:
            yield self
        finally:
            _ACTIVE.reset(token)
            self._depth -= 1
            if self._depth == 0:
                self.wall_time += time.perf_counter() - self._started

    def add(self, **counts: int) -> None:
        for name, value in counts.items():
            if name not in _COUNTERS:
                raise KeyError(f"unknown ledger counter {name!r}; valid: {', '.join(_COUNTERS)}")
            setattr(self, name, getattr(self, name) + int(value))

    def observe_cache(self, cached_tokens_now: int) -> None:
        if cached_tokens_now > self.peak_cached_tokens:
            self.peak_cached_tokens = int(cached_tokens_now)

    def exhausted(self, budget: "Budget | None") -> str | None:
        """The name of the first cap of ``budget`` that is reached, or None."""
        if budget is None:
            return None
        if budget.tokens is not None and self.generated_tokens >= budget.tokens:
            return "tokens"
        if budget.verifier_calls is not None and self.verifier_calls >= budget.verifier_calls:
            return "verifier_calls"
        if budget.nodes is not None and self.nodes >= budget.nodes:
            return "nodes"
        if budget.seconds is not None and self.elapsed >= budget.seconds:
            return "seconds"
        return None

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name in _COUNTERS}
        out["computed_tokens"] = self.computed_tokens
        out["wall_time"] = round(self.elapsed, 4)
        out["peak_cached_tokens"] = self.peak_cached_tokens
        return out

    def __str__(self) -> str:
        d = self.as_dict()
        return (
            f"computed {d['computed_tokens']} tok (prefill {d['prefill_tokens']}, decode {d['decode_tokens']}), "
            f"cached {d['cached_tokens']}, generated {d['generated_tokens']}, forwards {d['forward_calls']}, "
            f"verifier calls {d['verifier_calls']} ({d['items_scored']} items), nodes {d['nodes']}, "
            f"peak KV {d['peak_cached_tokens']} tok, {d['wall_time']:.2f} s"
        )


def charge(**counts: int) -> None:
    """Add ``counts`` to every active ledger (a no-op when none is active)."""
    for ledger in _ACTIVE.get():
        ledger.add(**counts)


def observe_cache(cached_tokens_now: int) -> None:
    """Report the KV cache's current size to every active ledger (for peak tracking)."""
    for ledger in _ACTIVE.get():
        ledger.observe_cache(cached_tokens_now)


def active_ledgers() -> tuple[Ledger, ...]:
    return _ACTIVE.get()


@dataclasses.dataclass(frozen=True)
class Budget:
    """Caps on what a search may spend; ``None`` means uncapped.

    Args:
        tokens: generated (sampled) tokens.
        verifier_calls: batched verifier invocations.
        nodes: search-tree nodes created.
        seconds: wall time.

    A search checks its budget between steps and stops cleanly with the best result so far, so
    a step in flight may overshoot a cap by at most one step's worth.
    """

    tokens: int | None = None
    verifier_calls: int | None = None
    nodes: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        for name in ("tokens", "verifier_calls", "nodes", "seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"Budget.{name} must be positive or None, got {value!r}")
