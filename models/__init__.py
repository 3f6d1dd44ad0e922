"""Generators: language models over a shared-prefix KV cache, and tools as a generator
(:mod:`ponder.models.tools`, with the Game of 24 environment in :mod:`ponder.models.game24`);
diffusers pipelines as particle generators (:mod:`ponder.models.diffusion`); simulators arrive
with their algorithm family.

Names resolve lazily, so ``import ponder.models.tools`` or ``ponder.models.game24`` (pure Python)
does not import torch; ``ponder.models.LM`` and the other LM names load it on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module of ponder.models that defines it
_LAZY = {
    "CacheFullError": "kv_store",
    "KVStore": "kv_store",
    "LM": "lm",
    "ContextLengthError": "lm",
    "MODELS": "loading",
    "ModelNotAvailable": "loading",
    "load": "loading",
    "smollm2_dir": "loading",
    "smollm2_gguf": "loading",
    "Sampling": "sampling",
    "tiny_llama": "tiny",
    "tiny_unet": "tiny",
    "tiny_text_to_image": "tiny",
    "tiny_dit": "tiny",
    "Diffusion": "diffusion",
    "MissingVAE": "diffusion",
    "tiny_tokenizer": "tiny",
    "Tools": "tools",
    "ToolGenerator": "tools",
    "LMProposer": "tools",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"ponder.models.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ponder.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
