"""The compute ledger and the budget.

Every generator, verifier and tool call charges what it spent to the ledgers that are *active*
when it runs. A search activates its own ledger for its duration::

    ledger = Ledger()
    with ledger.active():
        generator.expand(nodes, k=4)     # charges prefill/decode/cached tokens, forward calls
        score_states(verifier, nodes)    # charges verifier calls, items scored, verifier seconds

Ledgers nest: a search run inside another search charges both. Activation is tracked with a
context variable, so concurrent searches in different threads keep separate accounts.

Counters are open: the core ones (:data:`CORE_COUNTERS`) are attributes, and any family adds
its own by charging them (``charge(tool_calls=1, tool_seconds=0.02)``,
``charge(denoiser_evals=8)``, ``charge(env_frames=400)``). A counter named ``*_seconds`` holds
seconds (a float); every other counter an integer. A ledger reports the counters that were
charged at least once, so a diffusion search shows no token counts.

A :class:`Budget` caps any counter; ``ledger.exhausted(budget)`` names the first cap reached and
``ledger.left(budget, name)`` says what a cap has left, so a search can cut its next step to it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import numbers
import time
from typing import Any, Iterator

from ponder.search.errors import ConfigError

_ACTIVE: contextvars.ContextVar[tuple["Ledger", ...]] = contextvars.ContextVar("ponder_ledgers", default=())

CORE_COUNTERS = (
    "prefill_tokens",
    "decode_tokens",
    "cached_tokens",
    "generated_tokens",
    "forward_calls",
    "verifier_calls",
    "items_scored",
    "verifier_seconds",
    "nodes",
)
TOKEN_COUNTERS = ("prefill_tokens", "decode_tokens", "cached_tokens", "generated_tokens", "forward_calls")

# Budget cap name -> ledger counter it caps (a cap may also name any counter directly).
CAP_ALIASES = {"tokens": "generated_tokens", "seconds": "wall_time"}
_COUNTERS: dict[str, str] = {name: "core" for name in CORE_COUNTERS}  # every counter a Budget may cap


def register_counter(name: str, what: str = "") -> str:
    """Declare a family's counter (``register_counter("tool_calls", "tool calls executed")``), so a
    :class:`Budget` may cap it before it is first charged; charging a counter also declares it."""
    if not name.isidentifier() or name.startswith("_") or name in ("wall_time", "peak_cached_tokens", "extra", "computed_tokens"):
        raise ConfigError(f"{name!r} cannot be a ledger counter (a Python identifier, not wall_time/peak_cached_tokens/computed_tokens)")
    _COUNTERS.setdefault(name, what)
    return name


def counters() -> list[str]:
    """Every counter a :class:`Budget` may cap by name (the core ones and those declared or charged)."""
    return list(_COUNTERS)


def _is_seconds(name: str) -> bool:
    return name.endswith("_seconds") or name == "wall_time"


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
        verifier_seconds: wall time spent inside verifiers (a learned value model's or a
            classifier's cost shows here).
        nodes: search states created.
        wall_time: seconds the ledger was active (outermost activation only).
        peak_cached_tokens: the most KV entries held at once while the ledger was active: the
            shared cache's tokens plus the live batch's (rows x columns, padding included).
        extra: every other counter charged (tool calls, environment frames, denoiser
            evaluations, ...), by name; :meth:`count` reads any counter.
    """

    prefill_tokens: int = 0
    decode_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    forward_calls: int = 0
    verifier_calls: int = 0
    items_scored: int = 0
    verifier_seconds: float = 0.0
    nodes: int = 0
    wall_time: float = 0.0
    peak_cached_tokens: int = 0
    extra: dict = dataclasses.field(default_factory=dict)
    _used: set = dataclasses.field(default_factory=set, repr=False, compare=False)
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
        """Charge every generator/verifier/tool call made inside the block to this ledger."""
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

    def add(self, **counts: float) -> None:
        """Add to counters by name; a name not seen before starts a new counter at 0."""
        for name, value in counts.items():
            if name not in _COUNTERS:
                try:
                    register_counter(name)
                except ConfigError:
                    raise KeyError(f"{name!r} is not a counter a call can charge") from None
            value = float(value) if _is_seconds(name) else int(value)
            self._used.add(name)
            if name in CORE_COUNTERS:
                setattr(self, name, getattr(self, name) + value)
            else:
                self.extra[name] = self.extra.get(name, 0) + value

    def count(self, name: str) -> float:
        """The value of any counter (``"wall_time"`` is the elapsed time; unknown counters are 0)."""
        name = CAP_ALIASES.get(name, name)
        if name == "wall_time":
            return self.elapsed
        if name in CORE_COUNTERS or name in ("peak_cached_tokens", "computed_tokens"):
            return getattr(self, name)
        return self.extra.get(name, 0)

    def observe_cache(self, cached_tokens_now: int) -> None:
        self._used.add("peak_cached_tokens")
        if cached_tokens_now > self.peak_cached_tokens:
            self.peak_cached_tokens = int(cached_tokens_now)

    def exhausted(self, budget: "Budget | None") -> str | None:
        """The name of the first cap of ``budget`` that is reached, or None."""
        if budget is None:
            return None
        for cap, limit in budget.caps.items():
            if self.count(cap) >= limit:
                return cap
        return None

    def left(self, budget: "Budget | None", cap: str) -> float:
        """What cap ``cap`` of ``budget`` has left (``inf`` when uncapped; never below 0)."""
        if budget is None or cap not in budget.caps:
            return math.inf
        return max(0, budget.caps[cap] - self.count(cap))

    def as_dict(self) -> dict:
        """The counters that were charged, with ``computed_tokens`` (when tokens were) and ``wall_time``."""
        out = {name: getattr(self, name) for name in CORE_COUNTERS if name in self._used}
        if any(name in self._used for name in TOKEN_COUNTERS):
            out["computed_tokens"] = self.computed_tokens
        if "verifier_seconds" in out:
            out["verifier_seconds"] = round(out["verifier_seconds"], 4)
        out.update({name: (round(v, 4) if _is_seconds(name) else v) for name, v in self.extra.items()})
        out["wall_time"] = round(self.elapsed, 4)
        if "peak_cached_tokens" in self._used:
            out["peak_cached_tokens"] = self.peak_cached_tokens
        return out

    def __str__(self) -> str:
        d = self.as_dict()
        parts = []
        if "computed_tokens" in d:
            parts.append(
                f"computed {d['computed_tokens']} tok (prefill {self.prefill_tokens}, decode {self.decode_tokens}), "
                f"cached {self.cached_tokens}, generated {self.generated_tokens}, forwards {self.forward_calls}"
            )
        if "verifier_calls" in d:
            parts.append(f"verifier calls {self.verifier_calls} ({self.items_scored} items, {self.verifier_seconds:.2f} s)")
        parts.append(f"nodes {self.nodes}")
        parts += [f"{name.replace('_', ' ')} {v:.2f}" if _is_seconds(name) else f"{name.replace('_', ' ')} {v}" for name, v in self.extra.items()]
        if "peak_cached_tokens" in d:
            parts.append(f"peak KV {self.peak_cached_tokens} tok")
        parts.append(f"{d['wall_time']:.2f} s")
        return ", ".join(parts)


