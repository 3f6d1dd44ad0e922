"""What a search returns, and the bookkeeping every search shares while it runs.

A :class:`SearchResult` holds the best candidate, all candidates ranked best first with the
score each was ranked by, every node the search created (``tree``; ``Node.parent`` links make
it a tree), the :class:`~ponder.search.ledger.Ledger` of what it spent, and why it stopped:

- ``"done"``: the algorithm finished its work (all samples drawn, enough answers finished, or
  its step limit reached);
- a budget cap's name (``"tokens"``, ``"verifier_calls"``, ``"nodes"``, ``"seconds"``): the
  budget ran out and the search stopped cleanly with the best so far;
- ``"infeasible"``: every candidate violates a hard constraint (SMC: every particle has weight
  0); the result has no candidate (``best`` None);
- ``"interrupted"``: only on the ``partial`` result attached to an error raised out of the
  search (a :class:`~ponder.search.verify.VerifierError`, a
  :class:`~ponder.search.errors.SearchCancelled` after Ctrl-C or a cancel, or any other
  :class:`~ponder.search.errors.SearchInterrupted`): the search did not finish.

A :class:`Trace` is what an algorithm carries while it runs: its ledger, the states it created
(it gives each its dense ``index``), its budget, progress callback and cancel event. It owns the
one failure path, so no algorithm writes its own::

    trace = Trace(NAME, config, budget, progress, cancel)
    with trace.running(lambda: (candidates_so_far, their_scores, info)):
        ...                      # expand, score, trace.add(children), trace.step_done()
    return trace.result(candidates, scores, stopped, info)

Inside ``running`` the ledger is active; a :class:`~ponder.search.errors.SearchInterrupted`
(a verifier failed) leaves with the partial result attached as ``err.partial``, and a
``KeyboardInterrupt`` or a set ``cancel`` event leaves as a ``SearchCancelled`` carrying it.
``step_done`` reports progress and names the budget cap reached; ``step_tokens`` and
``cut_counts`` cut the next step to what the budget has left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ponder.search.errors import ConfigError, PonderError, SearchCancelled, SearchInterrupted
from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import State, plain_data

STOP_REASONS = ("done", "interrupted", "exhausted", "infeasible")  # or the name of the budget cap that ended the search


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
        stopped: why it stopped: "done", "interrupted", or the name of the budget cap that ended
            it (see the module docstring).
        config: the algorithm's configuration as a plain dict.
        info: algorithm-specific facts (votes per answer, beams per depth, allocations, ...).
    """

    algorithm: str
    best: State | None
    candidates: list[State]
    scores: list[float]
    tree: list[State]
    ledger: Ledger
    stopped: str
    config: dict
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def answer(self) -> Any:
        """The best candidate's :attr:`~ponder.search.protocols.State.candidate` (for text states
        the text generated after the prompt; "" when there is no candidate)."""
        return self.best.candidate if self.best is not None else ""

    @property
    def finished(self) -> bool:
        """Whether the best candidate is a complete answer (EOS, length cap or context full)."""
        return self.best is not None and self.best.finished

    @property
    def score(self) -> float:
        """The best candidate's ranking score."""
        return self.scores[0] if self.scores else math.nan

    def as_dict(self) -> dict:
        """A JSON-ready summary: every state's ``as_dict()``, scores, the ledger; no state objects."""
        return {
            "algorithm": self.algorithm,
            "answer": self.answer if isinstance(self.answer, str) else plain_data(self.answer),
            "best": None if self.best is None else self.best.id,
            "finished": self.finished,
            "stopped": self.stopped,
            "config": plain_data(self.config),
            "candidates": [
                dict(node.as_dict(), score=plain_data(score)) for node, score in zip(self.candidates, self.scores)
            ],
            "tree": [node.as_dict() for node in self.tree],
            "ledger": self.ledger.as_dict(),
            "info": plain_data(self.info),
        }

    def __repr__(self) -> str:
        best = "None" if self.best is None else repr(self.best)
        return (
            f"SearchResult({self.algorithm}, stopped={self.stopped!r}, score={self.score:.4g}, "
            f"{len(self.candidates)} candidates, {len(self.tree)} nodes, best={best})"
        )


def config_dict(config: Any) -> dict:
    """A config dataclass as a plain dict (tuples become lists)."""
    return plain_data(dataclasses.asdict(config))


