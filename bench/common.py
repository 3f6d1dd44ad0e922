"""Shared helpers for benchmarks: timing as medians, machine facts, result files.

Every benchmark reports its headline numbers the same way: a list of **metric rows**, each
``{"metric", "value", "target", "met"}`` built with :func:`metric` (``target`` None means "no
target", ``met`` is then None; otherwise ``met`` compares ``value`` with ``target`` by a comparator
such as ``">="`` or ``"<="``, and the row's ``target`` reads e.g. ``">= 3"``). :func:`write_results`
takes them as ``metrics=``, checks them, stores them under the JSON's ``"metrics"`` key (beside the
benchmark's own fields) and appends their markdown table.
"""

from __future__ import annotations

import json
import math
import operator
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_medians(fns: dict, *, rounds: int, per_round: int = 1) -> dict:
    """Median time of each callable, measured in alternating rounds so that load from other
    processes on a shared machine falls on all contenders alike.

    Every callable is warmed up once (numba compilation excluded); then each round times each
    callable with ``median_time(fn, repeat=per_round, warmup=0)``; the result is the median over
    rounds.
    """
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(median_time(fn, repeat=per_round, warmup=0))
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine() -> dict:
    """Facts about the machine and thread settings, printed with every result."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


COMPARATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
METRIC_KEYS = ("metric", "value", "target", "met")


def metric(name: str, value, target=None, cmp: str = ">=", **extra) -> dict:
    """One metric row ``{"metric", "value", "target", "met", **extra}``.

    Args:
        name: what is measured (with its unit or ratio direction).
        value: the measured number (None or NaN when it could not be measured: ``met`` is then False
            if there is a target).
        target: the number to reach, or None / ``"none"`` for a reported-only metric.
        cmp: how ``value`` must compare with ``target``: one of ``>=``, ``<=``, ``>``, ``<``, ``==``.
    """
    if cmp not in COMPARATORS:
        raise ValueError(f"comparator {cmp!r} is not one of {', '.join(COMPARATORS)}")
    if target is None or (isinstance(target, str) and target.lower() in ("none", "")):
        return {"metric": name, "value": value, "target": None, "met": None, **extra}
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    met = False if missing else bool(COMPARATORS[cmp](value, target))
    return {"metric": name, "value": value, "target": f"{cmp} {target:g}" if isinstance(target, (int, float)) else f"{cmp} {target}", "met": met, **extra}


def check_metrics(rows: list[dict]) -> list[dict]:
    """Raise ValueError unless every row has the four metric keys and a boolean/None ``met``."""
    for row in rows:
        absent = [k for k in METRIC_KEYS if k not in row]
        if absent:
            raise ValueError(f"metric row {row!r} lacks {absent}; build rows with bench.common.metric()")
        if row["met"] not in (True, False, None):
            raise ValueError(f"metric row {row['metric']!r}: met must be True, False or None, not {row['met']!r}")
    return rows


def write_results(name: str, payload: dict, markdown: str, *, metrics: list[dict] | None = None) -> Path:
    """Write ``bench/results/NAME.json`` and ``NAME.md``; returns the JSON path.

    ``metrics`` (rows from :func:`metric`) go to the JSON's ``"metrics"`` key (and to ``"rows"``
    unless the benchmark wrote its own) and, as a
    ``metric | value | target | met`` table, to the end of the markdown.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), **payload}
    if metrics is not None:
        payload["metrics"] = check_metrics(metrics)
        payload.setdefault("rows", payload["metrics"])  # the house format: the headline rows under "rows"
        markdown = markdown.rstrip() + "\n\n" + markdown_table(metrics, list(METRIC_KEYS))
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown)
    print(f"[bench] wrote {path} and {name}.md")
    return path
