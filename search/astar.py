r"""A* (and best-first, DFS, BFS) over any expansion protocol: tool calls, LM steps, simulator actions.

Best-first search on :mod:`ponder.kernels.heap` with priority :math:`f = g + w\,h`, as ToolChain*
(Zhuang et al., 2024) frames tool use: states are nodes of a decision tree, edges are calls.

**Path cost** :math:`g`. A state's ``cost`` is its parent's plus the step cost of the call or step
that made it: ``cost="unit"`` (1 per step, for enumerated proposals) or ``cost="logprob"``, the
proposal's negative log-probability :math:`-\log q(a \mid s)`; for an
:class:`~ponder.models.tools.LMProposer` that is :math:`-\log(c / k)`, the call's
self-consistency frequency among ``k`` sampled calls (ToolChain*'s choice), for LM steps the
step's :math:`-\log p`. With ``step_verifier`` (a process verifier judging each state a step
made, e.g. the ``arithmetic`` checker of an LM's reasoning step) the step cost gains
:math:`w_g\,t(v)`, its score through the same transform as the heuristic's
(:math:`t(v) = -\log v` or :math:`-v`) times ``step_weight``: a path pays for every step the
verifier doubts, so g is "cost so far" in probability and in plausibility. Under
``heuristic_on="calls"`` the term joins a state's g once its call has run.

**Heuristic** :math:`h = b + w\,u`. A verifier's score :math:`v \in (0, 1]` (a learned value, an
LM's estimate) becomes :math:`u = -\log v` (``transform="neg_log"``; scores at or below 0 give
:math:`u = -\log(\text{tiny}) \approx 708`, last in line), or :math:`u = -v` for scores of any
sign (``transform="neg"``). :math:`b` is a lower bound on the steps still needed, when the
generator knows one (``generator.cost_to_go(states)``; a Game of 24 state of ``n`` numbers needs
``n - 1`` more calls) and costs are unit; 0 otherwise. Without it, unit costs make A* sweep every
shallow state whose value is high before going one step deeper; with it, :math:`g + b` is the
same for every path of a fixed-length task, and the order is the value's. For a proposed call,
:math:`b` is the parent's bound less the one step the call takes. What the verifier judges is
chosen by ``heuristic_on``:

* ``"states"``: the state a call produced (a value over states). The call must run before it can
  be scored, so an expansion executes every proposed call of the popped state, scores the
  children, and pushes them.
* ``"calls"``: the pair ``(state.candidate, call)`` *before* the call runs (a policy over calls).
  The frontier then holds proposed calls, :math:`f = g(s) + c(s, a) + w\,h(s, a)`; popping one
  executes that one call. The ledger's ``tool_calls`` then counts only the calls the search chose
  to run, and ``calls_scored`` the candidates it judged, so what the heuristic saves is visible.

  With unit costs and the bound, :math:`g + b` is the same for every call, so the order is the
  latest call's :math:`u(s, a)` alone: a confident call below a doubtful one ranks as high as a
  confident call at the root. ``path_weight`` :math:`\lambda` makes each call that runs add
  :math:`\lambda\,w\,u(s, a)` to the g of the state it makes, so a call's priority is
  :math:`w\,u(s, a) + \lambda\,w \sum_{(s', a') \in \text{path}(s)} u(s', a')` plus the
  constant. For the Game of 24 policy it barely matters: on development splits of the training
  rows, :math:`\lambda = 0.1` was the best of 0-0.5 (by a few operations), and the benchmark runs it
  (README).

  ``normalize="siblings"`` reads the scores of one state's proposed calls as a policy,
  :math:`\pi(a \mid s) = v(s, a) / \sum_b v(s, b)`, and uses :math:`u(s, a) = -\log \pi(a \mid s)`.
  With :math:`\lambda = 1` and :math:`w = 1` a call's priority is then :math:`-\log \prod_{\text{path}}
  \pi`, the order of policy-guided best-first search (Levin tree search without its depth factor,
  Orseau et al., 2018): every call that runs before a goal path of probability :math:`\pi^*`
  has a path probability of at least :math:`\pi^*`, and at each depth those probabilities sum to
  at most 1, so at most :math:`D / \pi^*` calls run on a task of :math:`D` steps. The price is
  what the absolute scores knew: a state whose calls the scorer all doubts (most states of the
  Game of 24 cannot reach 24) gets as much of the search as one it trusts. On the Game of 24's
  development splits it lost to the absolute scores: the best of 192 settings (:math:`\lambda`,
  temperatures) had a sum of four maxima of 608 against 381 (``python -m
  ponder.verifiers.game24_select``; README).

``order="astar"`` uses :math:`f = g + h`, ``"greedy"`` :math:`f = u`, and ``"dfs"`` / ``"bfs"``
need no heuristic: the frontier is a stack or a queue of proposed calls (each pop runs one call;
a state's calls are tried in the proposer's order). Among equal :math:`f` the deeper entry pops
first (the usual tie-break toward larger :math:`g`; it lets a fixed-length task go straight down
a path of equally good steps), then first-in first-out.

**Goal and duplicates.** A state is tested when it is made: the search ends at the first
``solved`` state (a :class:`~ponder.search.protocols.ToolState` whose environment's goal is
reached; for states without ``solved``, any ``finished`` state). The aim is a solution within
the budget, so the cheapest path is not guaranteed when the first goal is met early. With
``dedup="key"`` a state whose ``key`` (or, lacking one, ``candidate``) was seen before is a
duplicate and is not expanded again (``meta["duplicate"] = True``). Finished states that are not
goals (dead ends) are not expanded.

**Stopping.** ``stopped`` is ``"done"`` (a goal found), ``"exhausted"`` (the frontier emptied:
no goal is reachable from the root under the proposer, e.g. an unsolvable puzzle with enumerated
calls), or the name of the budget cap that ended it (``tool_calls``, ``expansions``, ``tokens``,
``seconds``, ``nodes``, ...). Under a ``tool_calls`` or ``nodes`` cap an expansion runs only the
calls the cap has room for.

Result: ``best`` is the goal (or, without one, the most promising state: lowest :math:`f`);
``best.path()`` is the path, ``result.tree`` every state made, ``info["solved"]``,
``info["expansions"]``, ``info["frontier"]`` (entries left) and ``info["path"]`` (the calls as
text).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import numpy as np

from ponder.kernels.heap import IndexedHeap
from ponder.search.config import SearchConfig, check_int, check_option, check_real, seed_for
from ponder.search.ledger import Budget, Ledger, charge, register_counter
from ponder.search.protocols import ConfigError, State
from ponder.search.result import SearchResult, Trace
from ponder.search.verify import VerifierError, check_verifier, run_verifier, score_states

__all__ = ["AStarConfig", "NAME", "run", "sibling_costs"]

NAME = "astar"
ORDERS = ("astar", "greedy", "dfs", "bfs")
HEURISTIC_ON = ("states", "calls")
COSTS = ("unit", "logprob")
TRANSFORMS = ("neg_log", "neg")
DEDUPS = ("key", "none")
NORMALIZES = ("none", "siblings")
_TIE = 1e-9  # equal f: the deeper entry first (then first in, first out)
_TINY_LOG = -math.log(np.finfo(np.float64).tiny)  # ~708: the cost of a score at or below 0
register_counter("expansions", "states expanded by a best-first search")
register_counter("calls_scored", "proposed calls judged by a heuristic before running")


@dataclasses.dataclass(frozen=True)
class AStarConfig(SearchConfig):
    r"""Configuration of A* / best-first search.

    Args:
        order: "astar" (f = g + b + w u), "greedy" (f = u), "dfs" or "bfs" (no heuristic).
        heuristic_on: "states" (score the state a call made; every proposed call of an expanded
            state runs) or "calls" (score (state, call) before running it; one call per pop).
        cost: step cost of g: "unit" or "logprob" (the proposal's -log q).
        weight: w in f = g + b + w u (>= 0; > 1 is weighted A*, greedier).
        transform: score to cost: "neg_log" (h = -log v, v in (0, 1]) or "neg" (h = -v).
        k: proposals per expansion (None: all the proposer gives, e.g. every legal call).
        dedup: "key" (skip states seen before) or "none".
        max_depth: states at this depth are not expanded (None: no limit).
        step_verifier: a process verifier whose transformed score of each new state joins its
            step cost (see the module docstring), or None.
        step_weight: :math:`w_g >= 0`, the weight of that term.
        path_weight: :math:`\lambda \ge 0`, under ``heuristic_on="calls"``: a call that runs adds
            :math:`\lambda\,w\,u(s, a)`, its own heuristic term, to the g of the state it makes,
            so later calls pay for the doubts along their path (see the module docstring). 0: only
            the latest call's term counts.
        normalize: under ``heuristic_on="calls"`` with ``transform="neg_log"``: "none" (a call's
            score is an absolute probability) or "siblings" (the scores of one state's proposed
            calls are divided by their sum, a policy :math:`\pi(a \mid s)`; see the module
            docstring).
        seed: the seed of the proposals' and generators' randomness.
    """

    order: str = "astar"
    heuristic_on: str = "states"
    cost: str = "unit"
    weight: float = 1.0
    transform: str = "neg_log"
    k: int | None = None
    dedup: str = "key"
    max_depth: int | None = None
    step_verifier: Any = None
    step_weight: float = 1.0
    path_weight: float = 0.0
    normalize: str = "none"

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_option(owner, "order", self.order, ORDERS)
        check_option(owner, "heuristic_on", self.heuristic_on, HEURISTIC_ON)
        check_option(owner, "cost", self.cost, COSTS)
        check_real(owner, "weight", self.weight, low=0.0)
        check_option(owner, "transform", self.transform, TRANSFORMS)
        check_int(owner, "k", self.k, optional=True)
        check_option(owner, "dedup", self.dedup, DEDUPS)
        check_int(owner, "max_depth", self.max_depth, optional=True)
        if self.step_verifier is not None:
            check_verifier(self.step_verifier)
        check_real(owner, "step_weight", self.step_weight, low=0.0)
        check_real(owner, "path_weight", self.path_weight, low=0.0)
        if self.path_weight and self.heuristic_on != "calls":
            raise ConfigError(f"{owner}: path_weight is the weight of a call's heuristic term in the path cost; it needs heuristic_on='calls'")
        check_option(owner, "normalize", self.normalize, NORMALIZES)
        if self.normalize != "none" and (self.heuristic_on != "calls" or self.transform != "neg_log"):
            raise ConfigError(f"{owner}: normalize={self.normalize!r} turns the scores of a state's proposed calls into a policy over "
                              f"them; it needs heuristic_on='calls' and transform='neg_log' (got {self.heuristic_on!r}, {self.transform!r})")

    @property
    def lazy(self) -> bool:
        """The frontier holds proposed calls (each pop runs one) rather than executed states."""
        return self.order in ("dfs", "bfs") or self.heuristic_on == "calls"


def run(
    generator: Any,
    verifier: Any,
    prompt: Any,
    *,
    budget: Budget | None = None,
    config: AStarConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """Best-first search from ``generator.root(prompt)``.

    Args:
        generator: an expander (``root``, ``expand``); ``heuristic_on="calls"``, "dfs" and "bfs"
            also need ``propose(states, k, *, seed=None)`` (the search passes ``seed_for(seed,
            c)`` to its c-th call) and ``expand(..., actions=...)``, as
            :class:`ponder.models.tools.ToolGenerator` has.
        verifier: the heuristic (None for "dfs" / "bfs"): scores states, or (state, call) pairs.
        prompt: what ``generator.root`` starts from (a puzzle, a question).
        budget: caps (``Budget(tool_calls=700)``, ``expansions=``, ``tokens=``, ``seconds=``, ...).
        config: an :class:`AStarConfig`.
        progress: called as ``progress(ledger, budget)`` after every pop.
        cancel: an event (``is_set()``) that ends the search at its next pop.

    Returns:
        A :class:`SearchResult` (see the module docstring for ``stopped`` and ``info``).

    Raises:
        ConfigError: a heuristic missing for "astar"/"greedy", or given to "dfs"/"bfs"; a
            generator without ``propose`` where the order needs one.
        VerifierError: the heuristic failed (NaN, an exception); ``partial`` holds the tree.
        SearchCancelled: Ctrl-C or ``cancel``; ``partial`` likewise.
    """
    config = config or AStarConfig()
    needs_h = config.order in ("astar", "greedy")
    if needs_h and verifier is None:
        raise ConfigError(f"astar with order={config.order!r} needs a heuristic verifier; use order='dfs' or 'bfs' without one")
    if not needs_h and verifier is not None:
        raise ConfigError(f"astar with order={config.order!r} uses no heuristic; pass verifier=None or order='astar'")
    if needs_h:
        verifier = check_verifier(verifier)
    if config.lazy and not callable(getattr(generator, "propose", None)):
        raise ConfigError(f"astar with order={config.order!r}, heuristic_on={config.heuristic_on!r} needs a generator with "
                          f"propose(states, k) (a ToolGenerator); {type(generator).__name__} has none: use heuristic_on='states'")
    search = _Search(generator, verifier, config, Trace(NAME, config, budget, progress, cancel))
    return search.run(prompt)


class _Search:
    """One A* run: the heap of entry ids, the entries, the seen keys."""

    def __init__(self, generator, verifier, config: AStarConfig, trace: Trace):
        self.gen, self.verifier, self.config, self.trace = generator, verifier, config, trace
        self.heap = IndexedHeap()
        self.entries: dict[int, tuple] = {}  # id -> (f, state) or (f, state, proposal)
        self.carried: dict[int, float] = {}  # id of a proposed call -> lambda w u(s, a), joining its child's g
        self.next_id = 0
        self.seen: set = set()
        self.goal: State | None = None
        self.expansions = 0
        self.proposals_made = 0  # calls of generator.propose, for their seeds
        self.best_open: tuple[float, State] | None = None  # lowest-f state pushed (the answer without a goal)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, prompt) -> SearchResult:
        trace = self.trace
        stopped = "exhausted"
        with trace.running(self._partial):
            root = self.gen.root(prompt)
            trace.add([root])
            self.seen.add(self._key(root))
            if self._is_goal(root):
                self.goal, stopped = root, "done"
            else:
                self._open([root])
            while self.goal is None and len(self.heap):
                cap = trace.step_done()
                if cap is not None:
                    stopped = cap
                    break
                ident, f = self.heap.pop()
                entry = self.entries.pop(ident)
                carried = self.carried.pop(ident, 0.0)
                if len(entry) == 3:  # a proposed call: run it
                    children = self.gen.expand([entry[1]], actions=[[entry[2]]])[0]
                else:  # an executed state: expand it
                    children = self._expand(entry[1])
                self.expansions += 1
                charge(expansions=1)
                fresh = self._made(children, carried)
                if self.goal is not None:
                    stopped = "done"
                    break
                self._open(fresh)
            else:
                if self.goal is not None:
                    stopped = "done"
        return self._result(stopped)

    def _propose(self, states: list[State]) -> list[list]:
        """The generator's proposals, the c-th call of this search seeded ``seed_for(seed, c)``."""
        self.proposals_made += 1
        return self.gen.propose(states, self.config.k, seed=seed_for(self.config.seed, self.proposals_made))

    def _expand(self, state: State) -> list[State]:
        """Children of an executed state: every proposal run (cut to the budget's room), or ``k``
        sampled successors from a generator without ``propose``."""
        room = self._room()
        if callable(getattr(self.gen, "propose", None)):
            proposals = self._propose([state])[0][:room]
            return self.gen.expand([state], actions=[proposals])[0] if proposals else []
        k = min(self.config.k or 1, room)
        return self.gen.expand([state], k, seed=seed_for(self.config.seed, self.expansions))[0]

    def _room(self) -> int:
        left = min(self.trace.ledger.left(self.trace.budget, "tool_calls"), self.trace.ledger.left(self.trace.budget, "nodes"))
        return max(1, int(left)) if left != math.inf else 1 << 62

    def _made(self, children: list[State], carried: float = 0.0) -> list[State]:
        """Record new states, set their cost (plus ``carried``, the path term of the call that made
        them), test for the goal; the ones to open next."""
        self.trace.add(children)
        fresh = []
        extra = np.zeros(len(children))  # [C] the step verifier's term
        if self.config.step_verifier is not None and children:
            extra = self.config.step_weight * self._h(score_states(self.config.step_verifier, children))
        for child, term in zip(children, extra.tolist()):
            child.cost = child.parent.cost + self._step_cost(child) + term + carried
        for child in children:
            if self._is_goal(child):
                self.goal = child
                return []
            if self.config.dedup == "key":
                key = self._key(child)
                if key in self.seen:
                    child.meta["duplicate"] = True
                    continue
                self.seen.add(key)
            if child.finished or (self.config.max_depth is not None and child.depth >= self.config.max_depth):
                continue
            fresh.append(child)
        return fresh

    def _open(self, states: list[State]) -> None:
        """Put states on the frontier: as scored states, or as their proposed calls."""
        if not states:
            return
        cfg = self.config
        bound = self._bounds(states)  # [S]
        if not cfg.lazy:
            h = self._h_states(states)
            for state, hh, b in zip(states, h, bound):
                self._push(self._f(state.cost + b, hh), (state,))
            return
        proposals = self._propose(states)
        pairs = [(s, p) for s, props in zip(states, proposals) for p in props]
        after = [max(0.0, b - 1.0) for b, props in zip(bound, proposals) for _ in props]  # the bound after one call
        if not pairs:
            return
        if cfg.order in ("dfs", "bfs"):
            # dfs: a stack (priority -id, pushed in reverse so a state's first call pops first); bfs: a queue
            for s, p in (reversed(pairs) if cfg.order == "dfs" else pairs):
                self._push(-self.next_id if cfg.order == "dfs" else self.next_id, (s, p))
            return
        h = self._h_calls(pairs)
        if cfg.normalize == "siblings":
            h = sibling_costs(h, [len(props) for props in proposals])
        carry = cfg.path_weight * cfg.weight if cfg.order == "astar" else 0.0
        for (s, p), hh, b in zip(pairs, h, after):
            g = s.cost + (1.0 if cfg.cost == "unit" else -p.logprob)
            if carry:
                self.carried[self.next_id] = carry * float(hh)
            self._push(self._f(g + b, hh), (s, p))

    def _push(self, f: float, item: tuple) -> None:
        ident = self.next_id
        self.next_id += 1
        self.entries[ident] = (f,) + item
        depth = item[0].depth + (len(item) - 1)  # a proposed call leads one step below its state
        priority = f - _TIE * depth if self.config.order in ("astar", "greedy") else f
        self.heap.push(ident, float(priority))
        if len(item) == 1 and (self.best_open is None or f < self.best_open[0]):
            self.best_open = (f, item[0])

    # -- costs ----------------------------------------------------------------------------------

    def _f(self, g: float, u: float) -> float:
        """``f = g + w u`` (``g`` here includes the bound ``b``), or ``u`` for greedy."""
        return u if self.config.order == "greedy" else g + self.config.weight * u

    def _bounds(self, states: list[State]) -> list[float]:
        """The generator's lower bound on the steps left per state (unit costs only; else 0)."""
        fn = getattr(self.gen, "cost_to_go", None)
        if self.config.cost != "unit" or not callable(fn):
            return [0.0] * len(states)
        return [float(b) for b in fn(states)]

    def _step_cost(self, child: State) -> float:
        if self.config.cost == "unit":
            return 1.0
        step = child.meta.get("step_logprob")
        if step is None:  # an LM step: its own log-probability
            step = getattr(child, "step_proposal_logprob", None)
            step = getattr(child, "step_logprob", 0.0) if step is None else step
        return -float(step)

    def _h(self, scores: np.ndarray) -> np.ndarray:
        if self.config.transform == "neg":
            return -scores
        with np.errstate(divide="ignore"):
            return np.where(scores > 0, -np.log(np.maximum(scores, 1e-300)), _TINY_LOG)

    def _h_states(self, states: list[State]) -> np.ndarray:
        return self._h(score_states(self.verifier, states))

    def _h_calls(self, pairs: list) -> np.ndarray:
        started = time.perf_counter()
        try:
            scores = run_verifier(self.verifier, [s.prompt for s, _ in pairs], [(s.candidate, p.call) for s, p in pairs])
        except VerifierError as exc:
            exc.args = (f"{exc.args[0] if exc.args else exc} (scoring calls of states {sorted({s.index for s, _ in pairs})})",)
            raise
        finally:
            charge(verifier_calls=1, items_scored=len(pairs), calls_scored=len(pairs), verifier_seconds=time.perf_counter() - started)
        return self._h(scores)

    # -- bookkeeping ----------------------------------------------------------------------------

    @staticmethod
    def _is_goal(state: State) -> bool:
        solved = getattr(state, "solved", None)
        return bool(solved) if solved is not None else state.finished

    @staticmethod
    def _key(state: State):
        key = getattr(state, "key", None)
        return key if key is not None else state.candidate

    def _answer(self) -> tuple[list[State], list[float]]:
        if self.goal is not None:
            return [self.goal], [-float(self.goal.cost)]
        if self.best_open is not None:
            return [self.best_open[1]], [-float(self.best_open[0])]
        deepest = max(self.trace.tree, key=lambda s: s.depth, default=None)
        return ([deepest], [-float(deepest.cost)]) if deepest is not None else ([], [])

    def _info(self) -> dict:
        best = self.goal if self.goal is not None else (self.best_open[1] if self.best_open else None)
        path = [] if best is None else [str(getattr(s, "call", None) or getattr(s, "step_text", "")) for s in best.path()[1:]]
        return {"solved": self.goal is not None, "expansions": self.expansions, "frontier": len(self.heap), "path": path}

    def _partial(self):
        candidates, scores = self._answer()
        return candidates, scores, self._info()

    def _result(self, stopped: str) -> SearchResult:
        candidates, scores = self._answer()
        return self.trace.result(candidates, scores, stopped, info=self._info())


def sibling_costs(u: np.ndarray, sizes: list[int]) -> np.ndarray:
    """``u(s, a) = -log v(s, a)`` of consecutive groups of sibling calls (``sizes``, one state's
    calls each) as ``-log pi(a | s)``, ``pi = v / sum_siblings v``: ``u + log sum_b exp(-u_b)``,
    shifted by the group's smallest ``u`` so that no exponential underflows.   # [P] -> [P]"""
    out = np.empty_like(u)
    start = 0
    for n in sizes:
        if n:
            group = u[start: start + n]
            low = group.min()
            out[start: start + n] = group - low + math.log(np.exp(low - group).sum())
        start += n
    return out
