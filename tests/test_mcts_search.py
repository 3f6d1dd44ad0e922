"""MCTS over tool calls and LM steps (ponder.search.mcts) on the kernel's batched steps."""

import math

import pytest

import ponder
import ponder.models as pm
import ponder.verifiers as pv
from ponder.models import game24
from ponder.models.game24 import Game24
from ponder.models.tools import ToolGenerator
from ponder.search.mcts import MCTSConfig
from ponder.search.protocols import ConfigError
from ponder.search.verify import VerifierError

from test_astar import Oracle, replay

LETTERS = pv.verifier(lambda p, t: sum(c.isalpha() for c in t) / max(1, len(t)), name="letters", kind="process")


@pytest.fixture(scope="module")
def gen():
    return ToolGenerator(Game24())


@pytest.fixture(scope="module")
def lm():
    return pm.tiny_llama(seed=0)


def test_mcts_over_tool_calls_solves_with_an_exact_value(gen):
    r = ponder.search("mcts", gen, Oracle("states"), "4 9 10 13", simulations=None, k=None, budget={"tool_calls": 700})
    assert r.stopped == "done" and r.info["solved"] and r.best.solved
    path = [str(s.call) for s in r.best.path()[1:]]
    assert replay("4 9 10 13", path) == (24,)
    assert r.ledger.count("tool_calls") < 60  # a call runs only when selection first takes its edge


def test_unsolvable_puzzle_is_exhausted_not_looped(gen):
    r = ponder.search("mcts", gen, Oracle("states"), "1 1 1 1", simulations=None, k=None, budget={"tool_calls": 5000})
    assert r.stopped == "exhausted" and not r.info["solved"]
    assert r.ledger.count("tool_calls") < 5000


def test_virtual_visits_reach_the_kernel(gen):
    """virtual='visit' changes the tree built with several leaves a pass (it keeps the value term)."""
    runs = [ponder.search("mcts", gen, pv.game24_value(), "4 9 10 13", simulations=48, k=None, leaves=8, goal="continue", virtual=v)
            for v in ("loss", "visit")]
    loss, visit = ([s.meta.get("visits", 0) for s in r.tree] for r in runs)
    assert loss != visit


def test_batched_leaves_reach_the_generator_together(gen):
    one = ponder.search("mcts", gen, Oracle("states"), "1 1 1 1", simulations=48, k=None, leaves=1, goal="continue")
    eight = ponder.search("mcts", gen, Oracle("states"), "1 1 1 1", simulations=48, k=None, leaves=8, goal="continue")
    assert one.info["largest_batch"] == 1
    assert eight.info["largest_batch"] > 1
    assert eight.info["generator_passes"] < one.info["generator_passes"]


def test_filled_passes_give_each_expansion_call_its_leaves():
    """fill="expansions": every call that expands states gets `leaves` of them (but the root's and
    the last), where plain passes of 8 leaves hand over fewer; both run 64 simulations."""
    sizes = {}
    for fill in ("leaves", "expansions"):
        gen = ToolGenerator(Game24())
        propose, seen = gen.propose, []
        gen.propose = lambda states, k, **kw: seen.append(len(states)) or propose(states, k, **kw)
        r = ponder.search("mcts", gen, pv.game24_value(), "1 5 6 8", simulations=64, k=8, leaves=8, goal="continue", seed=0, fill=fill)
        assert r.info["simulations"] == 64
        assert r.info["expansion_calls"] == len(seen) and r.info["states_expanded"] == sum(seen)
        assert r.info["expansion_batches"] == seen
        sizes[fill] = seen
    assert sizes["expansions"][0] == 1 and set(sizes["expansions"][1:-1]) == {8}
    assert min(sizes["leaves"][1:-1]) < 8
    assert len(sizes["expansions"]) < len(sizes["leaves"])


