"""A* / best-first / DFS / BFS (ponder.search.astar) over tool calls and over LM steps."""

from fractions import Fraction

import numpy as np
import pytest

import ponder
from ponder.models import game24
from ponder.models.game24 import Game24
from ponder.models.tools import ToolGenerator
from ponder.search.astar import AStarConfig
from ponder.search.protocols import ConfigError
from ponder.search.verify import VerifierError


class Oracle:
    """Exact heuristics from the solver: a value over states, or a policy over (state, call)."""

    kind = "process"

    def __init__(self, on: str = "states", nan_after: int | None = None):
        self.on, self.nan_after, self.calls = on, nan_after, 0
        self.name = f"oracle_{on}"

    def _value(self, numbers) -> float:
        return 1.0 if game24.solvable(tuple(numbers)) else 0.01

    def score(self, prompts, candidates):
        self.calls += 1
        if self.nan_after is not None and self.calls > self.nan_after:
            return [float("nan")] * len(candidates)
        if self.on == "states":
            return [self._value(c) for c in candidates]
        out = []
        for numbers, call in candidates:
            a, b = (Fraction(x) for x in call.args)
            out.append(self._value(game24.apply(numbers, a, b, game24.TOOLS[call.tool](a, b))))
        return out


@pytest.fixture(scope="module")
def gen():
    return ToolGenerator(Game24())


def replay(puzzle: str, calls: list[str]) -> tuple:
    numbers = game24.start(puzzle)
    env = Game24()
    for text in calls:
        call = env.parse(text)
        assert env.check(numbers, call) is None, (text, numbers)
        numbers = game24.apply(numbers, *call.args, game24.TOOLS[call.tool](*call.args))
    return numbers


@pytest.mark.parametrize("order", ["dfs", "bfs"])
def test_blind_search_solves_and_its_path_replays_to_24(gen, order):
    r = ponder.search("astar", gen, None, "3 3 8 8", order=order)
    assert r.stopped == "done" and r.info["solved"] and r.best.solved
    assert replay("3 3 8 8", r.info["path"]) == (24,)
    assert r.ledger.count("tool_calls") == r.info["expansions"]  # one call per pop
    assert len(r.tree) == r.ledger.count("tool_calls") + 1


def test_unsolvable_puzzle_exhausts_the_space_and_says_so(gen):
    r = ponder.search("astar", gen, None, "1 1 1 1", order="dfs")
    assert r.stopped == "exhausted" and not r.info["solved"] and r.info["frontier"] == 0
    assert not r.best.solved


def test_policy_on_calls_runs_only_the_calls_it_chooses(gen):
    policy = Oracle("calls")
    r = ponder.search("astar", gen, policy, "4 9 10 13", heuristic_on="calls")
    assert r.stopped == "done"
    assert r.ledger.count("tool_calls") == 3  # an exact policy runs the three solving calls, nothing else
    assert r.ledger.count("calls_scored") > 3
    assert replay("4 9 10 13", r.info["path"]) == (24,)


def test_value_on_states_runs_every_call_of_an_expanded_state(gen):
    r = ponder.search("astar", gen, Oracle("states"), "4 9 10 13")
    assert r.stopped == "done"
    first = len(game24.moves(game24.start("4 9 10 13")))
    assert r.ledger.count("tool_calls") >= first  # the root's calls all ran before any was scored
    assert r.ledger.count("tool_calls") < 100
    assert replay("4 9 10 13", r.info["path"]) == (24,)


def test_step_verifier_term_joins_g_and_steers_the_path(gen):
    whole = ponder.verifier(lambda prompt, numbers: 1.0 if all(Fraction(x).denominator == 1 for x in numbers) else 0.05,
                            name="whole_numbers", kind="process")
    r = ponder.search("astar", gen, Oracle("states"), "3 3 8 8", step_verifier=whole, step_weight=2.0)
    assert r.stopped == "done"
    assert replay("3 3 8 8", r.info["path"]) == (24,)
    for state in r.tree[1:]:
        v = whole("", state.world)
        assert state.cost == pytest.approx(state.parent.cost + 1.0 + 2.0 * -np.log(v))
    # the only solution of 3 3 8 8 (8 / (3 - 8 / 3)) goes through fractions, so its path pays for them
    assert r.best.cost > r.best.depth + 2.0 * -np.log(0.05) - 1e-9
    # where whole numbers suffice, the penalised path keeps to them
    r = ponder.search("astar", gen, Oracle("states"), "1 2 3 4", step_verifier=whole, step_weight=2.0)
    assert r.stopped == "done" and all(all(Fraction(x).denominator == 1 for x in s.world) for s in r.best.path())
    with pytest.raises(ConfigError, match="step_weight"):
        AStarConfig(step_verifier=whole, step_weight=-1.0)
    with pytest.raises(ConfigError, match="verifier"):
        AStarConfig(step_verifier=lambda p, t: 1.0)


def test_path_weight_adds_each_run_call_s_heuristic_term_to_its_child_s_g(gen):
    from ponder.verifiers.game24 import Game24Policy

    policy = Game24Policy()
    r = ponder.search("astar", gen, policy, "3 3 7 7", heuristic_on="calls", path_weight=0.5, weight=2.0)
    assert r.stopped == "done" and replay("3 3 7 7", r.info["path"]) == (24,)
    assert len(r.tree) > 4  # calls off the solution ran too
    for state in r.tree[1:]:
        u = -np.log(policy.score([""], [(state.parent.world, state.call)])[0])
        assert u > 0 and state.cost == pytest.approx(state.parent.cost + 1.0 + 0.5 * 2.0 * u)
    plain = ponder.search("astar", gen, policy, "3 3 7 7", heuristic_on="calls", weight=2.0)
    assert all(s.cost == s.depth for s in plain.tree)
    with pytest.raises(ConfigError, match="path_weight"):
        AStarConfig(path_weight=0.5)  # heuristic_on="states": no call terms
    with pytest.raises(ConfigError, match="path_weight"):
        AStarConfig(heuristic_on="calls", path_weight=-1.0)


