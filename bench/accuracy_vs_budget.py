"""Accuracy against compute on GSM8K-train with SmolLM2: greedy, majority@N, pass@N, beam@N.

For each problem (the first ``--problems`` of ``data/gsm8k_train.jsonl``, the repository's copy):

- **greedy**: one answer at temperature 0;
- **samples**: 16 answers at temperature ``--temperature`` from one batched expansion of the
  prompt (its KV shared by all 16); **majority@N** votes over the final numbers of the first N,
  **pass@N** is best-of-N with the reference verifier (an oracle: the upper bound a perfect
  outcome verifier would reach);
- **beam@N**: step-level beam search of width N (2 expansions per beam, steps end at a newline)
  with the ``arithmetic`` process verifier (a calculator; it never sees the reference).

Compute is reported as tokens computed by the model (prefill + decode; for the sample-based
methods: the shared prompt once plus the generated tokens of the first N samples).

Results are appended per problem to ``bench/results/accuracy_vs_budget.jsonl`` and reused on
the next run, so a long run can be resumed; the summary (JSON, markdown, PNG of accuracy vs
tokens computed) covers the problems finished so far, and says how many.

    python -m bench accuracy_vs_budget [--problems 100] [--methods greedy,samples,beam4] [--time-limit 3600]
    python -m bench accuracy_vs_budget --methods ""     # only summarise the stored results
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .common import RESULTS, markdown_table, metric, write_results
from .kv_sharing import gsm8k_file

INSTRUCTION = "\nSolve it step by step, then finish with: The answer is <number>."
NS = (1, 4, 16)
METHODS = ("greedy", "samples", "beam1", "beam4", "beam16")


def load_problems(path: Path | None, n: int) -> list[dict]:
    """The first ``n`` GSM8K problems of ``path`` (default: the repository's copy)."""
    out = []
    with open(gsm8k_file(path)) as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            row = json.loads(line)
            out.append({"index": i, "question": row["question"], "reference": row["answer"].split("####")[-1].strip()})
    return out


def majority(answers: list[str | None]) -> str | None:
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    return max(counts, key=lambda a: (counts[a], -answers.index(a))) if counts else None


def run_greedy(lm, problems, args) -> list[dict]:
    from ponder import Ledger, Step
    from ponder.verifiers import extract_answer, math_answer

    roots = [lm.root(p["question"] + INSTRUCTION) for p in problems]
    ledger = Ledger()
    with ledger.active():
        kids = lm.expand(roots, 1, step=Step(max_tokens=args.max_new_tokens), temperature=0)
    out = []
    for p, root, (child,) in zip(problems, roots, kids):
        right = math_answer(reference=p["reference"])(p["question"], child.text)
        out.append({"index": p["index"], "method": "greedy", "N": 1, "answer": extract_answer(child.text), "right": bool(right),
                    "computed_tokens": len(root.tokens) + child.n_generated, "generated_tokens": child.n_generated})
    return out


def run_samples(lm, problems, args) -> list[dict]:
    from ponder import Step
    from ponder.verifiers import extract_answer, math_answer

    roots = [lm.root(p["question"] + INSTRUCTION) for p in problems]
    kids = lm.expand(roots, max(NS), step=Step(max_tokens=args.max_new_tokens), temperature=args.temperature, seed=args.seed)
    out = []
    for p, root, children in zip(problems, roots, kids):
        answers = [extract_answer(c.text) for c in children]
        check = math_answer(reference=p["reference"])
        right = [bool(check(p["question"], c.text)) for c in children]
        for n in NS:
            computed = len(root.tokens) + sum(c.n_generated for c in children[:n])
            vote = majority(answers[:n])
            out.append({"index": p["index"], "method": "majority", "N": n, "answer": vote,
                        "right": vote is not None and bool(check(p["question"], f"The answer is {vote}")), "computed_tokens": computed})
            out.append({"index": p["index"], "method": "pass", "N": n, "answer": None, "right": any(right[:n]), "computed_tokens": computed})
    return out


def run_beam(lm, problem, width: int, args) -> list[dict]:
    import ponder
    from ponder.verifiers import extract_answer, math_answer

    result = ponder.search(
        "beam", lm, "arithmetic", problem["question"] + INSTRUCTION,
        width=width, expansions=2, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed,
    )
    right = math_answer(reference=problem["reference"])(problem["question"], result.answer)
    return [{"index": problem["index"], "method": "beam", "N": width, "answer": extract_answer(result.answer), "right": bool(right),
             "computed_tokens": result.ledger.computed_tokens, "generated_tokens": result.ledger.generated_tokens}]


def summarise(records: list[dict], n_problems: int) -> list[dict]:
    rows = []
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["method"], r["N"]), []).append(r)
    order = {"greedy": 0, "majority": 1, "pass": 2, "beam": 3}
    for (method, n), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        rows.append({"method": f"{method}@{n}" if method != "greedy" else "greedy", "problems": len(rs),
                     "accuracy": sum(r["right"] for r in rs) / len(rs),
                     "tokens computed / problem": sum(r["computed_tokens"] for r in rs) / len(rs)})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    families: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        families.setdefault(r["method"].split("@")[0], []).append((r["tokens computed / problem"], r["accuracy"]))
    for name, pts in families.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name + (" (oracle)" if name == "pass" else ""))
    ax.set_xscale("log")
    ax.set_xlabel("tokens computed per problem")
    ax.set_ylabel("accuracy (GSM8K train)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench accuracy_vs_budget", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--data", type=Path, default=None, help="GSM8K JSONL file (default: the repository copy, or $PONDER_DATA)")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--methods", default="greedy,samples,beam4")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2, help="problems per batched call (samples: 16 rows each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=None, help="stop starting new work after this many seconds")
    parser.add_argument("--fresh", action="store_true", help="ignore stored per-problem results")
    parser.add_argument("--shard", default="0/1", help="i/k: run only problems whose index is i mod k (one process per core)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        shard, shards = (int(x) for x in args.shard.split("/"))
        assert 0 <= shard < shards
    except (ValueError, AssertionError):
        raise SystemExit(f"--shard must be i/k with 0 <= i < k, got {args.shard!r}") from None
    methods = [m for m in args.methods.split(",") if m]  # "" only summarises what is stored
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; valid: {', '.join(METHODS)}")

    import ponder

    store = RESULTS / "accuracy_vs_budget.jsonl"
    RESULTS.mkdir(parents=True, exist_ok=True)
    records = [] if args.fresh or not store.exists() else [json.loads(line) for line in open(store)]
    done = {(r["index"], r["run"]) for r in records}
    problems = load_problems(args.data, args.problems)
    lm = ponder.load(args.model, seed=args.seed) if methods else None
    started = time.perf_counter()

    def out_of_time() -> bool:
        return args.time_limit is not None and time.perf_counter() - started > args.time_limit

    def save(new: list[dict], run: str) -> None:
        with open(store, "a") as f:
            for r in new:
                r["run"] = run
                f.write(json.dumps(r) + "\n")
        records.extend(new)

    for method in methods:
        todo = [p for p in problems if (p["index"], method) not in done and p["index"] % shards == shard]
        batch = 8 if method == "greedy" else args.batch
        for start in range(0, len(todo), batch if not method.startswith("beam") else 1):
            if out_of_time():
                break
            chunk = todo[start : start + (batch if not method.startswith("beam") else 1)]
            lm.clear_cache()
            t0 = time.perf_counter()
            if method == "greedy":
                new = run_greedy(lm, chunk, args)
            elif method == "samples":
                new = run_samples(lm, chunk, args)
            else:
                new = run_beam(lm, chunk[0], int(method[4:]), args)
            save(new, method)
            print(f"[accuracy_vs_budget] {method}: problems {[p['index'] for p in chunk]} in {time.perf_counter() - t0:.0f} s", flush=True)

    records = [json.loads(line) for line in open(store)] if store.exists() else records  # other runs may have appended
    kept = [r for r in records if r["index"] < args.problems]
    rows = summarise(kept, args.problems)
    png = RESULTS / "accuracy_vs_budget.png"
    plot(rows, png)
    md = (
        f"### accuracy_vs_budget\n\nSmolLM2-135M-Instruct fp32 on the first {args.problems} GSM8K-train problems "
        f"(rows say how many are finished); at most {args.max_new_tokens} new tokens, sampling temperature {args.temperature}. "
        "pass@N uses the reference answer (an oracle verifier); beam uses the arithmetic (calculator) process verifier.\n\n"
        + markdown_table(rows, ["method", "problems", "accuracy", "tokens computed / problem"])
        + f"\n\n![accuracy vs tokens]({png.name})\n\nCommand: `python -m bench accuracy_vs_budget --problems {args.problems} --methods "
        + ",".join(m for m in METHODS if any(r["run"] == m for r in kept)) + "` (resumable: it skips problems already stored in "
        + "accuracy_vs_budget.jsonl; `--fresh` starts over)\n"
    )
    metrics = [metric(f"accuracy, {r['method']} ({r['problems']} problems)", r["accuracy"]) for r in rows]
    metrics += [metric(f"tokens computed / problem, {r['method']}", r["tokens computed / problem"]) for r in rows]
    write_results("accuracy_vs_budget", {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, md, metrics=metrics)


if __name__ == "__main__":
    main()
