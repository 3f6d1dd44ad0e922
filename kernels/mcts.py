"""Batched Monte-Carlo tree search as arrays, compiled with numba; shaped like google-deepmind/mctx.

This module holds the arrays and the batched steps, as mctx's ``tree.py`` and
``action_selection.py`` do: the :class:`Tree` dataclass, :func:`init_tree` that allocates one and
:func:`grow_tree` that enlarges it, the selection kernels :func:`select_puct` and
:func:`select_gumbel`, :func:`expand_and_backup`, :func:`completed_qvalues` and the Sequential
Halving schedule :func:`considered_visits_table`. The search loop that spends the budget, and the
mctx-shaped policies ``muzero_policy`` and ``gumbel_muzero_policy`` (with ``RootFnOutput``,
``RecurrentFnOutput``, ``PolicyOutput``), live in :mod:`ponder.search.mcts_policies` (mctx's
``search.py`` and ``policies.py``)::

    until the budget is spent:                # ponder.search.mcts_policies.run_search
        grow_tree if a pass could run out of node slots
        select_puct | select_gumbel  # kernel: walk down every tree num_leaves times
        recurrent_fn                 # caller, for the leaves that need it: (reward, discount,
                                     #   prior_logits, value[, invalid_actions, is_terminal]), embeddings
        expand_and_backup            # kernel: write the new nodes, back values up (revisits too)

A batch of ``B`` independent trees is held in a :class:`Tree` of arrays with room for ``N`` nodes
per tree (the capacity). Node ``0`` is the root. Node slots are handed out in order by a per-tree
counter ``num_nodes[b]`` (1 after :func:`init_tree`): every simulation that evaluates the model
takes the next slot, and the slot becomes the new node when the simulation took an unexpanded
edge. A simulation that re-evaluates an existing node (at ``max_depth``, or a second leaf of one
pass on the same edge) leaves its slot empty, and a revisit of a terminal node (below) takes no
slot. Without terminal nodes, simulation ``s`` (counted from 0) therefore owns slot ``s + 1`` and a
search of ``S`` simulations fits in ``N = S + 1`` nodes, as in mctx. :func:`grow_tree` copies the
trees into larger arrays; nothing in the search depends on ``N``, so a grown tree holds the same
nodes as one allocated large from the start.

The search loop calls ``select_puct_blocks``, ``select_gumbel_blocks`` and
``expand_and_backup_blocks``: the same kernels with the tree passed as its few allocation blocks
(:func:`tree_blocks`) instead of one array per field, as each numba argument costs ~55 ns of
dispatch per call.

Everything is float64. :mod:`ponder.kernels.mcts_py` holds pure-Python twins of the kernels with
the same names and signatures (the reference semantics; the two give bit-identical trees; the
loop runs on them with ``backend="python"``). With the same root noise, and without interior masks
or terminal nodes (which mctx does not have), the trees equal those of ``mctx.muzero_policy`` /
``mctx.gumbel_muzero_policy`` run in float64 (tests/test_mcts.py checks both, live where mctx is
installed and against golden trees in tests/golden/ in every run).

Node statistics (the conventions of mctx):

* ``node_visits[b, n]`` counts the evaluations of node ``n`` itself (revisits included) plus every
  simulation through it, so the root of a finished search has ``S + 1`` visits.
* ``node_values[b, n]`` is the running **mean** of the values backed up through ``n`` (its own
  evaluation included); ``raw_values[b, n]`` is the model's value of ``n``.
* The value of edge ``(n, a)`` is ``Q(n, a) = r(n, a) + gamma(n, a) * node_values[b, child]``,
  held as ``children_rewards``, ``children_discounts`` and ``children_values`` (a copy of the child's
  mean). Backup from a leaf ``l`` with value ``v`` updates each ancestor ``p`` reached by ``a``::

      G <- r(p, a) + gamma(p, a) * G            (G starts at v)
      node_values[p] <- (node_values[p] * node_visits[p] + G) / (node_visits[p] + 1)

A simulation walks down until it takes an unexpanded edge, reaches a terminal node, or has taken
``max_depth`` edges; in the last case the existing child is evaluated again and its priors, raw
value, mean, mask and terminal flag are overwritten by the new evaluation (mctx's convention).

Invalid actions: ``children_invalid[b, n, a]`` is True where action ``a`` is illegal at node ``n``
(row 0 is the root mask, ``root_invalid_actions``; the other rows come from ``recurrent_fn``'s
optional ``invalid_actions [M, A]``, all valid when absent). Selection never takes an invalid
action at any node. At expansion the logits of invalid actions are stored as the lowest float64
(``finfo.min``), so ``children_priors`` is the softmax over the valid actions only.

Terminal nodes: ``terminal[b, n]`` is True for a node ``recurrent_fn`` flagged terminal (its
optional ``is_terminal [M]``: end of sequence, solved, failed) and for a dead end, a node whose
actions are all invalid (the root included). A terminal node never gets children, and the model
is never asked about it again. A walk that takes an edge ``(p, a)`` into a terminal node ``t``
stops there (before the ``max_depth`` test) and the simulation is a **revisit**: it does not
evaluate the model; it backs up the stored value of ``t`` as if the model had returned it again::

      node_visits[t] += 1,   node_values[t] <- raw_values[t],   G = raw_values[t]
      then the backup above from p, with the edge's stored r(p, a) and gamma(p, a)

(``t`` has no children, so the mean of its evaluations is its raw value.) The edge gains a visit
and every ancestor absorbs ``G``, so each simulation still adds exactly one visit to the root and to
every node on its path. When the root itself is terminal, every simulation is a revisit of the
root alone (``node_visits[0] += 1``, no edge is touched).

Action selection:

* ``muzero_policy`` (:func:`select_puct`) uses PUCT (MuZero, Appendix B) at every node::

      a* = argmax_{a valid}  Qn(s, a) + P(s, a) * sqrt(N(s)) / (1 + N(s, a)) * c(s)
      c(s) = pb_c_init + log((N(s) + pb_c_base + 1) / pb_c_base)

  ``Qn`` is the edge value normalised to ``[0, 1]``: ``qtransform="parent_and_siblings"`` (mctx's
  default ``qtransform_by_parent_and_siblings``) divides by the range of ``{V(s)} U {Q(s, a):
  visited}``; ``qtransform="min_max"`` (mctx's ``qtransform_by_min_max``) uses fixed
  ``value_bounds=(lo, hi)``. An unvisited child scores ``Qn = 0`` (the minimum), as in mctx.
  Ties go to the lowest action index (mctx adds ``1e-7 * uniform`` noise to break ties instead).
* ``gumbel_muzero_policy`` (:func:`select_gumbel`) follows Full Gumbel MuZero (Danihelka et al., 2022) as in mctx: at the
  root, Sequential Halving over the ``max_num_considered_actions`` actions with the highest
  ``g + logits``, choosing ``argmax g(a) + logits(a) + sigma(q(a))`` among the valid actions whose
  visit count equals the schedule's current ``considered_visits``; at interior nodes, the
  deterministic selection ``argmax_{a valid} pi'(a) - N(a) / (1 + sum_b N(b))`` with ``pi' =
  softmax(logits + sigma(q))``, evaluated as ``P(a) exp(sigma(a) - max sigma) / Z`` from the stored
  priors (equal up to rounding; one exp per visited action, as the unvisited ones share the same
  sigma). ``sigma(q) = (maxvisit_init + max_b N(b)) * value_scale * q_rescaled`` uses the completed
  Q-values: unvisited actions get the mixed value of Appendix D, then all are rescaled to
  ``[0, 1]`` (mctx's ``qtransform_completed_by_mix_value``).

  Should no action qualify (only with NaN scores, or a root row no schedule entry matches), the
  lowest valid action is taken, never an invalid one.

Several leaves per tree in one pass (``num_leaves > 1``): leaf ``j`` of a pass is selected after the
paths of leaves ``0 .. j-1`` received a virtual visit on every edge. A virtual visit counts in
``N(s)`` and ``N(s, a)`` of the selection rule and, for PUCT with ``virtual="loss"`` (the default),
as a visit of normalised value 0 (the worst): ``Qn_eff = Qn * n / (n + v)``; with
``virtual="visit"`` it leaves ``Qn`` as it is and only lowers the exploration term (the pending
visits of WU-UCT), so the pass's leaves spread less and go deeper. ``q_code = QTRANSFORMS[q] +
VIRTUALS[v]``. Two leaves of one pass that reach the same unexpanded edge
are both evaluated; the later one re-evaluates the node the earlier one created (as mctx does for a
leaf at ``max_depth``; its mask and terminal flag are not known before the pass ends). Each leaf's
backup removes its virtual visits. With ``num_leaves = 1`` the search is exactly sequential MCTS.
:func:`release_leaves` takes leaves of a pass back without a backup: their virtual visits are
removed and they use no slot (the search loop's ``fill`` does so with leaves that met a pending
edge: they add nothing but their virtual visits, which steer the rest of the pass elsewhere).

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
VIRTUALS = {"loss": 0, "visit": 2}  # added to q_code: what a virtual visit does to PUCT's value term
_TINY = float(np.finfo(np.float64).tiny)
_LOW_LOGIT = -1e9  # floor of the Gumbel root score, as in mctx's seq_halving.score_considered
_EPSILON = 1e-8  # smallest denominator when rescaling Q-values
_MIN_LOGIT = float(np.finfo(np.float64).min)  # stored logit of an invalid action below the root


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
    """A batch of search trees as arrays with room for ``N`` nodes each; node 0 is the root.

    Attributes:
        node_visits: ``[B, N]`` int32 visit counts (own evaluations and revisits included).
        raw_values: ``[B, N]`` model value of each node.
        node_values: ``[B, N]`` running mean of the values backed up through each node.
        parents: ``[B, N]`` int32 parent index (-1 for the root and unused nodes).
        action_from_parent: ``[B, N]`` int32 action leading from the parent (-1 likewise).
        children_index: ``[B, N, A]`` int32 child node index, -1 while unexpanded.
        children_prior_logits: ``[B, N, A]`` policy logits at each node (``finfo.min`` where invalid).
        children_priors: ``[B, N, A]`` ``softmax(children_prior_logits)``.
        children_visits: ``[B, N, A]`` int32 visit counts of the edges.
        children_rewards: ``[B, N, A]`` reward of each edge.
        children_discounts: ``[B, N, A]`` discount of each edge.
        children_values: ``[B, N, A]`` ``node_values`` of the child, copied at backup.
        children_invalid: ``[B, N, A]`` bool, True where an action is invalid at a node (row 0: the root).
        terminal: ``[B, N]`` bool, True for terminal nodes (flagged by the model, or all actions invalid).
        num_nodes: ``[B]`` int32 node slots in use (the index the next new node gets), 1 for a bare root.
        embeddings: ``[B, N, ...]`` state of each node as returned by the model.
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
    children_invalid: np.ndarray  # [B, N, A] bool
    terminal: np.ndarray  # [B, N] bool
    num_nodes: np.ndarray  # [B] int32
    embeddings: np.ndarray  # [B, N, ...]
    extra_data: dict = dataclasses.field(default_factory=dict)

    ROOT_INDEX = ROOT_INDEX
    NO_PARENT = NO_PARENT
    UNVISITED = UNVISITED

    @property
    def num_actions(self) -> int:
        return self.children_index.shape[-1]

    @property
    def capacity(self) -> int:
        """``N``, the node slots allocated per tree."""
        return self.node_visits.shape[-1]

    @property
    def num_simulations(self) -> int:
        """``N - 1``: the simulations that fit without growing when none is a revisit (mctx's name)."""
        return self.node_visits.shape[-1] - 1

    @property
    def root_invalid_actions(self) -> np.ndarray:
        """``[B, A]`` bool root mask: a view of ``children_invalid[:, 0]``."""
        return self.children_invalid[:, ROOT_INDEX]

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


