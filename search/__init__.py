"""Search algorithms, and the front door ``ponder.search(algo, generator, verifier, prompt, ...)``.

::

    import ponder

    lm = ponder.load("smollm2")
    result = ponder.search("beam", lm, my_prm, "What is 7 * 6?",
                           budget=ponder.Budget(tokens=4000), width=4, aggregation="min")
    result.answer, result.stopped, result.ledger

``ponder.search`` is this package *and* callable: calling it is :func:`run`, which looks the
algorithm up in :data:`ALGORITHMS`, builds its config dataclass from the keyword arguments and
calls the algorithm module's ``run``. Each algorithm is one module, readable top to bottom:

==========  ==================================  ======================  ====================
name        module                              config                  verifier
==========  ==================================  ======================  ====================
best_of_n   :mod:`ponder.search.best_of_n`      :class:`BestOfNConfig`  outcome (optional
                                                                        for majority)
bon         alias of best_of_n
majority    best_of_n with ``mode="majority"``
beam        :mod:`ponder.search.beam`           :class:`BeamConfig`     process
rebase      :mod:`ponder.search.rebase`         :class:`RebaseConfig`   process
==========  ==================================  ======================  ====================
"""

from __future__ import annotations

import dataclasses
import sys
import types
from typing import Any, Callable, Mapping

from ponder.search import beam, best_of_n, rebase
from ponder.search.beam import BeamConfig
from ponder.search.best_of_n import BestOfNConfig
from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import ConfigError, Node, PonderError, SearchInterrupted, Step
from ponder.search.rebase import RebaseConfig
from ponder.search.result import SearchResult
from ponder.search.scoring import SamplingConfig


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """An entry of :data:`ALGORITHMS`.

    Attributes:
        name: the algorithm's canonical name.
        run: its entry function ``run(generator, verifier, prompt, *, budget, config, progress)``.
        config: its config dataclass.
        preset: config values the entry fixes (e.g. ``majority`` fixes ``mode="majority"``).
    """

    name: str
    run: Callable[..., SearchResult]
    config: type
    preset: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def options(self) -> list[str]:
        """The config keys a caller may set."""
        shared = {f.name for f in dataclasses.fields(SamplingConfig)}
        names = [f.name for f in dataclasses.fields(self.config) if f.name not in self.preset]
        return [n for n in names if n not in shared] + [n for n in names if n in shared]  # the algorithm's own first


_BEST_OF_N = Algorithm("best_of_n", best_of_n.run, BestOfNConfig)
ALGORITHMS: dict[str, Algorithm] = {
    "best_of_n": _BEST_OF_N,
    "bon": _BEST_OF_N,
    "majority": Algorithm("best_of_n", best_of_n.run, BestOfNConfig, {"mode": "majority"}),
    "beam": Algorithm("beam", beam.run, BeamConfig),
    "rebase": Algorithm("rebase", rebase.run, RebaseConfig),
}


def run(
    algo: str,
    generator: Any,
    verifier: Any,
    prompt: str,
    *,
    budget: Budget | Mapping[str, Any] | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    config: Any = None,
    **options: Any,
) -> SearchResult:
    """Run the search ``algo`` around ``generator``, scored by ``verifier``, under ``budget``.

    Args:
        algo: a name in :data:`ALGORITHMS` ("best_of_n", "bon", "majority", "beam", "rebase").
        generator: a text generator (``root``, ``expand``), e.g. ``ponder.load("smollm2")``.
        verifier: a verifier; a registered name (``ponder.verifiers.get``); a plain function
            ``fn(prompt, text) -> float`` (wrapped with ``ponder.verifiers.verifier``, as a process
            verifier for beam and rebase); or None where the algorithm needs none ("majority").
        prompt: the prompt (a string, or chat messages if the generator takes them).
        budget: a :class:`Budget`, or a mapping of its fields (``{"tokens": 2000}``); None is
            uncapped.
        progress: called as ``progress(ledger, budget)`` after every step (e.g. a tqdm updater).
        config: a ready config dataclass of the algorithm (e.g. :class:`BeamConfig`); ``options``
            then override its fields.
        **options: the algorithm's options (fields of its config dataclass).

    Returns:
        The :class:`SearchResult`.

    Raises:
        ConfigError: unknown algorithm or option (the message lists the valid ones), a bad value,
            or a missing verifier.
        VerifierError: the verifier failed mid-search; ``err.partial`` is the result so far.
    """
    if not isinstance(algo, str) or algo not in ALGORITHMS:
        raise ConfigError(f"unknown search algorithm {algo!r}; valid choices: {', '.join(ALGORITHMS)}")
    entry = ALGORITHMS[algo]
    if config is not None and type(config) is not entry.config:
        raise ConfigError(f"config for search {algo!r} must be a {entry.config.__name__}, got {config!r}")
    given = dataclasses.asdict(config) if config is not None else {}
    for key, fixed in entry.preset.items():
        value = options.get(key, given.get(key, fixed))
        if value != fixed:
            raise ConfigError(f"{algo!r} fixes {key}={fixed!r}, got {key}={value!r}; use {entry.name!r} to choose {key}")
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(entry.config)})
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(repr, unknown))} for search {algo!r}; valid options: {', '.join(entry.options)}")
    fields = {**options, **entry.preset}
    settings = dataclasses.replace(config, **fields) if config is not None else entry.config(**fields)
    return entry.run(generator, verifier, prompt, budget=_as_budget(budget), config=settings, progress=progress)


def _as_budget(budget: Any) -> Budget | None:
    if budget is None or isinstance(budget, Budget):
        return budget
    if isinstance(budget, Mapping):
        fields = [f.name for f in dataclasses.fields(Budget)]
        unknown = sorted(set(budget) - set(fields))
        if unknown:
            raise ConfigError(f"unknown budget cap(s) {', '.join(map(repr, unknown))}; valid caps: {', '.join(fields)}")
        try:
            return Budget(**budget)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    raise ConfigError(f"budget must be a ponder.Budget, a mapping of its caps or None, got {budget!r}")


class _CallableModule(types.ModuleType):
    """``ponder.search`` itself: the package, callable as :func:`run`."""

    def __call__(self, *args: Any, **kwargs: Any) -> SearchResult:
        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "BeamConfig",
    "SamplingConfig",
    "BestOfNConfig",
    "Budget",
    "ConfigError",
    "Ledger",
    "Node",
    "PonderError",
    "RebaseConfig",
    "SearchInterrupted",
    "SearchResult",
    "Step",
    "run",
]
