"""Run a benchmark by name: ``python -m bench NAME [options]``; ``python -m bench all`` runs every one.

Each benchmark is a module ``bench/NAME.py`` with ``main(argv) -> None`` that writes
``bench/results/NAME.json`` and ``bench/results/NAME.md``.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("kv_sharing", "live_cache", "sampling", "kernels", "bon_throughput", "accuracy_vs_budget", "game24", "mcts_batching", "tree_gsm8k", "fk_digits", "smc_lm", "host_memory")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS), "| all")
        return
    name, rest = argv[0], argv[1:]
    names = BENCHMARKS if name == "all" else (name,)
    for n in names:
        if n not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {n!r}; valid: {', '.join(BENCHMARKS)}, all")
        try:
            module = importlib.import_module(f".{n}", __package__)
        except ModuleNotFoundError as exc:
            if name == "all" and exc.name == f"{__package__}.{n}":
                print(f"[bench] {n}: not written yet, skipped")
                continue
            raise
        print(f"[bench] {n}")
        module.main(rest)


if __name__ == "__main__":
    main()