def _allocate(B: int, N: int, A: int, emb_shape: tuple, emb_dtype, extra_data: dict):
    """Empty trees of ``N`` nodes: ``(tree, children_virtual [B, N, A], node_virtual [B, N])``.

    Five blocks hold all the ``[B, N, A]`` and ``[B, N]`` arrays (fields are views into them): float
    and int32 blocks per shape, and one bool block for the masks and terminal flags. A few large
    blocks are reused by the allocator from search to search, where a dozen separate ones are
    returned to the OS and page-faulted back in (~2 us per 4 KiB page on a VM).
    """
    edge_f = np.zeros((5, B, N, A))  # prior logits, priors, rewards, discounts, values
    edge_i = np.zeros((3, B, N, A), np.int32)  # index, visits, virtual visits of the pass
    edge_i[0].fill(UNVISITED)
    node_f = np.zeros((2, B, N))  # raw values, mean values
    node_i = np.zeros((4, B, N), np.int32)  # visits, parents, actions from parent, virtual visits
    node_i[1:3].fill(NO_PARENT)
    flags = np.zeros(B * N * (A + 1), np.bool_)  # children_invalid [B, N, A], then terminal [B, N]
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
        children_invalid=flags[: B * N * A].reshape(B, N, A),
        terminal=flags[B * N * A:].reshape(B, N),
        num_nodes=np.ones(B, np.int32),
        embeddings=np.zeros((B, N) + tuple(emb_shape), emb_dtype),
        extra_data=extra_data,
    )
    # the blocks, for the *_blocks kernels (not a field: the dataclass stays mctx's Tree)
    blocks = (edge_f, edge_i, node_f, node_i, tree.children_invalid, tree.terminal)
    object.__setattr__(tree, "_blocks", blocks)
    return tree, edge_i[2], node_i[3]


