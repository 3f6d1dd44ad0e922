"""``make demo``: the shop window, one section per family, each with a time budget.

    python -m ponder.demo                      # every section
    python -m ponder.demo --section gsm8k      # one (repeatable, or a comma list)
    python -m ponder.demo --list               # the sections and their budgets

Sections today:

- **gsm8k** (budget 150 s): greedy vs majority@4 vs step-level beam search on two short
  GSM8K-train problems with SmolLM2. Majority draws four answers and the most frequent final
  number wins (no verifier). Beam (width 2, 2 expansions per beam, steps end at a newline) is
  scored by the ``arithmetic`` process verifier, a calculator that checks every equation.
  Majority and beam share one token budget. Each answer is checked against the reference
  afterwards (the searches never see it) and printed with its ledger: tokens computed vs served
  from the shared KV cache, forward calls, verifier calls, wall time.
- **game24** (budget 40 s): four Game of 24 puzzles from the held-out rows (800+). SmolLM2 writes
  an expression alone (greedy), checked exactly; DFS, A* with the learned value and A* with the
  learned policy call add/sub/mul/div tools on exact fractions, with the operations each tried.

- **digits** (budget 30 s): FK steering of the digits DDPM (k = 8, max potential) to three
  target classes vs plain sampling, judged by a second classifier; a sample grid PNG.
- **lipogram** (budget 60 s): a sentence without the letter "e" on three topics: best-of-8,
  locally constrained (masked) sampling and SMC with the same mask (8 particles), with fluency
  (mean per-token log p under the unmasked model) and the tokens each computed.

A family adds its section as one function ``section(args, lm) -> None`` and one entry of
:data:`SECTIONS`. A section's budget is what it may spend on a quiet 2-core machine; the demo
prints each section's budget beside its elapsed time, and the whole stays under 5 minutes. Data
come from the repository's copy (``ponder.data``; ``--data`` or ``$PONDER_DATA`` move it).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Callable

INSTRUCTION = "\nSolve it step by step, then finish with: The answer is <number>."
DEFAULT_PROBLEMS = "132,94"  # two short GSM8K-train problems (0-based line numbers)
DEFAULT_PUZZLES = "800,950,1100,1250"  # Game of 24 rows of the held-out part (800+), easy to hard
GAME24_PROMPT = ("Use each of the numbers {numbers} exactly once, with + - * / and parentheses, to make 24. "
                 "Reply with only the expression.")


def load_problems(path: Path | None, indices: list[int]) -> list[dict]:
    """GSM8K-train problems by line number (``path``: a JSONL file; default: the repository's copy)."""
    from ponder import data

    try:
        rows = data.gsm8k(path)
    except data.DataNotFound as exc:
        raise SystemExit(str(exc)) from None
    bad = [i for i in indices if not 0 <= i < len(rows)]
    if bad:
        raise SystemExit(f"--problems {bad} outside the {len(rows)} problems of the GSM8K file")
    return [{"index": i, "question": rows[i]["question"], "reference": rows[i]["reference"]} for i in indices]


def gsm8k_section(args, lm) -> None:
    """Greedy vs majority@4 vs beam search with the calculator verifier, on GSM8K problems."""
    import ponder
    from ponder.verifiers import extract_answer, math_answer

    problems = load_problems(args.data, [int(i) for i in args.problems.split(",")])
    print(
        "SmolLM2-135M is a tiny model: it solves about 1% of GSM8K problems greedily (see `python -m bench "
        "accuracy_vs_budget`), so expect wrong answers; this section shows how each method spends compute.\n"
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


def game24_section(args, lm) -> None:
    """SmolLM2 answering alone vs A* over arithmetic tool calls with the learned heuristics."""
    import ponder
    from ponder.models import game24
    from ponder.models.tools import ToolGenerator
    from ponder.verifiers.game24 import Game24Policy, Game24Value

    rows = game24.load(file=args.puzzles_file)
    puzzles = [(int(i), rows[int(i)]) for i in args.puzzles.split(",")]
    gen = ToolGenerator(game24.Game24())
    value, policy = Game24Value(), Game24Policy()
    print("Each puzzle: four numbers to combine into 24. SmolLM2 writes an expression in one go (greedy); the searches "
          "call add/sub/mul/div tools on exact fractions, at most 700 operations each. 'ops' counts executed calls; "
          "'scored' the calls a policy judged before running them.\n")
    methods = {
        "SmolLM2 alone": None,
        "DFS": dict(verifier=None, order="dfs"),
        "A* + value": dict(verifier=value),
        "A* + policy": dict(verifier=policy, heuristic_on="calls", path_weight=0.1),  # as bench game24 runs it
    }
    totals = {m: [0, 0, 0, 0.0] for m in methods}  # solved, ops, tokens, seconds
    print(f"{'puzzle':<16} {'method':<14} {'solved':<7} {'ops':>5} {'scored':>7} {'tokens':>7} {'seconds':>8}  answer")
    for row, puzzle in puzzles:
        for name, options in methods.items():
            if options is None:
                lm.clear_cache()
                r = ponder.search("majority", lm, None, GAME24_PROMPT.format(numbers=puzzle), n=1, temperature=0.0, max_new_tokens=32)
                ok, why = game24.check_answer(puzzle, r.answer)
                answer = f"{r.answer.strip().splitlines()[0] if r.answer.strip() else ''!r} ({why})"
                ops = scored = 0
            else:
                opts = dict(options)
                r = ponder.search("astar", gen, opts.pop("verifier"), puzzle, budget={"tool_calls": 700}, **opts)
                ok = bool(r.info["solved"])
                answer = game24.expression(puzzle, [s.call for s in r.best.path()[1:]]) if ok else f"not solved ({r.stopped})"
                ops, scored = int(r.ledger.count("tool_calls")), int(r.ledger.count("calls_scored"))
            led = r.ledger
            t = totals[name]
            t[0] += ok
            t[1] += ops
            t[2] += led.computed_tokens
            t[3] += led.wall_time
            label = f"#{row} {puzzle}" if name == "SmolLM2 alone" else ""
            print(f"{label:<16} {name:<14} {'yes' if ok else 'no':<7} {ops:>5} {scored:>7} {led.computed_tokens:>7} {led.wall_time:>8.2f}  {answer}")
    print(f"\n{'method':<14} {'solved':>7} {'ops':>6} {'tokens':>7} {'seconds':>8}")
    for name, (ok, ops, tokens, seconds) in totals.items():
        print(f"{name:<14} {ok:>3}/{len(puzzles):<3} {ops:>6} {tokens:>7} {seconds:>8.2f}")


DIGIT_TARGETS = (3, 5, 8)


def digits_section(args, lm) -> None:
    """FK steering of the digits DDPM towards target classes, against plain sampling."""
    import numpy as np
    import torch

    import ponder
    from ponder import verifiers
    from ponder.search.fk import best_per_prompt

    gen = ponder.load("digits-ddpm", steps=50, seed=args.seed)
    reward, judge = verifiers.get("digit_class"), verifiers.get("digit_judge")
    runs = 8
    targets = [c for c in DIGIT_TARGETS for _ in range(runs)]
    print(f"The DDPM samples any digit; FK steering with k=8 particles per run, the max potential and the reward log p(target | x0) "
          f"of one classifier, resampling every 5 of 50 steps, should land on the target. A second classifier, trained on a "
          f"disjoint split, judges {runs} runs per target.\n")
    rows, grids = {}, {}
    for name in ("plain", "fk k=8"):
        t0 = time.perf_counter()
        if name == "plain":
            images = torch.stack([s.x for s in gen.sample(targets, seed=args.seed)])
            evals = 50
        else:
            r = ponder.search("fk", gen, reward, targets, k=8, potential="max", lam=2.0, every=5, seed=args.seed)
            images = torch.stack([b.x for b in best_per_prompt(r)])
            evals = r.ledger.count("denoiser_evals") / len(targets)
        pred = np.asarray(judge.probs(images)).argmax(axis=1)
        rows[name] = (float((pred == np.array(targets)).mean()), evals, time.perf_counter() - t0)
        grids[name] = images
    print(f"{'method':<10} {'on target (judge)':>18} {'denoiser evals/run':>19} {'seconds':>8}")
    for name, (acc, evals, sec) in rows.items():
        print(f"{name:<10} {acc:>17.0%} {evals:>19.0f} {sec:>8.1f}")
    path = Path(args.out_dir) / "demo_digits.png"
    _save_grid(path, [grids["plain"], grids["fk k=8"]])
    print(f"\nsamples (rows: plain, then FK; targets {', '.join(map(str, DIGIT_TARGETS))} in blocks of {runs}): {path}")


LIPOGRAM_TOPICS = ("the ocean", "a rainy day", "a city at night")


def lipogram_section(args, lm) -> None:
    """A lipogram (no letter "e") by SMC over SmolLM2, beside best-of-N and locally constrained sampling."""
    import ponder
    from ponder.verifiers import Lipogram

    no_e = Lipogram("e")
    n, tokens = 8, 32
    end = (".", "!", "?", "\n")  # one sentence: a particle finishes at its first sentence end
    print(f"One sentence without the letter 'e'. Best-of-{n} samples freely and keeps a sample that passes, if any; "
          f"masked sampling bans every token with an 'e' (one sample); SMC runs {n} particles with the same mask, "
          f"weights each by the probability mass the mask left it (log p - log q) and resamples, so it keeps the "
          f"sentences the model itself finds likely. Fluency: mean log p per token under the unmasked model (higher "
          f"is better); at most {tokens} tokens, every method at temperature 0.5.\n")
    common = dict(max_new_tokens=tokens, end=end, temperature=0.5)  # SMC targets p^2 (power 0.5): the same sharpening
    methods = {  # best-of-N is importance sampling with 1/0 weights: N free samples, a passing one kept
        f"best-of-{n}": lambda q, seed: ponder.search("smc", lm, no_e, q, n=n, outcome="log", resample="never", select="sample",
                                                     power=0.5, seed=seed, **common),
        "masked": lambda q, seed: ponder.search("smc", lm, None, q, n=1, mask=no_e, resample="never", seed=seed, **common),
        f"smc n={n}": lambda q, seed: ponder.search("smc", lm, no_e, q, n=n, mask=no_e, outcome="log", select="sample",
                                                   power=0.5, seed=seed, **common),
    }
    print(f"{'method':<10} {'no e':>5} {'fluency':>8} {'tokens':>7} {'seconds':>8}  text")
    tally = {name: [0, [], 0] for name in methods}  # passed, fluencies, tokens computed
    for i, topic in enumerate(LIPOGRAM_TOPICS):
        prompt = f"Write one sentence about {topic}."
        print(f"-- {prompt}")
        for name, go in methods.items():
            t0 = time.perf_counter()
            r = go(prompt, args.seed + i)
            best = r.best
            ok = best is not None and no_e.holds(best.text)
            fluency = f"{best.logprob / max(best.n_generated, 1):.2f}" if ok else "-"
            text = best.text.strip().replace("\n", " ")[:60] if best is not None else "(no sample passed)"
            print(f"{name:<10} {'yes' if ok else 'no':>5} {fluency:>8} {r.ledger.computed_tokens:>7} {time.perf_counter() - t0:>8.1f}  {text!r}")
            tally[name][0] += ok
            tally[name][1] += [best.logprob / max(best.n_generated, 1)] if ok else []
            tally[name][2] += r.ledger.computed_tokens
    print(f"\n{'method':<10} {'passed':>7} {'mean fluency':>13} {'tokens':>7}")
    for name, (passed, fl, spent) in tally.items():
        mean = f"{sum(fl) / len(fl):.2f}" if fl else "-"
        print(f"{name:<10} {passed:>4}/{len(LIPOGRAM_TOPICS)} {mean:>13} {spent:>7}")


def _save_grid(path: Path, rows) -> None:
    """Write image rows ([n, 1, 8, 8] in [-1, 1] each) as one upscaled greyscale PNG."""
    import numpy as np
    from PIL import Image

    tiles = [np.concatenate([np.pad(((im[0].clamp(-1, 1).numpy() + 1) * 127.5), 1) for im in row], axis=1) for row in rows]
    grid = np.concatenate(tiles, axis=0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 6, grid.shape[0] * 6), Image.NEAREST).save(path)


@dataclasses.dataclass(frozen=True)
class Section:
    """One part of the demo: its function, the seconds it may take, and what it shows."""

    run: Callable
    budget_seconds: float
    what: str


SECTIONS: dict[str, Section] = {
    "gsm8k": Section(gsm8k_section, 150, "greedy vs majority@4 vs beam search with a calculator verifier, on GSM8K"),
    "game24": Section(game24_section, 40, "Game of 24: SmolLM2 alone vs DFS vs A* over arithmetic tool calls with learned heuristics"),
    "digits": Section(digits_section, 30, "FK steering of the digits DDPM to target classes vs plain sampling, judged by a second classifier"),
    "lipogram": Section(lipogram_section, 60, "a sentence without 'e': SMC with a token mask vs best-of-N vs masked sampling, by fluency"),
}


def _sections(chosen: list[str] | None) -> list[str]:
    names = [n for item in (chosen or []) for n in item.split(",") if n] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown demo section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ponder.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--section", action="append", help=f"section(s) to run: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--list", action="store_true", help="list the sections and their time budgets")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--data", type=Path, default=None, help="GSM8K JSONL file (default: the repository copy, or $PONDER_DATA)")
    parser.add_argument("--problems", default=DEFAULT_PROBLEMS, help="gsm8k: comma-separated line numbers of the GSM8K file")
    parser.add_argument("--puzzles", default=DEFAULT_PUZZLES, help="game24: comma-separated rows of game24.csv")
    parser.add_argument("--puzzles-file", type=Path, default=None, help="game24: another game24.csv")
    parser.add_argument("--budget", type=int, default=640, help="gsm8k: generated-token budget of majority and beam")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".", help="digits: where the sample grid PNG is written")
    args = parser.parse_args(argv)
    names = _sections(args.section)
    if args.list:
        for name, section in SECTIONS.items():
            print(f"{name:<10} {section.budget_seconds:>5.0f} s  {section.what}")
        return

    import torch

    import ponder

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    print(f"loading {args.model} (the first run converts the GGUF file, ~30 s) ...", flush=True)
    lm = ponder.load(args.model, seed=args.seed)
    print(f"loaded in {time.perf_counter() - t0:.1f} s")
    spent = {}
    for name in names:
        section = SECTIONS[name]
        print(f"\n#### section {name}: {section.what} (budget {section.budget_seconds:.0f} s)\n", flush=True)
        started = time.perf_counter()
        section.run(args, lm)
        spent[name] = time.perf_counter() - started
        over = " (over its budget)" if spent[name] > section.budget_seconds else ""
        print(f"\n#### section {name} took {spent[name]:.0f} s of its {section.budget_seconds:.0f} s{over}")
    print("\n" + ", ".join(f"{n} {s:.0f} s / {SECTIONS[n].budget_seconds:.0f} s" for n, s in spent.items()))
    print(f"total wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
