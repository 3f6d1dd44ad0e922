"""Compiled kernels vs their pure-Python twins and their peers, in one process.

Runs every ``bench/kernel_*.py`` part (trie, heap, MCTS, resampling, archive); each returns rows
``{kernel, case, ours_s, twin_s, peer, peer_s, ratio_vs_twin, ratio_vs_peer, target, met}``
(times are medians of repeated runs, compile/warm-up excluded). Writes JSON, a markdown table
and a PNG bar chart of the ratios to bench/results/.

    python -m bench kernels [--quick] [--only trie,heap]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re

from .common import RESULTS, markdown_table, metric, write_results

PARTS = ("trie", "heap", "mcts", "resample", "archive")


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, twin, peer = [], [], []
    for r in rows:
        peer_name = (r.get("peer") or "").split(" (")[0]
        labels.append(f"{r['kernel']}: {r['case'][:44]}" + (f"\n(peer: {peer_name})" if peer_name else ""))
        twin.append(r.get("ratio_vs_twin") or 0.0)
        peer.append(r.get("ratio_vs_peer") or 0.0)
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(rows) + 1.5))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], twin, height=0.4, label="vs pure-Python twin")
    ax.barh([i - 0.2 for i in y], peer, height=0.4, label="vs peer library")
    ax.set_yticks(list(y), labels, fontsize=7, linespacing=0.9)
    ax.set_xscale("log")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("speed-up (x, log scale; > 1 means ponder is faster)")
    ax.legend(fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench kernels", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--replot", action="store_true", help="redraw the PNG from the stored JSON and exit")
    args = parser.parse_args(argv)
    if args.replot:
        name = "kernels" + ("_quick" if args.quick else "")
        plot(json.loads((RESULTS / f"{name}.json").read_text())["rows"], RESULTS / f"{name}.png")
        return
    rows, missing = [], []
    for part in args.only.split(","):
        if part not in PARTS:
            raise SystemExit(f"unknown kernel {part!r}; valid: {', '.join(PARTS)}")
        try:
            module = importlib.import_module(f".kernel_{part}", __package__)
        except ImportError as exc:
            missing.append(f"{part} ({exc})")
            continue
        print(f"[bench] kernels: {part}")
        rows += module.run(quick=args.quick)
    name = "kernels" + ("_quick" if args.quick else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    ran = set(args.only.split(","))
    stored = RESULTS / f"{name}.json"
    if ran != set(PARTS) and stored.exists():  # a partial run replaces only its kernels' rows
        kept = [r for r in json.loads(stored.read_text())["rows"] if r["kernel"] not in ran]
        rows = sorted(kept + rows, key=lambda r: PARTS.index(r["kernel"]) if r["kernel"] in PARTS else len(PARTS))
    png = RESULTS / f"{name}.png"
    try:
        plot(rows, png)
    except ImportError:
        png = None
    columns = ["kernel", "case", "ours_s", "twin_s", "ratio_vs_twin", "peer", "peer_s", "ratio_vs_peer", "target", "met"]
    md = (
        f"### kernels\n\nMedian times in seconds; ratios > 1 mean ponder's kernel is faster. Threads: "
        f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS')}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}.\n\n"
        + markdown_table(rows, columns)
        + ("\n\nNot run: " + "; ".join(missing) if missing else "")
        + (f"\n\n![kernel ratios]({png.name})" if png else "")
        + "\n\nCommand: `python -m bench kernels" + (" --quick" if args.quick else "") + "`\n"
    )
    write_results(name, {"rows": rows, "missing": missing}, md, metrics=kernel_metrics(rows))


def kernel_metrics(rows: list[dict]) -> list[dict]:
    """One metric row per kernel row: its headline ratio against the target its row states.

    A row's ``target`` reads like ``">= 5x vs twin"`` or ``"none (reported)"``; the ratio is the one
    versus the twin when the target names the twin, else versus the peer when there is one.
    """
    out = []
    for r in rows:
        target = str(r.get("target") or "")
        m = re.match(r"\s*(>=|<=|>|<)\s*([0-9.]+)", target)
        vs_twin = "twin" in target or r.get("ratio_vs_peer") is None
        value = r.get("ratio_vs_twin") if vs_twin else r.get("ratio_vs_peer")
        label = f"{r.get('kernel')}: {r.get('case')}, speed-up vs {'twin' if vs_twin else r.get('peer') or 'peer'}"
        out.append(metric(label, value, float(m[2]) if m else None, m[1] if m else ">="))
    return out


if __name__ == "__main__":
    main()