def tree_blocks(tree: Tree) -> tuple:
    """The allocation blocks of a tree from :func:`init_tree` or :func:`grow_tree`, for the
    ``*_blocks`` kernels (one numba argument per block instead of one per field, ~55 ns each per
    call): ``(edge_f, edge_i, node_f, node_i, children_invalid, terminal)`` with

    * ``edge_f [5, B, N, A]``: prior logits, priors, rewards, discounts, values;
    * ``edge_i [3, B, N, A]`` int32: index, visits, virtual visits (``children_virtual``);
    * ``node_f [2, B, N]``: raw values, mean values;
    * ``node_i [4, B, N]`` int32: visits, parents, actions from parent, virtual visits (``node_virtual``).

    The tree's fields are views into them. Raises ValueError for a tree that does not share them (one
    built otherwise, or a copy).
    """
    blocks = tree.__dict__.get("_blocks")
    if (blocks is None or tree.children_prior_logits.base is not blocks[0]
            or tree.children_values.base is not blocks[0] or tree.children_index.base is not blocks[1]
            or tree.raw_values.base is not blocks[2] or tree.node_visits.base is not blocks[3]
            or tree.children_invalid is not blocks[4] or tree.terminal is not blocks[5]):
        raise ValueError("tree_blocks needs a tree from init_tree or grow_tree (not a copy)")
    return blocks


