r"""The decode loop: sampling a step for every row of a live batch, stop detection, retiring rows.

Sampling within a step runs a batched decode loop on a live cache (by default a
:class:`~ponder.models.growing_cache.GrowingCache`, which writes each token in place); rows that
finish (EOS, stop string, step length) hand their KV to the trie at once, and finished rows are
dropped from the batch once a quarter of it is idle.

Logits hook. ``expand(..., logits_hook=fn)`` calls ``fn(states, logits)`` before every token,
``states[r]`` a :class:`RowState` (the row's parent and the step's tokens so far) and ``logits``
the model's logits ``z`` [R, V] float32; it returns adjusted logits ``z + delta`` [R, V] (a
token mask as ``-inf``, or added log-potentials). Tokens are sampled from the adjusted logits
(then temperature, top-k/p), and each child records, in ``child.meta["log_normaliser"]``,

.. math:: \log Z = \sum_t \log \sum_v \exp(\log p(v) + \delta_v)
          = \sum_t [\operatorname{logsumexp}(z + \delta) - \operatorname{logsumexp}(z)],

summed over the step's tokens (0 for a mask that removes no mass), so SMC and constrained
proposers can correct their weights.

Log-probabilities. ``logprob``/``step_logprob`` are the model's (T = 1, untruncated, no hook);
``proposal_logprob``/``step_proposal_logprob`` are :math:`\log q` of the drawn tokens under the
distribution actually sampled (hook, EOS mask of ``min_tokens``, temperature, top-k/p applied;
0 per greedy token).

Random streams: one ``torch.Generator`` per row, seeded by
:func:`~ponder.models.sampling.row_seed` (the call's seed, the parent's position, the child's
index), so a row's tokens do not depend on its batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ponder.models.compat import cache_layers
from ponder.models.live import Live
from ponder.models.sampling import Sampling, row_seed
from ponder.search import ledger
from ponder.search.protocols import Node, Step


@dataclasses.dataclass(frozen=True)
class RowState:
    """A row being decoded, as the logits hook sees it: its parent and this step's tokens so far."""

    parent: Node
    step_tokens: tuple[int, ...]

    @property
    def tokens(self) -> tuple[int, ...]:
        return self.parent.tokens + self.step_tokens


@dataclasses.dataclass
class Drawn:
    """What a row drew in one step: tokens and, per token, log p, log q and log Z."""

    tokens: list[int] = dataclasses.field(default_factory=list)
    logp: list[float] = dataclasses.field(default_factory=list)
    logq: list[float] = dataclasses.field(default_factory=list)
    log_z: list[float] = dataclasses.field(default_factory=list)
    reason: str | None = None


