"""Tests of the MCTS tree's per-node invalid-action masks, terminal nodes (revisits) and growth past the
preallocated capacity (ponder.kernels.mcts, ponder.kernels.mcts_py, ponder.search.mcts_policies):
numba kernels against the pure-Python twin on random masks, terminals and capacities; no invalid
action is ever taken; terminal nodes get no children and never reach recurrent_fn; revisits back up
the stored value; a grown tree equals a preallocated one; open-ended PUCT runs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder.kernels import mcts as kernels_mcts
from ponder.search import mcts_policies as mcts

NODE_FIELDS = (  # every per-node array of the Tree, [B, N, ...]
    "node_visits", "raw_values", "node_values", "parents", "action_from_parent", "children_index",
    "children_prior_logits", "children_priors", "children_visits", "children_rewards",
    "children_discounts", "children_values", "children_invalid", "terminal", "embeddings",
)
MIN_LOGIT = np.finfo(np.float64).min


class LegalModel:
    """A deterministic model on int states, ``next = (state * A + action + 1) mod T``, with fixed random
    tables of rewards, discounts, logits, values, legal actions ``invalid [T, A]`` and terminal states
    ``terminal [T]``. Some states have every action invalid (dead ends, not flagged terminal).

    Every call checks what the search promises: the state it expands is neither terminal nor a dead
    end, and the action is legal there (the root's mask is the table's row of the root state).
    ``emit`` chooses what it returns: "masks" (invalid_actions and is_terminal), "none" (neither:
    the tables' masks then play no part and the checks are off), or "all_valid" (an all-False mask
    and flags, which must give the same tree as "none")."""

    def __init__(self, A: int, seed: int, *, p_invalid: float = 0.3, p_terminal: float = 0.2,
                 p_dead: float = 0.05, size: int = 97, emit: str = "masks"):
        r = np.random.default_rng(seed)
        self.A, self.T, self.emit = A, size, emit
        self.logits = r.normal(size=(size, A))
        self.value = r.uniform(-1.0, 1.0, size)
        self.reward = r.uniform(-0.5, 0.5, size)
        self.discount = np.where(r.random(size) < 0.1, 0.0, 0.9)
        self.invalid = r.random((size, A)) < p_invalid
        self.invalid[r.random(size) < p_dead] = True  # dead ends
        self.terminal = r.random(size) < p_terminal
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []  # (states, actions) of each call

    def __call__(self, params, rng, actions, states):
        if self.emit == "masks":
            assert not self.terminal[states].any(), "recurrent_fn was asked to expand a terminal state"
            assert not self.invalid[states].all(-1).any(), "recurrent_fn was asked to expand a dead end"
            assert not self.invalid[states, actions].any(), "an invalid action reached recurrent_fn"
        self.calls.append((states.copy(), actions.copy()))
        nxt = (states * self.A + actions + 1) % self.T
        M = len(actions)
        extra = {}
        if self.emit == "masks":
            extra = dict(invalid_actions=self.invalid[nxt], is_terminal=self.terminal[nxt])
        elif self.emit == "all_valid":
            extra = dict(invalid_actions=np.zeros((M, self.A), bool), is_terminal=np.zeros(M, bool))
        out = mcts.RecurrentFnOutput(reward=self.reward[nxt], discount=self.discount[nxt],
                                     prior_logits=self.logits[nxt], value=self.value[nxt], **extra)
        return out, nxt

    def root(self, batch: int, seed: int):
        """``(RootFnOutput, root mask [B, A])``; roots are never terminal states (the root has no flag)."""
        r = np.random.default_rng(seed + 1)
        candidates = np.flatnonzero(~self.terminal)
        states = r.choice(candidates, size=batch)
        root = mcts.RootFnOutput(prior_logits=self.logits[states], value=self.value[states], embedding=states)
        return root, self.invalid[states].copy()


def _search(policy, model, root, S, **kw):
    fn = mcts.muzero_policy if policy == "muzero" else mcts.gumbel_muzero_policy
    return fn(root, model, S, **kw)


def _assert_same_tree(a: mcts.PolicyOutput, b: mcts.PolicyOutput, *, prefix: bool = False):
    """Equal trees and outputs. ``prefix``: capacities may differ; the nodes in use must be equal and
    every slot past them empty in both."""
    ta, tb = a.search_tree, b.search_tree
    np.testing.assert_array_equal(ta.num_nodes, tb.num_nodes)
    n = int(ta.num_nodes.max()) if prefix else None
    if not prefix:
        assert ta.capacity == tb.capacity
    for name in NODE_FIELDS:
        np.testing.assert_array_equal(getattr(ta, name)[:, :n], getattr(tb, name)[:, :n], err_msg=name)
    if prefix:
        for t in (ta, tb):
            assert (t.parents[:, n:] == -1).all() and (t.node_visits[:, n:] == 0).all()
            assert (t.children_index[:, n:] == -1).all() and not t.terminal[:, n:].any()
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.action_weights, b.action_weights)


def _check_tree(tree: mcts.Tree, S: int):
    """What holds after every search with masks and terminal nodes."""
    B, N = tree.node_visits.shape
    np.testing.assert_array_equal(tree.node_visits[:, 0], S + 1)  # one root visit per simulation
    np.testing.assert_array_equal(tree.terminal[:, 0], tree.root_invalid_actions.all(-1))
    np.testing.assert_array_equal(tree.children_visits[:, 0].sum(-1), np.where(tree.terminal[:, 0], 0, S))
    # no invalid action is ever taken, at any node
    assert tree.children_visits[tree.children_invalid].sum() == 0
    assert (tree.children_index[tree.children_invalid] == -1).all()
    # terminal nodes (flagged or dead ends) have no children; their mean is their stored value
    np.testing.assert_array_equal(tree.terminal, tree.terminal | tree.children_invalid.all(-1))
    assert (tree.children_index[tree.terminal] == -1).all()
    assert tree.children_visits[tree.terminal].sum() == 0
    np.testing.assert_array_equal(tree.node_values[tree.terminal], tree.raw_values[tree.terminal])
    # node slots: in use below num_nodes, empty above
    assert (tree.num_nodes <= N).all()
    assert (tree.parents[np.arange(N)[None, :] >= tree.num_nodes[:, None]] == -1).all()
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
    # expanded nodes: invalid logits are the lowest float, the priors a distribution over the valid ones
    expanded = tree.node_visits > 0
    assert (tree.children_prior_logits[expanded][tree.children_invalid[expanded]] == MIN_LOGIT).all()
    live = expanded & ~tree.children_invalid.all(-1)
    np.testing.assert_allclose(tree.children_priors[live].sum(-1), 1.0)
    assert (tree.children_priors[live][tree.children_invalid[live]] == 0.0).all()


# --------------------------------------------------------------------------------------------------
# numba kernels == pure-Python twin, on random masks, terminals and capacities.

config = dict(
    policy=st.sampled_from(["muzero", "gumbel"]),
    B=st.integers(1, 3),
    A=st.integers(1, 5),
    S=st.integers(1, 14),
    num_leaves=st.integers(1, 4),
    max_depth=st.one_of(st.none(), st.integers(1, 4)),
    capacity=st.one_of(st.none(), st.integers(1, 6)),
    p_invalid=st.sampled_from([0.0, 0.3, 0.6]),
    p_terminal=st.sampled_from([0.0, 0.25, 0.6]),
    seed=st.integers(0, 2**16),
)


def _config_kw(policy, B, A, S, num_leaves, max_depth, capacity, p_invalid, p_terminal, seed, **model_kw):
    model = LegalModel(A, seed, p_invalid=p_invalid, p_terminal=p_terminal, **model_kw)
    root, invalid = model.root(B, seed)
    kw = dict(rng=seed, num_leaves=num_leaves, max_depth=max_depth, capacity=capacity, invalid_actions=invalid)
    if policy == "gumbel":
        kw["max_num_considered_actions"] = 1 + seed % 4
    return model, root, kw


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**config)
def test_numba_matches_twin_with_masks_terminals_and_growth(policy, B, A, S, num_leaves, max_depth, capacity,
                                                            p_invalid, p_terminal, seed):
    model, root, kw = _config_kw(policy, B, A, S, num_leaves, max_depth, capacity, p_invalid, p_terminal, seed)
    ours = _search(policy, model, root, S, backend="numba", **kw)
    twin = _search(policy, model, root, S, backend="python", **kw)
    _assert_same_tree(ours, twin)
    _check_tree(ours.search_tree, S)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**config)
def test_grown_tree_equals_preallocated(policy, B, A, S, num_leaves, max_depth, capacity, p_invalid,
                                        p_terminal, seed):
    """Growing from a small capacity (copying into doubled arrays between passes) changes nothing:
    the nodes in use equal those of a tree allocated with room for every simulation."""
    model, root, kw = _config_kw(policy, B, A, S, num_leaves, max_depth, capacity, p_invalid, p_terminal, seed)
    small = _search(policy, model, root, S, **dict(kw, capacity=1 + seed % 3))
    big = _search(policy, model, root, S, **dict(kw, capacity=S + 1 + seed % 5))
    assert small.search_tree.capacity >= int(small.search_tree.num_nodes.max())
    _assert_same_tree(small, big, prefix=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=config["policy"], B=config["B"], A=config["A"], S=config["S"], num_leaves=config["num_leaves"],
       max_depth=config["max_depth"], seed=config["seed"])
def test_all_valid_outputs_equal_no_outputs(policy, B, A, S, num_leaves, max_depth, seed):
    """An all-False invalid_actions and is_terminal from the model give the tree of None (the path
    that the golden mctx trees pin down)."""
    trees = []
    for emit in ("none", "all_valid"):
        model, root, kw = _config_kw(policy, B, A, S, num_leaves, max_depth, None, 0.0, 0.0, seed, emit=emit)
        trees.append(_search(policy, model, root, S, **dict(kw, invalid_actions=None)))
    _assert_same_tree(*trees)
    assert not trees[0].search_tree.terminal.any() and not trees[0].search_tree.children_invalid.any()


def _select(kernels, policy, t, L, table):
    """One selection pass of L leaves on ``t`` with fresh virtual counters: ``(outputs, children_virtual)``."""
    B, N, A = t.children_index.shape
    cv, nv = np.zeros((B, N, A), np.int32), np.zeros((B, N), np.int32)
    outs = [np.zeros((B, L), np.int32) for _ in range(3)] + [np.zeros((B, L), np.bool_)]
    if policy == "muzero":
        m = kernels.select_puct(0, 99, 1.25, 19652.0, 0.0, 1.0, t.children_index, t.children_priors,
                                t.children_visits, t.children_values, t.children_rewards, t.children_discounts,
                                t.children_invalid, t.node_visits, t.node_values, t.terminal, t.num_nodes,
                                cv, nv, *outs)
    else:
        m = kernels.select_gumbel(99, 0.1, 50.0, t.children_index, t.children_prior_logits, t.children_priors,
                                  t.children_visits, t.children_values, t.children_rewards, t.children_discounts,
                                  t.children_invalid, t.raw_values, t.terminal, t.num_nodes, cv, nv,
                                  np.zeros((B, A)), table, np.full(B, A, np.int32), *outs)
    return [m] + [o.copy() for o in outs], cv


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
@pytest.mark.parametrize("seed", range(4))
def test_selection_kernels_never_take_a_masked_edge(policy, seed):
    """The selection rules themselves respect the mask, whatever the priors say: on a searched tree,
    mask exactly the edges that an unmasked pass takes below the root (their priors stay as they
    are, so only the rule's mask test can keep the walk off them); the next pass takes none of them.
    Both backends, which must agree."""
    from ponder.kernels import mcts_py

    model = LegalModel(4, seed, emit="none")
    root, _ = model.root(3, seed)
    t = _search(policy, model, root, 24, rng=seed).search_tree
    table = kernels_mcts.considered_visits_table(4, 64)
    (_, *_), cv = _select(kernels_mcts, policy, t, 3, table)
    taken = cv > 0
    taken[:, 0] = False  # the root's mask has been tested since the start; here the interior
    assert taken.any()
    mask = taken & ~(taken | t.children_invalid).all(-1, keepdims=True)  # keep a valid action per node
    assert mask.any()
    t.children_invalid[mask] = True
    results = [_select(k, policy, t, 3, table) for k in (kernels_mcts, mcts_py)]
    for (outs, cv), (twin_outs, twin_cv) in zip(results, results[::-1]):
        assert cv[t.children_invalid].sum() == 0
        assert outs[0] == twin_outs[0]
        for o, w in zip(outs[1:], twin_outs[1:]):
            np.testing.assert_array_equal(o, w)
        np.testing.assert_array_equal(cv, twin_cv)


# --------------------------------------------------------------------------------------------------
# Semantics, on fixed cases (each asserts that the situation it tests did occur).


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
@pytest.mark.parametrize("backend", ["numba", "python"])
def test_masks_and_terminals_are_respected(policy, backend):
    """Many invalid actions and terminal states: the search never takes an invalid action, never expands
    a terminal state or a dead end (LegalModel asserts it on every call), and revisits terminal nodes."""
    model = LegalModel(5, 3, p_invalid=0.4, p_terminal=0.3, p_dead=0.1)
    root, invalid = model.root(6, 3)
    S = 40 if backend == "numba" else 16
    out = _search(policy, model, root, S, rng=0, num_leaves=2, invalid_actions=invalid, backend=backend)
    t = out.search_tree
    _check_tree(t, S)
    assert t.children_invalid[t.node_visits > 0].any()  # interior masks were in play
    assert t.terminal[:, 1:].sum() >= 3  # terminal nodes were reached ...
    assert (t.node_visits[t.terminal] > 1).any()  # ... and revisited
    assert (t.children_invalid.all(-1) & (t.node_visits > 0)).any()  # a dead end was reached
    # revisits reached no model: fewer items than B * S simulations
    assert sum(len(a) for _, a in model.calls) < 6 * S
    dead_root = invalid.all(-1)  # no valid action at all: the policy's action is arbitrary there
    assert dead_root.any() and not dead_root.all()
    assert not invalid[np.arange(6), out.action][~dead_root].any()


def test_each_terminal_node_is_evaluated_once():
    """Sequential search (one leaf per pass) with a depth cap: the model is asked about each terminal
    node exactly once, when it is created; every later visit is a revisit (depth cap or not)."""
    model = LegalModel(3, 5, p_invalid=0.2, p_terminal=0.35, p_dead=0.0)
    root, invalid = model.root(4, 5)
    out = mcts.muzero_policy(root, model, 60, rng=0, max_depth=2, invalid_actions=invalid)
    t = out.search_tree
    _check_tree(t, 60)
    into_terminal = sum(int(model.terminal[(s * model.A + a + 1) % model.T].sum()) for s, a in model.calls)
    assert into_terminal == int(t.terminal[:, 1:].sum()) > 0
    assert int(t.node_visits[t.terminal].max()) > 2  # revisited several times


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_revisit_backs_up_the_stored_value(backend):
    """Root with one valid action into a terminal state: the first simulation evaluates it, every later
    one backs up r + gamma * v again, and recurrent_fn is called once (later passes have M = 0)."""
    r, gamma, v, v_root, S = 0.5, 0.9, 0.3, -0.2, 7
    calls, done = [], []

    def recurrent_fn(params, rng, actions, states):
        calls.append(len(actions))
        M = len(actions)
        out = mcts.RecurrentFnOutput(reward=np.full(M, r), discount=np.full(M, gamma),
                                     prior_logits=np.zeros((M, 2)), value=np.full(M, v),
                                     is_terminal=np.ones(M, bool))
        return out, states + 1

    root = mcts.RootFnOutput(prior_logits=np.zeros((2, 2)), value=np.full(2, v_root), embedding=np.zeros(2, int))
    invalid = np.array([[False, True], [True, False]])
    out = mcts.muzero_policy(root, recurrent_fn, S, rng=0, invalid_actions=invalid, progress=done.append,
                             backend=backend)
    t = out.search_tree
    assert calls == [2]
    assert done == list(range(1, S + 1))
    np.testing.assert_array_equal(t.num_nodes, 2)
    np.testing.assert_array_equal(t.terminal[:, :2], [[False, True], [False, True]])
    np.testing.assert_array_equal(t.node_visits[:, :2], [[S + 1, S], [S + 1, S]])
    np.testing.assert_array_equal(t.children_visits[:, 0], [[S, 0], [0, S]])
    expected = v_root  # the root's running mean, absorbing G = r + gamma v once per simulation
    for n in range(1, S + 1):
        expected = (expected * n + (r + gamma * v)) / (n + 1.0)
    np.testing.assert_array_equal(t.node_values[:, 0], expected)
    np.testing.assert_array_equal(t.node_values[:, 1], v)
    np.testing.assert_array_equal(out.action, [0, 1])


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_dead_end_root_is_revisited(policy):
    """A root with every action invalid is terminal: each simulation revisits it, no model call."""
    model = LegalModel(3, 0, p_terminal=0.0, p_dead=0.0)
    root, invalid = model.root(3, 0)
    invalid[1] = True
    out = _search(policy, model, root, 6, rng=0, invalid_actions=invalid, num_leaves=2)
    t = out.search_tree
    _check_tree(t, 6)
    np.testing.assert_array_equal(t.terminal[:, 0], [False, True, False])
    assert t.node_visits[1, 0] == 7 and t.num_nodes[1] == 1 and t.children_visits[1].sum() == 0
    assert all(len(a) == 4 for _, a in model.calls)  # only trees 0 and 2 reach the model, 2 leaves each


def test_dead_end_state_becomes_terminal_without_flag():
    A = 2

    def recurrent_fn(params, rng, actions, states):  # state 1: every action invalid, not flagged
        M = len(actions)
        assert (states == 0).all()
        nxt = np.where(actions == 0, 1, 2)
        invalid = np.zeros((M, A), bool)
        invalid[nxt == 1] = True
        return mcts.RecurrentFnOutput(np.zeros(M), np.ones(M), np.zeros((M, A)), np.full(M, 0.1 * nxt),
                                      invalid_actions=invalid), nxt

    root = mcts.RootFnOutput(prior_logits=np.zeros((1, A)), value=np.zeros(1), embedding=np.zeros(1, int))
    t = mcts.muzero_policy(root, recurrent_fn, 2, rng=0, dirichlet_fraction=0.0, max_depth=1).search_tree
    node = t.children_index[0, 0, 0]
    assert node > 0 and t.terminal[0, node] and t.children_invalid[0, node].all()
    assert not t.terminal[0, t.children_index[0, 0, 1]]
    np.testing.assert_array_equal(t.children_priors[0, node], [0.5, 0.5])  # all masked: uniform


# --------------------------------------------------------------------------------------------------
# Growth and open-ended runs.


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_open_ended_puct_runs_until_should_stop(backend):
    """num_simulations=None: passes of num_leaves until should_stop returns a reason; the tree grows
    from OPEN_CAPACITY + 1 slots, and equals the search with that S fixed in advance."""
    model = LegalModel(4, 9, p_invalid=0.2, p_terminal=0.15)
    root, invalid = model.root(3, 9)
    target = 150 if backend == "numba" else 90
    done = []

    def should_stop():
        return "tokens" if done and done[-1] >= target else None

    kw = dict(rng=0, num_leaves=3, invalid_actions=invalid, backend=backend)
    out = mcts.muzero_policy(root, model, None, should_stop=should_stop, progress=done.append, **kw)
    t = out.search_tree
    assert t.extra_data == {"num_simulations_done": target, "stop_reason": "tokens"}
    assert t.capacity > mcts.OPEN_CAPACITY + 1  # it grew
    _check_tree(t, target)
    fixed = mcts.muzero_policy(root, model, target, **kw)
    _assert_same_tree(out, fixed, prefix=True)


def test_grow_tree_copies_nodes_and_leaves_new_slots_empty():
    model = LegalModel(3, 2)
    root, invalid = model.root(2, 2)
    t = mcts.muzero_policy(root, model, 9, rng=0, invalid_actions=invalid).search_tree
    cv, nv = np.ones((2, 10, 3), np.int32), np.ones((2, 10), np.int32)
    g, gcv, gnv = kernels_mcts.grow_tree(t, cv, nv, 25)
    assert g.capacity == 25 and gcv.shape == (2, 25, 3) and gnv.shape == (2, 25)
    for name in NODE_FIELDS:
        np.testing.assert_array_equal(getattr(g, name)[:, :10], getattr(t, name), err_msg=name)
    np.testing.assert_array_equal(g.num_nodes, t.num_nodes)
    assert g.extra_data is t.extra_data
    assert (g.children_index[:, 10:] == -1).all() and (g.parents[:, 10:] == -1).all()
    assert (g.action_from_parent[:, 10:] == -1).all() and (g.node_visits[:, 10:] == 0).all()
    assert not g.children_invalid[:, 10:].any() and not g.terminal[:, 10:].any()
    assert (gcv[:, :10] == 1).all() and (gcv[:, 10:] == 0).all() and (gnv[:, 10:] == 0).all()
    g.node_visits[:] = 0  # new arrays: the old tree is not touched
    assert t.node_visits[:, 0].tolist() == [10, 10]
    with pytest.raises(ValueError, match="capacity"):
        kernels_mcts.grow_tree(t, cv, nv, 5)


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_release_leaves_removes_exactly_their_virtual_visits(backend):
    """Select 6 leaves a tree in a grown tree, release the last 4: the virtual visits left are those
    of selecting the first 2 alone; releasing those too leaves none. The tree is not touched."""
    from ponder.kernels import mcts_py

    kern = kernels_mcts if backend == "numba" else mcts_py
    model = LegalModel(4, 5)
    root, invalid = model.root(2, 5)
    t = mcts.muzero_policy(root, model, 12, rng=0, invalid_actions=invalid).search_tree
    t, cv, nv = kernels_mcts.grow_tree(t, np.zeros((2, 13, 4), np.int32), np.zeros((2, 13), np.int32), 20)
    blocks = kernels_mcts.tree_blocks(t)
    cv, nv = blocks[1][2], blocks[3][3]  # the blocks' own counters, as the loop uses them
    before = {name: getattr(t, name).copy() for name in NODE_FIELDS}

    def select(L):
        out = [np.empty((2, L), np.intp) for _ in range(3)] + [np.empty((2, L), np.bool_)]
        kern.select_puct_blocks(0, 50, 1.25, 19652.0, 0.0, 1.0, *blocks[:4], t.children_invalid, t.terminal, t.num_nodes, *out)
        return out

    parent, action, _, _ = select(6)
    assert cv.sum() > 0
    kern.release_leaves(parent, action, 2, t.parents, t.action_from_parent, cv, nv)
    after_two = cv.copy(), nv.copy()
    first_two = [np.ascontiguousarray(x[:, :2]) for x in (parent, action)]
    kern.release_leaves(*first_two, 0, t.parents, t.action_from_parent, cv, nv)
    assert not cv.any() and not nv.any()
    select(2)
    np.testing.assert_array_equal(cv, after_two[0])
    np.testing.assert_array_equal(nv, after_two[1])
    for name in NODE_FIELDS:
        np.testing.assert_array_equal(getattr(t, name), before[name], err_msg=name)


def test_tree_blocks_are_the_fields_and_the_block_kernels_match():
    """The *_blocks kernels (the ones the loop calls) on views of one tree's blocks, the field kernels
    on a copy: the same trees, in the compiled kernels and in the twin."""
    import copy

    from ponder.kernels import mcts_py

    model = LegalModel(4, 3)
    root, invalid = model.root(3, 5)
    for backend in ("numba", "python"):
        kernels = kernels_mcts if backend == "numba" else mcts_py
        t = mcts.gumbel_muzero_policy(root, model, 6, rng=1, invalid_actions=invalid,
                                      capacity=4).search_tree  # grown: grow_tree's blocks
        edge_f, edge_i, node_f, node_i, children_invalid, terminal = kernels_mcts.tree_blocks(t)
        assert edge_f.shape == (5,) + t.children_priors.shape and edge_i.shape == (3,) + t.children_index.shape
        for block, names in ((edge_f, ("children_prior_logits", "children_priors", "children_rewards",
                                       "children_discounts", "children_values")),
                             (edge_i, ("children_index", "children_visits")), (node_f, ("raw_values", "node_values")),
                             (node_i, ("node_visits", "parents", "action_from_parent"))):
            for i, name in enumerate(names):
                assert np.shares_memory(block[i], getattr(t, name)) and (block[i] == getattr(t, name)).all(), name
        assert children_invalid is t.children_invalid and terminal is t.terminal
        with pytest.raises(ValueError, match="init_tree or grow_tree"):
            kernels_mcts.tree_blocks(copy.deepcopy(t))
        # one more Gumbel selection and PUCT selection on both forms
        c = copy.deepcopy(t)
        cv, nv = np.zeros_like(edge_i[2]), np.zeros_like(node_i[3])
        outs = [tuple(np.zeros((3, 2), np.intp) for _ in range(3)) + (np.zeros((3, 2), bool),)
                for _ in range(4)]
        g = np.asarray(t.extra_data["root_gumbel"])
        table = kernels_mcts.considered_visits_table(4, 8)
        nc = np.full(3, 4, np.int32)
        m1 = kernels.select_gumbel_blocks(9, 0.1, 50.0, edge_f, edge_i, node_f, node_i, children_invalid,
                                          terminal, t.num_nodes, g, table, nc, *outs[0])
        m2 = kernels.select_gumbel(9, 0.1, 50.0, c.children_index, c.children_prior_logits, c.children_priors,
                                   c.children_visits, c.children_values, c.children_rewards, c.children_discounts,
                                   c.children_invalid, c.raw_values, c.terminal, c.num_nodes, cv, nv, g, table,
                                   nc, *outs[1])
        m3 = kernels.select_puct_blocks(0, 9, 1.25, 19652.0, 0.0, 1.0, edge_f, edge_i, node_f, node_i,
                                        children_invalid, terminal, t.num_nodes, *outs[2])
        m4 = kernels.select_puct(0, 9, 1.25, 19652.0, 0.0, 1.0, c.children_index, c.children_priors,
                                 c.children_visits, c.children_values, c.children_rewards, c.children_discounts,
                                 c.children_invalid, c.node_visits, c.node_values, c.terminal, c.num_nodes, cv,
                                 nv, *outs[3])
        assert m1 == m2 and m3 == m4
        for x, y in zip(outs[0] + outs[2], outs[1] + outs[3]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(edge_i[2], cv)
        np.testing.assert_array_equal(node_i[3], nv)


def test_recurrent_fn_sees_only_leaves_that_need_it():
    """Items are the evaluated leaves, tree-major; fewer than B * k once terminal nodes are revisited."""
    model = LegalModel(2, 4, p_invalid=0.0, p_terminal=0.5, p_dead=0.0)
    root, invalid = model.root(4, 4)
    mcts.muzero_policy(root, model, 30, rng=0, num_leaves=2, invalid_actions=invalid)
    sizes = [len(a) for _, a in model.calls]
    assert sizes[0] == 8 and min(sizes) < 8 and max(sizes) <= 8


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, r: mcts.muzero_policy(r, m, None), "should_stop"),
        (lambda m, r: mcts.gumbel_muzero_policy(r, m, None, should_stop=lambda: None), "num_simulations"),
        (lambda m, r: mcts.muzero_policy(r, m, 4, capacity=0), "capacity"),
        (lambda m, r: mcts.gumbel_muzero_policy(r, m, 4, capacity=2.5), "capacity"),
        (lambda m, r: mcts.muzero_policy(r, m, -1), "num_simulations"),
        (lambda m, r: kernels_mcts.init_tree(np.zeros((1, 2)), np.zeros(1), np.zeros(1), np.zeros((1, 2), bool), 0),
         "capacity"),
    ],
)
def test_bad_budgets_raise(call, match):
    model = LegalModel(2, 0, emit="none")
    root, _ = model.root(2, 0)
    with pytest.raises(ValueError, match=match):
        call(model, root)


@pytest.mark.parametrize("field, value, match", [
    ("invalid_actions", np.zeros((4, 3), bool), "invalid_actions"),
    ("is_terminal", np.zeros(3, bool), "is_terminal"),
])
def test_bad_mask_outputs_raise(field, value, match):
    model = LegalModel(2, 0, emit="none")
    root, _ = model.root(2, 0)

    def recurrent_fn(params, rng, actions, states):
        out, nxt = model(params, rng, actions, states)
        return mcts.RecurrentFnOutput(out.reward, out.discount, out.prior_logits, out.value, **{field: value}), nxt

    with pytest.raises(ValueError, match=match):
        mcts.muzero_policy(root, recurrent_fn, 4)


# --------------------------------------------------------------------------------------------------
# Filled passes: num_leaves counts the leaves a fill callback marks; the rest are released.


def _marks_new_states(model):
    """A fill callback marking a new leaf whose state is neither terminal nor a dead end."""
    def fill(actions, states, evaluate):
        nxt = (states * model.A + actions + 1) % model.T
        return evaluate & ~model.terminal[nxt] & ~model.invalid[nxt].all(-1)
    return fill


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_fill_marking_every_leaf_is_the_unfilled_search(backend):
    """Marking every leaf, with no terminal nodes and no two leaves of a pass at one edge (a second
    leaf at an edge is not costly, so a filled pass would go on past it): the leaf-by-leaf passes
    pick what one call of the selection kernel picks, so the tree is the unfilled search's, bit for
    bit, and no virtual visit is left behind."""
    model = LegalModel(5, 1, p_invalid=0.0, p_terminal=0.0, p_dead=0.0, emit="none")
    root, _ = model.root(1, 1)
    plain = mcts.muzero_policy(root, model, 20, rng=0, num_leaves=3, backend=backend)
    assert (plain.search_tree.node_visits[0] > 0).all()  # no two leaves of a pass met at one edge
    calls = []
    filled = mcts.muzero_policy(root, model, 20, rng=0, num_leaves=3, backend=backend,
                                fill=lambda a, s, ev: calls.append(len(a)) or ev.copy())
    _assert_same_tree(plain, filled)
    assert calls and set(calls) == {1}  # asked leaf by leaf
    blocks = kernels_mcts.tree_blocks(filled.search_tree)
    assert not blocks[1][2].any() and not blocks[3][3].any()  # children and node virtual visits: all 0


def test_filled_passes_give_the_model_num_leaves_costly_leaves():
    """With terminal nodes an unfilled pass of 4 leaves often holds fewer than 4 costly ones (new
    states that go on). A filled pass evaluates each free new leaf alone, at once, and gives the
    model its costly ones together, at most 4 and more often 4 than the unfilled passes do; the
    search still runs its 40 simulations."""
    model = LegalModel(6, 1, p_terminal=0.15, p_invalid=0.1, p_dead=0.0)
    root, invalid = model.root(1, 1)
    events = []  # ("call", leaves, costly leaves, distinct costly) and ("pass", simulations done)

    def recurrent(params, rng, actions, states):
        nxt = (states * model.A + actions + 1) % model.T
        go_on = ~model.terminal[nxt] & ~model.invalid[nxt].all(-1)
        events.append(("call", len(actions), int(go_on.sum()), len({(int(s), int(a)) for s, a, g in zip(states, actions, go_on) if g})))
        return model(params, rng, actions, states)

    plain = mcts.muzero_policy(root, recurrent, 40, rng=0, num_leaves=4, invalid_actions=invalid)
    plain_costly = [e[3] for e in events]
    assert min(plain_costly[:-1]) < 4  # the unfilled passes leave the model short
    events.clear()
    S, K = 40, 16
    out = mcts.muzero_policy(root, recurrent, S, rng=0, num_leaves=4, invalid_actions=invalid,
                             fill=_marks_new_states(model), max_leaves=K, progress=lambda done: events.append(("pass", done)))
    np.testing.assert_array_equal(out.search_tree.node_visits[:, 0], S + 1)  # S simulations
    calls = [e for e in events if e[0] == "call"]
    assert all(c in (0, m) for _, m, c, _ in calls)  # a call holds costly leaves only, or one free leaf
    assert any(c == 0 for _, _, c, _ in calls)
    full, segment = 0, []
    for e in events:
        if e[0] == "call":
            segment.append(e)
            continue
        batch = [d for _, _, c, d in segment if c > 0]
        assert len(batch) <= 1 and all(d <= 4 for d in batch)  # one batched call a pass, at most 4 new states
        full += batch == [4]
        segment = []
    assert full >= 5 and full > sum(c == 4 for c in plain_costly)
    _check_filled_tree(out.search_tree, plain.search_tree)


def test_leaves_at_a_held_edge_are_released_uncounted():
    """One action: every leaf takes the same edge. A filled pass holds the first leaf (costly) and
    releases the ones that meet its edge (at most max_leaves a pass) without counting them, so
    each pass is one simulation and one model call, as in sequential MCTS."""
    model = LegalModel(1, 4, p_invalid=0.0, p_terminal=0.0, p_dead=0.0, emit="none")
    root, _ = model.root(1, 4)
    asked, done = [], []
    filled = mcts.muzero_policy(root, model, 6, rng=0, num_leaves=2, max_leaves=3,
                                fill=lambda a, s, ev: asked.append(1) or ev.copy(), progress=done.append)
    plain = mcts.muzero_policy(root, model, 6, rng=0, num_leaves=1)
    _assert_same_tree(plain, filled)
    assert done == [1, 2, 3, 4, 5, 6] and len(asked) == 6
    blocks = kernels_mcts.tree_blocks(filled.search_tree)
    assert not blocks[1][2].any() and not blocks[3][3].any()


def _check_filled_tree(filled, plain):
    """Both trees are consistent: every edge's visits equal its child's, none left virtual."""
    for t in (filled, plain):
        B, N = t.node_visits.shape
        for b in range(B):
            for n in range(1, int(t.num_nodes[b])):
                p, a = t.parents[b, n], t.action_from_parent[b, n]
                if p >= 0:
                    assert t.children_visits[b, p, a] == t.node_visits[b, n]
        blocks = kernels_mcts.tree_blocks(t)
        assert not blocks[1][2].any() and not blocks[3][3].any()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(A=st.integers(2, 6), S=st.integers(1, 30), num_leaves=st.integers(1, 4),
       extra=st.integers(0, 8), seed=st.integers(0, 2**16))
def test_filled_search_numba_matches_twin(A, S, num_leaves, extra, seed):
    model = LegalModel(A, seed)
    root, invalid = model.root(1, seed)
    kw = dict(rng=seed, num_leaves=num_leaves, invalid_actions=invalid, fill=_marks_new_states(model),
              max_leaves=num_leaves + extra, capacity=4)
    ours = mcts.muzero_policy(root, model, S, **kw)
    twin = mcts.muzero_policy(root, model, S, backend="python", **kw)
    _assert_same_tree(ours, twin)
    np.testing.assert_array_equal(ours.search_tree.node_visits[:, 0], S + 1)


def test_bad_fill_arguments_raise():
    model = LegalModel(3, 0)
    root, _ = model.root(1, 0)
    with pytest.raises(ValueError, match="max_leaves is only used with fill"):
        mcts.muzero_policy(root, model, 4, max_leaves=8)
    with pytest.raises(ValueError, match="max_leaves must be an int >= num_leaves"):
        mcts.muzero_policy(root, model, 4, num_leaves=4, fill=lambda a, s, e: e, max_leaves=2)
    with pytest.raises(ValueError, match="fill must be None or a callable"):
        mcts.muzero_policy(root, model, 4, fill="expansions")
    with pytest.raises(ValueError, match="fill returned marks of shape"):
        mcts.muzero_policy(root, model, 4, fill=lambda a, s, e: np.ones(2, bool))
    with pytest.raises(ValueError, match="one tree per search"):
        mcts.muzero_policy(model.root(2, 0)[0], model, 4, fill=lambda a, s, e: e)
