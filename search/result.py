"""What a search returns, and the bookkeeping every search shares while it runs.

A :class:`SearchResult` holds the best candidate, all candidates ranked best first with the
score each was ranked by, every node the search created (``tree``; ``Node.parent`` links make
it a tree), the :class:`~ponder.search.ledger.Ledger` of what it spent, and why it stopped:

- ``"done"``: the algorithm finished its work (all samples drawn, enough answers finished, or
  its step limit reached);
- a budget cap's name (``"tokens"``, ``"verifier_calls"``, ``"nodes"``, ``"seconds"``): the
  budget ran out and the search stopped cleanly with the best so far;
- ``"interrupted"``: only on the ``partial`` result attached to an error raised out of the
  search (a :class:`~ponder.verifiers.VerifierError`, or any other
  :class:`~ponder.search.protocols.SearchInterrupted`): the search did not finish.

A :class:`Trace` is what an algorithm carries while it runs: its ledger, the nodes it created,
its budget and progress callback; it builds the result at the end (or the partial result when
a verifier fails).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import ConfigError, Node, PonderError

STOP_REASONS = ("done", "tokens", "verifier_calls", "nodes", "seconds", "interrupted")


@dataclasses.dataclass(eq=False)
class SearchResult:
    """The outcome of one search.

    Attributes:
        algorithm: the algorithm's name ("best_of_n", "beam", "rebase").
        best: the chosen candidate (``candidates[0]``); None only on a partial result whose
            search failed before producing any candidate.
        candidates: candidate nodes, best first. A candidate may be unfinished
            (``node.finished`` False) when the search stopped before it completed.
        scores: the score each candidate was ranked by, aligned with ``candidates`` (the
            verifier score, a path aggregate or a vote total, as the algorithm documents;
            NaN where a partial result has no score yet).
        tree: every node the search created, root first, in creation order.
        ledger: what the search spent.
        stopped: why it stopped (see the module docstring).
        config: the algorithm's configuration as a plain dict.
        info: algorithm-specific facts (votes per answer, beams per depth, allocations, ...).
    """

    algorithm: str
    best: Node | None
    candidates: list[Node]
    scores: list[float]
    tree: list[Node]
    ledger: Ledger
    stopped: str
    config: dict
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def answer(self) -> str:
        """The text of the best candidate (what was generated after the prompt)."""
        return self.best.text if self.best is not None else ""

    @property
    def finished(self) -> bool:
        """Whether the best candidate is a complete answer (EOS, length cap or context full)."""
        return self.best is not None and self.best.finished

    @property
    def score(self) -> float:
        """The best candidate's ranking score."""
        return self.scores[0] if self.scores else math.nan

    def as_dict(self) -> dict:
        """A JSON-ready summary: texts, scores, token counts and parent ids, no Node objects."""
        return {
            "algorithm": self.algorithm,
            "answer": self.answer,
            "best": None if self.best is None else self.best.id,
            "finished": self.finished,
            "stopped": self.stopped,
            "config": _plain(self.config),
            "candidates": [
                dict(_node_dict(node), score=_number(score)) for node, score in zip(self.candidates, self.scores)
            ],
            "tree": [_node_dict(node) for node in self.tree],
            "ledger": self.ledger.as_dict(),
            "info": _plain(self.info),
        }

    def __repr__(self) -> str:
        best = "None" if self.best is None else repr(self.best)
        return (
            f"SearchResult({self.algorithm}, stopped={self.stopped!r}, score={self.score:.4g}, "
            f"{len(self.candidates)} candidates, {len(self.tree)} nodes, best={best})"
        )


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists, non-finite floats as None and unknown objects as repr."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float) or hasattr(value, "__float__"):
        try:
            return _number(value)
        except (TypeError, ValueError):
            pass
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return repr(value)


def _node_dict(node: Node) -> dict:
    return {
        "id": node.id,
        "parent": None if node.parent is None else node.parent.id,
        "depth": node.depth,
        "text": node.text,
        "step_text": node.step_text,
        "n_generated": node.n_generated,
        "step_tokens": len(node.step_tokens),
        "logprob": _number(node.logprob),
        "finished": node.finished,
        "finish_reason": node.finish_reason,
        "scores": _plain(node.scores),
        "meta": _plain(node.meta),
    }


def config_dict(config: Any) -> dict:
    """A config dataclass as a plain dict (tuples become lists)."""
    return _plain(dataclasses.asdict(config))


class Trace:
    """The running bookkeeping of one search: ledger, created nodes, budget, progress.

    Args:
        algorithm: the algorithm's name.
        config: its config dataclass.
        budget: caps checked between steps (None: uncapped).
        progress: called as ``progress(ledger, budget)`` after every step, or None.
    """

    def __init__(self, algorithm: str, config: Any, budget: Budget | None, progress: Callable | None):
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a ponder.Budget or None, got {budget!r}")
        if progress is not None and not callable(progress):
            raise ConfigError(f"progress must be a callable progress(ledger, budget) or None, got {progress!r}")
        self.algorithm = algorithm
        self.config = config
        self.budget = budget
        self.progress = progress
        self.ledger = Ledger()
        self.tree: list[Node] = []

    def add(self, nodes: Sequence[Node]) -> None:
        """Record newly created nodes."""
        self.tree.extend(nodes)

    def step_done(self) -> str | None:
        """Report progress after a step; the name of the exhausted budget cap, or None."""
        if self.progress is not None:
            self.progress(self.ledger, self.budget)
        return self.ledger.exhausted(self.budget)

    def result(self, candidates: Sequence[Node], scores: Sequence[float], stopped: str, info: dict | None = None) -> SearchResult:
        """The final result; ``candidates`` must be ranked best first and be non-empty."""
        if not candidates:
            raise PonderError(
                f"{self.algorithm} produced no candidates (stopped: {stopped}); the tree has {len(self.tree)} nodes. "
                "Raise the budget or the step limits."
            )
        return self._build(candidates, scores, stopped, info)

    def partial(self, candidates: Sequence[Node], scores: Sequence[float], info: dict | None = None) -> SearchResult:
        """The result so far of a search interrupted by a failure (``stopped="interrupted"``)."""
        return self._build(candidates, scores, "interrupted", info)

    def _build(self, candidates, scores, stopped, info) -> SearchResult:
        if stopped not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {stopped!r}; valid: {', '.join(STOP_REASONS)}")
        if len(candidates) != len(scores):
            raise ValueError(f"{len(candidates)} candidates but {len(scores)} scores")
        return SearchResult(
            algorithm=self.algorithm,
            best=candidates[0] if candidates else None,
            candidates=list(candidates),
            scores=[float(s) for s in scores],
            tree=list(self.tree),
            ledger=self.ledger,
            stopped=stopped,
            config=config_dict(self.config),
            info=dict(info or {}),
        )
