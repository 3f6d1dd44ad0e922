"""Best-of-N sampling throughput on SmolLM2: ponder's generator vs ``model.generate``.

Both draw N = 16 samples of exactly 128 new tokens (EOS suppressed until then, so both produce
the same number of tokens) at temperature 1, in one batch, in the same process:

- **ponder**: ``LM.expand([root], 16)``: the prompt is prefilled once and its KV shared by
  the 16 rows through the trie;
- **transformers**: ``model.generate(num_return_sequences=16)``, which prefills the prompt 16 times.

Reported: generated tokens per second of each and their ratio, with a short prompt and with a
~500-token prompt (where sharing the prefill should pay most). Median of ``--repeats`` runs,
the two systems interleaved.

    python -m bench bon_throughput [--quick] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from .common import markdown_table, metric, write_results
from .kv_sharing import prompt_of


def run_case(lm, prompt: str, *, n: int, new_tokens: int, repeats: int) -> dict:
    from ponder import Step

    root = lm.root(prompt)
    ids = torch.tensor([root.tokens])
    ours, theirs = [], []
    for rep in range(repeats):
        lm.clear_cache()
        t0 = time.perf_counter()
        kids = lm.expand([root], n, step=Step(max_tokens=new_tokens, min_tokens=new_tokens), temperature=1.0, seed=rep)[0]
        ours.append(time.perf_counter() - t0)
        assert all(c.n_generated == new_tokens for c in kids)
        torch.manual_seed(rep)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = lm.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                num_return_sequences=n, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            )
        theirs.append(time.perf_counter() - t0)
        assert out.shape == (n, ids.shape[1] + new_tokens)
    tokens = n * new_tokens
    ours_tps, theirs_tps = tokens / statistics.median(ours), tokens / statistics.median(theirs)
    return {"prompt_tokens": len(root.tokens), "ponder_tok_s": ours_tps, "generate_tok_s": theirs_tps, "ratio": ours_tps / theirs_tps,
            "ponder_s": ours, "generate_s": theirs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench bon_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--long-prompt", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="N=4, 16 new tokens, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.new_tokens, args.repeats = 4, 16, 1
    torch.set_num_threads(args.threads)

    import ponder

    lm = ponder.load(args.model)
    lm.expand([lm.root("warm up")], 2, step=ponder.Step(max_tokens=4), seed=0)
    cases = {
        "short prompt": "Write a short story about a robot who learns to paint.",
        "long prompt": prompt_of(lm, args.long_prompt),
    }
    targets = {"short prompt": 1.0, "long prompt": 1.5}
    rows = []
    for case, prompt in cases.items():
        r = run_case(lm, prompt, n=args.n, new_tokens=args.new_tokens, repeats=args.repeats)
        rows.append({"case": case, "prompt_tokens": r["prompt_tokens"], "ponder tok/s": r["ponder_tok_s"], "generate tok/s": r["generate_tok_s"],
                     "ratio": r["ratio"], "target": f">= {targets[case]}", "met": r["ratio"] >= targets[case], "raw": r})
        print(rows[-1])
    md = (
        f"### bon_throughput\n\nSmolLM2-135M-Instruct fp32, {args.threads} threads; best-of-{args.n}, {args.new_tokens} new tokens each "
        f"(EOS suppressed in both), temperature 1; median of {args.repeats} interleaved runs.\n\n"
        + markdown_table(rows, ["case", "prompt_tokens", "ponder tok/s", "generate tok/s", "ratio", "target", "met"])
        + "\n\nCommand: `python -m bench bon_throughput" + (" --quick" if args.quick else "") + "`\n"
    )
    metrics = [metric(f"best-of-{args.n} tok/s, ponder / model.generate ({r['case']})", r["ratio"], targets[r["case"]], ">=") for r in rows]
    write_results("bon_throughput" + ("_quick" if args.quick else ""), {"args": vars(args), "rows": rows}, md, metrics=metrics)


if __name__ == "__main__":
    main()
