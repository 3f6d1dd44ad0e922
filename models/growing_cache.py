r"""A decode cache that grows in place: keys and values live in buffers with spare columns.

transformers' ``DynamicCache`` appends a decoded token by concatenation, so step :math:`t` of a
batch of :math:`R` rows copies the whole cache, :math:`2 L R H t D` numbers, into fresh tensors
(and, above the allocator's mmap threshold, fresh pages that fault in). Over :math:`T` steps
that is :math:`O(T^2)` copying, on the same order as the attention reads themselves.

Here every layer keeps one buffer per keys/values of shape ``[R, H, C, D]`` with capacity
:math:`C \ge t`; a step writes its column in place and attention reads the view
``buffer[:, :, :t]``. When a step would overflow, the buffer is reallocated with capacity
:math:`\max(t + n, \lceil 1.5\,C \rceil, C + 64)`, so the copying over :math:`T` steps is
:math:`O(T)` amortised.

``LM(live_cache="dynamic")`` keeps transformers' own cache, the baseline that
``python -m bench kv_sharing`` compares against.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

MIN_GROWTH = 64  # columns


class GrowingLayer(DynamicLayer):
    """One layer's keys and values, ``[R, H, t, D]`` views into buffers ``[R, H, C, D]``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._keys: torch.Tensor | None = None  # [R, H, C, D]
        self._values: torch.Tensor | None = None  # [R, H, C, D]
        self._length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``key_states``/``value_states`` ``[R, H, n, D]``; return all keys and values ``[R, H, t + n, D]``."""
        if not self.is_initialized:
            self.device = key_states.device
            self.is_initialized = True
        n = key_states.shape[-2]
        end = self._length + n
        if self._keys is None or end > self._keys.shape[-2] or self._keys.shape[0] != key_states.shape[0]:
            self._reserve(key_states, value_states, end)
        self._keys[:, :, self._length : end] = key_states
        self._values[:, :, self._length : end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def _reserve(self, key_states: torch.Tensor, value_states: torch.Tensor, needed: int) -> None:
        """Reallocate the buffers with room for at least ``needed`` columns, keeping what they hold."""
        old = 0 if self._keys is None else self._keys.shape[-2]
        capacity = max(needed, -(-3 * old // 2), old + MIN_GROWTH)
        rows, heads, _, dim = key_states.shape
        keys = key_states.new_empty((rows, heads, capacity, dim))
        values = value_states.new_empty((rows, heads, capacity, value_states.shape[-1]))
        if self._length:
            keys[:, :, : self._length] = self._keys[:, :, : self._length]
            values[:, :, : self._length] = self._values[:, :, : self._length]
        self._keys, self._values = keys, values

    def _expose(self) -> None:
        self.keys = self._keys[:, :, : self._length]
        self.values = self._values[:, :, : self._length]

    def get_seq_length(self) -> int:
        return self._length

    def reset(self) -> None:
        self._keys = self._values = None
        self._length = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of tokens to remove, got {tokens_to_remove}")
        self._length = max(0, self._length + tokens_to_remove)
        if self._keys is not None:
            self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._length:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._length:
            self._keys = self._keys[indices]
            self._values = self._values[indices]
            self._expose()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)


class GrowingCache(DynamicCache):
    """A ``DynamicCache`` whose layers are :class:`GrowingLayer`.

    Args:
        layers: per-layer ``(keys, values)`` ``[R, H, P, D]`` to start from (copied in), or None.
        n_layers: the layer count when ``layers`` is None (layers are then created on first use).
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None, *, n_layers: int | None = None):
        n = len(layers) if layers is not None else n_layers
        if n is None:
            raise ValueError("GrowingCache needs the starting layers or n_layers")
        Cache.__init__(self, layers=[GrowingLayer() for _ in range(n)])
        for layer, (keys, values) in zip(self.layers, layers or ()):
            layer.update(keys, values)
