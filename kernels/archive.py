"""Go-Explore archive: cell keys from frames and a table of cells (numba).

Cell keys (``cell_keys``): a frame becomes a small, coarse grey image whose bytes are hashed.

1. Grey level in thousandths, exact in integers: g = 299 R + 587 G + 114 B (0..255000); a grey
   input frame counts as R = G = B.
2. Area downscale to (height, width): source row y belongs to target row floor(y * height / H),
   column x to floor(x * width / W); a target cell is the mean of the source pixels mapping into
   it (sizes need not divide: cells then differ by at most one row/column of pixels).
3. Quantise the mean m of a cell to q = min(floor(m * levels / 255000), levels - 1), computed as
   (sum * levels) // (count * 255000) in int64, so there is no rounding anywhere.
4. Hash the height * width quantised bytes (row-major) with 64-bit FNV-1a:
   h = 0xcbf29ce484222325; for each byte b: h = (h XOR b) * 0x100000001b3 mod 2^64;
   the key is h reinterpreted as int64.

Cell table (``CellArchive``): one row per cell, in order of discovery, with

    keys               int64   the cell key
    visits             int64   times an update reported the cell
    chosen             int64   times ``sample`` returned it
    since_improvement  int64   visits since the cell's best was last replaced (0 when new)
    score              float64 best score reached in the cell
    traj_len           int64   length of the trajectory that reached it with that score
    payload            int64   caller's index of what restores that state (e.g. a snapshot)

``update`` inserts new cells and replaces a cell's (score, traj_len, payload) when the new score
is higher, or equal with a shorter trajectory. Selection weights follow Go-Explore's count-based
scores, w = sum_a c_a / sqrt(count_a + 1). Key -> row is an open-addressing table (linear
probing, power-of-two capacity, load <= 1/2) in numpy arrays, driven by numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ponder.kernels.resample import inverse_cdf

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
GREY_SCALE = 255_000  # 255 * (299 + 587 + 114)
ATTRS = ("visits", "chosen", "since_improvement")


# ---------------------------------------------------------------------------------------------
# cell keys
# ---------------------------------------------------------------------------------------------


def _bin_edges(size: int, bins: int) -> np.ndarray:
    """Start of each bin [bins + 1]: the first source index i with floor(i * bins / size) >= b."""
    return -((-np.arange(bins + 1) * size) // bins)  # ceil(b * size / bins)


@njit(cache=True)
def _cell_keys(frames, row_edges, col_edges, levels, colsum, out):  # frames [N, H, W, C], C in (1, 3)
    """Keys of frames into out [N]; colsum [W] is scratch (int32 while a column sum fits)."""
    N = frames.shape[0]
    W = frames.shape[2]
    C = frames.shape[3]
    height = row_edges.shape[0] - 1
    width = col_edges.shape[0] - 1
    sums = np.empty((height, width), np.int64)
    for i in range(N):
        for cy in range(height):
            colsum[:] = 0  # grey sums over the rows of band cy, per source column
            for y in range(row_edges[cy], row_edges[cy + 1]):
                row = frames[i, y]  # [W, C]
                if C == 3:
                    for x in range(W):
                        colsum[x] += 299 * np.int32(row[x, 0]) + 587 * np.int32(row[x, 1]) + 114 * np.int32(row[x, 2])
                else:
                    for x in range(W):
                        colsum[x] += 1000 * np.int32(row[x, 0])
            for cx in range(width):
                acc = 0
                for x in range(col_edges[cx], col_edges[cx + 1]):
                    acc += colsum[x]
                sums[cy, cx] = acc
        h = FNV_OFFSET
        for cy in range(height):
            rows = row_edges[cy + 1] - row_edges[cy]
            for cx in range(width):
                count = rows * (col_edges[cx + 1] - col_edges[cx])
                q = (sums[cy, cx] * levels) // (count * GREY_SCALE)
                if q >= levels:
                    q = levels - 1
                h = (h ^ np.uint64(q)) * FNV_PRIME
        out[i] = np.int64(h)


def _check_frames(frames, width: int, height: int, levels: int) -> np.ndarray:
    """Validate and view frames as [N, H, W, C] uint8 with C in (1, 3)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[3] not in (1, 3):
        raise ValueError(f"frames must be [N, H, W, 3] RGB or [N, H, W] grey, got shape {frames.shape}")
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in [2, 256], got {levels}")
    _, H, W, _ = frames.shape
    if not (1 <= height <= H and 1 <= width <= W):
        raise ValueError(f"cell size (height={height}, width={width}) must be between 1 and the frame size ({H}, {W})")
    return frames