def init_tree(logits, value, embedding, invalid, capacity: int, *,
              extra_data: dict | None = None) -> tuple[Tree, np.ndarray, np.ndarray]:
    """Allocate ``B`` trees of ``N = capacity`` node slots and fill their roots.

    A search of ``S`` simulations without terminal nodes needs ``capacity = S + 1``; a smaller tree
    can be enlarged between passes with :func:`grow_tree`. A root whose actions are all invalid is
    terminal (a dead end).

    Args:
        logits: ``[B, A]`` float64 root prior logits (already noised and masked by the policy).
        value: ``[B]`` float64 root values.
        embedding: ``[B, ...]`` root embeddings (any dtype; the tree keeps one row per node).
        invalid: ``[B, A]`` bool, True where an action is invalid at the root.
        capacity: ``N >= 1``, node slots per tree.
        extra_data: stored as ``tree.extra_data`` (a new dict if None).

    Returns:
        ``(tree, children_virtual [B, N, A] int32, node_virtual [B, N] int32)``: the virtual-visit
        counters of the pass in flight, which the selection kernels and expand_and_backup share.
    """
    N = int(capacity)
    if N < 1 or N != capacity:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    B, A = logits.shape
    tree, children_virtual, node_virtual = _allocate(
        B, N, A, embedding.shape[1:], embedding.dtype, {} if extra_data is None else extra_data)
    tree.node_visits[:, ROOT_INDEX] = 1
    tree.raw_values[:, ROOT_INDEX] = value
    tree.node_values[:, ROOT_INDEX] = value
    tree.children_prior_logits[:, ROOT_INDEX] = logits
    tree.children_priors[:, ROOT_INDEX] = softmax(logits)
    tree.children_invalid[:, ROOT_INDEX] = invalid
    tree.terminal[:, ROOT_INDEX] = np.all(invalid, axis=-1)
    tree.embeddings[:, ROOT_INDEX] = embedding
    return tree, children_virtual, node_virtual


_TREE_ARRAYS = ("node_visits", "raw_values", "node_values", "parents", "action_from_parent",
                "children_index", "children_prior_logits", "children_priors", "children_visits",
                "children_rewards", "children_discounts", "children_values", "children_invalid",
                "terminal", "embeddings")  # the per-node fields, [B, N, ...]


def grow_tree(tree: Tree, children_virtual, node_virtual,
              capacity: int) -> tuple[Tree, np.ndarray, np.ndarray]:
    """Copy ``tree`` (and the virtual-visit counters) into new arrays of ``capacity >= N`` node slots.

    Node ``n < N`` keeps its index and contents; slots ``N ..`` are empty, as :func:`init_tree`
    leaves them. ``num_nodes`` and ``extra_data`` (the same dict) carry over. Returns ``(tree,
    children_virtual [B, capacity, A], node_virtual [B, capacity])``; the old arrays are not touched.
    """
    B, N = tree.node_visits.shape
    new_n = int(capacity)
    if new_n < N or new_n != capacity:
        raise ValueError(f"capacity must be an int >= the tree's {N} nodes, got {capacity!r}")
    new, new_cv, new_nv = _allocate(B, new_n, tree.num_actions, tree.embeddings.shape[2:],
                                    tree.embeddings.dtype, tree.extra_data)
    for name in _TREE_ARRAYS:
        getattr(new, name)[:, :N] = getattr(tree, name)
    new.num_nodes[:] = tree.num_nodes
    new_cv[:, :N] = children_virtual
    new_nv[:, :N] = node_virtual
    return new, new_cv, new_nv


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
    _softmax_shifted_into(x, m, out)


@_inline
def _softmax_shifted_into(x, m, out):
    """``out = softmax(x)`` for one row given ``m = max(x)`` (the first of :func:`_softmax_into`'s
    loops, fused into the caller's)."""
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
def _first_valid(invalid):
    """The lowest valid action of one node (a non-terminal node has one): the fallback of the rules."""
    for a in range(invalid.shape[0]):
        if not invalid[a]:
            return a
    return 0


@_inline
def _puct_action(q_code, pb_c_init, pb_c_base, vmin, vmax, priors, visits, values,
                 rewards, discounts, node_visit, node_value, virtual, node_virtual, invalid):
    """``argmax_{a valid} Qn_eff(a) + P(a) sqrt(N) c / (1 + n(a) + v(a))`` at one node.

    Tried and not kept (muzero_policy B=64 S=64 A=16, walks ~8 nodes deep): the scores computed
    without branches into a scratch row, then the argmax (LLVM vectorises it): ~1.4x slower
    searches; ``sqrt(N) c(N)`` from a table built once per call: no gain; the same table with a
    fallback for large ``N``: ~1.4x slower."""
    A = visits.shape[0]
    n_parent = node_visit + node_virtual
    pb_c = pb_c_init + math.log((n_parent + pb_c_base + 1.0) / pb_c_base)
    explore = math.sqrt(n_parent) * pb_c
    if q_code % 2 == 0:  # parent_and_siblings: range of {V(s)} U {Q(s, a) : visited}
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
    loss = q_code < 2  # virtual="loss"
    best = -np.inf
    best_a = -1
    for a in range(A):
        if invalid[a]:
            continue
        n = visits[a]
        v = virtual[a]
        value_score = 0.0
        if n > 0:
            q = rewards[a] + discounts[a] * values[a]
            value_score = (q - lo) / denom
            if v > 0 and loss:
                value_score = value_score * n / (n + v)  # virtual visits count as value 0
        score = value_score + explore * priors[a] / (n + v + 1)
        if score > best:
            best = score
            best_a = a
    if best_a < 0:
        return _first_valid(invalid)
    return best_a


