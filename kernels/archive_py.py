"""Plain numpy / Python twin of ``ponder.kernels.archive``: same keys, same table.

``cell_keys`` works on whole batches with numpy (``np.add.reduceat`` for the area downscale, a
vectorised FNV-1a over the batch); ``CellArchive`` keeps a dict key -> row and one Python list
per column. See ``archive.py`` for the definitions.
"""

from __future__ import annotations

import numpy as np

from ponder.kernels.resample_py import inverse_cdf

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
GREY_SCALE = 255_000
ATTRS = ("visits", "chosen", "since_improvement")
_LUMA = np.array([299, 587, 114], dtype=np.int64)


def _bin_edges(size: int, bins: int) -> np.ndarray:
    """First source index of each bin [bins + 1]: ceil(b * size / bins)."""
    return -((-np.arange(bins + 1) * size) // bins)


def cell_keys(frames, *, width: int = 11, height: int = 8, levels: int = 8, chunk: int = 256) -> np.ndarray:
    """Cell keys [N] int64 of uint8 frames [N, H, W, 3] or [N, H, W]; ``chunk`` frames at a time."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[3] not in (1, 3):
        raise ValueError(f"frames must be [N, H, W, 3] RGB or [N, H, W] grey, got shape {frames.shape}")
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in [2, 256], got {levels}")
    N, H, W, C = frames.shape
    if not (1 <= height <= H and 1 <= width <= W):
        raise ValueError(f"cell size (height={height}, width={width}) must be between 1 and the frame size ({H}, {W})")
    rows, cols = _bin_edges(H, height), _bin_edges(W, width)
    counts = np.diff(rows)[:, None] * np.diff(cols)[None, :]  # [height, width]
    keys = np.empty(N, np.int64)
    for start in range(0, N, chunk):
        f = frames[start : start + chunk]
        grey = f @ _LUMA if C == 3 else f[..., 0].astype(np.int64) * 1000  # [n, H, W] int64
        sums = np.add.reduceat(np.add.reduceat(grey, rows[:-1], axis=1), cols[:-1], axis=2)  # [n, height, width]
        q = np.minimum(sums * levels // (counts * GREY_SCALE), levels - 1)  # [n, height, width]
        keys[start : start + chunk] = _fnv1a(q.reshape(len(f), -1).astype(np.uint64))
    return keys


def _fnv1a(data: np.ndarray) -> np.ndarray:
    """64-bit FNV-1a of each row of byte values [n, L] (uint64) -> int64 [n]."""
    h = np.full(data.shape[0], FNV_OFFSET, dtype=np.uint64)
    for column in data.T:
        h ^= column
        h *= FNV_PRIME  # wraps mod 2^64
    return h.view(np.int64)


class CellArchive:
    """The cell table as a dict key -> row and one list per column."""

    def __init__(self, *, capacity: int = 1024):
        self._row: dict[int, int] = {}
        self._keys: list[int] = []
        self._visits: list[int] = []
        self._chosen: list[int] = []
        self._since: list[int] = []
        self._score: list[float] = []
        self._traj_len: list[int] = []
        self._payload: list[int] = []

    keys = property(lambda self: np.array(self._keys, dtype=np.int64))
    visits = property(lambda self: np.array(self._visits, dtype=np.int64))
    chosen = property(lambda self: np.array(self._chosen, dtype=np.int64))
    since_improvement = property(lambda self: np.array(self._since, dtype=np.int64))
    score = property(lambda self: np.array(self._score, dtype=np.float64))
    traj_len = property(lambda self: np.array(self._traj_len, dtype=np.int64))
    payload = property(lambda self: np.array(self._payload, dtype=np.int64))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key) -> bool:
        return int(key) in self._row

    def __repr__(self) -> str:
        return f"CellArchive(cells={len(self)})"

    def rows(self, keys) -> np.ndarray:
        """Row of each key, -1 if absent."""
        return np.array([self._row.get(k, -1) for k in np.asarray(keys, dtype=np.int64).reshape(-1).tolist()], dtype=np.int64)

    def update(self, keys, scores, traj_lens, payload_ids) -> np.ndarray:
        """Insert new cells, count visits, keep the best (score, then shorter trajectory)."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1).tolist()
        scores = np.asarray(scores, dtype=np.float64).reshape(-1).tolist()
        lens = np.asarray(traj_lens, dtype=np.int64).reshape(-1).tolist()
        pids = np.asarray(payload_ids, dtype=np.int64).reshape(-1).tolist()
        if not len(keys) == len(scores) == len(lens) == len(pids):
            raise ValueError(
                f"keys, scores, traj_lens and payload_ids must have the same length, got "
                f"{len(keys)}, {len(scores)}, {len(lens)}, {len(pids)}"
            )
        if any(s != s for s in scores):
            raise ValueError("scores contain NaN")
        if any(n < 0 for n in lens):
            raise ValueError("traj_lens must be >= 0")
        status = np.zeros(len(keys), np.int8)
        for i, (key, score, length, pid) in enumerate(zip(keys, scores, lens, pids)):
            r = self._row.get(key)
            if r is None:
                self._row[key] = len(self._keys)
                self._keys.append(key)
                self._visits.append(1)
                self._chosen.append(0)
                self._since.append(0)
                self._score.append(score)
                self._traj_len.append(length)
                self._payload.append(pid)
                status[i] = 1
                continue
            self._visits[r] += 1
            if score > self._score[r] or (score == self._score[r] and length < self._traj_len[r]):
                self._score[r], self._traj_len[r], self._payload[r] = score, length, pid
                self._since[r] = 0
                status[i] = 2
            else:
                self._since[r] += 1
        return status

    def selection_weights(self, *, attrs=("visits", "chosen"), c=(1.0, 1.0)) -> np.ndarray:
        """w_r = sum_a c_a / sqrt(count_a[r] + 1); float64 [n]."""
        attrs, c = tuple(attrs), tuple(float(x) for x in c)
        if len(attrs) != len(c):
            raise ValueError(f"attrs and c must have the same length, got {len(attrs)} and {len(c)}")
        if any(not (x >= 0 and np.isfinite(x)) for x in c):
            raise ValueError(f"coefficients c must be finite and >= 0, got {c}")
        w = np.zeros(len(self))
        for a, ca in zip(attrs, c):
            if a not in ATTRS:
                raise ValueError(f"unknown attribute {a!r}; valid: {', '.join(ATTRS)}")
            w += ca / np.sqrt(getattr(self, a) + 1)
        return w

    def sample(self, n: int, rng, *, attrs=("visits", "chosen"), c=(1.0, 1.0)) -> np.ndarray:
        """n rows with replacement, P(r) proportional to the selection weights; counts chosen."""
        if not len(self):
            raise ValueError("cannot sample from an empty archive")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        w = self.selection_weights(attrs=attrs, c=c)
        if not w.sum() > 0:
            raise ValueError("all selection weights are zero: give some attribute a positive coefficient")
        rows = inverse_cdf(w, np.random.default_rng(rng).random(n))
        for r in rows.tolist():
            self._chosen[r] += 1
        return rows
