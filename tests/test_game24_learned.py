"""The learned Game of 24 value and policy (ponder.verifiers.game24) with the committed weights.

Held-out checks use puzzles of rows 800 onward of game24.csv, which training never saw.
"""

import json
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from ponder.models import game24 as g
from ponder.search.verify import VerifierError, run_verifier
from ponder.verifiers import game24 as learned
from ponder.verifiers.game24 import EPS, Game24Policy, Game24Value, call_features, number_features, state_features

F = Fraction


@pytest.fixture(scope="module")
def value():
    return Game24Value()


@pytest.fixture(scope="module")
def policy():
    return Game24Policy()


@pytest.fixture(scope="module")
def heldout():
    """Roots of rows 800+ and a fixed sample of the states (2-4 numbers) reachable from them."""
    roots = [g.start(p) for p in g.load(slice(800, None))]
    states, stack = set(), list(roots)
    while stack:
        s = stack.pop()
        if s in states or len(s) == 1:
            continue
        states.add(s)
        stack.extend(g.apply(s, a, b, g.TOOLS[op](a, b)) for op, a, b in g.moves(s))
    ordered = sorted(states, key=lambda s: (len(s), s))
    rng = np.random.default_rng(0)
    solvable = [s for s in ordered if g.solvable(s) and len(s) < 4]
    unsolvable = [s for s in ordered if not g.solvable(s)]
    sample = [solvable[i] for i in rng.choice(len(solvable), 300, replace=False)] + [unsolvable[i] for i in rng.choice(len(unsolvable), 1200, replace=False)]
    return roots, sample


def auc(y, p):
    y, p = np.asarray(y, bool), np.asarray(p)
    pos, neg = p[y], p[~y]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return greater + ties / 2


def test_weights_are_small_and_described(value, policy):
    for v, kind, most in ((value, "value", 500_000), (policy, "policy", 2_500_000)):
        assert v.weights.is_file() and v.weights.stat().st_size < most
        meta = v.meta
        assert meta["kind"] == kind and meta["train_rows"] == "0:800"
    assert policy.members == policy.meta["members"] == 5
    assert (learned.WEIGHTS / "game24_report.json").is_file()


def test_value_separates_heldout_states(value, heldout):
    _, sample = heldout
    p = value.score([""] * len(sample), sample)
    y = [g.solvable(s) for s in sample]
    assert ((p > 0) & (p <= 1)).all()
    assert auc(y, p) > 0.9
    assert ((p >= 0.5) == np.array(y)).mean() > 0.85


def test_value_exact_facts_and_formats(value):
    assert list(value.score(["", ""], [(F(24),), (F(23),)])) == [1.0, EPS]

    @dataclass
    class Node:
        world: tuple

    @dataclass
    class Holder:
        numbers: tuple

    state = g.start("3 3 8 8")
    p = value.score([""] * 4, [state, Node(state), Holder(state), "3 3 8 8"])
    assert np.allclose(p, p[0]) and 0 < p[0] <= 1
    assert value.score([""], ["3 8/3 8"])[0] == pytest.approx(value.score([""], [(F(3), F(8, 3), F(8))])[0])
    assert value.score([""], [[8, 3, F(8, 3)]])[0] == pytest.approx(value.score([""], ["8 3 8/3"])[0])  # any order, ints


def test_value_knows_simple_two_number_states(value):
    good = [(F(4), F(6)), (F(12), F(12)), (F(3), F(8)), (F(20), F(4)), (F(1, 3), F(8))]
    bad = [(F(5), F(7)), (F(1), F(1)), (F(13), F(13)), (F(2), F(9)), (F(100), F(3))]
    p = value.score([""] * 10, good + bad)
    assert p[:5].min() > p[5:].max()


def test_policy_ranks_a_solvable_move_first_on_heldout_roots(policy, heldout):
    roots, _ = heldout
    firsts, before = [], []
    for root in roots:
        ms = g.moves(root)
        p = policy.score([""] * len(ms), [(root, m) for m in ms])
        ok = np.array([g.solvable(g.apply(root, a, b, g.TOOLS[op](a, b))) for op, a, b in ms])
        order = np.argsort(-p, kind="stable")
        k = int(np.argmax(ok[order]))
        firsts.append(k == 0)
        before.append(k)
    assert np.mean(firsts) > 0.6  # a random order puts a solvable move first ~15% of the time
    assert np.mean(before) < 3.0


def test_policy_judges_the_last_move(policy):
    state = (F(3), F(8))
    ms = g.moves(state)
    p = policy.score([""] * len(ms), [(state, m) for m in ms])
    assert ms[int(np.argmax(p))] == ("mul", F(3), F(8))
    assert p.max() > 0.5 and np.sort(p)[-2] < 0.05  # the 2-number temperature (2.5) softens less than the trained logit