@_inline
def _sigma_stats(visits, priors, values, rewards, discounts, raw_value, value_scale, maxvisit_init,
                 qs):
    """The numbers :func:`_completed_q` computes at one node, in two passes over the actions instead
    of four: writes ``qs[a] = Q(a)`` for the visited actions (the other entries are left as they are)
    and returns ``(lo, denom, scale, sigma_u, n_visited, sum_visits)``, so that ``sigma(a) = scale *
    ((Q(a) - lo) / denom)`` if visited and ``sigma_u`` (the mixed value's) if not. The same floats
    as :func:`_completed_q`: the sums run in the same order; ``lo``, ``hi`` are the minimum and
    maximum of the same values (``min``/``max`` skip NaN from an infinite start whatever the order).

    Tried and not kept (gumbel_muzero_policy B=64 S=64 A=16, interleaved A/B, 2026-12-08): the
    first loop without branches (selects instead): no gain; both loops so: ~5% slower searches
    (a division per action); a sixth edge row holding ``Q = r + gamma v``, kept by the backup, so
    that this reads one row instead of three: ~4% slower (muzero ~1%); the virtual-visit sums of
    the Gumbel rules read from ``node_virtual`` instead of summed: no gain.
    """
    A = visits.shape[0]
    sum_visits = 0
    max_visits = 0
    n_visited = 0
    sum_probs = 0.0
    for a in range(A):
        n = visits[a]
        sum_visits += n
        if n > max_visits:
            max_visits = n
        if n > 0:
            sum_probs += max(_TINY, priors[a])
            n_visited += 1
    weighted_q = 0.0
    lo = np.inf
    hi = -np.inf
    for a in range(A):
        if visits[a] > 0:
            q = rewards[a] + discounts[a] * values[a]
            qs[a] = q
            weighted_q += max(_TINY, priors[a]) * q / sum_probs
            lo = min(lo, q)
            hi = max(hi, q)
    mixed = (raw_value + sum_visits * weighted_q) / (sum_visits + 1)
    if n_visited < A:
        lo = min(lo, mixed)
        hi = max(hi, mixed)
    denom = max(hi - lo, _EPSILON)
    scale = (maxvisit_init + max_visits) * value_scale
    sigma_u = scale * ((mixed - lo) / denom)
    return lo, denom, scale, sigma_u, n_visited, sum_visits


@_inline
def _gumbel_root_action(logits, priors, visits, values, rewards, discounts, raw_value, virtual,
                        invalid, gumbel, considered_row, value_scale, maxvisit_init, scratch):
    """Sequential Halving with Gumbel: the best ``g + logits + sigma(q)`` among the valid actions whose
    visit count (virtual included) equals ``considered_row[simulation index]``. ``sigma`` is computed
    only for those actions (:func:`_sigma_stats`; the same floats as :func:`_completed_q`)."""
    A = visits.shape[0]
    lo, denom, scale, sigma_u, n_visited, sum_visits = _sigma_stats(
        visits, priors, values, rewards, discounts, raw_value, value_scale, maxvisit_init, scratch)
    sim = sum_visits
    max_logit = -np.inf
    for a in range(A):
        sim += virtual[a]
        max_logit = max(max_logit, logits[a])
    considered = considered_row[sim]
    best = -np.inf
    best_a = -1
    for a in range(A):
        if invalid[a] or visits[a] + virtual[a] != considered:
            continue
        sigma = scale * ((scratch[a] - lo) / denom) if visits[a] > 0 else sigma_u
        score = max(_LOW_LOGIT, gumbel[a] + (logits[a] - max_logit) + sigma)
        if score > best:
            best = score
            best_a = a
    if best_a < 0:
        return _first_valid(invalid)
    return best_a


@_inline
def _gumbel_interior_action(priors, visits, values, rewards, discounts, raw_value, virtual, invalid,
                            value_scale, maxvisit_init, sigma):
    """``argmax_{a valid} pi'(a) - n(a) / (1 + sum_b n(b))`` (virtual visits in n), ``pi' =
    softmax(logits + sigma)`` computed from the stored priors (see :func:`_gumbel_interior_probs`)."""
    A = visits.shape[0]
    total = 0
    for a in range(A):  # (summed in _sigma_stats's first loop instead, selection was ~12% slower)
        total += virtual[a]
    z, u, sum_visits = _gumbel_interior_probs(priors, visits, values, rewards, discounts, raw_value,
                                              value_scale, maxvisit_init, sigma)
    total += sum_visits
    # The argmax over all actions is the argmax over the valid ones whenever it is valid (first
    # index among ties in both); only then is the mask read per action. Reading it in this loop
    # costs ~10% of a Gumbel selection (not so in PUCT's loop, where a second copy costs more).
    best_a = _gumbel_interior_argmax(False, z, u, total, priors, visits, virtual, invalid, sigma)
    if best_a < 0 or invalid[best_a]:
        best_a = _gumbel_interior_argmax(True, z, u, total, priors, visits, virtual, invalid, sigma)
        if best_a < 0:
            return _first_valid(invalid)
    return best_a


