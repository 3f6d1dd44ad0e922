"""Configuration dataclasses every search builds on, and the checks their fields use.

:class:`SearchConfig` is the base of every algorithm's config: it holds the seed. Text
searches add how they sample (:class:`SamplingConfig`); other families add their own
(a diffusion sampler's steps, a simulator's frame skip) on the same base. Every check raises a
:class:`~ponder.search.errors.ConfigError` naming the class, the field and the valid range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from ponder.search.errors import ConfigError


def check_int(owner: str, name: str, value: Any, *, minimum: int = 1, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        none = " or None" if optional else ""
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}{none}, got {value!r}")


def check_real(owner: str, name: str, value: Any, *, low: float, high: float = math.inf, low_open: bool = False, optional: bool = False) -> None:
    if optional and value is None:
        return
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = "" if high == math.inf else f" and <= {high:g}"
        none = " or None" if optional else ""
        raise ConfigError(f"{owner}.{name} must be a finite number {lo}{hi}{none}, got {value!r}")


def check_option(owner: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {owner}.{name} {value!r}; valid choices: {', '.join(choices)}")


def stop_strings(owner: str, value: Any) -> tuple[str, ...]:
    """Step delimiters given as one string or a sequence of strings (empty: none), as a tuple."""
    stop = (value,) if isinstance(value, str) else value
    if not isinstance(stop, (tuple, list)) or not all(isinstance(s, str) and s for s in stop):
        raise ConfigError(f"{owner}.stop must be a non-empty string or a sequence of non-empty strings, got {value!r}")
    return tuple(stop)


def seed_for(seed: int | None, call: int) -> int | None:
    """The seed of a search's ``call``-th generator call, or None (the generator's stream).

    A hash of ``(seed, call)`` (numpy's ``SeedSequence``), not ``seed + call``: with the sum, the
    search seeded ``s`` would draw in its call 1 what the search seeded ``s + 1`` draws in its
    call 0, so runs with consecutive seeds shared their random streams.
    """
    if seed is None:
        return None
    return int(np.random.SeedSequence((int(seed), int(call))).generate_state(1, np.uint64)[0] >> 1)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The base of every search's configuration.

    Args:
        seed: seeds the search's c-th generator call with ``seed_for(seed, c)`` (a hash of
            both); None draws from the generator's own stream.
    """

    seed: int | None = None

    def __post_init__(self):
        check_int(type(self).__name__, "seed", self.seed, minimum=0, optional=True)


@dataclasses.dataclass(frozen=True)
class SamplingConfig(SearchConfig):
    """How a text search samples from its language model; the base of every text search's config.

    Args:
        temperature: sampling temperature (0 is greedy).
        top_p: nucleus mass, in (0, 1].
        top_k: keep the k most likely tokens (0 keeps all).
        max_new_tokens: the longest answer, in tokens (a node reaching it is finished).
        seed: see :class:`SearchConfig`.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 512

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_real(owner, "temperature", self.temperature, low=0.0)
        check_real(owner, "top_p", self.top_p, low=0.0, high=1.0, low_open=True)
        check_int(owner, "top_k", self.top_k, minimum=0)
        check_int(owner, "max_new_tokens", self.max_new_tokens)

    def sampling(self, call: int) -> dict:
        """Keyword arguments of ``generator.expand`` for the search's ``call``-th call."""
        return dict(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=seed_for(self.seed, call), max_new_tokens=self.max_new_tokens)
