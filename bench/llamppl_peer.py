"""The peer llamppl (genlm/llamppl) on a lipogram: SMC over SmolLM2-135M-Instruct with every token
that writes the banned letter masked out, for ``bench/smc_lm.py`` to compare with ponder's SMC.

Installed by hand (both are pure Python; everything else they import at run time, torch,
transformers, numpy, numba and scipy, is already in the venv, so nothing else is needed):

    .venv/bin/pip install --no-deps llamppl==0.2.3 genlm-backend==0.3.1

``--no-deps`` keeps pip away from torch and from llamppl's unused requirements (pre-commit,
ipykernel, protobuf; genlm-backend's sentencepiece and bitsandbytes). genlm-backend 0.3.1 is the
release that supports transformers 5. Its vLLM, SGLang and MLX backends import those libraries
inside ``try`` blocks, so none of them is needed for the Hugging Face backend used here.

Backend settings: llamppl's ``CachedCausalLM`` over genlm-backend's ``AsyncTransformer`` (the
"hf" backend, llamppl's documented CPU path), on the CPU, fp32 weights, the checkpoint loaded
once per directory and kept in a module-level cache. ``AsyncTransformer`` auto-batches the
particles' concurrent next-token queries into one padded forward; its ``batch_size`` is set to
the number of particles for each run (a full step fires at once; a step with fewer live
particles waits the ``timeout``, the library's default 0.02 s), and the prompt's keys and values
are cached with ``lm.cache_kv`` before the run. genlm-backend keeps keys and values only at the
nodes given to ``cache_kv``: each later query re-runs every token generated since the prompt
(its logits are cached per token prefix, its keys and values are not). Caches are cleared at the
start of every run, so a repeated run does not reuse the last one's logits.

The llamppl program is the lipogram of llamppl's README: each step observes that the next token
is not in the banned set (``observe(context.mask_dist(banned), False)``, which multiplies the
weight by the LM's mass on the allowed tokens and restricts the next-token distribution to
them), then samples the next token from the LM (``sample(context.next_token())``). The banned
set is every token whose decoded text contains the letter in either case, built as
``ponder.verifiers.constraints.Lipogram.allowed`` builds its mask: special tokens decode to ""
and stay allowed, EOS among them. A particle finishes at EOS or after ``max_tokens`` tokens.
Inference is ``llamppl.smc_standard`` (multinomial resampling when the ESS falls under n/2).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["available", "run_lipogram", "load"]

#: The genlm-backend auto-batching wait (seconds) after the last query before a partial batch
#: is run; 0.02 is the library's default.
BATCH_TIMEOUT = 0.02

_LMS: dict[str, Any] = {}  # model directory -> llamppl CachedCausalLM
_BANNED: dict[tuple[int, str], set[int]] = {}  # (id of the CachedCausalLM, letter) -> banned token ids
_MODEL_CLS = None


def available() -> str | None:
    """None when llamppl and its Hugging Face backend import, else why not ("Type: message")."""
    try:
        import llamppl  # noqa: F401
        from genlm.backend.llm import AsyncTransformer  # noqa: F401
        from llamppl import CachedCausalLM, LMContext, Model, smc_standard  # noqa: F401
        from transformers import DynamicCache

        if not hasattr(DynamicCache(), "layers"):
            return "RuntimeError: this transformers' DynamicCache has no .layers, which genlm-backend's HF backend needs"
    except Exception as exc:  # any failure to import is the reason the peer cannot run
        return f"{type(exc).__name__}: {exc}"
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load(model_dir: str):
    """The llamppl ``CachedCausalLM`` for ``model_dir`` (loaded once, CPU, fp32)."""
    key = str(Path(model_dir).resolve())
    if key not in _LMS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from genlm.backend.llm import AsyncTransformer
        from llamppl import CachedCausalLM
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(key)
        model = AutoModelForCausalLM.from_pretrained(key, dtype=torch.float32)
        model.to("cpu")
        _LMS[key] = CachedCausalLM(AsyncTransformer(model, tokenizer, batch_size=8, timeout=BATCH_TIMEOUT))
    return _LMS[key]


def _banned(lm, letter: str) -> set[int]:
    """Token ids whose decoded text contains ``letter`` (either case); special tokens and EOS
    decode to "" and are never banned."""
    tok = lm.tokenizer
    n = len(lm.str_vocab)
    known = min(n, len(tok))
    texts = tok.batch_decode([[i] for i in range(known)], skip_special_tokens=True)
    forms = (letter.lower(), letter.upper())
    banned = {i for i, t in enumerate(texts) if any(c in t for c in forms)}
    banned |= set(range(known, n))  # ids the tokenizer does not know
    banned.discard(tok.eos_token_id)
    return banned


def _model_class():
    global _MODEL_CLS
    if _MODEL_CLS is None:
        from llamppl import LMContext, Model

        class LipogramModel(Model):
            """llamppl's README lipogram: condition each token on avoiding ``banned``, then sample it."""

            def __init__(self, lm, prompt: str, banned: set[int], max_tokens: int, counter: list[int]):
                super().__init__()
                self.context = LMContext(lm, prompt)  # the prompt's logprobs come from cache_kv's cache
                self.eos = lm.tokenizer.eos_token_id
                self.banned = banned
                self.max_tokens = max_tokens
                self.counter = counter  # shared by every copy: [particle-steps]

            async def step(self):
                await self.observe(self.context.mask_dist(self.banned), False)
                token = await self.sample(self.context.next_token())
                self.counter[0] += 1
                if token.token_id == self.eos or self.context.token_count >= self.max_tokens:
                    self.finish()

            def immutable_properties(self):
                return {"banned", "counter", "max_tokens", "eos"}

        _MODEL_CLS = LipogramModel
    return _MODEL_CLS