@_inline
def _gumbel_interior_argmax(masked, z, u, total, priors, visits, virtual, invalid, sigma):
    """First ``a`` (valid, when ``masked``) of the largest ``pi'(a) - n(a) / (1 + total)``; -1 when
    none beats -inf."""
    best = -np.inf
    best_a = -1
    for a in range(visits.shape[0]):
        if masked and invalid[a]:
            continue
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
    ``weights[a] = P(a) w(a)`` for visited actions and returns ``(Z, u, sum_b N(b))`` with ``Z = (sum
    over visited of P(a) w(a)) + w_u * (sum over unvisited of P(a))`` (each sum left to right) and
    ``u = w_u / Z``: ``pi'(a) = weights[a] / Z`` if visited, ``P(a) * u`` if not.
    """
    A = visits.shape[0]
    lo, denom, scale, sigma_u, n_visited, sum_visits = _sigma_stats(
        visits, priors, values, rewards, discounts, raw_value, value_scale, maxvisit_init, weights)
    # max_b sigma(b), skipping NaN as _completed_q does; sigma_u is that of every unvisited action.
    # (top = sigma(hi), exact for scale > 0 as sigma is monotone, saves this loop: ~1%, not kept.)
    top = -np.inf
    if n_visited < A and sigma_u > top:
        top = sigma_u
    for a in range(A):
        if visits[a] > 0:
            s = scale * ((weights[a] - lo) / denom)
            weights[a] = s
            if s > top:
                top = s
    z = 0.0
    mass_u = 0.0
    for a in range(A):
        if visits[a] > 0:
            weights[a] = priors[a] * math.exp(weights[a] - top)
            z += weights[a]
        else:
            mass_u += priors[a]
    if n_visited == A:
        return z, 0.0, sum_visits
    w_u = math.exp(sigma_u - top)
    z = z + w_u * mass_u
    return z, w_u / z, sum_visits


@_inline
def _edge_leaf(node, a, slot, pend_parent, pend_action, pend_node, n_pend):
    """The leaf index for unexpanded edge ``(node, a)``: the node an earlier leaf of this pass
    reserved for the same edge, or the new index ``slot``. Returns ``(leaf, n_pend)``."""
    for p in range(n_pend):
        if pend_parent[p] == node and pend_action[p] == a:
            return pend_node[p], n_pend
    pend_parent[n_pend] = node
    pend_action[n_pend] = a
    pend_node[n_pend] = slot
    return slot, n_pend + 1


_PUCT = 0  # action rule of _walk: PUCT at every node
_GUMBEL = 1  # action rule of _walk: Sequential Halving at the root, deterministic below


@_inline
def _walk(rule, max_depth, children_index, children_visits, children_values, children_rewards,
          children_discounts, children_priors, children_invalid, terminal, num_nodes,
          children_virtual, node_virtual, out_parent, out_action, out_leaf, out_eval,
          puct_consts, node_visits, node_values, children_prior_logits, raw_values, root_gumbel,
          table, num_considered, gumbel_consts):
    """The tree walk shared by both selection kernels; ``rule`` (``_PUCT`` or ``_GUMBEL``, a constant
    at each call site, so the compiler drops the other branch) picks the action at each node. The
    arguments after ``out_eval`` are those of one rule (``puct_consts = (q_code, pb_c_init,
    pb_c_base, vmin, vmax)``, ``gumbel_consts = (value_scale, maxvisit_init)``); the other rule's
    are unused. Returns the number of leaves that need the model. (At most 30 arguments: Python
    passes more as ``*args``, which numba cannot inline.)"""
    q_code, pb_c_init, pb_c_base, vmin, vmax = puct_consts
    value_scale, maxvisit_init = gumbel_consts
    B, L = out_parent.shape
    A = children_visits.shape[2]
    scratch = np.empty(A)
    pend_parent = np.empty(L, np.int64)
    pend_action = np.empty(L, np.int64)
    pend_node = np.empty(L, np.int64)
    total = 0
    for b in range(B):
        n_pend = 0
        slot = num_nodes[b]  # the next free node slot of tree b
        if terminal[b, 0]:  # a terminal root: every leaf revisits it
            for j in range(L):
                out_parent[b, j] = NO_PARENT
                out_action[b, j] = UNVISITED
                out_leaf[b, j] = ROOT_INDEX
                out_eval[b, j] = False
            continue
        for j in range(L):
            node = 0
            depth = 0
            while True:
                if rule == _PUCT:
                    a = _puct_action(q_code, pb_c_init, pb_c_base, vmin, vmax,
                                     children_priors[b, node], children_visits[b, node],
                                     children_values[b, node], children_rewards[b, node],
                                     children_discounts[b, node], node_visits[b, node],
                                     node_values[b, node], children_virtual[b, node],
                                     node_virtual[b, node], children_invalid[b, node])
                elif depth == 0:
                    a = _gumbel_root_action(children_prior_logits[b, 0], children_priors[b, 0],
                                            children_visits[b, 0], children_values[b, 0],
                                            children_rewards[b, 0], children_discounts[b, 0],
                                            raw_values[b, 0], children_virtual[b, 0],
                                            children_invalid[b, 0], root_gumbel[b],
                                            table[num_considered[b]], value_scale, maxvisit_init,
                                            scratch)
                else:
                    a = _gumbel_interior_action(children_priors[b, node], children_visits[b, node],
                                                children_values[b, node], children_rewards[b, node],
                                                children_discounts[b, node], raw_values[b, node],
                                                children_virtual[b, node], children_invalid[b, node],
                                                value_scale, maxvisit_init, scratch)
                children_virtual[b, node, a] += 1
                node_virtual[b, node] += 1
                depth += 1
                child = children_index[b, node, a]
                if child == UNVISITED:
                    child, n_pend = _edge_leaf(node, a, slot, pend_parent, pend_action, pend_node, n_pend)
                    evaluate = True
                    break
                if terminal[b, child]:
                    evaluate = False
                    break
                if depth >= max_depth:
                    evaluate = True
                    break
                node = child
            out_parent[b, j] = node
            out_action[b, j] = a
            out_leaf[b, j] = child
            out_eval[b, j] = evaluate
            if evaluate:
                slot += 1
                total += 1
    return total


@_kernel
def select_puct(q_code, max_depth, pb_c_init, pb_c_base, vmin, vmax, children_index,
                children_priors, children_visits, children_values, children_rewards,
                children_discounts, children_invalid, node_visits, node_values, terminal, num_nodes,
                children_virtual, node_virtual, out_parent, out_action, out_leaf, out_eval):
    """Select ``L = out_parent.shape[1]`` leaves in each of the ``B`` trees by PUCT; returns ``M``,
    the number of leaves that need the model.

    Leaf ``j`` walks down from the root until it takes an unexpanded edge, reaches a terminal node
    or has taken ``max_depth`` edges, adding a virtual visit to every edge it takes; it never takes
    an action of ``children_invalid``. Writes ``out_parent[b, j]``, ``out_action[b, j]`` (the edge
    taken last), ``out_leaf[b, j]`` and ``out_eval[b, j]``: for an unexpanded edge the node reserved
    by an earlier leaf of this pass for the same edge or else the next free slot (``num_nodes[b]``
    plus the earlier leaves of tree ``b`` that need the model), with ``out_eval`` True; the existing
    child at ``max_depth``, True; a terminal child, False (a revisit). When the root is terminal,
    every leaf is ``(NO_PARENT, UNVISITED, ROOT_INDEX, False)``. ``num_nodes`` is not changed.
    """
    return _walk(_PUCT, max_depth, children_index, children_visits, children_values,
                 children_rewards, children_discounts, children_priors, children_invalid, terminal,
                 num_nodes, children_virtual, node_virtual, out_parent, out_action, out_leaf, out_eval,
                 (q_code, pb_c_init, pb_c_base, vmin, vmax), node_visits, node_values,
                 children_priors, node_values, children_priors[:, 0], node_visits, node_visits[:, 0],
                 (0.0, 0.0))


@_kernel
def select_gumbel(max_depth, value_scale, maxvisit_init, children_index, children_prior_logits,
                  children_priors, children_visits, children_values, children_rewards,
                  children_discounts, children_invalid, raw_values, terminal, num_nodes,
                  children_virtual, node_virtual, root_gumbel, table, num_considered,
                  out_parent, out_action, out_leaf, out_eval):
    """Select ``L`` leaves per tree as :func:`select_puct` does, with Gumbel MuZero's rules: Sequential
    Halving at the root (schedule ``table[num_considered[b]]``), deterministic selection below.
    Returns ``M``, the number of leaves that need the model."""
    return _walk(_GUMBEL, max_depth, children_index, children_visits, children_values,
                 children_rewards, children_discounts, children_priors, children_invalid, terminal,
                 num_nodes, children_virtual, node_virtual, out_parent, out_action, out_leaf, out_eval,
                 (0, 0.0, 1.0, 0.0, 1.0), children_visits[:, :, 0], raw_values,
                 children_prior_logits, raw_values, root_gumbel, table, num_considered,
                 (value_scale, maxvisit_init))


@_kernel
def select_puct_blocks(q_code, max_depth, pb_c_init, pb_c_base, vmin, vmax, edge_f, edge_i, node_f,
                       node_i, children_invalid, terminal, num_nodes, out_parent, out_action, out_leaf,
                       out_eval):
    """:func:`select_puct` on the tree's allocation blocks (:func:`tree_blocks`)."""
    return _walk(_PUCT, max_depth, edge_i[0], edge_i[1], edge_f[4], edge_f[2], edge_f[3], edge_f[1],
                 children_invalid, terminal, num_nodes, edge_i[2], node_i[3], out_parent, out_action,
                 out_leaf, out_eval, (q_code, pb_c_init, pb_c_base, vmin, vmax), node_i[0], node_f[1],
                 edge_f[1], node_f[1], edge_f[1, :, 0], node_i[0], node_i[0, :, 0], (0.0, 0.0))


