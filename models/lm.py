"""The language-model generator: a Hugging Face causal LM behind a shared-prefix KV cache.

States are :class:`~ponder.search.protocols.Node` objects (prompt + generated tokens). Computed
keys and values are kept in a :class:`~ponder.models.prefix_cache.PrefixCache` (a token trie
over a pool of KV slots; the scheme, its locks and its budget are described there). To run a
batch the generator

1. matches each sequence against the cache and gathers the longest cached prefix of each
   (length ``n_i``), left-padded to ``P = max n_i``; the matched nodes stay locked until the
   call ends;
2. runs only the remaining tokens, right-padded to ``N``, with explicit position ids
   ``n_i + j`` so rotary embeddings see each row's true positions;
3. hands the new keys and values back to the cache.

A prompt shared by N branches is therefore computed once; the last token of a sequence is
always run (the cache stores KV, not logits), so a fully cached sequence costs one token.

Sampling within a step runs a batched decode loop on a live cache (by default a
:class:`~ponder.models.growing_cache.GrowingCache`, which writes each token in place); rows that finish
(EOS, stop string, step length) hand their KV to the trie at once, and finished rows are
dropped from the batch once a quarter of it is idle.

Every call charges the active ledgers (``ponder.search.ledger``): prefill and decode tokens
computed, tokens served from cache, forward calls, nodes and generated tokens.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Sequence

import numpy as np
import torch
from transformers import DynamicCache

from ponder.models.growing_cache import GrowingCache
from ponder.models.prefix_cache import CACHE_MODES, PrefixCache
from ponder.models.sampling import Sampling
from ponder.search import ledger
from ponder.search.protocols import ConfigError, Node, PonderError, Step, check_choice


class ContextLengthError(PonderError, ValueError):
    """A prompt (or extension) does not fit the model's context window."""


CHAT_MODES = ("auto", "template", "raw")
LIVE_CACHES = ("auto", "growing", "dynamic")


@dataclasses.dataclass
class _Live:
    """A batch whose KV is in a live DynamicCache, ready to decode.

    Attributes:
        cache: per-layer keys/values [R, H, T, D].
        mask: attention mask [R, T] (None when no row is padded).
        lengths: true sequence length of each row (next position id).        # [R]
        anchors: the locked cache node holding each row's sequence minus its unfed tail.
        logits: next-token logits after each row's last token.              # [R, V]
        width: T, the cache's column count.
    """

    cache: DynamicCache
    mask: torch.Tensor | None
    lengths: np.ndarray
    anchors: list[int | None]
    logits: torch.Tensor
    width: int
    hidden: torch.Tensor | None = None
    n_past: np.ndarray | None = None
    pending: list | None = None  # per row: (tokens, cache columns) not yet in the trie

    def select(self, rows: np.ndarray) -> None:
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        self.cache.batch_select_indices(index)
        if self.mask is not None:
            self.mask = self.mask[index]
        self.lengths = self.lengths[rows]
        self.anchors = [self.anchors[i] for i in rows]
        self.pending = [self.pending[i] for i in rows]
        self.logits = self.logits[index]


def _children_counts(k, n_nodes: int) -> np.ndarray:
    """``expand``'s k as one count per parent, checked.                     # [B] int64"""
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        if k < 1:
            raise ConfigError(f"k (children per node) must be an integer >= 1, got {k!r}")
        return np.full(n_nodes, int(k), dtype=np.int64)
    try:
        counts = [int(c) if isinstance(c, (int, np.integer)) and not isinstance(c, bool) else None for c in k]
    except TypeError:
        raise ConfigError(f"k must be an integer >= 1 or one count per node, got {k!r}") from None
    if len(counts) != n_nodes or any(c is None or c < 0 for c in counts):
        raise ConfigError(f"k as counts must hold one integer >= 0 per node ({n_nodes} nodes), got {list(k)!r}")
    return np.asarray(counts, dtype=np.int64).reshape(n_nodes)


