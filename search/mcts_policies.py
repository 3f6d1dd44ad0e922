"""The MCTS search loop and the mctx-shaped policies, on the batched steps of :mod:`ponder.kernels.mcts`.

As google-deepmind/mctx splits ``search.py`` (the loop) and ``policies.py`` (the public entry points)
from ``tree.py`` and ``action_selection.py``, this module holds what spends a budget:
:func:`run_search` (allocate the trees, then repeat select / evaluate / expand-and-backup) and the
two policies :func:`muzero_policy` (PUCT) and :func:`gumbel_muzero_policy` (Full Gumbel MuZero) with
their data types. The arrays, the selection rules and their maths (per-node masks, terminal nodes
and revisits, node slots) are in :mod:`ponder.kernels.mcts`::

    tree = init_tree(root, capacity)                      # kernels.mcts.init_tree
    for each pass of k = min(num_leaves, S - done) leaves (k = num_leaves when S is None):
        if should_stop() returns a reason: stop           # the budget check, before each pass
        grow_tree if num_nodes + k could exceed the capacity   # doubling
        select_puct | select_gumbel                       # kernel: k leaves per tree, M need the model
        with fill: leaf by leaf; free ones backed up at once, num_leaves costly ones held for the model
        if M > 0: recurrent_fn(params, rng, actions [M], embeddings [M, ...])   # the caller's model
        expand_and_backup                                 # kernel: write the nodes, back values up
        progress(done)

Only the leaves that need the model reach ``recurrent_fn``: a leaf that reached a terminal node is
a revisit, backed up from the stored values, so ``M <= B * k`` and a pass of revisits only does not
call it at all. The model marks states with the optional ``RecurrentFnOutput.invalid_actions [M,
A]`` and ``RecurrentFnOutput.is_terminal [M]``.

``backend="numba"`` runs the compiled kernels, ``backend="python"`` their pure-Python twins
(:mod:`ponder.kernels.mcts_py`); the trees are bit-identical. This module imports only numpy and
ponder.kernels (no torch, no models, no verifiers).

Stopping early: when ``should_stop()`` returns a reason (a string), the loop returns the tree built so
far, ``tree.extra_data["num_simulations_done"]`` simulations per tree (``S`` when it ran to the end)
and ``tree.extra_data["stop_reason"]`` (None when it ran to the end). The policies then act on that
tree as on a finished one. ``muzero_policy(..., num_simulations=None)`` runs until ``should_stop``
returns a reason (an open-ended budget of tokens, tool calls or time); the tree grows as it needs
(``capacity`` is only its first size). Gumbel MuZero needs ``S``: its Sequential Halving schedule
is laid out over ``S`` simulations.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from ponder.kernels import mcts as kernels_mcts
from ponder.kernels.mcts import (
    QTRANSFORMS,
    ROOT_INDEX,
    VIRTUALS,
    SearchSummary,
    Tree,
    cached_considered_visits_table,
    considered_visits_table,
    grow_tree,
    init_tree,
    softmax,
    tree_blocks,
)

__all__ = [
    "RootFnOutput", "RecurrentFnOutput", "PolicyOutput", "SearchSummary", "Tree", "muzero_policy",
    "gumbel_muzero_policy", "run_search", "considered_visits_table",
]

_TINY = float(np.finfo(np.float64).tiny)
_LOW_LOGIT = -1e9  # floor of the Gumbel root score, as in mctx's seq_halving.score_considered
OPEN_CAPACITY = 64  # first node capacity per tree of an open-ended search (num_simulations=None)
_NO_DEPTH_CAP = 2**31 - 1  # max_depth of an open-ended search without one


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


@dataclasses.dataclass(frozen=True, slots=True)  # slots: built once per pass, ~30% faster to build
class RecurrentFnOutput:
    """Model output for a batch of ``M`` (state, action) transitions.

    Attributes:
        reward: ``[M]`` reward of the transition.
        discount: ``[M]`` discount between ``reward`` and ``value`` (0 at a terminal state).
        prior_logits: ``[M, A]`` policy logits at the new state.
        value: ``[M]`` value estimate of the new state.
        invalid_actions: ``[M, A]`` bool, True where an action is illegal at the new state; None
            (the default): all valid. A state with no valid action is terminal.
        is_terminal: ``[M]`` bool, True where the new state is terminal (end of sequence, solved,
            failed): it never gets children, and later simulations that reach it back up its stored
            value without calling the model; None (the default): none terminal.
    """

    reward: Any  # [M]
    discount: Any  # [M]
    prior_logits: Any  # [M, A]
    value: Any  # [M]
    invalid_actions: Any = None  # [M, A] bool
    is_terminal: Any = None  # [M] bool



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
ShouldStop = Callable[[], "str | None"]
Progress = Callable[[int], None]
Fill = Callable[[np.ndarray, Any, np.ndarray], Any]  # (actions, embeddings, evaluate) -> marks


# --------------------------------------------------------------------------------------------------
# Public policies.


def muzero_policy(
    root: RootFnOutput,
    recurrent_fn: RecurrentFn,
    num_simulations: int | None,
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
    virtual: str = "loss",
    backend: str = "numba",
    should_stop: ShouldStop | None = None,
    progress: Progress | None = None,
    capacity: int | None = None,
    widen: Callable[[Tree], None] | None = None,
    fill: Fill | None = None,
    max_leaves: int | None = None,
) -> PolicyOutput:
    """MuZero search with PUCT selection; returns visit-count policy and a sampled action.

    The root priors are mixed with Dirichlet noise, ``P' = (1 - f) * P + f * Dir(alpha)``, then held
    as logits ``log(max(P', tiny))``. After the search, ``action_weights = N(root, a) / sum_b
    N(root, b)`` and ``action`` is drawn from ``action_weights ** (1 / temperature)``
    (``temperature=0`` picks a most visited action, uniformly among ties).

    Args:
        root: ``RootFnOutput`` with ``prior_logits [B, A]``, ``value [B]``, ``embedding [B, ...]``.
        recurrent_fn: ``(params, rng, actions [M], embeddings [M, ...]) -> (RecurrentFnOutput,
            new_embeddings [M, ...])``: the leaves of a pass that need the model (all but the
            revisits of terminal nodes), ordered tree-major and by leaf within a tree; without
            terminal nodes ``M = B * k`` and item ``b * k + j`` is leaf ``j`` of tree ``b``, ``k =
            num_leaves`` (fewer on the last pass). Not called for a pass with ``M = 0``.
        num_simulations: simulations per tree (``S``; the tree has ``S + 1`` nodes unless
            ``capacity`` says otherwise), or None to run until ``should_stop`` returns a reason.
        params: passed through to ``recurrent_fn``.
        rng: numpy ``Generator`` or seed for the Dirichlet noise and the action sample; passed
            through to ``recurrent_fn``.
        invalid_actions: ``[B, A]`` bool mask of actions never chosen at the root (masks below the
            root come from ``RecurrentFnOutput.invalid_actions``). A root with no valid action is
            terminal: every simulation revisits it.
        max_depth: longest path from the root in edges (default ``num_simulations``; unlimited
            when that is None).
        qtransform: ``"parent_and_siblings"`` or ``"min_max"`` (needs ``value_bounds``).
        value_bounds: ``(lo, hi)`` for ``qtransform="min_max"``.
        dirichlet_fraction: ``f`` in ``[0, 1]``; 0 disables the noise.
        dirichlet_alpha: Dirichlet concentration ``alpha > 0``.
        dirichlet_noise: ``[B, A]`` noise to use instead of drawing it from ``rng``.
        pb_c_init: PUCT constant ``c1``.
        pb_c_base: PUCT constant ``c2``.
        temperature: acting temperature ``>= 0``.
        num_leaves: leaves selected per tree per pass, spread by virtual visits.
        virtual: what a virtual visit does to PUCT's value term: ``"loss"`` (a visit of value 0,
            the usual virtual loss) or ``"visit"`` (none: only the exploration term drops, as
            WU-UCT's pending visits); see :mod:`ponder.kernels.mcts`. No effect with one leaf.
        backend: ``"numba"`` (compiled kernels) or ``"python"`` (the reference twin, mcts_py).
        should_stop: ``() -> str | None``, called before each pass; a returned reason stops the
            search early (see :func:`run_search`). Required when ``num_simulations`` is None.
        progress: ``(simulations_done) -> None``, called after each pass.
        capacity: first node capacity per tree (default ``S + 1``, or ``OPEN_CAPACITY + 1`` when
            ``num_simulations`` is None); the tree grows past it as needed, with the same result.
        widen: ``(tree) -> None``, called before each pass (see :func:`run_search`).
        fill, max_leaves: make ``num_leaves`` count only the leaves that cost the model (see
            :func:`run_search`).

    Returns:
        ``PolicyOutput(action [B], action_weights [B, A], search_tree)``.
    """
    kernels = _kernels(backend)
    _check_budget(num_simulations, num_leaves, max_depth, should_stop, capacity)
    _check_fill(fill, max_leaves, int(num_leaves))
    if qtransform not in QTRANSFORMS:
        raise ValueError(f"qtransform must be one of {sorted(QTRANSFORMS)}, got {qtransform!r}")
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
    probs = softmax(logits)
    if dirichlet_noise is not None:
        noise = np.asarray(dirichlet_noise, dtype=np.float64)
        if noise.shape != (B, A):
            raise ValueError(f"dirichlet_noise must have shape {(B, A)}, got {noise.shape}")
        probs = (1.0 - dirichlet_fraction) * probs + dirichlet_fraction * noise
    elif dirichlet_fraction > 0.0:
        noise = rng.dirichlet(np.full(A, float(dirichlet_alpha)), size=B)
        probs = (1.0 - dirichlet_fraction) * probs + dirichlet_fraction * noise
    logits = _mask_logits(np.log(np.maximum(probs, _TINY)), invalid)

    if virtual not in VIRTUALS:
        raise ValueError(f"virtual must be one of {sorted(VIRTUALS)}, got {virtual!r}")
    q_code = QTRANSFORMS[qtransform] + VIRTUALS[virtual]

    pb_c_init, pb_c_base = float(pb_c_init), float(pb_c_base)

    blocks_cache = [(None, None)]

    def select(t, children_virtual, node_virtual, depth_cap, parent, action, leaf, evaluate):
        # the tree as its allocation blocks (children_virtual, node_virtual are views into them)
        edge_f, edge_i, node_f, node_i, children_invalid, terminal = _blocks_of(t, blocks_cache)
        return kernels.select_puct_blocks(
            q_code, depth_cap, pb_c_init, pb_c_base, vmin, vmax, edge_f, edge_i, node_f, node_i,
            children_invalid, terminal, t.num_nodes, parent, action, leaf, evaluate)

    tree = run_search(logits, value, embedding, invalid, recurrent_fn, num_simulations, select,
                      params=params, rng=rng, max_depth=max_depth, num_leaves=num_leaves,
                      backend=backend, should_stop=should_stop, progress=progress, capacity=capacity,
                      widen=widen, fill=fill, max_leaves=max_leaves)

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
    should_stop: ShouldStop | None = None,
    progress: Progress | None = None,
    capacity: int | None = None,
) -> PolicyOutput:
    """Full Gumbel MuZero search: Sequential Halving with Gumbel at the root.

    The root draws ``g = gumbel_scale * Gumbel(0, 1)`` per action. The final action is the best
    ``g(a) + logits(a) + sigma(q(a))`` among the most visited actions, and ``action_weights =
    softmax(logits + sigma(q))`` with completed Q-values (see the module docstring).

    Args:
        root: ``RootFnOutput`` with ``prior_logits [B, A]``, ``value [B]``, ``embedding [B, ...]``.
        recurrent_fn: as in :func:`muzero_policy`.
        num_simulations: simulations per tree, ``S`` (required: the Sequential Halving schedule
            is laid out over ``S``; stop earlier with ``should_stop``).
        params: passed through to ``recurrent_fn``.
        rng: numpy ``Generator`` or seed for the Gumbel noise; passed through to ``recurrent_fn``.
        invalid_actions: ``[B, A]`` bool mask of actions never chosen at the root (masks below the
            root come from ``RecurrentFnOutput.invalid_actions``). A root with no valid action is
            terminal: every simulation revisits it.
        max_depth: longest path from the root in edges (default ``num_simulations``).
        max_num_considered_actions: actions entering Sequential Halving at the root (``m``).
        gumbel_scale: scale of the Gumbel noise; 0 gives a deterministic search.
        gumbel: ``[B, A]`` noise to use instead of drawing it (``gumbel_scale`` is then ignored).
        value_scale: ``c_scale`` of ``sigma``.
        maxvisit_init: ``c_visit`` of ``sigma``.
        num_leaves: leaves selected per tree per pass, spread by virtual visits.
        backend: ``"numba"`` (compiled kernels) or ``"python"`` (the reference twin, mcts_py).
        should_stop: ``() -> str | None``, called before each pass; a returned reason stops the
            search early (see :func:`run_search`).
        progress: ``(simulations_done) -> None``, called after each pass.
        capacity: first node capacity per tree (default ``S + 1``); the tree grows past it as
            needed, with the same result.

    Returns:
        ``PolicyOutput(action [B], action_weights [B, A], search_tree)``.
    """
    kernels = _kernels(backend)
    if num_simulations is None:
        raise ValueError("gumbel_muzero_policy needs num_simulations (its Sequential Halving schedule "
                         "is laid out over S simulations); stop it earlier with should_stop")
    S = _check_budget(num_simulations, num_leaves, max_depth, should_stop, capacity)[0]
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
    table = cached_considered_visits_table(m, S)  # [m + 1, S]
    num_considered = np.minimum(m, A - invalid.sum(-1)).astype(np.int32)  # [B]

    blocks_cache = [(None, None)]

    def select(t, children_virtual, node_virtual, depth_cap, parent, action, leaf, evaluate):
        # the tree as its allocation blocks (children_virtual, node_virtual are views into them)
        edge_f, edge_i, node_f, node_i, children_invalid, terminal = _blocks_of(t, blocks_cache)
        return kernels.select_gumbel_blocks(
            depth_cap, value_scale, maxvisit_init, edge_f, edge_i, node_f, node_i, children_invalid,
            terminal, t.num_nodes, g, table, num_considered, parent, action, leaf, evaluate)

    tree = run_search(logits, value, embedding, invalid, recurrent_fn, num_simulations, select,
                      params=params, rng=rng, max_depth=max_depth, num_leaves=num_leaves,
                      backend=backend, extra_data={"root_gumbel": g}, should_stop=should_stop,
                      progress=progress, capacity=capacity)

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
    weights = softmax(_mask_logits(logits + completed, invalid))
    return PolicyOutput(action=action, action_weights=weights, search_tree=tree)



# --------------------------------------------------------------------------------------------------
# The search loop (the same for both backends; only the kernels differ).

Select = Callable[[Tree, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], int]


def run_search(logits, value, embedding, invalid, recurrent_fn: RecurrentFn, num_simulations: int | None,
               select: Select, *, params: Any = None, rng: np.random.Generator | None = None,
               max_depth: int | None = None, num_leaves: int = 1, backend: str = "numba",
               extra_data: dict | None = None, should_stop: ShouldStop | None = None,
               progress: Progress | None = None, capacity: int | None = None,
               widen: Callable[[Tree], None] | None = None, fill: Fill | None = None,
               max_leaves: int | None = None) -> Tree:
    """Allocate the trees, fill the roots, and run the select / evaluate / expand-and-backup loop.

    Args:
        logits: ``[B, A]`` float64 root logits (noised and masked by the policy).
        value: ``[B]`` float64 root values.
        embedding: ``[B, ...]`` root embeddings.
        invalid: ``[B, A]`` bool root mask.
        recurrent_fn: the model, as in :func:`muzero_policy`; called with the ``M`` leaves of a
            pass that need it (none of the revisits of terminal nodes), and not at all when ``M = 0``.
        num_simulations: ``S``, simulations per tree; None runs passes of ``num_leaves`` until
            ``should_stop`` returns a reason (it is then required).
        select: ``(tree, children_virtual, node_virtual, max_depth, parent, action, leaf, evaluate)
            -> M``, the policy's selection kernel call; writes ``parent, action, leaf, evaluate``
            ``[B, k]`` for the pass and returns how many leaves need the model.
        params: passed through to ``recurrent_fn``.
        rng: passed through to ``recurrent_fn``.
        max_depth: longest path from the root in edges (default ``S``, unlimited when S is None).
        num_leaves: leaves per tree per pass (``k``; fewer on the last pass).
        backend: ``"numba"`` or ``"python"``: which expand_and_backup kernel runs.
        extra_data: stored in ``tree.extra_data`` (with ``num_simulations_done`` and ``stop_reason``).
        should_stop: ``() -> str | None``, checked before each pass (a budget check). When it returns
            a reason the loop stops and returns the tree built so far.
        progress: ``(simulations_done) -> None``, called after each pass.
        capacity: first node capacity per tree ``N`` (default ``S + 1``, or ``OPEN_CAPACITY + 1``).
            Before a pass of ``k`` leaves that could need more than ``N`` slots (``max_b num_nodes[b]
            + k > N``) the trees are copied into arrays of ``max(2 N, max_b num_nodes[b] + k)``
            slots (:func:`ponder.kernels.mcts.grow_tree`); the nodes are the same as with a large
            enough ``capacity`` from the start.
        widen: ``(tree) -> None``, called with the current tree before each pass's selection
            (progressive widening: it may make more actions of a visited node valid, writing
            their ``children_invalid``, ``children_prior_logits`` and ``children_priors``).
        fill: None (each pass selects ``k`` leaves per tree at once), or ``(actions [1],
            embeddings [1, ...], evaluate [1]) -> marks [1]`` bool: is this new leaf costly (a new
            state the model must expand, say)? Then (one tree, ``B = 1``) a pass selects leaves
            one at a time until ``num_leaves`` are costly or ``K = min(max_leaves, S - done)`` are
            kept: a revisit of a terminal node is backed up at once; a leaf ``fill`` calls free is
            evaluated alone (``recurrent_fn`` with ``M = 1``) and backed up at once, so later
            leaves see its value as in sequential MCTS; the costly ones keep their virtual visits
            and reach ``recurrent_fn`` together at the end of the pass. A leaf at an edge a held
            leaf took brings no new value: it only leaves its virtual visits to steer the next
            leaves elsewhere, is released at the end of the pass
            (:func:`ponder.kernels.mcts.release_leaves`) and is not a simulation (at most ``K``
            such per pass). Every other leaf is one simulation.
        max_leaves: the most leaves a filled pass keeps (default ``4 * num_leaves``).

    Returns:
        The :class:`Tree`; ``tree.extra_data["num_simulations_done"]`` (int, ``S`` when complete) and
        ``tree.extra_data["stop_reason"]`` (the reason, or None).
    """
    kernels = _kernels(backend)
    S, L, depth_cap, N = _check_budget(num_simulations, num_leaves, max_depth, should_stop, capacity)
    span = _check_fill(fill, max_leaves, L)
    B, A = logits.shape
    none = _no_outputs(A)  # the model outputs of no leaf; its mask and flags mean "all valid", "none terminal"
    if fill is not None and B != 1:
        raise ValueError(f"fill runs one tree per search (B = 1), got B = {B}")
    extra_data = {} if extra_data is None else extra_data
    t, children_virtual, node_virtual = init_tree(logits, value, embedding, invalid, N, extra_data=extra_data)
    blocks = tree_blocks(t)  # edge_f, edge_i, node_f, node_i, children_invalid, terminal
    emb_shape = embedding.shape[1:]
    flat_embeddings = t.embeddings.reshape((B * N,) + emb_shape)  # a view: row b * N + n
    first_row = (np.arange(B, dtype=np.intp) * N)[:, None]  # [B, 1]
    buffers = {}
    slots_bound = 1  # an upper bound of max_b num_nodes[b]: 1 + the simulations run so far
    done, reason = 0, None
    while S is None or done < S:
        if should_stop is not None:
            reason = should_stop()
            if reason is not None:
                break
        k = span if S is None else min(span, S - done)  # leaves to select (span = L unless filling)
        if slots_bound + k > N:  # the pass might run out of slots: look at the real counts
            slots_bound = int(t.num_nodes.max())
            if slots_bound + k > N:
                N = max(2 * N, slots_bound + k)
                t, children_virtual, node_virtual = grow_tree(t, children_virtual, node_virtual, N)
                blocks = tree_blocks(t)
                flat_embeddings = t.embeddings.reshape((B * N,) + emb_shape)
                first_row = (np.arange(B, dtype=np.intp) * N)[:, None]
        if k not in buffers:  # parent, action, leaf [B, k] intp (rows = first_row + parent: no cast),
            # evaluate [B, k] bool, rows [B, k]
            buffers[k] = (np.empty((B, k), np.intp), np.empty((B, k), np.intp), np.empty((B, k), np.intp),
                          np.empty((B, k), np.bool_), np.empty((B, k), np.intp))
        parent, action, leaf, evaluate, rows = buffers[k]
        if widen is not None:
            widen(t)
        if fill is None:
            M = select(t, children_virtual, node_virtual, depth_cap, parent, action, leaf, evaluate)
            kept = k
        else:  # free leaves backed up one by one; the costly ones held for one model call
            kept, (parent, action, leaf, evaluate) = _filled_pass(
                t, blocks, flat_embeddings, select, kernels, recurrent_fn, fill, params, rng, L, k,
                depth_cap, children_virtual, node_virtual, buffers, none)
            M = k = parent.shape[1]
            rows = np.empty((B, k), np.intp)
        if M == B * k:  # every leaf needs the model (always, without terminal nodes)
            picked = None
            actions = action.ravel().astype(np.int64)  # ravel: a view of the contiguous buffer
            np.add(first_row, parent, out=rows)
            states = flat_embeddings.take(rows.ravel(), axis=0)
        else:  # some leaves are revisits of terminal nodes: only the others reach the model
            picked = evaluate.ravel()
            actions = action.ravel()[picked].astype(np.int64)
            np.add(first_row, parent, out=rows)
            states = flat_embeddings.take(rows.ravel()[picked], axis=0)
        if M > 0:
            outputs, new_embedding = _evaluate(recurrent_fn, params, rng, actions, states, A, emb_shape, none)
        else:
            outputs, new_embedding = none, None
        if k > 0:
            kernels.expand_and_backup_blocks(parent, action, leaf, evaluate, *outputs, *blocks, t.num_nodes)
        if M > 0:
            np.add(first_row, leaf, out=rows)
            leaf_rows = rows.ravel()
            flat_embeddings[leaf_rows if picked is None else leaf_rows[picked]] = new_embedding
        slots_bound += kept
        done += kept
        if progress is not None:
            progress(done)
    extra_data["num_simulations_done"] = done
    extra_data["stop_reason"] = reason
    return t


def _evaluate(recurrent_fn, params, rng, actions, states, A: int, emb_shape: tuple, none: tuple):
    """Call the model on ``M`` leaves and check what it returns: ``((reward, discount, prior_logits,
    value, invalid_actions, is_terminal), new_embeddings)`` as expand_and_backup takes them
    (``none``: the empty mask and flags that stand for "all valid", "none terminal")."""
    M = len(actions)
    out, new_embedding = recurrent_fn(params, rng, actions, states)
    outputs = (
        _as_f64(out.reward, (M,), "reward"),
        _as_f64(out.discount, (M,), "discount"),
        _as_f64(out.prior_logits, (M, A), "prior_logits"),
        _as_f64(out.value, (M,), "value"),
        none[4] if out.invalid_actions is None else _as_bool(out.invalid_actions, (M, A), "invalid_actions"),
        none[5] if out.is_terminal is None else _as_bool(out.is_terminal, (M,), "is_terminal"),
    )
    new_embedding = np.asarray(new_embedding)
    if new_embedding.shape != (M,) + emb_shape:
        raise ValueError(f"recurrent_fn returned embeddings of shape {new_embedding.shape}, expected {(M,) + emb_shape}")
    return outputs, new_embedding


def _no_outputs(A: int) -> tuple:
    """expand_and_backup's model outputs for a pass with no evaluated leaf (revisits only)."""
    return (np.zeros(0), np.zeros(0), np.zeros((0, A)), np.zeros(0), np.zeros((0, A), np.bool_), np.zeros(0, np.bool_))


def _filled_pass(t, blocks, flat_embeddings, select, kernels, recurrent_fn, fill, params, rng, L: int, K: int,
                 depth_cap: int, children_virtual, node_virtual, buffers, none: tuple) -> tuple[int, tuple]:
    """One pass of ``fill`` (one tree): select leaves one at a time until ``L`` are costly, ``K``
    are kept, or ``K`` met a held edge. A revisit of a terminal node is backed up at once; a new
    leaf ``fill`` calls free is evaluated and backed up at once, so the next leaf sees its value,
    as in sequential MCTS; a costly one keeps its virtual visits and node slot (``num_nodes``
    counts it meanwhile) for the pass's one model call. A leaf at an edge a held leaf took adds
    nothing but its virtual visits, which steer later leaves elsewhere: it is released at the end
    of the pass and is not a simulation. Returns ``(simulations, (parent, action, leaf, evaluate)
    [1, P])``, the held leaves."""
    if 1 not in buffers:
        buffers[1] = (np.empty((1, 1), np.intp), np.empty((1, 1), np.intp), np.empty((1, 1), np.intp),
                      np.empty((1, 1), np.bool_), np.empty((1, 1), np.intp))
    parent, action, leaf, evaluate, _ = buffers[1]
    A = t.num_actions
    emb_shape = flat_embeddings.shape[1:]
    held: list[tuple[int, int, int]] = []  # (parent, action, node slot) of the costly leaves
    met: list[tuple[int, int]] = []  # (parent, action) of the leaves that met a held edge
    edges: set[tuple[int, int]] = set()
    kept = 0
    while len(held) < L and kept < K and len(met) < K:
        select(t, children_virtual, node_virtual, depth_cap, parent, action, leaf, evaluate)
        p, a, n, ev = int(parent[0, 0]), int(action[0, 0]), int(leaf[0, 0]), bool(evaluate[0, 0])
        if ev and (p, a) in edges:
            met.append((p, a))
            continue
        kept += 1
        if not ev:  # a revisit of a terminal node (or of a terminal root): its stored value, now
            kernels.expand_and_backup_blocks(parent, action, leaf, evaluate, *none, *blocks, t.num_nodes)
            continue
        acts, states = action[0].astype(np.int64), flat_embeddings[p: p + 1]
        marks = np.asarray(fill(acts, states, evaluate[0].copy()), dtype=np.bool_)
        if marks.shape != (1,):
            raise ValueError(f"fill returned marks of shape {marks.shape}, expected (1,)")
        if marks[0]:
            held.append((p, a, n))
            edges.add((p, a))
            t.num_nodes[0] += 1  # its slot stays reserved while later leaves of the pass are chosen
            continue
        outputs, emb = _evaluate(recurrent_fn, params, rng, acts, states, A, emb_shape, none)
        kernels.expand_and_backup_blocks(parent, action, leaf, evaluate, *outputs, *blocks, t.num_nodes)
        flat_embeddings[n] = emb[0]
    if met:
        kernels.release_leaves(np.array([[p for p, _ in met]], np.intp), np.array([[a for _, a in met]], np.intp), 0,
                               blocks[3][1], blocks[3][2], blocks[1][2], blocks[3][3])
    t.num_nodes[0] -= len(held)  # the held leaves' backup counts them again
    P = len(held)
    arrays = (np.array([[h[0] for h in held]], np.intp), np.array([[h[1] for h in held]], np.intp),
              np.array([[h[2] for h in held]], np.intp), np.ones((1, P), np.bool_))
    return kept, arrays


def _check_fill(fill, max_leaves, L: int) -> int:
    """Leaves a pass selects: ``L``, or when filling ``max_leaves`` (default ``4 L``)."""
    if fill is None:
        if max_leaves is not None:
            raise ValueError("max_leaves is only used with fill")
        return L
    if not callable(fill):
        raise ValueError(f"fill must be None or a callable marking the leaves that cost the model, got {fill!r}")
    span = 4 * L if max_leaves is None else max_leaves
    if not isinstance(span, (int, np.integer)) or isinstance(span, bool) or span < L:
        raise ValueError(f"max_leaves must be an int >= num_leaves ({L}), got {max_leaves!r}")
    return int(span)


def _blocks_of(t: Tree, cache: list) -> tuple:
    """:func:`ponder.kernels.mcts.tree_blocks` of ``t``, checked once per tree: ``cache[0]`` holds the
    latest ``(tree, blocks)`` of one search (a tree is searched pass after pass)."""
    pair = cache[0]
    if pair[0] is not t:
        pair = cache[0] = (t, tree_blocks(t))
    return pair[1]


def _check_budget(num_simulations, num_leaves, max_depth, should_stop=None, capacity=None):
    """``(S or None, L, depth_cap, N)``: the checked budget and the first node capacity."""
    L = int(num_leaves)
    if L < 1 or L != num_leaves:
        raise ValueError(f"num_leaves must be a positive int, got {num_leaves!r}")
    if num_simulations is None:
        if should_stop is None:
            raise ValueError("num_simulations=None (an open-ended search) needs should_stop to end it")
        S = None
    else:
        S = int(num_simulations)
        if S < 1 or S != num_simulations:
            raise ValueError(f"num_simulations must be a positive int or None, got {num_simulations!r}")
    if max_depth is None:
        depth_cap = _NO_DEPTH_CAP if S is None else S
    else:
        depth_cap = int(max_depth)
        if depth_cap < 1 or depth_cap != max_depth:
            raise ValueError(f"max_depth must be a positive int, got {max_depth!r}")
    if capacity is None:
        N = OPEN_CAPACITY + 1 if S is None else S + 1
    else:
        N = int(capacity)
        if N < 1 or N != capacity:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    return S, L, depth_cap, N


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


def _as_bool(x, shape, name):
    arr = np.ascontiguousarray(x).astype(np.bool_, copy=False)
    if arr.shape != shape:
        raise ValueError(f"recurrent_fn's {name} must have shape {shape}, got {arr.shape}")
    return arr


def _mask_logits(logits: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Shift so the max is 0 and give invalid actions the lowest finite logit (as mctx)."""
    if not invalid.any():
        return np.ascontiguousarray(logits)
    shifted = logits - logits.max(-1, keepdims=True)
    return np.ascontiguousarray(np.where(invalid, np.finfo(np.float64).min, shifted))



class _NumbaKernels:
    """The kernel set the search loop calls (the twin module mcts_py provides the same names)."""

    select_puct = staticmethod(kernels_mcts.select_puct)
    select_gumbel = staticmethod(kernels_mcts.select_gumbel)
    expand_and_backup = staticmethod(kernels_mcts.expand_and_backup)
    select_puct_blocks = staticmethod(kernels_mcts.select_puct_blocks)  # the loop calls these three
    select_gumbel_blocks = staticmethod(kernels_mcts.select_gumbel_blocks)
    expand_and_backup_blocks = staticmethod(kernels_mcts.expand_and_backup_blocks)
    release_leaves = staticmethod(kernels_mcts.release_leaves)  # and this one, when filling a pass
    completed_qvalues = staticmethod(kernels_mcts.completed_qvalues)


def _kernels(backend: str):
    if backend == "numba":
        return _NumbaKernels
    if backend == "python":
        from ponder.kernels import mcts_py

        return mcts_py
    raise ValueError(f"backend must be 'numba' or 'python', got {backend!r}")