def decode(lm, parents, counts: np.ndarray, live: Live, step: Step, sampling: Sampling, seed: int, max_new_tokens,
           logits_hook=None, positions=None) -> list[list[Node]]:
    """Sample one step for every row of ``live`` (row r a copy of ``parents[parent_of[r]]``).

    ``positions[i]`` is parent i's position in the caller's list (it seeds its rows' streams).
    """
    positions = np.arange(len(parents)) if positions is None else np.asarray(positions)
    parent_of = np.repeat(np.arange(len(parents)), counts)  # [R0] output row -> parent index
    child_of = np.arange(len(parent_of)) - np.repeat(np.cumsum(counts) - counts, counts)  # [R0] j under its parent
    n_out = len(parent_of)
    drawn = [Drawn() for _ in range(n_out)]
    streams = None if sampling.temperature == 0 else [
        torch.Generator().manual_seed(row_seed(seed, i, j)) for i, j in zip(positions[parent_of].tolist(), child_of.tolist())
    ]
    row_of = np.arange(n_out)  # live row -> output index
    alive = np.ones(n_out, dtype=bool)  # per live row
    base_col = live.width  # decoded token j of every row sits at column base_col + j
    eos = torch.tensor(sorted(lm.eos_ids)) if lm.eos_ids else None
    fed = 0
    while True:
        logits = live.logits.float()  # [R, V]
        lse = torch.logsumexp(logits, dim=-1)  # [R]: log p(v) = z_v - lse, the model's
        proposal = logits
        log_z = None
        if logits_hook is not None:
            states = [RowState(parents[parent_of[o]], tuple(drawn[o].tokens)) for o in row_of]
            proposal = logits_hook(states, logits).float()  # [R, V]
            # log sum_v p(v) exp(proposal_v - z_v) = logsumexp(proposal) - lse
            log_z = torch.logsumexp(proposal, dim=-1) - lse  # [R]
        if fed < step.min_tokens and eos is not None:
            proposal = proposal.index_fill(1, eos, float("-inf"))
        uniforms = None if streams is None else torch.cat([torch.rand(1, generator=streams[o]) for o in row_of])  # [R]
        tokens, logq = sampling.sample(proposal, uniforms)  # [R], [R]
        logp = logits.gather(1, tokens[:, None]).squeeze(1) - lse  # [R]
        tokens_l, logp_l, logq_l = tokens.tolist(), logp.tolist(), logq.tolist()
        log_z_l = log_z.tolist() if log_z is not None else None
        finished_rows = []
        for r in np.flatnonzero(alive):
            row = drawn[row_of[r]]
            row.tokens.append(tokens_l[r])
            row.logp.append(logp_l[r])
            row.logq.append(logq_l[r])
            if log_z_l is not None:
                row.log_z.append(log_z_l[r])
            row.reason = finish_reason(lm, parents[parent_of[row_of[r]]], row.tokens, step, max_new_tokens)
            if row.reason is not None:
                alive[r] = False
                finished_rows.append(r)
        if finished_rows:
            retire(lm, live, finished_rows, [drawn[row_of[r]].tokens for r in finished_rows], base_col)
        if not alive.any():
            break
        feed = tokens  # [R]; idle rows are fed too until the batch is compacted
        if (~alive).sum() * 4 >= len(alive):
            keep = np.flatnonzero(alive)
            live.select(keep)
            row_of, alive, feed = row_of[keep], alive[keep], tokens[torch.from_numpy(keep)]
        positions = torch.from_numpy(np.minimum(live.lengths + fed, lm.max_context - 1))[:, None]  # [R, 1]; idle rows may pass the context
        if live.mask is not None:
            live.mask = torch.cat([live.mask, torch.ones((len(alive), 1), dtype=live.mask.dtype)], dim=1)
        out = lm._base(input_ids=feed[:, None], attention_mask=live.mask, position_ids=positions, use_cache=True, **{lm._cache_arg: live.cache})
        live.logits = lm._logits(out.last_hidden_state[:, -1])
        ledger.charge(decode_tokens=len(alive), forward_calls=1)
        fed += 1
        lm._observe(len(alive), base_col + fed)
    children = [
        lm._child(parents[parent_of[o]], tuple(row.tokens), row.logp, row.reason, logq=row.logq,
                  log_normaliser=float(sum(row.log_z)) if logits_hook is not None else None)
        for o, row in enumerate(drawn)
    ]
    ledger.charge(nodes=n_out, generated_tokens=sum(len(row.tokens) for row in drawn))
    ends = np.cumsum(counts)
    return [children[end - c : end] for c, end in zip(counts.tolist(), ends.tolist())]


def finish_reason(lm, parent: Node, tokens: list[int], step: Step, max_new_tokens: int | None) -> str | None:
    """Why a row's step ends after ``tokens``, or None while it goes on."""
    if tokens[-1] in lm.eos_ids:
        return "eos"
    if len(parent.tokens) + len(tokens) >= lm.max_context:
        return "context"
    if max_new_tokens is not None and parent.n_generated + len(tokens) >= max_new_tokens:
        return "max_new_tokens"
    if step.stop and any(s in lm.tokenizer.decode(tokens, skip_special_tokens=True) for s in step.stop):
        return "stop"
    if len(tokens) >= step.max_tokens:
        return "length"
    return None


def retire(lm, live: Live, rows: list[int], tokens: list[list[int]], base_col: int) -> None:
    """Hand the KV of finished rows to the prefix cache and release their anchors.

    A finished row has fed all its generated tokens but the last (rows decode in lockstep),
    at columns ``base_col`` onwards, after whatever prefill tokens are still pending.
    """
    if not lm.prefix.enabled:
        return
    pending = [  # per finished row: (tokens, cache columns [m]) not yet in the cache
        (live.pending[r][0] + tuple(t[:-1]), np.concatenate([live.pending[r][1], base_col + np.arange(len(t) - 1)]))
        for r, t in zip(rows, tokens)
    ]
    anchors = [live.anchors[r] for r in rows]
    try:
        lm.prefix.store_pending(cache_layers(live.cache), anchors, rows, pending)
    finally:  # store_pending moves locks to deeper anchors: the live batch must hold the current ones
        for r, anchor in zip(rows, anchors):
            live.anchors[r] = anchor
    for r in rows:  # one at a time, so an interrupt neither leaks a lock nor releases one twice
        anchor, live.anchors[r] = live.anchors[r], None
        lm.prefix.release([anchor])
