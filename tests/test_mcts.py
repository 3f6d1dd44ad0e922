"""Tests of the MCTS kernels (ponder.kernels.mcts) through the loop and policies of
ponder.search.mcts_policies: the numba kernels against the pure-Python twin, tree invariants,
virtual visits, the loop's hooks, errors, agreement with golden mctx trees (tests/golden/, every
run) and with google-deepmind/mctx live where installed."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder.kernels import mcts_py
from ponder.search import mcts_policies as mcts  # the loop and policies on ponder.kernels.mcts's steps

TREE_FIELDS = (
    "node_visits", "raw_values", "node_values", "parents", "action_from_parent", "children_index",
    "children_prior_logits", "children_priors", "children_visits", "children_rewards",
    "children_discounts", "children_values", "embeddings",
)


class TableModel:
    """A deterministic model whose state is an int: ``next = (state * A + action + 1) mod T``; reward,
    discount, logits and value are rows of fixed random tables. ``ties=True`` draws them from small
    discrete sets so that equal scores (and tie-breaking) occur often."""

    def __init__(self, num_actions: int, seed: int, *, size: int = 101, ties: bool = False):
        r = np.random.default_rng(seed)
        self.A, self.T = num_actions, size
        if ties:
            self.logits = r.integers(-1, 2, size=(size, num_actions)).astype(np.float64)
            self.value = r.integers(-2, 3, size=size) / 2.0
            self.reward = r.integers(-1, 2, size=size) / 4.0
        else:
            self.logits = r.normal(size=(size, num_actions))
            self.value = r.uniform(-1.0, 1.0, size)
            self.reward = r.uniform(-0.5, 0.5, size)
        self.discount = np.where(r.random(size) < 0.15, 0.0, 0.9)  # some terminal states
        self.batch_sizes: list[int] = []

    def __call__(self, params, rng, actions, states):
        self.batch_sizes.append(len(actions))
        nxt = (states * self.A + actions + 1) % self.T
        out = mcts.RecurrentFnOutput(reward=self.reward[nxt], discount=self.discount[nxt],
                                     prior_logits=self.logits[nxt], value=self.value[nxt])
        return out, nxt

    def root(self, batch: int, seed: int) -> mcts.RootFnOutput:
        r = np.random.default_rng(seed + 1)
        states = r.integers(0, self.T, size=batch)
        return mcts.RootFnOutput(prior_logits=self.logits[states], value=self.value[states], embedding=states)


def _search(policy, backend, model, root, S, **kw):
    fn = mcts.muzero_policy if policy == "muzero" else mcts.gumbel_muzero_policy
    return fn(root, model, S, backend=backend, **kw)


def _assert_same(a: mcts.PolicyOutput, b: mcts.PolicyOutput):
    for name in TREE_FIELDS:
        np.testing.assert_array_equal(getattr(a.search_tree, name), getattr(b.search_tree, name), err_msg=name)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.action_weights, b.action_weights)


def _check_invariants(tree: mcts.Tree, S: int):
    """Counts that hold for every search: the root saw S simulations, all through its edges unless it
    is a dead end (every root action invalid: then all S were revisits of the root); every edge's
    count equals its child's count (the child's own evaluations plus the simulations through it);
    no invalid edge was visited; a terminal node has no children and its mean is its raw value."""
    np.testing.assert_array_equal(tree.node_visits[:, 0], S + 1)
    np.testing.assert_array_equal(tree.terminal[:, 0], tree.root_invalid_actions.all(-1))
    np.testing.assert_array_equal(tree.children_visits[:, 0].sum(-1), np.where(tree.terminal[:, 0], 0, S))
    assert tree.children_visits[tree.children_invalid].sum() == 0
    assert (tree.children_index[tree.children_invalid] == -1).all()
    assert (tree.children_index[tree.terminal] == -1).all()
    np.testing.assert_array_equal(tree.node_values[tree.terminal], tree.raw_values[tree.terminal])
    B, N = tree.node_visits.shape
    assert (tree.num_nodes <= N).all() and (tree.parents[:, 1:][np.arange(1, N) >= tree.num_nodes[:, None]] == -1).all()
    for b in range(B):
        for n in range(1, N):
            p = tree.parents[b, n]
            if p < 0:
                assert tree.node_visits[b, n] == 0
                continue
            a = tree.action_from_parent[b, n]
            assert tree.children_index[b, p, a] == n
            assert tree.children_visits[b, p, a] == tree.node_visits[b, n]
            assert tree.children_values[b, p, a] == tree.node_values[b, n]


# --------------------------------------------------------------------------------------------------
# numba kernels == pure-Python twin, exactly.


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=st.sampled_from(["muzero", "gumbel"]),
    B=st.integers(1, 3),
    A=st.integers(1, 6),
    S=st.integers(1, 14),
    num_leaves=st.integers(1, 4),
    max_depth=st.one_of(st.none(), st.integers(1, 4)),
    ties=st.booleans(),
    masked=st.booleans(),
    option=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_numba_matches_twin(policy, B, A, S, num_leaves, max_depth, ties, masked, option, seed):
    model = TableModel(A, seed, ties=ties)
    root = model.root(B, seed)
    kw = dict(rng=seed, num_leaves=num_leaves, max_depth=max_depth)
    if masked:
        kw["invalid_actions"] = np.random.default_rng(seed).random((B, A)) < 0.3
    if policy == "muzero":
        kw["qtransform"] = "min_max" if option % 2 else "parent_and_siblings"
        kw["value_bounds"] = (-2.0, 2.0) if option % 2 else None
        kw["dirichlet_fraction"] = 0.0 if option >= 2 else 0.25
        kw["temperature"] = 0.0 if option == 3 else 1.0
        kw["virtual"] = "visit" if seed % 2 else "loss"
    else:
        kw["max_num_considered_actions"] = 1 + option
        kw["gumbel_scale"] = 0.0 if option == 3 else 1.0
    ours = _search(policy, "numba", model, root, S, **kw)
    twin = _search(policy, "python", model, root, S, **kw)
    _assert_same(ours, twin)
    _check_invariants(ours.search_tree, S)


@settings(max_examples=40, deadline=None)
@given(A=st.integers(1, 8), seed=st.integers(0, 2**16), visited=st.floats(0.0, 1.0))
def test_interior_probs_equal_softmax_of_logits_plus_sigma(A, seed, visited):
    """The interior rule's P(a) w(a) / Z (one exp per visited action) is softmax(logits + sigma)."""
    r = np.random.default_rng(seed)
    logits = r.normal(size=A) * 3
    priors = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    visits = np.where(r.random(A) < visited, r.integers(1, 5, size=A), 0)
    qs = r.uniform(-1.0, 1.0, A).tolist()
    raw = float(r.uniform(-1.0, 1.0))
    probs = mcts_py._gumbel_interior_probs(priors.tolist(), visits.tolist(), qs, raw, 0.1, 50.0)
    sigma = np.array(mcts_py._completed_q(visits.tolist(), priors.tolist(), qs, raw, 0.1, 50.0))
    x = logits + sigma
    expected = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-13, atol=1e-300)


