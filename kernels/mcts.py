"""Batched Monte-Carlo tree search as arrays, compiled with numba; shaped like google-deepmind/mctx.

A batch of ``B`` independent trees is held in a :class:`Tree` of arrays. Node ``0`` is the root; a node
created by simulation ``s`` (counted from 0) gets index ``s + 1``, so a search of ``S`` simulations
needs ``N = S + 1`` nodes. The search loop runs in Python; each step calls numba kernels batched over
the ``B`` trees, and the caller's ``recurrent_fn`` evaluates the new leaves in one batch::

    repeat ceil(S / num_leaves) times:
        select_puct | select_gumbel  # kernel: walk down every tree num_leaves times
        recurrent_fn                 # caller: (reward, discount, prior_logits, value), new embeddings
        expand_and_backup            # kernel: write the new nodes, back values up

Everything is float64. ``backend="python"`` runs the same loop on the pure-Python twin kernels of
:mod:`ponder.kernels.mcts_py` (the reference semantics; the two give bit-identical trees). With the
same root noise the trees equal those of ``mctx.muzero_policy`` / ``mctx.gumbel_muzero_policy`` run
in float64 (tests/test_mcts.py checks both).

Node statistics (the conventions of mctx):

* ``node_visits[b, n]`` counts the evaluation of node ``n`` itself plus every simulation through it,
  so the root of a finished search has ``S + 1`` visits.
* ``node_values[b, n]`` is the running **mean** of the values backed up through ``n`` (its own
  evaluation included); ``raw_values[b, n]`` is the model's value of ``n``.
* The value of edge ``(n, a)`` is ``Q(n, a) = r(n, a) + gamma(n, a) * node_values[b, child]``,
  held as ``children_rewards``, ``children_discounts`` and ``children_values`` (a copy of the child's
  mean). Backup from a leaf ``l`` with value ``v`` updates each ancestor ``p`` reached by ``a``::

      G <- r(p, a) + gamma(p, a) * G            (G starts at the leaf's node value)
      node_values[p] <- (node_values[p] * node_visits[p] + G) / (node_visits[p] + 1)

A simulation walks down until it takes an unexpanded edge, or until it has taken ``max_depth``
edges; in the latter case the existing child is evaluated again and its priors, raw value and mean
are overwritten by the new evaluation (mctx's convention).

Action selection:

* ``muzero_policy`` uses PUCT (MuZero, Appendix B) at every node::

      a* = argmax_a  Qn(s, a) + P(s, a) * sqrt(N(s)) / (1 + N(s, a)) * c(s)
      c(s) = pb_c_init + log((N(s) + pb_c_base + 1) / pb_c_base)

  ``Qn`` is the edge value normalised to ``[0, 1]``: ``qtransform="parent_and_siblings"`` (mctx's
  default ``qtransform_by_parent_and_siblings``) divides by the range of ``{V(s)} U {Q(s, a):
  visited}``; ``qtransform="min_max"`` (mctx's ``qtransform_by_min_max``) uses fixed
  ``value_bounds=(lo, hi)``. An unvisited child scores ``Qn = 0`` (the minimum), as in mctx.
  Ties go to the lowest action index (mctx adds ``1e-7 * uniform`` noise to break ties instead).
* ``gumbel_muzero_policy`` follows Full Gumbel MuZero (Danihelka et al., 2022) as in mctx: at the
  root, Sequential Halving over the ``max_num_considered_actions`` actions with the highest
  ``g + logits``, choosing ``argmax g(a) + logits(a) + sigma(q(a))`` among the actions whose visit
  count equals the schedule's current ``considered_visits``; at interior nodes, the deterministic
  selection ``argmax pi'(a) - N(a) / (1 + sum_b N(b))`` with ``pi' = softmax(logits + sigma(q))``,
  evaluated as ``P(a) exp(sigma(a) - max sigma) / Z`` from the stored priors (equal up to rounding;
  one exp per visited action, as the unvisited ones share the same sigma).
  ``sigma(q) = (maxvisit_init + max_b N(b)) * value_scale * q_rescaled`` uses the completed
  Q-values: unvisited actions get the mixed value of Appendix D, then all are rescaled to
  ``[0, 1]`` (mctx's ``qtransform_completed_by_mix_value``).

Several leaves per tree in one pass (``num_leaves > 1``): leaf ``j`` of a pass is selected after the
paths of leaves ``0 .. j-1`` received a virtual visit on every edge. A virtual visit counts in
``N(s)`` and ``N(s, a)`` of the selection rule and, for PUCT, as a visit of normalised value 0 (the
worst): ``Qn_eff = Qn * n / (n + v)``. Two leaves of one pass that reach the same unexpanded edge
are both evaluated; the later one re-evaluates the node the earlier one created (as mctx does for a
leaf at ``max_depth``). Each leaf's backup removes its virtual visits. With ``num_leaves = 1`` the
search is exactly sequential MCTS.

Embeddings: the tree stores one embedding row per node, ``embeddings[b, n, ...]``, copied from what
``recurrent_fn`` returns. To keep a model's state elsewhere (a KV cache, a simulator snapshot table),
return an int index per item and look it up in your own table.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import numpy as np
from numba import njit

ROOT_INDEX = 0
NO_PARENT = -1
UNVISITED = -1

_QTRANSFORMS = {"parent_and_siblings": 0, "min_max": 1}
_TINY = float(np.finfo(np.float64).tiny)
_LOW_LOGIT = -1e9  # floor of the Gumbel root score, as in mctx's seq_halving.score_considered
_EPSILON = 1e-8  # smallest denominator when rescaling Q-values


# --------------------------------------------------------------------------------------------------
# Data types (same names and fields as mctx; numpy arrays).


@dataclasses.dataclass(frozen=True)
class RootFnOutput:
    """Model output at the roots.

    Attributes:
        prior_logits: ``[B, A]`` policy logits at the roots.
        value: ``[B]`` value estimates of the roots.
        embedding: ``[B, ...]`` state handed to ``recurrent_fn`` (an int index per root works).
    """

    prior_logits: Any  # [B, A]
    value: Any  # [B]
    embedding: Any  # [B, ...]


@dataclasses.dataclass(frozen=True)
class RecurrentFnOutput:
    """Model output for a batch of ``M`` (state, action) transitions.

    Attributes:
        reward: ``[M]`` reward of the transition.
        discount: ``[M]`` discount between ``reward`` and ``value`` (0 at a terminal state).
        prior_logits: ``[M, A]`` policy logits at the new state.
        value: ``[M]`` value estimate of the new state.
    """

    reward: Any  # [M]
    discount: Any  # [M]
    prior_logits: Any  # [M, A]
    value: Any  # [M]


@dataclasses.dataclass(frozen=True)
class SearchSummary:
    """Root statistics of a finished search (as mctx's ``Tree.summary()``)."""

    visit_counts: np.ndarray  # [B, A] float
    visit_probs: np.ndarray  # [B, A]
    value: np.ndarray  # [B]
    qvalues: np.ndarray  # [B, A]


@dataclasses.dataclass(frozen=True)
class Tree:
    """A batch of search trees as arrays. ``N = num_simulations + 1`` nodes; node 0 is the root.

    Attributes:
        node_visits: ``[B, N]`` int32 visit counts (own evaluation included).
        raw_values: ``[B, N]`` model value of each node.
        node_values: ``[B, N]`` running mean of the values backed up through each node.
        parents: ``[B, N]`` int32 parent index (-1 for the root and unused nodes).
        action_from_parent: ``[B, N]`` int32 action leading from the parent (-1 likewise).
        children_index: ``[B, N, A]`` int32 child node index, -1 while unexpanded.
        children_prior_logits: ``[B, N, A]`` policy logits at each node.
        children_priors: ``[B, N, A]`` ``softmax(children_prior_logits)``.
        children_visits: ``[B, N, A]`` int32 visit counts of the edges.
        children_rewards: ``[B, N, A]`` reward of each edge.
        children_discounts: ``[B, N, A]`` discount of each edge.
        children_values: ``[B, N, A]`` ``node_values`` of the child, copied at backup.
        embeddings: ``[B, N, ...]`` state of each node as returned by the model.
        root_invalid_actions: ``[B, A]`` bool, True where an action is invalid at the root.
        extra_data: dict of per-search extras (``root_gumbel`` ``[B, A]`` for Gumbel MuZero).
    """

    node_visits: np.ndarray  # [B, N]
    raw_values: np.ndarray  # [B, N]
    node_values: np.ndarray  # [B, N]
    parents: np.ndarray  # [B, N]
    action_from_parent: np.ndarray  # [B, N]
    children_index: np.ndarray  # [B, N, A]
    children_prior_logits: np.ndarray  # [B, N, A]
    children_priors: np.ndarray  # [B, N, A]
    children_visits: np.ndarray  # [B, N, A]
    children_rewards: np.ndarray  # [B, N, A]
    children_discounts: np.ndarray  # [B, N, A]
    children_values: np.ndarray  # [B, N, A]
    embeddings: np.ndarray  # [B, N, ...]
    root_invalid_actions: np.ndarray  # [B, A]
    extra_data: dict = dataclasses.field(default_factory=dict)

    ROOT_INDEX = ROOT_INDEX
    NO_PARENT = NO_PARENT
    UNVISITED = UNVISITED

    @property
    def num_actions(self) -> int:
        return self.children_index.shape[-1]

    @property
    def num_simulations(self) -> int:
        return self.node_visits.shape[-1] - 1

    def qvalues(self, indices) -> np.ndarray:
        """``Q(n, a) = r(n, a) + gamma(n, a) * V(child)`` at node ``indices[b]`` of each tree: ``[B, A]``."""
        rows = np.arange(self.node_visits.shape[0])
        idx = np.broadcast_to(np.asarray(indices), rows.shape)
        return self.children_rewards[rows, idx] + self.children_discounts[rows, idx] * self.children_values[rows, idx]

    def summary(self) -> SearchSummary:
        """Visit counts, visit frequencies, value and Q-values at the roots."""
        visit_counts = self.children_visits[:, ROOT_INDEX].astype(np.float64)  # [B, A]
        total = visit_counts.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            probs = np.where(total > 0, visit_counts / np.maximum(total, 1), 1.0 / self.num_actions)
        return SearchSummary(
            visit_counts=visit_counts,
            visit_probs=probs,
            value=self.node_values[:, ROOT_INDEX].copy(),
            qvalues=self.qvalues(ROOT_INDEX),
        )


@dataclasses.dataclass(frozen=True)
class PolicyOutput:
    """Result of a search policy.

    Attributes:
        action: ``[B]`` int64 proposed action.
        action_weights: ``[B, A]`` policy targets (they sum to one).
        search_tree: the finished :class:`Tree`.
    """

    action: np.ndarray  # [B]
    action_weights: np.ndarray  # [B, A]
    search_tree: Tree


RecurrentFn = Callable[[Any, Any, np.ndarray, Any], "tuple[RecurrentFnOutput, Any]"]


# --------------------------------------------------------------------------------------------------
# Public policies.


def muzero_policy(
    root: RootFnOutput,
    recurrent_fn: RecurrentFn,
    num_simulations: int,
    *,
    params: Any = None,
    rng: np.random.Generator | int | None = None,
    invalid_actions: np.ndarray | None = None,
    max_depth: int | None = None,
    qtransform: str = "parent_and_siblings",
    value_bounds: tuple[float, float] | None = None,
    dirichlet_fraction: float = 0.25,
    dirichlet_alpha: float = 0.3,
    dirichlet_noise: np.ndarray | None = None,
    pb_c_init: float = 1.25,
    pb_c_base: float = 19652.0,
    temperature: float = 1.0,
    num_leaves: int = 1,
    backend: str = "numba",
) -> PolicyOutput:
    """MuZero search with PUCT selection; returns visit-count policy and a sampled action.

    The root priors are mixed with Dirichlet noise, ``P' = (1 - f) * P + f * Dir(alpha)``, then held
    as logits ``log(max(P', tiny))``. After the search, ``action_weights = N(root, a) / sum_b
    N(root, b)`` and ``action`` is drawn from ``action_weights ** (1 / temperature)``
    (``temperature=0`` picks a most visited action, uniformly among ties).

    Args:
        root: ``RootFnOutput`` with ``prior_logits [B, A]``, ``value [B]``, ``embedding [B, ...]``.
        recurrent_fn: ``(params, rng, actions [M], embeddings [M, ...]) -> (RecurrentFnOutput,
            new_embeddings [M, ...])`` with ``M = B * k`` items ordered tree-major (item
            ``b * k + j`` is leaf ``j`` of tree ``b``), ``k = num_leaves`` (fewer on the last pass).
        num_simulations: number of leaves evaluated per tree (``S``; the tree has ``S + 1`` nodes).
        params: passed through to ``recurrent_fn``.
        rng: numpy ``Generator`` or seed for the Dirichlet noise and the action sample; passed
            through to ``recurrent_fn``.
        invalid_actions: ``[B, A]`` bool mask of actions never chosen at the root.
        max_depth: longest path from the root in edges (default ``num_simulations``).
        qtransform: ``"parent_and_siblings"`` or ``"min_max"`` (needs ``value_bounds``).
        value_bounds: ``(lo, hi)`` for ``qtransform="min_max"``.
        dirichlet_fraction: ``f`` in ``[0, 1]``; 0 disables the noise.
        dirichlet_alpha: Dirichlet concentration ``alpha > 0``.
        dirichlet_noise: ``[B, A]`` noise to use instead of drawing it from ``rng``.
        pb_c_init: PUCT constant ``c1``.
        pb_c_base: PUCT constant ``c2``.
        temperature: acting temperature ``>= 0``.
        num_leaves: leaves selected per tree per pass, spread by virtual visits.
        backend: ``"numba"`` (compiled kernels) or ``"python"`` (the reference twin, mcts_py).

    Returns:
        ``PolicyOutput(action [B], action_weights [B, A], search_tree)``.
    """
    kernels = _kernels(backend)
    if qtransform not in _QTRANSFORMS:
        raise ValueError(f"qtransform must be one of {sorted(_QTRANSFORMS)}, got {qtransform!r}")
    if qtransform == "min_max":
        if value_bounds is None or len(value_bounds) != 2 or not value_bounds[1] > value_bounds[0]:
            raise ValueError(f"qtransform='min_max' needs value_bounds=(lo, hi) with hi > lo, got {value_bounds!r}")
        vmin, vmax = float(value_bounds[0]), float(value_bounds[1])
    elif value_bounds is not None:
        raise ValueError("value_bounds is only used with qtransform='min_max'")
    else:
        vmin, vmax = 0.0, 1.0
    if not 0.0 <= dirichlet_fraction <= 1.0:
        raise ValueError(f"dirichlet_fraction must be in [0, 1], got {dirichlet_fraction}")
    if not dirichlet_alpha > 0:
        raise ValueError(f"dirichlet_alpha must be > 0, got {dirichlet_alpha}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not pb_c_base > 0:
        raise ValueError(f"pb_c_base must be > 0, got {pb_c_base}")
    rng = np.random.default_rng(rng)
    logits, value, embedding, invalid = _check_root(root, invalid_actions)
    B, A = logits.shape

    # Dirichlet noise on the root priors: P' = (1 - f) P + f eta, back to logits log(max(P', tiny)).
    probs = _softmax(logits)
    if dirichlet_noise is not None:
        noise = np.asarray(dirichlet_noise, dtype=np.float64)
        if noise.shape != (B, A):
            raise ValueError(f"dirichlet_noise must have shape {(B, A)}, got {noise.shape}")
        probs = (1.0 - dirichlet_fraction) * probs + dirichlet_fraction * noise
    elif dirichlet_fraction > 0.0:
        noise = rng.dirichlet(np.full(A, float(dirichlet_alpha)), size=B)
        probs = (1.0 - dirichlet_fraction) * probs + dirichlet_fraction * noise
    logits = _mask_logits(np.log(np.maximum(probs, _TINY)), invalid)

    q_code = _QTRANSFORMS[qtransform]

    def select(t, children_virtual, node_virtual, first_sim, depth_cap, parent, action, leaf):
        kernels.select_puct(
            q_code, first_sim, depth_cap, float(pb_c_init), float(pb_c_base), vmin, vmax,
            t.children_index, t.children_priors, t.children_visits, t.children_values,
            t.children_rewards, t.children_discounts, t.node_visits, t.node_values,
            children_virtual, node_virtual, t.root_invalid_actions, parent, action, leaf)

    tree = _search(kernels, logits, value, embedding, invalid, recurrent_fn, num_simulations,
                   params=params, rng=rng, max_depth=max_depth, num_leaves=num_leaves,
                   select=select, extra_data={})

    weights = tree.summary().visit_probs  # [B, A]
    act_logits = np.log(np.maximum(weights, _TINY))
    with np.errstate(over="ignore", under="ignore"):  # temperature 0: logits / tiny -> -inf
        act_logits = (act_logits - act_logits.max(-1, keepdims=True)) / max(_TINY, temperature)
        p = np.exp(act_logits)
    p /= p.sum(-1, keepdims=True)
    u = rng.random(B)[:, None]
    action = np.minimum((np.cumsum(p, -1) < u * p.sum(-1, keepdims=True)).sum(-1), A - 1)
    return PolicyOutput(action=action.astype(np.int64), action_weights=weights, search_tree=tree)


def gumbel_muzero_policy(
    root: RootFnOutput,
    recurrent_fn: RecurrentFn,
    num_simulations: int,
    *,
    params: Any = None,
    rng: np.random.Generator | int | None = None,
    invalid_actions: np.ndarray | None = None,
    max_depth: int | None = None,
    max_num_considered_actions: int = 16,
    gumbel_scale: float = 1.0,
    gumbel: np.ndarray | None = None,
    value_scale: float = 0.1,
    maxvisit_init: float = 50.0,
    num_leaves: int = 1,
    backend: str = "numba",
) -> PolicyOutput:
    """Full Gumbel MuZero search: Sequential Halving with Gumbel at the root.

    The root draws ``g = gumbel_scale * Gumbel(0, 1)`` per action. The final action is the best
    ``g(a) + logits(a) + sigma(q(a))`` among the most visited actions, and ``action_weights =
    softmax(logits + sigma(q))`` with completed Q-values (see the module docstring).

    Args:
        root: ``RootFnOutput`` with ``prior_logits [B, A]``, ``value [B]``, ``embedding [B, ...]``.
        recurrent_fn: as in :func:`muzero_policy`.
        num_simulations: number of leaves evaluated per tree.
        params: passed through to ``recurrent_fn``.
        rng: numpy ``Generator`` or seed for the Gumbel noise; passed through to ``recurrent_fn``.
        invalid_actions: ``[B, A]`` bool mask of actions never chosen at the root.
        max_depth: longest path from the root in edges (default ``num_simulations``).
        max_num_considered_actions: actions entering Sequential Halving at the root (``m``).
        gumbel_scale: scale of the Gumbel noise; 0 gives a deterministic search.
        gumbel: ``[B, A]`` noise to use instead of drawing it (``gumbel_scale`` is then ignored).
        value_scale: ``c_scale`` of ``sigma``.
        maxvisit_init: ``c_visit`` of ``sigma``.
        num_leaves: leaves selected per tree per pass, spread by virtual visits.
        backend: ``"numba"`` (compiled kernels) or ``"python"`` (the reference twin, mcts_py).

    Returns:
        ``PolicyOutput(action [B], action_weights [B, A], search_tree)``.
    """
    kernels = _kernels(backend)
    S = _check_budget(num_simulations, num_leaves, max_depth)[0]
    if int(max_num_considered_actions) < 1:
        raise ValueError(f"max_num_considered_actions must be >= 1, got {max_num_considered_actions}")
    rng = np.random.default_rng(rng)
    logits, value, embedding, invalid = _check_root(root, invalid_actions)
    B, A = logits.shape
    logits = _mask_logits(logits, invalid)
    if gumbel is None:
        g = float(gumbel_scale) * rng.gumbel(size=(B, A)) if gumbel_scale != 0 else np.zeros((B, A))
    else:
        g = np.asarray(gumbel, dtype=np.float64)
        if g.shape != (B, A):
            raise ValueError(f"gumbel must have shape {(B, A)}, got {g.shape}")
    g = np.ascontiguousarray(g, dtype=np.float64)

    value_scale, maxvisit_init = float(value_scale), float(maxvisit_init)
    m = int(max_num_considered_actions)
    table = _considered_visits_table(m, S)  # [m + 1, S]
    num_considered = np.minimum(m, A - invalid.sum(-1)).astype(np.int32)  # [B]

    def select(t, children_virtual, node_virtual, first_sim, depth_cap, parent, action, leaf):
        kernels.select_gumbel(
            first_sim, depth_cap, value_scale, maxvisit_init, t.children_index,
            t.children_prior_logits, t.children_priors, t.children_visits, t.children_values,
            t.children_rewards, t.children_discounts, t.raw_values, children_virtual,
            node_virtual, t.root_invalid_actions, g, table, num_considered, parent, action, leaf)

    tree = _search(kernels, logits, value, embedding, invalid, recurrent_fn, num_simulations,
                   params=params, rng=rng, max_depth=max_depth, num_leaves=num_leaves,
                   select=select, extra_data={"root_gumbel": g})

    # Act with the best g + logits + sigma(q) among the most visited root actions.
    t = tree
    completed = np.zeros((B, A))
    kernels.completed_qvalues(
        np.zeros(B, dtype=np.int32), t.children_visits, t.children_priors, t.children_values,
        t.children_rewards, t.children_discounts, t.raw_values, value_scale, maxvisit_init,
        completed)
    visits = t.children_visits[:, ROOT_INDEX]  # [B, A]
    considered = visits.max(-1, keepdims=True)
    score = np.maximum(_LOW_LOGIT, g + (logits - logits.max(-1, keepdims=True)) + completed)
    score = np.where((visits == considered) & ~invalid, score, -np.inf)
    action = score.argmax(-1).astype(np.int64)
    weights = _softmax(_mask_logits(logits + completed, invalid))
    return PolicyOutput(action=action, action_weights=weights, search_tree=tree)


@functools.lru_cache(maxsize=64)
def _considered_visits_table(max_num_considered_actions: int, num_simulations: int) -> np.ndarray:
    """:func:`considered_visits_table`, cached for the search loop (which never writes to it)."""
    return considered_visits_table(max_num_considered_actions, num_simulations)


def considered_visits_table(max_num_considered_actions: int, num_simulations: int) -> np.ndarray:
    """Sequential Halving schedule: ``table[m, s]`` is the visit count an action must have to be
    chosen at the root in simulation ``s`` when ``m`` actions are considered. ``[m_max + 1, S]`` int32.

    With ``m`` considered actions the budget is split into ``ceil(log2 m)`` phases; a phase with
    ``k`` remaining actions gives each of them ``max(1, floor(S / (ceil(log2 m) * k)))`` visits,
    then ``k`` halves (never below 2). For ``m <= 1`` the single action takes every simulation.
    """
    table = np.zeros((max_num_considered_actions + 1, num_simulations), dtype=np.int32)
    for m in range(max_num_considered_actions + 1):
        if m <= 1:
            table[m] = np.arange(num_simulations)
            continue
        phases = math.ceil(math.log2(m))
        schedule: list[int] = []
        k, visits = m, 0  # all actions still considered share the same visit count
        while len(schedule) < num_simulations:
            rounds = max(1, int(num_simulations / (phases * k)))
            for _ in range(rounds):
                schedule.extend([visits] * k)
                visits += 1
            k = max(2, k // 2)
        table[m] = schedule[:num_simulations]
    return table


# --------------------------------------------------------------------------------------------------
# The search loop (the same for both backends; only the kernels differ).


def _search(kernels, logits, value, embedding, invalid, recurrent_fn, num_simulations, *, params,
            rng, max_depth, num_leaves, select, extra_data) -> Tree:
    """Allocate the trees, fill the roots, and run the select / evaluate / expand-backup loop.

    ``select(tree, children_virtual, node_virtual, first_sim, max_depth, parent, action, leaf)``
    runs the selection kernel of the policy; the rest is common to both policies.
    """
    S, L, depth_cap = _check_budget(num_simulations, num_leaves, max_depth)
    B, A = logits.shape
    N = S + 1
    # Two allocations for all the [B, N, A] and [B, N] arrays (fields are views into them): one
    # large block is reused by the allocator from search to search, where a dozen separate ones
    # are returned to the OS and page-faulted back in (~2 us per 4 KiB page on a VM).
    edge_f = np.zeros((5, B, N, A))  # prior logits, priors, rewards, discounts, values
    edge_i = np.zeros((3, B, N, A), np.int32)  # index, visits, virtual visits of the pass
    edge_i[0].fill(UNVISITED)
    node_f = np.zeros((2, B, N))  # raw values, mean values
    node_i = np.zeros((4, B, N), np.int32)  # visits, parents, actions from parent, virtual visits
    node_i[1:3].fill(NO_PARENT)
    tree = Tree(
        node_visits=node_i[0],
        raw_values=node_f[0],
        node_values=node_f[1],
        parents=node_i[1],
        action_from_parent=node_i[2],
        children_index=edge_i[0],
        children_prior_logits=edge_f[0],
        children_priors=edge_f[1],
        children_visits=edge_i[1],
        children_rewards=edge_f[2],
        children_discounts=edge_f[3],
        children_values=edge_f[4],
        embeddings=np.zeros((B, N) + embedding.shape[1:], embedding.dtype),
        root_invalid_actions=invalid,
        extra_data=extra_data,
    )
    tree.node_visits[:, ROOT_INDEX] = 1
    tree.raw_values[:, ROOT_INDEX] = value
    tree.node_values[:, ROOT_INDEX] = value
    tree.children_prior_logits[:, ROOT_INDEX] = logits
    tree.children_priors[:, ROOT_INDEX] = _softmax(logits)
    tree.embeddings[:, ROOT_INDEX] = embedding

    children_virtual = edge_i[2]  # [B, N, A] virtual visits of the pass in flight
    node_virtual = node_i[3]  # [B, N]
    t = tree
    emb_shape = embedding.shape[1:]
    flat_embeddings = t.embeddings.reshape((B * N,) + emb_shape)  # a view: row b * N + n
    first_row = (np.arange(B, dtype=np.intp) * N)[:, None]  # [B, 1]
    buffers = {}
    for start in range(0, S, L):
        k = min(L, S - start)
        M = B * k
        if k not in buffers:  # parent, action, leaf [B, k] int32; action, rows [M] int64
            buffers[k] = (np.empty((B, k), np.int32), np.empty((B, k), np.int32), np.empty((B, k), np.int32),
                          np.empty(M, np.int64), np.empty((B, k), np.intp))
        parent, action, leaf, action64, rows = buffers[k]
        select(t, children_virtual, node_virtual, start, depth_cap, parent, action, leaf)
        action64[:] = action.reshape(M)
        np.add(first_row, parent, out=rows)
        out, new_embedding = recurrent_fn(params, rng, action64.copy(), flat_embeddings.take(rows.reshape(M), axis=0))
        reward = _as_f64(out.reward, (M,), "reward")
        discount = _as_f64(out.discount, (M,), "discount")
        prior_logits = _as_f64(out.prior_logits, (M, A), "prior_logits")
        leaf_value = _as_f64(out.value, (M,), "value")
        new_embedding = np.asarray(new_embedding)
        if new_embedding.shape != (M,) + emb_shape:
            raise ValueError(f"recurrent_fn returned embeddings of shape {new_embedding.shape}, "
                             f"expected {(M,) + emb_shape}")
        kernels.expand_and_backup(
            parent, action, leaf, reward, discount, prior_logits, leaf_value, t.children_index,
            t.children_prior_logits, t.children_priors, t.children_visits, t.children_values,
            t.children_rewards, t.children_discounts, t.node_visits, t.node_values, t.raw_values,
            t.parents, t.action_from_parent, children_virtual, node_virtual)
        np.add(first_row, leaf, out=rows)
        flat_embeddings[rows.reshape(M)] = new_embedding
    return tree


def _check_budget(num_simulations, num_leaves, max_depth):
    S = int(num_simulations)
    if S < 1 or S != num_simulations:
        raise ValueError(f"num_simulations must be a positive int, got {num_simulations!r}")
    L = int(num_leaves)
    if L < 1 or L != num_leaves:
        raise ValueError(f"num_leaves must be a positive int, got {num_leaves!r}")
    depth_cap = S if max_depth is None else int(max_depth)
    if depth_cap < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth!r}")
    return S, L, depth_cap


def _check_root(root, invalid_actions):
    logits = np.asarray(root.prior_logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"root.prior_logits must have shape [B, A], got {logits.shape}")
    B, A = logits.shape
    value = _as_f64(root.value, (B,), "root.value")
    embedding = np.asarray(root.embedding)
    if embedding.ndim < 1 or embedding.shape[0] != B:
        raise ValueError(f"root.embedding must have shape [B, ...] with B={B}, got {embedding.shape}")
    if invalid_actions is None:
        invalid = np.zeros((B, A), dtype=np.bool_)
    else:
        invalid = np.asarray(invalid_actions).astype(np.bool_)
        if invalid.shape != (B, A):
            raise ValueError(f"invalid_actions must have shape {(B, A)}, got {invalid.shape}")
    return np.ascontiguousarray(logits), value, embedding, np.ascontiguousarray(invalid)


def _as_f64(x, shape, name):
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _mask_logits(logits: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Shift so the max is 0 and give invalid actions the lowest finite logit (as mctx)."""
    if not invalid.any():
        return np.ascontiguousarray(logits)
    shifted = logits - logits.max(-1, keepdims=True)
    return np.ascontiguousarray(np.where(invalid, np.finfo(np.float64).min, shifted))


# --------------------------------------------------------------------------------------------------
# numba kernels. Arrays are indexed [b, node, action]; every kernel works on the whole batch. The
# per-node helpers take one node's rows ([A] views) and are inlined into the kernels (numba does not
# inline across jitted functions by itself; inlining makes selection ~1.6x faster). Divisions never
# see a zero divisor by construction, so the numpy error model (no zero-division checks) is used.

_kernel = njit(cache=True, error_model="numpy")
_inline = njit(cache=True, error_model="numpy", inline="always")


@_inline
def _softmax_into(x, out):
    """``out = softmax(x)`` for one row, summed left to right."""
    m = -np.inf
    for i in range(x.shape[0]):
        if x[i] > m:
            m = x[i]
    s = 0.0
    for i in range(x.shape[0]):
        e = math.exp(x[i] - m)
        out[i] = e
        s += e
    for i in range(x.shape[0]):
        out[i] = out[i] / s


@_inline
def _completed_q(visits, priors, values, rewards, discounts, raw_value, value_scale, maxvisit_init, out):
    """sigma(completed Q) at one node into ``out [A]`` (mctx's qtransform_completed_by_mix_value).

    Unvisited actions get the mixed value ``(v_raw + sum_b N(b) * sum_{a visited} pi(a) q(a) /
    sum_{a visited} pi(a)) / (1 + sum_b N(b))``; then all are rescaled to [0, 1] and multiplied by
    ``(maxvisit_init + max_b N(b)) * value_scale``. Returns the sigma of the unvisited actions.
    """
    A = out.shape[0]
    sum_visits = 0
    max_visits = 0
    sum_probs = 0.0
    for a in range(A):
        n = visits[a]
        sum_visits += n
        if n > max_visits:
            max_visits = n
        if n > 0:
            sum_probs += max(_TINY, priors[a])
    weighted_q = 0.0
    for a in range(A):
        if visits[a] > 0:
            q = rewards[a] + discounts[a] * values[a]
            weighted_q += max(_TINY, priors[a]) * q / sum_probs
    mixed = (raw_value + sum_visits * weighted_q) / (sum_visits + 1)
    lo = np.inf
    hi = -np.inf
    for a in range(A):
        if visits[a] > 0:
            c = rewards[a] + discounts[a] * values[a]
        else:
            c = mixed
        out[a] = c
        lo = min(lo, c)
        hi = max(hi, c)
    denom = max(hi - lo, _EPSILON)
    scale = (maxvisit_init + max_visits) * value_scale
    sigma_mixed = scale * ((mixed - lo) / denom)  # the same for every unvisited action
    for a in range(A):
        if visits[a] > 0:
            out[a] = scale * ((out[a] - lo) / denom)
        else:
            out[a] = sigma_mixed
    return sigma_mixed


@_inline
def _puct_action(is_root, q_code, pb_c_init, pb_c_base, vmin, vmax, priors, visits, values,
                 rewards, discounts, node_visit, node_value, virtual, node_virtual, invalid):
    """``argmax_a Qn_eff(a) + P(a) sqrt(N) c / (1 + n(a) + v(a))`` at one node."""
    A = visits.shape[0]
    n_parent = node_visit + node_virtual
    pb_c = pb_c_init + math.log((n_parent + pb_c_base + 1.0) / pb_c_base)
    explore = math.sqrt(n_parent) * pb_c
    if q_code == 0:  # parent_and_siblings: range of {V(s)} U {Q(s, a) : visited}
        lo = node_value
        hi = node_value
        for a in range(A):
            if visits[a] > 0:
                q = rewards[a] + discounts[a] * values[a]
                lo = min(lo, q)
                hi = max(hi, q)
        denom = max(hi - lo, _EPSILON)
    else:  # min_max with fixed bounds
        lo = vmin
        denom = vmax - vmin
    best = -np.inf
    best_a = 0
    for a in range(A):
        if is_root and invalid[a]:
            continue
        n = visits[a]
        v = virtual[a]
        value_score = 0.0
        if n > 0:
            q = rewards[a] + discounts[a] * values[a]
            value_score = (q - lo) / denom
            if v > 0:
                value_score = value_score * n / (n + v)  # virtual visits count as value 0
        score = value_score + explore * priors[a] / (n + v + 1)
        if score > best:
            best = score
            best_a = a
    return best_a


@_inline
def _gumbel_root_action(logits, priors, visits, values, rewards, discounts, raw_value, virtual,
                        invalid, gumbel, considered_row, value_scale, maxvisit_init, scratch):
    """Sequential Halving with Gumbel: the best ``g + logits + sigma(q)`` among the actions whose
    visit count (virtual included) equals ``considered_row[simulation index]``."""
    A = visits.shape[0]
    _completed_q(visits, priors, values, rewards, discounts, raw_value, value_scale, maxvisit_init, scratch)
    sim = 0
    max_logit = -np.inf
    for a in range(A):
        sim += visits[a] + virtual[a]
        max_logit = max(max_logit, logits[a])
    considered = considered_row[sim]
    best = -np.inf
    best_a = 0
    for a in range(A):
        if invalid[a] or visits[a] + virtual[a] != considered:
            continue
        score = max(_LOW_LOGIT, gumbel[a] + (logits[a] - max_logit) + scratch[a])
        if score > best:
            best = score
            best_a = a
    return best_a


@_inline
def _gumbel_interior_action(priors, visits, values, rewards, discounts, raw_value, virtual, value_scale,
                            maxvisit_init, sigma):
    """``argmax_a pi'(a) - n(a) / (1 + sum_b n(b))`` (virtual visits in n), ``pi' = softmax(logits +
    sigma)`` computed from the stored priors (see :func:`_gumbel_interior_probs`)."""
    A = visits.shape[0]
    total = 0
    for a in range(A):
        total += visits[a] + virtual[a]
    z, u = _gumbel_interior_probs(priors, visits, values, rewards, discounts, raw_value, value_scale,
                                  maxvisit_init, sigma)
    best = -np.inf
    best_a = 0
    for a in range(A):
        p = sigma[a] / z if visits[a] > 0 else priors[a] * u
        n = visits[a] + virtual[a]
        score = p if n == 0 else p - n / (1.0 + total)
        if score > best:
            best = score
            best_a = a
    return best_a


@_inline
def _gumbel_interior_probs(priors, visits, values, rewards, discounts, raw_value, value_scale,
                           maxvisit_init, weights):
    """The improved policy ``pi' = softmax(logits + sigma)`` at one node, with one exp per visited
    action (plus one), from ``priors = softmax(logits)``::

        pi'(a) = P(a) w(a) / Z,   w(a) = exp(sigma(a) - max_b sigma(b)),   Z = sum_b P(b) w(b)

    Every unvisited action has the same ``sigma`` (the mixed value), hence the same ``w_u``. Writes
    ``weights[a] = P(a) w(a)`` for visited actions and returns ``(Z, u)`` with ``Z = (sum over
    visited of P(a) w(a)) + w_u * (sum over unvisited of P(a))`` (each sum left to right) and
    ``u = w_u / Z``: ``pi'(a) = weights[a] / Z`` if visited, ``P(a) * u`` if not.
    """
    A = visits.shape[0]
    sigma_u = _completed_q(visits, priors, values, rewards, discounts, raw_value, value_scale,
                           maxvisit_init, weights)
    top = -np.inf
    for a in range(A):
        if weights[a] > top:
            top = weights[a]
    z = 0.0
    mass_u = 0.0
    any_unvisited = False
    for a in range(A):
        if visits[a] > 0:
            weights[a] = priors[a] * math.exp(weights[a] - top)
            z += weights[a]
        else:
            mass_u += priors[a]
            any_unvisited = True
    if not any_unvisited:
        return z, 0.0
    w_u = math.exp(sigma_u - top)
    z = z + w_u * mass_u
    return z, w_u / z


@_inline
def _edge_leaf(node, a, first_sim, j, pend_parent, pend_action, pend_node, n_pend):
    """The leaf index for unexpanded edge ``(node, a)`` taken by leaf ``j`` of this pass: the node an
    earlier leaf reserved for the same edge, or a new index ``first_sim + j + 1``. Returns
    ``(leaf, n_pend)``."""
    for p in range(n_pend):
        if pend_parent[p] == node and pend_action[p] == a:
            return pend_node[p], n_pend
    pend_parent[n_pend] = node
    pend_action[n_pend] = a
    pend_node[n_pend] = first_sim + j + 1
    return first_sim + j + 1, n_pend + 1


@_kernel
def select_puct(q_code, first_sim, max_depth, pb_c_init, pb_c_base, vmin, vmax, children_index,
                children_priors, children_visits, children_values, children_rewards,
                children_discounts, node_visits, node_values, children_virtual, node_virtual,
                root_invalid, out_parent, out_action, out_leaf):
    """Select ``L = out_parent.shape[1]`` leaves in each of the ``B`` trees by PUCT.

    Leaf ``j`` walks down from the root until it takes an unexpanded edge or reaches ``max_depth``
    edges, adding a virtual visit to every edge it takes. Writes ``out_parent[b, j]``,
    ``out_action[b, j]`` (the edge to evaluate) and ``out_leaf[b, j]``: the existing child at
    ``max_depth``, the node reserved by an earlier leaf of this pass for the same edge, or the new
    index ``first_sim + j + 1``.
    """
    B, L = out_parent.shape
    pend_parent = np.empty(L, np.int64)
    pend_action = np.empty(L, np.int64)
    pend_node = np.empty(L, np.int64)
    for b in range(B):
        n_pend = 0
        for j in range(L):
            node = 0
            depth = 0
            while True:
                a = _puct_action(depth == 0, q_code, pb_c_init, pb_c_base, vmin, vmax,
                                 children_priors[b, node], children_visits[b, node],
                                 children_values[b, node], children_rewards[b, node],
                                 children_discounts[b, node], node_visits[b, node],
                                 node_values[b, node], children_virtual[b, node],
                                 node_virtual[b, node], root_invalid[b])
                children_virtual[b, node, a] += 1
                node_virtual[b, node] += 1
                depth += 1
                child = children_index[b, node, a]
                if child == UNVISITED:
                    child, n_pend = _edge_leaf(node, a, first_sim, j, pend_parent, pend_action, pend_node, n_pend)
                    break
                if depth >= max_depth:
                    break
                node = child
            out_parent[b, j] = node
            out_action[b, j] = a
            out_leaf[b, j] = child


@_kernel
def select_gumbel(first_sim, max_depth, value_scale, maxvisit_init, children_index,
                  children_prior_logits, children_priors, children_visits, children_values,
                  children_rewards, children_discounts, raw_values, children_virtual, node_virtual,
                  root_invalid, root_gumbel, table, num_considered, out_parent, out_action, out_leaf):
    """Select ``L`` leaves per tree as :func:`select_puct` does, with Gumbel MuZero's rules: Sequential
    Halving at the root (schedule ``table[num_considered[b]]``), deterministic selection below."""
    B, L = out_parent.shape
    A = children_visits.shape[2]
    scratch = np.empty(A)
    pend_parent = np.empty(L, np.int64)
    pend_action = np.empty(L, np.int64)
    pend_node = np.empty(L, np.int64)
    for b in range(B):
        n_pend = 0
        for j in range(L):
            node = 0
            depth = 0
            while True:
                if depth == 0:
                    a = _gumbel_root_action(children_prior_logits[b, 0], children_priors[b, 0],
                                            children_visits[b, 0], children_values[b, 0],
                                            children_rewards[b, 0], children_discounts[b, 0],
                                            raw_values[b, 0], children_virtual[b, 0],
                                            root_invalid[b], root_gumbel[b], table[num_considered[b]],
                                            value_scale, maxvisit_init, scratch)
                else:
                    a = _gumbel_interior_action(children_priors[b, node], children_visits[b, node],
                                                children_values[b, node], children_rewards[b, node],
                                                children_discounts[b, node], raw_values[b, node],
                                                children_virtual[b, node], value_scale, maxvisit_init,
                                                scratch)
                children_virtual[b, node, a] += 1
                node_virtual[b, node] += 1
                depth += 1
                child = children_index[b, node, a]
                if child == UNVISITED:
                    child, n_pend = _edge_leaf(node, a, first_sim, j, pend_parent, pend_action, pend_node, n_pend)
                    break
                if depth >= max_depth:
                    break
                node = child
            out_parent[b, j] = node
            out_action[b, j] = a
            out_leaf[b, j] = child


@_kernel
def expand_and_backup(parent, action, leaf, reward, discount, prior_logits, value, children_index,
                      children_prior_logits, children_priors, children_visits, children_values,
                      children_rewards, children_discounts, node_visits, node_values, raw_values,
                      parents, action_from_parent, children_virtual, node_virtual):
    """For each tree ``b`` and leaf ``j`` in order: write the evaluated node, then back its value up.

    ``parent, action, leaf`` are ``[B, L]``; the model outputs ``reward, discount, value [B * L]``
    and ``prior_logits [B * L, A]`` are ordered tree-major (item ``b * L + j``). Expansion sets the
    node's logits, priors, raw and mean value, visit += 1, and the edge's child, reward and
    discount. Backup walks to the root: ``G <- r + gamma G``; the parent's mean absorbs ``G``; the
    edge copies the child's mean and gains a visit; the leaf's virtual visits are removed.
    """
    B, L = parent.shape
    A = children_visits.shape[2]
    for b in range(B):
        for j in range(L):
            p = parent[b, j]
            a = action[b, j]
            node = leaf[b, j]
            item = b * L + j
            # expand
            node_visits[b, node] += 1
            for i in range(A):
                children_prior_logits[b, node, i] = prior_logits[item, i]
            _softmax_into(children_prior_logits[b, node], children_priors[b, node])
            raw_values[b, node] = value[item]
            node_values[b, node] = value[item]
            children_index[b, p, a] = node
            children_rewards[b, p, a] = reward[item]
            children_discounts[b, p, a] = discount[item]
            parents[b, node] = p
            action_from_parent[b, node] = a
            # backup
            g = node_values[b, node]
            index = node
            while index != ROOT_INDEX:
                up = parents[b, index]
                act = action_from_parent[b, index]
                count = node_visits[b, up]
                g = children_rewards[b, up, act] + children_discounts[b, up, act] * g
                node_values[b, up] = (node_values[b, up] * count + g) / (count + 1.0)
                node_visits[b, up] = count + 1
                children_values[b, up, act] = node_values[b, index]
                children_visits[b, up, act] += 1
                children_virtual[b, up, act] -= 1
                node_virtual[b, up] -= 1
                index = up


@_kernel
def completed_qvalues(node_index, children_visits, children_priors, children_values,
                      children_rewards, children_discounts, raw_values, value_scale,
                      maxvisit_init, out):
    """``out[b] = sigma(completed Q)`` at node ``node_index[b]`` of each tree: ``out [B, A]``."""
    for b in range(out.shape[0]):
        n = node_index[b]
        _completed_q(children_visits[b, n], children_priors[b, n], children_values[b, n],
                     children_rewards[b, n], children_discounts[b, n], raw_values[b, n],
                     value_scale, maxvisit_init, out[b])


class _NumbaKernels:
    """The kernel set the search loop calls (the twin module mcts_py provides the same names)."""

    select_puct = staticmethod(select_puct)
    select_gumbel = staticmethod(select_gumbel)
    expand_and_backup = staticmethod(expand_and_backup)
    completed_qvalues = staticmethod(completed_qvalues)


def _kernels(backend: str):
    if backend == "numba":
        return _NumbaKernels
    if backend == "python":
        from ponder.kernels import mcts_py

        return mcts_py
    raise ValueError(f"backend must be 'numba' or 'python', got {backend!r}")
