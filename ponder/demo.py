"""``make demo``: greedy vs majority vote vs beam search on GSM8K problems, with SmolLM2.

For a few short GSM8K-train problems, three ways of spending compute on the same model:

- **greedy**: one answer at temperature 0;
- **majority@4**: four sampled answers, the most frequent final number wins (no verifier);
- **beam**: step-level beam search (width 2, 2 expansions per beam, steps end at a newline)
  scored by the ``arithmetic`` process verifier, a calculator that checks every equation.

Majority and beam share the same token budget. Each answer is checked against the reference
afterwards (the searches never see it) and printed with its ledger: tokens computed vs served
from the shared KV cache, forward calls, verifier calls, wall time.

    python -m ponder.demo [--problems 132,94,126] [--budget 640] [--max-new-tokens 160]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k_train.jsonl"
INSTRUCTION = "\nSolve it step by step, then finish with: The answer is <number>."
DEFAULT_PROBLEMS = "132,94,126"  # three short GSM8K-train problems (0-based line numbers)


def load_problems(path: Path, indices: list[int]) -> list[dict]:
    if not path.exists():
        raise SystemExit(f"GSM8K data not found at {path}; pass --data PATH (see ../shared/data/README.md)")
    rows = path.read_text().splitlines()
    out = []
    for i in indices:
        row = json.loads(rows[i])
        out.append({"index": i, "question": row["question"], "reference": row["answer"].split("####")[-1].strip()})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ponder.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--problems", default=DEFAULT_PROBLEMS, help="comma-separated line numbers of gsm8k_train.jsonl")
    parser.add_argument("--budget", type=int, default=640, help="generated-token budget of majority and beam")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    import ponder
    from ponder.verifiers import extract_answer, math_answer

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    problems = load_problems(args.data, [int(i) for i in args.problems.split(",")])
    t0 = time.perf_counter()
    print(f"loading {args.model} (the first run converts the GGUF file, ~30 s) ...", flush=True)
    lm = ponder.load(args.model, seed=args.seed)
    print(f"loaded in {time.perf_counter() - t0:.1f} s")
    print(
        "SmolLM2-135M is a tiny model: it solves about 1% of GSM8K problems greedily (see `python -m bench "
        "accuracy_vs_budget`), so expect wrong answers; the demo shows how each method spends compute.\n"
    )

    budget = ponder.Budget(tokens=args.budget)
    common = {"max_new_tokens": args.max_new_tokens, "seed": args.seed}
    methods = {
        "greedy": lambda q: ponder.search("majority", lm, None, q, n=1, temperature=0.0, **common),
        "majority@4": lambda q: ponder.search("majority", lm, None, q, n=4, temperature=0.7, budget=budget, **common),
        "beam 2x2": lambda q: ponder.search(
            "beam", lm, "arithmetic", q, width=2, expansions=2, stop="\n", step_tokens=48, temperature=0.7, budget=budget, **common
        ),
    }
    totals = {name: {"right": 0, "computed": 0, "cached": 0, "seconds": 0.0} for name in methods}
    for p in problems:
        print("=" * 100)
        print(f"GSM8K train #{p['index']}: {p['question']}\n(reference answer: {p['reference']})")
        check = math_answer(reference=p["reference"])
        for name, search in methods.items():
            lm.clear_cache()  # each method starts cold: its ledger counts its own prefill
            result = search(p["question"] + INSTRUCTION)
            answer = extract_answer(result.answer)
            right = bool(check(p["question"], result.answer))
            led = result.ledger
            t = totals[name]
            t["right"] += right
            t["computed"] += led.computed_tokens
            t["cached"] += led.cached_tokens
            t["seconds"] += led.wall_time
            print(f"\n--- {name}: answer {answer!r} ({'right' if right else 'wrong'}), stopped: {result.stopped}")
            print("    " + result.answer.strip().replace("\n", "\n    ")[:600])
            print(f"    ledger: {led}")
    print("=" * 100)
    print(f"\n{'method':<12} {'right':>7} {'tokens computed':>16} {'served from cache':>18} {'seconds':>8}")
    for name, t in totals.items():
        print(f"{name:<12} {t['right']:>3}/{len(problems):<3} {t['computed']:>16} {t['cached']:>18} {t['seconds']:>8.1f}")
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