def cell_keys(frames, *, width: int = 11, height: int = 8, levels: int = 8) -> np.ndarray:
    """Go-Explore cell keys of frames: grey, area-downscale, quantise, FNV-1a hash.

    Args:
        frames: uint8 [N, H, W, 3] RGB or [N, H, W] grey (a single frame [H, W(, 3)] is not
            accepted: add the batch axis).
        width: cell image width (<= W).
        height: cell image height (<= H).
        levels: grey levels after quantisation, 2..256.

    Returns:
        int64 keys [N]; equal cell images give equal keys.
    """
    frames = _check_frames(frames, width, height, levels)
    frames = np.ascontiguousarray(frames)
    _, H, W, _ = frames.shape
    out = np.empty(frames.shape[0], np.int64)
    row_edges = _bin_edges(H, height)
    band = int(np.diff(row_edges).max())  # most source rows in one band
    colsum = np.empty(W, np.int32 if band * GREY_SCALE < 2**31 else np.int64)  # [W]
    _cell_keys(frames, row_edges, _bin_edges(W, width), levels, colsum, out)
    return out


# ---------------------------------------------------------------------------------------------
# cell table
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _mix(key):  # int64 -> uint64, the splitmix64 finaliser (keys may be small consecutive ints)
    z = np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _find(table, row_keys, key):  # -> (row or -1, slot where it is or would go)
    mask = np.uint64(table.shape[0] - 1)
    slot = np.int64(_mix(key) & mask)
    while True:
        r = table[slot]
        if r < 0 or row_keys[r] == key:
            return r, slot
        slot = np.int64((np.uint64(slot) + np.uint64(1)) & mask)


@njit(cache=True)
def _rebuild(row_keys, n, capacity):  # -> table [capacity]
    table = np.full(capacity, -1, np.int64)
    for r in range(n):
        _, slot = _find(table, row_keys, row_keys[r])
        table[slot] = r
    return table


@njit(cache=True)
def _lookup(table, row_keys, keys, out):  # keys [K] -> out [K] rows or -1
    for i in range(keys.shape[0]):
        out[i] = _find(table, row_keys, keys[i])[0]


@njit(cache=True)
def _update(table, row_keys, visits, chosen, since, score, traj_len, payload, n, keys, scores, lens, pids, status):
    """Apply updates in order; status[i] = 1 new cell, 2 improved, 0 neither. Returns the new n."""
    for i in range(keys.shape[0]):
        r, slot = _find(table, row_keys, keys[i])
        if r < 0:
            table[slot] = n
            row_keys[n] = keys[i]
            visits[n] = 1
            chosen[n] = 0
            since[n] = 0
            score[n] = scores[i]
            traj_len[n] = lens[i]
            payload[n] = pids[i]
            status[i] = 1
            n += 1
        else:
            visits[r] += 1
            if scores[i] > score[r] or (scores[i] == score[r] and lens[i] < traj_len[r]):
                score[r] = scores[i]
                traj_len[r] = lens[i]
                payload[r] = pids[i]
                since[r] = 0
                status[i] = 2
            else:
                since[r] += 1
                status[i] = 0
    return n


@njit(cache=True)
def _selection_weights(counts, c, n):  # counts [A, cap] int64, c [A] -> w [n]
    w = np.zeros(n, np.float64)
    for r in range(n):
        acc = 0.0
        for a in range(counts.shape[0]):
            acc += c[a] / np.sqrt(counts[a, r] + 1.0)
        w[r] = acc
    return w


@njit(cache=True)
def _count_chosen(chosen, rows):
    for r in rows:
        chosen[r] += 1