def run_lipogram(model_dir: str, prompt: str, *, letter: str = "e", n: int = 8, max_tokens: int = 40,
                 seed: int = 0, chat: bool = True) -> dict:
    """Run llamppl's ``smc_standard`` with ``n`` particles on ``prompt`` under the lipogram mask.

    Args:
        model_dir: a local transformers checkpoint (``ponder.models.loading.smollm2_dir()``).
        prompt: the user's text.
        letter: the banned letter (either case).
        n: particles.
        max_tokens: a particle stops after this many tokens (or at EOS).
        seed: seeds numpy (llamppl samples and resamples with ``np.random``), random and torch.
        chat: wrap ``prompt`` in the tokenizer's chat template with the generation prompt, as
            ponder's ``LM.root`` does by default (chat="auto"); False: the raw text.

    Returns:
        {"seconds": wall time of the prompt's prefill (``cache_kv``) plus ``smc_standard``,
         "smc_seconds": ``smc_standard`` alone, "particle_steps": tokens sampled over all particles,
         "particle_steps_per_second", "texts": the final particles' generated texts (special
         tokens dropped), "weights": their log weights, "version": llamppl's version,
         "genlm_backend_version", "settings": the backend settings}
    """
    import numpy as np
    import torch
    from llamppl import smc_standard

    lm = load(model_dir)
    tok = lm.tokenizer
    if chat and getattr(tok, "chat_template", None) is not None:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       tokenize=False)
    else:
        text = prompt
    key = (id(lm), letter.lower())
    if key not in _BANNED:
        _BANNED[key] = _banned(lm, letter)
    banned = _BANNED[key]
    lm.clear_cache()
    lm.reset_async_queries()
    lm.model.batch_size = n
    lm.model.timeout = BATCH_TIMEOUT
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    counter = [0]
    cls = _model_class()

    t0 = time.perf_counter()
    prompt_ids = tok.encode(text)  # what LMContext encodes
    lm.cache_kv(prompt_ids)
    model = cls(lm, text, banned, max_tokens, counter)
    t1 = time.perf_counter()
    particles = asyncio.run(smc_standard(model, n))
    t2 = time.perf_counter()

    seconds = t2 - t0
    texts = [tok.decode(p.context.tokens[p.context.prompt_token_count:], skip_special_tokens=True)
             for p in particles]
    return {
        "seconds": seconds,
        "smc_seconds": t2 - t1,
        "particle_steps": counter[0],
        "particle_steps_per_second": counter[0] / seconds if seconds > 0 else float("nan"),
        "texts": texts,
        "weights": [float(p.weight) for p in particles],
        "version": _version("llamppl"),
        "genlm_backend_version": _version("genlm-backend"),
        "settings": {"backend": "hf (genlm-backend AsyncTransformer)", "device": "cpu", "dtype": "float32",
                     "batch_size": n, "batch_timeout": BATCH_TIMEOUT, "prompt_kv_cached": True,
                     "resampling": "multinomial", "ess_threshold": 0.5, "chat_template": text != prompt,
                     "banned_tokens": len(banned), "vocab": len(lm.str_vocab)},
    }


if __name__ == "__main__":  # a quick check: python -m bench.llamppl_peer
    import json

    from ponder.models import loading

    why = available()
    if why:
        raise SystemExit(f"llamppl unavailable: {why}")
    out = run_lipogram(str(loading.smollm2_dir()), "Write one sentence about the sea.", n=8, max_tokens=20)
    print(json.dumps(out, indent=1))