@_kernel
def select_gumbel_blocks(max_depth, value_scale, maxvisit_init, edge_f, edge_i, node_f, node_i,
                         children_invalid, terminal, num_nodes, root_gumbel, table, num_considered,
                         out_parent, out_action, out_leaf, out_eval):
    """:func:`select_gumbel` on the tree's allocation blocks (:func:`tree_blocks`)."""
    return _walk(_GUMBEL, max_depth, edge_i[0], edge_i[1], edge_f[4], edge_f[2], edge_f[3], edge_f[1],
                 children_invalid, terminal, num_nodes, edge_i[2], node_i[3], out_parent, out_action,
                 out_leaf, out_eval, (0, 0.0, 1.0, 0.0, 1.0), edge_i[1, :, :, 0], node_f[0], edge_f[0],
                 node_f[0], root_gumbel, table, num_considered, (value_scale, maxvisit_init))


@_kernel
def expand_and_backup_blocks(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                             invalid_actions, is_terminal, edge_f, edge_i, node_f, node_i,
                             children_invalid, terminal, num_nodes):
    """:func:`expand_and_backup` on the tree's allocation blocks (:func:`tree_blocks`)."""
    _expand_and_backup(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                       invalid_actions, is_terminal, edge_i[0], edge_f[0], edge_f[1], edge_i[1],
                       edge_f[4], edge_f[2], edge_f[3], children_invalid, node_i[0], node_f[1],
                       node_f[0], node_i[1], node_i[2], terminal, num_nodes, edge_i[2], node_i[3])


