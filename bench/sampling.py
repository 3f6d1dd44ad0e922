"""Token sampling: ponder's inverse-CDF draw vs ``torch.multinomial`` on SmolLM2-sized logits.

Both draw one token per row from softmax(logits) over a 49,152-token vocabulary (SmolLM2's);
``torch.multinomial`` draws an exponential variate per vocabulary entry, ponder's
:meth:`Sampling.draw` one uniform per row against a cumulative sum. Reported as the ratio of
median times multinomial / ponder per batch size (tests/test_sampling.py checks the draws
follow the right distribution).

    python -m bench sampling [--rows 1,16,32] [--vocab 49152] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from .common import interleaved_medians, markdown_table, metric, write_results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench sampling", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1,16,32")
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ponder.models.sampling import Sampling

    sampling = Sampling()
    rows = []
    for r in (int(x) for x in args.rows.split(",")):
        logits = torch.randn(r, args.vocab, generator=torch.Generator().manual_seed(r)) * 3  # [R, V]
        gen = torch.Generator().manual_seed(0)
        fns = {
            "ponder": lambda: sampling.draw(logits, gen),
            "multinomial": lambda: torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen),
        }
        times = interleaved_medians({k: (lambda f=f: [f() for _ in range(20)]) for k, f in fns.items()}, rounds=args.rounds)
        rows.append({"rows": r, "ponder ms": times["ponder"] / 20 * 1e3, "multinomial ms": times["multinomial"] / 20 * 1e3,
                     "multinomial / ponder": times["multinomial"] / times["ponder"]})
        print(f"[sampling] {rows[-1]}", flush=True)
    markdown = (
        "### sampling\n\n"
        f"One token per row from softmax over {args.vocab} logits, {args.threads} thread(s); per call, median of "
        f"{args.rounds} alternating rounds of 20 calls.\n\n"
        + markdown_table(rows, ["rows", "ponder ms", "multinomial ms", "multinomial / ponder"])
        + f"\n\nCommand: `python -m bench sampling --rows {args.rows} --vocab {args.vocab} --threads {args.threads}`\n"
    )
    metrics = [metric(f"multinomial / ponder time, {r['rows']} rows", r["multinomial / ponder"]) for r in rows]
    write_results("sampling", {"args": vars(args), "rows": rows}, markdown, metrics=metrics)
    print(markdown)


if __name__ == "__main__":
    main()
