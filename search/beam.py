r"""Step-level beam search with a process verifier.

An answer is built in steps (a step ends at the delimiter ``stop``, default a blank line, after
``step_tokens`` tokens, or at EOS). The search keeps ``width`` beams. At each depth every open
beam is expanded into ``expansions`` sampled next steps (the root, standing for ``width``
identical beams, into ``width * expansions``); the process verifier scores each child's
text so far, :math:`s(y_{1:t})`, and a child's *path score* aggregates the step scores along its
path :math:`s_1, \dots, s_t`:

- ``aggregation="last"``: :math:`S_t = s_t` (the verifier's view of the partial answer as a whole);
- ``aggregation="min"``: :math:`S_t = \min_{u \le t} s_u` (a chain is as good as its weakest step);
- ``aggregation="product"``: :math:`S_t = \prod_{u \le t} s_u` (for scores that are probabilities
  of a step being correct).

Each is associative, so :math:`S_t = \mathrm{agg}(S_{t-1}, s_t)` is computed incrementally
(stored as ``node.meta["path_score"]``).

Children that finish (EOS, ``max_new_tokens``, context full) leave the beam and become
*completed candidates*; of the open children, the :math:`\max(0, \text{width} - |\text{completed}|)`
highest path scores become the next beams. Open beams therefore never exceed what the width has
left, but completed candidates may exceed ``width``: several children of one depth can finish
together, and all of them are kept (they are paid for). The search stops when ``width``
candidates have completed, when no open beam remains, after ``max_steps`` depths, or when the
budget runs out. Each depth is cut to what the budget has left (every child's step to
:math:`\lceil \text{tokens left} / \text{children} \rceil` tokens, the children to the
nodes left), so the search ends within a few tokens of a token cap.

Final ranking: completed candidates first, ranked with ``ranking="outcome"`` (default) by the
verifier's score of the complete answer (the score of its last node: the verifier judging the
whole text as an outcome), or with ``ranking="aggregate"`` by their path score. Then, when the
search stopped before ``width`` answers completed, the open beams (unfinished, ``node.finished``
False), by path score.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

from ponder.search.config import SamplingConfig, check_int, check_option, stop_strings
from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import Node, Step
from ponder.search.result import SearchResult, Trace
from ponder.search.verify import require_verifier, score_states

NAME = "beam"
AGGREGATIONS = ("last", "min", "product")
RANKINGS = ("outcome", "aggregate")


@dataclasses.dataclass(frozen=True)
class BeamConfig(SamplingConfig):
    """Configuration of step-level beam search.

    Args:
        width: beams kept (completed candidates count against it).
        expansions: sampled next steps per beam and depth (the root gets ``width * expansions``).
        stop: the step delimiter(s); ``()`` ends steps only by length or EOS.
        step_tokens: the longest step, in tokens.
        max_steps: the deepest a beam may go, in steps.
        aggregation: path score from step scores: "last", "min" or "product".
        ranking: how completed candidates are ranked: "outcome" (verifier score of the whole
            answer) or "aggregate" (path score).
        temperature, top_p, top_k, max_new_tokens, seed: see :class:`SamplingConfig` (depth d
            is the search's call d - 1).
    """

    width: int = 4
    expansions: int = 4
    stop: str | tuple[str, ...] = "\n\n"
    step_tokens: int = 64
    max_steps: int = 16
    aggregation: str = "last"
    ranking: str = "outcome"

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_int(owner, "width", self.width)
        check_int(owner, "expansions", self.expansions)
        object.__setattr__(self, "stop", stop_strings(owner, self.stop))
        check_int(owner, "step_tokens", self.step_tokens)
        check_int(owner, "max_steps", self.max_steps)
        check_option(owner, "aggregation", self.aggregation, AGGREGATIONS)
        check_option(owner, "ranking", self.ranking, RANKINGS)


def aggregate(how: str, step_scores: Sequence[float]) -> float:
    """The path score of a path whose step scores are ``step_scores`` (first step first).

    Args:
        how: "last", "min" or "product".
        step_scores: at least one score.                                     # [T]
    """
    check_option("beam", "aggregation", how, AGGREGATIONS)
    if len(step_scores) == 0:
        raise ValueError("aggregate needs at least one step score")
    if how == "last":
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    return float(math.prod(step_scores))


def score_paths(verifier: Any, children: Sequence[Node], how: str) -> None:
    """Score ``children`` with the process verifier and set each one's path score,
    ``meta["path_score"] = agg(parent's path score, step score)`` (the step score alone below the
    root)."""
    for child, s in zip(children, score_states(verifier, children)):
        parent_score = child.parent.meta.get("path_score")
        child.meta["path_score"] = aggregate(how, [s] if parent_score is None else [parent_score, s])


def run(
    generator: Any,
    verifier: Any,
    prompt: str,
    *,
    budget: Budget | None = None,
    config: BeamConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """Step-level beam search.

    Args:
        generator: a text generator (``root``, ``expand``), e.g. :class:`ponder.models.LM`.
        verifier: a process verifier (scores partial answers); ``ponder.search`` also takes a
            registered name or a function ``fn(prompt, text) -> float`` (wrapped as a process
            verifier). An outcome verifier is accepted too and judges each partial answer as it
            stands.
        prompt: the prompt.
        budget: caps on what the search may spend.
        config: a :class:`BeamConfig` (default: its defaults).
        progress: called as ``progress(ledger, budget)`` after every depth.
        cancel: an event (``is_set()``) that ends the search at its next depth.

    Returns:
        A :class:`SearchResult` ranked as the module docstring says; ``info["depths"]`` lists,
        per depth, the children sampled, the candidates completed so far and the beams kept.

    Raises:
        VerifierError: the verifier failed; its ``partial`` holds the tree so far, with the
            completed candidates and the current beams as candidates.
        SearchCancelled: Ctrl-C or ``cancel``; its ``partial`` likewise.
    """
    config = config or BeamConfig()
    verifier = require_verifier(verifier, algorithm="beam search")
    trace = Trace(NAME, config, budget, progress, cancel)
    beams: list[Node] = []  # open partial answers, best first
    completed: list[Node] = []  # finished answers, in completion order
    children: list[Node] = []  # the depth in flight, unscored
    depths: list[dict] = []
    stopped = "done"

    def partial():
        nodes, scores = _ranked(completed, [b for b in beams if b.depth > 0], config, verifier)
        if not nodes:  # nothing scored yet: the unscored children of the failed depth
            nodes, scores = children, [math.nan] * len(children)
        return nodes, scores, {"depths": depths}

    with trace.running(partial):
        root = generator.root(prompt)
        trace.add([root])
        beams = [root]
        for depth in range(1, config.max_steps + 1):
            # the root stands for `width` identical beams: it gets width * expansions children
            counts = trace.cut_counts([config.expansions * (config.width if depth == 1 else 1)] * len(beams))  # [len(beams)]
            step = Step(max_tokens=trace.step_tokens(int(counts.sum()), config.step_tokens), stop=config.stop)
            expanded = generator.expand(beams, counts.tolist(), step=step, **config.sampling(depth - 1))
            children = [child for kids in expanded for child in kids]  # [C]
            trace.add(children)

            score_paths(verifier, children, config.aggregation)

            completed += [c for c in children if c.finished]
            open_children = [c for c in children if not c.finished]
            keep = max(0, config.width - len(completed))
            beams = sorted(open_children, key=_path_score, reverse=True)[:keep]
            depths.append({"depth": depth, "children": len(children), "completed": len(completed), "beams": len(beams)})
            children = []

            cap = trace.step_done()
            if not beams:
                break
            if cap is not None:
                stopped = cap
                break

    nodes, scores = _ranked(completed, beams, config, verifier)
    return trace.result(nodes, scores, stopped, info={"depths": depths, "completed": len(completed)})


def _path_score(node: Node) -> float:
    return node.meta["path_score"]


def _ranked(completed: list[Node], beams: list[Node], config: BeamConfig, verifier: Any) -> tuple[list[Node], list[float]]:
    """Completed candidates by outcome or path score, then the open beams by path score."""
    if config.ranking == "outcome":
        key = lambda node: node.scores[verifier.name]  # noqa: E731
    else:
        key = _path_score
    done = sorted(completed, key=key, reverse=True)
    open_beams = sorted(beams, key=_path_score, reverse=True)
    return done + open_beams, [key(n) for n in done] + [_path_score(n) for n in open_beams]
