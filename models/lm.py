"""The language-model generator: a Hugging Face causal LM behind a shared-prefix KV cache.

States are :class:`~ponder.search.protocols.Node` objects (prompt + generated tokens). Computed
keys and values are kept in a :class:`~ponder.models.prefix_cache.PrefixCache` (a token trie
over a pool of KV slots; the scheme, its locks and its budget are described there). This file
is the protocol face: the :class:`LM` class, its public methods and their argument checks. The
engine is one concern per file:

- :mod:`ponder.models.prefill`: ragged prefill over the prefix cache (the maths of positions);
- :mod:`ponder.models.live`: the live batch, its row bookkeeping, and the life cycle of its
  locks (:func:`~ponder.models.live.held`);
- :mod:`ponder.models.decode`: the decode loop, stop detection, the logits hook, per-row streams;
- :mod:`ponder.models.compat`: transformers version shims.

Expansion protocol: ``expand(states, k=1, *, actions=None, **options)``. Without ``actions``,
``k`` children per state are sampled; with ``actions``, ``actions[i]`` lists token sequences to
append to ``states[i]``, one child per sequence (their KV computed and cached, the model's
log-probabilities recorded; ``extend`` is this with one sequence per state).

Every call charges the active ledgers (``ponder.search.ledger``): prefill and decode tokens
computed, tokens served from cache, forward calls, nodes and generated tokens.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ponder.models import compat
from ponder.models.decode import decode as _decode_step
from ponder.models.host_memory import keep_freed_pages
from ponder.models.live import children_counts, held
from ponder.models.prefill import prefill
from ponder.models.prefix_cache import CACHE_MODES, PrefixCache
from ponder.models.sampling import Sampling
from ponder.search import ledger
from ponder.search.protocols import ConfigError, Node, PonderError, Step, check_choice


class ContextLengthError(PonderError, ValueError):
    """A prompt (or extension) does not fit the model's context window."""


