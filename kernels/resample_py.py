"""Pure-numpy twin of ``ponder.kernels.resample``: the same schemes by ``searchsorted`` on ``cumsum``.

Same uniforms in, same ancestor indices out (the points are computed with the same floating-point
operations). See ``resample.py`` for the maths and the uniforms each scheme takes.
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("multinomial", "stratified", "systematic", "residual")
SUM_TOLERANCE = 1e-6


def _as_weights(W, *, normalised: bool = True):
    W = np.ascontiguousarray(W, dtype=np.float64)
    if W.ndim != 1 or W.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {W.shape}")
    if np.isnan(W).any():
        raise ValueError(f"weights contain NaN (at index {int(np.argmax(np.isnan(W)))})")
    if (W < 0).any():
        raise ValueError(f"weights contain a negative value (at index {int(np.argmax(W < 0))})")
    if np.isinf(W).any():
        raise ValueError(f"weights contain an infinite value (at index {int(np.argmax(np.isinf(W)))})")
    if not W.any():
        raise ValueError("all weights are zero")
    C = np.cumsum(W)  # [N]
    if normalised and not abs(C[-1] - 1.0) <= SUM_TOLERANCE:
        raise ValueError(f"weights sum to {C[-1]!r}, not 1; normalise them first (e.g. log_normalise)")
    last = int(np.flatnonzero(W)[-1])
    return C, last


def _as_uniforms(u, name: str = "u") -> np.ndarray:
    u = np.ascontiguousarray(u, dtype=np.float64)
    if u.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of uniforms, got shape {u.shape}")
    bad = ~((u >= 0) & (u < 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {u[i]!r} is not in [0, 1)")
    return u


def _check_M(M, count: int, scheme: str) -> None:
    if M is not None and int(M) != count:
        raise ValueError(f"{scheme}: M={M} but {count} uniforms were given (one per draw)")


def _icdf_at(C, last: int, t) -> np.ndarray:
    """min{n : C_n > t}, clipped to the last positive-weight index."""
    return np.minimum(np.searchsorted(C, t, side="right"), last).astype(np.int64)


def _icdf(C, last: int, v) -> np.ndarray:
    """Inverse CDF at points v in [0, 1): min{n : C_n > v * C[-1]}."""
    return _icdf_at(C, last, v * C[-1])


def inverse_cdf(weights, v) -> np.ndarray:
    """Inverse CDF of unnormalised weights [N] at points v [R] in [0, 1); int64 [R]."""
    C, last = _as_weights(weights, normalised=False)
    return _icdf(C, last, _as_uniforms(v, "v"))


def multinomial(W, u, *, M: int | None = None) -> np.ndarray:
    """A_m = F^{-1}(u_m) for M uniforms u (any order); int64 [M]."""
    C, last = _as_weights(W)
    u = _as_uniforms(u)
    _check_M(M, len(u), "multinomial")
    return _icdf(C, last, u)


def stratified(W, u, *, M: int | None = None) -> np.ndarray:
    """A_m = min{n : C_n > (m + u_m) * (C_{N-1} / M)} for M uniforms; int64 [M]."""
    C, last = _as_weights(W)
    u = _as_uniforms(u)
    _check_M(M, len(u), "stratified")
    if len(u) == 0:
        return np.empty(0, np.int64)
    return _icdf_at(C, last, (np.arange(len(u)) + u) * (C[-1] / len(u)))


def systematic(W, u, *, M: int | None = None) -> np.ndarray:
    """A_m = min{n : C_n > (m + u) * (C_{N-1} / M)} for one uniform u; int64 [M], M default N."""
    C, last = _as_weights(W)
    u = _as_uniforms(np.atleast_1d(np.asarray(u, dtype=np.float64)))
    if len(u) != 1:
        raise ValueError(f"systematic takes exactly one uniform, got {len(u)}")
    M = len(C) if M is None else int(M)
    if M < 0:
        raise ValueError(f"M must be >= 0, got {M}")
    if M == 0:
        return np.empty(0, np.int64)
    return _icdf_at(C, last, (np.arange(M) + u[0]) * (C[-1] / M))


def _residual_parts(W, M: int):
    """(A [M] with floor(M W_n / C) copies of each n first, residuals [N], R draws left)."""
    C, _ = _as_weights(W)
    mw = np.ascontiguousarray(W, dtype=np.float64) * (M / C[-1])  # [N]
    counts = mw.astype(np.int64)  # floor, mw >= 0
    det = np.repeat(np.arange(len(counts)), counts)
    R = M - len(det)
    if R < 0:
        raise RuntimeError(f"residual: {len(det)} deterministic copies exceed M={M}")
    A = np.empty(M, dtype=np.int64)
    A[: len(det)] = det
    return A, mw - counts, R


def residual(W, u, *, M: int | None = None) -> np.ndarray:
    """floor(M W_n) copies of each n, then multinomial on the residuals with u[:R]; int64 [M]."""
    _as_weights(W)
    u = _as_uniforms(u)
    _check_M(M, len(u), "residual")
    M = len(u)
    if M == 0:
        return np.empty(0, np.int64)
    A, res, R = _residual_parts(W, M)
    if R:
        A[M - R :] = _icdf(np.cumsum(res), int(np.flatnonzero(res)[-1]), u[:R])
    return A


def log_normalise(logw) -> tuple[np.ndarray, float]:
    """(W, log_mean_weight) by log-sum-exp; ValueError on NaN, +inf or all -inf."""
    logw = np.asarray(logw, dtype=np.float64)
    if logw.ndim != 1 or logw.shape[0] == 0:
        raise ValueError(f"log-weights must be a non-empty 1-D array, got shape {logw.shape}")
    if np.isnan(logw).any():
        raise ValueError(f"log-weights contain NaN (at index {int(np.argmax(np.isnan(logw)))})")
    if (logw == np.inf).any():
        raise ValueError(f"log-weights contain +inf (at index {int(np.argmax(logw == np.inf))})")
    mx = logw.max()
    if mx == -np.inf:
        raise ValueError("all log-weights are -inf: every particle has zero weight")
    w = np.exp(logw - mx)
    s = w.sum()
    return w / s, float(mx + np.log(s / len(w)))


def ess(W) -> float:
    """(sum W)^2 / sum W^2."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 1 or W.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {W.shape}")
    _as_weights(W, normalised=False)
    return float(W.sum() ** 2 / np.sum(W**2))