def test_python_backend_runs_the_twin_kernels():
    model = TableModel(4, 0)
    root = model.root(2, 0)
    _assert_same(mcts.muzero_policy(root, model, 6, rng=1, backend="python"),
                 mcts.muzero_policy(root, model, 6, rng=1))
    _assert_same(mcts.gumbel_muzero_policy(root, model, 6, rng=1, num_leaves=2, backend="python"),
                 mcts.gumbel_muzero_policy(root, model, 6, rng=1, num_leaves=2))
    with pytest.raises(ValueError, match="backend"):
        mcts.muzero_policy(root, model, 6, backend="cuda")


# --------------------------------------------------------------------------------------------------
# Semantics.


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_should_stop_returns_the_tree_so_far(policy):
    """A budget check before each pass: the stopped tree equals the first passes of the full search
    in what they built, and records how many simulations ran and why it stopped."""
    model = TableModel(5, 3)
    root = model.root(3, 3)
    passes, done = [], []

    def should_stop():
        passes.append(None)
        return "budget" if len(passes) > 3 else None  # allow 3 passes of 2 leaves

    out = _search(policy, "numba", model, root, 10, rng=0, num_leaves=2, should_stop=should_stop,
                  progress=done.append)
    tree = out.search_tree
    assert tree.extra_data["num_simulations_done"] == 6
    assert tree.extra_data["stop_reason"] == "budget"
    assert done == [2, 4, 6]
    np.testing.assert_array_equal(tree.node_visits[:, 0], 7)
    np.testing.assert_array_equal(tree.node_visits[:, 7:], 0)
    np.testing.assert_allclose(out.action_weights.sum(-1), 1.0)
    full = _search(policy, "numba", model, root, 10, rng=0, num_leaves=2)
    assert full.search_tree.extra_data["num_simulations_done"] == 10
    assert full.search_tree.extra_data["stop_reason"] is None
    if policy == "muzero":  # PUCT does not depend on S: the first 6 simulations are the same
        np.testing.assert_array_equal(tree.parents[:, :7], full.search_tree.parents[:, :7])
        np.testing.assert_array_equal(tree.action_from_parent[:, :7], full.search_tree.action_from_parent[:, :7])
    twin_done = []
    twin = _search(policy, "python", model, root, 10, rng=0, num_leaves=2,
                   should_stop=lambda: "budget" if len(twin_done) >= 3 else None, progress=twin_done.append)
    _assert_same(out, twin)


