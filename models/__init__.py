"""Generators: language models over a shared-prefix KV cache (diffusion pipelines, simulators and
tool executors arrive with their algorithm families)."""

from ponder.models.kv_store import CacheFullError, KVStore
from ponder.models.lm import LM, ContextLengthError
from ponder.models.loading import MODELS, ModelNotAvailable, load, smollm2_dir, smollm2_gguf
from ponder.models.sampling import Sampling
from ponder.models.tiny import tiny_llama, tiny_tokenizer

__all__ = [
    "LM",
    "MODELS",
    "CacheFullError",
    "ContextLengthError",
    "KVStore",
    "ModelNotAvailable",
    "Sampling",
    "load",
    "smollm2_dir",
    "smollm2_gguf",
    "tiny_llama",
    "tiny_tokenizer",
]
