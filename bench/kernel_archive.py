"""Benchmark part: numba Go-Explore cell keys against the numpy twin.

Frames are 210x160x3 uint8 (Atari size). 1e5 frames would be 10 GB, so a pool of random frames
is generated once and keyed chunk by chunk: the full run keys 1e5 frames as 100 chunks of 1000
(quick: 2,000 frames as 4 chunks of 500), for ours and for the twin alike. The time reported for
the whole count is the median chunk time times the number of chunks (one run per chunk, ours and
the twin alternating chunk by chunk, after a warm-up chunk that also excludes numba compilation). The cost of keying
does not depend on the pixel values (no data-dependent branches), so reusing the pool is fair.
Target: >= 5x the twin.
"""

from __future__ import annotations


import numpy as np

from .common import interleaved_medians
from ponder.kernels import archive, archive_py

TARGET = 5.0


def run(*, quick: bool = False) -> list[dict]:
    chunk, n_chunks = (500, 4) if quick else (1000, 100)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(chunk, 210, 160, 3), dtype=np.uint8)  # [chunk, H, W, 3]
    pool[:, 150:] = 0  # a flat band like an Atari playfield floor
    if not np.array_equal(archive.cell_keys(pool[:50]), archive_py.cell_keys(pool[:50])):
        raise AssertionError("numba and numpy cell keys disagree on the benchmark frames")
    t = interleaved_medians({"ours": lambda: archive.cell_keys(pool), "twin": lambda: archive_py.cell_keys(pool)}, rounds=n_chunks)
    ours_s, twin_s = t["ours"] * n_chunks, t["twin"] * n_chunks
    n = chunk * n_chunks
    rows = [
        {
            "kernel": "archive",
            "case": f"cell_keys, {n:.0e} frames 210x160x3 -> 8x11, 8 levels ({n_chunks} chunks of {chunk})",
            "ours_s": ours_s,
            "twin_s": twin_s,
            "peer": None,
            "peer_s": None,
            "ratio_vs_twin": twin_s / ours_s,
            "ratio_vs_peer": None,
            "target": f">= {TARGET:g}x the numpy twin",
            "met": bool(twin_s / ours_s >= TARGET),
        }
    ]

    # the cell table: a stream of visits (Zipf-like cell popularity), then count-based sampling
    n_visits = 100_000 if quick else 1_000_000
    keys = (rng.zipf(1.3, size=n_visits).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)).view(np.int64)  # [V]
    scores = rng.integers(0, 100, size=n_visits).astype(np.float64)  # [V]
    lens = rng.integers(1, 1000, size=n_visits)  # [V]
    pids = np.arange(n_visits)  # [V]

    def table(module):
        a = module.CellArchive()
        for s in range(0, n_visits, 10_000):
            a.update(keys[s : s + 10_000], scores[s : s + 10_000], lens[s : s + 10_000], pids[s : s + 10_000])
            a.sample(100, s)
        return a

    a, b = table(archive), table(archive_py)
    if not (np.array_equal(a.keys, b.keys) and np.array_equal(a.chosen, b.chosen) and np.array_equal(a.payload, b.payload)):
        raise AssertionError("numba and Python archives disagree on the benchmark stream")
    t = interleaved_medians({"ours": lambda: table(archive), "twin": lambda: table(archive_py)}, rounds=3)
    ours_t, twin_t = t["ours"], t["twin"]
    rows.append(
        {
            "kernel": "archive",
            "case": f"CellArchive: {n_visits:.0e} visits in batches of 1e4 ({len(a)} cells), sample 100 per batch",
            "ours_s": ours_t,
            "twin_s": twin_t,
            "peer": None,
            "peer_s": None,
            "ratio_vs_twin": twin_t / ours_t,
            "ratio_vs_peer": None,
            "target": "none (reported)",
            "met": None,
        }
    )
    return rows


if __name__ == "__main__":
    from .common import markdown_table

    rows = run(quick=True)
    print(markdown_table(rows, list(rows[0])))
