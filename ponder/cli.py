"""The ``ponder`` command line.

    ponder search --model smollm2 --algo beam --verifier arithmetic --prompt "..." [--reference 42] [--json]
    ponder list
    ponder bench NAME [options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def _value(text: str):
    """Parse a --set value: int, float, bool, or string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _progress(budget, total_hint: int | None):
    """A tqdm bar over the budget's tightest cap (tokens when set), updated after every step."""
    from tqdm.auto import tqdm

    if budget is not None and budget.tokens:
        bar = tqdm(total=budget.tokens, unit="tok", desc="budget", file=sys.stderr, leave=False)
        key = "generated_tokens"
    elif budget is not None and budget.verifier_calls:
        bar = tqdm(total=budget.verifier_calls, unit="call", desc="budget", file=sys.stderr, leave=False)
        key = "verifier_calls"
    else:
        bar = tqdm(total=total_hint, unit="tok", desc="generated", file=sys.stderr, leave=False)
        key = "generated_tokens"

    def update(ledger, _budget=None):
        done = getattr(ledger, key)
        bar.update(max(0, done - bar.n))
        bar.set_postfix_str(f"computed {ledger.computed_tokens} cached {ledger.cached_tokens}", refresh=False)

    update.close = bar.close
    return update


def cmd_search(args) -> int:
    import ponder
    from ponder import verifiers

    config = {}
    for item in args.set or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        config[key.replace("-", "_")] = _value(value)
    budget = ponder.Budget(tokens=args.budget_tokens, verifier_calls=args.budget_verifier_calls, seconds=args.budget_seconds)
    verifier = None
    if args.verifier:
        # --reference configures math_answer; for other verifiers it only reports right/wrong
        kwargs = {"reference": args.reference} if args.reference is not None and args.verifier == "math_answer" else {}
        verifier = verifiers.get(args.verifier, **kwargs)
    print(f"loading {args.model} ...", file=sys.stderr)
    generator = ponder.load(args.model, seed=args.seed)
    progress = _progress(budget, None)
    try:
        result = ponder.search(args.algo, generator, verifier, args.prompt, budget=budget, progress=progress, **config)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
        return 0
    print(result.answer)
    print("---")
    if args.reference is not None:
        right = verifiers.math_answer(reference=args.reference)(args.prompt, result.answer)
        print(f"answer {verifiers.extract_answer(result.answer)!r} vs reference {args.reference!r}: {'right' if right else 'wrong'}")
    print(f"stopped: {result.stopped}")
    print(f"ledger: {result.ledger}")
    return 0


def cmd_list(args) -> int:
    import ponder
    from ponder import verifiers
    from ponder.models import MODELS

    print("algorithms:", ", ".join(sorted(ponder.search.ALGORITHMS)))
    print("verifiers: ", ", ".join(sorted(verifiers.available())))
    print("models:    ", ", ".join(f"{name} ({what})" for name, what in MODELS.items()), "| or a local Hugging Face directory")
    print("benchmarks:", ", ".join(_benchmarks()))
    return 0


def _benchmarks() -> list[str]:
    """The benchmark names, as ``python -m ponder.bench`` lists them (the front door does not import
    bench/, which sits above it: bench uses the front door)."""
    out = subprocess.run([sys.executable, "-m", "ponder.bench"], capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("benchmarks:")), "benchmarks: (none found)")
    return [name.strip() for name in line.split(":", 1)[1].split("|")[0].split(",") if name.strip()]


def cmd_bench(args) -> int:
    """Run ``python -m ponder.bench NAME ...`` (installed with ponder; works from any directory)."""
    return subprocess.call([sys.executable, "-m", "ponder.bench", args.name, *args.rest])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ponder", description="Inference-time search and steering.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run a search around a model with a verifier")
    s.add_argument("--model", default="smollm2", help="model name or local Hugging Face directory (default smollm2)")
    s.add_argument("--algo", default="best_of_n", help="algorithm (see `ponder list`)")
    s.add_argument("--verifier", default=None, help="verifier name (see `ponder list`)")
    s.add_argument("--prompt", required=True)
    s.add_argument("--reference", default=None, help="reference answer for math_answer (and to report right/wrong)")
    s.add_argument("--budget-tokens", type=int, default=None, help="cap on generated tokens")
    s.add_argument("--budget-verifier-calls", type=int, default=None)
    s.add_argument("--budget-seconds", type=float, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="algorithm config, e.g. --set n=8 --set temperature=0.7")
    s.add_argument("--json", action="store_true", help="print the whole result as JSON")
    s.set_defaults(fn=cmd_search)

    li = sub.add_parser("list", help="list algorithms, verifiers, models and benchmarks")
    li.set_defaults(fn=cmd_list)

    b = sub.add_parser("bench", help="run a benchmark (results go to bench/results/ of the installed source)")
    b.add_argument("name")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ponder.search.errors import PonderError

    try:
        return args.fn(args)
    except PonderError as exc:
        print(f"ponder: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
