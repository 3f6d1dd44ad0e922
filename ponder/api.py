"""The front door: ``ponder.search(...)`` and ``ponder.load(...)``.

This is where what a user passes becomes what the layers below speak: a verifier *name* is
looked up in the registry (:func:`ponder.verifiers.get`), a plain function ``fn(prompt, text)``
is wrapped as a verifier of the kind the algorithm scores with (:func:`ponder.verifiers.verifier`),
a budget given as a mapping becomes a :class:`~ponder.search.ledger.Budget`, and keyword options
become the algorithm's config dataclass. The algorithms in ``ponder.search`` then see only
verifier objects.

``ponder.search`` is the package of algorithms and, through the module class ``ponder/__init__``
gives it, callable as :func:`run` (the package itself imports nothing of the front door).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from ponder.search import ALGORITHMS
from ponder.search.errors import ConfigError
from ponder.search.ledger import Budget, Ledger
from ponder.search.result import SearchResult


def run(
    algo: str,
    generator: Any,
    verifier: Any,
    prompt: Any,
    *,
    budget: Budget | Mapping[str, Any] | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
    config: Any = None,
    **options: Any,
) -> SearchResult:
    """Run the search ``algo`` around ``generator``, scored by ``verifier``, under ``budget``.

    Args:
        algo: a name in :data:`ponder.search.ALGORITHMS` ("best_of_n", "bon", "majority",
            "beam", "rebase").
        generator: a generator speaking the expansion protocol, e.g. ``ponder.load("smollm2")``.
        verifier: a verifier; a registered name (``ponder.verifiers.get``); a plain function
            ``fn(prompt, text) -> float`` (wrapped with ``ponder.verifiers.verifier``, as a process
            verifier for beam and rebase); or None where the algorithm needs none ("majority").
        prompt: the prompt (a string, or chat messages if the generator takes them).
        budget: a :class:`Budget`, or a mapping of its caps (``{"tokens": 2000}``); None is
            uncapped.
        progress: called as ``progress(ledger, budget)`` after every step (e.g. a tqdm updater).
        cancel: an object with ``is_set()`` (a ``threading.Event``): setting it ends the search
            at its next step with a ``SearchCancelled`` carrying the partial result (as Ctrl-C
            does).
        config: a ready config dataclass of the algorithm (e.g. ``BeamConfig``); ``options``
            then override its fields.
        **options: the algorithm's options (fields of its config dataclass).

    Returns:
        The :class:`SearchResult`.

    Raises:
        ConfigError: unknown algorithm or option (the message lists the valid ones), a bad value,
            or a missing verifier.
        VerifierError: the verifier failed mid-search; ``err.partial`` is the result so far.
        SearchCancelled: Ctrl-C or ``cancel``; ``err.partial`` is the result so far.
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
    return entry.run(generator, resolve_verifier(verifier, kind=entry.verifier_kind), prompt, budget=as_budget(budget), config=settings,
                     progress=progress, cancel=cancel)


def resolve_verifier(verifier: Any, *, kind: str = "outcome") -> Any:
    """A verifier object from what a user passed: a verifier, a registered name, a function, or None.

    Args:
        verifier: a verifier (``name``, ``kind``, ``score``), a registered name
            (:func:`ponder.verifiers.get`), a plain function ``fn(prompt, text) -> float``
            (wrapped with :func:`ponder.verifiers.verifier` as ``kind``), or None (kept: the
            algorithm says whether it needs one).

    Raises:
        ConfigError: an unknown name, or something that is neither a verifier nor a function.
    """
    from ponder import verifiers
    from ponder.search.protocols import Verifier

    if verifier is None:
        return None
    if isinstance(verifier, str):
        return verifiers.get(verifier)
    if isinstance(verifier, Verifier) and not isinstance(verifier, type):
        return verifier
    if callable(verifier) and not isinstance(verifier, type):
        return verifiers.verifier(verifier, kind=kind)
    raise ConfigError(f"expected a verifier, a registered verifier name or a function fn(prompt, text) -> float, got {verifier!r}")


def as_budget(budget: Any) -> Budget | None:
    """A :class:`Budget` from a Budget, a mapping of its caps, or None."""
    if budget is None or isinstance(budget, Budget):
        return budget
    if isinstance(budget, Mapping):
        if not all(isinstance(key, str) for key in budget):
            raise ConfigError(f"budget caps are named by strings, got {list(budget)!r}")
        return Budget(**budget)
    raise ConfigError(f"budget must be a ponder.Budget, a mapping of its caps or None, got {budget!r}")


def load(name_or_path: str = "smollm2", **kwargs):
    """Load a generator by name ("smollm2") or from a local Hugging Face directory.

    See :func:`ponder.models.load` for the options.
    """
    from ponder.models import load as load_model

    return load_model(name_or_path, **kwargs)
