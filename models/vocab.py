"""The vocabulary as text: what each token id decodes to (torch-free, for logits hooks and masks)."""

from __future__ import annotations

from typing import Any

__all__ = ["token_texts"]


def token_texts(tokenizer: Any, vocab_size: int | None = None) -> list[str]:
    """Every token's decoded text (special tokens as ""), for ids ``0 .. vocab_size - 1``
    (default ``len(tokenizer)``; ids the tokenizer does not know decode to "")."""
    n = len(tokenizer) if vocab_size is None else int(vocab_size)
    known = min(n, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(known)], skip_special_tokens=True)
    return list(texts) + [""] * (n - known)
