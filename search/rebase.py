r"""REBASE: reward-balanced tree search (Wu et al. 2024, "Inference Scaling Laws").

The search grows a tree of steps (a step ends at the delimiter ``stop``, after ``step_tokens``
tokens, or at EOS) under a fixed *width* :math:`W`: the number of answers it will complete. The
root gets all :math:`W` children. At each later depth, with :math:`C` answers completed so far,
the remaining width :math:`W' = W - C` is shared among the open (unfinished) frontier nodes
:math:`n_1, \dots, n_F` in proportion to the softmax of their process rewards
:math:`r_j = v(x, y_{n_j})` at the balance temperature :math:`T`:

.. math::

    p_j = \frac{\exp(r_j / T)}{\sum_k \exp(r_k / T)}, \qquad
    W_j = \operatorname{round}(W' p_j), \qquad \sum_j W_j = W'.

The rounding is by largest remainder (Hamilton's method): every node gets
:math:`\lfloor W' p_j \rfloor` children and the :math:`W' - \sum_j \lfloor W' p_j \rfloor` left
over go to the largest fractional parts (ties to the earlier node), so the allotment sums to
:math:`W'` exactly and each :math:`W_j` is within one of :math:`W' p_j`. Nodes allotted zero
children are pruned. A small :math:`T` concentrates the width on the best-rewarded nodes
(greedy as :math:`T \to 0`); a large one spreads it evenly (sampling :math:`W` independent
answers as :math:`T \to \infty`).

The search stops when :math:`W` answers have completed (:math:`W' = 0`), when no open node is
left, after ``max_steps`` depths, or when the budget runs out. Each depth is cut to what the
budget has left (every child's step to :math:`\lceil \text{tokens left} / \text{children} \rceil`
tokens, the allotment to the nodes left, largest counts first), so the search ends within a few
tokens of a token cap.

Final ranking: the completed answers, ranked with ``select`` (as best-of-N's ``mode``:
"plain" by the verifier's score of the complete answer, "weighted" or "majority" by their
extracted answers; see :mod:`ponder.search.scoring`); then, if the search stopped early, the
open frontier nodes (unfinished) by reward.

Each depth is one batched ``expand`` call with per-node counts ``k = [W_1, ..., W_F]``: each
frontier node's prefix is prefilled once and its KV copied to its :math:`W_j` children's rows;
nodes allotted nothing are not computed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

from ponder.search.config import SamplingConfig, check_int, check_option, check_real, stop_strings
from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import Node, Step
from ponder.search.result import SearchResult, Trace
from ponder.search.scoring import SELECTIONS, answer_extractor, rank
from ponder.search.verify import require_verifier, score_states

NAME = "rebase"


@dataclasses.dataclass(frozen=True)
class RebaseConfig(SamplingConfig):
    """Configuration of REBASE.

    Args:
        width: W, the number of answers to complete (and samples per depth).
        balance_temperature: T of the reward softmax (> 0).
        stop: the step delimiter(s); ``()`` ends steps only by length or EOS.
        step_tokens: the longest step, in tokens.
        max_steps: the deepest the tree may grow, in steps.
        select: how completed answers are ranked: "plain", "weighted" or "majority".
        temperature, top_p, top_k, max_new_tokens, seed: see :class:`SamplingConfig` (depth d
            is the search's call d - 1).
    """

    width: int = 8
    balance_temperature: float = 0.1
    stop: str | tuple[str, ...] = "\n\n"
    step_tokens: int = 64
    max_steps: int = 16
    select: str = "plain"

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_int(owner, "width", self.width)
        check_real(owner, "balance_temperature", self.balance_temperature, low=0.0, low_open=True)
        object.__setattr__(self, "stop", stop_strings(owner, self.stop))
        check_int(owner, "step_tokens", self.step_tokens)
        check_int(owner, "max_steps", self.max_steps)
        check_option(owner, "select", self.select, SELECTIONS)


def allocate(rewards: Sequence[float], width: int, temperature: float) -> np.ndarray:
    """Children per frontier node: ``round(width * softmax(rewards / temperature))``, summing to ``width``.

    Args:
        rewards: the frontier's rewards, finite.                             # [F]
        width: the remaining width W' (>= 0).
        temperature: T > 0.

    Returns:
        int64 counts, summing to ``width`` (all zero when ``width`` is 0).  # [F]
    """
    r = np.asarray(rewards, dtype=np.float64)  # [F]
    if r.ndim != 1:
        raise ValueError(f"rewards must be a 1-D sequence, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError(f"rewards must be finite, got {r[~np.isfinite(r)][0]}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 0:
        raise ValueError(f"width must be an integer >= 0, got {width!r}")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if width == 0:
        return np.zeros(len(r), dtype=np.int64)
    if len(r) == 0:
        raise ValueError(f"cannot share a width of {width} among no frontier nodes")
    z = r / temperature
    p = np.exp(z - z.max())
    p /= p.sum()  # [F], softmax
    quota = width * p  # [F]
    counts = np.floor(quota).astype(np.int64)  # [F]
    short = width - int(counts.sum())  # 0 <= short < F
    if short:
        order = np.argsort(-(quota - counts), kind="stable")  # largest remainder first
        counts[order[:short]] += 1
    return counts


def run(
    generator: Any,
    verifier: Any,
    prompt: str,
    *,
    budget: Budget | None = None,
    config: RebaseConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """REBASE tree search.

    Args:
        generator: a text generator (``root``, ``expand``), e.g. :class:`ponder.models.LM`.
        verifier: a process verifier (its score of a partial answer is the node's reward);
            ``ponder.search`` also takes a registered name or a function
            ``fn(prompt, text) -> float`` (wrapped as a process verifier).
        prompt: the prompt.
        budget: caps on what the search may spend.
        config: a :class:`RebaseConfig` (default: its defaults).
        progress: called as ``progress(ledger, budget)`` after every depth.
        cancel: an event (``is_set()``) that ends the search at its next depth.

    Returns:
        A :class:`SearchResult` ranked as the module docstring says; ``info["depths"]`` lists,
        per depth, the children sampled, the answers completed so far and the allotment made
        for the next depth (``allocation``, aligned with the open frontier in tree order).

    Raises:
        VerifierError: the verifier failed; its ``partial`` holds the tree so far.
        SearchCancelled: Ctrl-C or ``cancel``; its ``partial`` likewise.
    """
    config = config or RebaseConfig()
    verifier = require_verifier(verifier, algorithm="rebase")
    trace = Trace(NAME, config, budget, progress, cancel)
    frontier: list[Node] = []  # open nodes of the deepest level, in tree order
    counts = np.zeros(0, dtype=np.int64)  # children allotted to each frontier node   # [F]
    completed: list[Node] = []
    children: list[Node] = []  # the depth in flight, unscored
    depths: list[dict] = []
    stopped = "done"

    def partial():
        nodes, scores = _ranked(completed, [n for n in frontier if n.depth > 0], config, verifier)
        if not nodes:  # nothing scored yet: the unscored children of the failed depth
            nodes, scores = children, [math.nan] * len(children)
        return nodes, scores, {"depths": depths}

    with trace.running(partial):
        root = generator.root(prompt)
        trace.add([root])
        frontier, counts = [root], np.array([config.width])
        for depth in range(1, config.max_steps + 1):
            counts = trace.cut_counts(counts)  # [F]
            step = Step(max_tokens=trace.step_tokens(int(counts.sum()), config.step_tokens), stop=config.stop)
            children = _expand(generator, frontier, counts, step, config, call=depth - 1)
            trace.add(children)

            rewards = score_states(verifier, children)  # [C]
            completed += [c for c in children if c.finished]
            frontier = [c for c in children if not c.finished]
            remaining = config.width - len(completed)  # W'
            frontier_rewards = [r for c, r in zip(children, rewards) if not c.finished]  # [F]
            counts = allocate(frontier_rewards, remaining, config.balance_temperature) if frontier else counts[:0]
            depths.append({"depth": depth, "children": len(children), "completed": len(completed), "allocation": counts.tolist()})
            children = []

            cap = trace.step_done()
            if remaining <= 0 or not frontier:
                break
            if cap is not None:
                stopped = cap
                break

    nodes, scores = _ranked(completed, frontier, config, verifier)
    return trace.result(nodes, scores, stopped, info={"depths": depths, "completed": len(completed)})


def _expand(generator: Any, nodes: list[Node], counts: np.ndarray, step: Step, config: RebaseConfig, *, call: int) -> list[Node]:
    """``counts[j]`` sampled next steps of ``nodes[j]``, in one generator call; children grouped by parent.

    Each parent's prefix is computed once, however many children it is allotted.
    """
    expanded = generator.expand(nodes, [int(c) for c in counts], step=step, **config.sampling(call))
    return [child for kids in expanded for child in kids]


def _ranked(completed: list[Node], frontier: list[Node], config: RebaseConfig, verifier: Any) -> tuple[list[Node], list[float]]:
    """Completed answers ranked by ``select``, then open frontier nodes by reward."""
    nodes, scores = [], []
    if completed:
        outcome = [n.scores[verifier.name] for n in completed]  # scored when they were created
        ranking = rank(completed, outcome, mode=config.select, extract=answer_extractor(verifier))
        nodes, scores = ranking.nodes, ranking.scores
    rewards = [n.scores[verifier.name] for n in frontier]
    order = sorted(range(len(frontier)), key=lambda j: -rewards[j])
    return nodes + [frontier[j] for j in order], scores + [rewards[j] for j in order]
