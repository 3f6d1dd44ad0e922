"""Batched Monte-Carlo tree search as arrays, compiled with numba; shaped like google-deepmind/mctx.

This module holds the arrays and the batched steps, as mctx's ``tree.py`` and
``action_selection.py`` do: the :class:`Tree` dataclass and :func:`init_tree` that allocates one,
the selection kernels :func:`select_puct` and :func:`select_gumbel`, :func:`expand_and_backup`,
:func:`completed_qvalues` and the Sequential Halving schedule :func:`considered_visits_table`.
The search loop that spends the budget, and the mctx-shaped policies ``muzero_policy`` and
``gumbel_muzero_policy`` (with ``RootFnOutput``, ``RecurrentFnOutput``, ``PolicyOutput``), live in
:mod:`ponder.search.mcts_policies` (mctx's ``search.py`` and ``policies.py``)::

    repeat ceil(S / num_leaves) times:        # ponder.search.mcts_policies.run_search
        select_puct | select_gumbel  # kernel: walk down every tree num_leaves times
        recurrent_fn                 # caller: (reward, discount, prior_logits, value), new embeddings
        expand_and_backup            # kernel: write the new nodes, back values up

A batch of ``B`` independent trees is held in a :class:`Tree` of arrays. Node ``0`` is the root; a node
created by simulation ``s`` (counted from 0) gets index ``s + 1``, so a search of ``S`` simulations
needs ``N = S + 1`` nodes. Every kernel works on the whole batch of ``B`` trees.

Everything is float64. :mod:`ponder.kernels.mcts_py` holds pure-Python twins of the kernels with
the same names and signatures (the reference semantics; the two give bit-identical trees; the
loop runs on them with ``backend="python"``). With the same root noise the trees equal those of
``mctx.muzero_policy`` / ``mctx.gumbel_muzero_policy`` run in float64 (tests/test_mcts.py checks
both, live where mctx is installed and against golden trees in tests/golden/ in every run).

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

* ``muzero_policy`` (:func:`select_puct`) uses PUCT (MuZero, Appendix B) at every node::

      a* = argmax_a  Qn(s, a) + P(s, a) * sqrt(N(s)) / (1 + N(s, a)) * c(s)
      c(s) = pb_c_init + log((N(s) + pb_c_base + 1) / pb_c_base)

  ``Qn`` is the edge value normalised to ``[0, 1]``: ``qtransform="parent_and_siblings"`` (mctx's
  default ``qtransform_by_parent_and_siblings``) divides by the range of ``{V(s)} U {Q(s, a):
  visited}``; ``qtransform="min_max"`` (mctx's ``qtransform_by_min_max``) uses fixed
  ``value_bounds=(lo, hi)``. An unvisited child scores ``Qn = 0`` (the minimum), as in mctx.
  Ties go to the lowest action index (mctx adds ``1e-7 * uniform`` noise to break ties instead).
* ``gumbel_muzero_policy`` (:func:`select_gumbel`) follows Full Gumbel MuZero (Danihelka et al., 2022) as in mctx: at the
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

import numpy as np
from numba import njit

ROOT_INDEX = 0
NO_PARENT = -1
UNVISITED = -1

QTRANSFORMS = {"parent_and_siblings": 0, "min_max": 1}  # qtransform name -> q_code of select_puct
_TINY = float(np.finfo(np.float64).tiny)
_LOW_LOGIT = -1e9  # floor of the Gumbel root score, as in mctx's seq_halving.score_considered
_EPSILON = 1e-8  # smallest denominator when rescaling Q-values


# --------------------------------------------------------------------------------------------------
# The arrays (same names and fields as mctx; numpy arrays).


@dataclasses.dataclass(frozen=True)
class SearchSummary:
    """Root statistics of a search (as mctx's ``Tree.summary()``)."""

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



def init_tree(logits, value, embedding, invalid, num_simulations: int, *,
              extra_data: dict | None = None) -> tuple[Tree, np.ndarray, np.ndarray]:
    """Allocate ``B`` trees of ``N = num_simulations + 1`` nodes and fill their roots.

    Args:
        logits: ``[B, A]`` float64 root prior logits (already noised and masked by the policy).
        value: ``[B]`` float64 root values.
        embedding: ``[B, ...]`` root embeddings (any dtype; the tree keeps one row per node).
        invalid: ``[B, A]`` bool, True where an action is invalid at the root.
        num_simulations: ``S``.
        extra_data: stored as ``tree.extra_data`` (a new dict if None).

    Returns:
        ``(tree, children_virtual [B, N, A] int32, node_virtual [B, N] int32)``: the virtual-visit
        counters of the pass in flight, which the selection kernels and expand_and_backup share.
    """
    B, A = logits.shape
    N = int(num_simulations) + 1
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
        extra_data={} if extra_data is None else extra_data,
    )
    tree.node_visits[:, ROOT_INDEX] = 1
    tree.raw_values[:, ROOT_INDEX] = value
    tree.node_values[:, ROOT_INDEX] = value
    tree.children_prior_logits[:, ROOT_INDEX] = logits
    tree.children_priors[:, ROOT_INDEX] = softmax(logits)
    tree.embeddings[:, ROOT_INDEX] = embedding
    return tree, edge_i[2], node_i[3]


