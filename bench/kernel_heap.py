"""Benchmark part: the Cython ``IndexedHeap`` against its ``heapq`` lazy-deletion twin.

One fixed random trace of mixed operations (push 45 %, pop 30 %, decrease-key 25 %, priorities on
a 1/1000 grid so ties occur) is replayed two ways:

- per call: a Python loop calling ``push`` / ``pop`` / ``decrease_key`` one operation at a time,
  the same loop for both heaps (what a Python search loop pays);
- batched: ``run_trace(ops, ids, priorities)`` (the whole trace in one call: in C for the compiled
  heap, the same per-call loop inside the twin).

The target (>= 2x the twin) is stated for each row; both figures are reported.
"""

from __future__ import annotations


import numpy as np

from .common import interleaved_medians
from ponder.kernels import heap_py
from ponder.kernels.heap import DECREASE_KEY, POP, PUSH, IndexedHeap

TARGET = 2.0


def make_trace(n_ops: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A valid random trace (ops [T] int64, ids [T] int64, priorities [T] float64).

    Decrease-key targets a random live id with a lower priority; pop is never issued on an empty
    heap. Validity is checked by replaying on the compiled heap while generating.
    """
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=n_ops, p=[0.45, 0.30, 0.25])  # [T]
    grid = np.round(rng.random(n_ops) * 1000) / 1000  # [T] priorities on a grid
    shrink = rng.random(n_ops)  # [T]
    picks = rng.random(n_ops)  # [T]
    ops = np.empty(n_ops, np.int64)
    ids = np.zeros(n_ops, np.int64)
    prios = np.zeros(n_ops, np.float64)
    heap = IndexedHeap()
    live: list[int] = []  # live ids, swap-remove
    where: dict[int, int] = {}  # id -> index in live
    next_id = 0
    for t in range(n_ops):
        kind = int(kinds[t]) if live else 0
        if kind == 0:
            heap.push(next_id, grid[t])
            where[next_id] = len(live)
            live.append(next_id)
            ops[t], ids[t], prios[t] = PUSH, next_id, grid[t]
            next_id += 1
        elif kind == 1:
            gone, _ = heap.pop()
            i = where.pop(gone)
            last = live.pop()
            if last != gone:
                live[i] = last
                where[last] = i
            ops[t] = POP
        else:
            target = live[int(picks[t] * len(live))]
            new = np.floor(heap.priority(target) * shrink[t] * 1000) / 1000
            heap.decrease_key(target, new)
            ops[t], ids[t], prios[t] = DECREASE_KEY, target, new
    return ops, ids, prios


def replay(heap, ops: list, ids: list, prios: list) -> int:
    """Per-call replay from Python lists; returns the number of pops (the same loop for both heaps)."""
    push, pop, decrease_key = heap.push, heap.pop, heap.decrease_key
    pops = 0
    for op, i, p in zip(ops, ids, prios):
        if op == 0:
            push(i, p)
        elif op == 1:
            pop()
            pops += 1
        else:
            decrease_key(i, p)
    return pops


def run(*, quick: bool = False) -> list[dict]:
    n_ops = 100_000 if quick else 1_000_000
    repeat = 3 if quick else 5
    ops, ids, prios = make_trace(n_ops)
    ops_l, ids_l, prios_l = ops.tolist(), ids.tolist(), prios.tolist()

    # the two heaps must agree on the trace before they are timed
    a = IndexedHeap().run_trace(ops, ids, prios)
    b = heap_py.IndexedHeap().run_trace(ops, ids, prios)
    if not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])):
        raise AssertionError("compiled heap and heapq twin disagree on the benchmark trace")

    case = f"{n_ops:.0e} ops (45% push, 30% pop, 25% decrease-key)"
    t = interleaved_medians(
        {
            "ours per call": lambda: replay(IndexedHeap(), ops_l, ids_l, prios_l),
            "twin per call": lambda: replay(heap_py.IndexedHeap(), ops_l, ids_l, prios_l),
            "ours batched": lambda: IndexedHeap().run_trace(ops, ids, prios),
            "twin batched": lambda: heap_py.IndexedHeap().run_trace(ops, ids, prios),
        },
        rounds=repeat,
    )
    ours_call, twin_call = t["ours per call"], t["twin per call"]
    ours_batch, twin_batch = t["ours batched"], t["twin batched"]
    rows = []
    for mode, ours, twin in (("per call", ours_call, twin_call), ("batched run_trace", ours_batch, twin_batch)):
        rows.append(
            {
                "kernel": "heap",
                "case": f"{case}, {mode}",
                "ours_s": ours,
                "twin_s": twin,
                "peer": "heapq (lazy deletion; the twin)",
                "peer_s": twin,
                "ratio_vs_twin": twin / ours,
                "ratio_vs_peer": twin / ours,
                "target": f">= {TARGET:g}x heapq ({mode})",
                "met": bool(twin / ours >= TARGET),
            }
        )
    return rows


if __name__ == "__main__":
    from .common import markdown_table

    rows = run(quick=True)
    print(markdown_table(rows, list(rows[0])))
