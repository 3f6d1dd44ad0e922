"""ponder: inference-time search and steering.

The public API, in one place::

    import ponder

    lm = ponder.load("smollm2")                  # a generator with a shared-prefix KV cache
    result = ponder.search("beam", lm, "arithmetic", "What is 7 * 6 + 3?",
                           budget=ponder.Budget(tokens=512), width=2, expansions=2)
    result.answer, result.ledger

``ponder.search`` is both the package of algorithms and the function that runs one
(:func:`ponder.api.run`). Everything a search spends is charged to a :class:`Ledger`; a
:class:`Budget` caps it.

Names resolve lazily: ``import ponder`` (and so ``import ponder.search.protocols``) loads only
the search package's table of contents; the models, verifiers and algorithms load when first
used.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"


def _leave_the_checkout_off_the_path() -> None:
    """Take the repository root off ``sys.path`` (``python -m ...`` run in the checkout puts it first).

    Its top-level folders (kernels/, models/, search/, ...) are ponder's subpackages
    (``ponder.kernels``, ...), never top-level modules, and on the path they shadow installed
    distributions of the same name: transformers and diffusers import Hugging Face's
    ``kernels`` when it is installed, and would get ours.
    """
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(root, "kernels", "__init__.py")) and os.path.isfile(os.path.join(root, "pyproject.toml")):
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]


_leave_the_checkout_off_the_path()


def _make_search_callable() -> None:
    """Give ``ponder.search`` the front door's call (its package stays free of front-door imports)."""
    search = importlib.import_module("ponder.search")

    class _Search(type(search)):
        def __call__(self, *args: Any, **kwargs: Any):
            from ponder.api import run

            return run(*args, **kwargs)

        @property
        def run(self):
            from ponder.api import run

            return run

    search.__class__ = _Search


_make_search_callable()

# public name -> (module, attribute)
_LAZY = {
    "ALGORITHMS": ("ponder.search", "ALGORITHMS"),
    "Budget": ("ponder.search.ledger", "Budget"),
    "ConfigError": ("ponder.search.errors", "ConfigError"),
    "Ledger": ("ponder.search.ledger", "Ledger"),
    "Node": ("ponder.search.protocols", "Node"),
    "PonderError": ("ponder.search.errors", "PonderError"),
    "SearchCancelled": ("ponder.search.errors", "SearchCancelled"),
    "SearchInterrupted": ("ponder.search.errors", "SearchInterrupted"),
    "SearchResult": ("ponder.search.result", "SearchResult"),
    "State": ("ponder.search.protocols", "State"),
    "Step": ("ponder.search.protocols", "Step"),
    "VerifierError": ("ponder.search.verify", "VerifierError"),
    "load": ("ponder.api", "load"),
    "run": ("ponder.api", "run"),
    "verifier": ("ponder.verifiers", "verifier"),
    "verifiers": ("ponder.verifiers", None),
    "models": ("ponder.models", None),
    "kernels": ("ponder.kernels", None),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        setattr(sys.modules[__name__], name, value)
        return value
    raise AttributeError(f"module 'ponder' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["search", *sorted(_LAZY)]
