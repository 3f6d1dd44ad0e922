"""The core every family stands on: states and their indices, the ledger's open counters,
budgets that hold within a step, and the one failure path (verifier failure, Ctrl-C, cancel).

Runs the tiny random Llama with real searches.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import ponder
import ponder.models as pm
import ponder.verifiers as pv
from ponder.search import Budget, ConfigError, Ledger, SearchCancelled, SearchResult, State
from ponder.search.ledger import charge, register_counter
from ponder.search.result import Trace

PROMPT = "Question: what is 12 minus 5? Answer:"
LETTERS = pv.verifier(lambda p, t: sum(c.isalpha() for c in t) / max(1, len(t)), name="letters", kind="process")


@pytest.fixture(scope="module")
def lm():
    return pm.tiny_llama(seed=0)


# ---------------------------------------------------------------------------------------------
# states


def test_a_search_gives_its_states_dense_indices_from_zero(lm):
    result = ponder.search("beam", lm, LETTERS, PROMPT, width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=12, seed=0)
    assert [s.index for s in result.tree] == list(range(len(result.tree)))
    assert all(s.parent.index < s.index for s in result.tree[1:])
    again = ponder.search("beam", lm, LETTERS, PROMPT, width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=12, seed=0)
    assert again.tree[0].index == 0  # per search, not a global counter


def test_a_generic_state_serialises_and_is_its_own_candidate():
    root = State(prompt="p")
    child = State(prompt="p", parent=root, depth=1, logprob=-2.0, proposal_logprob=-1.5, cost=3.0, meta={"x": (1, 2)})
    trace = Trace("probe", None, None, None)
    trace.add([root, child])
    assert child.candidate is child and child.path() == [root, child]
    assert child.log_weight_correction == pytest.approx(-0.5)
    assert root.log_weight_correction == 0.0
    d = child.as_dict()
    assert d["index"] == 1 and d["parent"] == 0 and d["cost"] == 3.0 and d["meta"] == {"x": [1, 2]}
    json.dumps(d)


def test_text_states_carry_the_text_as_candidate(lm):
    result = ponder.search("best_of_n", lm, LETTERS, PROMPT, n=2, max_new_tokens=4, seed=0)
    assert all(c.candidate == c.text for c in result.candidates)
    assert result.answer == result.best.text


# ---------------------------------------------------------------------------------------------
# ledger counters


def test_a_ledger_takes_any_family_counter_and_reports_only_what_was_used():
    ledger = Ledger()
    with ledger.active():
        charge(tool_calls=3, tool_seconds=0.25)
        charge(tool_calls=1)
    assert ledger.count("tool_calls") == 4 and ledger.count("tool_seconds") == pytest.approx(0.25)
    d = ledger.as_dict()
    assert d["tool_calls"] == 4 and "generated_tokens" not in d and "computed_tokens" not in d and "wall_time" in d
    assert "tool calls 4" in str(ledger)


def test_a_text_search_reports_verifier_seconds(lm):
    result = ponder.search("best_of_n", lm, LETTERS, PROMPT, n=2, max_new_tokens=4, seed=0)
    d = result.ledger.as_dict()
    assert d["verifier_calls"] == 1 and result.ledger.verifier_seconds > 0 and "verifier_seconds" in d
    majority = ponder.search("majority", lm, None, PROMPT, n=2, max_new_tokens=4, seed=0)
    assert "verifier_calls" not in majority.ledger.as_dict()  # it used none


def test_a_budget_caps_a_family_counter():
    register_counter("probe_calls", "calls of the test's probe")
    budget = Budget(probe_calls=5)
    ledger = Ledger()
    with ledger.active():
        charge(probe_calls=4)
        assert ledger.exhausted(budget) is None and ledger.left(budget, "probe_calls") == 1
        charge(probe_calls=1)
    assert ledger.exhausted(budget) == "probe_calls"


@pytest.mark.parametrize(
    "caps, message",
    [
        ({"tokens": -5}, r"Budget.tokens must be an integer > 0 or None, got -5"),
        ({"tokens": 2.5}, r"Budget.tokens must be an integer > 0 or None, got 2.5"),
        ({"tokens": True}, r"Budget.tokens must be an integer > 0"),
        ({"seconds": 0}, r"Budget.seconds must be a finite number > 0"),
        ({"token": 10}, r"unknown budget cap 'token'; valid caps: tokens, verifier_calls, nodes, seconds"),
    ],
)
def test_bad_budgets_raise_config_errors(caps, message):
    with pytest.raises(ConfigError, match=message):
        Budget(**caps)


# ---------------------------------------------------------------------------------------------
# budgets that hold


@pytest.mark.parametrize(
    "algo, config",
    [
        ("beam", dict(width=2, expansions=2, stop=(), step_tokens=64, max_new_tokens=400)),
        ("rebase", dict(width=4, stop=(), step_tokens=64, max_new_tokens=400)),
        ("best_of_n", dict(n=16, max_new_tokens=64)),
    ],
)
@pytest.mark.parametrize("limit", [37, 300])
def test_a_token_cap_holds_within_one_token_per_row(lm, algo, config, limit):
    # seed 1: no configuration finishes its answers before the larger cap (the cap is what is tested)
    result = ponder.search(algo, lm, LETTERS, PROMPT, budget=Budget(tokens=limit), seed=1, **config)
    rows = max(len([n for n in result.tree if n.depth == d]) for d in range(1, max(n.depth for n in result.tree) + 1))
    assert result.stopped == "tokens"
    assert limit <= result.ledger.generated_tokens < limit + rows  # the last step was cut to ceil(left / rows)


def test_a_node_cap_cuts_the_last_step(lm):
    result = ponder.search("beam", lm, LETTERS, PROMPT, budget=Budget(nodes=7), width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=400, seed=0)
    assert result.stopped == "nodes" and result.ledger.nodes == 7 == len(result.tree)


def test_a_budget_smaller_than_a_step_still_gives_a_result(lm):
    result = ponder.search("beam", lm, LETTERS, PROMPT, budget=Budget(tokens=1), width=2, expansions=2, stop=(), step_tokens=16, max_new_tokens=400, seed=0)
    assert result.stopped == "tokens" and result.best is not None
    assert result.ledger.generated_tokens == 4  # one token for each of the root's 4 children


def test_beam_keeps_every_completed_child_and_never_more_open_beams_than_width_left(lm):
    # short answers: many children of one depth finish together
    result = ponder.search("beam", lm, LETTERS, PROMPT, width=2, expansions=3, stop=(), step_tokens=3, max_new_tokens=3, seed=0)
    depths = result.info["depths"]
    assert depths[0]["completed"] == 6 > 2  # all 6 root children finished at once: all kept
    assert all(d["beams"] <= max(0, 2 - d["completed"]) for d in depths)
    assert sum(c.finished for c in result.candidates) == depths[-1]["completed"]


# ---------------------------------------------------------------------------------------------
# the one failure path


def interrupting(after: int):
    calls = []

    def score(prompts, texts):
        calls.append(len(texts))
        if len(calls) == after:
            raise KeyboardInterrupt
        return [0.5] * len(texts)

    return pv.verifier(score, name="interrupting", kind="process", batched=True)


@pytest.mark.parametrize("algo, config", [
    ("best_of_n", dict(n=6, batch=2, max_new_tokens=6)),
    ("beam", dict(width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=40)),
    ("rebase", dict(width=4, stop=(), step_tokens=4, max_new_tokens=40)),
])
def test_ctrl_c_ends_any_search_with_its_partial_result(lm, algo, config):
    with pytest.raises(SearchCancelled) as info:
        ponder.search(algo, lm, interrupting(2), PROMPT, seed=0, **config)
    err = info.value
    assert isinstance(err, KeyboardInterrupt) and isinstance(err.__cause__, KeyboardInterrupt)
    partial = err.partial
    assert isinstance(partial, SearchResult) and partial.stopped == "interrupted"
    assert partial.candidates and any("interrupting" in c.scores for c in partial.candidates)
    assert partial.ledger.nodes == len(partial.tree) > 1


def test_a_cancel_event_ends_the_search_at_its_next_step(lm):
    cancel = threading.Event()
    steps = []

    def progress(ledger, budget):
        steps.append(ledger.nodes)
        if len(steps) == 2:
            cancel.set()

    with pytest.raises(SearchCancelled) as info:
        ponder.search("beam", lm, LETTERS, PROMPT, progress=progress, cancel=cancel, width=2, expansions=2, stop=(), step_tokens=4, max_new_tokens=400, seed=0)
    assert len(steps) == 2 and info.value.partial.ledger.nodes == steps[-1]
    assert max(n.depth for n in info.value.partial.tree) == 2
    with pytest.raises(ConfigError, match="cancel must have an is_set"):
        ponder.search("beam", lm, LETTERS, PROMPT, cancel=True)
