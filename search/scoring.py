r"""Ranking finished answers: the selection modes the text searches share (best-of-N, REBASE).

Selecting among finished answers (best-of-N's ``mode``, REBASE's ``select``). With verifier
scores :math:`s_i` and extracted final answers :math:`a_i` (:func:`ponder.search.answers.extract_answer`,
or the verifier's own ``extract`` method when it has one):

- ``"plain"``: the candidate of highest score, :math:`\hat\imath = \arg\max_i s_i`;
- ``"weighted"``: the answer of highest total score, :math:`\hat a = \arg\max_a \sum_{i: a_i = a} s_i`;
- ``"majority"``: the most frequent answer, :math:`\hat a = \arg\max_a |\{i : a_i = a\}|`.

In the voting modes a candidate's "own" score is its verifier score, or its model
log-probability when there is no verifier. Answers tied on their vote are ordered by the best
own score among their candidates; within an answer, candidates are ordered by own score; the
best candidate is the first of the winning answer. Candidates without an extractable answer do
not vote and come last (their ranking score is NaN); if no candidate has an answer, all are
ranked by own score. With ``truncated="abstain"``, candidates cut off by a length limit
(``finish_reason`` "length", "max_new_tokens" or "context") do not vote either: the last number of an unfinished answer is
usually an intermediate result, not the answer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

from ponder.search.answers import extract_answer
from ponder.search.errors import ConfigError
from ponder.search.protocols import Node

SELECTIONS = ("plain", "weighted", "majority")
TRUNCATED = ("vote", "abstain")
CUT_OFF = ("length", "max_new_tokens", "context")  # finish reasons of an answer that did not end by itself


def answer_extractor(verifier: Any) -> Callable[[str], str | None]:
    """The verifier's ``extract`` method when it has one, else :func:`ponder.search.answers.extract_answer`."""
    extract = getattr(verifier, "extract", None)
    return extract if callable(extract) else extract_answer


# ---------------------------------------------------------------------------------------------
# Ranking finished answers


@dataclasses.dataclass
class Ranking:
    """Candidates best first, with the score each was ranked by.

    Attributes:
        nodes: the candidates, best first.
        scores: their ranking scores (``"plain"``: verifier score; voting modes: the vote of the
            candidate's answer, NaN for candidates without one).
        votes: answer -> vote, highest first (empty for ``"plain"``).
    """

    nodes: list[Node]
    scores: list[float]
    votes: dict[str, float]


def rank(
    nodes: Sequence[Node],
    scores: Sequence[float] | None,
    *,
    mode: str,
    extract: Callable[[str], str | None] | None = None,
    truncated: str = "vote",
) -> Ranking:
    """Rank candidates by ``mode`` (see the module docstring).

    Args:
        nodes: the candidates.                                               # [N]
        scores: their verifier scores, or None (voting modes only).          # [N]
        mode: "plain", "weighted" or "majority".
        extract: text -> normalised answer or None (default: ``extract_answer``); the answer
            is stored as ``node.meta["answer"]``.
        truncated: voting modes: "vote" (every candidate with an answer votes) or "abstain"
            (candidates that hit the length limit do not vote).
    """
    nodes = list(nodes)
    if not nodes:
        raise ValueError("no candidates to rank")
    mode = _check_selection(mode, scores)
    if truncated not in TRUNCATED:
        raise ConfigError(f"unknown truncated policy {truncated!r}; valid choices: {', '.join(TRUNCATED)}")
    if scores is not None and len(scores) != len(nodes):
        raise ValueError(f"{len(nodes)} candidates but {len(scores)} scores")
    own = np.asarray(scores if scores is not None else [n.logprob for n in nodes], dtype=np.float64)  # [N]
    if mode == "plain":
        order = sorted(range(len(nodes)), key=lambda i: -own[i])  # stable: the earlier wins ties
        return Ranking([nodes[i] for i in order], [float(own[i]) for i in order], {})

    extract = extract or extract_answer
    groups: dict[str, list[int]] = {}
    unvoted: list[int] = []
    for i, node in enumerate(nodes):
        answer = extract(node.text)
        node.meta["answer"] = answer
        if truncated == "abstain" and node.finish_reason in CUT_OFF:
            answer = None
        (groups.setdefault(answer, []) if answer is not None else unvoted).append(i)
    vote = {a: float(len(ix)) if mode == "majority" else float(own[ix].sum()) for a, ix in groups.items()}
    by_own = lambda i: -own[i]  # noqa: E731
    # answers by (vote, best own score), ties to the first seen (dicts keep insertion order)
    answers = sorted(groups, key=lambda a: (-vote[a], -own[groups[a]].max()))
    order, ranked_scores = [], []
    for a in answers:
        members = sorted(groups[a], key=by_own)
        order += members
        ranked_scores += [vote[a]] * len(members)
    rest = sorted(unvoted, key=by_own)
    order += rest
    ranked_scores += [math.nan] * len(rest)
    return Ranking([nodes[i] for i in order], ranked_scores, {a: vote[a] for a in answers})


def _check_selection(mode: str, scores) -> str:
    if mode not in SELECTIONS:
        raise ConfigError(f"unknown selection mode {mode!r}; valid choices: {', '.join(SELECTIONS)}")
    if scores is None and mode != "majority":
        raise ConfigError(f"selection mode {mode!r} needs verifier scores; only 'majority' works without a verifier")
    return mode