def test_should_stop_before_the_first_pass():
    model = TableModel(4, 1)
    out = mcts.muzero_policy(model.root(2, 1), model, 5, rng=0, should_stop=lambda: "wall time")
    assert out.search_tree.extra_data == {"num_simulations_done": 0, "stop_reason": "wall time"}
    np.testing.assert_array_equal(out.search_tree.node_visits[:, 0], 1)
    np.testing.assert_allclose(out.action_weights, 0.25)


def test_backup_means_are_consistent():
    """Sequential search without a depth cap: V(n) N(n) = v_raw(n) + sum_a N(n, a) Q(n, a)."""
    model = TableModel(5, 3)
    out = mcts.muzero_policy(model.root(4, 3), model, 30, rng=0, dirichlet_fraction=0.0)
    t = out.search_tree
    B, N = t.node_visits.shape
    for b in range(B):
        for n in range(N):
            if t.node_visits[b, n] == 0:
                continue
            q = t.children_rewards[b, n] + t.children_discounts[b, n] * t.children_values[b, n]
            total = t.raw_values[b, n] + (t.children_visits[b, n] * q).sum()
            assert t.node_values[b, n] * t.node_visits[b, n] == pytest.approx(total, rel=1e-12, abs=1e-12)
    summary = t.summary()
    np.testing.assert_allclose(summary.visit_probs.sum(-1), 1.0)
    np.testing.assert_array_equal(out.action_weights, summary.visit_probs)


def test_recurrent_fn_batches_and_passthrough():
    seen = []
    model = TableModel(3, 1)

    def recurrent_fn(params, rng, actions, states):
        seen.append((params, rng, actions.dtype, len(actions)))
        return model(params, rng, actions, states)

    gen = np.random.default_rng(5)
    mcts.muzero_policy(model.root(3, 1), recurrent_fn, 5, params="P", rng=gen, num_leaves=2)
    assert [s[3] for s in seen] == [6, 6, 3]  # B * num_leaves, last pass has the remainder
    assert all(s[0] == "P" and s[1] is gen and s[2] == np.int64 for s in seen)