class CellArchive:
    """Table of Go-Explore cells keyed by int64 cell keys (see the module docstring).

    Columns are exposed as read-only views of length ``len(archive)``: ``keys``, ``visits``,
    ``chosen``, ``since_improvement``, ``score``, ``traj_len``, ``payload``.
    """

    _INT_COLUMNS = ("keys", "visits", "chosen", "since_improvement", "traj_len", "payload")

    def __init__(self, *, capacity: int = 1024):
        capacity = max(16, int(capacity))
        self._n = 0
        self._cap = capacity
        self._cols = {name: np.zeros(capacity, np.int64) for name in self._INT_COLUMNS}
        self._cols["score"] = np.zeros(capacity, np.float64)
        self._table = np.full(_pow2(2 * capacity), -1, np.int64)

    # ---- storage -----------------------------------------------------------------------------

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        if need > self._cap:
            cap = max(2 * self._cap, need)
            for name, col in self._cols.items():
                grown = np.zeros(cap, col.dtype)
                grown[: self._n] = col[: self._n]
                self._cols[name] = grown
            self._cap = cap
        if 2 * need > self._table.shape[0]:
            self._table = _rebuild(self._cols["keys"], self._n, _pow2(2 * need))

    def _view(self, name: str) -> np.ndarray:
        v = self._cols[name][: self._n]
        v.flags.writeable = False
        return v

    keys = property(lambda self: self._view("keys"), doc="cell keys [n] int64")
    visits = property(lambda self: self._view("visits"), doc="visit counts [n] int64")
    chosen = property(lambda self: self._view("chosen"), doc="times chosen by sample [n] int64")
    since_improvement = property(lambda self: self._view("since_improvement"), doc="visits since last improvement [n]")
    score = property(lambda self: self._view("score"), doc="best score per cell [n] float64")
    traj_len = property(lambda self: self._view("traj_len"), doc="trajectory length of the best [n] int64")
    payload = property(lambda self: self._view("payload"), doc="payload index of the best [n] int64")

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key) -> bool:
        return bool(self.rows(np.array([key], np.int64))[0] >= 0)

    def __repr__(self) -> str:
        return f"CellArchive(cells={self._n})"

    # ---- operations --------------------------------------------------------------------------

    def rows(self, keys) -> np.ndarray:
        """Row of each key [K] int64, -1 where the key is not in the archive."""
        keys = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1)
        out = np.empty(keys.shape[0], np.int64)
        _lookup(self._table, self._cols["keys"], keys, out)
        return out

    def update(self, keys, scores, traj_lens, payload_ids) -> np.ndarray:
        """Record visits to cells, in order.

        For each i: a new key becomes a row (visits 1, chosen 0, since_improvement 0); a known
        key gets visits += 1 and, if scores[i] > score or (scores[i] == score and
        traj_lens[i] < traj_len), takes (scores[i], traj_lens[i], payload_ids[i]) and resets
        since_improvement, else since_improvement += 1.

        Args:
            keys: cell keys [K] int64.
            scores: scores [K] (finite or -inf; NaN is an error).
            traj_lens: trajectory lengths [K] (>= 0).
            payload_ids: payload indices [K].

        Returns:
            status [K] int8: 1 new cell, 2 improved cell, 0 neither.
        """
        keys = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1)
        K = keys.shape[0]
        scores = np.ascontiguousarray(scores, dtype=np.float64).reshape(-1)
        lens = np.ascontiguousarray(traj_lens, dtype=np.int64).reshape(-1)
        pids = np.ascontiguousarray(payload_ids, dtype=np.int64).reshape(-1)
        if not (scores.shape[0] == lens.shape[0] == pids.shape[0] == K):
            raise ValueError(
                f"keys, scores, traj_lens and payload_ids must have the same length, got "
                f"{K}, {scores.shape[0]}, {lens.shape[0]}, {pids.shape[0]}"
            )
        if np.isnan(scores).any():
            raise ValueError("scores contain NaN")
        if (lens < 0).any():
            raise ValueError("traj_lens must be >= 0")
        status = np.empty(K, np.int8)
        if K == 0:
            return status
        self._reserve(K)
        c = self._cols
        self._n = _update(
            self._table, c["keys"], c["visits"], c["chosen"], c["since_improvement"], c["score"],
            c["traj_len"], c["payload"], self._n, keys, scores, lens, pids, status,
        )  # fmt: skip
        return status

    def selection_weights(self, *, attrs=("visits", "chosen"), c=(1.0, 1.0)) -> np.ndarray:
        """Count-based selection weights w_r = sum_a c_a / sqrt(count_a[r] + 1); float64 [n].

        Args:
            attrs: counts to use, from "visits", "chosen", "since_improvement".
            c: one non-negative coefficient per attribute.
        """
        attrs, c = _check_selection(attrs, c)
        counts = np.stack([self._cols[a][: self._n] for a in attrs]) if attrs else np.zeros((0, self._n), np.int64)
        return _selection_weights(counts, np.asarray(c, np.float64), self._n)

    def sample(self, n: int, rng, *, attrs=("visits", "chosen"), c=(1.0, 1.0)) -> np.ndarray:
        """Draw ``n`` rows with replacement, P(r) proportional to ``selection_weights``.

        Draw i is the inverse CDF of the weights at the i-th of ``rng.random(n)``; each drawn row
        gets chosen += 1 (after all n draws, so the weights are those before the call).

        Returns:
            rows [n] int64 (use ``archive.keys[rows]``, ``archive.payload[rows]``).
        """
        if self._n == 0:
            raise ValueError("cannot sample from an empty archive")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        w = self.selection_weights(attrs=attrs, c=c)
        if not w.sum() > 0:
            raise ValueError("all selection weights are zero: give some attribute a positive coefficient")
        rng = np.random.default_rng(rng)
        rows = inverse_cdf(w, rng.random(n))
        _count_chosen(self._cols["chosen"], rows)
        return rows


def _check_selection(attrs, c):
    attrs, c = tuple(attrs), tuple(float(x) for x in c)
    if len(attrs) != len(c):
        raise ValueError(f"attrs and c must have the same length, got {len(attrs)} and {len(c)}")
    for a in attrs:
        if a not in ATTRS:
            raise ValueError(f"unknown attribute {a!r}; valid: {', '.join(ATTRS)}")
    if any(not (x >= 0 and np.isfinite(x)) for x in c):
        raise ValueError(f"coefficients c must be finite and >= 0, got {c}")
    return attrs, c


def _pow2(n: int) -> int:
    return 1 << max(4, int(n - 1).bit_length())
