"""Tree searches on GSM8K with SmolLM2 steps: how fast each finds an answer a verifier accepts.

Methods (every step is one line, ``stop="\\n"``): MCTS (PUCT over sampled steps, ``k=3``, 4 leaves
per pass), DVTS (``n=8`` in 4 subtrees of 2), step-level beam search (width 4, 2 expansions) and
best-of-N (``n=16`` whole answers), on the first ``--problems`` GSM8K-train problems (the
repository's copy).

Inside the tree, partial answers are scored by the ``arithmetic`` process verifier (a
calculator). A *finished* answer is scored by the reference: 1 when its final number equals the
reference, else 0. **That terminal reward is an oracle**: it reads the reference answer, so these
figures measure how fast a search *finds* an accepted answer (as pass@k does), not the accuracy a
deployed search would reach without the reference.

Anytime curves from one run at the top budget: a wrapper around the generator watches every
answer the search produces (a node that finished, or whose text states "the answer is", the
same rule by which the tree's verifier switches to the reference) and records the tokens computed (prefill + decode, from the
search's ledger) when the first correct one appears. The found rate at budget ``T`` is the share
of problems whose first correct answer came at or below ``T`` tokens computed.

Results are appended per (method, problem) to ``bench/results/tree_gsm8k.jsonl`` and reused when
their top budget equals ``--tokens``, so the run can be stopped and resumed (``--time-limit``); the
summary covers what is stored at that budget.

    python -m bench tree_gsm8k [--problems 50] [--tokens 1500] [--methods mcts,dvts,beam,best_of_n]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .common import RESULTS, markdown_table, metric, write_results

INSTRUCTION = "\nSolve it step by step, then finish with: The answer is <number>."
METHODS = {
    "mcts": dict(algo="mcts", simulations=None, k=3, leaves=4, step_tokens=48, max_depth=12),
    "dvts": dict(algo="dvts", n=8, width=2, step_tokens=48, max_steps=12),
    "beam": dict(algo="beam", width=4, expansions=2, step_tokens=48, max_steps=12),
    "best_of_n": dict(algo="best_of_n", n=16),
}
LOG = RESULTS / "tree_gsm8k.jsonl"


class Watch:
    """The generator, watching finished answers: records the tokens computed by the active
    search's ledger when the first answer the reference accepts appears."""

    def __init__(self, lm, accept):
        self.lm, self.accept = lm, accept
        self.found_at: int | None = None
        self.finished = 0

    def root(self, prompt, **options):
        return self.lm.root(prompt, **options)

    def expand(self, states, k=1, **options):
        from ponder.search.ledger import active_ledgers

        out = self.lm.expand(states, k, **options)
        for kids in out:
            for c in kids:
                # an answer is stated when the step says "the answer is": the model often goes on
                # after it, so the node need not have finished (EOS) to hold its final number
                if c.finished or "answer is" in c.text.lower():
                    self.finished += 1
                    if self.found_at is None and self.accept(c.text):
                        ledgers = active_ledgers()
                        self.found_at = int(ledgers[-1].computed_tokens) if ledgers else -1
        return out


def terminal_oracle(reference: str):
    """The tree's verifier: the calculator on partial answers, the reference (an oracle) on answers
    that state a final number."""
    from ponder.verifiers import arithmetic, extract_answer, math_answer, verifier

    calc = arithmetic()
    check = math_answer(reference=reference)

    def score(prompt: str, text: str) -> float:
        if extract_answer(text) is not None and "answer is" in text.lower():
            return float(bool(check(prompt, text)))
        return float(calc.score([prompt], [text])[0])

    return verifier(score, name="arithmetic_then_reference", kind="process")


def run_one(lm, method: str, problem: dict, tokens: int, seed: int) -> dict:
    import ponder
    from ponder.verifiers import math_answer

    accept = math_answer(reference=problem["reference"])
    watch = Watch(lm, lambda text: bool(accept(problem["question"], text)))
    options = dict(METHODS[method])
    algo = options.pop("algo")
    if algo in ("beam", "dvts", "mcts"):
        options["stop"] = "\n"
    lm.clear_cache()
    t0 = time.perf_counter()
    r = ponder.search(algo, watch, terminal_oracle(problem["reference"]), problem["question"] + INSTRUCTION,
                      budget={"tokens": tokens}, temperature=0.7, max_new_tokens=256, seed=seed, **options)
    return {"method": method, "index": problem["index"], "budget": tokens, "found_at": watch.found_at, "finished": watch.finished,
            "computed_tokens": int(r.ledger.computed_tokens), "generated_tokens": int(r.ledger.generated_tokens),
            "seconds": time.perf_counter() - t0, "stopped": r.stopped,
            "answer_right": bool(accept(problem["question"], r.answer)) if isinstance(r.answer, str) else False}


