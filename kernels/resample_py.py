"""Pure-numpy twin of ``ponder.kernels.resample``: the same schemes by ``searchsorted`` on ``cumsum``.

Same uniforms in, same ancestor indices out (the points are computed with the same floating-point
operations). See ``resample.py`` for the maths and the uniforms each scheme takes.
The argument checks and their errors are the kernel's, from ``ponder.kernels._checks``.
"""

from __future__ import annotations

import numpy as np

from ponder.kernels import _checks
from ponder.kernels._checks import SCHEMES, SUM_TOLERANCE, check_draws, check_M, check_scheme


def _as_weights(W, *, normalised: bool = True):
    """Validate (``ponder.kernels._checks``, numpy scans); return (C = cumsum(W) [N], last)."""
    W, _, last = _checks.as_weights(W, scan=_checks.scan_weights_numpy, normalised=normalised)
    return np.cumsum(W), last


def _as_uniforms(u, name: str = "u") -> np.ndarray:
    return _checks.as_uniforms(u, name, scan=_checks.scan_uniforms_numpy)[0]


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
    check_M(M, len(u), "multinomial")
    return _icdf(C, last, u)


def stratified(W, u, *, M: int | None = None) -> np.ndarray:
    """A_m = min{n : C_n > (m + u_m) * (C_{N-1} / M)} for M uniforms; int64 [M]."""
    C, last = _as_weights(W)
    u = _as_uniforms(u)
    check_M(M, len(u), "stratified")
    if len(u) == 0:
        return np.empty(0, np.int64)
    return _icdf_at(C, last, (np.arange(len(u)) + u) * (C[-1] / len(u)))


def systematic(W, u, *, M: int | None = None) -> np.ndarray:
    """A_m = min{n : C_n > (m + u) * (C_{N-1} / M)} for one uniform u; int64 [M], M default N."""
    C, last = _as_weights(W)
    u = _checks.one_uniform(u, scan=_checks.scan_uniforms_numpy)
    M = check_draws(len(C) if M is None else M)
    if M == 0:
        return np.empty(0, np.int64)
    return _icdf_at(C, last, (np.arange(M) + u) * (C[-1] / M))


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
    check_M(M, len(u), "residual")
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
    check_scheme(scheme)
    _as_weights(W)
    W = np.ascontiguousarray(W, dtype=np.float64)
    M = check_draws(len(W) if M is None else M)
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
    check_scheme(scheme)
    W, _ = log_normalise(logw)
    return resample_weights(W, scheme, M=M, rng=rng)