@_kernel
def expand_and_backup(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                      invalid_actions, is_terminal, children_index, children_prior_logits,
                      children_priors, children_visits, children_values, children_rewards,
                      children_discounts, children_invalid, node_visits, node_values, raw_values,
                      parents, action_from_parent, terminal, num_nodes, children_virtual, node_virtual):
    """For each tree ``b`` and leaf ``j`` in order: write the evaluated node (or revisit a terminal
    one), then back its value up.

    ``parent, action, leaf, evaluate`` are ``[B, L]`` from the selection kernel. The model outputs
    ``reward, discount, value [M]``, ``prior_logits [M, A]``, ``invalid_actions [M, A]`` bool and
    ``is_terminal [M]`` bool hold one item per leaf with ``evaluate`` True, tree-major (leaf order
    within a tree); ``invalid_actions`` with 0 rows means all valid, ``is_terminal`` with 0 rows
    none terminal. Expansion sets the node's logits (``finfo.min`` where invalid), priors, raw and
    mean value, mask, terminal flag (flagged, or all actions invalid), visit += 1, and the edge's
    child, reward and discount. A revisit (``evaluate`` False) sets the node's mean to its raw value,
    visit += 1, and backs up the raw value. Backup walks to the root: ``G <- r + gamma G``; the
    parent's mean absorbs ``G``; the edge copies the child's mean and gains a visit; the leaf's
    virtual visits are removed. ``num_nodes[b]`` grows by the leaves of tree ``b`` that were evaluated.
    """
    _expand_and_backup(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                       invalid_actions, is_terminal, children_index, children_prior_logits,
                       children_priors, children_visits, children_values, children_rewards,
                       children_discounts, children_invalid, node_visits, node_values, raw_values,
                       parents, action_from_parent, terminal, num_nodes, children_virtual, node_virtual)


@_inline
def _expand_and_backup(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                       invalid_actions, is_terminal, children_index, children_prior_logits,
                       children_priors, children_visits, children_values, children_rewards,
                       children_discounts, children_invalid, node_visits, node_values, raw_values,
                       parents, action_from_parent, terminal, num_nodes, children_virtual, node_virtual):
    """The body of :func:`expand_and_backup` (and of :func:`expand_and_backup_blocks`)."""
    B, L = parent.shape
    A = children_visits.shape[2]
    masked = invalid_actions.shape[0] > 0
    flagged = is_terminal.shape[0] > 0
    item = 0
    for b in range(B):
        new_nodes = 0
        for j in range(L):
            node = leaf[b, j]
            if evaluate[b, j]:
                p = parent[b, j]
                a = action[b, j]
                # expand
                reevaluated = node_visits[b, node] > 0
                node_visits[b, node] += 1
                top = -np.inf  # max of the stored logits, for the softmax
                if masked:
                    dead = True
                    for i in range(A):
                        bad = invalid_actions[item, i]
                        children_invalid[b, node, i] = bad
                        x = _MIN_LOGIT if bad else prior_logits[item, i]
                        children_prior_logits[b, node, i] = x
                        if x > top:
                            top = x
                        dead = dead and bad
                else:
                    dead = False
                    for i in range(A):
                        x = prior_logits[item, i]
                        children_prior_logits[b, node, i] = x
                        if x > top:
                            top = x
                    if reevaluated:  # clear the old mask (new slots are clear)
                        for i in range(A):
                            children_invalid[b, node, i] = False
                terminal[b, node] = dead or (flagged and is_terminal[item])
                _softmax_shifted_into(children_prior_logits[b, node], top, children_priors[b, node])
                raw_values[b, node] = value[item]
                node_values[b, node] = value[item]
                children_index[b, p, a] = node
                children_rewards[b, p, a] = reward[item]
                children_discounts[b, p, a] = discount[item]
                parents[b, node] = p
                action_from_parent[b, node] = a
                new_nodes += 1
                item += 1
            else:  # revisit of a terminal node: its stored value once more
                node_visits[b, node] += 1
                node_values[b, node] = raw_values[b, node]
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
        num_nodes[b] += new_nodes


@_kernel
def release_leaves(parent, action, first, parents, action_from_parent, children_virtual, node_virtual):
    """Take back leaves ``first .. L - 1`` of each tree's pass without backing them up: remove the
    virtual visit they left on every edge of their path (``parent, action [B, L]`` as the
    selection kernel wrote them; the path above ``parent`` is read from the tree). A leaf of a
    terminal root (``NO_PARENT``) left none."""
    B, L = parent.shape
    for b in range(B):
        for j in range(first, L):
            node = parent[b, j]
            if node == NO_PARENT:
                continue
            children_virtual[b, node, action[b, j]] -= 1
            node_virtual[b, node] -= 1
            while node != ROOT_INDEX:
                up = parents[b, node]
                children_virtual[b, up, action_from_parent[b, node]] -= 1
                node_virtual[b, up] -= 1
                node = up


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

