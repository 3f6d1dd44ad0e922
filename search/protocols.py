"""What flows between generators, verifiers and searches.

Searches speak only to these protocols; ``ponder.models`` and ``ponder.verifiers`` implement
them. Nothing here imports torch, and importing this module loads no algorithm.

States. Every search state is a :class:`State`: its parent, depth, whether it is finished, the
model's and the proposal's log-probabilities, a path cost, verifier scores, free annotations and
a dense per-search ``index``. A state's :attr:`~State.candidate` is what a verifier judges.
Each kind of generator has its subclass:

==============  =========================================  ==================================
subclass        what it adds                               issue
==============  =========================================  ==================================
:class:`Node`   a position in a token trie: tokens, text   text searches (LM)
latent          x_t, t, x0 prediction                      particle steering (diffusion)
                (:class:`LatentState`)
simulator       snapshot, frame, reward                    Go-Explore
tool call       the call made and its result, the world    A* and MCTS over tool calls
                it left (:class:`ToolState`)
==============  =========================================  ==================================

(simulator states arrive with their family's issue, on this base).

Generators answer one expansion protocol (:class:`Expander`): ``root(...)`` makes the depth-0
state and ``expand(states, k=1, *, actions=None, **options)`` its successors, ``out[i][j]``
being the j-th child of ``states[i]``. ``k`` children are *sampled* per state, or, with
``actions``, the successors named by ``actions[i]`` (a simulator action, a tool call, tokens to
append) are made, one per action. Token-level extras (``next_token_logprobs``) are the
:class:`TokenGenerator` sub-protocol of language models.

Verifiers score candidates in batches (:class:`Verifier`): ``score(prompts, candidates)``,
higher is better. For text states the candidate is the generated text, so a verifier written as
``fn(prompt, text)`` keeps working; an image, a tool trace or a simulator state is judged the
same way once its state type says what its candidate is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence, runtime_checkable

from ponder.search.errors import ConfigError, PonderError, SearchCancelled, SearchInterrupted, check_choice

__all__ = [
    "ConfigError",
    "Call",
    "Expander",
    "FINISH_REASONS",
    "Generator",
    "KINDS",
    "LatentState",
    "Node",
    "Observation",
    "PonderError",
    "SearchCancelled",
    "SearchInterrupted",
    "State",
    "Step",
    "TokenGenerator",
    "ToolState",
    "Verifier",
    "check_choice",
]

FINISH_REASONS = ("eos", "stop", "length", "max_new_tokens", "context")


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class State:
    r"""A search state of any kind (the base of every generator's states).

    Attributes:
        prompt: what the search is conditioned on (the user's prompt, a puzzle, a class label);
            verifiers receive it beside the candidate.
        parent: the state this one was expanded from (None for a root).
        depth: expansions from the root (the root has depth 0).
        finished: True when no successor may follow (an answer ended, a terminal state).
        logprob: :math:`\log p` of the path under the model (0 where there is no model).
        proposal_logprob: :math:`\log q` of the path under the proposal that drew it (tempered,
            truncated or masked sampling), or None when the proposal is the model itself.
            SMC and FK weights need :math:`\log p - \log q` (:attr:`log_weight_correction`).
        cost: the path cost :math:`g` (A*'s accumulated step costs).
        scores: verifier scores cached by verifier name, so no state is scored twice.
        meta: free-form annotations by searches and generators.
        index: the state's dense index in the search that created it (0 for its root, then in
            creation order), assigned by the search's :class:`~ponder.search.result.Trace`;
            None for a state made outside a search. Kernels may store it as a handle.
    """

    prompt: Any = None
    parent: "State | None" = None
    depth: int = 0
    finished: bool = False
    logprob: float = 0.0
    proposal_logprob: float | None = None
    cost: float = 0.0
    scores: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    index: int | None = None

    @property
    def id(self) -> int | None:
        """The state's dense per-search index (another name of :attr:`index`)."""
        return self.index

    @property
    def candidate(self) -> Any:
        """What a verifier judges: the state itself here; subclasses narrow it (text, image, trace)."""
        return self

    @property
    def log_weight_correction(self) -> float:
        r""":math:`\log p - \log q` of the path (0 when the proposal is the model)."""
        return 0.0 if self.proposal_logprob is None else self.logprob - self.proposal_logprob

    def path(self) -> list["State"]:
        """Root-to-self list of states."""
        out, state = [], self
        while state is not None:
            out.append(state)
            state = state.parent
        return out[::-1]

    def as_dict(self) -> dict:
        """The state's own fields as plain values (the parent as its index)."""
        out = {"index": self.index, "parent": None if self.parent is None else self.parent.index}
        for field in dataclasses.fields(self):
            if field.name in ("parent", "index", "prompt"):
                continue
            out[field.name] = plain_data(getattr(self, field.name))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(index={self.index}, depth={self.depth}, finished={self.finished}, logprob={self.logprob:.2f})"


def plain_data(value: Any) -> Any:
    """``value`` as JSON-ready data: tuples as lists, non-finite floats as None, objects as repr."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy scalars
        return plain_data(value.item())
    if isinstance(value, float) or hasattr(value, "__float__"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return repr(value)
        return number if number == number and abs(number) != float("inf") else None
    return repr(value)


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class Node(State):
    """A text state: a prompt and what has been generated after it, in steps.

    Attributes (beyond :class:`State`'s):
        tokens: the whole sequence, prompt included.                      # [T]
        prompt_len: how many of ``tokens`` are the prompt.
        prompt: the user's prompt text (before any chat template).
        text: the generated text after the prompt (all steps): the :attr:`candidate`.
        step_tokens: the tokens of the last step.                          # [S]
        step_text: the text of the last step.
        logprob: sum of log p(token) over all generated tokens, under the model (T = 1,
            untruncated).
        step_logprob: the same over the last step.
        proposal_logprob: sum of log q(token) under the distribution the tokens were drawn from
            (temperature, top-k/p and any logits hook applied); None for the root.
        step_proposal_logprob: the same over the last step.
        finish_reason: why the last step ended: one of ``FINISH_REASONS`` ("stop" and
            "length" end a step but not the answer) or None for the root.
    """

    tokens: tuple[int, ...]
    prompt_len: int
    prompt: str = ""
    text: str = ""
    step_tokens: tuple[int, ...] = ()
    step_text: str = ""
    step_logprob: float = 0.0
    step_proposal_logprob: float | None = None
    finish_reason: str | None = None

    @property
    def candidate(self) -> str:
        """The generated text after the prompt (what text verifiers judge)."""
        return self.text

    @property
    def n_generated(self) -> int:
        return len(self.tokens) - self.prompt_len

    def as_dict(self) -> dict:
        out = {
            "id": self.index,
            "parent": None if self.parent is None else self.parent.index,
            "depth": self.depth,
            "text": self.text,
            "step_text": self.step_text,
            "n_generated": self.n_generated,
            "step_tokens": len(self.step_tokens),
            "logprob": plain_data(self.logprob),
            "proposal_logprob": plain_data(self.proposal_logprob),
            "cost": plain_data(self.cost),
            "finished": self.finished,
            "finish_reason": self.finish_reason,
            "scores": plain_data(self.scores),
            "meta": plain_data(self.meta),
        }
        return out

    def __repr__(self) -> str:
        text = self.text if len(self.text) < 60 else self.text[:28] + " ... " + self.text[-27:]
        return (
            f"Node(id={self.index}, depth={self.depth}, tokens={len(self.tokens)}, logprob={self.logprob:.2f}, "
            f"finished={self.finished}, text={text!r})"
        )


@dataclasses.dataclass(frozen=True)
class Call:
    """One tool call: the tool's name and its positional arguments (hashable, so equal calls can be
    counted and deduplicated)."""

    tool: str
    args: tuple = ()

    def __str__(self) -> str:
        return f"{self.tool}({', '.join(str(a) for a in self.args)})"


OBSERVATION_STATUSES = ("ok", "error", "timeout", "rejected")


@dataclasses.dataclass(frozen=True)
class Observation:
    """What a tool call returned: ``status="ok"`` with its ``value``; ``"error"`` (the tool raised),
    ``"timeout"`` (it overran its time limit) or ``"rejected"`` (bad arguments or an illegal call,
    refused before the tool ran), each with ``error`` saying what happened."""

    status: str
    value: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        return str(self.value) if self.ok else f"{self.status}: {self.error}"


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class ToolState(State):
    """A tool-call state: the call that led here, what it returned, and the world it left.

    The path from the root lists the calls made so far with their results (:attr:`calls`). The
    ``world`` is what the tools act on (the remaining numbers of a Game of 24 puzzle, a file
    system, a database), kept as the environment's own value; :attr:`candidate` is the world, so a
    value verifier judges the state the calls produced. ``key`` is the environment's hashable
    identity of the world (equal keys are the same state to a search that deduplicates);
    ``solved`` says the environment's goal is reached (``finished`` is then True too).

    Attributes (beyond :class:`State`'s):
        world: the environment's state after the calls.
        key: a hashable identity of ``world``.
        call: the call that made this state from its parent (None at the root).
        observation: what ``call`` returned (None at the root).
        solved: the goal is reached.
    """

    world: Any = None
    key: Any = None
    call: Call | None = None
    observation: Observation | None = None
    solved: bool = False

    @property
    def candidate(self) -> Any:
        """The world the calls left (what a value verifier judges)."""
        return self.world

    @property
    def calls(self) -> list[tuple[Call, Observation]]:
        """The calls made from the root to here, with their results."""
        return [(s.call, s.observation) for s in self.path()[1:]]

    def as_dict(self) -> dict:
        out = {"index": self.index, "parent": None if self.parent is None else self.parent.index, "depth": self.depth,
               "call": None if self.call is None else str(self.call),
               "observation": None if self.observation is None else str(self.observation),
               "world": plain_data(self.world), "solved": self.solved, "finished": self.finished,
               "cost": plain_data(self.cost), "logprob": plain_data(self.logprob),
               "proposal_logprob": plain_data(self.proposal_logprob), "scores": plain_data(self.scores),
               "meta": plain_data(self.meta)}
        return out

    def __repr__(self) -> str:
        return (f"ToolState(index={self.index}, depth={self.depth}, call={self.call}, "
                f"observation={self.observation}, solved={self.solved}, world={self.world!r})")


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class LatentState(State):
    r"""A diffusion particle: the sample :math:`x_t` at one step of a denoising schedule.

    A root (``step == -1``) holds no sample: expanding it draws :math:`x_T` from the prior. Every
    later state is one denoising step further, :math:`x_{t_{i}} \to x_{t_{i+1}}`, and holds the
    model's prediction :math:`\hat x_0(x_t)` made on the way (what intermediate rewards judge).
    The state after the last step is ``finished``, and its ``x`` is the sample.

    Tensors are the generator's (torch, one particle each, no batch axis); the search code never
    looks inside them, it stacks nothing and only reads :attr:`candidate`.

    Attributes (beyond :class:`State`'s):
        x: the sample :math:`x_t` (latent or pixel space), None at the root.      # [C, H, W]
        x0: the prediction :math:`\hat x_0` made from the parent's sample (None at the root and
            at the first sample, which no denoiser has seen).                       # [C, H, W]
        t: the scheduler's timestep of ``x`` (None at the root; 0 after the last step).
        step: the position in the schedule: -1 root, 0 just drawn :math:`x_T`, ``steps`` done.
        steps: the schedule's length (denoising steps from :math:`x_T` to the sample).
        image: pixels of ``x0`` (or of ``x`` once finished) when the generator had to decode
            latents for a reward (``generator.decode``); None until then.       # [3, H', W']
        latent: True when ``x`` lives in a VAE's latent space.
    """

    x: Any = None
    x0: Any = None
    t: int | None = None
    step: int = -1
    steps: int = 0
    image: Any = None
    latent: bool = False

    @property
    def candidate(self) -> Any:
        """What a reward judges: the pixels of the x0 prediction (the sample itself once finished).

        Raises:
            PonderError: a latent state whose pixels were not decoded (the generator's
                ``decode(states)`` decodes them in batches).
        """
        if self.image is not None:
            return self.image
        if self.latent:
            raise PonderError(f"{self!r} is latent and its pixels were not decoded: call generator.decode(states) first")
        return self.x if self.finished or self.x0 is None else self.x0

    def as_dict(self) -> dict:
        return {"index": self.index, "parent": None if self.parent is None else self.parent.index, "depth": self.depth,
                "step": self.step, "steps": self.steps, "t": self.t, "finished": self.finished, "latent": self.latent,
                "logprob": plain_data(self.logprob), "scores": plain_data(self.scores), "meta": plain_data(self.meta)}

    def __repr__(self) -> str:
        return f"LatentState(index={self.index}, step={self.step}/{self.steps}, t={self.t}, finished={self.finished})"


@dataclasses.dataclass(frozen=True)
class Step:
    """Where one text expansion step ends: at the first stop string, after ``max_tokens``, or at EOS.

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
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ConfigError(f"Step.max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ConfigError(f"Step.min_tokens must be in [0, max_tokens={self.max_tokens}], got {self.min_tokens}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"Step.stop must hold non-empty strings, got {self.stop!r}")


@runtime_checkable
class Expander(Protocol):
    """The expansion protocol every search drives (any generator: LM, diffusion, simulator, tools)."""

    def root(self, prompt: Any, **options) -> State:
        """The depth-0 state of ``prompt``."""

    def expand(self, states: Sequence[State], k: int | Sequence[int] = 1, *, actions: Sequence[Sequence[Any]] | None = None, **options) -> list[list[State]]:
        """Successors of every state: ``k`` sampled (or ``k[i]`` for ``states[i]``), or one per
        action of ``actions[i]``; ``out[i][j]`` is the j-th child of ``states[i]``."""


@runtime_checkable
class TokenGenerator(Expander, Protocol):
    """A language model over a shared token trie (see ``ponder.models.lm``): the expansion
    protocol on :class:`Node` states (``expand(..., step=Step(...))``; ``actions[i]`` are token
    sequences to append) plus token-level access."""

    def next_token_logprobs(self, nodes: Sequence[Node]) -> Any:
        """log p(next token | node) for every node.                          # [B, V]"""


Generator = TokenGenerator  # the name searches used before the protocol was generic

KINDS = ("outcome", "process", "token")


@runtime_checkable
class Verifier(Protocol):
    """Scores candidates in batches; higher is better.

    ``kind`` is "outcome" (whole answers), "process" (partial answers / steps) or "token"
    (a vector over the vocabulary for one prefix). A candidate is whatever the states being
    judged hold (:attr:`State.candidate`): a text for LM states.
    """

    name: str
    kind: str

    def score(self, prompts: Sequence[Any], candidates: Sequence[Any]) -> Any:
        """One float per (prompt, candidate) pair.                           # [B]"""
