"""Tools as a generator (ponder.models.tools) and the Game of 24 environment (ponder.models.game24)."""

import math
import time
from fractions import Fraction

import pytest

import ponder
import ponder.verifiers as pv
from ponder.models import game24
from ponder.models.game24 import Game24
from ponder.models.tools import LMProposer, Proposal, Tool, ToolError, ToolGenerator, Tools, ToolSignatureError
from ponder.search.ledger import Ledger
from ponder.search.protocols import Call, ConfigError


def hang(seconds: float) -> float:
    """Sleep, then return the seconds."""
    time.sleep(seconds)
    return seconds


def divide(a: int, b: int) -> float:
    return a / b


def test_tool_is_typed_from_hints_and_converts_arguments():
    tool = Tool.of(divide)
    assert tool.params == (("a", int), ("b", int))
    assert tool.bind(("6", 3)) == (6, 3)
    with pytest.raises(TypeError, match="whole number"):
        tool.bind((2.5, 1))
    with pytest.raises(TypeError, match="takes 2 arguments"):
        tool.bind((1,))


@pytest.mark.parametrize("fn, problem", [
    (lambda a, b: a + b, "has no type hint"),
    (lambda *xs: sum(xs), "variadic"),
])
def test_untypable_signature_is_refused_at_registration(fn, problem):
    with pytest.raises(ToolSignatureError, match=problem):
        Tools([fn])


def test_failures_become_observations_and_are_counted():
    tools = Tools([divide], timeout=2.0)
    ledger = Ledger()
    with ledger.active():
        ok = tools.run(Call("divide", (6, 3)))
        err = tools.run(Call("divide", (1, 0)))
        bad = tools.run(Call("divide", ("x", 1)))
        unknown = tools.run(Call("rm", ("-rf", "/")))
    assert ok.ok and ok.value == 2.0
    assert err.status == "error" and "ZeroDivisionError" in err.error
    assert bad.status == "rejected" and "argument 'a'" in bad.error
    assert unknown.status == "rejected" and "no tool named 'rm'" in unknown.error
    assert ledger.count("tool_calls") == 2
    assert ledger.count("tool_failures") == 1
    assert ledger.count("tool_rejected") == 2


def test_thread_timeout_abandons_the_worker_and_later_calls_still_run():
    tools = Tools([hang], timeout=0.05, max_stuck=1)
    ledger = Ledger()
    with ledger.active():
        slow = tools.run(Call("hang", (0.5,)))
        fast = tools.run(Call("hang", (0.0,)))
    assert slow.status == "timeout" and "0.05 s" in slow.error
    assert fast.ok and fast.value == 0.0
    assert ledger.count("tool_timeouts") == 1
    assert tools.stuck == 1
    with pytest.raises(ToolError, match="never returned"):
        tools.run(Call("hang", (0.5,)))  # a second stuck worker exceeds max_stuck=1


def test_process_isolation_kills_a_call_that_overruns():
    tools = Tools(timeout=1.0)
    tools.add(hang, isolation="process", timeout=0.5)
    slow = tools.run(Call("hang", (30.0,)))
    assert slow.status == "timeout"
    assert tools.stuck == 0  # nothing left running: the worker process was killed
    fast = tools.run(Call("hang", (0.0,)))
    assert fast.ok and fast.value == 0.0
    tools.close()


def test_inline_tool_needs_no_timeout_but_others_do():
    with pytest.raises(ConfigError, match="needs a timeout"):
        Tools().add(divide, timeout=None, isolation="thread")
    assert Tools().add(divide, timeout=None, isolation="inline").timeout is None


def test_game24_moves_are_legal_and_the_solver_is_exact():
    start = game24.start("4 9 10 13")
    assert start == (4, 9, 10, 13)
    assert len(game24.moves(start)) == 36
    assert all(game24.legal(start, op, a, b) is None for op, a, b in game24.moves(start))
    assert game24.solvable(start) and not game24.solvable(game24.start("1 1 1 1"))
    numbers = start
    for op, a, b in game24.solution(start):
        numbers = game24.apply(numbers, a, b, game24.TOOLS[op](a, b))
    assert game24.solved(numbers)
    assert game24.solvable(game24.start("3 3 8 8"))  # needs a fraction: 8 / (3 - 8/3)
    with pytest.raises(ValueError, match="four numbers"):
        game24.start("1 2 3")


