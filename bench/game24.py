"""Game of 24 as tool calls: blind and guided searches, counted in arithmetic operations tried.

Puzzles: rows 800 onward of ``data/game24.csv`` (462 puzzles; the learned heuristics were trained
on states of rows 0-799 only). These rows include the hardest puzzles of the file (ranks
1001-1362), so figures are not directly comparable with the Tree-of-Thoughts split (ranks
901-1000, not in the file).

Every executed arithmetic call counts as one operation (as in the Intelligent Go-Explore setup),
and a search may try at most 700 (``Budget(tool_calls=700)``). A heuristic that needs a call's
result to score it (a value over states) counts that call as executed; a policy that scores
``(state, call)`` before the call runs does not, and the candidates it judged are reported beside
(``calls scored``). Methods:

- ``dfs``, ``bfs``: no heuristic, moves in the environment's fixed order (one call per pop).
- ``astar_value``: A* with the learned value ``game24_value`` (h = -log v plus the calls still
  needed), every call of an expanded state executed, then its children scored.
- ``astar_policy``: A* with the learned policy ``game24_policy`` scoring calls before running them.
- ``mcts_value``: MCTS (PUCT, one leaf per pass) over the enumerated calls with the learned value;
  a call runs when selection first takes its edge.
- ``astar_lm``: A* whose calls SmolLM2 writes (8 samples per expansion, parsed strictly, cost
  -log of a call's frequency among the samples), with the learned value; on a fixed 50 of the
  puzzles (the first 50 rows from 800), since every expansion is an LM call.
- ``astar_lm_legal``: the same, with ``LMProposer(constrain="legal")``: a logits mask lets the
  model spell only the state's legal calls, so none is malformed or rejected.

Beside the searches, ``--value-auc N`` judges N held-out depth-1 states (one random legal call from
each of the first N puzzles of row 800+, seeded) with the learned value and with SmolLM2 as a value
(``game24_lm_value``: sure / likely / impossible read from one next-token distribution) and reports
each one's AUC against the exact solver.

Results are appended per (method, puzzle) to ``bench/results/game24.jsonl`` and reused, so a run
can be stopped and resumed; the summary covers what is stored.

Anchor (not our split): in IGE's setup plain DFS needs 550 operations to solve all 100
Tree-of-Thoughts test puzzles, 135.7 on average. Targets, fixed before the run: A* + learned
policy solves 100% with mean operations <= 15 and max <= 100; A* + learned value solves 100%
with >= 3x fewer operations than DFS on average.

    python -m bench game24 [--methods dfs,bfs,astar_value,astar_policy,mcts_value,astar_lm,astar_lm_legal] [--limit N] [--lm-puzzles 50]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .common import RESULTS, markdown_table, metric, write_results

POLICY_PATH_WEIGHT = 0.1  # lambda of AStarConfig.path_weight: the best of 0-0.5 on the dev splits by the four-maxima rule (see the README)
METHODS = ("dfs", "bfs", "astar_value", "astar_policy", "mcts_value", "astar_lm", "astar_lm_legal")
LM_METHODS = ("astar_lm", "astar_lm_legal")
OPS_CAP = 700
FIRST_ROW = 800
LOG = RESULTS / "game24.jsonl"


def searches(methods, lm_path=None):
    """``method -> run(puzzle) -> dict`` for the requested methods."""
    import ponder
    from ponder.models.game24 import Game24
    from ponder.models.tools import LMProposer, ToolGenerator

    env = Game24()
    blind = ToolGenerator(env)
    out = {}

    def runner(gen, verifier, algo="astar", **options):
        def run(puzzle):
            t0 = time.perf_counter()
            r = ponder.search(algo, gen, verifier, puzzle, budget={"tool_calls": OPS_CAP}, **options)
            led = r.ledger
            return {"solved": bool(r.info["solved"]), "ops": int(led.count("tool_calls")), "scored": int(led.count("calls_scored")),
                    "expansions": r.info.get("expansions", r.info.get("simulations")), "stopped": r.stopped, "seconds": time.perf_counter() - t0,
                    "path": [str(s.call) for s in r.best.path()[1:]], "tokens": int(led.computed_tokens), "malformed": int(led.count("proposals_malformed")),
                    "proposals": int(led.count("proposals")), "rejected": int(led.count("tool_rejected"))}
        return run

    if "dfs" in methods:
        out["dfs"] = runner(blind, None, order="dfs")
    if "bfs" in methods:
        out["bfs"] = runner(blind, None, order="bfs")
    if {"astar_value", "astar_policy", "mcts_value", *LM_METHODS} & set(methods):
        from ponder.verifiers.game24 import Game24Policy, Game24Value

        value = Game24Value()
        if "astar_value" in methods:
            out["astar_value"] = runner(blind, value)
        if "astar_policy" in methods:
            out["astar_policy"] = runner(blind, Game24Policy(), heuristic_on="calls", path_weight=POLICY_PATH_WEIGHT)
        if "mcts_value" in methods:
            out["mcts_value"] = runner(blind, value, algo="mcts", simulations=None, k=None)
        if set(LM_METHODS) & set(methods):
            lm = ponder.load(lm_path or "smollm2")
            for m, constrain in zip(LM_METHODS, ("none", "legal")):
                if m in methods:
                    out[m] = runner(ToolGenerator(env, proposer=LMProposer(lm, temperature=1.0, constrain=constrain)), value, k=8, cost="logprob")
    return out


def load_log() -> dict:
    done = {}
    if LOG.exists():
        for line in LOG.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[(row["method"], row["row"])] = row
    return done


def summarise(done: dict, methods, puzzles: dict) -> tuple[list[dict], list[dict]]:
    table, rows = [], []
    for m in METHODS:
        got = [r for (mm, _), r in done.items() if mm == m]
        if not got:
            continue
        ops = np.array([r["ops"] for r in got])
        solved = np.array([r["solved"] for r in got])
        table.append({"method": m, "puzzles": len(got), "solved": f"{solved.mean():.1%}", "ops_mean": round(float(ops.mean()), 1),
                      "ops_median": float(np.median(ops)), "ops_max": int(ops.max()),
                      "ops_mean_solved": round(float(ops[solved].mean()), 1) if solved.any() else None,
                      "scored_mean": round(float(np.mean([r["scored"] for r in got])), 1),
                      "seconds_mean": round(float(np.mean([r["seconds"] for r in got])), 4),
                      "tokens_mean": round(float(np.mean([r["tokens"] for r in got])), 1)})
    by = {t["method"]: t for t in table}
    full = len(puzzles)
    if "astar_policy" in by:
        t = by["astar_policy"]
        got = [r for (mm, _), r in done.items() if mm == "astar_policy"]
        rows.append(metric("A* + learned policy: share solved within 700 operations", float(np.mean([r["solved"] for r in got])), 1.0, puzzles=len(got), of=full))
        rows.append(metric("A* + learned policy: mean operations", t["ops_mean"], 15, "<="))
        rows.append(metric("A* + learned policy: max operations", t["ops_max"], 100, "<="))
    if "astar_value" in by:
        got = [r for (mm, _), r in done.items() if mm == "astar_value"]
        rows.append(metric("A* + learned value: share solved within 700 operations", float(np.mean([r["solved"] for r in got])), 1.0, puzzles=len(got), of=full))
        if "dfs" in by:
            rows.append(metric("DFS mean operations / A* + learned value mean operations", round(by["dfs"]["ops_mean"] / by["astar_value"]["ops_mean"], 2), 3.0))
    for m in ("dfs", "bfs", "mcts_value", *LM_METHODS):
        if m in by:
            got = [r for (mm, _), r in done.items() if mm == m]
            rows.append(metric(f"{m}: share solved within 700 operations", float(np.mean([r["solved"] for r in got])), None, puzzles=len(got)))
    rows += _by_kind(done, puzzles)
    return table, rows


def _by_kind(done: dict, puzzles: dict) -> list[dict]:
    """Operations of the learned heuristics on the puzzles that need a fraction or an intermediate
    above 50 (not ``solvable(..., limit=50)``: no puzzle of the training rows 0-799 does) and on the others."""
    from ponder.models.game24 import PLAIN_LIMIT, solvable, start

    odd = {i for i, p in puzzles.items() if not solvable(start(p), limit=PLAIN_LIMIT)}
    rows = []
    for m, label in (("astar_policy", "A* + learned policy"), ("astar_value", "A* + learned value")):
        for kind, keep in (("that need a fraction or an intermediate above 50", True), ("that do not", False)):
            ops = np.array([r["ops"] for (mm, i), r in done.items() if mm == m and (i in odd) == keep])
            if len(ops):
                rows.append(metric(f"{label}: mean operations on the {len(ops)} puzzles {kind}", round(float(ops.mean()), 1), None))
                rows.append(metric(f"{label}: max operations on the {len(ops)} puzzles {kind}", int(ops.max()), None))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench game24", description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    p.add_argument("--limit", type=int, default=None, help="only the first N puzzles from row 800 (default: all 462)")
    p.add_argument("--lm-puzzles", type=int, default=50, help="puzzles for astar_lm and astar_lm_legal (the first N from row 800)")
    p.add_argument("--lm", default=None, help="model for astar_lm and astar_lm_legal (default smollm2)")
    p.add_argument("--data", type=Path, default=None, help="another game24.csv")
    p.add_argument("--time-limit", type=float, default=None, help="stop starting new puzzles after this many seconds")
    p.add_argument("--value-auc", type=int, default=0, help="also judge N held-out depth-1 states with the learned and the LM value")
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")

    from ponder.models.game24 import load

    rows_all = load(file=args.data)
    puzzles = {i: rows_all[i] for i in range(FIRST_ROW, len(rows_all))}
    if args.limit is not None:
        puzzles = {i: puzzles[i] for i in list(puzzles)[: args.limit]}
    done = load_log()
    todo_methods = [m for m in methods if any((m, i) not in done for i in _rows_for(m, puzzles, args))]
    runs = searches(todo_methods, args.lm) if todo_methods else {}
    started = time.time()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(LOG, "a") as log:
        for m in todo_methods:
            rows = [i for i in _rows_for(m, puzzles, args) if (m, i) not in done]
            for n, i in enumerate(rows):
                if args.time_limit is not None and time.time() - started > args.time_limit:
                    print(f"[game24] time limit reached; {m} stopped after {n} new puzzles (rerun to resume)")
                    break
                out = {"method": m, "row": i, "puzzle": puzzles[i], **runs[m](puzzles[i])}
                done[(m, i)] = out
                log.write(json.dumps(out) + "\n")
                log.flush()
                if (n + 1) % 50 == 0 or m in LM_METHODS:
                    print(f"[game24] {m}: {n + 1}/{len(rows)} (row {i}: solved={out['solved']}, ops={out['ops']}, {out['seconds']:.1f} s)", flush=True)
    kept = {k: v for k, v in done.items() if k[1] in puzzles and k[0] in methods}
    table, metrics = summarise(kept, methods, puzzles)
    if args.value_auc:
        metrics += value_aucs(list(puzzles.values())[: args.value_auc], args.lm)
    cols = ["method", "puzzles", "solved", "ops_mean", "ops_median", "ops_max", "ops_mean_solved", "scored_mean", "seconds_mean", "tokens_mean"]
    md = ("# Game of 24 as tool calls (rows 800+ of game24.csv)\n\n"
          f"At most {OPS_CAP} operations (executed arithmetic calls) per puzzle; `scored_mean` counts candidate calls a policy judged "
          "before running them. Unsolved puzzles count with the operations they spent.\n\n"
          + markdown_table(table, cols)
          + "\n\nAnchor (another split): IGE reports plain DFS needing 550 operations for all 100 Tree-of-Thoughts test puzzles, 135.7 on average."
          + "\n\nCommand: `python -m bench game24" + (f" --value-auc {args.value_auc}" if args.value_auc else "") + "`")
    write_results("game24", {"rows": metrics, "methods": table, "ops_cap": OPS_CAP, "first_row": FIRST_ROW}, md, metrics=metrics)


def value_aucs(puzzles: list[str], lm_path=None) -> list[dict]:
    """AUC of the learned value and of SmolLM2's value on one random depth-1 state per puzzle."""
    import random

    import ponder
    from ponder.models import game24
    from ponder.verifiers.game24 import Game24Value
    from ponder.verifiers.lm_judge import game24_lm_value

    rng = random.Random(0)
    states = []
    for p in puzzles:
        w = game24.start(p)
        op, a, b = rng.choice(game24.moves(w))
        states.append(game24.apply(w, a, b, game24.TOOLS[op](a, b)))
    labels = np.array([game24.solvable(s) for s in states])
    out = []
    for name, judge in (("learned value", Game24Value()), ("SmolLM2 value", game24_lm_value(ponder.load(lm_path or "smollm2")))):
        v = np.asarray(judge.score([None] * len(states), states))
        pos, neg = v[labels], v[~labels]
        auc = float(np.mean([(x > y) + 0.5 * (x == y) for x in pos for y in neg])) if len(pos) and len(neg) else None
        out.append(metric(f"{name}: AUC on {len(states)} held-out depth-1 states ({int(labels.sum())} solvable)", None if auc is None else round(auc, 3), None))
    return out


def _rows_for(method: str, puzzles: dict, args) -> list[int]:
    rows = list(puzzles)
    return rows[: args.lm_puzzles] if method in LM_METHODS else rows


if __name__ == "__main__":
    main()
