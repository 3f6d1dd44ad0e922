"""The shared-prefix KV cache: a token trie over a pool of KV slots.

Every token whose keys and values were ever computed lives in a token trie
(``ponder.kernels.trie``) whose nodes own KV slots in a :class:`~ponder.models.kv_store.KVStore`
(one slot per token: its keys and values in every layer). The path from the root to a trie node
spells a token sequence; the node's *path slots* hold that sequence's KV, root first. A
generator runs a batch of sequences in three moves:

1. :meth:`PrefixCache.match` finds each sequence's longest cached prefix (length ``n_i``, at
   most all but its last token) and locks its deepest node, the row's *anchor*;
   :meth:`PrefixCache.gather` copies those prefixes out of the store, left-padded to
   ``P = max n_i``;
2. the generator runs only the remaining tokens on a live cache;
3. :meth:`PrefixCache.store_pending` copies the new keys and values from the live cache into fresh
   slots under new trie nodes below each anchor, and moves the anchor's lock down to the new
   deepest node.

A prompt shared by N branches is therefore computed once, and a fully cached sequence costs one
token (the last token is always run: the trie stores KV, not logits).

Locking. A locked node (and so its whole path) cannot be evicted; locks count, so N rows on
one anchor hold N locks (:meth:`PrefixCache.lock_copies`). Anchors live in a caller's list that
this class edits in place: :meth:`store_pending` swaps an entry for the new deepest node, and
:meth:`release` unlocks every entry still held and sets it to None, so a second release is a
no-op. Callers release through :func:`ponder.models.live.held`: no lock may outlive a call.

Budget. The store holds at most ``max_tokens`` slots. When it is full, the trie evicts
least-recently-used unlocked leaves and their slots return to the store; evicted prefixes are
recomputed transparently later. When the budget cannot hold a whole batch (the rest of the trie
locked), rows are stored one by one while they fit; a row that does not fit keeps its anchor and
its pending tokens: the work is done, just not kept.

With ``mode="none"`` nothing is matched or stored (the recompute-everything baseline): anchors
are None, pasts are empty, and locks are no-ops.
"""

from __future__ import annotations

import numpy as np
import torch

from ponder.models.kv_store import KVStore
from ponder.search.protocols import check_choice

CACHE_MODES = ("trie", "none")
TRIE_IMPLS = ("compiled", "python")


def _make_trie(impl: str):
    check_choice("trie implementation", impl, TRIE_IMPLS)
    if impl == "compiled":
        from ponder.kernels.trie import TokenTrie
    else:
        from ponder.kernels.trie_py import TokenTrie
    return TokenTrie()


