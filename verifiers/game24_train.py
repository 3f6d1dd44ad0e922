r"""Train the learned Game of 24 heuristics of :mod:`ponder.verifiers.game24`.

Run ``python -m ponder.verifiers.game24_train`` (``--help`` for the options); it takes about eighteen
minutes on one CPU core (training the five policy members about fifteen, the report the rest) and writes
``game24_value.npz``, ``game24_policy.npz`` and ``game24_report.json`` to ``--out`` (default: the
package's ``weights/`` folder).

Data. Training uses ONLY the puzzles of rows 0-799 of ``game24.csv`` (never rows 800 onward):
every state (4, 3 and 2 remaining numbers) reachable from them by legal moves, labelled by the
exact :func:`~ponder.models.game24.solvable`; the policy trains on every legal (state, call) pair
of those states. Rows 800 onward are what benchmarks use: the states reachable from them are the
*held-out* set, used for REPORTING only, never for training, early stopping or model selection.
Hyper-parameters were chosen on development splits inside rows 0-799: ``--train-rows 0:600
--dev-rows 600:800``, and ``--dev-novel 100`` (100 puzzles of rows 400-799 as dev, their
3-number states, or with ``--dev-novel-depth 2`` all their 3- and 2-number states, left out of
training), which mimics the unseen states of harder puzzles; and ``--dev-hard`` (:func:`hard_split`:
the 42-45 three-number states of the training rows that reach 24 only through a fraction or a
result above 50, left out of training with their 2-number states, the A* proxy run from each),
the nearest the training rows come to the 45 held-out puzzles that need such a result. Many deep states are reachable from
both the training and the held-out puzzles; the report gives held-out metrics on all held-out
states and on those never seen in training (held-out roots are all unseen).

Models (small MLPs, trained with torch, run in numpy at inference):

- the VALUE, over states: ``P(this multiset can still reach 24)``; input
  :func:`~ponder.verifiers.game24.state_features` (the numbers of the state in ascending order,
  each encoded alone), two hidden ReLU layers.
- the POLICY, over (state, call) pairs: ``P(the state after op(a, b) is solvable)``, computed
  WITHOUT executing the call. Its input :func:`~ponder.verifiers.game24.call_features` encodes the
  op, the operands ``a`` and ``b`` and the other remaining numbers, each number on its own; it
  contains no arithmetic combination of ``a`` and ``b`` (no ``a+b``, ``a*b``, ``a-b``, ``a/b`` or
  anything amounting to the call's result): the network must learn what the call gives. It is
  ``head([psi(op, a, b), rest, count])``; during training a linear decoder (not shipped) must
  recover :func:`~ponder.verifiers.game24.number_features` of the call's result from
  ``psi(op, a, b)`` - the result is an auxiliary training *target* (the label needs it anyway),
  never an input. Without that target the policy is far worse (on the 0:600/600:800 split, a
  best-first search by the policy needed about 108 calls per puzzle instead of about 6). Its
  weight (``--aux-weight``, 30 since 2026-12-08, 1 before) was chosen on the dev splits by the
  four-maxima rule below (five-member dev policies, the shipped temperatures and ``path_weight``
  0.1; the candidates 4, 10 and 30 set before the runs): sums 381 at 1, 216 at 4, 179 at 10 and
  166 at 30 (novel 30 and 107, hard 13 and 16), every dev puzzle and state solved. Held out (run
  once, after the choice) the A* + policy max fell from 136 to 41 and the mean from 6.0 to 4.2.
- Temperatures dividing each network's logits per number of numbers in the state
  (``--policy-temperature``, ``--value-temperature``), chosen on the development splits. With
  unit costs A* over calls orders them by the latest call's ``-log sigmoid(logit / T_n)``, so only
  the ratios ``T4 : T3 : T2`` change its order. The policy's (4:40, 3:5, 2:2.5) won a grid of 26
  candidates by the sum of the four maxima of the A* proxy (three dev members averaged, trained
  with ``--dev-novel 100 --dev-hard``, depth 1 and depth 2): novel 22 and 274, hard 21 and 22,
  sum 339, against 58, 464, 56 and 73 (651) for the earlier 4:10, 3:5, 2:8, which had been chosen
  by the sum of the novel means. A larger ``T4`` flattens the root calls' scores (so a doubtful
  root call waits behind fewer deep calls), a smaller ``T2`` sharpens the last calls (those of a
  state that cannot reach 24 fall to the back).
- Members (``--policy-members``, default 5 since 2026-12-08, 3 before): the shipped policy
  averages the logits of networks trained with seeds ``--seed + 1``, ``+ 2``, ... With the
  temperatures above and ``path_weight`` 0.1, the sum of the four maxima of the A* proxy (dev
  members averaged) was 336 with three members, 326 with four, 303 with five (novel 25 and 241,
  hard 16 and 21), so five ship; on the held-out rows that raised the max (102 with three members,
  136 with five; mean 6.0 both; all at auxiliary weight 1), which the selection did not look at. On the two ``--dev-novel 100`` splits, with
  the earlier temperatures, three members needed mean 7.7 / max 104 (depth 1) and 53.1 / 181 (depth
  2) operations of the A* proxy; the first member alone 9.0 / 122 and 49.9 / 346, the other two
  7.8 / 108 and 7.8 / 146, 71.0 / 206 and 54.6 / 188 (``--split-seed 0`` keeps one split across seeds).
- Feature versions (``--value-features``, ``--policy-features``): the value keeps version 1, the
  policy uses version 2, whose extra per-number features tell large numbers apart (on the depth-1
  dev split, A* + policy went from mean 8.5 / max 44 operations with version 1 to 6.9 / 35).
  ``--train policy`` retrains the policy alone and reports it with the value already in ``--out``.

Everything is deterministic given ``--seed`` (single-threaded torch, seeded shuffles).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from ponder.models import game24 as g
from ponder.verifiers import game24 as v

ODD_LIMIT = g.PLAIN_LIMIT  # results above it, or fractions, are "odd": no puzzle of rows 0-799 needs one (see hard_split)
TRAIN_ROWS_LIMIT = 800  # rows 0-799 may be trained on; 800 onward are the benchmark's


def _temperature_arg(spec: str) -> dict[str, float]:
    out = {}
    for item in filter(None, spec.split(",")):
        n, _, t = item.partition(":")
        if n.strip() not in ("2", "3", "4") or not float(t) > 0:
            raise ValueError(f"a temperature is n:T with n in 2, 3, 4 and T > 0, got {item!r}")
        out[n.strip()] = float(t)
    return out


def _rows(spec: str) -> slice:
    start, _, stop = spec.partition(":")
    return slice(int(start) if start else 0, int(stop) if stop else None)


def reachable(puzzles) -> tuple[list[tuple], set[tuple]]:
    """The root states of ``puzzles`` and every state reachable from them (1-4 numbers)."""
    roots = list(dict.fromkeys(g.start(p) for p in puzzles))
    seen: set[tuple] = set()
    stack = list(roots)
    while stack:
        s = stack.pop()
        if s in seen:
            continue
        seen.add(s)
        if len(s) > 1:
            for op, a, b in g.moves(s):
                stack.append(g.apply(s, a, b, g.TOOLS[op](a, b)))
    return roots, seen


def novel_split(puzzles: list[str], n: int, seed: int, depth: int = 1) -> tuple[list[str], list[str], set]:
    """``(train, dev, excluded)``: ``n`` puzzles drawn from the second half of ``puzzles`` as dev,
    the others as train, and the states one move from a dev puzzle (``depth=1``; ``depth=2``: all
    the states reachable from one, 3 and 2 numbers), to be left out of training (states and the
    calls leading to them): the dev puzzles' moves then lead to unseen states, as many moves of
    harder puzzles do."""
    rng = np.random.default_rng(seed)
    half = len(puzzles) // 2
    dev_index = set(int(i) for i in rng.choice(np.arange(half, len(puzzles)), size=n, replace=False))
    excluded = set()
    for i in dev_index:
        r = g.start(puzzles[i])
        if depth == 1:
            excluded.update(after(r, op, a, b) for op, a, b in g.moves(r))
        else:
            excluded.update(s for s in reachable([puzzles[i]])[1] if 1 < len(s) < 4)
    return [p for i, p in enumerate(puzzles) if i not in dev_index], [puzzles[i] for i in sorted(dev_index)], excluded


def hard_split(puzzles, limit: int = ODD_LIMIT) -> tuple[list[tuple], set]:
    """``(dev_states, excluded)``: the 3-number states one move from ``puzzles`` that reach 24, but
    only through a fraction or a result above ``limit`` (``solvable(s)`` and not
    ``solvable(s, limit=limit)``, such as 3 3/7 7 -> 24/7 7 -> 24), and those states with every
    2-number state reachable from them, to be left out of training. No puzzle of rows 0-799 needs
    such a result, but 45 of the 462 puzzles of rows 800+ do, and they hold the benchmark's largest
    operation counts: these 3-number states (45 from rows 0-799) are the nearest development
    measure of them that the training rows give."""
    roots = dict.fromkeys(g.start(p) for p in puzzles)
    three = {after(r, op, a, b) for r in roots for op, a, b in g.moves(r)}
    dev = sorted(s for s in three if g.solvable(s) and not g.solvable(s, limit=limit))
    excluded = set(dev)
    for s in dev:
        excluded.update(after(s, op, a, b) for op, a, b in g.moves(s))
    return dev, excluded


def after(numbers, op, a, b):
    return g.apply(numbers, a, b, g.TOOLS[op](a, b))


class Table:
    """Numbers -> rows of a feature table (row 0: padding, all zeros)."""

    def __init__(self, version: int = v.FEATURE_VERSION):
        self.version = version
        self.index: dict[Fraction, int] = {}
        self.rows: list[np.ndarray] = [np.zeros(v.number_dim(version), np.float32)]

    def __call__(self, x: Fraction) -> int:
        i = self.index.get(x)
        if i is None:
            i = self.index[x] = len(self.rows)
            self.rows.append(v.number_features(x, version=self.version))
        return i

    def array(self) -> np.ndarray:
        return np.stack(self.rows)


def value_data(states, table: Table, *, min_size: int = 2):
    """Slot rows (0 = padding), sizes and labels of the states of ``min_size``-4 numbers, sorted."""
    states = sorted((s for s in states if len(s) >= min_size), key=lambda s: (len(s), s))
    slots = np.zeros((len(states), v.MAX_NUMBERS), dtype=np.int64)
    for i, s in enumerate(states):
        slots[i, : len(s)] = [table(x) for x in s]
    y = np.array([g.solvable(s) for s in states], dtype=np.float32)
    return {"states": states, "slots": slots, "size": np.array([len(s) for s in states], dtype=np.int64), "y": y}


def policy_data(states, table: Table, exclude=frozenset()):
    """Every legal (state, call) pair of the states with 2-4 numbers, states sorted, moves in
    :func:`~ponder.models.game24.moves` order; ``group`` numbers the states. ``result`` (the row of
    the call's result) is a training target only, never an input; ``odd`` marks calls whose result
    is a fraction or above :data:`ODD_LIMIT` (a loss weight may use it, never the network)."""
    states = sorted((s for s in states if len(s) >= 2), key=lambda s: (len(s), s))
    ops, ab, rest_rows, result, y, group, size, odd = [], [], [], [], [], [], [], []
    for k, s in enumerate(states):
        for op, a, b in g.moves(s):
            r = g.TOOLS[op](a, b)
            nxt = g.apply(s, a, b, r)
            if nxt in exclude:
                continue
            rest = list(s)
            rest.remove(a)
            rest.remove(b)
            x, z = (b, a) if op in ("add", "mul") and b < a else (a, b)
            ops.append(v.OPS.index(op))
            ab.append((table(x), table(z)))
            rest_rows.append([table(r) for r in rest] + [0] * (v.MAX_NUMBERS - 2 - len(rest)))
            result.append(table(r))
            y.append(g.solvable(nxt))
            group.append(k)
            size.append(len(s))
            odd.append(r.denominator != 1 or r > ODD_LIMIT)
    return {
        "states": states,
        "op": np.array(ops, dtype=np.int64),
        "ab": np.array(ab, dtype=np.int64),
        "rest": np.array(rest_rows, dtype=np.int64),
        "result": np.array(result, dtype=np.int64),
        "y": np.array(y, dtype=np.float32),
        "group": np.array(group, dtype=np.int64),
        "size": np.array(size, dtype=np.int64),
        "odd": np.array(odd, dtype=bool),
    }


# ---------------------------------------------------------------------------------------------
# Training (torch; the shipped verifiers run the same networks in numpy)


def _mlp_torch(torch, sizes, *, final_relu: bool, dropout: float = 0.0):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if final_relu or i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
            if dropout and i < len(sizes) - 2:
                layers.append(torch.nn.Dropout(dropout))
    return torch.nn.Sequential(*layers)


def _export(module) -> list:
    import torch  # noqa: PLC0415

    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in module if isinstance(m, torch.nn.Linear)]


def _batches(n: int, batch: int, gen, torch):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch):
        yield perm[i: i + batch]


def train_value(features: np.ndarray, data, *, hidden: int, epochs: int, lr: float, batch: int, seed: int, weight_decay: float, log=print):
    """The value: an MLP over :func:`~ponder.verifiers.game24.state_features`."""
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)
    n = len(data["y"])
    x = np.concatenate([np.eye(v.MAX_NUMBERS, dtype=np.float32)[data["size"] - 1], features[data["slots"]].reshape(n, -1)], axis=1)
    mlp = _mlp_torch(torch, [x.shape[1], hidden, hidden, 1], final_relu=False)
    opt = torch.optim.AdamW(mlp.parameters(), lr=lr, weight_decay=weight_decay)
    xt, y = torch.from_numpy(x), torch.from_numpy(data["y"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(n / batch), pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        t, total = time.perf_counter(), 0.0
        for idx in _batches(n, batch, gen, torch):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(mlp(xt[idx]).squeeze(1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            log(f"  value epoch {epoch + 1}/{epochs}: loss {total / n:.4f} ({time.perf_counter() - t:.1f} s)")
    return {"mlp": _export(mlp)}


def train_policy(features: np.ndarray, data, *, hidden: int, embed: int, head_hidden: int, epochs: int, lr: float, batch: int, seed: int,
                 weight_decay: float, root_weight: float, aux_weight: float, smoothing: float = 0.0, dropout: float = 0.0,
                 odd_weight: float = 1.0, log=print):
    """The policy: ``e = psi(op, a, b)``, ``logit = head([e, rest[0], rest[1], onehot(len(rest))])``.

    Loss: BCE on ``solvable(state after the call)`` (calls of 4-number states weighted by
    ``root_weight``, solvable calls with an odd result by ``odd_weight`` on top) plus ``aux_weight`` times the squared error of a linear decoder recovering
    :func:`~ponder.verifiers.game24.number_features` of the call's result from ``e``. The result is
    a training *target* (like the label, which also needs it); the network's inputs never hold it,
    and the decoder is not shipped.
    """
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)
    dim = features.shape[1]
    psi = _mlp_torch(torch, [len(v.OPS) + 2 * dim, hidden, hidden, embed], final_relu=True, dropout=dropout)
    decoder = torch.nn.Linear(embed, dim)
    head = _mlp_torch(torch, [embed + 2 * dim + 3, head_hidden, head_hidden, 1], final_relu=False, dropout=dropout)
    params = list(psi.parameters()) + list(decoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    feats = torch.from_numpy(features)
    op_eye, count_eye = torch.eye(len(v.OPS)), torch.eye(3)
    op, ab, rest = torch.from_numpy(data["op"]), torch.from_numpy(data["ab"]), torch.from_numpy(data["rest"])
    result = torch.from_numpy(data["result"])
    y = torch.from_numpy((data["y"] * (1 - 2 * smoothing) + smoothing).astype(np.float32))
    count = (rest > 0).sum(1)
    w = np.where(data["size"] == 4, root_weight, 1.0) * np.where(data["odd"] & (data["y"] > 0.5), odd_weight, 1.0)
    w = torch.from_numpy(w.astype(np.float32))
    n = len(y)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(n / batch), pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        t, total, total_aux = time.perf_counter(), 0.0, 0.0
        for idx in _batches(n, batch, gen, torch):
            e = psi(torch.cat([op_eye[op[idx]], feats[ab[idx, 0]], feats[ab[idx, 1]]], 1))
            logits = head(torch.cat([e, feats[rest[idx, 0]], feats[rest[idx, 1]], count_eye[count[idx]]], 1)).squeeze(1)
            aux = ((decoder(e) - feats[result[idx]]) ** 2).mean()
            wi = w[idx]
            bce = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx], reduction="none") * wi).sum() / wi.sum()
            loss = bce + aux_weight * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += bce.item() * len(idx)
            total_aux += aux.item() * len(idx)
        log(f"  policy epoch {epoch + 1}/{epochs}: bce {total / n:.4f} aux {total_aux / n:.4f} ({time.perf_counter() - t:.1f} s)")
    psi.eval()
    head.eval()
    return {"psi": _export(psi), "head": _export(head)}


def save(path: Path, parts: dict, meta: dict, dtype: str, version: int) -> None:
    arrays = {}
    for part, layers in parts.items():
        for i, (w, b) in enumerate(layers):
            arrays[f"{part}.{i}.W"] = w.astype(dtype)
            arrays[f"{part}.{i}.b"] = b.astype(np.float32)
    meta = dict(meta, parts={part: len(layers) for part, layers in parts.items()}, feature_version=version)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def rounded(parts: dict, dtype: str) -> dict:
    """The parts as the saved file gives them back (weight matrices through ``dtype``)."""
    return {part: [(w.astype(dtype).astype(np.float32), b) for w, b in layers] for part, layers in parts.items()}


def n_parameters(parts: dict) -> int:
    return int(sum(w.size + b.size for layers in parts.values() for w, b in layers))


# ---------------------------------------------------------------------------------------------
# Metrics


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    y = y.astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return None
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p), dtype=np.float64)
    sp = p[order]
    # average ranks of ties
    i = 0
    r = np.arange(1, len(p) + 1, dtype=np.float64)
    while i < len(sp):
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        r[i: j + 1] = (i + j + 2) / 2.0
        i = j + 1
    ranks[order] = r
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    if not len(y):
        return {"n": 0}
    q = np.clip(p, 1e-7, 1 - 1e-7)
    out = {
        "n": int(len(y)),
        "positives": float(y.mean()),
        "accuracy": float(((p >= 0.5) == (y > 0.5)).mean()),
        "log_loss": float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean()),
    }
    a = auc(y, p)
    if a is not None:
        out["auc"] = a
    return {k: round(val, 5) if isinstance(val, float) else val for k, val in out.items()}


def policy_logits(policy, pairs) -> np.ndarray:
    """The shipped policy's logits (after its temperatures) of legal (state, call) pairs."""
    ops, flat, sizes = [], [], []
    for s, (op, a, b) in pairs:
        rest = list(s)
        rest.remove(a)
        rest.remove(b)
        if op in ("add", "mul") and b < a:
            a, b = b, a
        ops.append(v.OPS.index(op))
        flat += [a, b] + sorted(rest)
        sizes.append(len(rest))
    return policy._logits(ops, flat, sizes)


def value_logits(value, states) -> np.ndarray:
    """The shipped value's logits (after its temperatures) of states of 2-4 numbers."""
    return value._logits([x for s in states for x in sorted(s)], [len(s) for s in states])


def temperature_fit(y: np.ndarray, logits: np.ndarray) -> dict:
    """The factor c minimising the log loss of sigmoid(logits / c), and the log losses at 1 and c."""
    def loss(c):
        q = np.clip(1.0 / (1.0 + np.exp(-np.clip(logits / c, -60, 60))), 1e-7, 1 - 1e-7)
        return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(30.0), 80))
    losses = [loss(c) for c in grid]
    best = int(np.argmin(losses))
    return {"factor": round(float(grid[best]), 3), "log_loss_at_1": round(loss(1.0), 5), "log_loss_at_factor": round(losses[best], 5)}