def sorted_uniforms(M: int, rng: np.random.Generator) -> np.ndarray:
    """M sorted U[0,1) by exponential spacings (S_m / S_M with S the cumsum of M + 1 Exp(1))."""
    S = np.cumsum(rng.standard_exponential(M + 1))
    return np.minimum(S[:-1] / S[-1], np.nextafter(1.0, 0.0))


def resample_weights(W, scheme: str = "systematic", *, M: int | None = None, rng=None) -> np.ndarray:
    """Ancestor indices from normalised weights, uniforms drawn from ``rng`` as the kernel does."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown resampling scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    _as_weights(W)
    W = np.ascontiguousarray(W, dtype=np.float64)
    M = len(W) if M is None else int(M)
    if M < 0:
        raise ValueError(f"M must be >= 0, got {M}")
    rng = np.random.default_rng(rng)
    if scheme == "multinomial":
        return multinomial(W, sorted_uniforms(M, rng))
    if scheme == "stratified":
        return stratified(W, rng.random(M))
    if scheme == "systematic":
        return systematic(W, rng.random(), M=M)
    if M == 0:
        return np.empty(0, np.int64)
    A, res, R = _residual_parts(W, M)
    if R:
        A[M - R :] = _icdf(np.cumsum(res), int(np.flatnonzero(res)[-1]), sorted_uniforms(R, rng))
    return A


def resample(logw, scheme: str = "systematic", *, M: int | None = None, rng=None) -> np.ndarray:
    """``log_normalise`` then ``resample_weights``."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown resampling scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    W, _ = log_normalise(logw)
    return resample_weights(W, scheme, M=M, rng=rng)