class PrefixCache:
    """A token trie whose nodes own KV slots in a :class:`~ponder.models.kv_store.KVStore`.

    Args:
        n_layers, n_kv_heads, head_dim: the model's KV geometry.
        max_tokens: the store's token budget (the trie evicts beyond it).
        dtype: dtype of the stored KV (the model's).
        mode: "trie" shares prefixes; "none" caches nothing (every prefix is recomputed).
        trie: "compiled" (Cython) or "python" (the reference twin).

    Attributes:
        store: the KV slots.
        trie: the token trie (node ids, locks, LRU eviction).
    """

    def __init__(self, n_layers: int, n_kv_heads: int, head_dim: int, *, max_tokens: int, dtype=torch.float32,
                 mode: str = "trie", trie: str = "compiled"):
        self.mode = check_choice("cache mode", mode, CACHE_MODES)
        self.store = KVStore(n_layers, n_kv_heads, head_dim, max_tokens=max_tokens, dtype=dtype)
        self.trie = _make_trie(trie)

    def __repr__(self) -> str:
        return f"PrefixCache(mode={self.mode!r}, cached_tokens={self.cached_tokens}, max_tokens={self.store.max_tokens})"

    @property
    def enabled(self) -> bool:
        return self.mode == "trie"

    @property
    def n_layers(self) -> int:
        return self.store.geometry[0]

    @property
    def cached_tokens(self) -> int:
        """Tokens whose KV the trie holds."""
        return int(self.trie.total_tokens)

    @property
    def evictable(self) -> int:
        """Tokens held by unlocked nodes (what eviction could free)."""
        return int(self.trie.evictable_tokens)

    def clear(self) -> None:
        """Evict every unlocked token and free its slot."""
        self.store.free(self.trie.evict(self.trie.total_tokens))

    # ------------------------------------------------------------------ a call's life cycle

    def match(self, seqs, score_from: list[int] | None = None) -> tuple[list, list[np.ndarray], np.ndarray]:
        """Lock the longest cached prefix of every sequence (at most all but its last token).

        Args:
            seqs: token sequences, one per row.
            score_from: per row, a position the prefix must stop at (its logits are needed).

        Returns:
            ``(anchors, past_slots, n_past)``: per row the locked deepest node (None when
            disabled), the slots of its prefix ``[n_i]`` int64, and ``n_past`` ``[B]`` int64 the
            prefix lengths. The caller owns the locks: :meth:`release` the anchors.
        """
        anchors, past_slots = [], []
        n_past = np.zeros(len(seqs), dtype=np.int64)
        for i, seq in enumerate(seqs):
            limit = len(seq) - 1 if score_from is None else min(len(seq) - 1, score_from[i])
            if self.enabled:
                node, n = self.trie.match_prefix(np.asarray(seq[:limit], dtype=np.int64))
                self.trie.lock(node)
                anchors.append(node)
                past_slots.append(self.trie.path_slots(node))
                n_past[i] = n
            else:
                anchors.append(None)
                past_slots.append(np.zeros(0, dtype=np.int64))
        return anchors, past_slots, n_past

    def gather(self, past_slots: list[np.ndarray]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]] | None, torch.Tensor]:
        """The matched pasts as a left-padded batch.

        Returns:
            per-layer (keys, values) ``[B, H, P, D]`` (None when every past is empty) and the
            padding mask ``[B, P]`` (1 = real).
        """
        if max((len(s) for s in past_slots), default=0):
            return self.store.gather(past_slots)
        return None, torch.zeros((len(past_slots), 0), dtype=torch.long)

    def lock_copies(self, anchors: list, counts: np.ndarray) -> None:
        """Lock ``anchors[i]`` ``counts[i] - 1`` more times (each copy of a row holds its own lock)."""
        if self.enabled:
            for node, c in zip(anchors, counts):
                for _ in range(int(c) - 1):
                    self.trie.lock(node)

    def release(self, anchors: list) -> None:
        """Unlock every anchor still held and mark it released (a second call is a no-op)."""
        if self.enabled:
            for i, node in enumerate(anchors):
                if node is not None:
                    self.trie.unlock(node)
                    anchors[i] = None

    def store_pending(self, layers: list[tuple[torch.Tensor, torch.Tensor]], anchors: list, rows: list[int], pending: list) -> None:
        """Move the KV of ``pending[i]`` (tokens, cache columns of row ``rows[i]``) into the trie.

        Args:
            layers: per-layer (keys, values) of the live cache, ``[R, H, T, D]``.
            anchors: per entry, its locked anchor; edited in place (see below).
            rows: per entry, its row in the live cache.
            pending: per entry, ``(tokens, cols)``: the tokens not yet in the trie and their
                cache columns ``[m]`` int64; edited in place (stored entries become empty).

        Each entry's tokens go under its locked anchor, and ``anchors[i]`` becomes the new
        deepest node, locked in place of the old (in place, so a caller's release sees the
        current locks). When the budget cannot hold every entry (the rest of the trie locked),
        entries are stored one by one while they fit; one that does not fit keeps its anchor and
        its pending tokens: the work is done, just not kept.
        """
        todo = [i for i, (tokens, _) in enumerate(pending) if tokens]
        need = sum(len(pending[i][0]) for i in todo)
        if not todo:
            return
        groups = [todo] if self.store.can_hold(need, self.trie.evictable_tokens) else [[i] for i in todo]
        for group in groups:
            counts = [len(pending[i][0]) for i in group]
            if not self.store.can_hold(sum(counts), self.trie.evictable_tokens):
                continue
            slots = self.store.alloc(sum(counts), self._evict)  # [M]
            row_idx = np.repeat(np.asarray([rows[i] for i in group], dtype=np.int64), counts)  # [M]
            cols = np.concatenate([pending[i][1] for i in group])  # [M]
            self.store.write(slots, layers, row_idx, cols)
            offset = 0
            for i, n in zip(group, counts):
                child, dup = self.trie.insert(anchors[i], np.asarray(pending[i][0], dtype=np.int64), slots[offset : offset + n])
                self.store.free(dup)
                self.trie.lock(child)
                self.trie.unlock(anchors[i])
                anchors[i] = child
                pending[i] = ((), np.zeros(0, np.int64))
                offset += n

    def _evict(self, n: int) -> np.ndarray:
        """Evict at least ``n`` unlocked tokens, LRU leaves first; return their slots."""
        return self.trie.evict(n)