class LM:
    """A causal LM generator with a trie-shared KV cache.

    Args:
        model: a Hugging Face causal LM (``AutoModelForCausalLM``), eval mode.
        tokenizer: its tokenizer.
        name: a label for results.
        max_cache_tokens: the KV cache's token budget (the trie evicts beyond it).
        cache: "trie" shares prefixes; "none" recomputes every prefix (the baseline).
        trie: "compiled" (Cython) or "python" (the reference twin).
        chat: "auto" applies the chat template when the tokenizer has one; "template"
            requires it; "raw" tokenizes the prompt as is.
        live_cache: the decode cache: "growing" writes each token in place into buffers with
            spare room (:mod:`ponder.models.growing_cache`), "dynamic" is transformers'
            ``DynamicCache`` (concatenates every step; the baseline), "auto" is "growing" unless
            the model has sliding-window layers.
        seed: seeds the generator's RNG stream (calls without an explicit seed draw from it).
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        name: str = "lm",
        max_cache_tokens: int = 32768,
        cache: str = "trie",
        trie: str = "compiled",
        chat: str = "auto",
        live_cache: str = "auto",
        seed: int = 0,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        check_choice("cache mode", cache, CACHE_MODES)  # first, so a bad mode is reported before other arguments
        self.chat = check_choice("chat mode", chat, CHAT_MODES)
        config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
        self.max_context = int(getattr(config, "max_position_embeddings", 2048))
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.live_cache = check_choice("live cache", live_cache, LIVE_CACHES)
        sliding = getattr(config, "sliding_window", None) is not None or any("sliding" in str(t) for t in getattr(config, "layer_types", None) or ())
        if self.live_cache == "auto":
            self.live_cache = "dynamic" if sliding else "growing"
        elif self.live_cache == "growing" and sliding:
            raise ConfigError("live_cache='growing' handles full attention only; this model has sliding-window layers: use 'dynamic' or 'auto'")
        self.prefix = PrefixCache(config.num_hidden_layers, n_kv, head_dim, max_tokens=max_cache_tokens, dtype=model.dtype,
                                  mode=cache, trie=trie)
        self._base = model.base_model
        # transformers renamed the forward's cache argument (past_key_values -> cache) during 5.x
        self._cache_arg = "cache" if "cache" in inspect.signature(self._base.forward).parameters else "past_key_values"
        self._head = model.get_output_embeddings()
        self._softcap = getattr(config, "final_logit_softcapping", None)
        self._rng = np.random.default_rng(seed)
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = frozenset(eos)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
        self.pad_id = int(pad)
        self.vocab_size = int(self._head.weight.shape[0])

    # ------------------------------------------------------------------ public API

    def __repr__(self) -> str:
        return f"LM({self.name!r}, cache={self.cache_mode!r}, cached_tokens={self.cached_tokens})"

    @property
    def cache_mode(self) -> str:
        """"trie" (prefixes shared) or "none" (every prefix recomputed)."""
        return self.prefix.mode

    @property
    def store(self):
        """The prefix cache's :class:`~ponder.models.kv_store.KVStore`."""
        return self.prefix.store

    @property
    def trie(self):
        """The prefix cache's token trie."""
        return self.prefix.trie

    def root(self, prompt: str | list[dict], *, chat: str | None = None) -> Node:
        """The depth-0 node of ``prompt``: a string, or a list of chat messages."""
        mode = check_choice("chat mode", chat or self.chat, CHAT_MODES)
        has_template = getattr(self.tokenizer, "chat_template", None) is not None
        if mode == "template" and not has_template:
            raise ConfigError(f"chat='template' but the tokenizer of {self.name!r} has no chat template")
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        if mode == "raw" or (mode == "auto" and not has_template):
            if not isinstance(prompt, str):
                raise ConfigError("a list of chat messages needs a tokenizer with a chat template")
            ids = self.tokenizer(prompt)["input_ids"]
        else:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if not isinstance(ids, list):  # a BatchEncoding
                ids = ids["input_ids"]
        ids = [int(t) for t in ids]
        if not ids:
            raise ConfigError("the prompt tokenized to no tokens")
        if len(ids) >= self.max_context:
            raise ContextLengthError(
                f"prompt of {len(ids)} tokens does not fit the context of {self.name!r} ({self.max_context} tokens, "
                "and at least one must stay free to generate)"
            )
        ledger.charge(nodes=1)
        text = prompt if isinstance(prompt, str) else messages[-1]["content"]
        return Node(tokens=tuple(ids), prompt_len=len(ids), prompt=text)

    def expand(
        self,
        nodes: Sequence[Node],
        k: int | Sequence[int] = 1,
        *,
        step: Step | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[list[Node]]:
        """Sample ``k`` continuation steps of every node, in one batch.

        Args:
            nodes: parents; finished nodes are an error.
            k: children per parent (>= 1), or one count per parent (>= 0; a parent's prefix is
                prefilled once however many children it gets).
            step: where a step ends (stop strings, token count); default: 64 tokens.
            temperature, top_p, top_k: see :class:`~ponder.models.sampling.Sampling`.
            seed: seeds this call; None draws a seed from the generator's stream.
            max_new_tokens: cap on the whole answer's generated tokens (a node reaching it is
                finished with reason "max_new_tokens").

        Returns:
            ``out[i][j]``: the j-th child of ``nodes[i]``.
        """
        nodes = list(nodes)
        counts = _children_counts(k, len(nodes))  # [B]
        sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
        step = step or Step()
        if not counts.any():
            return [[] for _ in nodes]
        if not counts.all():  # parents with no children are not computed at all
            kept = np.flatnonzero(counts)
            inner = self.expand([nodes[i] for i in kept], counts[kept].tolist(), step=step, temperature=temperature,
                                top_p=top_p, top_k=top_k, seed=seed, max_new_tokens=max_new_tokens)
            out: list[list[Node]] = [[] for _ in nodes]
            for i, kids in zip(kept, inner):
                out[i] = kids
            return out
        for node in nodes:
            if node.finished:
                raise ConfigError(f"cannot expand a finished node ({node.finish_reason}): {node!r}")
        if seed is None:
            seed = int(self._rng.integers(2**62))
        rng = torch.Generator().manual_seed(int(seed))
        if max_new_tokens is not None and (not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1):
            raise ConfigError(f"max_new_tokens must be an integer >= 1 or None, got {max_new_tokens!r}")
        with torch.inference_mode():
            live = self._prefill([n.tokens for n in nodes])
            try:
                if counts.max() > 1:
                    self._repeat(live, counts)
                return self._decode(nodes, counts, live, step, sampling, rng, max_new_tokens)
            finally:  # also on errors and interrupts: no lock may outlive the call
                self.prefix.release(live.anchors)

    def next_token_logprobs(self, nodes: Sequence[Node]) -> np.ndarray:
        """log p(next token | node) for every node.                           # [B, V] float32"""
        nodes = list(nodes)
        if not nodes:
            return np.zeros((0, self.vocab_size), dtype=np.float32)
        with torch.inference_mode():
            live = self._prefill([n.tokens for n in nodes])
            self.prefix.release(live.anchors)
            return torch.log_softmax(live.logits.float(), dim=-1).numpy()  # (after the release: nothing below can fail)

    def extend(self, nodes: Sequence[Node], tokens: Sequence[Sequence[int]]) -> list[Node]:
        """Append given tokens to each node as one step; their KV is computed and cached.

        The children carry the model's log-probabilities of the appended tokens.
        """
        nodes = list(nodes)
        if len(tokens) != len(nodes):
            raise ConfigError(f"extend got {len(nodes)} nodes but {len(tokens)} token lists")
        appended = [tuple(int(t) for t in ts) for ts in tokens]
        for node, ts in zip(nodes, appended):
            if not ts:
                raise ConfigError(f"extend needs at least one token per node; got none for {node!r}")
            if len(node.tokens) + len(ts) > self.max_context:
                raise ContextLengthError(
                    f"extending a {len(node.tokens)}-token node by {len(ts)} tokens exceeds the context of "
                    f"{self.name!r} ({self.max_context})"
                )
            bad = [t for t in ts if not 0 <= t < self.vocab_size]
            if bad:
                raise ConfigError(f"token ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})")
        seqs = [n.tokens + ts for n, ts in zip(nodes, appended)]
        with torch.inference_mode():
            live = self._prefill(seqs, score_from=[len(n.tokens) - 1 for n in nodes])
            self.prefix.release(live.anchors)
            children = []
            for i, (node, ts) in enumerate(zip(nodes, appended)):
                start = len(node.tokens) - 1 - int(live.n_past[i])  # hidden column predicting ts[0]
                logits = self._logits(live.hidden[i, start : start + len(ts)])  # [m, V]
                logp = torch.log_softmax(logits.float(), dim=-1)[torch.arange(len(ts)), torch.tensor(ts)]
                children.append(self._child(node, ts, logp.tolist(), "eos" if ts[-1] in self.eos_ids else "stop"))
        ledger.charge(nodes=len(children))
        return children

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    @property
    def cached_tokens(self) -> int:
        return self.prefix.cached_tokens

    def clear_cache(self) -> None:
        """Evict every unlocked token from the KV cache (benchmarks start cold with this)."""
        self.prefix.clear()

    # ------------------------------------------------------------------ the engine

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self._head(hidden)
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def _prefill(self, seqs: list[tuple[int, ...]], *, score_from: list[int] | None = None) -> _Live:
        """Run the uncached part of every sequence; return a live batch positioned after each.

        Args:
            seqs: full token sequences, one per row.
            score_from: per row, the first position whose logits are needed (extend); the
                cached prefix is cut there so those positions are run.

        Returns:
            the live batch; its anchors are locked until the caller releases them.
        """
        anchors, past_slots, n_past = self.prefix.match(seqs, score_from)  # [B] node | None, [B] x [n_i], [B]
        try:
            return self._run_uncached(seqs, anchors, past_slots, n_past, keep_hidden=score_from is not None)
        except BaseException:  # errors and interrupts alike: no lock may outlive the call
            self.prefix.release(anchors)
            raise

    def _run_uncached(self, seqs, anchors, past_slots, n_past: np.ndarray, *, keep_hidden: bool) -> _Live:
        """Gather the cached pasts, run the remaining tokens, and cache their KV under the anchors."""
        n_rows = len(seqs)
        new = [seq[n:] for seq, n in zip(seqs, n_past)]
        n_new = np.array([len(t) for t in new], dtype=np.int64)
        width_past, width_new = int(n_past.max()), int(n_new.max())
        input_ids = torch.full((n_rows, width_new), self.pad_id, dtype=torch.long)  # [B, N]
        new_mask = torch.zeros((n_rows, width_new), dtype=torch.long)
        for i, tokens in enumerate(new):
            input_ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            new_mask[i, : len(tokens)] = 1
        # pads may run past the context; clamping keeps absolute-position models (GPT-2) in range
        positions = (torch.from_numpy(n_past)[:, None] + torch.arange(width_new)[None, :]).clamp_(max=self.max_context - 1)  # [B, N]
        layers, past_mask = self.prefix.gather(past_slots)  # L x ([B, H, P, D], [B, H, P, D]) | None, [B, P]
        if self.live_cache == "growing":
            cache = GrowingCache(layers, n_layers=self.prefix.n_layers)
        else:
            cache = DynamicCache(ddp_cache_data=layers) if layers is not None else DynamicCache()
        mask = torch.cat([past_mask, new_mask], dim=1)  # [B, P + N]
        if bool(mask.all()):
            mask = None
        out = self._base(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **{self._cache_arg: cache})
        hidden = out.last_hidden_state  # [B, N, h]
        logits = self._logits(hidden[torch.arange(n_rows), torch.from_numpy(n_new - 1)])  # [B, V]
        ledger.charge(prefill_tokens=int(n_new.sum()), cached_tokens=int(n_past.sum()), forward_calls=1)

        pending = [(tuple(tokens), width_past + np.arange(len(tokens))) for tokens in new]
        if self.prefix.enabled:
            self.prefix.store_pending(self._layers(cache), anchors, list(range(n_rows)), pending)
        else:
            pending = [((), np.zeros(0, np.int64))] * n_rows
        self._observe(n_rows, width_past + width_new)
        return _Live(
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

    @staticmethod
    def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _repeat(self, live: _Live, counts: np.ndarray) -> None:
        """Repeat row i counts[i] times; the copies of a row are consecutive."""
        self.prefix.lock_copies(live.anchors, counts)  # each copy holds its own lock
        if (counts == counts[0]).all():
            k = int(counts[0])
            live.cache.batch_repeat_interleave(k)
            if live.mask is not None:
                live.mask = live.mask.repeat_interleave(k, dim=0)
            live.lengths = np.repeat(live.lengths, k)
            live.logits = live.logits.repeat_interleave(k, dim=0)
            live.anchors = [a for a in live.anchors for _ in range(k)]
            live.pending = [p for p in live.pending for _ in range(k)]
        else:
            live.select(np.repeat(np.arange(len(counts)), counts))

    def _decode(self, parents, counts: np.ndarray, live: _Live, step: Step, sampling: Sampling, rng, max_new_tokens) -> list[list[Node]]:
        parent_of = np.repeat(np.arange(len(parents)), counts)  # output -> parent index
        n_out = len(parent_of)
        generated: list[list[int]] = [[] for _ in range(n_out)]
        logps: list[list[float]] = [[] for _ in range(n_out)]
        reasons: list[str | None] = [None] * n_out
        row_of = np.arange(n_out)  # live row -> output index
        alive = np.ones(n_out, dtype=bool)  # per live row
        base_col = live.width  # decoded token j of every row sits at column base_col + j
        fed = 0
        while True:
            logits = live.logits  # [R, V]
            if fed < step.min_tokens and self.eos_ids:
                eos = torch.tensor(sorted(self.eos_ids))
                tokens = sampling.draw(logits.index_fill(1, eos, float("-inf")), rng)  # [R]
            else:
                tokens = sampling.draw(logits, rng)  # [R]
            logp = torch.log_softmax(logits.float(), dim=-1).gather(1, tokens[:, None]).squeeze(1)
            tokens_l, logp_l = tokens.tolist(), logp.tolist()
            finished_rows = []
            for r in np.flatnonzero(alive):
                out = row_of[r]
                generated[out].append(tokens_l[r])
                logps[out].append(logp_l[r])
                reason = self._finish_reason(parents[parent_of[out]], generated[out], step, max_new_tokens)
                if reason is not None:
                    reasons[out] = reason
                    alive[r] = False
                    finished_rows.append(r)
            if finished_rows:
                self._retire(live, finished_rows, [generated[row_of[r]] for r in finished_rows], base_col)
            if not alive.any():
                break
            feed = tokens  # [R]; idle rows are fed too until the batch is compacted
            if (~alive).sum() * 4 >= len(alive):
                keep = np.flatnonzero(alive)
                live.select(keep)
                row_of, alive, feed = row_of[keep], alive[keep], tokens[torch.from_numpy(keep)]
            positions = torch.from_numpy(np.minimum(live.lengths + fed, self.max_context - 1))[:, None]  # [R, 1]; idle rows may pass the context
            if live.mask is not None:
                live.mask = torch.cat([live.mask, torch.ones((len(alive), 1), dtype=live.mask.dtype)], dim=1)
            out = self._base(input_ids=feed[:, None], attention_mask=live.mask, position_ids=positions, use_cache=True, **{self._cache_arg: live.cache})
            live.logits = self._logits(out.last_hidden_state[:, -1])
            ledger.charge(decode_tokens=len(alive), forward_calls=1)
            fed += 1
            self._observe(len(alive), base_col + fed)
        children = []
        for out in range(n_out):
            parent = parents[parent_of[out]]
            children.append(self._child(parent, tuple(generated[out]), logps[out], reasons[out]))
        ledger.charge(nodes=n_out, generated_tokens=sum(len(g) for g in generated))
        ends = np.cumsum(counts)
        return [children[end - c : end] for c, end in zip(counts.tolist(), ends.tolist())]

    def _finish_reason(self, parent: Node, tokens: list[int], step: Step, max_new_tokens: int | None) -> str | None:
        if tokens[-1] in self.eos_ids:
            return "eos"
        if len(parent.tokens) + len(tokens) >= self.max_context:
            return "context"
        if max_new_tokens is not None and parent.n_generated + len(tokens) >= max_new_tokens:
            return "max_new_tokens"
        if step.stop and any(s in self.tokenizer.decode(tokens, skip_special_tokens=True) for s in step.stop):
            return "stop"
        if len(tokens) >= step.max_tokens:
            return "length"
        return None

    def _retire(self, live: _Live, rows: list[int], tokens: list[list[int]], base_col: int) -> None:
        """Hand the KV of finished rows to the prefix cache and release their anchors.

        A finished row has fed all its generated tokens but the last (rows decode in lockstep),
        at columns ``base_col`` onwards, after whatever prefill tokens are still pending.
        """
        if not self.prefix.enabled:
            return
        pending = [  # per finished row: (tokens, cache columns [m]) not yet in the cache
            (live.pending[r][0] + tuple(t[:-1]), np.concatenate([live.pending[r][1], base_col + np.arange(len(t) - 1)]))
            for r, t in zip(rows, tokens)
        ]
        anchors = [live.anchors[r] for r in rows]
        try:
            self.prefix.store_pending(self._layers(live.cache), anchors, rows, pending)
        finally:  # store_pending moves locks to deeper anchors: the live batch must hold the current ones
            for r, anchor in zip(rows, anchors):
                live.anchors[r] = anchor
        for r in rows:  # one at a time, so an interrupt neither leaks a lock nor releases one twice
            anchor, live.anchors[r] = live.anchors[r], None
            self.prefix.release([anchor])

    def _observe(self, rows: int, width: int) -> None:
        """Report the KV held now (trie + live batch) to the ledgers' peak."""
        ledger.observe_cache(self.cached_tokens + rows * width)

    def _child(self, parent: Node, step_tokens: tuple[int, ...], logps: list[float], reason: str | None) -> Node:
        tokens = parent.tokens + tuple(step_tokens)
        step_logprob = float(sum(logps))
        finished = reason in ("eos", "context", "max_new_tokens")
        return Node(
            tokens=tokens,
            prompt_len=parent.prompt_len,
            prompt=parent.prompt,
            text=self.decode(tokens[parent.prompt_len :]),
            step_tokens=tuple(step_tokens),
            step_text=self.decode(step_tokens),
            logprob=parent.logprob + step_logprob,
            step_logprob=step_logprob,
            depth=parent.depth + 1,
            finished=finished,
            finish_reason=reason,
            parent=parent,
        )