def test_virtual_visits_spread_leaves_in_one_pass():
    """Gumbel with 4 considered actions and 4 leaves per pass: the first pass already visits the 4
    considered actions once each, as sequential halving prescribes (1, 1, 1, 1, then 3, 3)."""
    model = TableModel(8, 2)
    out = mcts.gumbel_muzero_policy(model.root(5, 2), model, 8, rng=0, num_leaves=4, max_num_considered_actions=4)
    visits = np.sort(out.search_tree.children_visits[:, 0], axis=-1)[:, ::-1]
    np.testing.assert_array_equal(visits, np.tile([3, 3, 1, 1, 0, 0, 0, 0], (5, 1)))
    # PUCT: a whole search in one pass still has S distinct root children while unvisited ones remain
    out = mcts.muzero_policy(model.root(5, 2), model, 6, rng=0, num_leaves=6, dirichlet_fraction=0.0)
    assert (out.search_tree.children_visits[:, 0] > 0).sum(-1).min() >= 2


def test_virtual_visit_keeps_the_value_term():
    """A child of normalised value 1 with 4 visits and 20 pending (virtual) ones, against a sibling
    of value 0: virtual="loss" counts the pending visits as value 0 and turns to the sibling;
    virtual="visit" keeps the child's value and only shrinks its exploration term."""
    from ponder.kernels import mcts as kernels, mcts_py as twin

    def pick(virtual):
        return twin._puct_action(kernels.QTRANSFORMS["parent_and_siblings"] + kernels.VIRTUALS[virtual], 1.25, 19652.0, 0.0, 1.0,
                                 [0.5, 0.5], [4, 4], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0], 9, 0.5, [20, 0], 20, [False, False])

    assert (pick("loss"), pick("visit")) == (1, 0)
    # through the compiled search: the two rules build different trees with several leaves a pass
    model = TableModel(4, 7)
    loss, visit = (mcts.muzero_policy(model.root(4, 7), model, 24, rng=0, num_leaves=6, virtual=v) for v in ("loss", "visit"))
    assert not np.array_equal(loss.search_tree.children_visits, visit.search_tree.children_visits)
    one = [mcts.muzero_policy(model.root(4, 7), model, 12, rng=0, virtual=v).search_tree.children_visits for v in ("loss", "visit")]
    np.testing.assert_array_equal(*one)  # no pending visits with one leaf: the same search


def test_colliding_leaves_reevaluate_the_same_node():
    """With one action every leaf of a pass takes the same path; later leaves re-evaluate the node."""
    model = TableModel(1, 4)
    out = mcts.muzero_policy(model.root(2, 4), model, 6, rng=0, num_leaves=3)
    t = out.search_tree
    _check_invariants(t, 6)
    assert (t.parents >= 0).sum(-1).tolist() == [2, 2]  # one new node per pass (nodes 1 and 4)
    np.testing.assert_array_equal(t.node_visits[:, 4], 3)  # evaluated by the 3 leaves of pass 2
    np.testing.assert_array_equal(t.node_visits[:, 1], 6)  # 3 evaluations, then 3 leaves through it


def test_max_depth_one_keeps_children_of_root():
    model = TableModel(4, 5)
    for policy in ("muzero", "gumbel"):
        out = _search(policy, "numba", model, model.root(3, 5), 10, rng=0, max_depth=1)
        assert set(np.unique(out.search_tree.parents)) <= {-1, 0}
        _check_invariants(out.search_tree, 10)


def test_invalid_root_actions_are_never_chosen():
    model = TableModel(5, 6)
    invalid = np.zeros((4, 5), bool)
    invalid[:, [0, 3]] = True
    for policy in ("muzero", "gumbel"):
        out = _search(policy, "numba", model, model.root(4, 6), 12, rng=0, invalid_actions=invalid)
        assert out.search_tree.children_visits[:, 0][invalid].sum() == 0
        assert not invalid[np.arange(4), out.action].any()
        assert out.action_weights[invalid].max() < 1e-30


def test_temperature_zero_picks_most_visited():
    model = TableModel(6, 7)
    out = mcts.muzero_policy(model.root(8, 7), model, 20, rng=0, temperature=0.0, dirichlet_fraction=0.0)
    visits = out.search_tree.children_visits[:, 0]
    np.testing.assert_array_equal(visits[np.arange(8), out.action], visits.max(-1))


