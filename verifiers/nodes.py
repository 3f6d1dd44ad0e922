"""Verifiers by name, and scoring nodes with them.

:func:`as_verifier` turns what a user passes (a verifier or a registered name) into a verifier;
:func:`score_nodes` and :func:`score_node_tokens` are
:func:`ponder.search.verify.score_states` / ``score_state_tokens`` (the per-state cache, the
ledger charges, the checked call) after that lookup.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ponder.search.protocols import ConfigError, State
from ponder.search.protocols import Verifier as VerifierProtocol
from ponder.search.verify import name_of, score_state_tokens, score_states

__all__ = [
    "as_verifier",
    "score_nodes",
    "score_node_tokens",
]


def as_verifier(verifier: Any) -> Any:
    """``verifier`` itself if it follows the protocol, the registered verifier if it is a name.

    Raises:
        ConfigError: ``verifier`` is neither (e.g. a bare function: wrap it with :func:`~ponder.verifiers.function.verifier`).
    """
    if isinstance(verifier, str):
        from ponder.verifiers.registry import get

        return get(verifier)
    if isinstance(verifier, type) or not isinstance(verifier, VerifierProtocol):
        hint = " (wrap a function with ponder.verifier first)" if callable(verifier) else ""
        raise ConfigError(f"expected a verifier (with name, kind and score) or a registered name, got {verifier!r}{hint}")
    name_of(verifier)
    return verifier


def score_nodes(verifier: Any, nodes: Sequence[State]) -> np.ndarray:
    """:func:`ponder.search.verify.score_states` with ``verifier`` resolved by :func:`as_verifier`.   # [B]"""
    return score_states(as_verifier(verifier), nodes)


def score_node_tokens(verifier: Any, nodes: Sequence[State]) -> np.ndarray:
    """:func:`ponder.search.verify.score_state_tokens` with ``verifier`` resolved by :func:`as_verifier`.   # [B, V]"""
    return score_state_tokens(as_verifier(verifier), nodes)
