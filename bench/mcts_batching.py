"""MCTS on SmolLM2: one leaf per generator call vs eight (virtual visits), at equal simulations.

Task: Game of 24 as tool calls (rows 800+ of game24.csv), MCTS whose successors SmolLM2 writes
(``LMProposer``: ``k`` sampled calls per expanded state) and whose values come from the learned
``game24_value``. ``--constrain legal`` (default) masks the model's logits so each line can only
spell a legal call of its state (``LegalCallMask``); ``--constrain none`` samples freely and parses
strictly, dropping malformed lines (about 30% of SmolLM2's, and the reason the found rate stayed
below 10% there: 1 of 12 and 0 of 12 puzzles at 24 simulations). Every setting runs the same
number of simulations per puzzle with ``goal="continue"`` (no early stop), so their work is
comparable; a puzzle counts as found when a solved state is anywhere in the tree.

Three settings: "1 leaf" (sequential MCTS), "8 leaves" (each pass selects 8 leaves, whatever they
cost) and "8 expansions" (``fill="expansions"``: each pass selects leaves one by one until 8 of
them are new states for SmolLM2 to expand; revisits of terminal states and leaves ending in a
finished state are backed up at once, as in the sequential search, while the 8 wait for one
batched call; a leaf that meets the edge of one of those 8 is released and not counted). With one leaf the model decodes ``k``
rows at a time; with eight, up to ``8 k``. The ceiling is plain batched decoding at those two batch
sizes, measured in the same run on the same prompts (tokens per second at ``8 k`` rows over tokens
per second at ``k`` rows), beside the classic batch-8 / batch-1 figure. Paths alternate puzzle by
puzzle (1 leaf, 8 leaves, 8 expansions, ceiling, 1 leaf, ...), so machine load falls on all of
them alike. Target, fixed before the run: the wall-time ratio (1 leaf / 8) reaches >= 70% of the
ceiling at the same shapes, with found rates within noise.

A second ceiling tells the tree's shape from the cost of batching: plain decoding's time per
step at each call's width (states x ``k`` rows, measured after the runs), summed over each
setting's calls; the share against it is reported without a target.

Each puzzle's runs (both settings and the decode rates measured after them) are appended to
``bench/results/mcts_batching.jsonl``, keyed by the settings, and reused: a stopped run resumes.

``--virtual visit`` runs the settings with ``MCTSConfig(virtual="visit")`` (pending leaves keep
their edges' values, only the exploration term drops), written to ``mcts_batching_visit.*``.

    python -m bench mcts_batching [--puzzles 30] [--simulations 24] [--k 4] [--constrain legal|none] [--virtual loss|visit]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from .common import RESULTS, markdown_table, metric, write_results

FIRST_ROW = 800
LOG = RESULTS / "mcts_batching.jsonl"


REVISION = 9  # of the search's draws and work per pass, part of the resume key (9: the legal-call hook without Python index lists; 2: leaves at one edge expand once; 3: the search seed reaches the proposer; 4: the "expansions" setting; 5: its free leaves backed up one by one; 6: leaves at a held edge released, uncounted; 7: the LM keeps freed host memory for reuse; 8: runs record the states of each expansion call)

WIDTH_ROUNDS = 5  # plain-decode measurements per call width, after the runs


def decode_rate(lm, prompts: list[str], rows: int, tokens: int, seed: int = 0) -> float:
    """Generated tokens per second of plain sampling: ``rows`` rows, ``tokens`` each (EOS held off)."""
    from ponder.search.protocols import Step

    roots = [lm.root(p) for p in prompts[:1]]
    lm.clear_cache()
    t0 = time.perf_counter()
    kids = lm.expand(roots, rows, step=Step(max_tokens=tokens, min_tokens=tokens), temperature=1.0, seed=seed)
    dt = time.perf_counter() - t0
    return sum(len(k.step_tokens) for k in kids[0]) / dt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench mcts_batching", description=__doc__.split("\n")[0])
    p.add_argument("--puzzles", type=int, default=30, help="puzzles from row 800")
    p.add_argument("--simulations", type=int, default=24)
    p.add_argument("--k", type=int, default=4, help="calls sampled per expanded state")
    p.add_argument("--leaves", type=int, default=8)
    p.add_argument("--lm", default="smollm2")
    p.add_argument("--data", default=None, help="another game24.csv")
    p.add_argument("--constrain", default="legal", choices=["legal", "none"], help="legal: the model can only write legal calls; none: parse strictly")
    p.add_argument("--virtual", default="loss", choices=["loss", "visit"], help="what a pending leaf's virtual visit does to PUCT's value term (MCTSConfig.virtual)")
    p.add_argument("--time-limit", type=float, default=None, help="stop starting new puzzles after this many seconds (rerun to resume)")
    args = p.parse_args(argv)

    import torch

    import ponder
    from ponder.models import game24
    from ponder.models.tools import LMProposer, ToolGenerator
    from ponder.verifiers.game24 import Game24Value

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    lm = ponder.load(args.lm)
    env = game24.Game24()
    gen = ToolGenerator(env, proposer=LMProposer(lm, temperature=1.0, constrain=args.constrain))
    value = Game24Value()
    puzzles = game24.load(slice(FIRST_ROW, FIRST_ROW + args.puzzles), file=args.data)
    settings = {"1 leaf": (1, "leaves"), f"{args.leaves} leaves": (args.leaves, "leaves"),
                f"{args.leaves} expansions": (args.leaves, "expansions")}
    runs = {name: [] for name in settings}
    # the ceiling: plain decoding at the same row counts (and 8 vs 1), measured between the
    # puzzles, so the load on the machine falls on the searches and on the ceiling alike
    prompt = env.lm_prompt(game24.start(puzzles[0]))
    shapes = {"k": args.k, "leaves*k": args.k * args.leaves, "1": 1, "8": 8}
    rates = {s: [] for s in shapes}
    key = {"simulations": args.simulations, "k": args.k, "leaves": args.leaves, "constrain": args.constrain, "lm": args.lm,
           "revision": REVISION, **({"virtual": args.virtual} if args.virtual != "loss" else {})}
    done = {}
    if LOG.exists():
        for line in LOG.read_text().splitlines():
            row = json.loads(line) if line.strip() else None
            if row and row["key"] == key:
                done[row["puzzle"]] = row
    started = time.time()
    decode_rate(lm, [prompt], args.k * args.leaves, 12)  # warm-up: first-call costs fall on neither path
    for i, puzzle in enumerate(puzzles):
        if puzzle in done:
            for name in settings:
                runs[name].append(done[puzzle]["runs"][name])
            for s_ in shapes:
                rates[s_].append(done[puzzle]["rates"][s_])
            continue
        if args.time_limit is not None and time.time() - started > args.time_limit:
            print(f"[mcts_batching] time limit reached after {i} puzzles; rerun to resume", flush=True)
            break
        for name, (leaves, fill) in settings.items():
            lm.clear_cache()
            t0 = time.perf_counter()
            r = ponder.search("mcts", gen, value, puzzle, simulations=args.simulations, k=args.k, leaves=leaves, goal="continue", seed=i,
                              virtual=args.virtual, fill=fill)
            dt = time.perf_counter() - t0
            found = any(getattr(s, "solved", False) for s in r.tree)
            runs[name].append({"puzzle": puzzle, "seconds": dt, "found": found, "passes": r.info["generator_passes"],
                               "largest_batch": r.info["largest_batch"], "tokens": r.ledger.computed_tokens,
                               "expansion_calls": r.info["expansion_calls"], "states_expanded": r.info["states_expanded"],
                               "batches": r.info["expansion_batches"],
                               "calls": r.ledger.count("tool_calls"), "malformed": r.ledger.count("proposals_malformed"),
                               "proposals": r.ledger.count("proposals")})
            print(f"[mcts_batching] {i + 1}/{len(puzzles)} {name}: {dt:.1f} s, found={found}, passes={r.info['generator_passes']}", flush=True)
        for s_, rows in shapes.items():
            rates[s_].append(decode_rate(lm, [prompt], rows, 12, seed=i))
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(LOG, "a") as fh:
            fh.write(json.dumps({"key": key, "puzzle": puzzle, "runs": {nm: runs[nm][-1] for nm in settings},
                                 "rates": {s_: rates[s_][-1] for s_ in shapes}}) + "\n")
    puzzles = puzzles[: len(runs[next(iter(settings))])]
    med = {s_: float(np.median(v)) for s_, v in rates.items()}
    ceiling_shapes = med["leaves*k"] / med["k"]
    ceiling_8_1 = med["8"] / med["1"]

    names = list(settings)
    base = names[0]
    secs = {nm: np.array([r["seconds"] for r in runs[nm]]) for nm in names}
    found = {nm: float(np.mean([r["found"] for r in runs[nm]])) for nm in names}
    n = len(puzzles)
    table = [{"setting": nm, "puzzles": n, "found": f"{found[nm]:.0%}", "seconds_total": round(float(secs[nm].sum()), 1),
              "passes_mean": float(np.mean([r["passes"] for r in runs[nm]])),
              "expansion_calls_mean": float(np.mean([r["expansion_calls"] for r in runs[nm]])),
              "states_per_expansion_call": round(sum(r["states_expanded"] for r in runs[nm]) / max(1, sum(r["expansion_calls"] for r in runs[nm])), 2),
              "largest_batch": max(r["largest_batch"] for r in runs[nm]),
              "tokens_mean": float(np.mean([r["tokens"] for r in runs[nm]])),
              "malformed_share": round(sum(r["malformed"] for r in runs[nm]) / max(1, sum(r["proposals"] for r in runs[nm])), 3)}
             for nm in names]
    rows = [
        metric(f"plain-decode ceiling: tok/s at {args.k * args.leaves} rows / at {args.k} rows", round(ceiling_shapes, 2), None),
        metric("plain-decode ceiling: tok/s at 8 rows / at 1 row", round(ceiling_8_1, 2), None),
        *[metric(f"found rate, {nm} (puzzles with a solved state in the tree)", round(found[nm], 3), 0.1, puzzles=n) for nm in names],
    ]
    ratios = {nm: float(secs[base].sum() / secs[nm].sum()) for nm in names[1:]}
    for nm, ratio in ratios.items():
        per_puzzle = secs[base] / secs[nm]
        se = math.sqrt(found[base] * (1 - found[base]) / n + found[nm] * (1 - found[nm]) / n)  # SE of the difference
        rows += [
            metric(f"wall-time ratio {base} / {nm} at {args.simulations} simulations", round(ratio, 2), None,
                   per_puzzle_median=round(float(np.median(per_puzzle)), 2), per_puzzle_range=[round(float(per_puzzle.min()), 2), round(float(per_puzzle.max()), 2)]),
            metric(f"wall-time ratio {base} / {nm} as a share of the ceiling at the same shapes", round(ratio / ceiling_shapes, 3), 0.7),
            metric(f"found-rate difference ({nm} - {base}), within 2 SE", round(found[nm] - found[base], 3), None,
                   se=round(se, 3), within_noise=bool(abs(found[nm] - found[base]) <= 2 * se + 1e-12)),
        ]
    # The ceiling at the widths the calls really had: a plain decode's time per step at each width
    # (rows = states x k) summed over each setting's calls, so tree shape (the root's call of one
    # state, passes with fewer new states than leaves) is told apart from the cost of a batched call.
    samples = {w: [] for w in sorted({b * args.k for nm in names for r in runs[nm] for b in r["batches"]})}
    for j in range(WIDTH_ROUNDS):  # round-robin over the widths, so drift in the machine falls on all alike
        for w, got in samples.items():
            got.append(decode_rate(lm, [prompt], w, 12, seed=j))
    width_rates = {w: float(np.median(v)) for w, v in samples.items()}
    width_spread = {w: (float(min(v)), float(max(v))) for w, v in samples.items()}
    if width_rates:
        step_s = {nm: sum(b * args.k / width_rates[b * args.k] for r in runs[nm] for b in r["batches"]) for nm in names}  # s per step
        for nm, ratio in ratios.items():
            ceiling_calls = step_s[base] / step_s[nm]
            rows += [
                metric(f"plain-decode ceiling at the widths of the calls, {base} / {nm}", round(ceiling_calls, 2), None,
                       mean_rows_per_call=round(float(np.mean([b * args.k for r in runs[nm] for b in r["batches"]])), 1)),
                metric(f"wall-time ratio {base} / {nm} as a share of the ceiling at the widths of the calls", round(ratio / ceiling_calls, 3), None),
            ]
    how = "legal calls only (logits mask)" if args.constrain == "legal" else "free sampling, parsed strictly"
    md = (f"# MCTS batching on SmolLM2 (Game of 24, SmolLM2 proposals: {how}; learned value)\n\n"
          + markdown_table(table, list(table[0])) + "\n\n"
          + f"Decode rates (median over the {len(puzzles)} measurements between puzzles, tok/s): " + ", ".join(f"{s} rows: {med[s]:.1f}" for s in shapes) + "\n\n"
          + (f"Decode rates at the widths of the calls (after the runs, median of {WIDTH_ROUNDS} round-robin rounds, range, tok/s): " + ", ".join(f"{w}: {r:.1f} ({width_spread[w][0]:.0f}-{width_spread[w][1]:.0f})" for w, r in width_rates.items()) + "\n\n" if width_rates else "")
          + f"Command: `python -m bench mcts_batching --puzzles {args.puzzles} --simulations {args.simulations} --k {args.k} --constrain {args.constrain}"
          + (f" --virtual {args.virtual}" if args.virtual != "loss" else "") + "`")
    name = "mcts_batching" if args.virtual == "loss" else f"mcts_batching_{args.virtual}"
    write_results(name, {"rows": rows, "virtual": args.virtual, "settings": table, "constrain": args.constrain, "runs": runs, "decode_rates": rates,
                                   "decode_rates_by_width": {str(w): r for w, r in width_rates.items()},
                                   "decode_rate_ranges_by_width": {str(w): r for w, r in width_spread.items()}}, md, metrics=rows)


if __name__ == "__main__":
    main()
