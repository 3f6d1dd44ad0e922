"""Host memory: SmolLM2 sampling at 8 and 64 rows with ``LM(host_memory="keep")`` against "system".

``"keep"`` sets glibc's mmap threshold to 32 MiB and its trim threshold to 1 GiB
(:mod:`ponder.models.host_memory`), so the wide temporaries of a decode step (64 rows of logits
are 12.6 MB) reuse freed heap pages instead of faulting fresh ``mmap`` pages in at every step.
The setting is process-wide and cannot be taken back cleanly, so each measurement runs in a fresh
process: ``rounds`` pairs of processes, the two modes alternating, each loading SmolLM2, warming
up once at 64 rows and then timing ``repeat`` plain decodes (one prompt, ``k`` rows, exactly
``tokens`` new tokens, EOS held off) per row count, interleaved. Also reported: each process's
peak resident memory (``ru_maxrss``), the price of keeping freed pages.

Target, fixed before the run: "keep" decodes 64 rows >= 1.2x as fast as "system" (medians over
the rounds) and 8 rows no slower than 0.95x.

    python -m bench host_memory [--rounds 3] [--repeat 3] [--tokens 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROWS = (8, 64)
MODES = ("system", "keep")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench host_memory", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tokens", type=int, default=12)
    p.add_argument("--lm", default="smollm2")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(_worker(json.loads(args.worker))), flush=True)
        return

    from .common import markdown_table, metric, write_results

    runs = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            out = _spawn({"mode": mode, "repeat": args.repeat, "tokens": args.tokens, "lm": args.lm, "seed": r})
            runs[mode].append(out)
            print(f"[host_memory] round {r + 1}/{args.rounds} {mode}: " + ", ".join(f"{k} rows {out['rates'][str(k)]:.1f} tok/s" for k in ROWS)
                  + f", peak RSS {out['peak_rss_mb']:.0f} MB", flush=True)
    med = {m: {k: statistics.median(o["rates"][str(k)] for o in runs[m]) for k in ROWS} for m in MODES}
    rng = {m: {k: [min(o["rates"][str(k)] for o in runs[m]), max(o["rates"][str(k)] for o in runs[m])] for k in ROWS} for m in MODES}
    rss = {m: statistics.median(o["peak_rss_mb"] for o in runs[m]) for m in MODES}
    ratio = {k: med["keep"][k] / med["system"][k] for k in ROWS}
    rows = [
        metric("decode speed-up at 64 rows, keep / system", round(ratio[64], 2), 1.2, ">=",
               keep_tok_s=round(med["keep"][64], 1), system_tok_s=round(med["system"][64], 1), keep_range=rng["keep"][64], system_range=rng["system"][64]),
        metric("decode speed-up at 8 rows, keep / system", round(ratio[8], 2), 0.95, ">=",
               keep_tok_s=round(med["keep"][8], 1), system_tok_s=round(med["system"][8], 1), keep_range=rng["keep"][8], system_range=rng["system"][8]),
        metric("batch 64 / batch 8 tok/s, keep", round(med["keep"][64] / med["keep"][8], 2), None),
        metric("batch 64 / batch 8 tok/s, system", round(med["system"][64] / med["system"][8], 2), None),
        metric("peak resident memory, keep / system", round(rss["keep"] / rss["system"], 2), None, keep_mb=round(rss["keep"]), system_mb=round(rss["system"])),
    ]
    table = [{"mode": m, **{f"{k} rows tok/s": f"{med[m][k]:.1f} ({rng[m][k][0]:.1f}-{rng[m][k][1]:.1f})" for k in ROWS},
              "peak RSS MB": round(rss[m])} for m in MODES]
    md = ("# Host memory: SmolLM2 sampling with glibc keeping freed pages (`keep`) or not (`system`)\n\n"
          + markdown_table(table, list(table[0])) + "\n\n"
          + f"Medians (min-max) over {args.rounds} fresh processes per mode, alternating; {args.repeat} decodes of {args.tokens} tokens per row count in each.\n\n"
          + f"Command: `python -m bench host_memory --rounds {args.rounds} --repeat {args.repeat} --tokens {args.tokens}`")
    write_results("host_memory", {"rows": rows, "runs": runs}, md, metrics=rows)


def _spawn(config: dict) -> dict:
    cmd = [sys.executable, "-m", "ponder.bench.host_memory", "--worker", json.dumps(config)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"host_memory worker failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _worker(config: dict) -> dict:
    import resource

    import torch

    import ponder
    from ponder.models import game24

    from .mcts_batching import FIRST_ROW, decode_rate

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    lm = ponder.load(config["lm"], host_memory=config["mode"])
    prompt = game24.Game24().lm_prompt(game24.start(game24.load(slice(FIRST_ROW, FIRST_ROW + 1))[0]))
    decode_rate(lm, [prompt], max(ROWS), config["tokens"])  # warm-up
    rates = {k: [] for k in ROWS}
    for i in range(config["repeat"]):
        for k in ROWS:
            rates[k].append(decode_rate(lm, [prompt], k, config["tokens"], seed=1000 * config["seed"] + i))
    return {"rates": {str(k): statistics.median(v) for k, v in rates.items()},
            "all_rates": {str(k): v for k, v in rates.items()},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    main()
