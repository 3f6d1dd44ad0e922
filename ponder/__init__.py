"""ponder: inference-time search and steering.

The public API, in one place::

    import ponder

    lm = ponder.load("smollm2")                  # a generator with a shared-prefix KV cache
    root = lm.root("What is 7 * 6?")
    children = lm.expand([root], 4, step=ponder.Step(max_tokens=32))

Everything a search spends is charged to a :class:`Ledger`; a :class:`Budget` caps it.
"""

from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import ConfigError, Node, PonderError, SearchInterrupted, Step

__version__ = "0.1.0"


def load(name_or_path: str = "smollm2", **kwargs):
    """Load a generator by name ("smollm2") or from a local Hugging Face directory.

    See :func:`ponder.models.load` for the options.
    """
    from ponder.models import load as _load

    return _load(name_or_path, **kwargs)


__all__ = ["Budget", "ConfigError", "Ledger", "Node", "PonderError", "SearchInterrupted", "Step", "load"]
