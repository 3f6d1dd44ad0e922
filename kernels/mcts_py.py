"""Pure-Python twin of the MCTS kernels in :mod:`ponder.kernels.mcts` (the reference semantics).

The same kernels (``select_puct``, ``select_gumbel``, ``expand_and_backup``, ``release_leaves``, ``completed_qvalues``,
and the ``*_blocks`` forms the search loop calls, on the tree's allocation blocks) with the same
signatures, written as plain loops over trees, leaves and actions (per-node masks, terminal nodes and their revisits, node slots from ``num_nodes`` included). The tree itself
(``init_tree``, ``grow_tree``) is plain numpy and shared with the compiled module. The search loop is
not here: ``ponder.search.mcts_policies.muzero_policy(..., backend="python")`` runs it on these
kernels (kernels never import search/). The formulas are documented in :mod:`ponder.kernels.mcts`.

Sums run left to right in explicit loops, like the compiled kernels, so both give bit-identical
trees (Python's built-in ``sum`` of floats is compensated from Python 3.12 on).
"""

from __future__ import annotations

import math

import numpy as np

ROOT_INDEX = 0
NO_PARENT = -1
UNVISITED = -1
_TINY = float(np.finfo(np.float64).tiny)
_LOW_LOGIT = -1e9
_EPSILON = 1e-8
_MIN_LOGIT = float(np.finfo(np.float64).min)


def _softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    exps = [math.exp(x - m) for x in xs]
    total = 0.0
    for e in exps:
        total += e
    return [e / total for e in exps]


def _edge_qvalues(rewards, discounts, values) -> list[float]:
    """``Q(s, a) = r(s, a) + gamma(s, a) * V(child)`` for one node's row."""
    return [r + d * v for r, d, v in zip(rewards, discounts, values)]


def _completed_q(visits, priors, qs, raw_value, value_scale, maxvisit_init) -> list[float]:
    """sigma(completed Q) for one node: unvisited actions take the mixed value, then rescale."""
    sum_visits = sum(visits)
    probs = [max(_TINY, p) for p in priors]
    sum_probs = 0.0
    for n, p in zip(visits, probs):
        if n > 0:
            sum_probs += p
    weighted_q = 0.0
    for n, p, q in zip(visits, probs, qs):
        if n > 0:
            weighted_q += p * q / sum_probs
    mixed = (raw_value + sum_visits * weighted_q) / (sum_visits + 1)
    completed = [q if n > 0 else mixed for n, q in zip(visits, qs)]
    lo, hi = min(completed), max(completed)
    denom = max(hi - lo, _EPSILON)
    scale = (maxvisit_init + max(visits)) * value_scale
    return [scale * ((c - lo) / denom) for c in completed]


def _argmax(scores, invalid) -> int:
    """First index of the largest score; the first valid action when no score beats -inf (NaN
    scores, or no action qualifies). Invalid actions score -inf."""
    best, best_a = -math.inf, -1
    for a, s in enumerate(scores):
        if s > best:
            best, best_a = s, a
    if best_a < 0:
        return next((a for a, bad in enumerate(invalid) if not bad), 0)
    return best_a


def _puct_action(q_code, pb_c_init, pb_c_base, vmin, vmax, priors, visits, values,
                 rewards, discounts, node_visit, node_value, virtual, node_virtual, invalid) -> int:
    """PUCT at one node; the arguments are that node's rows as lists."""
    qs = _edge_qvalues(rewards, discounts, values)
    n_parent = node_visit + node_virtual
    pb_c = pb_c_init + math.log((n_parent + pb_c_base + 1.0) / pb_c_base)
    explore = math.sqrt(n_parent) * pb_c
    if q_code % 2 == 0:  # parent_and_siblings
        seen = [node_value] + [q for n, q in zip(visits, qs) if n > 0]
        lo, hi = min(seen), max(seen)
        denom = max(hi - lo, _EPSILON)
    else:  # min_max
        lo, denom = vmin, vmax - vmin
    scores = []
    for n, v, p, q, bad in zip(visits, virtual, priors, qs, invalid):
        if bad:
            scores.append(-math.inf)
            continue
        value_score = 0.0
        if n > 0:
            value_score = (q - lo) / denom
            if v > 0 and q_code < 2:
                value_score = value_score * n / (n + v)  # virtual="loss": virtual visits count as value 0
        scores.append(value_score + explore * p / (n + v + 1))
    return _argmax(scores, invalid)


