r"""Best-of-N: sample N whole answers, keep the best (plain, weighted or majority vote).

Draw :math:`y_1, \dots, y_N \sim p(\cdot \mid x)` independently (one step each, ending at EOS or
after ``max_new_tokens``), score them with the verifier, :math:`s_i = v(x, y_i)`, extract their
final answers :math:`a_i`, and choose

- ``mode="plain"``: :math:`\hat y = y_{\hat\imath}`, :math:`\hat\imath = \arg\max_i s_i`;
- ``mode="weighted"``: the answer of highest total score
  :math:`\hat a = \arg\max_a \sum_{i: a_i = a} s_i` (majority voting weighted by a verifier, as
  in DiVeRSe, Li et al. 2023);
- ``mode="majority"``: the most frequent answer :math:`\hat a = \arg\max_a |\{i : a_i = a\}|`
  (self-consistency, Wang et al. 2023); the verifier is optional and, when given, only orders
  candidates within an answer and breaks ties.

Ranking details (ties, candidates without an answer) are in :mod:`ponder.search.scoring`.

Samples are drawn in batches: all N in one ``expand`` of the root (``k = N``, the prompt's KV
shared by every sample) unless ``batch`` is set, or a budget is given. Under a token budget a
batch holds at most :math:`\lceil \text{tokens left} / \text{max\_new\_tokens} \rceil` samples
(under a node budget at most the nodes left), and each of its samples is cut to
:math:`\lceil \text{tokens left} / k \rceil` tokens, so the search ends within :math:`k` tokens
of a token cap and stops cleanly with the best of what it drew (a sample cut short is unfinished
and ranked like the others). Each batch is scored as soon as it is drawn (one verifier call per
batch).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from ponder.search.config import SamplingConfig, check_int, check_option
from ponder.search.ledger import Budget, Ledger
from ponder.search.protocols import Node, Step
from ponder.search.result import SearchResult, Trace
from ponder.search.scoring import SELECTIONS, TRUNCATED, answer_extractor, rank
from ponder.search.verify import require_verifier, score_states

NAME = "best_of_n"
MODES = SELECTIONS


@dataclasses.dataclass(frozen=True)
class BestOfNConfig(SamplingConfig):
    """Configuration of best-of-N.

    Args:
        n: samples to draw (>= 1).
        mode: "plain" (argmax of the verifier score), "weighted" (answer with the highest summed
            score) or "majority" (most frequent answer; verifier optional).
        truncated: voting modes: "vote" (every sample with an answer votes) or "abstain"
            (samples cut off at ``max_new_tokens`` do not vote).
        batch: samples per generator call (None: all at once, or fewer under a budget).
        temperature, top_p, top_k, max_new_tokens, seed: see :class:`SamplingConfig` (0 is
            greedy: then every sample is the same).
    """

    n: int = 8
    mode: str = "plain"
    truncated: str = "vote"
    batch: int | None = None
    max_new_tokens: int = 256  # overrides SamplingConfig's default: whole answers, one step

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_int(owner, "n", self.n)
        check_option(owner, "mode", self.mode, MODES)
        check_option(owner, "truncated", self.truncated, TRUNCATED)
        check_int(owner, "batch", self.batch, optional=True)


def run(
    generator: Any,
    verifier: Any,
    prompt: str,
    *,
    budget: Budget | None = None,
    config: BestOfNConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """Best-of-N sampling.

    Args:
        generator: a text generator (``root``, ``expand``), e.g. :class:`ponder.models.LM`.
        verifier: an outcome verifier, or None (``mode="majority"`` only); ``ponder.search``
            also takes a registered name or a function ``fn(prompt, text) -> float``.
        prompt: the prompt.
        budget: caps on what the search may spend.
        config: a :class:`BestOfNConfig` (default: its defaults).
        progress: called as ``progress(ledger, budget)`` after every batch.
        cancel: an event (``is_set()``) that ends the search at its next batch.

    Returns:
        A :class:`SearchResult`: candidates are all samples, ranked by ``mode``; ``scores`` are
        verifier scores ("plain") or votes (the voting modes); ``info["votes"]`` maps answers to
        votes.

    Raises:
        VerifierError: the verifier failed; its ``partial`` holds the samples drawn so far.
        SearchCancelled: Ctrl-C or ``cancel``; its ``partial`` likewise.
    """
    config = config or BestOfNConfig()
    verifier = require_verifier(verifier, algorithm=f"best_of_n (mode={config.mode!r})", required=config.mode != "majority")
    trace = Trace(NAME, config, budget, progress, cancel)
    samples: list[Node] = []
    scores: list[float] = []  # verifier scores of samples[:len(scores)]
    stopped = "done"
    with trace.running(lambda: _partial(samples, scores, config, verifier)):
        root = generator.root(prompt)
        trace.add([root])
        call = 0
        while len(samples) < config.n:
            k = _batch_size(config, len(samples), trace)
            step = Step(max_tokens=trace.step_tokens(k, config.max_new_tokens))
            batch = generator.expand([root], k, step=step, **config.sampling(call))[0]
            call += 1
            trace.add(batch)
            samples += batch
            if verifier is not None:
                scores += score_states(verifier, batch).tolist()
            cap = trace.step_done()
            if cap is not None and len(samples) < config.n:
                stopped = cap
                break

    ranking = rank(samples, scores if verifier is not None else None, mode=config.mode, extract=answer_extractor(verifier), truncated=config.truncated)
    return trace.result(ranking.nodes, ranking.scores, stopped, info={"votes": ranking.votes, "samples": len(samples)})


def _batch_size(config: BestOfNConfig, drawn: int, trace: Trace) -> int:
    """Samples in the next generator call: the rest, capped by ``batch`` and by what the budget has left."""
    k = config.n - drawn
    if config.batch is not None:
        k = min(k, config.batch)
    tokens_left = trace.ledger.left(trace.budget, "tokens")
    if tokens_left != math.inf:
        k = min(k, max(1, math.ceil(tokens_left / config.max_new_tokens)))
    return int(trace.cut_counts([k])[0])


def _partial(samples: list[Node], scores: list[float], config: BestOfNConfig, verifier: Any) -> tuple[list, list, dict]:
    """The samples so far: the scored ones ranked, then the unscored batch (score NaN)."""
    scored, unscored = samples[: len(scores)], samples[len(scores) :]
    nodes, ranked_scores, votes = [], [], {}
    if scored:
        ranking = rank(scored, scores, mode=config.mode, extract=answer_extractor(verifier), truncated=config.truncated)
        nodes, ranked_scores, votes = ranking.nodes, ranking.scores, ranking.votes
    elif verifier is None and samples:  # majority without a verifier: every sample votes
        ranking = rank(samples, None, mode=config.mode, extract=answer_extractor(None), truncated=config.truncated)
        return ranking.nodes, ranking.scores, {"votes": ranking.votes, "samples": len(samples)}
    return nodes + unscored, ranked_scores + [math.nan] * len(unscored), {"votes": votes, "samples": len(samples)}