def test_gumbel_acts_among_most_visited():
    model = TableModel(6, 8)
    out = mcts.gumbel_muzero_policy(model.root(8, 8), model, 20, rng=0, max_num_considered_actions=4)
    visits = out.search_tree.children_visits[:, 0]
    np.testing.assert_array_equal(visits[np.arange(8), out.action], visits.max(-1))
    np.testing.assert_allclose(out.action_weights.sum(-1), 1.0)


def test_vector_embeddings_are_stored_per_node():
    A = 3

    def recurrent_fn(params, rng, actions, states):  # states [M, 2]
        nxt = states * 2 + actions[:, None] + 1.0
        M = len(actions)
        return mcts.RecurrentFnOutput(np.zeros(M), np.ones(M), np.zeros((M, A)), np.tanh(nxt[:, 0] / 100)), nxt

    root = mcts.RootFnOutput(np.zeros((2, A)), np.zeros(2), np.array([[0.0, 1.0], [2.0, 3.0]]))
    t = mcts.muzero_policy(root, recurrent_fn, 7, rng=0).search_tree
    assert t.embeddings.shape == (2, 8, 2)
    for b in range(2):
        for n in range(1, 8):
            p, a = t.parents[b, n], t.action_from_parent[b, n]
            np.testing.assert_array_equal(t.embeddings[b, n], t.embeddings[b, p] * 2 + a + 1.0)


def test_considered_visits_table_shape_and_phases():
    table = mcts.considered_visits_table(4, 8)
    assert table.shape == (5, 8)
    assert table[4].tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert table[1].tolist() == list(range(8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(qtransform="tree"), "qtransform"),
        (dict(qtransform="min_max"), "value_bounds"),
        (dict(value_bounds=(0.0, 1.0)), "value_bounds"),
        (dict(backend="jax"), "backend"),
        (dict(num_leaves=0), "num_leaves"),
        (dict(virtual="none"), "virtual"),
        (dict(max_depth=0), "max_depth"),
        (dict(dirichlet_fraction=1.5), "dirichlet_fraction"),
        (dict(temperature=-1.0), "temperature"),
        (dict(invalid_actions=np.zeros((2, 2), bool)), "invalid_actions"),
        (dict(dirichlet_noise=np.ones((2, 2))), "dirichlet_noise"),
    ],
)
def test_bad_options_raise(kwargs, match):
    model = TableModel(3, 0)
    with pytest.raises(ValueError, match=match):
        mcts.muzero_policy(model.root(2, 0), model, 4, **kwargs)


def test_bad_model_outputs_raise():
    model = TableModel(3, 0)

    def wrong_logits(params, rng, actions, states):
        out, nxt = model(params, rng, actions, states)
        return mcts.RecurrentFnOutput(out.reward, out.discount, out.prior_logits[:, :2], out.value), nxt

    with pytest.raises(ValueError, match="prior_logits"):
        mcts.muzero_policy(model.root(2, 0), wrong_logits, 4)
    with pytest.raises(ValueError, match="num_simulations"):
        mcts.gumbel_muzero_policy(model.root(2, 0), model, 0)
    with pytest.raises(ValueError, match="gumbel"):
        mcts.gumbel_muzero_policy(model.root(2, 0), model, 3, gumbel=np.zeros(3))


# --------------------------------------------------------------------------------------------------
# Agreement with golden mctx trees (tests/golden/mctx_trees.json, made by tests/golden/make_golden.py
# with mctx in float64): run in every test run, mctx not needed.

GOLDEN = pathlib.Path(__file__).parent / "golden"
GOLDEN_MCTX = json.loads((GOLDEN / "mctx_trees.json").read_text())["cases"]
GOLDEN_INT_FIELDS = ("node_visits", "parents", "action_from_parent", "children_index", "children_visits")
GOLDEN_FLOAT_FIELDS = ("node_values", "children_values")