def _gumbel_root_action(logits, priors, visits, values, rewards, discounts, raw_value, virtual,
                        invalid, gumbel, considered_row, value_scale, maxvisit_init) -> int:
    """Sequential Halving with Gumbel at the root; the arguments are the root's rows as lists."""
    completed = _completed_q(visits, priors, _edge_qvalues(rewards, discounts, values), raw_value,
                             value_scale, maxvisit_init)
    effective = [n + v for n, v in zip(visits, virtual)]
    considered = considered_row[sum(effective)]
    max_logit = max(logits)
    scores = []
    for g, logit, c, n, bad in zip(gumbel, logits, completed, effective, invalid):
        if bad or n != considered:
            scores.append(-math.inf)
        else:
            scores.append(max(_LOW_LOGIT, g + (logit - max_logit) + c))
    return _argmax(scores, invalid)


def _gumbel_interior_action(priors, visits, values, rewards, discounts, raw_value, virtual, invalid,
                            value_scale, maxvisit_init) -> int:
    """Deterministic Gumbel MuZero selection below the root; the arguments are rows as lists."""
    probs = _gumbel_interior_probs(priors, visits, _edge_qvalues(rewards, discounts, values), raw_value,
                                   value_scale, maxvisit_init)
    effective = [n + v for n, v in zip(visits, virtual)]
    total = sum(effective)
    scores = [-math.inf if bad else (p if n == 0 else p - n / (1.0 + total))
              for p, n, bad in zip(probs, effective, invalid)]
    return _argmax(scores, invalid)


def _gumbel_interior_probs(priors, visits, qs, raw_value, value_scale, maxvisit_init) -> list[float]:
    """``softmax(logits + sigma)`` as ``P(a) w(a) / Z`` with ``w = exp(sigma - max sigma)``: one exp per
    visited action and one shared by the unvisited ones (they all have the mixed value's sigma)."""
    sigma = _completed_q(visits, priors, qs, raw_value, value_scale, maxvisit_init)
    top = max(sigma)
    weights = [p * math.exp(s - top) if n > 0 else 0.0 for n, p, s in zip(visits, priors, sigma)]
    z = 0.0
    for n, w in zip(visits, weights):
        if n > 0:
            z += w
    unvisited = [(p, s) for n, p, s in zip(visits, priors, sigma) if n == 0]
    if not unvisited:
        return [w / z for w in weights]
    mass = 0.0
    for p, _ in unvisited:
        mass += p
    w_unvisited = math.exp(unvisited[0][1] - top)
    z = z + w_unvisited * mass
    u = w_unvisited / z
    return [w / z if n > 0 else p * u for n, p, w in zip(visits, priors, weights)]


def _walk(choose, children_index, terminal, num_nodes, children_virtual, node_virtual, max_depth,
          out_parent, out_action, out_leaf, out_eval) -> int:
    """Selection skeleton shared by both rules: ``choose(b, node, depth) -> action``. Returns the
    number of leaves that need the model."""
    B, L = out_parent.shape
    total = 0
    for b in range(B):
        if terminal[b, ROOT_INDEX]:  # a terminal root: every leaf revisits it
            out_parent[b], out_action[b], out_leaf[b], out_eval[b] = NO_PARENT, UNVISITED, ROOT_INDEX, False
            continue
        pending: dict[tuple[int, int], int] = {}  # edges reserved by earlier leaves of this pass
        slot = int(num_nodes[b])  # the next free node slot
        for j in range(L):
            node, depth = 0, 0
            while True:
                a = choose(b, node, depth)
                children_virtual[b, node, a] += 1
                node_virtual[b, node] += 1
                depth += 1
                child = int(children_index[b, node, a])
                if child == UNVISITED:
                    child = pending.setdefault((node, a), slot)
                    evaluate = True
                    break
                if terminal[b, child]:
                    evaluate = False  # a revisit
                    break
                if depth >= max_depth:
                    evaluate = True
                    break
                node = child
            out_parent[b, j], out_action[b, j], out_leaf[b, j], out_eval[b, j] = node, a, child, evaluate
            slot += evaluate
            total += evaluate
    return total


