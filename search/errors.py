"""ponder's error types and the choice check: the one module every package may import.

Nothing here imports anything of ponder, so ``models/`` and ``verifiers/`` raise ponder's errors
without pulling in a single algorithm.

- :class:`PonderError`: the base class;
- :class:`ConfigError`: a bad configuration value (also a ``ValueError``);
- :class:`SearchInterrupted`: a search ended before its work was done; ``partial`` holds the
  result so far. Its subclasses say why: a verifier failed
  (:class:`~ponder.search.verify.VerifierError`), or the user cancelled
  (:class:`SearchCancelled`, also a ``KeyboardInterrupt``).
"""

from __future__ import annotations

from typing import Any, Sequence


class PonderError(Exception):
    """Base class of ponder's errors."""


class ConfigError(PonderError, ValueError):
    """A bad configuration value (unknown option, negative width, ...)."""


class SearchInterrupted(PonderError):
    """Raised out of a search that ended before its work was done.

    Attributes:
        partial: the search's result so far (best candidates, tree, ledger) with
            ``stopped="interrupted"``, so nothing already computed is lost. The search's
            :class:`~ponder.search.result.Trace` sets it before the error propagates.
    """

    partial: Any = None


class SearchCancelled(SearchInterrupted, KeyboardInterrupt):
    """The search was cancelled: a ``KeyboardInterrupt`` inside it, or its ``cancel`` event set.

    It is also a ``KeyboardInterrupt``, so Ctrl-C still ends a script; catch it to keep the
    partial result (``err.partial``).
    """

    def __init__(self, message: str = "search cancelled"):
        super().__init__(message)
        self.partial = None


def check_choice(name: str, value: Any, choices: Sequence[str]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid choices: {', '.join(map(str, choices))}")
    return value
