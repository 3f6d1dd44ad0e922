r"""Diverse verifier tree search (DVTS, from HuggingFace's search-and-learn): independent greedy subtrees.

Beam search keeps the ``width`` best partial answers *across* the whole tree, so after a few steps
its beams tend to descend from one early step that the verifier liked: the search loses
diversity. DVTS splits the same sampling budget into :math:`T = n / m` independent subtrees. Each
subtree :math:`i` holds one partial answer :math:`y^{(i)}_{1:t}`; at every depth each open
subtree samples :math:`m` next steps, the process verifier scores them, and the subtree moves to
its best child by path score,

.. math::  y^{(i)}_{1:t+1} = \arg\max_{c \in \mathrm{children}(y^{(i)}_{1:t})} S(c),

where the path score :math:`S` aggregates step scores as in beam search (``"last"``, ``"min"``,
``"product"``; see :func:`ponder.search.beam.aggregate`). No subtree ever competes with another,
so :math:`T` different early steps survive to the end. At depth 1 the root stands for :math:`T`
identical subtree roots and is expanded into :math:`T m` children, :math:`m` per subtree.

All open subtrees are expanded in one batched generator call per depth (``expand(leaves,
[m] * T)``), so their prompt KV is shared and the model sees batches of :math:`T m` rows, as beam
search does; only selection differs (per subtree instead of global), which is why DVTS is its
own module.

A subtree ends when its chosen child is finished (EOS, ``max_new_tokens``, context full); its
other finished children are kept as completed candidates too (they are paid for). The search
stops when every subtree has ended, after ``max_steps`` depths, or when the budget runs out
(each depth is cut to what the budget has left, as in beam search).

Final ranking: completed candidates by the verifier's score of the whole answer
(``ranking="outcome"``) or by path score (``"aggregate"``), then the open subtree leaves by path
score. ``info["subtrees"]`` gives each subtree's chain end (its state index) and whether it
finished.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ponder.search.beam import AGGREGATIONS, RANKINGS, score_paths
from ponder.search.config import SamplingConfig, check_int, check_option, stop_strings
from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import ConfigError, Node, Step
from ponder.search.result import SearchResult, Trace
from ponder.search.verify import require_verifier

NAME = "dvts"
__all__ = ["DVTSConfig", "NAME", "run"]


@dataclasses.dataclass(frozen=True)
class DVTSConfig(SamplingConfig):
    """Configuration of DVTS.

    Args:
        n: children sampled per depth over all subtrees (the budget of a width-``n`` beam).
        width: children per subtree per depth (``m``); ``n / width`` subtrees (must divide).
        stop: the step delimiter(s).
        step_tokens: the longest step, in tokens.
        max_steps: the deepest a subtree may go, in steps.
        aggregation: path score from step scores: "last", "min" or "product".
        ranking: completed candidates by "outcome" (verifier score of the whole answer) or
            "aggregate" (path score).
        temperature, top_p, top_k, max_new_tokens, seed: see :class:`SamplingConfig`.
    """

    n: int = 16
    width: int = 4
    stop: str | tuple[str, ...] = "\n\n"
    step_tokens: int = 64
    max_steps: int = 16
    aggregation: str = "last"
    ranking: str = "outcome"

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_int(owner, "n", self.n)
        check_int(owner, "width", self.width)
        if self.n % self.width:
            raise ConfigError(f"{owner}.n={self.n} must be a multiple of width={self.width} (n / width subtrees)")
        object.__setattr__(self, "stop", stop_strings(owner, self.stop))
        check_int(owner, "step_tokens", self.step_tokens)
        check_int(owner, "max_steps", self.max_steps)
        check_option(owner, "aggregation", self.aggregation, AGGREGATIONS)
        check_option(owner, "ranking", self.ranking, RANKINGS)

    @property
    def subtrees(self) -> int:
        return self.n // self.width


def run(
    generator: Any,
    verifier: Any,
    prompt: str,
    *,
    budget: Budget | None = None,
    config: DVTSConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """Diverse verifier tree search.

    Args:
        generator: a text generator (``root``, ``expand``), e.g. :class:`ponder.models.LM`.
        verifier: a process verifier (a registered name or ``fn(prompt, text) -> float`` through
            ``ponder.search``).
        prompt: the prompt.
        budget: caps on what the search may spend.
        config: a :class:`DVTSConfig`.
        progress: called as ``progress(ledger, budget)`` after every depth.
        cancel: an event (``is_set()``) that ends the search at its next depth.

    Returns:
        A :class:`SearchResult` ranked as the module docstring says.

    Raises:
        VerifierError: the verifier failed; ``partial`` holds the tree, the completed
            candidates and the subtree leaves.
        SearchCancelled: Ctrl-C or ``cancel``; ``partial`` likewise.
    """
    config = config or DVTSConfig()
    verifier = require_verifier(verifier, algorithm="dvts")
    trace = Trace(NAME, config, budget, progress, cancel)
    T, m = config.subtrees, config.width
    leaves: list[Node | None] = []  # the current end of each subtree's chain
    open_: list[bool] = []  # the subtree still grows
    completed: list[Node] = []
    stopped = "done"

    def partial():
        nodes, scores = _ranked(completed, [leaf for leaf, o in zip(leaves, open_) if o and leaf is not None and leaf.depth > 0], config, verifier)
        return nodes, scores, {"subtrees": _subtrees(leaves, open_)}

    with trace.running(partial):
        root = generator.root(prompt)
        trace.add([root])
        leaves, open_ = [root] * T, [True] * T
        for depth in range(1, config.max_steps + 1):
            active = [i for i in range(T) if open_[i]]
            if depth == 1:  # the root stands for T identical subtree roots
                parents, counts = [root], trace.cut_counts([T * m])
            else:
                parents = [leaves[i] for i in active]
                counts = trace.cut_counts([m] * len(active))
            step = Step(max_tokens=trace.step_tokens(int(counts.sum()), config.step_tokens), stop=config.stop)
            expanded = generator.expand(parents, counts.tolist(), step=step, **config.sampling(depth - 1))
            if depth == 1:  # deal the root's children out to the subtrees, m each
                kids = expanded[0]
                expanded = [kids[j * m:(j + 1) * m] for j in range(T)]
            children = [c for group in expanded for c in group]
            trace.add(children)
            score_paths(verifier, children, config.aggregation)
            for i, group in zip(active, expanded):
                if not group:  # cut by the budget: the subtree keeps its leaf, open
                    continue
                best = max(group, key=lambda c: c.meta["path_score"])  # first of equals
                completed += [c for c in group if c.finished]
                leaves[i] = best
                if best.finished:
                    open_[i] = False
            cap = trace.step_done()
            if not any(open_):
                break
            if cap is not None:
                stopped = cap
                break

    nodes, scores = _ranked(completed, [leaf for leaf, o in zip(leaves, open_) if o and leaf.depth > 0], config, verifier)
    return trace.result(nodes, scores, stopped, info={"subtrees": _subtrees(leaves, open_), "completed": len(completed)})


def _subtrees(leaves, open_) -> list[dict]:
    return [{"leaf": None if leaf is None else leaf.index, "finished": not o} for leaf, o in zip(leaves, open_)]


def _ranked(completed: list[Node], leaves: list[Node], config: DVTSConfig, verifier: Any) -> tuple[list[Node], list[float]]:
    """Completed candidates by outcome or path score, then the open leaves by path score."""
    path = lambda node: node.meta["path_score"]  # noqa: E731
    key = (lambda node: node.scores[verifier.name]) if config.ranking == "outcome" else path  # noqa: E731
    done = sorted(completed, key=key, reverse=True)
    rest = sorted(leaves, key=path, reverse=True)
    return done + rest, [key(n) for n in done] + [path(n) for n in rest]