def test_policy_call_formats(policy):
    @dataclass(frozen=True)
    class Call:
        tool: str
        args: tuple

    state = g.start("4 6 1 1")
    p = policy.score([""] * 4, [(state, ("mul", 4, 6)), (state, Call("mul", (F(4), F(6)))), ("1 1 4 6", ("mul", F(6), F(4))), (list(state), ["mul", "4", "6"])])
    assert np.allclose(p, p[0]) and 0 < p[0] <= 1
    assert policy.score([""], [((F(0), F(3)), ("div", F(3), F(0)))])[0] == EPS  # division by zero: no state after


@pytest.mark.parametrize("bad", [object(), None, 42, "", "3 x 8", (), ("a", "b")])
def test_value_rejects_non_numbers(value, bad):
    with pytest.raises(ValueError, match="Game of 24 candidate is the remaining numbers"):
        value.score([""], [bad])
    with pytest.raises(VerifierError, match="game24_value"):
        run_verifier(value, [""], [bad])


def test_policy_rejects_bad_candidates(policy):
    state = g.start("1 2 3 4")
    with pytest.raises(ValueError, match="pair \\(numbers, call\\)"):
        policy.score([""], [state])
    with pytest.raises(ValueError, match="Game of 24 call"):
        policy.score([""], [(state, "add 1 2")])
    with pytest.raises(ValueError, match="unknown tool 'pow'"):
        policy.score([""], [(state, ("pow", 1, 2))])
    with pytest.raises(ValueError, match="not a legal call"):
        policy.score([""], [(state, ("add", 5, 1))])
    with pytest.raises(ValueError, match="not a legal call"):
        policy.score([""], [((F(1), F(2)), ("add", 1, 1))])  # one 1 only


def test_missing_weights_name_the_training_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ponder.verifiers.game24_train"):
        Game24Value(weights=tmp_path / "nothing.npz").score([""], [(F(1), F(2))])
    with pytest.raises(FileNotFoundError, match="python -m ponder.verifiers.game24_train"):
        Game24Policy(weights=tmp_path / "nothing.npz").score([""], [((F(1), F(2)), ("add", 1, 2))])
    with pytest.raises(ValueError, match="holds 'value' weights"):
        Game24Policy(weights=learned.WEIGHTS / "game24_value.npz").score([""], [((F(1), F(2)), ("add", 1, 2))])


# --- the policy computes no result --------------------------------------------------------------


def test_call_features_encode_each_number_alone():
    """op, count, then one block per number: changing one operand changes only its own block."""
    d = learned.number_dim()
    base = call_features("sub", F(8), F(3), [F(2)])
    assert base.shape == (learned.policy_dim(),)
    blocks = lambda x: [x[:7], x[7:7 + d], x[7 + d:7 + 2 * d], x[7 + 2 * d:7 + 3 * d], x[7 + 3 * d:]]  # noqa: E731
    assert np.array_equal(blocks(base)[1], number_features(F(8))) and np.array_equal(blocks(base)[2], number_features(F(3)))
    for changed, which in ((call_features("sub", F(9), F(3), [F(2)]), 1), (call_features("sub", F(8), F(5, 3), [F(2)]), 2), (call_features("sub", F(8), F(3), [F(7)]), 3)):
        diff = [not np.array_equal(x, y) for x, y in zip(blocks(base), blocks(changed))]
        assert diff == [i == which for i in range(5)]
    # two calls with the same result but different operands get different inputs (nothing encodes the result)
    assert not np.array_equal(call_features("add", F(1), F(5), []), call_features("add", F(2), F(4), []))


def test_feature_versions():
    """Version 1 is a prefix of version 2, which tells large neighbours apart; the shipped value
    keeps version 1 and the shipped policy uses version 2."""
    d1, d2 = learned.number_dim(1), learned.number_dim(2)
    assert d2 > d1
    for x in (F(0), F(7), F(-3), F(24), F(121), F(5, 3), F(2000)):
        assert np.array_equal(number_features(x, version=2)[:d1], number_features(x, version=1))
    v1 = [number_features(x, version=1) for x in (F(120), F(121))]
    v2 = [number_features(x, version=2) for x in (F(120), F(121))]
    assert np.abs(v2[0] - v2[1]).sum() > 4 * np.abs(v1[0] - v1[1]).sum()
    assert learned.state_features([F(1), F(2)], version=1).shape == (learned.value_dim(1),)
    assert Game24Value().feature_version == 1 and Game24Policy().feature_version == 2
    with pytest.raises(ValueError, match="feature version 3"):
        number_features(F(1), version=3)