def select_puct(q_code, max_depth, pb_c_init, pb_c_base, vmin, vmax, children_index,
                children_priors, children_visits, children_values, children_rewards,
                children_discounts, children_invalid, node_visits, node_values, terminal, num_nodes,
                children_virtual, node_virtual, out_parent, out_action, out_leaf, out_eval):
    """Twin of :func:`ponder.kernels.mcts.select_puct`."""

    def choose(b, node, depth):
        return _puct_action(
            q_code, pb_c_init, pb_c_base, vmin, vmax, children_priors[b, node].tolist(),
            children_visits[b, node].tolist(), children_values[b, node].tolist(),
            children_rewards[b, node].tolist(), children_discounts[b, node].tolist(),
            int(node_visits[b, node]), float(node_values[b, node]), children_virtual[b, node].tolist(),
            int(node_virtual[b, node]), children_invalid[b, node].tolist())

    return _walk(choose, children_index, terminal, num_nodes, children_virtual, node_virtual, max_depth,
                 out_parent, out_action, out_leaf, out_eval)


def select_gumbel(max_depth, value_scale, maxvisit_init, children_index, children_prior_logits,
                  children_priors, children_visits, children_values, children_rewards,
                  children_discounts, children_invalid, raw_values, terminal, num_nodes,
                  children_virtual, node_virtual, root_gumbel, table, num_considered,
                  out_parent, out_action, out_leaf, out_eval):
    """Twin of :func:`ponder.kernels.mcts.select_gumbel`."""

    def choose(b, node, depth):
        rows = (children_priors[b, node].tolist(), children_visits[b, node].tolist(),
                children_values[b, node].tolist(), children_rewards[b, node].tolist(),
                children_discounts[b, node].tolist(), float(raw_values[b, node]),
                children_virtual[b, node].tolist())
        invalid = children_invalid[b, node].tolist()
        if depth == 0:
            return _gumbel_root_action(children_prior_logits[b, node].tolist(), *rows, invalid,
                                       root_gumbel[b].tolist(), table[num_considered[b]].tolist(),
                                       value_scale, maxvisit_init)
        return _gumbel_interior_action(*rows, invalid, value_scale, maxvisit_init)

    return _walk(choose, children_index, terminal, num_nodes, children_virtual, node_virtual, max_depth,
                 out_parent, out_action, out_leaf, out_eval)


def expand_and_backup(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                      invalid_actions, is_terminal, children_index, children_prior_logits,
                      children_priors, children_visits, children_values, children_rewards,
                      children_discounts, children_invalid, node_visits, node_values, raw_values,
                      parents, action_from_parent, terminal, num_nodes, children_virtual, node_virtual):
    """Twin of :func:`ponder.kernels.mcts.expand_and_backup`."""
    B, L = parent.shape
    A = children_visits.shape[2]
    masked, flagged = len(invalid_actions) > 0, len(is_terminal) > 0
    item = 0  # model outputs are [M, ...]: the evaluated leaves, tree-major
    for b in range(B):
        for j in range(L):
            node = int(leaf[b, j])
            if evaluate[b, j]:
                p, a = int(parent[b, j]), int(action[b, j])
                # expand
                node_visits[b, node] += 1
                bad = invalid_actions[item].tolist() if masked else [False] * A
                logits = [_MIN_LOGIT if x else float(y) for x, y in zip(bad, prior_logits[item])]
                children_invalid[b, node] = bad
                children_prior_logits[b, node] = logits
                children_priors[b, node] = _softmax(logits)
                terminal[b, node] = all(bad) or (flagged and bool(is_terminal[item]))
                raw_values[b, node] = node_values[b, node] = value[item]
                children_index[b, p, a] = node
                children_rewards[b, p, a] = reward[item]
                children_discounts[b, p, a] = discount[item]
                parents[b, node] = p
                action_from_parent[b, node] = a
                num_nodes[b] += 1
                item += 1
            else:  # revisit of a terminal node: its stored value once more
                node_visits[b, node] += 1
                node_values[b, node] = raw_values[b, node]
            # backup: G <- r + gamma G; the parent's mean absorbs G
            g = float(node_values[b, node])
            index = node
            while index != ROOT_INDEX:
                up, act = int(parents[b, index]), int(action_from_parent[b, index])
                count = int(node_visits[b, up])
                g = float(children_rewards[b, up, act]) + float(children_discounts[b, up, act]) * g
                node_values[b, up] = (float(node_values[b, up]) * count + g) / (count + 1.0)
                node_visits[b, up] = count + 1
                children_values[b, up, act] = node_values[b, index]
                children_visits[b, up, act] += 1
                children_virtual[b, up, act] -= 1
                node_virtual[b, up] -= 1
                index = up