def ranks_before_first_solvable(groups: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Over states with a solvable move: how many moves come before the first solvable one when
    ordered by descending score (ties: move order)."""
    counts = []
    for y, p in groups:
        if not y.any():
            continue
        order = np.argsort(-p, kind="stable")
        counts.append(int(np.argmax(y[order] > 0.5)))
    if not counts:
        return {"states": 0}
    c = np.array(counts)
    return {"states": int(len(c)), "mean": round(float(c.mean()), 4), "max": int(c.max()), "first_is_solvable": round(float((c == 0).mean()), 4)}


def policy_report(data, p: np.ndarray, mask_states=None) -> dict:
    """Pair metrics and ranking metrics per number of remaining numbers."""
    out = {}
    group = data["group"]
    states = data["states"]
    bounds = np.flatnonzero(np.diff(group)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(group)]])
    keep_state = np.ones(len(states), dtype=bool) if mask_states is None else np.array([mask_states(s) for s in states])
    for n in (4, 3, 2):
        sel_states = [k for k in range(len(states)) if len(states[k]) == n and keep_state[k]]
        if not sel_states:
            continue
        pair_mask = np.zeros(len(group), dtype=bool)
        groups = []
        for k in sel_states:
            s0, e0 = starts[k], ends[k]
            pair_mask[s0:e0] = True
            groups.append((data["y"][s0:e0], p[s0:e0]))
        out[f"{n}_numbers"] = {"pairs": binary_metrics(data["y"][pair_mask], p[pair_mask]), "rank_of_first_solvable": ranks_before_first_solvable(groups)}
    return out


def value_report(data, p: np.ndarray, mask_states=None) -> dict:
    out = {}
    states = data["states"]
    keep = np.ones(len(states), dtype=bool) if mask_states is None else np.array([mask_states(s) for s in states])
    sizes = np.array([len(s) for s in states])
    out["all"] = binary_metrics(data["y"][keep], p[keep])
    for n in (4, 3, 2):
        m = keep & (sizes == n)
        if m.any():
            out[f"{n}_numbers"] = binary_metrics(data["y"][m], p[m])
    return out


def value_ordering(states, value_of) -> dict:
    """Moves of each solvable state ordered by the value of the state they lead to."""
    groups = []
    for s in states:
        if not g.solvable(s):
            continue
        nexts = [after(s, op, a, b) for op, a, b in g.moves(s)]
        groups.append((np.array([g.solvable(t) for t in nexts], dtype=np.float32), value_of(nexts)))
    return ranks_before_first_solvable(groups)


def random_ordering(states) -> dict:
    """Expected moves before the first solvable one in a uniformly random order: (n - m) / (m + 1)."""
    counts = []
    for s in states:
        ys = [g.solvable(after(s, op, a, b)) for op, a, b in g.moves(s)]
        m = sum(ys)
        if m:
            counts.append((len(ys) - m) / (m + 1))
    return {"states": len(counts), "mean": round(float(np.mean(counts)), 4), "max": round(float(np.max(counts)), 4)}


def astar_calls(root, policy, limit: int = 700, *, path_weight: float = 0.0, normalize: str = "none") -> tuple[bool, int]:
    """A mirror of ``ponder.search("astar", ..., heuristic_on="calls", path_weight=, normalize=)``
    with unit costs on this fixed-length task: the frontier holds proposed calls with ``f = u(s, a)
    + path_weight * (the sum of u along the path to s)`` (g plus the steps-left bound is the same
    for every call), ``u = -log p(call)``, or ``-log`` of ``p`` divided by the sum over the state's
    calls under ``normalize="siblings"``; ties to the deeper call, then first in; a pop runs one
    call; states seen before are not expanded. Returns (solved, calls executed)."""
    import heapq  # noqa: PLC0415

    from ponder.search.astar import sibling_costs  # noqa: PLC0415

    heap, tick, seen, ops = [], 0, {root}, 0

    def push(state, depth, path):
        nonlocal tick
        ms = g.moves(state)
        u = -np.log(np.asarray(policy([(state, m) for m in ms]), dtype=np.float64))
        if normalize == "siblings":
            u = sibling_costs(u, [len(ms)])
        for m, um in zip(ms, u.tolist()):
            heapq.heappush(heap, (um + path_weight * path, -depth, tick, state, m, path + um))
            tick += 1

    push(root, 1, 0.0)
    while heap and ops < limit:
        _, depth, _, state, (op, a, b), path = heapq.heappop(heap)
        ops += 1
        nxt = after(state, op, a, b)
        if g.solved(nxt):
            return True, ops
        if len(nxt) > 1 and nxt not in seen:
            seen.add(nxt)
            push(nxt, 1 - depth, path)
    return False, ops


def dfs(root, limit: int = 700) -> tuple[bool, int]:
    """Plain depth-first search in :func:`~ponder.models.game24.moves` order: calls executed until 24."""
    ops = 0

    def go(state) -> bool:
        nonlocal ops
        for op, a, b in g.moves(state):
            if ops >= limit:
                return False
            ops += 1
            nxt = after(state, op, a, b)
            if g.solved(nxt) or (len(nxt) > 1 and go(nxt)):
                return True
        return False

    return go(root), ops


def astar_states(root, value, limit: int = 700) -> tuple[bool, int]:
    """A mirror of ``ponder.search("astar", ..., heuristic_on="states")`` with unit costs here:
    pop the state of lowest ``-log v`` (ties: deeper, then first in), run all its calls (each
    counts, within the budget), stop if one made 24, push the new unseen states."""
    import heapq  # noqa: PLC0415

    heap, tick, ops, seen = [(0.0, 0, 0, root)], 1, 0, {root}
    while heap and ops < limit:
        _, depth, _, state = heapq.heappop(heap)
        ms = g.moves(state)[: limit - ops]
        ops += len(ms)
        children = [after(state, op, a, b) for op, a, b in ms]
        if any(g.solved(c) for c in children):
            return True, ops
        fresh = []
        for c in children:
            if len(c) > 1 and c not in seen:
                seen.add(c)
                fresh.append(c)
        if fresh:
            for c, q in zip(fresh, value(fresh)):
                heapq.heappush(heap, (-math.log(q), depth - 1, tick, c))
                tick += 1
    return False, ops


def _summary(runs) -> dict:
    ops = np.array([o for _, o in runs])
    return {"solved": round(float(np.mean([s for s, _ in runs])), 4), "ops_mean": round(float(ops.mean()), 3), "ops_max": int(ops.max())}


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m ponder.verifiers.game24_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=v.WEIGHTS, help="folder for the weights and the report (default: the package's weights/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=None, help="seed of the --dev-novel split (default: --seed), so models of several seeds share one split")
    parser.add_argument("--train-rows", default="0:800", help="rows of game24.csv to train on, inside 0:800 (default 0:800)")
    parser.add_argument("--dev-rows", default="", help="rows inside 0:800 NOT trained on, reported as a development split (for choosing hyper-parameters)")
    parser.add_argument("--dev-novel", type=int, default=0, help="development split of N puzzles from the second half of --train-rows, "
                        "training only on the puzzles sharing no solvable 3-number state with them (mimics the novelty of harder puzzles)")
    parser.add_argument("--dev-hard", action="store_true", help="leave out of training the 3-number states of --train-rows that reach 24 only through a fraction "
                        "or a result above 50 (and their 2-number states), and report the A* proxy from each (see hard_split)")
    parser.add_argument("--dev-novel-depth", type=int, default=1, choices=[1, 2], help="1: leave out the dev puzzles' 3-number states; 2: all their 3- and 2-number states")
    parser.add_argument("--train", default="both", choices=["both", "value", "policy"],
                        help="which models to train; the other is read from --out, for the report (default both)")
    parser.add_argument("--value-features", type=int, default=1, choices=v.FEATURE_VERSIONS, help="feature version of the value (see number_features; default 1)")
    parser.add_argument("--policy-features", type=int, default=2, choices=v.FEATURE_VERSIONS, help="feature version of the policy (default 2)")
    parser.add_argument("--value-epochs", type=int, default=40)
    parser.add_argument("--policy-epochs", type=int, default=20)
    parser.add_argument("--policy-members", type=int, default=5, help="policy networks trained (seeds --seed + 1, + 2, ...) whose logits the shipped policy averages")
    parser.add_argument("--value-hidden", type=int, default=192, help="width of the value's two hidden layers")
    parser.add_argument("--policy-hidden", type=int, default=192, help="width of the policy's hidden layers (psi and head)")
    parser.add_argument("--embed", type=int, default=128, help="width of the policy's call embedding e = psi(op, a, b)")
    parser.add_argument("--value-lr", type=float, default=3e-3)
    parser.add_argument("--policy-lr", type=float, default=4e-3)
    parser.add_argument("--value-batch", type=int, default=256)
    parser.add_argument("--policy-batch", type=int, default=512)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--root-weight", type=float, default=4.0, help="policy loss weight of the calls of 4-number states relative to deeper ones")
    parser.add_argument("--odd-weight", type=float, default=1.0, help="policy loss weight of the solvable calls whose result is a fraction or above 50 "
                        "(relative; multiplies --root-weight)")
    parser.add_argument("--aux-weight", type=float, default=30.0, help="weight of psi's auxiliary target (the number features of the call's result; default 30 since 2026-12-08, 1 before)")
    parser.add_argument("--smoothing", type=float, default=0.0, help="label smoothing of the policy's targets")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout in the policy's hidden layers")
    parser.add_argument("--policy-temperature", default="4:40,3:5,2:2.5", help="temperatures dividing the policy's logits per number of numbers in the state "
                        "(n:T,...; others 1); chosen by log loss and by the search proxies on the --dev-novel split")
    parser.add_argument("--value-temperature", default="3:7,2:2", help="the same for the value")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="storage type of the weight matrices")
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out report (rows 800+)")
    parser.add_argument("--no-proxy", action="store_true", help="skip the search proxies in the report")
    parser.add_argument("--no-train-report", action="store_true", help="skip the metrics on the training states")
    args = parser.parse_args(argv)
    try:
        temperatures = {k: _temperature_arg(getattr(args, f"{k}_temperature")) for k in ("policy", "value")}
    except ValueError as exc:
        parser.error(str(exc))
    train_rows, dev_rows = _rows(args.train_rows), _rows(args.dev_rows) if args.dev_rows else None
    for name, rows in (("--train-rows", train_rows), ("--dev-rows", dev_rows)):
        if rows is not None and (rows.start < 0 or rows.stop is None or not 0 < rows.stop <= TRAIN_ROWS_LIMIT):
            parser.error(f"{name} must lie inside rows 0:{TRAIN_ROWS_LIMIT}; rows {TRAIN_ROWS_LIMIT} onward are held out for benchmarks")

    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    t_start, cpu_start = time.perf_counter(), time.process_time()

    train_puzzles, dev_puzzles = g.load(train_rows), g.load(dev_rows) if dev_rows is not None else None
    if args.dev_novel:
        split_seed = args.seed if args.split_seed is None else args.split_seed
        train_puzzles, dev_puzzles, excluded = novel_split(train_puzzles, args.dev_novel, split_seed, args.dev_novel_depth)
    else:
        excluded = set()
    if args.dev_novel:
        print(f"novel dev split: {len(dev_puzzles)} dev puzzles; {len(excluded)} states left out of training")
    hard_states = None
    if args.dev_hard:
        hard_states, hard_excluded = hard_split(train_puzzles)
        excluded = excluded | hard_excluded
        print(f"hard dev split: {len(hard_states)} 3-number states that need a fraction or a result above {ODD_LIMIT}; "
              f"{len(hard_excluded)} states left out of training")
    train_roots, train_states = reachable(train_puzzles)
    train_states = train_states - excluded
    print(f"train: {len(train_roots)} puzzles (rows {args.train_rows}), {len(train_states)} reachable states")
    value_table, policy_table = Table(args.value_features), Table(args.policy_features)
    vtrain = value_data(train_states, value_table)
    ptrain = policy_data(train_states, policy_table, exclude=excluded)
    print(f"value: {len(vtrain['y'])} states; policy: {len(ptrain['y'])} pairs ({ptrain['y'].mean():.3f} solvable after); {len(policy_table.rows)} numbers")
    t_data = time.perf_counter() - t_start

    args.out.mkdir(parents=True, exist_ok=True)
    common = {"seed": args.seed, "train_rows": args.train_rows, "weight_decay": args.weight_decay, "dtype": args.dtype}
    t_value = t_policy = 0.0
    if args.train in ("both", "value"):
        t = time.perf_counter()
        value_parts = rounded(train_value(value_table.array(), vtrain, hidden=args.value_hidden, epochs=args.value_epochs, lr=args.value_lr,
                                          batch=args.value_batch, seed=args.seed, weight_decay=args.weight_decay), args.dtype)
        t_value = time.perf_counter() - t
        save(args.out / "game24_value.npz", value_parts, dict(common, kind="value", temperature=temperatures["value"], hidden=args.value_hidden,
                                                             epochs=args.value_epochs, lr=args.value_lr, batch=args.value_batch), args.dtype, args.value_features)
    else:  # the report evaluates the value already in --out
        value_parts = v.load_weights(args.out / "game24_value.npz", "value")[1]
    if args.train in ("both", "policy"):
        t = time.perf_counter()
        policy_parts = {}
        for m in range(args.policy_members):  # member m trains with seed + 1 + m; parts psi, head, psi@1, head@1, ...
            member = rounded(train_policy(policy_table.array(), ptrain, hidden=args.policy_hidden, embed=args.embed, head_hidden=args.policy_hidden,
                                          epochs=args.policy_epochs, lr=args.policy_lr, batch=args.policy_batch, seed=args.seed + 1 + m,
                                          weight_decay=args.weight_decay, root_weight=args.root_weight, aux_weight=args.aux_weight,
                                          smoothing=args.smoothing, dropout=args.dropout, odd_weight=args.odd_weight), args.dtype)
            policy_parts.update({v._part(name, m): layers for name, layers in member.items()})
        t_policy = time.perf_counter() - t
        save(args.out / "game24_policy.npz", policy_parts, dict(common, kind="policy", temperature=temperatures["policy"], hidden=args.policy_hidden,
                                                               embed=args.embed, epochs=args.policy_epochs, lr=args.policy_lr, batch=args.policy_batch,
                                                               root_weight=args.root_weight, aux_weight=args.aux_weight, smoothing=args.smoothing,
                                                               dropout=args.dropout, odd_weight=args.odd_weight, members=args.policy_members), args.dtype, args.policy_features)
    else:
        policy_parts = v.load_weights(args.out / "game24_policy.npz", "policy")[1]
    cpu_train = time.process_time() - cpu_start

    # Evaluate through the shipped numpy verifiers (what a search sees).
    value = v.Game24Value(weights=args.out / "game24_value.npz")
    policy = v.Game24Policy(weights=args.out / "game24_policy.npz")
    value_of = value.score_numbers

    def policy_of(data):
        pairs = []
        for s in data["states"]:
            pairs.extend((s, m) for m in g.moves(s))
        return policy.score_calls(pairs)

    def evaluate(roots, states, *, seen=None) -> dict:
        vd, pd = value_data(states, Table(args.value_features)), policy_data(states, Table(args.policy_features))
        pv, pp = value_of(vd["states"]), policy_of(pd)
        rep = {
            "puzzles": len(roots),
            "value": value_report(vd, pv),
            "policy": policy_report(pd, pp),
            "root_move_ordering": {
                "policy": policy_report(pd, pp, mask_states=lambda s: len(s) == 4)["4_numbers"]["rank_of_first_solvable"],
                "value_of_next_state": value_ordering(roots, value_of),
                "random_expected": random_ordering(roots),
            },
            "deeper_move_ordering_3_numbers": {
                "policy": policy_report(pd, pp).get("3_numbers", {}).get("rank_of_first_solvable"),
                "value_of_next_state": value_ordering([s for s in states if len(s) == 3], value_of),
                "random_expected": random_ordering([s for s in states if len(s) == 3 and g.solvable(s)]),
            },
        }
        pl = policy_logits(policy, [(s, m) for s in pd["states"] for m in g.moves(s)])
        vl = value_logits(value, vd["states"])
        vsize = np.array([len(s) for s in vd["states"]])
        rep["calibration"] = {
            "note": "log-loss-optimal further temperature factor per number of numbers (1 = the shipped temperatures are optimal here)",
            "policy": {str(n): temperature_fit(pd["y"][pd["size"] == n], pl[pd["size"] == n]) for n in (4, 3, 2) if (pd["size"] == n).any()},
            "value": {str(n): temperature_fit(vd["y"][vsize == n], vl[vsize == n]) for n in (3, 2) if (vsize == n).any()},
        }
        if seen is not None:
            unseen = lambda s: s not in seen  # noqa: E731
            rep["unseen_states"] = {"value": value_report(vd, pv, mask_states=unseen), "policy": policy_report(pd, pp, mask_states=unseen)}
        if not args.no_proxy:
            rep["search_proxies"] = {
                "note": "calls executed until 24 (limit 700), mirroring search/astar.py on this task: A* over calls scored "
                        "by the policy (f = -log p), A* over states scored by the value (f = -log v, all calls of a popped state run), "
                        "plain DFS in moves() order",
                "astar_policy": _summary([astar_calls(r, policy.score_calls) for r in roots]),
                "astar_value": _summary([astar_states(r, value_of) for r in roots]),
                "dfs": _summary([dfs(r) for r in roots]),
            }
        return rep

    report = {
        "command": "python -m ponder.verifiers.game24_train " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "note": "trained on states reachable from rows " + args.train_rows + " of game24.csv; held-out = states reachable from rows 800+, for reporting only",
        "seed": args.seed,
        "features": {"value": {"version": args.value_features, "number_dim": v.number_dim(args.value_features), "inputs": v.value_dim(args.value_features)},
                     "policy": {"version": args.policy_features, "number_dim": v.number_dim(args.policy_features), "inputs": v.policy_dim(args.policy_features)}},
        "models": {
            "value": {"parameters": n_parameters(value_parts), "file_bytes": (args.out / "game24_value.npz").stat().st_size,
                      "layers": {k: [list(w.shape) for w, _ in layers] for k, layers in value_parts.items()}},
            "policy": {"parameters": n_parameters(policy_parts), "file_bytes": (args.out / "game24_policy.npz").stat().st_size,
                       "layers": {k: [list(w.shape) for w, _ in layers] for k, layers in policy_parts.items()}},
            "dtype": args.dtype,
        },
        "seconds": {"data": round(t_data, 1), "value": round(t_value, 1), "policy": round(t_policy, 1), "cpu_data_and_training": round(cpu_train, 1)},
    }
    if not args.no_train_report:
        print("evaluating: train")
        report["train"] = evaluate(train_roots, train_states)
    if dev_puzzles is not None:
        print("evaluating: dev")
        dev_roots, dev_states = reachable(dev_puzzles)
        report["dev"] = evaluate(dev_roots, dev_states, seen=train_states)
    if hard_states is not None:
        print("evaluating: hard dev states")
        report["dev_hard"] = {
            "states": len(hard_states),
            "note": "A* proxy from each 3-number state of the training rows that reaches 24 only through a fraction or a result above 50; "
                    "the states and their 2-number states were left out of training",
            "astar_policy": _summary([astar_calls(s, policy.score_calls) for s in hard_states]),
        }
        print(f"dev_hard: {report['dev_hard']}")
    if not args.no_heldout:
        print("evaluating: held-out (rows 800+, reporting only)")
        held_roots, held_states = reachable(g.load(slice(TRAIN_ROWS_LIMIT, None)))
        report["heldout"] = evaluate(held_roots, held_states, seen=train_states)
    report["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
    report["seconds"]["cpu_total"] = round(time.process_time() - cpu_start, 1)
    with open(args.out / "game24_report.json", "w") as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")
    for split in ("train", "dev", "heldout"):
        if split in report:
            r = report[split]
            print(
                f"{split}: value AUC {r['value']['all'].get('auc')} acc {r['value']['all']['accuracy']}; "
                f"root ordering policy {r['root_move_ordering']['policy']} value {r['root_move_ordering']['value_of_next_state']}; "
                f"3-number ordering policy {r['deeper_move_ordering_3_numbers']['policy']}; proxies {r.get('search_proxies')}"
            )
    print(f"total {report['seconds']['total']} s; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
