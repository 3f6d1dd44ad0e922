"""transformers version shims, in one place: what differs between releases or model families.

- the forward's cache argument was renamed during 5.x (``past_key_values`` -> ``cache``);
- the decoder's config sits under ``get_text_config(decoder=True)`` in multimodal models;
- sliding-window layers are declared by ``sliding_window`` or by ``layer_types``;
- a ``DynamicCache`` holds ``layers[i].keys/.values`` (there is no legacy tuple format).
"""

from __future__ import annotations

import inspect

import torch


def text_config(model):
    """The decoder's config (multimodal models nest it)."""
    config = model.config
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def cache_arg_name(base) -> str:
    """The keyword under which ``base.forward`` takes its KV cache."""
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def has_sliding_window(config) -> bool:
    """True when any layer attends through a sliding window."""
    return getattr(config, "sliding_window", None) is not None or any(
        "sliding" in str(t) for t in getattr(config, "layer_types", None) or ()
    )


def cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of a live cache.                        # L x ([R, H, T, D], [R, H, T, D])"""
    return [(layer.keys, layer.values) for layer in cache.layers]
