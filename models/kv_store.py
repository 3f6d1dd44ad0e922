"""A pool of KV slots indexed by a token trie.

Every token the trie holds owns one *slot*: a row of keys and values in every layer. The pool is
one tensor ::

    kv  # [L, 2, S, H_kv, D]   (layer, key/value, slot, kv head, head dim)

that grows by doubling up to ``max_tokens`` slots. When no slot is free at the cap, the trie
evicts least-recently-used unlocked leaves and their slots return to the free list.

``gather`` builds a left-padded past for a ragged batch; ``write`` copies freshly computed KV
into slots. Both move only the tokens named, in one indexed copy per layer-stacked tensor.
"""

from __future__ import annotations

import numpy as np
import torch

from ponder.search.protocols import PonderError


class CacheFullError(PonderError, RuntimeError):
    """The KV budget cannot hold what one batch needs with every other token locked."""


class KVStore:
    """Slots of keys and values for ``n_layers`` layers.

    Args:
        n_layers, n_kv_heads, head_dim: the model's KV geometry.
        max_tokens: the most slots the pool may hold (the cache's token budget).
        dtype: dtype of the stored KV (the model's).
        initial: slots allocated up front (grows by doubling).
    """

    def __init__(self, n_layers: int, n_kv_heads: int, head_dim: int, *, max_tokens: int, dtype=torch.float32, initial: int = 1024):
        if max_tokens < 1:
            raise ValueError(f"max_tokens (the KV cache budget) must be >= 1, got {max_tokens}")
        self.max_tokens = int(max_tokens)
        self.geometry = (n_layers, n_kv_heads, head_dim)
        capacity = min(self.max_tokens, max(1, initial))
        self.kv = torch.zeros((n_layers, 2, capacity, n_kv_heads, head_dim), dtype=dtype)  # [L, 2, S, H, D]
        self._free = list(range(capacity - 1, -1, -1))  # a stack: pop() gives the lowest slot first

    @property
    def capacity(self) -> int:
        return self.kv.shape[2]

    @property
    def n_free(self) -> int:
        return len(self._free)

    @property
    def bytes_per_token(self) -> int:
        n_layers, n_heads, head_dim = self.geometry
        return n_layers * 2 * n_heads * head_dim * self.kv.element_size()

    def _grow(self, needed: int) -> None:
        old = self.capacity
        new = min(self.max_tokens, max(old * 2, old + needed))
        if new <= old:
            return
        grown = torch.zeros((*self.kv.shape[:2], new, *self.kv.shape[3:]), dtype=self.kv.dtype)
        grown[:, :, :old] = self.kv
        self.kv = grown
        self._free.extend(range(new - 1, old - 1, -1))
        self._free.sort(reverse=True)

    def can_hold(self, n: int, evictable: int) -> bool:
        """Whether ``n`` new tokens fit: free slots, room to grow, and ``evictable`` tokens."""
        return n <= self.n_free + (self.max_tokens - self.capacity) + evictable

    def alloc(self, n: int, evict) -> np.ndarray:
        """``n`` free slots; grows the pool, then calls ``evict(k) -> freed slots`` when full.

        Check :meth:`can_hold` first: a request that cannot fit evicts before it fails.
        """
        if n > self.n_free:
            self._grow(n - self.n_free)
        if n > self.n_free:
            self.free(evict(n - self.n_free))
        if n > self.n_free:
            raise CacheFullError(
                f"KV cache budget of {self.max_tokens} tokens cannot hold {n} new tokens: only {self.n_free} free "
                "after evicting every unlocked node; raise max_cache_tokens or lower the batch size"
            )
        return np.array([self._free.pop() for _ in range(n)], dtype=np.int64)

    def free(self, slots) -> None:
        self._free.extend(int(s) for s in slots)

    def gather(self, slot_rows: list[np.ndarray]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """The pasts of a ragged batch, left-padded to the longest.

        Args:
            slot_rows: for each row, the slots of its cached prefix (root to node).

        Returns:
            per-layer (keys, values), each [B, H, P, D], and the padding mask [B, P] (1 = real).
        """
        n_rows = len(slot_rows)
        width = max((len(r) for r in slot_rows), default=0)
        index = np.zeros((n_rows, width), dtype=np.int64)  # [B, P]; pads point at slot 0 and are masked
        mask = np.zeros((n_rows, width), dtype=np.int64)
        for i, row in enumerate(slot_rows):
            if len(row):
                index[i, width - len(row):] = row
                mask[i, width - len(row):] = 1
        n_layers, n_heads, head_dim = self.geometry
        flat = torch.from_numpy(index.reshape(-1))
        picked = self.kv.index_select(2, flat).view(n_layers, 2, n_rows, width, n_heads, head_dim)
        picked = picked.permute(0, 1, 2, 4, 3, 5)  # [L, 2, B, H, P, D]
        return [(picked[layer, 0], picked[layer, 1]) for layer in range(n_layers)], torch.from_numpy(mask)

    def write(self, slots: np.ndarray, layers: list[tuple[torch.Tensor, torch.Tensor]], rows: np.ndarray, cols: np.ndarray) -> None:
        """Copy the KV at (rows[i], cols[i]) of a live cache into ``slots[i]``.

        Args:
            slots: destination slots.                                      # [M]
            layers: per-layer (keys, values) of a live cache, [B, H, T, D].
            rows, cols: batch row and sequence column of each token.      # [M], [M]
        """
        if len(slots) == 0:
            return
        dst = torch.from_numpy(np.asarray(slots, dtype=np.int64))
        r = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        c = torch.from_numpy(np.asarray(cols, dtype=np.int64))
        for layer, (keys, values) in enumerate(layers):
            self.kv[layer, 0].index_copy_(0, dst, keys[r, :, c])  # [M, H, D]
            self.kv[layer, 1].index_copy_(0, dst, values[r, :, c])