def test_mcts_over_lm_steps_builds_a_consistent_tree(lm):
    # one leaf per pass: every simulation evaluates one new node or revisits a terminal one (with
    # several leaves, two may reach the same new edge and evaluate its node twice, as in mctx)
    r = ponder.search("mcts", lm, LETTERS, "Hi", simulations=10, k=3, leaves=1, step_tokens=4, seed=0)
    tree = r.tree
    assert tree[0].meta["visits"] == 11  # the root's own evaluation plus one per simulation
    for node in tree[1:]:
        assert node.parent is not None and node.depth == node.parent.depth + 1
    checked = 0
    for node in tree:
        kids = [c for c in tree if c.parent is node and "visits" in c.meta]
        if kids and not node.finished:  # its own evaluation, plus one per simulation through it
            assert node.meta["visits"] == 1 + sum(c.meta["visits"] for c in kids)
            checked += 1
    assert checked >= 2
    counts = {}
    for node in tree[1:]:
        counts[node.parent.index] = counts.get(node.parent.index, 0) + 1
    assert all(c == 3 for c in counts.values())  # k = 3 steps sampled per expanded state


def test_leaves_at_the_same_edge_expand_its_state_once(lm):
    # k = 1: the root has one action, so all four leaves of the first pass take the same edge
    r = ponder.search("mcts", lm, LETTERS, "Hi", simulations=8, k=1, leaves=4, step_tokens=3, seed=0)
    assert r.info["largest_batch"] == 4
    counts = {}
    for node in r.tree[1:]:
        counts[node.parent.index] = counts.get(node.parent.index, 0) + 1
    assert len(counts) >= 2 and all(c == 1 for c in counts.values())  # one sampled step per expanded state


def test_rollout_values_are_scores_of_sampled_completions(lm):
    r = ponder.search("mcts", lm, LETTERS, "Hi", simulations=4, k=2, value="rollout", step_tokens=4, max_new_tokens=12, seed=0)
    rollouts = [n for n in r.tree if n.meta.get("rollout")]
    assert rollouts and all(n.finished for n in rollouts if n.finish_reason == "eos")


def test_budget_ends_an_open_ended_search(lm):
    r = ponder.search("mcts", lm, LETTERS, "Hi", simulations=None, k=2, step_tokens=4, budget={"tokens": 30}, seed=0)
    assert r.stopped == "tokens"
    with pytest.raises(ConfigError, match="give a budget"):
        ponder.search("mcts", lm, LETTERS, "Hi", simulations=None)


def test_nan_value_raises_with_the_tree_so_far(gen):
    with pytest.raises(VerifierError) as info:
        ponder.search("mcts", gen, Oracle("states", nan_after=3), "4 9 10 13", simulations=20, k=None)
    assert info.value.partial is not None and len(info.value.partial.tree) >= 3


def test_bad_configuration_is_refused(gen):
    with pytest.raises(ConfigError, match="rollout"):
        ponder.search("mcts", gen, Oracle("states"), "4 9 10 13", value="rollout")
    with pytest.raises(ConfigError, match="leaves"):
        MCTSConfig(leaves=0)
    with pytest.raises(ConfigError, match="virtual"):
        MCTSConfig(virtual="none")
    with pytest.raises(ConfigError, match="fill"):
        MCTSConfig(fill="tokens")
    assert not math.isnan(MCTSConfig().c_puct)


def test_progressive_widening_adds_children_to_visited_states(lm):
    r = ponder.search("mcts", lm, LETTERS, "Hi", simulations=20, k=2, widening="progressive", max_children=5, step_tokens=4, seed=0)
    kids: dict[int, int] = {}
    for node in r.tree[1:]:
        kids[node.parent.index] = kids.get(node.parent.index, 0) + 1
    assert max(kids.values()) > 2  # some state grew past k
    assert max(kids.values()) <= 5  # never past max_children
    root_visits = r.tree[0].meta["visits"]
    assert kids[0] <= max(2, math.ceil(root_visits ** 0.5))  # the allowance at the root's visits
    with pytest.raises(ConfigError, match="max_children >= k"):
        MCTSConfig(widening="progressive", k=4, max_children=2)


def test_progressive_widening_over_tool_calls_opens_the_held_back_calls(gen):
    r = ponder.search("mcts", gen, Oracle("states"), "4 9 10 13", simulations=60, k=3, widening="progressive", max_children=36)
    kids: dict[int, int] = {}
    for node in r.tree[1:]:
        kids[node.parent.index] = kids.get(node.parent.index, 0) + 1
    assert kids[0] > 3  # the root ran calls beyond its first three
    assert r.stopped == "done" and r.info["simulations"] == 60  # held-back calls keep the tree open
