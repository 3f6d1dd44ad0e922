r"""MCTS over reasoning steps or tool calls, on the batched kernels of :mod:`ponder.kernels.mcts`.

One tree per search, held in the kernel's arrays (node ``n`` of the kernel tree stores the index
of its :class:`~ponder.search.protocols.State` as its embedding); the loop is
:func:`ponder.search.mcts_policies.muzero_policy` with PUCT selection, so budget checks and
progress reach every pass.

**Expansion.** When a leaf state :math:`s` is evaluated, its successors become its actions
:math:`a = 0 \dots A - 1`:

* over LM steps (a generator without ``propose``), :math:`k` next steps are *sampled* at once
  (one batched ``expand`` of all the pass's leaves), and their priors are their step
  log-probabilities normalised over the sampled siblings,
  :math:`P(s, a) = p(y_a \mid s) / \sum_b p(y_b \mid s)` (``priors="proposal"``), or uniform;
* over tool calls (a generator with ``propose``, e.g. :class:`~ponder.models.tools.ToolGenerator`),
  up to :math:`A` calls are *proposed* and run only when selection first takes their edge; priors
  come from the proposer's log-probabilities (uniform for enumerated calls). Slots beyond the
  proposals are invalid actions of that node (the kernel's per-node mask).

:math:`A` is ``k`` for LM steps; for tool calls ``k``, or when None the number of calls
proposed at the root (deeper proposals beyond :math:`A` are cut, in the proposer's order).

**Values.** A new state's value :math:`v(s)` is the verifier's score of it (``value="verifier"``:
a process verifier or a learned value model), or the verifier's score of one sampled completion
from it (``value="rollout"``, LM steps only; the rollout's tokens are charged and its answer is a
candidate too). Finished states (EOS, a solved or dead-end tool state) are terminal nodes of the
kernel: never expanded, and a simulation that reaches one backs up its stored value again without
a model call. Rewards are 0 and discounts 1, so a node's value is the mean of the leaf values
backed up through it, and selection is PUCT,

.. math::  a^* = \arg\max_a \; \bar Q(s, a) + P(s, a)\,\frac{\sqrt{N(s)}}{1 + N(s, a)}
           \left(c_1 + \log\frac{N(s) + c_2 + 1}{c_2}\right),

with :math:`\bar Q` normalised over the node and its visited children.

**Progressive widening** (``widening="progressive"``): a state visited :math:`N` times may hold
:math:`\min(A, \max(k, \lceil c N^\alpha \rceil))` successors; the kernel's tree is allocated
with :math:`A` = ``max_children`` action slots, the extra slots masked until widening fills them
(sampling more steps in one batched call, or unmasking the proposer's next calls).

**Batched selection.** Each pass selects ``leaves`` leaves with virtual visits (a leaf on its way
counts as a visit on every edge of its path: of value 0 with ``virtual="loss"``, of no value with
``virtual="visit"``), so the generator and the verifier see
batches of ``leaves`` states instead of one; with ``leaves=1`` it is sequential MCTS. With
``fill="expansions"`` a pass picks leaves one at a time until ``leaves`` of them are new states to
expand, so each generator call gets that many: a revisit of a terminal state, or a leaf that makes
a finished state (over tool calls its call runs at once), is backed up before the next leaf is
chosen, as in sequential MCTS, while the states to expand wait with virtual visits (each leaf is
one simulation).

**Stopping.** After ``simulations`` simulations, when the budget runs out (``simulations=None``
runs until it does), or, with ``goal="stop"``, at the first solved state (a
:class:`~ponder.search.protocols.ToolState` whose goal is reached, or a finished state whose
score reaches ``accept``). ``stopped`` is "done", "exhausted" (every path ends in a terminal
state that is not a goal) or the budget cap's name.

Result: candidates are the finished states (solved first, then by verifier score), then, if none
finished, the end of the most-visited path; every state's ``meta["visits"]`` and
``meta["value"]`` hold the kernel's statistics; ``info`` has the simulations run, the generator
calls (``generator_passes``), the largest batch of leaves they saw, and the calls that expanded
states (``expansion_calls``, the root's included) with the states they expanded (``states_expanded``;
``expansion_batches`` lists them per call, in order).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from ponder.kernels.mcts import VIRTUALS as KERNEL_VIRTUALS
from ponder.search.config import SamplingConfig, check_int, check_option, check_real, seed_for, stop_strings
from ponder.search.ledger import Budget, Ledger
from ponder.search.mcts_policies import RecurrentFnOutput, RootFnOutput, muzero_policy
from ponder.search.protocols import ConfigError, State, Step
from ponder.search.result import SearchResult, Trace
from ponder.search.verify import require_verifier, score_states

NAME = "mcts"
VALUES = ("verifier", "rollout")
WIDENINGS = ("none", "progressive")
VIRTUALS = tuple(KERNEL_VIRTUALS)  # "loss", "visit": the kernel's rules
PRIORS = ("proposal", "uniform")
FILLS = ("leaves", "expansions")
GOALS = ("stop", "continue")
__all__ = ["MCTSConfig", "NAME", "run"]
_LOW = -1e9  # the prior logit of an empty action slot (masked anyway)


@dataclasses.dataclass(frozen=True)
class MCTSConfig(SamplingConfig):
    """Configuration of MCTS over steps or tool calls.

    Args:
        simulations: simulations to run (None: until the budget runs out; a budget is then needed).
        k: successors per expanded state: steps sampled, or at most this many calls proposed
            (None for tools: as many as the root has).
        leaves: leaves selected per pass (batched into one generator call, spread by virtual visits).
        fill: what ``leaves`` counts: "leaves" (a pass selects that many at once, whatever each
            costs) or "expansions" (a pass selects leaves one by one, up to ``4 * leaves``, until
            that many are new states the generator must expand; a revisit of a terminal state or
            a new finished state is backed up at once, as in sequential MCTS, and the states to
            expand are held with virtual visits for one batched generator call; a leaf that meets
            a held edge only leaves its virtual visits and is not a simulation).
        virtual: what a pending leaf's virtual visit does to PUCT's value term: "loss" (a visit
            of value 0: the pass's leaves spread widely) or "visit" (none: only the exploration
            term drops, as WU-UCT's pending visits, so they stay closer to the sequential search).
        c_puct: ``c_1`` of PUCT (``pb_c_init``).
        c_base: ``c_2`` of PUCT (``pb_c_base``).
        value: "verifier" (score the new state) or "rollout" (score one sampled completion).
        priors: "proposal" (step log-probabilities / proposer scores) or "uniform".
        goal: "stop" (end at the first solved state) or "continue" (spend the whole budget).
        accept: a finished text state whose verifier score is at least this is solved (None:
            text states are never solved; tool states say so themselves).
        stop, step_tokens: where an LM step ends (as in beam search).
        max_depth: the deepest a simulation may go, in steps.
        widening: "none" (``k`` successors per state, fixed) or "progressive": a state visited
            ``N`` times may have ``min(max_children, max(k, ceil(pw_c N^pw_alpha)))`` successors;
            before each pass, visited states below their allowance get more (sampled steps, or the
            next of the proposer's calls), with priors renormalised over the valid actions.
        max_children: the most successors a state may get under progressive widening (``A``).
        pw_c, pw_alpha: the widening schedule's constants (``0 < pw_alpha <= 1``).
        temperature, top_p, top_k, max_new_tokens, seed: see :class:`SamplingConfig`.
    """

    simulations: int | None = 32
    k: int | None = 4
    leaves: int = 1
    fill: str = "leaves"
    virtual: str = "loss"
    c_puct: float = 1.25
    c_base: float = 19652.0
    value: str = "verifier"
    priors: str = "proposal"
    goal: str = "stop"
    accept: float | None = None
    stop: str | tuple[str, ...] = "\n"
    step_tokens: int = 64
    max_depth: int = 16
    widening: str = "none"
    max_children: int | None = None
    pw_c: float = 1.0
    pw_alpha: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_int(owner, "simulations", self.simulations, optional=True)
        check_int(owner, "k", self.k, optional=True)
        check_int(owner, "leaves", self.leaves)
        check_option(owner, "fill", self.fill, FILLS)
        check_option(owner, "virtual", self.virtual, VIRTUALS)
        check_real(owner, "c_puct", self.c_puct, low=0.0)
        check_real(owner, "c_base", self.c_base, low=0.0, low_open=True)
        check_option(owner, "value", self.value, VALUES)
        check_option(owner, "priors", self.priors, PRIORS)
        check_option(owner, "goal", self.goal, GOALS)
        check_real(owner, "accept", self.accept, low=-math.inf, optional=True)
        object.__setattr__(self, "stop", stop_strings(owner, self.stop))
        check_int(owner, "step_tokens", self.step_tokens)
        check_int(owner, "max_depth", self.max_depth)
        check_option(owner, "widening", self.widening, WIDENINGS)
        check_int(owner, "max_children", self.max_children, optional=True)
        check_real(owner, "pw_c", self.pw_c, low=0.0, low_open=True)
        check_real(owner, "pw_alpha", self.pw_alpha, low=0.0, high=1.0)
        if self.widening == "progressive" and (self.k is None or self.max_children is None or self.max_children < self.k):
            raise ConfigError(f"{owner}: widening='progressive' needs k and max_children >= k (got k={self.k}, max_children={self.max_children})")


def run(
    generator: Any,
    verifier: Any,
    prompt: Any,
    *,
    budget: Budget | None = None,
    config: MCTSConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """MCTS from ``generator.root(prompt)``.

    Args:
        generator: an LM (``root``, ``expand``) or a tool generator (also ``propose``).
        verifier: the value: a process verifier or value model scoring states (a registered name
            or ``fn(prompt, text) -> float`` through ``ponder.search``).
        prompt: the prompt or puzzle.
        budget: caps (``tokens``, ``tool_calls``, ``seconds``, ...).
        config: an :class:`MCTSConfig`.
        progress: called as ``progress(ledger, budget)`` after every pass.
        cancel: an event (``is_set()``) that ends the search at its next pass.

    Raises:
        ConfigError: ``simulations=None`` without a budget; ``value="rollout"`` over tool calls.
        VerifierError: the verifier failed; ``partial`` holds the tree so far.
        SearchCancelled: Ctrl-C or ``cancel``; ``partial`` likewise.
    """
    config = config or MCTSConfig()
    verifier = require_verifier(verifier, algorithm="mcts")
    if config.simulations is None and (budget is None or not budget.caps):
        raise ConfigError("mcts with simulations=None runs until the budget runs out: give a budget (e.g. Budget(tokens=2000))")
    tools = callable(getattr(generator, "propose", None))
    if tools and config.value == "rollout":
        raise ConfigError("mcts value='rollout' samples completions from an LM; over tool calls use value='verifier'")
    return _Search(generator, verifier, config, Trace(NAME, config, budget, progress, cancel), tools).run(prompt)


class _Search:
    def __init__(self, gen, verifier, config: MCTSConfig, trace: Trace, tools: bool):
        self.gen, self.verifier, self.config, self.trace, self.tools = gen, verifier, config, trace, tools
        self.slots: dict[int, list] = {}  # state index -> its actions: State (LM) or Proposal (tools)
        self.made: dict[tuple[int, int], State] = {}  # (state index, action) -> the state, once run
        self.goal: State | None = None
        self.finished: list[State] = []
        self.calls = 0
        self.largest = 0
        self.batches: list[int] = []  # per generator call that gave states their successors: how many, in call order
        self.A = 1
        self.tree = None
        self.unexplored = 0  # action slots of expanded states not yet taken: 0 means exhausted
        self.pool: dict[int, list] = {}  # tool states: proposals held back for progressive widening

    # -- the search -----------------------------------------------------------------------------

    def run(self, prompt) -> SearchResult:
        cfg, trace = self.config, self.trace
        stopped = "done"
        with trace.running(self._partial):
            root = self.gen.root(prompt)
            trace.add([root])
            value = score_states(self.verifier, [root])
            if self._solved(root):
                self.goal = root
                return self._result("done")
            if root.finished:
                return self._result("exhausted")
            if cfg.widening == "progressive":
                self.A = cfg.max_children
            first = self._successors([root])[0]
            if cfg.widening != "progressive":
                self.A = max(1, cfg.k if cfg.k is not None else len(first))
            if not first:
                return self._result("exhausted")
            self.slots[root.index] = self._take(root, first)
            self.unexplored = len(self.slots[root.index])
            logits, invalid = self._priors([root])
            reason = {"why": None}

            def should_stop():
                if self.goal is not None and cfg.goal == "stop":
                    return "goal"
                if self.unexplored == 0:  # every path ends in a terminal state
                    return "exhausted"
                cap = trace.step_done()
                if cap is not None:
                    reason["why"] = cap
                return cap

            out = muzero_policy(
                RootFnOutput(prior_logits=logits, value=value, embedding=np.array([root.index], np.int64)),
                self._recurrent, cfg.simulations, invalid_actions=invalid, max_depth=cfg.max_depth, num_leaves=cfg.leaves, virtual=cfg.virtual,
                dirichlet_fraction=0.0, pb_c_init=cfg.c_puct, pb_c_base=cfg.c_base, rng=cfg.seed,
                should_stop=should_stop, widen=self._widen if cfg.widening == "progressive" else None,
                fill=self._costly if cfg.fill == "expansions" else None)
            self.tree = out.search_tree
            if reason["why"] is not None:
                stopped = reason["why"]
            elif self.goal is None and self.unexplored == 0:
                stopped = "exhausted"
        return self._result(stopped)

    def _recurrent(self, params, rng, actions, embeddings):
        """Evaluate the pass's leaves: run (or fetch) the chosen successors, score them, expand
        the ones that go on. ``actions [M]``, ``embeddings [M]`` (parent state indices)."""
        M = len(actions)
        self.calls += 1
        self.largest = max(self.largest, M)
        edges = [(int(p), int(a)) for p, a in zip(embeddings, actions)]
        self._make(edges)
        children = [self.made[e] for e in edges]
        unique = list(dict.fromkeys(children))  # scored once each
        where = {id(c): i for i, c in enumerate(unique)}
        values = self._values(unique)[[where[id(c)] for c in children]]  # [M]
        terminal = np.array([c.finished or c.depth >= self.config.max_depth or c.index in self.slots and not self.slots[c.index] for c in children])
        for c in children:
            if c.finished and c not in self.finished:
                self.finished.append(c)
            if self.goal is None and self._solved(c):
                self.goal = c
        # each new state once: two leaves of a pass may end at the same edge
        grow = list(dict.fromkeys(c for c, t in zip(children, terminal) if not t and c.index not in self.slots))
        if grow:
            for c, succ in zip(grow, self._successors(grow)):
                self.slots[c.index] = self._take(c, succ)
                self.unexplored += len(self.slots[c.index])
        for i, c in enumerate(children):  # a state with no successors is a dead end
            if not terminal[i] and not self.slots.get(c.index):
                terminal[i] = True
        logits, invalid = self._priors(children)
        return (RecurrentFnOutput(reward=np.zeros(M), discount=np.ones(M), prior_logits=logits, value=values,
                                  invalid_actions=invalid, is_terminal=terminal),
                np.array([c.index for c in children], np.int64))

    def _make(self, edges: list[tuple[int, int]]) -> None:
        """Put each edge's state in ``made``: run the chosen calls (one batched expand), or take the
        step sampled when its parent was expanded."""
        todo = list(dict.fromkeys(e for e in edges if e not in self.made))  # each new edge once
        if not todo:
            return
        if self.tools:
            fresh = [kids[0] for kids in self.gen.expand([self.trace.tree[p] for p, _ in todo], actions=[[self.slots[p][a]] for p, a in todo])]
            self.trace.add(fresh)
        else:
            fresh = [self.slots[p][a] for p, a in todo]
        self.made.update(zip(todo, fresh))
        self.unexplored -= len(todo)  # made edges reach the kernel's tree in the same pass

    def _costly(self, actions, embeddings, evaluate) -> np.ndarray:
        """``fill="expansions"``: is this new leaf (``[1]`` arrays) a state the generator must
        expand, one that goes on and has no successors yet? Over tool calls its call runs now."""
        edge = (int(embeddings[0]), int(actions[0]))
        self._make([edge])
        c = self.made[edge]
        return np.array([not (c.finished or c.depth >= self.config.max_depth) and c.index not in self.slots])

    # -- successors, priors, values -------------------------------------------------------------

    def _take(self, state: State, successors: list) -> list:
        """The successors a newly expanded state starts with (the rest of a tool state's
        proposals wait in ``pool`` for progressive widening)."""
        start = self.config.k if self.config.widening == "progressive" else self.A
        if self.tools:
            self.pool[state.index] = list(successors[start:self.A])
            self.unexplored += len(self.pool[state.index])  # slots widening may still open
        elif self.config.widening == "progressive" and successors:
            self.unexplored += self.A - min(start, len(successors))
        return list(successors[:start])

    def _widen(self, t) -> None:
        """Before a pass: give visited, open states below their allowance more successors."""
        cfg, tree = self.config, self.trace.tree
        n = int(t.num_nodes[0])
        visits = t.node_visits[0, :n]
        allowed = np.minimum(self.A, np.maximum(cfg.k, np.ceil(cfg.pw_c * visits.astype(np.float64) ** cfg.pw_alpha))).astype(int)
        have = (~t.children_invalid[0, :n]).sum(-1)
        todo = [(node, int(allowed[node] - have[node])) for node in np.flatnonzero((visits > 0) & ~t.terminal[0, :n] & (have < allowed))]
        todo = [(node, need) for node, need in todo if self.slots.get(int(t.embeddings[0, node]))]  # expanded, not a dead end
        if self.tools:
            todo = [(node, min(need, len(self.pool.get(int(t.embeddings[0, node]), [])))) for node, need in todo]
            todo = [(node, need) for node, need in todo if need > 0]
        if not todo:
            return
        states = [tree[int(t.embeddings[0, node])] for node, _ in todo]
        if self.tools:
            extra = []
            for s, (_, need) in zip(states, todo):
                extra.append(self.pool[s.index][:need])
                self.pool[s.index] = self.pool[s.index][need:]
        else:
            step = Step(max_tokens=self.trace.step_tokens(sum(need for _, need in todo), cfg.step_tokens), stop=cfg.stop)
            extra = self.gen.expand(states, [need for _, need in todo], step=step, **cfg.sampling(20_000 + self.calls))
            self.trace.add([c for group in extra for c in group])
        for (node, _), s, more in zip(todo, states, extra):
            self.slots[s.index].extend(more)  # counted in `unexplored` since their state's expansion
            logits, invalid = self._priors([s])
            t.children_prior_logits[0, node] = np.where(invalid[0], np.finfo(np.float64).min, logits[0])
            t.children_invalid[0, node] = invalid[0]
            z = np.where(invalid[0], -np.inf, logits[0])
            p = np.exp(z - z.max())
            t.children_priors[0, node] = p / p.sum()

    def _successors(self, states: list[State]) -> list[list]:
        cfg = self.config
        self.batches.append(len(states))
        if self.tools:  # under widening, all up to max_children: the first k open, the rest pooled
            return self.gen.propose(states, self.A if cfg.widening == "progressive" else cfg.k, seed=seed_for(cfg.seed, self.calls))
        rows = len(states) * cfg.k
        step = Step(max_tokens=self.trace.step_tokens(rows, cfg.step_tokens), stop=cfg.stop)
        kids = self.gen.expand(states, cfg.k, step=step, **cfg.sampling(self.calls))
        self.trace.add([c for group in kids for c in group])
        return kids

    def _priors(self, states: list[State]) -> tuple[np.ndarray, np.ndarray]:
        """``prior_logits [M, A]`` and ``invalid [M, A]`` from each state's successors."""
        M, A = len(states), self.A
        logits = np.full((M, A), _LOW)
        invalid = np.ones((M, A), np.bool_)
        for i, s in enumerate(states):
            succ = self.slots.get(s.index, [])
            for a, x in enumerate(succ):
                invalid[i, a] = False
                if self.config.priors == "uniform":
                    logits[i, a] = 0.0
                elif self.tools:
                    logits[i, a] = x.logprob
                else:
                    logits[i, a] = x.step_logprob
        return logits, invalid

    def _values(self, states: list[State]) -> np.ndarray:
        if self.config.value == "verifier":
            return score_states(self.verifier, states)
        out = score_states(self.verifier, states)  # finished states keep their own score
        open_ = [i for i, s in enumerate(states) if not s.finished]
        if open_:
            left = [max(1, self.config.max_new_tokens - (len(states[i].tokens) - states[i].prompt_len)) for i in open_]
            step = Step(max_tokens=self.trace.step_tokens(len(open_), max(left)))
            rollouts = [kids[0] for kids in self.gen.expand([states[i] for i in open_], 1, step=step, **self.config.sampling(10_000 + self.calls))]
            self.trace.add(rollouts)
            for r in rollouts:
                r.meta["rollout"] = True
                if r.finished:
                    self.finished.append(r)
                    if self.goal is None and self._solved(r):
                        self.goal = r
            out[open_] = score_states(self.verifier, rollouts)
        return out

    # -- results --------------------------------------------------------------------------------

    def _solved(self, state: State) -> bool:
        solved = getattr(state, "solved", None)
        if solved is not None:
            return bool(solved)
        if self.config.accept is None or not state.finished:
            return False
        score = state.scores.get(self.verifier.name)
        return score is not None and score >= self.config.accept

    def _annotate(self) -> None:
        t = self.tree
        if t is None:
            return
        tree = self.trace.tree
        n = int(t.num_nodes[0])
        for node in range(n):
            if t.node_visits[0, node] == 0:  # a slot reserved but never written
                continue
            s = tree[int(t.embeddings[0, node])]
            s.meta["visits"] = int(t.node_visits[0, node])
            s.meta["value"] = float(t.node_values[0, node])

    def _ranked(self) -> tuple[list[State], list[float]]:
        name = self.verifier.name
        finished = sorted(self.finished, key=lambda s: (not self._solved(s), -s.scores.get(name, -math.inf)))
        if finished:
            return finished, [float(s.scores.get(name, math.nan)) for s in finished]
        tree = self.trace.tree
        if self.tree is None:
            return [tree[0]], [float(tree[0].scores.get(name, math.nan))]
        t, node = self.tree, 0
        while True:  # follow the most visited child
            kids = t.children_index[0, node]
            visits = np.where(kids >= 0, t.children_visits[0, node], -1)
            if visits.max() <= 0:
                break
            node = int(kids[int(np.argmax(visits))])
        s = tree[int(t.embeddings[0, node])]
        return [s], [float(s.scores.get(name, math.nan))]

    def _info(self) -> dict:
        done = None if self.tree is None else self.tree.extra_data.get("num_simulations_done")
        return {"solved": self.goal is not None, "simulations": done,
                "generator_passes": self.calls, "largest_batch": self.largest, "finished": len(self.finished),
                "expansion_calls": len(self.batches), "states_expanded": sum(self.batches),
                "expansion_batches": list(self.batches)}

    def _partial(self):
        nodes, scores = self._ranked()
        return nodes, scores, self._info()

    def _result(self, stopped: str) -> SearchResult:
        self._annotate()
        nodes, scores = self._ranked()
        return self.trace.result(nodes, scores, stopped, info=self._info())
