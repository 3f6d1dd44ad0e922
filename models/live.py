"""The live batch: rows whose KV sits in a live cache, ready to decode, and the locks they hold.

A live batch is born from a prefill (:mod:`ponder.models.prefill`) holding one lock per row on
its *anchor* (the deepest trie node holding the row's sequence minus its unfed tail). Rows are
repeated (k children of a parent: one lock per copy), compacted (finished rows dropped) and
retired (their KV handed to the trie, their lock released) by the decode loop. Every lock's life
cycle is owned here: :func:`held` opens a batch and releases every anchor still held when the
block ends, on return, error or interrupt alike; no lock may outlive a call.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch
from transformers import DynamicCache

from ponder.search.protocols import ConfigError


@dataclasses.dataclass
class Live:
    """A batch whose KV is in a live cache, ready to decode.

    Attributes:
        cache: per-layer keys/values [R, H, T, D].
        mask: attention mask [R, T] (None when no row is padded).
        lengths: true sequence length of each row (next position id).        # [R]
        anchors: the locked cache node holding each row's sequence minus its unfed tail.
        logits: next-token logits after each row's last token.              # [R, V]
        width: T, the cache's column count.
        hidden: the prefill's last hidden states [R, N, h] (kept for scoring given tokens).
        n_past: per row, the prefix served from the trie.                      # [R]
        pending: per row, (tokens, cache columns) not yet in the trie.
    """

    cache: DynamicCache
    mask: torch.Tensor | None
    lengths: np.ndarray
    anchors: list[int | None]
    logits: torch.Tensor
    width: int
    hidden: torch.Tensor | None = None
    n_past: np.ndarray | None = None
    pending: list | None = None

    def select(self, rows: np.ndarray) -> None:
        """Keep these rows, in this order (the caller moves the locks of rows kept twice or dropped)."""
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        self.cache.batch_select_indices(index)
        if self.mask is not None:
            self.mask = self.mask[index]
        self.lengths = self.lengths[rows]
        self.anchors = [self.anchors[i] for i in rows]
        self.pending = [self.pending[i] for i in rows]
        self.logits = self.logits[index]

    def repeat(self, prefix, counts: np.ndarray) -> None:
        """Repeat row i counts[i] times; the copies of a row are consecutive, each with its own lock."""
        prefix.lock_copies(self.anchors, counts)
        if (counts == counts[0]).all():
            k = int(counts[0])
            self.cache.batch_repeat_interleave(k)
            if self.mask is not None:
                self.mask = self.mask.repeat_interleave(k, dim=0)
            self.lengths = np.repeat(self.lengths, k)
            self.logits = self.logits.repeat_interleave(k, dim=0)
            self.anchors = [a for a in self.anchors for _ in range(k)]
            self.pending = [p for p in self.pending for _ in range(k)]
        else:
            self.select(np.repeat(np.arange(len(counts)), counts))


@contextlib.contextmanager
def held(prefix, live: Live):
    """Yield ``live``; on leaving, release every anchor it still holds (once: released ones are None)."""
    try:
        yield live
    finally:  # also on errors and interrupts: no lock may outlive the call
        prefix.release(live.anchors)


def children_counts(k, n_states: int) -> np.ndarray:
    """``expand``'s k as one count per parent, checked.                     # [B] int64"""
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        if k < 1:
            raise ConfigError(f"k (children per node) must be an integer >= 1, got {k!r}")
        return np.full(n_states, int(k), dtype=np.int64)
    try:
        counts = [int(c) if isinstance(c, (int, np.integer)) and not isinstance(c, bool) else None for c in k]
    except TypeError:
        raise ConfigError(f"k must be an integer >= 1 or one count per node, got {k!r}") from None
    if len(counts) != n_states or any(c is None or c < 0 for c in counts):
        raise ConfigError(f"k as counts must hold one integer >= 0 per node ({n_states} nodes), got {list(k)!r}")
    return np.asarray(counts, dtype=np.int64).reshape(n_states)
