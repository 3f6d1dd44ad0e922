"""Token trie (radix tree over token ids, one KV slot per token): the pure-Python reference twin.

This module defines the semantics; ``ponder.kernels.trie`` (Cython) implements the same API, the
same node-id allocation and the same eviction order, and property tests check that the two agree.

A node's *path* is the token sequence on the edges from the root to it; each edge holds a run of
tokens and, for each token, the KV-cache slot that stores its keys and values. Every node has an
LRU time: each ``match_prefix``/``insert`` advances a clock ``t`` and stamps ``t`` on every node of
the path it returns. ``lock_ref(v)`` counts the locks taken on ``v`` or on its descendants, so
``lock_ref(parent) >= lock_ref(child)`` always holds. Eviction removes unlocked leaves in order of
``(last_access, node id)``; a parent whose last child goes becomes a leaf candidate itself.

Node ids: the root is 0; a new node takes the most recently freed id (a LIFO free list), else the
next unused one. A split of an edge at offset ``k`` keeps the id of the lower node (so ids held by
callers keep their path) and gives a new id to the upper part, which inherits the lower node's
``lock_ref`` and LRU time.
"""

from __future__ import annotations

import heapq
import operator
from dataclasses import dataclass, field

import numpy as np

TOKEN_LIMIT = 2**31  # tokens must lie in [0, TOKEN_LIMIT) (the compiled trie keys children by int32)


@dataclass(slots=True)
class _Node:
    parent: int
    tokens: list[int]  # edge tokens  # [L]
    slots: list[int]  # their KV slots  # [L]
    depth: int  # tokens on the path root -> node
    last_access: int
    lock_ref: int = 0
    children: dict[int, int] = field(default_factory=dict)  # first edge token -> child id


def _as_int_list(values, name: str) -> list[int]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False).tolist()


def _check_tokens(tokens: list[int]) -> None:
    if tokens and not (0 <= min(tokens) and max(tokens) < TOKEN_LIMIT):
        raise ValueError(f"tokens must lie in [0, 2**31), got min {min(tokens)}, max {max(tokens)}")


def _common_prefix_len(edge: list[int], tokens: list[int], start: int) -> int:
    n = 0
    for a, b in zip(edge, tokens[start : start + len(edge)]):
        if a != b:
            break
        n += 1
    return n


