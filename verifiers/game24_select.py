r"""Choose A* + policy settings on development splits of the training rows (never rows 800 onward).

``python -m ponder.verifiers.game24_select --dev-weights D1 D2 [grid options]`` runs the A* proxy
(:func:`ponder.verifiers.game24_train.astar_calls`, which makes the same pops as
``ponder.search("astar", ..., heuristic_on="calls")``) for every setting of a grid on four dev
sets, and appends one JSON line per setting to ``--out``; a stopped run resumes (settings already
in the file are skipped). ``D1`` and ``D2`` are folders of dev policies trained with::

    python -m ponder.verifiers.game24_train --train policy --dev-novel 100 --dev-novel-depth {1,2} \
        --dev-hard --split-seed 0 --seed 0 --no-heldout --no-train-report --no-proxy --out D{1,2}

(each folder also needs a ``game24_value.npz``, for that script's report: copy the shipped one).

The four dev sets: the 100 novel dev puzzles of the depth-1 split under the depth-1 policy, those
of the depth-2 split under the depth-2 policy, and the hard split's 3-number states
(:func:`~ponder.verifiers.game24_train.hard_split`) under each. **The rule** the shipped settings
were chosen by: a setting is eligible when it solves every dev puzzle and state within 700
operations; the eligible setting with the lowest sum of the four maximum operation counts wins
(ties: the lower sum of the four means). A grid setting is ``(normalize, path_weight,
temperatures)``; the temperatures ``T_n`` divide each member's logit in states of ``n`` numbers.

Each line holds ``key``, ``sum_max``, ``sum_mean``, ``all_solved`` and, per dev set, ``[max, mean]``.
``--best`` prints the rule's choice among the lines of ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from ponder.models import game24 as g
from ponder.search.astar import NORMALIZES
from ponder.verifiers import game24_train as gt
from ponder.verifiers.game24 import Game24Policy

__all__ = ["dev_sets", "measure", "rule_key"]

TRAIN_ROWS = slice(0, gt.TRAIN_ROWS_LIMIT)


def dev_sets(depth: int, *, novel: int = 100, split_seed: int = 0) -> tuple[list[tuple], list[tuple]]:
    """``(novel roots, hard states)`` of the dev split that ``game24_train --dev-novel novel
    --dev-novel-depth depth --dev-hard --split-seed split_seed`` leaves out of training."""
    train, dev, _ = gt.novel_split(g.load(TRAIN_ROWS), novel, split_seed, depth)
    hard, _ = gt.hard_split(train)
    return [g.start(p) for p in dev], list(hard)


def measure(sets: dict[str, tuple[Game24Policy, list[tuple]]], *, temperatures: dict[int, float],
            path_weight: float, normalize: str, limit: int = 700) -> dict:
    """The A* proxy on each named dev set ``name -> (policy, roots)`` under one setting:
    ``{"sum_max", "sum_mean", "all_solved", name: [max, mean], ...}``. The policies' temperatures
    are set to ``temperatures`` (``{n: T_n}``) for the run and restored after it."""
    out, total_max, total_mean, solved_all = {}, 0, 0.0, True
    for name, (policy, roots) in sets.items():
        policy._ensure()
        saved = policy._temperature.copy()
        try:
            for n, t in temperatures.items():
                policy._temperature[int(n)] = float(t)
            runs = [gt.astar_calls(r, policy.score_calls, limit, path_weight=path_weight, normalize=normalize) for r in roots]
        finally:
            policy._temperature[:] = saved
        ops = [o for _, o in runs]
        out[name] = [int(max(ops)), round(float(np.mean(ops)), 2)]
        total_max += max(ops)
        total_mean += float(np.mean(ops))
        solved_all = solved_all and all(s for s, _ in runs)
    return {"sum_max": int(total_max), "sum_mean": round(total_mean, 2), "all_solved": solved_all, **out}


def rule_key(line: dict) -> tuple:
    """Sort key of the rule: eligible first, then the lower sum of maxima, then of means."""
    return (not line["all_solved"], line["sum_max"], line["sum_mean"])


def _floats(spec: str) -> list[float]:
    return [float(x) for x in spec.split(",") if x.strip()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ponder.verifiers.game24_select", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev-weights", nargs=2, type=Path, metavar=("D1", "D2"), help="folders of the depth-1 and depth-2 dev policies")
    parser.add_argument("--normalize", default="none", help="comma-separated: none, siblings (AStarConfig.normalize)")
    parser.add_argument("--path-weights", default="0.1", help="comma-separated lambdas (AStarConfig.path_weight)")
    parser.add_argument("--t4", default="40", help="comma-separated temperatures of 4-number states")
    parser.add_argument("--t3", default="5", help="... of 3-number states")
    parser.add_argument("--t2", default="2.5", help="... of 2-number states")
    parser.add_argument("--out", type=Path, default=Path("game24_select.jsonl"))
    parser.add_argument("--best", action="store_true", help="print the rule's choice among the lines of --out and stop")
    args = parser.parse_args(argv)

    done = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["key"]] = rec
    if args.best:
        if not done:
            parser.error(f"no settings measured in {args.out}")
        best = min(done.values(), key=rule_key)
        print(json.dumps(best))
        return
    if args.dev_weights is None:
        parser.error("--dev-weights D1 D2 is required (see the module docstring for how to train them)")
    norms = [x.strip() for x in args.normalize.split(",") if x.strip()]
    for n in norms:
        if n not in NORMALIZES:
            parser.error(f"--normalize takes {' or '.join(NORMALIZES)}, got {n!r}")
    sets = {}
    for depth, folder in zip((1, 2), args.dev_weights):
        path = folder / "game24_policy.npz"
        if not path.exists():
            parser.error(f"no dev policy at {path}")
        policy = Game24Policy(weights=path)
        novel, hard = dev_sets(depth)
        sets[f"novel{depth}"] = (policy, novel)
        sets[f"hard{depth}"] = (policy, hard)
    grid = list(itertools.product(norms, _floats(args.path_weights), _floats(args.t4), _floats(args.t3), _floats(args.t2)))
    for i, (norm, lam, t4, t3, t2) in enumerate(grid):
        key = f"{norm} lam={lam:g} T={t4:g}:{t3:g}:{t2:g}"
        if key in done:
            continue
        t0 = time.perf_counter()
        rec = {"key": key, **measure(sets, temperatures={4: t4, 3: t3, 2: t2}, path_weight=lam, normalize=norm),
               "seconds": round(time.perf_counter() - t0, 1)}
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"[{i + 1}/{len(grid)}] {json.dumps(rec)}", flush=True)


if __name__ == "__main__":
    main()