def curves(records: list[dict], grid: np.ndarray) -> dict:
    out = {}
    for m in METHODS:
        rs = [r for r in records if r["method"] == m]
        if rs:
            at = np.array([r["found_at"] if r["found_at"] is not None else np.inf for r in rs], dtype=float)
            out[m] = [float(np.mean(at <= t)) for t in grid]
    return out


def plot(grid, found: dict, n: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for m, ys in found.items():
        ax.plot(grid, ys, label=f"{m} ({n[m]} problems)")
    ax.set_xlabel("tokens computed (prefill + decode)")
    ax.set_ylabel("found rate (an accepted answer so far)")
    ax.set_title("GSM8K-train, SmolLM2 steps; the terminal reward is an oracle")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench tree_gsm8k", description=__doc__.split("\n")[0])
    p.add_argument("--problems", type=int, default=50)
    p.add_argument("--tokens", type=int, default=1500, help="the top budget: generated tokens per search")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--lm", default="smollm2")
    p.add_argument("--time-limit", type=float, default=None, help="stop starting new searches after this many seconds")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")
    from ponder import data

    rows = data.gsm8k(args.data)[: args.problems]
    problems = [{"index": i, "question": r["question"], "reference": r["reference"]} for i, r in enumerate(rows)]
    done = {}
    if LOG.exists():
        for line in LOG.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("budget", 1000) == args.tokens:  # only runs at this top budget are reused
                    done[(r["method"], r["index"])] = r
    todo = [(m, pr) for pr in problems for m in methods if (m, pr["index"]) not in done]  # methods interleaved per problem
    if todo:
        import torch

        import ponder

        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
        lm = ponder.load(args.lm)
        started = time.time()
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(LOG, "a") as log:
            for j, (m, pr) in enumerate(todo):
                if args.time_limit is not None and time.time() - started > args.time_limit:
                    print(f"[tree_gsm8k] time limit reached after {j} searches; rerun to resume", flush=True)
                    break
                rec = run_one(lm, m, pr, args.tokens, args.seed + pr["index"])
                done[(m, pr["index"])] = rec
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(f"[tree_gsm8k] {j + 1}/{len(todo)} {m} #{pr['index']}: found_at={rec['found_at']}, "
                      f"{rec['computed_tokens']} tok, {rec['seconds']:.0f} s", flush=True)
    records = [r for (m, i), r in done.items() if m in methods and i < args.problems]
    top = max([r["computed_tokens"] for r in records] + [1])
    grid = np.linspace(0, top, 60)
    found = curves(records, grid)
    n = {m: sum(1 for r in records if r["method"] == m) for m in found}
    table = []
    for m in found:
        rs = [r for r in records if r["method"] == m]
        hits = [r["found_at"] for r in rs if r["found_at"] is not None]
        table.append({"method": m, "problems": len(rs), "found": f"{len(hits) / len(rs):.0%}",
                      "median tokens to first found": float(np.median(hits)) if hits else None,
                      "tokens computed / search": round(float(np.mean([r["computed_tokens"] for r in rs])), 1),
                      "final answer right": f"{np.mean([r['answer_right'] for r in rs]):.0%}",
                      "seconds / search": round(float(np.mean([r["seconds"] for r in rs])), 1)})
    metrics = [metric(f"{t['method']}: found rate at the top budget", float(t["found"].rstrip("%")) / 100, None, problems=t["problems"]) for t in table]
    if found:
        plot(grid, found, n, RESULTS / "tree_gsm8k.png")
    md = ("# Tree searches on GSM8K-train with SmolLM2 steps\n\n"
          "The terminal reward reads the reference answer: **it is an oracle**, so 'found' is how fast a search produces an answer "
          "that the reference accepts, not deployable accuracy.\n\n"
          + (markdown_table(table, list(table[0])) if table else "no results yet")
          + "\n\n![found rate vs tokens](tree_gsm8k.png)\n\n"
          + f"Command: `python -m bench tree_gsm8k --problems {args.problems} --tokens {args.tokens}`")
    write_results("tree_gsm8k", {"rows": metrics, "methods": table, "grid": grid.tolist(), "curves": found}, md, metrics=metrics)


if __name__ == "__main__":
    main()