def test_weights_of_an_unknown_feature_version_are_refused(tmp_path):
    with np.load(learned.WEIGHTS / "game24_policy.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps(dict(meta, feature_version=99)))
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(ValueError, match="feature version 99"):
        Game24Policy(weights=tmp_path / "p.npz").score([""], [((F(1), F(2)), ("add", 1, 2))])


def test_policy_network_sees_only_call_features(policy, monkeypatch):
    """The fast path equals the network run on call_features(op, a, b, rest), and scoring works
    with the game's arithmetic tools disabled."""
    rng = np.random.default_rng(1)
    pairs = []
    for p in g.load(slice(800, 830)):
        s = g.start(p)
        for _ in range(2):
            ms = g.moves(s)
            pairs.extend((s, m) for m in ms)
            op, a, b = ms[int(rng.integers(len(ms)))]
            s = g.apply(s, a, b, g.TOOLS[op](a, b))

    def broken(*args):
        raise AssertionError("the policy must not execute a call")

    monkeypatch.setattr(g, "TOOLS", {op: broken for op in g.OPS})
    for op in g.OPS:
        monkeypatch.setattr(g, op, broken)
    fresh = Game24Policy()
    fast = fresh.score([""] * len(pairs), pairs)
    rows = []
    for s, (op, a, b) in pairs:
        rest = list(s)
        rest.remove(a)
        rest.remove(b)
        rows.append(call_features(op, a, b, rest, version=fresh.feature_version))
    np.testing.assert_allclose(fast, np.clip(fresh.forward_features(np.stack(rows)), EPS, 1), rtol=1e-4, atol=1e-6)


def test_policy_members_average_their_logits(tmp_path):
    """Two members, the second the first with its output bias raised by d, score exactly as one
    network with the bias raised by d / 2: the logits are averaged (before the temperature)."""
    from ponder.verifiers.game24_train import save

    meta, parts = learned.load_weights(learned.WEIGHTS / "game24_policy.npz", "policy")
    one = {"psi": parts["psi"], "head": parts["head"]}
    d = 3.0

    def raised(by):
        head = [(w, b + (by if i == len(one["head"]) - 1 else 0.0)) for i, (w, b) in enumerate(one["head"])]
        return {"psi": one["psi"], "head": head}

    two = dict(one, **{"psi@1": raised(d)["psi"], "head@1": raised(d)["head"]})
    for name, ps in (("two", two), ("half", raised(d / 2))):
        save(tmp_path / f"{name}.npz", ps, dict(meta, members=len(ps) // 2), "float32", meta["feature_version"])
    pairs = [((F(4), F(9), F(10), F(13)), m) for m in g.moves((F(4), F(9), F(10), F(13)))]
    both, half = (Game24Policy(weights=tmp_path / f"{n}.npz") for n in ("two", "half"))
    assert both.members == 2 and half.members == 1
    np.testing.assert_allclose(both.score_calls(pairs), half.score_calls(pairs), rtol=1e-5)
    assert np.ptp(both.score_calls(pairs)) > 0.1  # the scores differ from call to call: not a saturated net


def test_value_fast_path_matches_state_features(value, heldout):
    _, sample = heldout
    states = sample[:200]
    np.testing.assert_allclose(value.score([""] * 200, states), np.clip(value.forward_features(np.stack([state_features(s, version=value.feature_version) for s in states])), EPS, 1), rtol=1e-4, atol=1e-6)


def test_scoring_encodes_each_number_once(heldout, monkeypatch):
    """Batched scoring encodes each distinct number once per verifier (its first-layer rows are
    cached): a second batch of the same states and calls encodes nothing. (Speed itself is
    measured by the benchmarks, not asserted here.)"""
    roots, sample = heldout
    states = (sample * 2)[:1000]
    pairs = [(r, m) for r in roots for m in g.moves(r)][:1000]
    encoded = []
    real = learned.number_features
    monkeypatch.setattr(learned, "number_features", lambda x, **kw: encoded.append(x) or real(x, **kw))
    value, policy = Game24Value(), Game24Policy()
    first_v = value.score([""] * len(states), states)
    assert sorted(encoded) == sorted({x for s in states if len(s) > 1 for x in s})
    encoded.clear()
    first_p = policy.score([""] * len(pairs), pairs)
    assert sorted(encoded) == sorted({x for r, _ in pairs for x in r})
    encoded.clear()
    np.testing.assert_array_equal(value.score([""] * len(states), states), first_v)
    np.testing.assert_array_equal(policy.score([""] * len(pairs), pairs), first_p)
    assert encoded == []


def test_training_refuses_heldout_rows():
    from ponder.verifiers import game24_train

    for rows in ("0:900", "800:1000", "0:"):
        with pytest.raises(SystemExit):
            game24_train.main(["--train-rows", rows])


def test_training_round_trip(tmp_path):
    """A tiny training run writes weights the numpy verifiers load and score with."""
    from ponder.verifiers import game24_train

    game24_train.main(["--train-rows", "0:6", "--out", str(tmp_path), "--value-epochs", "1", "--policy-epochs", "1", "--no-heldout", "--no-train-report",
                       "--value-hidden", "16", "--policy-hidden", "16", "--embed", "8"])
    assert {p.name for p in tmp_path.iterdir()} == {"game24_value.npz", "game24_policy.npz", "game24_report.json"}
    v, p = Game24Value(weights=tmp_path / "game24_value.npz"), Game24Policy(weights=tmp_path / "game24_policy.npz")
    assert 0 < v.score([""], ["1 2 3"])[0] <= 1 and 0 < p.score([""], [("1 2 3", ("add", 1, 2))])[0] <= 1


def test_training_one_model_keeps_the_other(tmp_path):
    """--train policy retrains the policy alone (here at feature version 1): the value file is
    left byte for byte, and the report evaluates it."""
    from ponder.verifiers import game24_train

    small = ["--train-rows", "0:6", "--out", str(tmp_path), "--value-epochs", "1", "--policy-epochs", "1", "--no-heldout",
             "--value-hidden", "16", "--policy-hidden", "16", "--embed", "8"]
    game24_train.main(small)
    value_bytes = (tmp_path / "game24_value.npz").read_bytes()
    report = game24_train.main(small + ["--train", "policy", "--policy-features", "1", "--no-proxy"])
    assert (tmp_path / "game24_value.npz").read_bytes() == value_bytes
    assert Game24Policy(weights=tmp_path / "game24_policy.npz").feature_version == 1
    assert report["features"]["policy"]["version"] == 1 and report["train"]["value"]["all"]["accuracy"] is not None


def test_hard_split_holds_out_states_that_need_a_fraction():
    from ponder.verifiers.game24_train import hard_split, policy_data, Table

    F = Fraction
    dev, excluded = hard_split(["1 3 4 6", "1 1 1 8"])  # 6 / (1 - 3/4); (1 + 1 + 1) * 8
    assert dev == [(F(3, 4), F(1), F(6))]  # 1 1 1 8 has no such child
    assert g.solvable(dev[0]) and not g.solvable(dev[0], limit=50)
    assert dev[0] in excluded and all(len(s) == 2 for s in excluded - set(dev))
    children = {g.apply(dev[0], a, b, g.TOOLS[op](a, b)) for op, a, b in g.moves(dev[0])}
    assert excluded == set(dev) | children  # the state and each of its 2-number children
    data = policy_data([g.start("1 3 4 6")], Table(), exclude=excluded)
    assert len(data["y"]) == len(g.moves(g.start("1 3 4 6"))) - 1  # div(3, 4) leads to the held-out state
    # odd marks calls whose result is a fraction or above 50
    odd = {(v, a, b): o for (v, a, b), o in zip(g.moves(g.start("1 3 4 6")), policy_data([g.start("1 3 4 6")], Table())["odd"])}
    assert odd[("div", F(1), F(3))] and not odd[("add", F(1), F(3))]


def test_selection_measures_each_dev_set_with_the_setting_s_temperatures_and_restores_them(policy, tmp_path, capsys):
    from ponder.verifiers import game24_select as sel
    from ponder.verifiers.game24_train import astar_calls

    roots = [g.start(p) for p in g.load(slice(0, 6))]
    hard = [(F(3, 4), F(1), F(6))]
    policy._ensure()
    before = policy._temperature.copy()
    got = sel.measure({"novel1": (policy, roots), "hard1": (policy, hard)}, temperatures={4: 10.0, 3: 5.0, 2: 8.0},
                      path_weight=0.5, normalize="siblings")
    assert np.array_equal(policy._temperature, before)  # restored
    policy._temperature[[4, 3, 2]] = [10.0, 5.0, 8.0]
    try:
        direct = [astar_calls(r, policy.score_calls, path_weight=0.5, normalize="siblings") for r in roots]
    finally:
        policy._temperature[:] = before
    assert got["novel1"] == [max(o for _, o in direct), round(float(np.mean([o for _, o in direct])), 2)]
    assert got["sum_max"] == got["novel1"][0] + got["hard1"][0] and got["all_solved"] == all(s for s, _ in direct)
    # the rule: every dev puzzle solved first, then the lower sum of maxima, then of means
    lines = [{"key": "a", "all_solved": False, "sum_max": 10, "sum_mean": 1.0}, {"key": "b", "all_solved": True, "sum_max": 30, "sum_mean": 9.0},
             {"key": "c", "all_solved": True, "sum_max": 30, "sum_mean": 5.0}]
    out = tmp_path / "sel.jsonl"
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert min(lines, key=sel.rule_key)["key"] == "c"
    sel.main(["--out", str(out), "--best"])
    assert json.loads(capsys.readouterr().out)["key"] == "c"
    with pytest.raises(SystemExit):
        sel.main(["--out", str(tmp_path / "none.jsonl"), "--best"])  # nothing measured: a clear error