class Trace:
    """The running bookkeeping of one search: ledger, created states, budget, progress, cancel.

    Args:
        algorithm: the algorithm's name.
        config: its config dataclass.
        budget: caps on what the search may spend (None: uncapped).
        progress: called as ``progress(ledger, budget)`` after every step, or None.
        cancel: an object with ``is_set()`` (a ``threading.Event``); when set, the search ends
            at its next step with a :class:`~ponder.search.errors.SearchCancelled` carrying the
            partial result.
    """

    def __init__(self, algorithm: str, config: Any, budget: Budget | None, progress: Callable | None, cancel: Any = None):
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a ponder.Budget or None, got {budget!r}")
        if progress is not None and not callable(progress):
            raise ConfigError(f"progress must be a callable progress(ledger, budget) or None, got {progress!r}")
        if cancel is not None and not callable(getattr(cancel, "is_set", None)):
            raise ConfigError(f"cancel must have an is_set() method (e.g. a threading.Event) or be None, got {cancel!r}")
        self.algorithm = algorithm
        self.config = config
        self.budget = budget
        self.progress = progress
        self.cancel = cancel
        self.ledger = Ledger()
        self.tree: list[State] = []

    def add(self, states: Sequence[State]) -> None:
        """Record newly created states, giving each its dense index (its position in the tree)."""
        for state in states:
            state.index = len(self.tree)
            self.tree.append(state)

    @contextlib.contextmanager
    def running(self, partial: Callable[[], tuple[Sequence[State], Sequence[float], dict]]) -> Iterator["Trace"]:
        """Run the search's body with its ledger active, and own its one failure path.

        Args:
            partial: returns ``(candidates, scores, info)`` of the search so far, best first
                (called only when the search fails or is cancelled).

        Raises:
            SearchInterrupted: as raised inside (e.g. a ``VerifierError``), with ``partial`` set.
            SearchCancelled: after a ``KeyboardInterrupt`` inside, or a set ``cancel`` event,
                with ``partial`` set (the ``KeyboardInterrupt`` chained as its cause).
        """
        try:
            with self.ledger.active():
                yield self
        except SearchInterrupted as err:
            err.partial = self._partial_from(partial)
            raise
        except KeyboardInterrupt as interrupt:
            err = SearchCancelled(f"{self.algorithm} search interrupted; err.partial holds the result so far")
            err.partial = self._partial_from(partial)
            raise err from interrupt

    def _partial_from(self, partial: Callable) -> "SearchResult":
        try:
            candidates, scores, info = partial()
        except Exception as exc:  # noqa: BLE001 - the original failure matters more; keep the tree
            candidates, scores, info = [], [], {"partial_error": f"{type(exc).__name__}: {exc}"}
        return self._build(candidates, scores, "interrupted", info)

    def step_done(self) -> str | None:
        """Report progress after a step; the name of the exhausted budget cap, or None.

        Raises:
            SearchCancelled: the ``cancel`` event is set.
        """
        if self.progress is not None:
            self.progress(self.ledger, self.budget)
        if self.cancel is not None and self.cancel.is_set():
            raise SearchCancelled(f"{self.algorithm} search cancelled; err.partial holds the result so far")
        return self.ledger.exhausted(self.budget)

    def step_tokens(self, rows: int, max_tokens: int) -> int:
        """The longest step each of ``rows`` rows may take: ``max_tokens``, cut to
        ``ceil(tokens left / rows)`` under a token cap (at least 1), so a step overshoots the cap
        by fewer than ``rows`` tokens."""
        left = self.ledger.left(self.budget, "tokens")
        if left == math.inf or rows <= 0:
            return max_tokens
        return int(max(1, min(max_tokens, math.ceil(left / rows))))

    def cut_counts(self, counts: Sequence[int]) -> np.ndarray:
        """Children per parent, cut so that their total fits the node cap's room (the largest
        counts lose first, ties from the end; at least one child overall).          # [F] int64"""
        counts = np.array(counts, dtype=np.int64)  # [F]
        room = self.ledger.left(self.budget, "nodes")
        if room == math.inf:
            return counts
        room = max(1, int(room))
        while counts.sum() > room:
            top = counts.max()
            counts[len(counts) - 1 - int(np.argmax(counts[::-1] == top))] -= 1
        return counts

    def result(self, candidates: Sequence[State], scores: Sequence[float], stopped: str, info: dict | None = None) -> SearchResult:
        """The final result; ``candidates`` must be ranked best first and be non-empty (except
        when ``stopped="infeasible"``)."""
        if not candidates and stopped != "infeasible":
            raise PonderError(
                f"{self.algorithm} produced no candidates (stopped: {stopped}); the tree has {len(self.tree)} nodes. "
                "Raise the budget or the step limits."
            )
        return self._build(candidates, scores, stopped, info)

    def partial(self, candidates: Sequence[State], scores: Sequence[float], info: dict | None = None) -> SearchResult:
        """The result so far of a search that did not finish (``stopped="interrupted"``)."""
        return self._build(candidates, scores, "interrupted", info)

    def _build(self, candidates, scores, stopped, info) -> SearchResult:
        if stopped not in STOP_REASONS and (self.budget is None or stopped not in self.budget.caps):
            raise ValueError(f"unknown stop reason {stopped!r}; valid: {', '.join(STOP_REASONS)} or a budget cap's name")
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