def charge(**counts: float) -> None:
    """Add ``counts`` to every active ledger (a no-op when none is active)."""
    for ledger in _ACTIVE.get():
        ledger.add(**counts)


def observe_cache(cached_tokens_now: int) -> None:
    """Report the KV cache's current size to every active ledger (for peak tracking)."""
    for ledger in _ACTIVE.get():
        ledger.observe_cache(cached_tokens_now)


def active_ledgers() -> tuple[Ledger, ...]:
    return _ACTIVE.get()


class Budget:
    """Caps on what a search may spend; a cap left out (or None) is uncapped.

    Args:
        tokens: generated (sampled) tokens.
        verifier_calls: batched verifier invocations.
        nodes: search states created.
        seconds: wall time (a positive number; every other cap is a positive integer).
        **counters: a cap on any other ledger counter by its name (``tool_calls=700``,
            ``denoiser_evals=400``, ``env_frames=10**6``, ``verifier_seconds=30``).

    A search cuts each step to what its caps have left (a token cap: every row of a step gets at
    most ``ceil(tokens left / rows)`` tokens), so it ends within a few tokens of a token cap,
    and stops cleanly with the best result so far; ``result.stopped`` names the cap.

    Raises:
        ConfigError: a cap that is not a positive integer (a positive number for seconds).
    """

    def __init__(self, tokens: int | None = None, verifier_calls: int | None = None, nodes: int | None = None, seconds: float | None = None, **counters: float | None):
        caps = {"tokens": tokens, "verifier_calls": verifier_calls, "nodes": nodes, "seconds": seconds, **counters}
        self.caps: dict[str, float] = {}
        for name, value in caps.items():
            if value is None:
                continue
            if name not in CAP_ALIASES and (name not in _COUNTERS or name == "generated_tokens"):
                valid = ", ".join(["tokens", "verifier_calls", "nodes", "seconds"] + [c for c in _COUNTERS if c not in ("generated_tokens", "verifier_calls", "nodes")])
                raise ConfigError(f"unknown budget cap {name!r}; valid caps: {valid} (a family's counter becomes valid once its module declares it)")
            seconds_cap = _is_seconds(name) or name == "seconds"
            if seconds_cap:
                ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0
                what = "a finite number > 0"
            else:
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
                what = "an integer > 0"
            if not ok:
                raise ConfigError(f"Budget.{name} must be {what} or None, got {value!r}")
            self.caps[name] = float(value) if seconds_cap else int(value)

    def __getattr__(self, name: str):
        if name.startswith("_") or name == "caps":
            raise AttributeError(name)
        return self.__dict__.get("caps", {}).get(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Budget) and self.caps == other.caps

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.caps.items())))

    def __repr__(self) -> str:
        return "Budget(" + ", ".join(f"{k}={v!r}" for k, v in self.caps.items()) + ")"