def softmax(x: np.ndarray) -> np.ndarray:
    """``softmax`` over the last axis (numpy)."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@functools.lru_cache(maxsize=64)
def cached_considered_visits_table(max_num_considered_actions: int, num_simulations: int) -> np.ndarray:
    """:func:`considered_visits_table`, lru-cached for the search loop; read-only, never write to it."""
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
# numba kernels (the batched steps). Arrays are indexed [b, node, action]; every kernel works on the whole batch. The
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


_PUCT = 0  # action rule of _walk: PUCT at every node
_GUMBEL = 1  # action rule of _walk: Sequential Halving at the root, deterministic below


@_inline
def _walk(rule, first_sim, max_depth, children_index, children_visits, children_values,
          children_rewards, children_discounts, children_priors, children_virtual, node_virtual,
          root_invalid, out_parent, out_action, out_leaf,
          q_code, pb_c_init, pb_c_base, vmin, vmax, node_visits, node_values,
          children_prior_logits, raw_values, root_gumbel, table, num_considered, value_scale,
          maxvisit_init):
    """The tree walk shared by both selection kernels; ``rule`` (``_PUCT`` or ``_GUMBEL``, a constant
    at each call site, so the compiler drops the other branch) picks the action at each node. The
    arguments after ``out_leaf`` are those of one rule; the other rule's are unused."""
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
                if rule == _PUCT:
                    a = _puct_action(depth == 0, q_code, pb_c_init, pb_c_base, vmin, vmax,
                                     children_priors[b, node], children_visits[b, node],
                                     children_values[b, node], children_rewards[b, node],
                                     children_discounts[b, node], node_visits[b, node],
                                     node_values[b, node], children_virtual[b, node],
                                     node_virtual[b, node], root_invalid[b])
                elif depth == 0:
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
    _walk(_PUCT, first_sim, max_depth, children_index, children_visits, children_values,
          children_rewards, children_discounts, children_priors, children_virtual, node_virtual,
          root_invalid, out_parent, out_action, out_leaf,
          q_code, pb_c_init, pb_c_base, vmin, vmax, node_visits, node_values,
          children_priors, node_values, children_priors[:, 0], node_visits, node_visits[:, 0], 0.0, 0.0)


@_kernel
def select_gumbel(first_sim, max_depth, value_scale, maxvisit_init, children_index,
                  children_prior_logits, children_priors, children_visits, children_values,
                  children_rewards, children_discounts, raw_values, children_virtual, node_virtual,
                  root_invalid, root_gumbel, table, num_considered, out_parent, out_action, out_leaf):
    """Select ``L`` leaves per tree as :func:`select_puct` does, with Gumbel MuZero's rules: Sequential
    Halving at the root (schedule ``table[num_considered[b]]``), deterministic selection below."""
    _walk(_GUMBEL, first_sim, max_depth, children_index, children_visits, children_values,
          children_rewards, children_discounts, children_priors, children_virtual, node_virtual,
          root_invalid, out_parent, out_action, out_leaf,
          0, 0.0, 1.0, 0.0, 1.0, children_visits[:, :, 0], raw_values,
          children_prior_logits, raw_values, root_gumbel, table, num_considered, value_scale,
          maxvisit_init)

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