CHAT_MODES = ("auto", "template", "raw")
LIVE_CACHES = ("auto", "growing", "dynamic")
HOST_MEMORY = ("keep", "system")


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
        host_memory: "keep" (default) sets glibc's malloc to keep freed buffers for reuse, so
            wide batches stop faulting fresh pages in at every step (process-wide, once; see
            :mod:`ponder.models.host_memory`: 64-row sampling 1.34x faster here); "system" leaves
            the allocator as it is.
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
        host_memory: str = "keep",
        seed: int = 0,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        check_choice("cache mode", cache, CACHE_MODES)  # first, so a bad mode is reported before other arguments
        self.chat = check_choice("chat mode", chat, CHAT_MODES)
        config = compat.text_config(model)
        self.max_context = int(getattr(config, "max_position_embeddings", 2048))
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.live_cache = check_choice("live cache", live_cache, LIVE_CACHES)
        self.host_memory = check_choice("host memory", host_memory, HOST_MEMORY)
        if self.host_memory == "keep":
            keep_freed_pages()
        sliding = compat.has_sliding_window(config)
        if self.live_cache == "auto":
            self.live_cache = "dynamic" if sliding else "growing"
        elif self.live_cache == "growing" and sliding:
            raise ConfigError("live_cache='growing' handles full attention only; this model has sliding-window layers: use 'dynamic' or 'auto'")
        self.prefix = PrefixCache(config.num_hidden_layers, n_kv, head_dim, max_tokens=max_cache_tokens, dtype=model.dtype,
                                  mode=cache, trie=trie)
        self._base = model.base_model
        self._cache_arg = compat.cache_arg_name(self._base)
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
        actions: Sequence[Sequence[Sequence[int]]] | None = None,
        step: Step | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        max_new_tokens: int | None = None,
        logits_hook=None,
    ) -> list[list[Node]]:
        """Sample ``k`` continuation steps of every node (or make the named ones), in one batch.

        Args:
            nodes: parents; finished nodes are an error.
            k: children per parent (>= 1), or one count per parent (>= 0; a parent's prefix is
                prefilled once however many children it gets). Ignored with ``actions``.
            actions: chosen, not sampled successors: ``actions[i]`` is a list of token
                sequences to append to ``nodes[i]``, one child per sequence (step ends "eos"
                when a sequence ends in EOS, else "stop"). The sampling options are then unused.
            step: where a step ends (stop strings, token count); default: 64 tokens.
            temperature, top_p, top_k: see :class:`~ponder.models.sampling.Sampling`.
            seed: seeds this call (one stream per child row, :func:`~ponder.models.sampling.row_seed`);
                None draws a seed from the generator's stream.
            max_new_tokens: cap on the whole answer's generated tokens (a node reaching it is
                finished with reason "max_new_tokens").
            logits_hook: ``fn(states, logits) -> logits``, with ``states[r]`` a
                :class:`~ponder.models.decode.RowState` and ``logits`` [R, V] float32; tokens
                are drawn from the returned logits and each child's ``meta["log_normaliser"]``
                holds the step's log Z (:mod:`ponder.models.decode`).

        Returns:
            ``out[i][j]``: the j-th child of ``nodes[i]``.
        """
        nodes = list(nodes)
        if actions is not None:
            return self._make(nodes, actions)
        counts = children_counts(k, len(nodes))  # [B]
        sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
        step = step or Step()
        if not counts.any():
            return [[] for _ in nodes]
        for node, c in zip(nodes, counts):
            if c and node.finished:
                raise ConfigError(f"cannot expand a finished node ({node.finish_reason}): {node!r}")
        if max_new_tokens is not None and (not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1):
            raise ConfigError(f"max_new_tokens must be an integer >= 1 or None, got {max_new_tokens!r}")
        if logits_hook is not None and not callable(logits_hook):
            raise ConfigError(f"logits_hook must be callable fn(states, logits) -> logits, got {logits_hook!r}")
        if seed is None:
            seed = int(self._rng.integers(2**62))
        kept = np.flatnonzero(counts)  # parents with no children are not computed at all; [B'] their positions
        parents = [nodes[i] for i in kept]
        with torch.inference_mode(), held(self.prefix, prefill(self, [n.tokens for n in parents])) as live:
            if counts[kept].max() > 1:
                live.repeat(self.prefix, counts[kept])
            kids = self._decode(parents, counts[kept], live, step, sampling, seed, max_new_tokens, logits_hook, kept)
        out: list[list[Node]] = [[] for _ in nodes]
        for i, children in zip(kept, kids):
            out[i] = children
        return out

    def _decode(self, parents, counts, live, step, sampling, seed, max_new_tokens, logits_hook, positions):
        return _decode_step(self, parents, counts, live, step, sampling, seed, max_new_tokens, logits_hook, positions)

    def next_token_logprobs(self, nodes: Sequence[Node]) -> np.ndarray:
        """log p(next token | node) for every node.                           # [B, V] float32"""
        nodes = list(nodes)
        if not nodes:
            return np.zeros((0, self.vocab_size), dtype=np.float32)
        with torch.inference_mode(), held(self.prefix, prefill(self, [n.tokens for n in nodes])) as live:
            logits = live.logits
        return torch.log_softmax(logits.float(), dim=-1).numpy()

    def extend(self, nodes: Sequence[Node], tokens: Sequence[Sequence[int]]) -> list[Node]:
        """Append given tokens to each node as one step: ``expand(nodes, actions=[[t] for t in tokens])``.

        The children carry the model's log-probabilities of the appended tokens.
        """
        nodes = list(nodes)
        if len(tokens) != len(nodes):
            raise ConfigError(f"extend got {len(nodes)} nodes but {len(tokens)} token lists")
        return [kids[0] for kids in self.expand(nodes, actions=[[ts] for ts in tokens])]

    def _make(self, nodes: list[Node], actions) -> list[list[Node]]:
        """The children named by ``actions`` (token sequences appended), scored by the model."""
        if len(actions) != len(nodes):
            raise ConfigError(f"expand got {len(nodes)} nodes but {len(actions)} action lists")
        parents, appended = [], []  # one per child
        for node, acts in zip(nodes, actions):
            if len(acts) and node.finished:
                raise ConfigError(f"cannot extend a finished node ({node.finish_reason}): {node!r}")
            for ts in acts:
                ts = tuple(int(t) for t in ts)
                if not ts:
                    raise ConfigError(f"an action needs at least one token; got none for {node!r}")
                if len(node.tokens) + len(ts) > self.max_context:
                    raise ContextLengthError(
                        f"extending a {len(node.tokens)}-token node by {len(ts)} tokens exceeds the context of "
                        f"{self.name!r} ({self.max_context})"
                    )
                bad = [t for t in ts if not 0 <= t < self.vocab_size]
                if bad:
                    raise ConfigError(f"token ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})")
                parents.append(node)
                appended.append(ts)
        children = []
        if parents:
            seqs = [n.tokens + ts for n, ts in zip(parents, appended)]
            score_from = [len(n.tokens) - 1 for n in parents]
            with torch.inference_mode(), held(self.prefix, prefill(self, seqs, score_from=score_from)) as live:
                for i, (node, ts) in enumerate(zip(parents, appended)):
                    start = len(node.tokens) - 1 - int(live.n_past[i])  # hidden column predicting ts[0]
                    logits = self._logits(live.hidden[i, start : start + len(ts)])  # [m, V]
                    logp = torch.log_softmax(logits.float(), dim=-1)[torch.arange(len(ts)), torch.tensor(ts)]
                    children.append(self._child(node, ts, logp.tolist(), "eos" if ts[-1] in self.eos_ids else "stop",
                                                logq=[0.0] * len(ts)))
            ledger.charge(nodes=len(children))
        out, n = [], 0
        for acts in actions:
            out.append(children[n : n + len(acts)])
            n += len(acts)
        return out

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    @property
    def cached_tokens(self) -> int:
        return self.prefix.cached_tokens

    def clear_cache(self) -> None:
        """Evict every unlocked token from the KV cache (benchmarks start cold with this)."""
        self.prefix.clear()

    # ------------------------------------------------------------------ shared by the engine's files

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self._head(hidden)
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def _observe(self, rows: int, width: int) -> None:
        """Report the KV held now (trie + live batch) to the ledgers' peak."""
        ledger.observe_cache(self.cached_tokens + rows * width)

    def _child(self, parent: Node, step_tokens: tuple[int, ...], logps: list[float], reason: str | None, *,
               logq: list[float], log_normaliser: float | None = None) -> Node:
        """A child of ``parent``: the model's log p (``logps``) and the proposal's log q (``logq``) per token."""
        tokens = parent.tokens + tuple(step_tokens)
        step_logprob = float(sum(logps))
        step_proposal_logprob = float(sum(logq))
        parent_q = parent.proposal_logprob if parent.proposal_logprob is not None else parent.logprob  # None: q was p
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
            proposal_logprob=parent_q + step_proposal_logprob,
            step_proposal_logprob=step_proposal_logprob,
            depth=parent.depth + 1,
            finished=finished,
            finish_reason=reason,
            parent=parent,
            meta={} if log_normaliser is None else {"log_normaliser": log_normaliser},
        )
