"""Tiny random-initialised language models, built in-process, for tests and examples.

The tokenizer is a byte-level BPE trained in a few milliseconds on a small built-in corpus, so
any text round-trips; the model is a 2-layer Llama with grouped-query attention. Nothing is read
from disk or downloaded.
"""

from __future__ import annotations

import functools

import torch

_CORPUS = """
The answer is 42. Let's think step by step. First, we add the numbers: 3 + 4 = 7.
Then we multiply: 7 * 6 = 42. So the final answer is #### 42.
Natalia sold 48 clips in April and half as many in May, so 48 / 2 = 24 and 48 + 24 = 72.
I'm sorry, but I cannot help with that. Sure, here is a short poem about the sea.
Question: what is 12 minus 5? Answer: 7. Step 1: read the problem. Step 2: solve it.
abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'"()[]{}+-*/=#$%\n
"""
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


@functools.lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(*, vocab_size: int = 384, chat_template: str | None = None):
    """A byte-level BPE tokenizer (EOS ``<|im_end|>``); optionally with a chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    if chat_template:
        tok.chat_template = chat_template
    return tok


CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_llama(*, seed: int = 0, layers: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int = 2, context: int = 512, vocab_size: int = 384, chat: bool = False, **lm_kwargs):
    """A random-initialised Llama generator (a few hundred thousand parameters).

    Args:
        seed: torch seed of the weights.
        layers, hidden, heads, kv_heads: the architecture.
        context: max_position_embeddings.
        vocab_size: BPE vocabulary size.
        chat: give the tokenizer a ChatML template.
        **lm_kwargs: passed to :class:`~ponder.models.lm.LM`.
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from ponder.models.lm import LM

    tokenizer = tiny_tokenizer(vocab_size=vocab_size, chat_template=CHATML if chat else None)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits than the default init, so sampling is not near-uniform
        model.lm_head.weight.mul_(8.0)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    lm_kwargs.setdefault("name", "tiny-llama")
    return LM(model, tokenizer, **lm_kwargs)


def tiny_unet(*, seed: int = 0, size: int = 8, channels: int = 1, class_embeds: int | None = None):
    """A random-initialised pixel ``UNet2DModel`` (two resolutions, no attention; ~60k parameters)."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(16, 32),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8, num_class_embeds=class_embeds)


def tiny_text_to_image(*, seed: int = 0, scheduler: str = "ddpm", vae: bool = True):
    """A random-initialised latent text-to-image ``StableDiffusionPipeline``, built from configs.

    UNet2DConditionModel on 4 x 8 x 8 latents with cross-attention to a 2-layer CLIP text encoder
    (the tiny BPE tokenizer, 16 tokens), and an AutoencoderKL decoding them to 3 x 16 x 16 pixels.
    ``vae=False`` leaves the pipeline's VAE slot empty (a latent pipeline without a VAE).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, EulerAncestralDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    tokenizer.model_max_length = 16
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id,
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
    autoencoder = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                norm_num_groups=8, sample_size=16)
    kinds = {"ddpm": DDPMScheduler, "euler_ancestral": EulerAncestralDiscreteScheduler}
    extra = {"clip_sample": False} if scheduler == "ddpm" else {}
    sched = kinds[scheduler](num_train_timesteps=100, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1, **extra)
    return StableDiffusionPipeline(vae=autoencoder if vae else None, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def tiny_dit(*, seed: int = 0, classes: int = 10):
    """A random-initialised class-conditional DiT (``DiTTransformer2DModel``, 2 layers, learned
    variance) on 4 x 8 x 8 latents, with a DDPM scheduler; no VAE (latents only)."""
    from diffusers import DDPMScheduler, DiTTransformer2DModel

    torch.manual_seed(seed)
    model = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                                  sample_size=8, patch_size=2, num_embeds_ada_norm=classes, norm_num_groups=8)
    return model, DDPMScheduler(num_train_timesteps=100)