def test_solvable_with_a_limit_means_integer_results_up_to_it():
    assert game24.solvable(game24.start("4 9 10 13"), limit=50)  # (10 - 4) * (13 - 9)
    for puzzle in ("3 3 8 8", "3 3 7 7", "1 6 11 13"):  # 8/3, 3/7, 143 on every solution
        assert game24.solvable(game24.start(puzzle)) and not game24.solvable(game24.start(puzzle), limit=50)
    assert game24.solvable(game24.start("1 6 11 13"), limit=150)  # 11 * 13 = 143, + 1, / 6
    assert not game24.solvable(game24.start("1 1 1 1"), limit=1000)
    rows = game24.load(slice(0, 800))
    assert all(game24.solvable(game24.start(p), limit=50) for p in rows)  # the training rows, as documented
    with pytest.raises(ValueError, match="at least 24"):
        game24.solvable(game24.start("4 9 10 13"), limit=10)


def test_tool_generator_expands_every_legal_call_and_records_failures():
    gen = ToolGenerator(Game24())
    root = gen.root("3 3 8 8")
    kids = gen.expand([root])[0]
    assert len(kids) == len(game24.moves(root.world))
    assert all(k.observation.ok and k.depth == 1 and len(k.world) == 3 for k in kids)
    bad = gen.expand([root], actions=[[Call("div", (Fraction(8), Fraction(5)))]])[0][0]
    assert bad.observation.status == "rejected" and "5 is not among" in bad.observation.error
    assert bad.world == root.world and not bad.finished
    # the fraction path to 24: 8 / 3 -> 3 - 8/3 = 1/3 -> 8 / (1/3) = 24
    s = root
    for call in (Call("div", (8, 3)), Call("sub", (3, Fraction(8, 3))), Call("div", (8, Fraction(1, 3)))):
        s = gen.expand([s], actions=[[call]])[0][0]
    assert s.solved and s.finished and [str(c) for c, _ in s.calls] == ["div(8, 3)", "sub(3, 8/3)", "div(8, 1/3)"]
    with pytest.raises(ValueError, match="finished"):
        gen.expand([s], actions=[[Call("add", (24, 0))]])


def test_game24_parse_is_strict():
    env = Game24()
    assert env.parse("sub(13, 9)") == Call("sub", (13, 9))
    assert env.parse(" div(8, 1/3) ") == Call("div", (8, Fraction(1, 3)))
    for text in ("sub(13, 9) because", "__import__('os')", "pow(2, 3)", "add(1)", "add(1, 2, 3)", "div(1, 3/0)", ""):
        assert env.parse(text) is None, text


def test_lm_proposer_parses_calls_from_a_real_lm_and_counts_malformed(tiny_lm):
    env = Game24()
    gen = ToolGenerator(env, proposer=LMProposer(tiny_lm, max_tokens=6))
    root = gen.root("4 9 10 13")
    ledger = Ledger()
    with ledger.active():
        proposals = gen.propose([root], 6)[0]
    # a random tiny model writes gibberish: every line is dropped as malformed, and counted
    assert ledger.count("proposals") == 6
    assert ledger.count("proposals_malformed") == 6 - sum(p.count for p in proposals)
    assert all(isinstance(p.call, Call) for p in proposals)


