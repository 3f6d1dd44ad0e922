"""Search algorithms and the front door: best-of-N, step-level beam search, REBASE.

Runs a tiny random Llama (``ponder.models.tiny_llama``) with real verifiers; checks selection
rules against recounts from the returned tree, budgets, partial results on verifier failure,
config errors and ledger consistency.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ponder
import ponder.models as pm
import ponder.search as ps
import ponder.verifiers as pv
from ponder.search import BeamConfig, BestOfNConfig, Budget, ConfigError, PonderError, RebaseConfig, SearchResult
from ponder.search.result import Trace
from ponder.search.beam import aggregate
from ponder.search.rebase import allocate
from ponder.search.scoring import rank
from ponder.verifiers import VerifierError, extract_answer

PROMPT = "Question: what is 12 minus 5? Answer:"


def letters(prompt: str, text: str) -> float:
    """Share of letters in the text: a continuous score in [0, 1] of any (partial) answer."""
    return sum(c.isalpha() for c in text) / max(1, len(text))


LETTERS = pv.verifier(letters, name="letters", kind="process")


@pytest.fixture(scope="module")
def lm():
    return pm.tiny_llama(seed=0)


def check_consistent(result: SearchResult, verifier_name: str | None = "letters") -> None:
    """The ledger agrees with the tree, and the tree is a tree."""
    tree = result.tree
    ids = {n.id for n in tree}
    assert len(ids) == len(tree)
    assert tree[0].depth == 0 and tree[0].parent is None
    for node in tree[1:]:
        assert node.parent is not None and node.parent.id in ids
        assert node.depth == node.parent.depth + 1
        assert node.tokens[: len(node.parent.tokens)] == node.parent.tokens
    assert result.ledger.nodes == len(tree)
    assert result.ledger.generated_tokens == sum(len(n.step_tokens) for n in tree[1:])
    if verifier_name is not None:
        assert result.ledger.items_scored == sum(verifier_name in n.scores for n in tree)
    assert result.candidates and result.best is result.candidates[0]
    assert all(c.id in ids for c in result.candidates)
    assert len(result.scores) == len(result.candidates)
    json.dumps(result.as_dict())  # JSON-ready


# ---------------------------------------------------------------------------------------------
# best-of-N


def test_best_of_n_plain_picks_the_max_score(lm):
    result = ps.best_of_n.run(lm, LETTERS, PROMPT, config=BestOfNConfig(n=8, max_new_tokens=12, seed=1))
    assert result.stopped == "done" and result.algorithm == "best_of_n"
    assert len(result.candidates) == 8 and set(result.candidates) == set(result.tree[1:])
    recomputed = [letters(PROMPT, c.text) for c in result.candidates]
    assert result.scores == pytest.approx(recomputed)
    assert result.scores == sorted(result.scores, reverse=True)
    assert result.answer == max(result.tree[1:], key=lambda n: letters(PROMPT, n.text)).text
    assert all(c.finished for c in result.candidates)  # whole answers: EOS or max_new_tokens
    assert all(c.n_generated <= 12 for c in result.candidates)
    assert result.ledger.verifier_calls == 1 and result.ledger.items_scored == 8
    check_consistent(result)


def test_majority_picks_the_most_frequent_answer(lm):
    result = ponder.search("majority", lm, None, "48 + 24 = 72, 7 * 6 =", n=16, max_new_tokens=24, seed=0)
    counts = collections.Counter(a for a in (extract_answer(c.text) for c in result.candidates) if a is not None)
    assert counts, "the tiny model wrote no number; pick another seed"
    assert result.info["votes"] == {a: float(k) for a, k in counts.items()}
    winner = extract_answer(result.answer)
    assert counts[winner] == max(counts.values())
    assert result.ledger.verifier_calls == 0  # no verifier needed
    voted = [c for c in result.candidates if c.meta["answer"] is not None]
    assert result.candidates[: len(voted)] == voted  # answerless candidates come last, NaN scores
    assert all(math.isnan(s) for s in result.scores[len(voted) :])
    check_consistent(result, verifier_name=None)


def test_weighted_sums_verifier_scores_per_answer(lm):
    result = ponder.search("bon", lm, LETTERS, "48 + 24 = 72, 7 * 6 =", n=16, mode="weighted", max_new_tokens=24, seed=0)
    totals = collections.defaultdict(float)
    for c in result.candidates:
        if extract_answer(c.text) is not None:
            totals[extract_answer(c.text)] += letters(c.prompt, c.text)
    assert totals
    assert result.info["votes"] == pytest.approx(dict(totals))
    assert totals[extract_answer(result.answer)] == pytest.approx(max(totals.values()))
    check_consistent(result)


def test_rank_modes_on_constructed_answers(lm):
    """plain, weighted and majority disagree on purpose: 7 is frequent, 9 is well-scored."""
    root = lm.root("Q:")
    texts = [" so 7", " it is 7", " maybe 7", " the answer is 9", " #### 9", " no idea"]
    nodes = lm.extend([root] * len(texts), [lm.tokenizer.encode(t) for t in texts])
    assert [n.text for n in nodes] == texts
    scores = [0.2, 0.1, 0.3, 0.5, 0.45, 0.9]
    plain = rank(nodes, scores, mode="plain")
    assert [n.text for n in plain.nodes] == [texts[i] for i in (5, 3, 4, 2, 0, 1)]
    weighted = rank(nodes, scores, mode="weighted")  # 9: 0.95 > 7: 0.6
    assert weighted.votes == pytest.approx({"9": 0.95, "7": 0.6})
    assert [n.text for n in weighted.nodes] == [texts[i] for i in (3, 4, 2, 0, 1, 5)]
    assert weighted.scores[:5] == pytest.approx([0.95, 0.95, 0.6, 0.6, 0.6]) and math.isnan(weighted.scores[5])
    majority = rank(nodes, scores, mode="majority")  # 7: 3 votes > 9: 2
    assert majority.votes == {"7": 3.0, "9": 2.0}
    assert majority.nodes[0].text == " maybe 7"  # the best-scored 7
    majority_no_verifier = rank(nodes, None, mode="majority")  # within an answer, by log-probability
    sevens = [n for n in majority_no_verifier.nodes if n.meta["answer"] == "7"]
    assert [n.logprob for n in sevens] == sorted((n.logprob for n in sevens), reverse=True)
    with pytest.raises(ConfigError, match="needs verifier scores"):
        rank(nodes, None, mode="weighted")
    with pytest.raises(ValueError, match="no candidates"):
        rank([], [], mode="plain")


def test_rank_truncated_answers_can_abstain(lm):
    """Two of the three 7s hit the length limit: abstaining, 9 wins the vote 2 to 1."""
    root = lm.root("Q:")
    texts = [" so 7", " it is 7", " maybe 7", " the answer is 9", " #### 9"]
    nodes = lm.extend([root] * len(texts), [lm.tokenizer.encode(t) for t in texts])
    for i, reason in ((0, "max_new_tokens"), (1, "length")):
        nodes[i] = dataclasses.replace(nodes[i], finish_reason=reason, meta={})
    assert rank(nodes, None, mode="majority").votes == {"7": 3.0, "9": 2.0}
    abstained = rank(nodes, None, mode="majority", truncated="abstain")
    assert abstained.votes == {"9": 2.0, "7": 1.0}
    assert {id(n) for n in abstained.nodes[-2:]} == {id(nodes[0]), id(nodes[1])}
    assert all(math.isnan(s) for s in abstained.scores[-2:])
    with pytest.raises(ConfigError, match="truncated policy 'drop'; valid choices: vote, abstain"):
        rank(nodes, None, mode="majority", truncated="drop")
    with pytest.raises(ConfigError, match="truncated"):
        ponder.search("best_of_n", lm, None, "Q:", mode="majority", truncated="drop")


# ---------------------------------------------------------------------------------------------
# beam search


@pytest.mark.parametrize(
    "path, best",
    [
        ([0.9, 0.3, 0.6], {"last": 0, "min": 1, "product": 0}),
        ([0.9, 0.9, 0.4], {"last": 1, "min": 1, "product": 0}),
    ],
)
def test_aggregation_modes_rank_paths_as_defined(path, best):
    flat = [0.5, 0.5, 0.5]
    for how, winner in best.items():
        a, b = aggregate(how, path), aggregate(how, flat)
        assert (0 if a > b else 1) == winner, how
    assert aggregate("last", path) == path[-1]
    assert aggregate("min", path) == min(path)
    assert aggregate("product", path) == pytest.approx(np.prod(path))
    # incremental = whole path (what the search computes node by node)
    for how in ("last", "min", "product"):
        assert aggregate(how, [aggregate(how, path[:2]), path[2]]) == pytest.approx(aggregate(how, path))


@pytest.mark.parametrize("aggregation", ["last", "min", "product"])
def test_beam_keeps_width_beams_by_path_score(lm, aggregation):
    width, expansions = 3, 2
    result = ponder.search(
        "beam", lm, LETTERS, PROMPT, width=width, expansions=expansions, stop="e", step_tokens=6, max_new_tokens=16, aggregation=aggregation, seed=16
    )
    assert result.info["depths"][0]["completed"] > 0  # seed 16: an answer completes at depth 1, so fewer beams are kept
    tree = result.tree
    for node in tree[1:]:  # path scores follow the definition
        steps = [n.scores["letters"] for n in node.path()[1:]]
        assert node.meta["path_score"] == pytest.approx(aggregate(aggregation, steps))
    by_depth = collections.defaultdict(list)
    for node in tree[1:]:
        by_depth[node.depth].append(node)
    assert len(by_depth[1]) == width * expansions
    completed = 0
    for depth in sorted(by_depth)[:-1]:
        level = by_depth[depth]
        completed += sum(n.finished for n in level)
        expanded = {n.parent.id for n in by_depth[depth + 1]}
        open_nodes = sorted((n for n in level if not n.finished), key=lambda n: -n.meta["path_score"])
        assert expanded == {n.id for n in open_nodes[: width - completed]}  # the top width - completed
        assert all(sum(c.parent is p for c in by_depth[depth + 1]) == expansions for p in level if p.id in expanded)
    assert [d["beams"] for d in result.info["depths"]][:-1] == [
        len({n.parent.id for n in by_depth[d + 1]}) for d in sorted(by_depth)[:-1]
    ]
    check_consistent(result)


def test_beam_completes_and_ranks_by_outcome_or_aggregate(lm):
    common = dict(width=3, expansions=2, stop=(), step_tokens=4, max_new_tokens=8, aggregation="min", seed=3)
    outcome = ponder.search("beam", lm, LETTERS, PROMPT, **common)
    assert outcome.stopped == "done" and outcome.finished
    assert len(outcome.candidates) >= 3 and all(c.finished for c in outcome.candidates)
    assert outcome.scores == [c.scores["letters"] for c in outcome.candidates]  # verifier on whole answers
    assert outcome.scores == sorted(outcome.scores, reverse=True)
    by_path = ponder.search("beam", lm, LETTERS, PROMPT, ranking="aggregate", **common)
    assert by_path.scores == [c.meta["path_score"] for c in by_path.candidates]
    assert by_path.scores == sorted(by_path.scores, reverse=True)
    assert all(c.finished for c in by_path.candidates)
    check_consistent(outcome)


def test_beam_out_of_steps_returns_unfinished_beams(lm):
    result = ponder.search("beam", lm, LETTERS, PROMPT, width=3, expansions=2, stop=(), step_tokens=4, max_steps=2, max_new_tokens=100, seed=4)
    assert result.stopped == "done" and not result.finished
    assert len(result.candidates) == 3 and not any(c.finished for c in result.candidates)
    assert result.scores == sorted(result.scores, reverse=True)
    assert all(c.depth == 2 for c in result.candidates)
    check_consistent(result)


# ---------------------------------------------------------------------------------------------
# REBASE


def test_allocate_follows_the_softmax_and_sums_to_the_width():
    np.testing.assert_array_equal(allocate([1.0, 0.0, 0.0], 4, 1.0), [2, 1, 1])  # quotas 2.30, 0.85, 0.85
    np.testing.assert_array_equal(allocate([1.0, 0.0, 0.0], 4, 0.01), [4, 0, 0])  # greedy as T -> 0
    np.testing.assert_array_equal(allocate([0.3, 0.3, 0.3], 4, 1.0), [2, 1, 1])  # ties to the earlier node
    np.testing.assert_array_equal(allocate([0.2, 0.9], 0, 1.0), [0, 0])
    np.testing.assert_array_equal(allocate([5.0], 7, 0.1), [7])
    for bad in (dict(rewards=[0.1], width=2, temperature=0.0), dict(rewards=[math.nan], width=2, temperature=1.0), dict(rewards=[0.1], width=-1, temperature=1.0)):
        with pytest.raises(ValueError):
            allocate(**bad)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=1, max_size=12),
    st.integers(0, 40),
    st.floats(0.05, 10),
)
def test_allocate_properties(rewards, width, temperature):
    counts = allocate(rewards, width, temperature)
    assert counts.sum() == width and (counts >= 0).all()
    z = np.asarray(rewards) / temperature
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert np.all(np.abs(counts - width * p) < 1 + 1e-9)  # within one of the quota
    order = np.argsort(rewards, kind="stable")
    assert np.all(np.diff(counts[order]) >= -1)  # a better reward never gets fewer children by more than rounding


@pytest.mark.parametrize("seed, shape", [(16, "an answer completes at depth 1"), (1, "unequal counts [1, 1, 4] at depth 2")])
def test_rebase_allots_children_by_allocate(lm, seed, shape):
    width, T = 6, 0.05
    result = ponder.search("rebase", lm, LETTERS, PROMPT, width=width, balance_temperature=T, stop="e", step_tokens=6, max_new_tokens=12, seed=seed)
    by_depth = collections.defaultdict(list)
    for node in result.tree[1:]:
        by_depth[node.depth].append(node)
    assert len(by_depth[1]) == width
    if shape.startswith("an answer"):
        assert 0 < result.info["depths"][0]["completed"] < width, shape
    else:
        assert sorted(collections.Counter(n.parent.id for n in by_depth[2]).values()) == [1, 1, 4], shape
    completed = 0
    for depth in sorted(by_depth)[:-1]:
        level = by_depth[depth]
        completed += sum(n.finished for n in level)
        frontier = [n for n in level if not n.finished]
        expected = allocate([n.scores["letters"] for n in frontier], width - completed, T)
        got = [sum(c.parent is n for c in by_depth[depth + 1]) for n in frontier]
        assert got == expected.tolist()
        assert sum(got) == width - completed == len(by_depth[depth + 1])
    assert result.stopped == "done"
    assert sum(c.finished for c in result.candidates) == width
    finished = [c for c in result.candidates if c.finished]
    assert [c.scores["letters"] for c in finished] == sorted((c.scores["letters"] for c in finished), reverse=True)
    check_consistent(result)


def test_rebase_majority_select(lm):
    # seed 2: two distinct answers among the finished ones, "24" twice and "56" once; the vote is not a tie
    result = ponder.search("rebase", lm, LETTERS, "7 * 6 = 42, 3 + 4 =", width=8, stop=(), step_tokens=6, max_new_tokens=18, select="majority", seed=2)
    counts = collections.Counter(extract_answer(c.text) for c in result.candidates if c.finished and extract_answer(c.text) is not None)
    assert result.info.get("depths") and result.stopped == "done"
    assert len(counts) >= 2 and sorted(counts.values())[-1] > sorted(counts.values())[-2], counts  # a real contest
    assert counts[extract_answer(result.answer)] == max(counts.values())


# ---------------------------------------------------------------------------------------------
# budgets, failures, errors


BUDGET_CASES = [
    ("best_of_n", dict(n=32, max_new_tokens=8, seed=0), "tokens", 20),
    ("best_of_n", dict(n=32, max_new_tokens=8, batch=2, seed=0), "verifier_calls", 2),
    ("best_of_n", dict(n=32, max_new_tokens=8, seed=0), "nodes", 6),
    ("best_of_n", dict(n=32, max_new_tokens=8, batch=1, seed=0), "seconds", 1e-6),
    ("beam", dict(width=3, expansions=2, stop=(), step_tokens=4, max_new_tokens=200, seed=0), "tokens", 40),
    ("beam", dict(width=3, expansions=2, stop=(), step_tokens=4, max_new_tokens=200, seed=0), "verifier_calls", 2),
    ("beam", dict(width=3, expansions=2, stop=(), step_tokens=4, max_new_tokens=200, seed=0), "nodes", 10),
    ("rebase", dict(width=4, stop=(), step_tokens=4, max_new_tokens=200, seed=1), "tokens", 30),  # seed 1: no answer ends early
    ("rebase", dict(width=4, stop=(), step_tokens=4, max_new_tokens=200, seed=1), "verifier_calls", 2),
    ("rebase", dict(width=4, stop=(), step_tokens=4, max_new_tokens=200, seed=1), "nodes", 10),
]


@pytest.mark.parametrize("algo, config, cap, limit", BUDGET_CASES, ids=[f"{a}-{c}" for a, _, c, _ in BUDGET_CASES])
def test_budget_stops_cleanly_with_the_best_so_far(lm, algo, config, cap, limit):
    steps = []
    result = ponder.search(algo, lm, LETTERS, PROMPT, budget=Budget(**{cap: limit}), progress=lambda led, bud: steps.append(led.as_dict()), **config)
    assert result.stopped == cap
    assert result.candidates and result.best is not None
    spent = {"tokens": result.ledger.generated_tokens, "verifier_calls": result.ledger.verifier_calls, "nodes": result.ledger.nodes}
    if cap in spent:
        assert spent[cap] >= limit
        if len(steps) > 1:
            assert steps[-2][{"tokens": "generated_tokens"}.get(cap, cap)] < limit  # the step before was within budget
    if algo == "best_of_n":
        assert len(result.candidates) < config["n"]
        if cap == "tokens":
            assert result.ledger.generated_tokens < limit + config["max_new_tokens"]  # overshoot < one sample
    else:
        assert not result.finished  # unfinished best beams, marked as such
    check_consistent(result)


def flaky(fail_on: int):
    calls = []

    def score(prompts, texts):
        calls.append(len(texts))
        if len(calls) == fail_on:
            raise RuntimeError("reward model crashed")
        return [letters(p, t) for p, t in zip(prompts, texts)]

    return pv.verifier(score, name="flaky", kind="process", batched=True)


@pytest.mark.parametrize(
    "algo, config",
    [
        ("best_of_n", dict(n=6, batch=2, max_new_tokens=8, seed=0)),
        ("beam", dict(width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=40, seed=0)),
        ("rebase", dict(width=4, stop=(), step_tokens=4, max_new_tokens=40, seed=0)),
    ],
)
@pytest.mark.parametrize("fail_on", [1, 2])
def test_verifier_failure_keeps_the_partial_result(lm, algo, config, fail_on):
    with pytest.raises(VerifierError, match="reward model crashed") as info:
        ponder.search(algo, lm, flaky(fail_on), PROMPT, **config)
    partial = info.value.partial
    assert isinstance(partial, SearchResult) and partial.stopped == "interrupted"
    assert len(partial.tree) > 1 and partial.candidates
    assert partial.ledger.verifier_calls == fail_on
    assert partial.ledger.nodes == len(partial.tree)
    assert partial.ledger.generated_tokens == sum(len(n.step_tokens) for n in partial.tree[1:])
    scored = [c for c in partial.candidates if "flaky" in c.scores]
    if fail_on == 1:
        assert not scored and all(math.isnan(s) for s in partial.scores)
    else:
        assert scored and partial.best is scored[0]
        assert not math.isnan(partial.score)
    json.dumps(partial.as_dict())


def test_config_errors_list_the_valid_choices(lm):
    with pytest.raises(ConfigError, match="valid choices: best_of_n, bon, majority, beam, rebase, astar, dvts, mcts"):
        ponder.search("dijkstra", lm, LETTERS, PROMPT)
    with pytest.raises(ConfigError, match=r"BeamConfig.width must be an integer >= 1, got 0"):
        ponder.search("beam", lm, LETTERS, PROMPT, width=0)
    with pytest.raises(ConfigError, match=r"unknown BeamConfig.aggregation 'mean'; valid choices: last, min, product"):
        ponder.search("beam", lm, LETTERS, PROMPT, aggregation="mean")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'widht' for search 'rebase'; valid options: width, balance_temperature"):
        ponder.search("rebase", lm, LETTERS, PROMPT, widht=4)
    with pytest.raises(ConfigError, match="valid choices: plain, weighted, majority"):
        ponder.search("best_of_n", lm, LETTERS, PROMPT, mode="vote")
    with pytest.raises(ConfigError, match="'majority' fixes mode='majority'"):
        ponder.search("majority", lm, None, PROMPT, mode="plain")
    with pytest.raises(ConfigError, match="needs a verifier"):
        ponder.search("best_of_n", lm, None, PROMPT)
    with pytest.raises(ConfigError, match="expected a verifier"):
        ponder.search("beam", lm, 42, PROMPT)
    with pytest.raises(ConfigError, match="valid caps: tokens, verifier_calls, nodes, seconds"):
        ponder.search("beam", lm, LETTERS, PROMPT, budget={"token": 10})
    with pytest.raises(ConfigError, match="must be a finite number > 0"):
        RebaseConfig(balance_temperature=0)
    with pytest.raises(ConfigError, match="unknown verifier 'nope'"):
        ponder.search("beam", lm, "nope", PROMPT)
    with pytest.raises(ConfigError, match="must be a BeamConfig"):
        ponder.search("beam", lm, LETTERS, PROMPT, config=RebaseConfig())
    with pytest.raises(PonderError, match="produced no candidates"):
        Trace("beam", BeamConfig(), None, None).result([], [], "done")


def test_config_object_and_overrides(lm):
    base = BeamConfig(width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=8, seed=0)
    a = ponder.search("beam", lm, LETTERS, PROMPT, config=base)
    b = ps.beam.run(lm, LETTERS, PROMPT, config=base)
    assert [c.text for c in a.candidates] == [c.text for c in b.candidates]  # same seed, same search
    c = ponder.search("beam", lm, LETTERS, PROMPT, config=base, width=3)
    assert c.config["width"] == 3 and len(c.info["depths"]) and c.info["depths"][0]["children"] == 6
    m = ponder.search("majority", lm, None, PROMPT, n=3, max_new_tokens=4, mode="majority", seed=0)
    assert m.config["mode"] == "majority" and len(m.candidates) == 3


# ---------------------------------------------------------------------------------------------
# the front door


def test_front_door_verifier_forms_and_progress(lm):
    assert callable(ponder.search) and ponder.search.run is ps.run
    assert type(ponder.search.ledger).__name__ == "module" and ponder.search.Budget is ponder.Budget

    def shortish(prompt, text):  # a plain function: wrapped as a process verifier for beam
        return -abs(len(text) - 10) / 10

    calls = []
    result = ponder.search(
        "beam", lm, shortish, PROMPT, budget={"tokens": 10_000}, progress=lambda led, bud: calls.append((led, bud)), width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=12, seed=0
    )
    assert len(calls) == len(result.info["depths"]) and calls[0][0] is result.ledger and calls[0][1] == Budget(tokens=10_000)
    assert all("shortish" in n.scores for n in result.tree[1:])
    by_name = ponder.search("bon", lm, "length", PROMPT, n=4, max_new_tokens=6, seed=0)  # registered name
    assert all("length" in c.scores for c in by_name.candidates)
    assert by_name.scores == sorted(by_name.scores, reverse=True)
    math_ref = pv.math_answer(reference=7)
    graded = ponder.search("bon", lm, math_ref, PROMPT, n=4, max_new_tokens=6, seed=0)
    assert graded.scores == [float(extract_answer(c.text) == "7") for c in graded.candidates]


def test_as_dict_is_json_with_parent_ids(lm):
    result = ponder.search("rebase", lm, LETTERS, PROMPT, width=3, stop=(), step_tokens=4, max_new_tokens=8, seed=1)
    data = json.loads(json.dumps(result.as_dict()))
    ids = {n["id"] for n in data["tree"]}
    assert data["algorithm"] == "rebase" and data["answer"] == result.answer and data["best"] == result.best.id
    assert all(n["parent"] in ids for n in data["tree"][1:]) and data["tree"][0]["parent"] is None
    assert [c["id"] for c in data["candidates"]] == [c.id for c in result.candidates]
    assert sum(n["step_tokens"] for n in data["tree"]) == data["ledger"]["generated_tokens"]
    assert data["config"]["width"] == 3 and data["config"]["stop"] == []


def test_search_never_imports_torch_and_imports_in_any_order():
    code = (
        "import sys; import ponder.verifiers, ponder.search as s; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'; "
        "assert callable(s) and s.ALGORITHMS['bon'].name == 'best_of_n'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    subprocess.run([sys.executable, "-c", code.replace("import ponder.verifiers, ponder.search as s", "import ponder.search as s, ponder.verifiers")], check=True)
