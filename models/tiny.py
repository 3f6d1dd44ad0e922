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
