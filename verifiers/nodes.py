"""Scoring nodes, with the per-node cache.

Searches never call ``verifier.score`` directly. They call :func:`score_nodes`, which

1. reads ``node.scores[verifier.name]`` where present, so no node is scored twice,
2. scores the missing nodes in **one** batched call through
   :func:`~ponder.verifiers.base.run_verifier`,
3. charges ``verifier_calls=1, items_scored=len(missing)`` to the active ledgers,
4. stores the new scores back on the nodes.

When that call fails, the :class:`~ponder.verifiers.base.VerifierError` is re-pointed to the
failing node's position in the caller's list and its ``Node.id``, and nothing from the failed
batch is cached. Token scores (:func:`score_node_tokens`) are charged the same way but not cached.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ponder.search.ledger import charge
from ponder.search.protocols import ConfigError, Node
from ponder.search.protocols import Verifier as VerifierProtocol
from ponder.verifiers.base import VerifierError, _name_of, run_token_verifier, run_verifier

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
    _name_of(verifier)
    return verifier


def _unique(nodes: Iterable[Node]) -> tuple[list[Node], list[int]]:
    """Distinct nodes (by identity) in first-seen order, and each one's first position."""
    seen: dict[int, int] = {}
    distinct, first = [], []
    for i, node in enumerate(nodes):
        if id(node) not in seen:
            seen[id(node)] = len(distinct)
            distinct.append(node)
            first.append(i)
    return distinct, first


def score_nodes(verifier: Any, nodes: Sequence[Node]) -> np.ndarray:
    """Scores of ``nodes``, cached per node under ``node.scores[verifier.name]``.

    Nodes already holding a score for this verifier's name are not scored again; the others
    (each distinct node once, even if listed twice) are scored in one batched call with
    ``node.prompt`` as the prompt and ``node.text`` (the generated text after the prompt, whole
    or partial) as the candidate. That call charges ``verifier_calls=1`` and
    ``items_scored=len(missing)`` to the active ledgers, also when it fails; nothing is charged
    when every node was cached.

    The cache is keyed by name: give verifiers that score differently different names.

    Args:
        verifier: a verifier, or a registered name (see :func:`ponder.verifiers.get`).
        nodes: the candidates.                                                # [B]

    Returns:
        Their scores, float64.                                                # [B]

    Raises:
        VerifierError: the verifier failed; ``index`` is the failing node's position in ``nodes``
            and ``node_id`` its id. No score of the failed batch is cached.
    """
    verifier = as_verifier(verifier)
    key = _name_of(verifier)
    nodes = list(nodes)
    out = np.empty(len(nodes), dtype=np.float64)  # [B]
    missing, positions = [], []
    for i, node in enumerate(nodes):
        cached = node.scores.get(key)
        if cached is not None:
            out[i] = float(cached)
        else:
            missing.append(node)
            positions.append(i)
    if not missing:
        return out

    todo, first = _unique(missing)
    charge(verifier_calls=1, items_scored=len(todo))
    try:
        fresh = run_verifier(verifier, [node.prompt for node in todo], [node.text for node in todo])  # [M]
    except VerifierError as exc:
        _locate(exc, todo, [positions[j] for j in first], len(nodes))
        raise
    for node, value in zip(todo, fresh):
        node.scores[key] = float(value)
    for node, i in zip(missing, positions):
        out[i] = node.scores[key]
    return out


def score_node_tokens(verifier: Any, nodes: Sequence[Node]) -> np.ndarray:
    """Token scores of a token verifier for ``nodes`` (not cached: one vector per node is large).

    Charges ``verifier_calls=1, items_scored=len(nodes)``.

    Returns:
        ``out[b, v]``: the score of ``nodes[b]`` extended by token ``v``.     # [B, V]
    """
    verifier = as_verifier(verifier)
    nodes = list(nodes)
    if not nodes:
        return np.zeros((0, 0))
    charge(verifier_calls=1, items_scored=len(nodes))
    try:
        return run_token_verifier(verifier, [node.prompt for node in nodes], [node.text for node in nodes])
    except VerifierError as exc:
        _locate(exc, nodes, list(range(len(nodes))), len(nodes))
        raise


def _locate(exc: VerifierError, batch: Sequence[Node], positions: Sequence[int], total: int) -> None:
    """Re-point ``exc`` from its index in ``batch`` to the position and id in the caller's list.

    A whole-batch failure keeps the size of the call actually made (the missing nodes only).
    """
    if exc.index is not None and 0 <= exc.index < len(batch):
        exc.node_id = batch[exc.index].id
        exc.index = positions[exc.index]
        exc.batch_size = total
