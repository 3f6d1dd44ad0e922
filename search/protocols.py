"""What flows between generators, verifiers and searches.

Searches speak only to these protocols; ``ponder.models`` and ``ponder.verifiers`` implement
them. Nothing here imports torch.

Text states are :class:`Node` objects: a node is a position in the token trie of its generator
(prompt + generated tokens) plus what a search needs to know about it. Other state kinds
(diffusion latents, simulator snapshots, tool-call lists) get their own node types with their
family's issue; the generic parts (``parent``, ``depth``, ``scores``) are shared by name.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

_ids = itertools.count()


class PonderError(Exception):
    """Base class of ponder's errors."""


class ConfigError(PonderError, ValueError):
    """A bad configuration value (unknown option, negative width, ...)."""


class SearchInterrupted(PonderError):
    """Raised out of a search when a component fails mid-way.

    Attributes:
        partial: the search's result so far (best candidates, tree, ledger), so nothing
            already computed is lost. Set by the search before the error propagates.
    """

    partial: Any = None

FINISH_REASONS = ("eos", "stop", "length", "max_new_tokens", "context")


@dataclasses.dataclass(eq=False, repr=False)
class Node:
    """A text state: a prompt and what has been generated after it, in steps.

    Attributes:
        tokens: the whole sequence, prompt included.                      # [T]
        prompt_len: how many of ``tokens`` are the prompt.
        prompt: the user's prompt text (before any chat template).
        text: the generated text after the prompt (all steps).
        step_tokens: the tokens of the last step.                          # [S]
        step_text: the text of the last step.
        logprob: sum of log p(token) over all generated tokens, under the sampling model.
        step_logprob: the same over the last step.
        depth: steps from the root (the root, the bare prompt, has depth 0).
        finished: True when no further step may follow (EOS, context full, max length).
        finish_reason: why the last step ended: one of ``FINISH_REASONS`` ("stop" and
            "length" end a step but not the answer) or None for the root.
        parent: the node this one was expanded from.
        scores: verifier scores cached by verifier name, so no node is scored twice.
        meta: free-form annotations by searches (e.g. the answer a majority vote extracted).
    """

    tokens: tuple[int, ...]
    prompt_len: int
    prompt: str = ""
    text: str = ""
    step_tokens: tuple[int, ...] = ()
    step_text: str = ""
    logprob: float = 0.0
    step_logprob: float = 0.0
    depth: int = 0
    finished: bool = False
    finish_reason: str | None = None
    parent: "Node | None" = None
    scores: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    id: int = dataclasses.field(default_factory=lambda: next(_ids))

    @property
    def n_generated(self) -> int:
        return len(self.tokens) - self.prompt_len

    def path(self) -> list["Node"]:
        """Root-to-self list of nodes."""
        out, node = [], self
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def __repr__(self) -> str:
        text = self.text if len(self.text) < 60 else self.text[:28] + " ... " + self.text[-27:]
        return (
            f"Node(id={self.id}, depth={self.depth}, tokens={len(self.tokens)}, logprob={self.logprob:.2f}, "
            f"finished={self.finished}, text={text!r})"
        )


@dataclasses.dataclass(frozen=True)
class Step:
    """Where one expansion step ends: at the first stop string, after ``max_tokens``, or at EOS.

    Args:
        max_tokens: the most tokens one step may generate.
        stop: strings that end a step (the step keeps the token that completes the string).
        min_tokens: EOS is suppressed until the step has this many tokens (benchmarks use it to
            fix output lengths; recorded log-probabilities stay the model's).
    """

    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    min_tokens: int = 0

    def __post_init__(self):
        if self.max_tokens < 1:
            raise ConfigError(f"Step.max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ConfigError(f"Step.min_tokens must be in [0, max_tokens={self.max_tokens}], got {self.min_tokens}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"Step.stop must hold non-empty strings, got {self.stop!r}")


@runtime_checkable
class Generator(Protocol):
    """A language-model generator over a shared token trie (see ``ponder.models.lm``)."""

    def root(self, prompt: str, *, chat: str = "auto") -> Node:
        """The depth-0 node of ``prompt`` (chat template applied when ``chat`` says so)."""

    def expand(self, nodes: Sequence[Node], k: int | Sequence[int] = 1, *, step: Step | None = None, **sampling) -> list[list[Node]]:
        """k sampled continuation steps of every node (or ``k[i]`` of ``nodes[i]``): ``out[i][j]`` is the j-th child of ``nodes[i]``."""

    def next_token_logprobs(self, nodes: Sequence[Node]) -> np.ndarray:
        """log p(next token | node) for every node.                          # [B, V]"""

    def extend(self, nodes: Sequence[Node], tokens: Sequence[Sequence[int]]) -> list[Node]:
        """Append given tokens to each node (one step each), computing their KV."""


KINDS = ("outcome", "process", "token")


@runtime_checkable
class Verifier(Protocol):
    """Scores candidates in batches; higher is better.

    ``kind`` is "outcome" (whole answers), "process" (partial answers / steps) or "token"
    (a vector over the vocabulary for one prefix).
    """

    name: str
    kind: str

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """One float per (prompt, text) pair.                                # [B]"""


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid choices: {', '.join(map(str, choices))}")
    return value
