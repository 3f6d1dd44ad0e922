r"""What the search algorithms share: verifier lookup, answer voting, config checks.

Selecting among finished answers (best-of-N's ``mode``, REBASE's ``select``). With verifier
scores :math:`s_i` and extracted final answers :math:`a_i` (:func:`ponder.verifiers.extract_answer`,
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

# ``import ... as`` binds the module even while it is still initialising (ponder.verifiers imports
# ponder.search.protocols, whose package imports this module); attributes are read at call time.
import ponder.verifiers as pv
from ponder.search.protocols import ConfigError, Node
from ponder.search.protocols import Verifier as VerifierProtocol

SELECTIONS = ("plain", "weighted", "majority")
TRUNCATED = ("vote", "abstain")
CUT_OFF = ("length", "max_new_tokens", "context")  # finish reasons of an answer that did not end by itself


# ---------------------------------------------------------------------------------------------
# Verifiers


def resolve_verifier(verifier: Any, *, algorithm: str, kind: str = "outcome", required: bool = True) -> Any:
    """A verifier object from what a user passed.

    Args:
        verifier: a verifier (``name``, ``kind``, ``score``), a registered name
            (:func:`ponder.verifiers.get`), a plain function ``fn(prompt, text) -> float``
            (wrapped with :func:`ponder.verifiers.verifier`), or None.
        algorithm: named in error messages.
        kind: the kind a wrapped function gets ("outcome" or "process").
        required: whether None is an error.

    Raises:
        ConfigError: None where a verifier is required, a token verifier (searches here score
            texts), or something that is not a verifier at all.
    """
    if verifier is None:
        if required:
            raise ConfigError(
                f"{algorithm} needs a verifier: pass a Verifier, a registered name ({', '.join(pv.available())}) "
                "or a function fn(prompt, text) -> float"
            )
        return None
    if isinstance(verifier, str):
        verifier = pv.get(verifier)
    elif not isinstance(verifier, VerifierProtocol) or isinstance(verifier, type):
        if not callable(verifier) or isinstance(verifier, type):
            raise ConfigError(f"expected a verifier, a registered verifier name or a function fn(prompt, text) -> float, got {verifier!r}")
        verifier = pv.verifier(verifier, kind=kind)
    if verifier.kind == "token":
        raise ConfigError(
            f"{algorithm} scores texts, but verifier {verifier.name!r} is a token verifier (a vector over the "
            "vocabulary); use an outcome or process verifier"
        )
    return verifier


def answer_extractor(verifier: Any) -> Callable[[str], str | None]:
    """The verifier's ``extract`` method when it has one, else :func:`ponder.verifiers.extract_answer`."""
    extract = getattr(verifier, "extract", None)
    return extract if callable(extract) else pv.extract_answer


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

    extract = extract or pv.extract_answer
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


# ---------------------------------------------------------------------------------------------
# Config checks (each raises a ConfigError naming the class and field)


def check_int(owner: str, name: str, value: Any, *, minimum: int = 1, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        none = " or None" if optional else ""
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}{none}, got {value!r}")


def check_real(owner: str, name: str, value: Any, *, low: float, high: float = math.inf, low_open: bool = False, optional: bool = False) -> None:
    if optional and value is None:
        return
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = "" if high == math.inf else f" and <= {high:g}"
        none = " or None" if optional else ""
        raise ConfigError(f"{owner}.{name} must be a finite number {lo}{hi}{none}, got {value!r}")


def check_option(owner: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {owner}.{name} {value!r}; valid choices: {', '.join(choices)}")


def stop_strings(owner: str, value: Any) -> tuple[str, ...]:
    """Step delimiters given as one string or a sequence of strings (empty: none), as a tuple."""
    stop = (value,) if isinstance(value, str) else value
    if not isinstance(stop, (tuple, list)) or not all(isinstance(s, str) and s for s in stop):
        raise ConfigError(f"{owner}.stop must be a non-empty string or a sequence of non-empty strings, got {value!r}")
    return tuple(stop)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How a text search samples from its generator; the base of every text search's config.

    Args:
        temperature: sampling temperature (0 is greedy).
        top_p: nucleus mass, in (0, 1].
        top_k: keep the k most likely tokens (0 keeps all).
        max_new_tokens: the longest answer, in tokens (a node reaching it is finished).
        seed: seeds the search's c-th generator call with ``seed + c``; None draws from the
            generator's own stream.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 512
    seed: int | None = None

    def __post_init__(self):
        owner = type(self).__name__
        check_real(owner, "temperature", self.temperature, low=0.0)
        check_real(owner, "top_p", self.top_p, low=0.0, high=1.0, low_open=True)
        check_int(owner, "top_k", self.top_k, minimum=0)
        check_int(owner, "max_new_tokens", self.max_new_tokens)
        check_int(owner, "seed", self.seed, minimum=0, optional=True)

    def sampling(self, call: int) -> dict:
        """Keyword arguments of ``generator.expand`` for the search's ``call``-th call."""
        return dict(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=seed_for(self.seed, call), max_new_tokens=self.max_new_tokens)


def seed_for(seed: int | None, call: int) -> int | None:
    """The seed of a search's ``call``-th generator call: ``seed + call``, or None (the generator's stream)."""
    return None if seed is None else int(seed) + call
