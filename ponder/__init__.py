"""ponder: inference-time search and steering.

The public API, in one place::

    import ponder

    lm = ponder.load("smollm2")                  # a generator with a shared-prefix KV cache
    result = ponder.search("beam", lm, "arithmetic", "What is 7 * 6 + 3?",
                           budget=ponder.Budget(tokens=512), width=2, expansions=2)
    result.answer, result.ledger

``ponder.search`` is both the package of algorithms and the function that runs one.

Everything a search spends is charged to a :class:`Ledger`; a :class:`Budget` caps it.
"""

from ponder import search, verifiers
from ponder.search import ALGORITHMS, SearchResult
from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import ConfigError, Node, PonderError, SearchInterrupted, Step
from ponder.verifiers import VerifierError, verifier

__version__ = "0.1.0"


def load(name_or_path: str = "smollm2", **kwargs):
    """Load a generator by name ("smollm2") or from a local Hugging Face directory.

    See :func:`ponder.models.load` for the options.
    """
    from ponder.models import load as _load

    return _load(name_or_path, **kwargs)


__all__ = [
    "ALGORITHMS",
    "Budget",
    "ConfigError",
    "Ledger",
    "Node",
    "PonderError",
    "SearchInterrupted",
    "SearchResult",
    "Step",
    "VerifierError",
    "load",
    "search",
    "verifier",
    "verifiers",
]