class GoldenModel:
    """The table model of a golden case: ``next = (state * A + action + 1) mod T``."""

    def __init__(self, case: dict):
        self.A, self.T = case["A"], case["T"]
        self.tables = {k: np.asarray(v, dtype=np.float64) for k, v in case["tables"].items()}

    def __call__(self, params, rng, actions, states):
        nxt = (states * self.A + actions + 1) % self.T
        t = self.tables
        return mcts.RecurrentFnOutput(reward=t["reward"][nxt], discount=t["discount"][nxt],
                                      prior_logits=t["logits"][nxt], value=t["value"][nxt]), nxt

    def root(self, states) -> mcts.RootFnOutput:
        states = np.asarray(states, dtype=np.int64)
        return mcts.RootFnOutput(prior_logits=self.tables["logits"][states], value=self.tables["value"][states],
                                 embedding=states)


def _golden_search(case: dict, backend: str = "numba") -> mcts.PolicyOutput:
    model = GoldenModel(case)
    root = model.root(case["root_states"])
    kw = dict(case["options"], invalid_actions=np.asarray(case["invalid_actions"], dtype=bool), backend=backend)
    if "value_bounds" in kw:
        kw["value_bounds"] = tuple(kw["value_bounds"])
    if case["policy"] == "muzero":
        return mcts.muzero_policy(root, model, case["S"], rng=0, dirichlet_noise=np.asarray(case["dirichlet_noise"]), **kw)
    return mcts.gumbel_muzero_policy(root, model, case["S"], gumbel=np.asarray(case["gumbel"]), **kw)


@pytest.mark.parametrize("name", sorted(GOLDEN_MCTX))
def test_policies_match_golden_mctx_trees(name):
    """The whole tree equals mctx's: counts, parents, actions and children exactly, values and the
    root action weights within 1e-9 (and the Gumbel action exactly)."""
    case = GOLDEN_MCTX[name]
    out = _golden_search(case)
    tree = out.search_tree
    for field in GOLDEN_INT_FIELDS:
        np.testing.assert_array_equal(getattr(tree, field), np.asarray(case["tree"][field]), err_msg=field)
    for field in GOLDEN_FLOAT_FIELDS:
        np.testing.assert_allclose(getattr(tree, field), np.asarray(case["tree"][field]), rtol=0, atol=1e-9,
                                   err_msg=field)
    np.testing.assert_allclose(out.action_weights, np.asarray(case["action_weights"]), rtol=0, atol=1e-9)
    if case["policy"] == "gumbel":
        np.testing.assert_array_equal(out.action, np.asarray(case["action"]))


def test_golden_mctx_trees_on_the_twin():
    """The pure-Python twin reproduces one golden tree of each policy too."""
    for name in ("muzero_small", "gumbel_small"):
        case = GOLDEN_MCTX[name]
        _assert_same(_golden_search(case, "python"), _golden_search(case))


# --------------------------------------------------------------------------------------------------
# Agreement with mctx (JAX, float64), on the same deterministic model written in jnp.


@pytest.fixture(scope="module")
def jx():
    mctx = pytest.importorskip("mctx")
    jax = pytest.importorskip("jax")
    return jax, mctx


def _jax_model(jax, mctx, model: TableModel):
    jnp = jax.numpy
    tables = (model.logits, model.value, model.reward, model.discount)
    logits, value, reward, discount = (jnp.asarray(x) for x in tables)

    def recurrent_fn(params, key, actions, states):
        nxt = (states * model.A + actions + 1) % model.T
        return mctx.RecurrentFnOutput(reward=reward[nxt], discount=discount[nxt],
                                      prior_logits=logits[nxt], value=value[nxt]), nxt

    return recurrent_fn


def _jax_root(jax, mctx, root):
    jnp = jax.numpy
    return mctx.RootFnOutput(prior_logits=jnp.asarray(root.prior_logits), value=jnp.asarray(root.value),
                             embedding=jnp.asarray(root.embedding))


def _assert_trees_agree(ours: mcts.Tree, theirs):
    np.testing.assert_array_equal(ours.summary().visit_counts, np.asarray(theirs.summary().visit_counts))
    np.testing.assert_array_equal(ours.node_visits, np.asarray(theirs.node_visits))
    np.testing.assert_array_equal(ours.children_index, np.asarray(theirs.children_index))
    np.testing.assert_allclose(ours.node_values, np.asarray(theirs.node_values), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.children_values, np.asarray(theirs.children_values), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["noise_and_mask", "min_max_depth3"])
