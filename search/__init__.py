"""Search algorithms, one module each, and the protocols they speak.

::

    import ponder

    lm = ponder.load("smollm2")
    result = ponder.search("beam", lm, my_prm, "What is 7 * 6?",
                           budget=ponder.Budget(tokens=4000), width=4, aggregation="min")
    result.answer, result.stopped, result.ledger

``ponder.search`` is this package *and* callable. The front door (:mod:`ponder.api`) makes it
so: calling it is :func:`ponder.api.run`, which turns verifier names and plain functions into
verifiers, looks the algorithm up in :data:`ALGORITHMS`, builds its config dataclass from the
keyword arguments and calls the algorithm module's ``run``. This package itself imports nothing
above it (no models, no verifiers, no front door), and resolves its names lazily:
``import ponder.search.protocols`` loads the protocols and their errors, nothing else.

The core every family stands on:

==================  ============================================================================
module              what
==================  ============================================================================
``errors``          ``PonderError``, ``ConfigError``, ``SearchInterrupted``, ``SearchCancelled``
``protocols``       ``State`` (and text's ``Node``), the expansion and verifier protocols, ``Step``
``config``          ``SearchConfig`` (the seed), ``SamplingConfig`` (text searches), field checks
``ledger``          ``Ledger`` (open counters) and ``Budget`` (a cap on any counter)
``result``          ``SearchResult`` and ``Trace``: indices, budget cuts, the one failure path
``verify``          checked verifier calls, ``VerifierError``, ``score_states`` (cached per state)
``scoring``         ranking finished answers (plain, weighted, majority); ``answers``: extraction
``mcts_policies``   the MCTS loop and mctx-shaped policies on ``ponder.kernels.mcts``'s steps
==================  ============================================================================

The algorithms:

==========  ==================================  ======================  ====================
name        module                              config                  verifier
==========  ==================================  ======================  ====================
best_of_n   :mod:`ponder.search.best_of_n`      :class:`BestOfNConfig`  outcome (optional
                                                                        for majority)
bon         alias of best_of_n
majority    best_of_n with ``mode="majority"``
beam        :mod:`ponder.search.beam`           :class:`BeamConfig`     process
rebase      :mod:`ponder.search.rebase`         :class:`RebaseConfig`   process
astar       :mod:`ponder.search.astar`          :class:`AStarConfig`    process / heuristic
mcts        :mod:`ponder.search.mcts`           :class:`MCTSConfig`     process / value
dvts        :mod:`ponder.search.dvts`           :class:`DVTSConfig`     process
fk          :mod:`ponder.search.fk`             :class:`FKConfig`       outcome (the reward)
smc         :mod:`ponder.search.smc`            :class:`SMCConfig`      process / outcome
==========  ==================================  ======================  ====================
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """An entry of :data:`ALGORITHMS`; the module is imported on first use.

    Attributes:
        name: the algorithm's canonical name (its module in ``ponder.search``).
        config_name: its config dataclass's name in that module.
        verifier_kind: the kind a plain function passed as its verifier is wrapped as.
        preset: config values the entry fixes (e.g. ``majority`` fixes ``mode="majority"``).
    """

    name: str
    config_name: str
    verifier_kind: str = "outcome"
    preset: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def module(self):
        return importlib.import_module(f"ponder.search.{self.name}")

    @property
    def run(self) -> Callable[..., Any]:
        """Its entry function ``run(generator, verifier, prompt, *, budget, config, progress, cancel)``."""
        return self.module.run

    @property
    def config(self) -> type:
        """Its config dataclass."""
        return getattr(self.module, self.config_name)

    @property
    def options(self) -> list[str]:
        """The config keys a caller may set, the algorithm's own first."""
        from ponder.search.config import SamplingConfig

        shared = {f.name for f in dataclasses.fields(SamplingConfig)}
        names = [f.name for f in dataclasses.fields(self.config) if f.name not in self.preset]
        return [n for n in names if n not in shared] + [n for n in names if n in shared]


_BEST_OF_N = Algorithm("best_of_n", "BestOfNConfig")
ALGORITHMS: dict[str, Algorithm] = {
    "best_of_n": _BEST_OF_N,
    "bon": _BEST_OF_N,
    "majority": Algorithm("best_of_n", "BestOfNConfig", preset={"mode": "majority"}),
    "beam": Algorithm("beam", "BeamConfig", verifier_kind="process"),
    "rebase": Algorithm("rebase", "RebaseConfig", verifier_kind="process"),
    "astar": Algorithm("astar", "AStarConfig", verifier_kind="process"),
    "dvts": Algorithm("dvts", "DVTSConfig", verifier_kind="process"),
    "mcts": Algorithm("mcts", "MCTSConfig", verifier_kind="process"),
    "fk": Algorithm("fk", "FKConfig"),
    "smc": Algorithm("smc", "SMCConfig", verifier_kind="process"),
}

# public name -> the module of ponder.search that defines it
_LAZY = {
    "AStarConfig": "astar",
    "BeamConfig": "beam",
    "BestOfNConfig": "best_of_n",
    "DVTSConfig": "dvts",
    "FKConfig": "fk",
    "SMCConfig": "smc",
    "MCTSConfig": "mcts",
    "RebaseConfig": "rebase",
    "Budget": "ledger",
    "Ledger": "ledger",
    "ConfigError": "errors",
    "PonderError": "errors",
    "SearchCancelled": "errors",
    "SearchInterrupted": "errors",
    "Call": "protocols",
    "Node": "protocols",
    "Observation": "protocols",
    "ToolState": "protocols",
    "State": "protocols",
    "Step": "protocols",
    "LatentState": "protocols",
    "SearchConfig": "config",
    "SamplingConfig": "config",
    "SearchResult": "result",
    "Trace": "result",
    "VerifierError": "verify",
    "score_states": "verify",
}


_SUBMODULES = ("answers", "astar", "beam", "best_of_n", "config", "dvts", "errors", "fk", "ledger", "mcts", "mcts_policies", "protocols", "rebase", "result", "scoring", "smc", "verify")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"ponder.search.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"ponder.search.{name}")
    raise AttributeError(f"module 'ponder.search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ALGORITHMS", "Algorithm", *sorted(_LAZY)]
