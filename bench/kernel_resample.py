"""Benchmark part: numba resampling against its numpy twin, ``particles`` and numpy one-liners.

Every contender gets the same normalised weights W [N] (N = 1e6, quick 1e5) and draws its own
uniforms inside the timed call (contenders are timed in alternating rounds, see
``interleaved_medians``): ours and the twin through ``resample_weights(W, scheme, rng=...)``
(sorted uniforms by exponential spacings for multinomial, as ``particles`` does), ``particles``
through ``particles.resampling.<scheme>(W)`` (numba-compiled inverse CDF), and the numpy
one-liners as written below. Target: systematic >= 1.5x ``particles``. Rows without a target
have ``met = None``.
"""

from __future__ import annotations


import numpy as np

from .common import interleaved_medians
from ponder.kernels import resample as ours_mod
from ponder.kernels import resample_py as twin_mod

TARGET = 1.5
SCHEMES = ("multinomial", "stratified", "systematic", "residual")


def _one_liners(W: np.ndarray, rng: np.random.Generator) -> dict:
    """The numpy way most code writes it (no validation, no zero-weight guard)."""
    N = W.shape[0]
    return {
        "multinomial": lambda: np.searchsorted(np.cumsum(W), rng.random(N)),
        "stratified": lambda: np.searchsorted(np.cumsum(W), (rng.random(N) + np.arange(N)) / N),
        "systematic": lambda: np.searchsorted(np.cumsum(W), (rng.random() + np.arange(N)) / N),
    }


def run(*, quick: bool = False) -> list[dict]:
    N = 100_000 if quick else 1_000_000
    rounds = 3 if quick else 7
    rng = np.random.default_rng(0)
    W = rng.random(N) ** 2  # [N] uneven weights
    W /= W.sum()
    try:
        import particles.resampling as peer_mod
    except ImportError:
        peer_mod = None
    one_liners = _one_liners(W, rng)
    rows = []
    for scheme in SCHEMES:
        fns = {
            "ours": lambda: ours_mod.resample_weights(W, scheme, rng=rng),
            "twin": lambda: twin_mod.resample_weights(W, scheme, rng=rng),
        }
        if peer_mod is not None:
            fns["particles"] = lambda fn=getattr(peer_mod, scheme): fn(W)
        if scheme in one_liners:
            fns["numpy searchsorted one-liner"] = one_liners[scheme]
        t = interleaved_medians(fns, rounds=rounds, per_round=3)
        ours_s, twin_s = t["ours"], t["twin"]
        peers = [(name, t[name]) for name in t if name not in ("ours", "twin")]
        if peer_mod is None:
            peers.insert(0, (None, None))
        for peer, peer_s in peers:
            targeted = scheme == "systematic" and peer in ("particles", None)
            ratio_peer = None if peer_s is None else peer_s / ours_s
            rows.append(
                {
                    "kernel": "resample",
                    "case": f"{scheme}, N=M={N:.0e}",
                    "ours_s": ours_s,
                    "twin_s": twin_s,
                    "peer": peer,
                    "peer_s": peer_s,
                    "ratio_vs_twin": twin_s / ours_s,
                    "ratio_vs_peer": ratio_peer,
                    "target": (f">= {TARGET:g}x particles" + ("" if peer else " (particles not installed)"))
                    if targeted
                    else "none (reported)",
                    "met": bool(ratio_peer is not None and ratio_peer >= TARGET) if targeted else None,
                }
            )
    return rows


if __name__ == "__main__":
    from .common import markdown_table

    rows = run(quick=True)
    print(markdown_table(rows, list(rows[0])))