def release_leaves(parent, action, first, parents, action_from_parent, children_virtual, node_virtual):
    """Twin of :func:`ponder.kernels.mcts.release_leaves`."""
    B, L = parent.shape
    for b in range(B):
        for j in range(first, L):
            node = int(parent[b, j])
            if node == NO_PARENT:
                continue
            path = [(node, int(action[b, j]))]
            while node != ROOT_INDEX:
                path.append((int(parents[b, node]), int(action_from_parent[b, node])))
                node = path[-1][0]
            for up, act in path:
                children_virtual[b, up, act] -= 1
                node_virtual[b, up] -= 1


def completed_qvalues(node_index, children_visits, children_priors, children_values,
                      children_rewards, children_discounts, raw_values, value_scale,
                      maxvisit_init, out):
    """Twin of :func:`ponder.kernels.mcts.completed_qvalues`."""
    for b in range(out.shape[0]):
        n = int(node_index[b])
        qs = _edge_qvalues(children_rewards[b, n].tolist(), children_discounts[b, n].tolist(),
                           children_values[b, n].tolist())
        out[b] = _completed_q(children_visits[b, n].tolist(), children_priors[b, n].tolist(), qs,
                              float(raw_values[b, n]), value_scale, maxvisit_init)


# The tree as its allocation blocks (ponder.kernels.mcts.tree_blocks): edge_f [5, B, N, A] = prior
# logits, priors, rewards, discounts, values; edge_i [3, B, N, A] = index, visits, virtual visits;
# node_f [2, B, N] = raw values, mean values; node_i [4, B, N] = visits, parents, actions from parent,
# virtual visits.


def select_puct_blocks(q_code, max_depth, pb_c_init, pb_c_base, vmin, vmax, edge_f, edge_i, node_f,
                       node_i, children_invalid, terminal, num_nodes, out_parent, out_action, out_leaf,
                       out_eval):
    """Twin of :func:`ponder.kernels.mcts.select_puct_blocks`."""
    return select_puct(q_code, max_depth, pb_c_init, pb_c_base, vmin, vmax, edge_i[0], edge_f[1],
                       edge_i[1], edge_f[4], edge_f[2], edge_f[3], children_invalid, node_i[0],
                       node_f[1], terminal, num_nodes, edge_i[2], node_i[3], out_parent, out_action,
                       out_leaf, out_eval)


def select_gumbel_blocks(max_depth, value_scale, maxvisit_init, edge_f, edge_i, node_f, node_i,
                         children_invalid, terminal, num_nodes, root_gumbel, table, num_considered,
                         out_parent, out_action, out_leaf, out_eval):
    """Twin of :func:`ponder.kernels.mcts.select_gumbel_blocks`."""
    return select_gumbel(max_depth, value_scale, maxvisit_init, edge_i[0], edge_f[0], edge_f[1],
                         edge_i[1], edge_f[4], edge_f[2], edge_f[3], children_invalid, node_f[0],
                         terminal, num_nodes, edge_i[2], node_i[3], root_gumbel, table,
                         num_considered, out_parent, out_action, out_leaf, out_eval)


def expand_and_backup_blocks(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                             invalid_actions, is_terminal, edge_f, edge_i, node_f, node_i,
                             children_invalid, terminal, num_nodes):
    """Twin of :func:`ponder.kernels.mcts.expand_and_backup_blocks`."""
    expand_and_backup(parent, action, leaf, evaluate, reward, discount, prior_logits, value,
                      invalid_actions, is_terminal, edge_i[0], edge_f[0], edge_f[1], edge_i[1],
                      edge_f[4], edge_f[2], edge_f[3], children_invalid, node_i[0], node_f[1],
                      node_f[0], node_i[1], node_i[2], terminal, num_nodes, edge_i[2], node_i[3])