def test_siblings_normalization_costs_each_run_call_minus_log_its_share_of_its_state_s_scores(gen):
    from ponder.verifiers.game24 import Game24Policy

    policy = Game24Policy()
    r = ponder.search("astar", gen, policy, "3 3 8 8", heuristic_on="calls", normalize="siblings", path_weight=1.0)
    assert r.stopped == "done" and replay("3 3 8 8", r.info["path"]) == (24,)
    assert len(r.tree) > 4  # calls off the solution ran too
    for state in r.tree[1:]:
        calls = gen.propose([state.parent], None)[0]
        v = policy.score([""] * len(calls), [(state.parent.world, c.call) for c in calls])
        share = v[[c.call for c in calls].index(state.call)] / v.sum()
        assert 0 < share < 1 and state.cost == pytest.approx(state.parent.cost + 1.0 - np.log(share))
    for bad in ({"normalize": "siblings"}, {"normalize": "siblings", "heuristic_on": "calls", "transform": "neg"},
                {"normalize": "softmax", "heuristic_on": "calls"}):
        with pytest.raises(ConfigError, match="normalize"):
            AStarConfig(**bad)


def test_heuristic_beats_dfs_on_calls_run(gen):
    puzzles = game24.load(slice(800, 820))
    dfs = [ponder.search("astar", gen, None, p, order="dfs").ledger.count("tool_calls") for p in puzzles]
    guided = [ponder.search("astar", gen, Oracle("states"), p).ledger.count("tool_calls") for p in puzzles]
    assert np.mean(guided) * 2 < np.mean(dfs)


def test_budget_cap_stops_with_its_name_and_a_result(gen):
    r = ponder.search("astar", gen, None, "4 9 10 13", order="dfs", budget={"tool_calls": 50})
    assert r.stopped == "tool_calls" and not r.info["solved"]
    assert r.ledger.count("tool_calls") == 50
    tiny = ponder.search("astar", gen, Oracle("states"), "4 9 10 13", budget={"tool_calls": 1})
    assert tiny.stopped == "tool_calls" and tiny.ledger.count("tool_calls") == 1 and tiny.best is not None


def test_nan_heuristic_raises_verifier_error_with_the_tree(gen):
    with pytest.raises(VerifierError) as info:
        ponder.search("astar", gen, Oracle("states", nan_after=1), "4 9 10 13")
    partial = info.value.partial
    assert partial is not None and partial.stopped == "interrupted"
    assert len(partial.tree) > 36  # the root, its 36 children, and the grandchildren being scored


def test_dedup_skips_states_seen_before(gen):
    on = ponder.search("astar", gen, None, "1 1 1 1", order="bfs")
    off = ponder.search("astar", gen, None, "1 1 1 1", order="bfs", dedup="none")
    assert any(s.meta.get("duplicate") for s in on.tree)
    assert on.ledger.count("tool_calls") < off.ledger.count("tool_calls")


def test_bad_configuration_is_refused(gen):
    with pytest.raises(ConfigError, match="needs a heuristic"):
        ponder.search("astar", gen, None, "4 9 10 13")
    with pytest.raises(ConfigError, match="uses no heuristic"):
        ponder.search("astar", gen, Oracle(), "4 9 10 13", order="dfs")
    with pytest.raises(ConfigError, match="order"):
        AStarConfig(order="dijkstra")
    with pytest.raises(ConfigError, match="weight"):
        AStarConfig(weight=-1)


def test_astar_over_lm_steps_uses_the_expansion_protocol():
    from ponder.models import tiny_llama
    from ponder.verifiers import verifier

    lm = tiny_llama(seed=0)
    letters = verifier(lambda p, t: 0.01 + sum(c.isalpha() for c in t) / max(1, len(t)), name="letters01", kind="process")
    with pytest.raises(ConfigError, match="propose"):
        ponder.search("astar", lm, letters, "Hi", heuristic_on="calls")
    r = ponder.search("astar", lm, letters, "Hi", k=2, cost="logprob", budget={"expansions": 4})
    assert r.stopped in ("done", "expansions")
    assert r.info["expansions"] <= 4
    for node in r.tree[1:]:
        assert node.cost == pytest.approx(node.parent.cost - node.step_logprob, abs=1e-5)


class Silent:
    """A proposer with nothing to say (an LM whose every line was malformed)."""

    def propose(self, env, states, k=None):
        return [[] for _ in states]


@pytest.mark.parametrize("algo, options", [("astar", {"order": "dfs"}), ("astar", {"heuristic_on": "calls"}), ("mcts", {"k": 4})])
def test_a_proposer_with_nothing_makes_a_dead_end_not_an_error(algo, options):
    gen = ToolGenerator(Game24(), proposer=Silent())
    verifier = None if options.get("order") == "dfs" else Oracle("calls" if options.get("heuristic_on") == "calls" else "states")
    r = ponder.search(algo, gen, verifier, "4 9 10 13", **options)
    assert r.stopped == "exhausted" and not r.info["solved"]
    assert r.ledger.count("tool_calls") == 0 and len(r.tree) == 1
