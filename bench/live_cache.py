"""The decode cache on SmolLM2: ponder's growing cache vs transformers' DynamicCache.

Both generators are loaded in one process and sample the same best-of-N batch (same seed, so
the same tokens): ``N`` children of one ~200-token prompt, each exactly ``new_tokens`` long
(``min_tokens`` keeps EOS out). Timed in alternating rounds; reported as the ratio of wall
times dynamic / growing (> 1: the growing cache is faster) for each batch size.

    python -m bench live_cache [--batches 4,16] [--new-tokens 160] [--rounds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from .common import interleaved_medians, markdown_table, metric, write_results
from .kv_sharing import prompt_of


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench live_cache", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--batches", default="4,16", help="comma-separated N")
    parser.add_argument("--new-tokens", type=int, default=160)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import ponder
    from ponder import Step

    lms = {mode: ponder.load(args.model, live_cache=mode) for mode in ("growing", "dynamic")}
    prompt = prompt_of(lms["growing"], args.prompt_tokens)
    step = Step(max_tokens=args.new_tokens, min_tokens=args.new_tokens)
    rows, tokens = [], {}

    def sample(mode: str, n: int):
        def run():
            lm = lms[mode]
            lm.clear_cache()
            kids = lm.expand([lm.root(prompt)], n, step=step, seed=0)[0]
            tokens[mode, n] = [k.tokens for k in kids]
        return run

    started = time.perf_counter()
    for n in (int(b) for b in args.batches.split(",")):
        times = interleaved_medians({mode: sample(mode, n) for mode in lms}, rounds=args.rounds)
        generated = n * args.new_tokens
        rows.append({
            "N": n,
            "growing tok/s": generated / times["growing"],
            "dynamic tok/s": generated / times["dynamic"],
            "dynamic / growing": times["dynamic"] / times["growing"],
            "same tokens": tokens["growing", n] == tokens["dynamic", n],
        })
        print(f"[live_cache] N={n}: {rows[-1]}", flush=True)

    columns = ["N", "growing tok/s", "dynamic tok/s", "dynamic / growing", "same tokens"]
    markdown = (
        "### live_cache\n\n"
        f"{args.model} fp32, {args.threads} thread(s); one prompt of {args.prompt_tokens} tokens, N samples of exactly "
        f"{args.new_tokens} new tokens; median of {args.rounds} alternating rounds (after a warm-up), "
        f"{time.perf_counter() - started:.0f} s in all.\n\n"
        + markdown_table(rows, columns)
        + f"\n\nCommand: `python -m bench live_cache --batches {args.batches} --new-tokens {args.new_tokens} "
        f"--rounds {args.rounds} --threads {args.threads}`\n"
    )
    metrics = [metric(f"dynamic / growing wall time, N={r['N']}", r["dynamic / growing"]) for r in rows]
    metrics += [metric("same tokens, growing vs dynamic (all N)", float(all(r["same tokens"] for r in rows)), 1.0, "==")]
    write_results("live_cache", {"args": vars(args), "rows": rows}, markdown, metrics=metrics)
    print(markdown)


if __name__ == "__main__":
    main()