def test_muzero_policy_matches_mctx(jx, variant):
    """Same root noise, same model: the whole tree agrees. mctx breaks ties with 1e-7 * uniform
    noise and we take the first index; the random tables make exact ties vanishingly rare."""
    jax, mctx = jx
    B, A, S = 48, 6, 24
    model = TableModel(A, 11)
    root = model.root(B, 11)
    invalid = np.random.default_rng(11).random((B, A)) < 0.25
    invalid[:, 0] = False
    key = jax.random.PRNGKey(3)
    with jax.enable_x64(True):
        if variant == "noise_and_mask":
            kw = dict(invalid_actions=jax.numpy.asarray(invalid))
            ours_kw = dict(invalid_actions=invalid)
        else:
            def min_max(tree, node):
                return mctx.qtransform_by_min_max(tree, node, min_value=-2.0, max_value=2.0)

            kw = dict(max_depth=3, dirichlet_fraction=0.0, qtransform=min_max)
            ours_kw = dict(max_depth=3, dirichlet_fraction=0.0, qtransform="min_max", value_bounds=(-2.0, 2.0))
        j_root, j_model = _jax_root(jax, mctx, root), _jax_model(jax, mctx, model)

        def search(k):
            # mctx splits its key into (act, dirichlet, search); return its Dirichlet noise too
            noise = jax.random.dirichlet(jax.random.split(k, 3)[1], alpha=jax.numpy.full([A], 0.3), shape=(B,))
            return mctx.muzero_policy(None, k, j_root, j_model, S, **kw), noise

        theirs, noise = jax.jit(search)(key)
        ours = mcts.muzero_policy(root, model, S, rng=0, dirichlet_noise=np.asarray(noise), **ours_kw)
        _assert_trees_agree(ours.search_tree, theirs.search_tree)
        np.testing.assert_allclose(ours.action_weights, np.asarray(theirs.action_weights), rtol=1e-12)


def test_gumbel_muzero_policy_matches_mctx(jx):
    """With the same Gumbel noise (mctx's, and none at all) the whole tree and the action agree."""
    jax, mctx = jx
    B, A, S = 48, 6, 24
    model = TableModel(A, 12)
    root = model.root(B, 12)
    invalid = np.random.default_rng(12).random((B, A)) < 0.25
    invalid[:, 1] = False
    key = jax.random.PRNGKey(4)
    with jax.enable_x64(True):
        j_root, j_model, j_invalid = _jax_root(jax, mctx, root), _jax_model(jax, mctx, model), jax.numpy.asarray(invalid)
        search = jax.jit(lambda k, scale: mctx.gumbel_muzero_policy(
            None, k, j_root, j_model, S, invalid_actions=j_invalid, max_num_considered_actions=4,
            gumbel_scale=scale, max_depth=5))
        _, gumbel_key = jax.random.split(key)  # mctx draws its Gumbel noise with the second half
        unit_gumbel = np.asarray(jax.random.gumbel(gumbel_key, shape=(B, A), dtype=jax.numpy.float64))
        for scale in (1.0, 0.0):
            theirs = search(key, scale)
            ours = mcts.gumbel_muzero_policy(root, model, S, gumbel=scale * unit_gumbel, invalid_actions=invalid,
                                             max_num_considered_actions=4, max_depth=5)
            _assert_trees_agree(ours.search_tree, theirs.search_tree)
            np.testing.assert_array_equal(ours.action, np.asarray(theirs.action))
            np.testing.assert_allclose(ours.action_weights, np.asarray(theirs.action_weights), rtol=1e-12, atol=1e-300)


def test_considered_visits_table_matches_mctx(jx):
    from mctx._src import seq_halving

    for m, S in [(1, 5), (2, 7), (4, 8), (5, 33), (16, 64), (16, 200), (7, 3)]:
        expected = np.array(seq_halving.get_table_of_considered_visits(m, S))
        np.testing.assert_array_equal(mcts.considered_visits_table(m, S), expected)