def test_constrained_lm_proposer_writes_only_legal_calls_even_from_a_random_lm(tiny_lm):
    env = Game24()
    gen = ToolGenerator(env, proposer=LMProposer(tiny_lm, max_tokens=16, constrain="legal"))
    roots = [gen.root("4 9 10 13"), gen.root("1 1 2 3")]
    ledger = Ledger()
    with ledger.active():
        proposals = gen.propose(roots, 6)
    # the same random model that writes only gibberish unconstrained: every line is now a legal call
    assert ledger.count("proposals") == 12 and ledger.count("proposals_malformed") == 0
    for root, props in zip(roots, proposals):
        legal = set(env.legal_calls(root.world))
        assert sum(p.count for p in props) == 6
        assert props and all(p.call in legal for p in props)
        assert math.isclose(sum(math.exp(p.logprob) for p in props), 1.0)


def test_constrained_lm_proposer_skips_dead_ends_and_rejects_bad_options(tiny_lm):
    env = Game24()
    gen = ToolGenerator(env, proposer=LMProposer(tiny_lm, constrain="legal"))
    s = gen.root("1 2 3 4")
    for call in (Call("add", (1, 2)), Call("add", (3, 3))):
        s = gen.expand([s], actions=[[call]])[0][0]
    live = s  # 6 4
    dead = gen.expand([s], actions=[[Call("add", (6, 4))]])[0][0]  # 10: no legal call, not solved
    assert not env.legal_calls(dead.world) and not dead.solved
    ledger = Ledger()
    with ledger.active():
        out = gen.propose([dead, live], 3)
    assert out[0] == [] and sum(p.count for p in out[1]) == 3
    assert ledger.count("proposals") == 3  # nothing decoded for the dead end
    with pytest.raises(ConfigError, match="constrain"):
        LMProposer(tiny_lm, constrain="grammar")


@pytest.fixture(scope="module")
def tiny_lm():
    from ponder.models import tiny_llama

    return tiny_llama(seed=0, context=1024)


def test_written_answers_are_checked_exactly_without_eval():
    assert game24.check_answer("4 9 10 13", "(10 - 4) * (13 - 9) = 24") == (True, "24")
    assert game24.check_answer("3 3 8 8", "8 / (3 - 8 / 3)")[0]  # exact fractions
    ok, why = game24.check_answer("3 3 8 8", "8 * 3 = 24")
    assert not ok and "not the puzzle's" in why
    ok, why = game24.check_answer("1 2 3 4", "__import__('os').system('true')")
    assert not ok and "unexpected" in why
    ok, why = game24.check_answer("1 2 3 4", "((1 + 2 + 3) * 4")
    assert not ok and "unbalanced" in why
    assert game24.check_answer("1 2 3 4", "(1 + 2 + 3) * 4")[0]


def test_a_path_of_calls_reads_as_an_expression_that_checks():
    for puzzle in ("3 3 8 8", "4 9 10 13", "1 8 12 12"):
        expr = game24.expression(puzzle, game24.solution(game24.start(puzzle)))
        assert game24.check_answer(puzzle, expr) == (True, "24"), expr


def test_a_searchs_seed_fixes_its_proposals_whatever_ran_before(tiny_lm):
    """MCTS over LM-proposed calls with seed=3 builds the same tree before and after an unrelated
    search on the same proposer (the proposer's own call counter no longer decides the draws);
    without a seed the proposer's stream moves on."""
    gen = ToolGenerator(Game24(), proposer=LMProposer(tiny_lm, max_tokens=16, constrain="legal", temperature=1.0))
    value = pv.game24_value()

    def calls(seed):
        r = ponder.search("mcts", gen, value, "4 9 10 13", simulations=6, k=4, goal="continue", seed=seed)
        return [str(s.call) for s in r.tree[1:]]

    first = calls(3)
    calls(None)  # draws from the proposer's stream in between
    assert calls(3) == first and len(first) >= 4
    assert calls(None) != calls(None)
    # a proposer without a seed parameter is still called (without one)
    class Plain:
        def propose(self, env, states, k=None):
            return [[Proposal(c, 0.0, 1) for c in env.legal_calls(s.world)[:2]] for s in states]

    plain = ToolGenerator(Game24(), proposer=Plain())
    assert len(plain.propose([plain.root("4 9 10 13")], 2, seed=5)[0]) == 2