class TokenTrie:
    """Radix tree over token ids mapping every path token to a KV slot (see the module docstring).

    Attributes:
        root: id of the root (the empty path); never evicted.
    """

    def __init__(self) -> None:
        self.root = 0
        self._nodes: list[_Node | None] = [_Node(parent=-1, tokens=[], slots=[], depth=0, last_access=0)]
        self._free: list[int] = []
        self._clock = 0

    # ----------------------------------------------------------------------------------- queries
    def is_valid(self, node) -> bool:
        """Whether ``node`` is the id of a live node (False for evicted ids and non-integers)."""
        try:
            i = operator.index(node)
        except TypeError:
            return False
        return 0 <= i < len(self._nodes) and self._nodes[i] is not None

    def _node(self, node) -> _Node:
        if not self.is_valid(node):
            raise ValueError(f"node {node!r} is not a live node of this trie")
        return self._nodes[node]

    def node_depth(self, node: int) -> int:
        """Number of tokens on the path root -> ``node``."""
        return self._node(node).depth

    def parent(self, node: int) -> int:
        """Id of ``node``'s parent; -1 for the root."""
        return self._node(node).parent

    def path_tokens(self, node: int) -> np.ndarray:
        """Tokens of the path root -> ``node``, int64 ``[node_depth(node)]``."""
        return np.array(self._path(node, "tokens"), dtype=np.int64)  # [depth]

    def path_slots(self, node: int) -> np.ndarray:
        """KV slots of the path root -> ``node``, int64 ``[node_depth(node)]``."""
        return np.array(self._path(node, "slots"), dtype=np.int64)  # [depth]

    def _path(self, node: int, attr: str) -> list[int]:
        v = self._node(node)
        edges = []
        while v.parent >= 0:
            edges.append(getattr(v, attr))
            v = self._nodes[v.parent]
        return [x for edge in reversed(edges) for x in edge]

    @property
    def total_tokens(self) -> int:
        """Tokens (= KV slots) held by the trie."""
        return sum(len(v.tokens) for v in self._nodes if v is not None)

    @property
    def evictable_tokens(self) -> int:
        """Tokens held by nodes with ``lock_ref == 0``."""
        return sum(len(v.tokens) for v in self._nodes if v is not None and v.lock_ref == 0)

    @property
    def n_nodes(self) -> int:
        """Live nodes, the root included."""
        return len(self._nodes) - len(self._free)

    # ---------------------------------------------------------------------------------- mutation
    def match_prefix(self, tokens) -> tuple[int, int]:
        """Finds the longest prefix ``tokens[:n]`` that is a path of the trie.

        If the match ends inside an edge, the edge is split there, so the returned node's path is
        exactly ``tokens[:n]``. Stamps the clock on every node of that path.

        Args:
            tokens: 1-D integer sequence or array ``[T]``, values in ``[0, 2**31)``.

        Returns:
            ``(node, n)``: the node whose path is ``tokens[:n]``, and ``n``.
        """
        tokens = _as_int_list(tokens, "tokens")
        _check_tokens(tokens)
        self._clock += 1
        node, n = self._walk(self.root, tokens)
        self._touch(node)
        return node, n

    def insert(self, parent: int, tokens, slots) -> tuple[int, np.ndarray]:
        """Adds ``tokens`` with their KV ``slots`` below ``parent``.

        The part already present below ``parent`` (a prefix ``tokens[:m]``) is shared, not stored
        again; the rest becomes a new leaf. Stamps the clock on the path of the returned node.

        Args:
            parent: a live node.
            tokens: 1-D integers ``[T]`` in ``[0, 2**31)``.
            slots: 1-D integers ``[T]``: the KV slot of each token.

        Returns:
            ``(node, dup)``: the node whose path is ``path(parent) + tokens``, and ``slots[:m]``
            (int64 ``[m]``), the slots not stored because their tokens were already present: the
            caller frees them.
        """
        self._node(parent)
        tokens, slots = _as_int_list(tokens, "tokens"), _as_int_list(slots, "slots")
        if len(tokens) != len(slots):
            raise ValueError(f"tokens and slots differ in length: {len(tokens)} != {len(slots)}")
        _check_tokens(tokens)
        self._clock += 1
        node, n = self._walk(parent, tokens)
        if n < len(tokens):
            leaf = self._new_node(node, tokens[n:], slots[n:], self._nodes[node].depth + len(tokens) - n, self._clock)
            self._nodes[node].children[tokens[n]] = leaf
            node = leaf
        self._touch(node)
        return node, np.array(slots[:n], dtype=np.int64)

    def _walk(self, node: int, tokens: list[int]) -> tuple[int, int]:
        """Follows ``tokens`` down from ``node``; splits an edge where the match ends inside it."""
        i = 0
        while i < len(tokens) and tokens[i] in self._nodes[node].children:
            child = self._nodes[node].children[tokens[i]]
            k = _common_prefix_len(self._nodes[child].tokens, tokens, i)
            i += k
            if k < len(self._nodes[child].tokens):
                return self._split(child, k), i
            node = child
        return node, i

    def _split(self, node: int, k: int) -> int:
        """Cuts the edge into ``node`` after ``k`` tokens; ``node`` keeps the lower part and its id."""
        v = self._nodes[node]
        upper = self._new_node(v.parent, v.tokens[:k], v.slots[:k], v.depth - len(v.tokens) + k, v.last_access)
        u = self._nodes[upper]
        u.lock_ref = v.lock_ref
        self._nodes[v.parent].children[v.tokens[0]] = upper
        v.parent, v.tokens, v.slots = upper, v.tokens[k:], v.slots[k:]
        u.children[v.tokens[0]] = node
        return upper

    def _new_node(self, parent: int, tokens: list[int], slots: list[int], depth: int, time: int) -> int:
        v = _Node(parent=parent, tokens=tokens, slots=slots, depth=depth, last_access=time)
        if self._free:
            i = self._free.pop()
            self._nodes[i] = v
        else:
            i = len(self._nodes)
            self._nodes.append(v)
        return i

    def _touch(self, node: int) -> None:
        while node >= 0:
            self._nodes[node].last_access = self._clock
            node = self._nodes[node].parent

    def lock(self, node: int) -> None:
        """``lock_ref += 1`` on ``node`` and its ancestors: none of them can be evicted until unlocked."""
        self._node(node)
        while node >= 0:
            self._nodes[node].lock_ref += 1
            node = self._nodes[node].parent

    def unlock(self, node: int) -> None:
        """``lock_ref -= 1`` on ``node`` and its ancestors; ValueError if ``node`` is not locked."""
        if self._node(node).lock_ref <= 0:
            raise ValueError(f"unlock of node {node} whose lock_ref is already 0")
        while node >= 0:
            self._nodes[node].lock_ref -= 1
            node = self._nodes[node].parent

    def evict(self, n_tokens: int) -> np.ndarray:
        """Frees at least ``n_tokens`` KV slots if it can, removing whole unlocked leaves.

        Leaves go in order of ``(last_access, id)``; a parent left without children becomes a leaf
        candidate itself. Stops early when no unlocked leaf remains (the root is never removed).

        Returns:
            The freed slots, int64, leaf by leaf in eviction order.
        """
        try:
            want = operator.index(n_tokens)
        except TypeError:
            want = -1
        if want < 0:
            raise ValueError(f"n_tokens must be an int >= 0, got {n_tokens!r}")
        heap = [(v.last_access, i) for i, v in enumerate(self._nodes) if self._evictable(i)]
        heapq.heapify(heap)
        freed: list[int] = []
        while len(freed) < want and heap:
            _, i = heapq.heappop(heap)
            v = self._nodes[i]
            freed += v.slots
            del self._nodes[v.parent].children[v.tokens[0]]
            self._nodes[i] = None
            self._free.append(i)
            if self._evictable(v.parent):
                heapq.heappush(heap, (self._nodes[v.parent].last_access, v.parent))
        return np.array(freed, dtype=np.int64)

    def _evictable(self, i: int) -> bool:
        v = self._nodes[i]
        return i != self.root and v is not None and not v.children and v.lock_ref == 0
