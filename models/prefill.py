"""Ragged prefill over the prefix cache.

To run a batch the generator

1. matches each sequence against the cache and gathers the longest cached prefix of each
   (length ``n_i``), left-padded to ``P = max n_i``; the matched nodes stay locked (the rows'
   anchors, released by :func:`ponder.models.live.held`);
2. runs only the remaining tokens, right-padded to ``N``, with explicit position ids
   ``n_i + j`` so rotary embeddings see each row's true positions;
3. hands the new keys and values back to the cache.

A prompt shared by N branches is therefore computed once; the last token of a sequence is
always run (the cache stores KV, not logits), so a fully cached sequence costs one token.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import DynamicCache

from ponder.models.compat import cache_layers
from ponder.models.growing_cache import GrowingCache
from ponder.models.live import Live
from ponder.search import ledger


def prefill(lm, seqs: list[tuple[int, ...]], *, score_from: list[int] | None = None) -> Live:
    """Run the uncached part of every sequence; return a live batch positioned after each.

    Args:
        lm: the :class:`~ponder.models.lm.LM`.
        seqs: full token sequences, one per row.
        score_from: per row, the first position whose logits are needed (given tokens); the
            cached prefix is cut there so those positions are run.

    Returns:
        the live batch; its anchors are locked until released (:func:`~ponder.models.live.held`).
    """
    anchors, past_slots, n_past = lm.prefix.match(seqs, score_from)  # [B] node | None, [B] x [n_i], [B]
    try:
        return _run_uncached(lm, seqs, anchors, past_slots, n_past, keep_hidden=score_from is not None)
    except BaseException:  # errors and interrupts alike: no lock may outlive the call
        lm.prefix.release(anchors)
        raise


def _run_uncached(lm, seqs, anchors, past_slots, n_past: np.ndarray, *, keep_hidden: bool) -> Live:
    """Gather the cached pasts, run the remaining tokens, and cache their KV under the anchors."""
    n_rows = len(seqs)
    new = [seq[n:] for seq, n in zip(seqs, n_past)]
    n_new = np.array([len(t) for t in new], dtype=np.int64)
    width_past, width_new = int(n_past.max()), int(n_new.max())
    input_ids = torch.full((n_rows, width_new), lm.pad_id, dtype=torch.long)  # [B, N]
    new_mask = torch.zeros((n_rows, width_new), dtype=torch.long)
    for i, tokens in enumerate(new):
        input_ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        new_mask[i, : len(tokens)] = 1
    # pads may run past the context; clamping keeps absolute-position models (GPT-2) in range
    positions = (torch.from_numpy(n_past)[:, None] + torch.arange(width_new)[None, :]).clamp_(max=lm.max_context - 1)  # [B, N]
    layers, past_mask = lm.prefix.gather(past_slots)  # L x ([B, H, P, D], [B, H, P, D]) | None, [B, P]
    if lm.live_cache == "growing":
        cache = GrowingCache(layers, n_layers=lm.prefix.n_layers)
    else:
        cache = DynamicCache(ddp_cache_data=layers) if layers is not None else DynamicCache()
    mask = torch.cat([past_mask, new_mask], dim=1)  # [B, P + N]
    if bool(mask.all()):
        mask = None
    out = lm._base(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **{lm._cache_arg: cache})
    hidden = out.last_hidden_state  # [B, N, h]
    logits = lm._logits(hidden[torch.arange(n_rows), torch.from_numpy(n_new - 1)])  # [B, V]
    ledger.charge(prefill_tokens=int(n_new.sum()), cached_tokens=int(n_past.sum()), forward_calls=1)

    pending = [(tuple(tokens), width_past + np.arange(len(tokens))) for tokens in new]
    if lm.prefix.enabled:
        lm.prefix.store_pending(cache_layers(cache), anchors, list(range(n_rows)), pending)
    else:
        pending = [((), np.zeros(0, np.int64))] * n_rows
    lm._observe(n_rows, width_past + width_new)
    return Live(
        cache=cache,
        mask=mask,
        lengths=np.array([len(s) for s in seqs], dtype=np.int64),
        anchors=anchors,
        logits=logits,
        width=width_past + width_new,
        hidden=hidden if keep_hidden else None,
        n_past=n_past,
        pending=pending,
    )
