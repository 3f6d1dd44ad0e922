"""Resampling for particle methods: multinomial, stratified, systematic, residual (numba).

Every scheme maps normalised weights ``W`` [N] and caller-supplied uniforms to ancestor indices
``A`` [M] by the inverse CDF of the weights at points t_m,

    A_m = F^{-1}(t_m) = min{ n : C_n > t_m },   C_n = sum_{k <= n} W_k,

where the scheme decides the points (C = C_{N-1} is the computed total, 1 up to rounding):

=============  =========================  ============================================
scheme         uniforms ``u`` it takes    points t_m
=============  =========================  ============================================
multinomial    M iid U[0,1), any order    t_m = u_m * C      (A keeps the order of u)
stratified     M iid U[0,1)               t_m = (m + u_m) * (C / M)
systematic     one U[0,1) (scalar/[1])    t_m = (m + u) * (C / M)
residual       M iid U[0,1)               floor(M W_n / C) copies of each n, then the
                                          R = M - sum_n floor(M W_n / C) remaining draws
                                          are multinomial on the residuals
                                          M W_n / C - floor(M W_n / C), using u[:R]
=============  =========================  ============================================

Scaling the points by the computed total ``C_{N-1}`` (rather than assuming it is exactly 1)
makes the draw exact for weights that sum to 1 up to rounding, and the strict ``C_n > t``
means an index with zero weight is never drawn. The pure-numpy twin ``resample_py`` performs
the same floating-point operations (``np.searchsorted(C, t, side="right")``), so both return
identical indices for identical uniforms.

Bad weights (NaN, +-inf, negative, all zero, not summing to 1 within 1e-6) raise ValueError:
never a silent wrong draw. The argument checks live once, in ``ponder.kernels._checks``, shared
with the twin (this module passes its one-pass numba scans, the twin numpy ones). ``log_normalise`` turns log-weights into normalised weights with the
log-sum-exp trick and rejects NaN, +inf and all -inf.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ponder.kernels import _checks
from ponder.kernels._checks import SCHEMES, SUM_TOLERANCE, check_draws, check_M, check_scheme

_WEIGHT_ERRORS = _checks.WEIGHT_ERRORS


# ---------------------------------------------------------------------------------------------
# numba cores
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _scan_weights(W):  # W [N] float64 -> (status, index, total, last)
    """One pass: validate, total = sequential sum (== cumsum(W)[-1]), last index with W > 0."""
    total = 0.0
    last = -1
    for n in range(W.shape[0]):
        w = W[n]
        if w != w:
            return 1, n, total, last
        if w < 0.0:
            return 2, n, total, last
        if w == np.inf:
            return 3, n, total, last
        total += w
        if w > 0.0:
            last = n
    if last < 0:
        return 4, -1, total, last
    return 0, -1, total, last


@njit(cache=True)
def _scan_uniforms(u):  # u [M] float64 -> (status, index, is_sorted)
    """Check every u_m is in [0, 1) (status 1 otherwise) and whether u is non-decreasing."""
    is_sorted = True
    prev = -1.0
    for m in range(u.shape[0]):
        x = u[m]
        if not (x >= 0.0 and x < 1.0):
            return 1, m, False
        if x < prev:
            is_sorted = False
        prev = x
    return 0, -1, is_sorted


@njit(cache=True)
def _cumsum(W):  # [N] -> [N], sequential like np.cumsum
    C = np.empty(W.shape[0], np.float64)
    s = 0.0
    for n in range(W.shape[0]):
        s += W[n]
        C[n] = s
    return C


@njit(cache=True)
def _icdf_sorted(W, v, total, last, out, offset):  # v [R] non-decreasing
    """out[offset + r] = F^{-1}(v_r * total) by one merge pass over W (running cumsum)."""
    j = 0
    s = W[0]
    for r in range(v.shape[0]):
        t = v[r] * total
        while j < last and s <= t:
            j += 1
            s += W[j]
        out[offset + r] = j


@njit(cache=True)
def _icdf_guided(W, v, total, last, out, offset):  # v [R] any order
    """out[offset + r] = F^{-1}(v_r * total) with a guide table (Chen & Asau), O(N + R) expected.

    The guide g_k = F^{-1}(k / K * total) gives a start for each point; a forward and a backward
    scan then land exactly on min{n : C_n > t}, whatever the rounding of the bucket index.
    """
    R = v.shape[0]
    if R == 0:
        return
    C = _cumsum(W)
    K = max(1, min(R, W.shape[0]))
    g = np.empty(K, np.int64)
    j = 0
    for k in range(K):
        t = k / K * total
        while j < last and C[j] <= t:
            j += 1
        g[k] = j
    for r in range(R):
        t = v[r] * total
        k = int(v[r] * K)
        if k >= K:
            k = K - 1
        j = g[k]
        while j < last and C[j] <= t:
            j += 1
        while j > 0 and C[j - 1] > t:
            j -= 1
        out[offset + r] = j


@njit(cache=True)
def _counts_to_ancestors(A, last):  # A [M] in place
    """A_m <- min(sum_{k <= m} A_k, last): on entry A_k counts the n whose first point >= C_n is k."""
    a = 0
    for m in range(A.shape[0]):
        a += A[m]
        A[m] = a if a < last else last


@njit(cache=True)
def _systematic(W, u, M, total, last):  # u scalar -> A [M]
    """Comb counting: for each n, cnt_n = #{m : t_m < C_n} with t_m = (m + u) * step.

    Then A_m = #{n : cnt_n <= m} (= min{n : C_n > t_m}), clipped to ``last``. cnt_n is estimated
    as ceil(C_n / step - u) and corrected on the exact t_m, so the result equals the merge (and
    ``searchsorted``) bit for bit, without the merge's unpredictable branches.
    """
    step = total / M
    inv = M / total
    A = np.zeros(M, np.int64)
    s = 0.0
    for n in range(W.shape[0]):
        s += W[n]
        x = np.ceil(s * inv - u)
        e = 0 if x < 0.0 else (M if x > M else np.int64(x))
        while e > 0 and (e - 1 + u) * step >= s:
            e -= 1
        while e < M and (e + u) * step < s:
            e += 1
        if e < M:
            A[e] += 1
    _counts_to_ancestors(A, last)
    return A


@njit(cache=True)
def _stratified(W, u, total, last):  # u [M] -> A [M]
    """Comb counting as in ``_systematic`` with t_m = (m + u_m) * step."""
    M = u.shape[0]
    step = total / M
    inv = M / total
    A = np.zeros(M, np.int64)
    s = 0.0
    for n in range(W.shape[0]):
        s += W[n]
        x = np.floor(s * inv)
        e = 0 if x < 0.0 else (M if x > M else np.int64(x))
        if e < M:  # the stratum holding C_n: its point is below C_n or not (branch-free)
            e += np.int64((e + u[e]) * step < s)
        while e > 0 and (e - 1 + u[e - 1]) * step >= s:
            e -= 1
        while e < M and (e + u[e]) * step < s:
            e += 1
        if e < M:
            A[e] += 1
    _counts_to_ancestors(A, last)
    return A


@njit(cache=True)
def _residual_split(W, M, total):  # -> (A [M] with n_det copies filled, res [N], n_det)
    """floor(M W_n / total) copies of each n in index order, and residuals M W_n / total - copies."""
    N = W.shape[0]
    scale = M / total
    res = np.empty(N, np.float64)
    A = np.zeros(M, np.int64)
    n_det = 0
    for n in range(N):
        mw = W[n] * scale
        c = np.int64(mw)  # floor, mw >= 0
        res[n] = mw - c
        n_det += c
        if n_det < M:
            A[n_det] += 1
    _counts_to_ancestors(A, N - 1)
    return A, res, n_det


@njit(cache=True)
def _log_normalise(logw):  # [N] -> (status, index, W [N], log_mean_weight)
    N = logw.shape[0]
    mx = -np.inf
    for n in range(N):
        x = logw[n]
        if x != x:
            return 1, n, np.empty(0, np.float64), 0.0
        if x == np.inf:
            return 2, n, np.empty(0, np.float64), 0.0
        if x > mx:
            mx = x
    if mx == -np.inf:
        return 3, -1, np.empty(0, np.float64), 0.0
    W = np.empty(N, np.float64)
    s = 0.0
    for n in range(N):
        w = np.exp(logw[n] - mx)
        W[n] = w
        s += w
    for n in range(N):
        W[n] /= s
    return 0, -1, W, mx + np.log(s / N)


@njit(cache=True)
def _ess(W):  # [N] -> (status, index, ess)
    s = 0.0
    s2 = 0.0
    for n in range(W.shape[0]):
        w = W[n]
        if w != w:
            return 1, n, 0.0
        if w < 0.0:
            return 2, n, 0.0
        if w == np.inf:
            return 3, n, 0.0
        s += w
        s2 += w * w
    if s == 0.0:
        return 4, -1, 0.0
    return 0, -1, s * s / s2


# ---------------------------------------------------------------------------------------------
# validation (ponder.kernels._checks, shared with the twin; the element scans are the numba ones)
# ---------------------------------------------------------------------------------------------


def _as_weights(W, *, normalised: bool = True):
    """Validate ``W`` [N]; return (W float64 contiguous, total, last positive index)."""
    return _checks.as_weights(W, scan=_scan_weights, normalised=normalised)


def _as_uniforms(u, name: str = "u"):
    """Validate ``u`` [M] in [0, 1); return (u float64 contiguous, is_sorted)."""
    return _checks.as_uniforms(u, name, scan=_scan_uniforms)


def _icdf(W, v, total, last, out, offset, is_sorted):
    if is_sorted:
        _icdf_sorted(W, v, total, last, out, offset)
    else:
        _icdf_guided(W, v, total, last, out, offset)


def inverse_cdf(weights, v):
    """Inverse CDF of unnormalised non-negative ``weights`` [N] at points ``v`` [R] in [0, 1).

    A_r = min{n : C_n > v_r * C_{N-1}} with C = cumsum(weights): index n is drawn with
    probability weights_n / sum(weights). Used by ``multinomial`` and by the Go-Explore archive.

    Returns:
        int64 indices [R], in the order of ``v``.
    """
    W, total, last = _as_weights(weights, normalised=False)
    v, is_sorted = _as_uniforms(v, "v")
    out = np.empty(v.shape[0], np.int64)
    if v.shape[0]:
        _icdf(W, v, total, last, out, 0, is_sorted)
    return out


# ---------------------------------------------------------------------------------------------
# public schemes
# ---------------------------------------------------------------------------------------------


def multinomial(W, u, *, M: int | None = None) -> np.ndarray:
    """Multinomial resampling: M iid draws A_m ~ Categorical(W).

    A_m = F^{-1}(u_m). Takes M uniforms in any order and keeps their order (the draws are iid).
    Sorted uniforms are served by one merge pass, O(N + M); unsorted ones by a guide table,
    O(N + M) expected.

    Args:
        W: normalised weights [N] (>= 0, sum 1 within 1e-6).
        u: M uniforms in [0, 1) [M].
        M: number of draws; defaults to len(u) and must equal it if given.

    Returns:
        ancestor indices, int64 [M].
    """
    W, total, last = _as_weights(W)
    u, is_sorted = _as_uniforms(u)
    M = check_M(M, u.shape[0], "multinomial")
    A = np.empty(M, np.int64)
    if M:
        _icdf(W, u, total, last, A, 0, is_sorted)
    return A


def stratified(W, u, *, M: int | None = None) -> np.ndarray:
    """Stratified resampling: one draw in each stratum [m/M, (m+1)/M).

    A_m = F^{-1}((m + u_m) / M) (points scaled by the total), non-decreasing in m. Each n
    whose weight covers a whole stratum is drawn at least once.

    Args:
        W: normalised weights [N].
        u: M iid uniforms in [0, 1) [M].
        M: number of draws; defaults to len(u) and must equal it if given.

    Returns:
        ancestor indices, int64 [M], sorted.
    """
    W, total, last = _as_weights(W)
    u, _ = _as_uniforms(u)
    check_M(M, u.shape[0], "stratified")
    if u.shape[0] == 0:
        return np.empty(0, np.int64)
    return _stratified(W, u, total, last)


def systematic(W, u, *, M: int | None = None) -> np.ndarray:
    """Systematic resampling: one uniform shifts an evenly spaced comb.

    A_m = F^{-1}((m + u) / M) (points scaled by the total); particle n gets floor(M W_n) or
    ceil(M W_n) offspring. Computed by comb counting in O(N + M) without data-dependent
    branches.

    Args:
        W: normalised weights [N].
        u: a single uniform in [0, 1) (a float or an array of shape [1]).
        M: number of draws, default N.

    Returns:
        ancestor indices, int64 [M], sorted.
    """
    W, total, last = _as_weights(W)
    u = _checks.one_uniform(u, scan=_scan_uniforms)
    M = check_draws(W.shape[0] if M is None else M)
    if M == 0:
        return np.empty(0, np.int64)
    return _systematic(W, u, M, total, last)


def residual(W, u, *, M: int | None = None) -> np.ndarray:
    """Residual resampling: deterministic copies, then multinomial on the residuals.

    With w_n = M W_n / sum(W): particle n gets floor(w_n) copies (listed first, in index order);
    the R = M - sum_n floor(w_n) remaining draws are ``multinomial`` on the residuals
    r_n = w_n - floor(w_n), using the uniforms u[:R] (R < min(M, N) + 1, so M uniforms always
    suffice).

    Args:
        W: normalised weights [N].
        u: M iid uniforms in [0, 1) [M]; only the first R are used.
        M: number of draws; defaults to len(u) and must equal it if given.

    Returns:
        ancestor indices, int64 [M].
    """
    W, total, last = _as_weights(W)
    u, _ = _as_uniforms(u)
    M = check_M(M, u.shape[0], "residual")
    if M == 0:
        return np.empty(0, np.int64)
    A, res, R = _residual_parts(W, M, total)
    if R:
        v = u[:R]
        _residual_finish(A, res, v, _scan_uniforms(v)[2])
    return A


def _residual_parts(W, M, total):
    """(A [M] with the deterministic copies first, residuals [N], R = number of draws left)."""
    A, res, n_det = _residual_split(W, M, total)
    if n_det > M:  # only possible if sum_n M W_n / total rounds above M + 1
        raise RuntimeError(f"residual: {n_det} deterministic copies exceed M={M}")
    return A, res, M - n_det


def _residual_finish(A, res, v, is_sorted):
    """Fill the last R = len(v) entries of A by multinomial draws on the residuals."""
    status, _, res_total, res_last = _scan_weights(res)
    if status:
        raise RuntimeError("residual: the residual weights are all zero but draws remain")
    _icdf(res, v, res_total, res_last, A, A.shape[0] - v.shape[0], is_sorted)


def log_normalise(logw) -> tuple[np.ndarray, float]:
    """Normalised weights and log mean weight from log-weights, by log-sum-exp.

    W_n = exp(logw_n - max) / sum_k exp(logw_k - max),
    log_mean_weight = max + log(sum_k exp(logw_k - max) / N)   (= log of mean of exp(logw)).

    Entries equal to -inf get weight 0. NaN, +inf or all -inf raise ValueError.

    Returns:
        (W [N] float64, log_mean_weight float)
    """
    logw = np.ascontiguousarray(logw, dtype=np.float64)
    if logw.ndim != 1 or logw.shape[0] == 0:
        raise ValueError(f"log-weights must be a non-empty 1-D array, got shape {logw.shape}")
    status, i, W, lmw = _log_normalise(logw)
    if status == 1:
        raise ValueError(f"log-weights contain NaN (at index {i})")
    if status == 2:
        raise ValueError(f"log-weights contain +inf (at index {i})")
    if status == 3:
        raise ValueError("all log-weights are -inf: every particle has zero weight")
    return W, float(lmw)


def ess(W) -> float:
    """Effective sample size ESS = (sum W)^2 / sum W^2 (= 1 / sum W^2 for normalised W).

    Between 1 (one particle holds all the weight) and N (uniform weights).
    """
    W = np.ascontiguousarray(W, dtype=np.float64)
    if W.ndim != 1 or W.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {W.shape}")
    status, i, value = _ess(W)
    if status:
        raise ValueError(_WEIGHT_ERRORS[status].format(i=i))
    return float(value)


def sorted_uniforms(M: int, rng: np.random.Generator) -> np.ndarray:
    """M sorted U[0,1) variates in O(M) by exponential spacings.

    With E_0..E_M iid Exp(1) and S_m = E_0 + ... + E_m, (S_0/S_M, ..., S_{M-1}/S_M) is distributed
    as the order statistics of M iid uniforms. Feeding them to ``multinomial`` takes its merge
    path and gives sorted ancestors (as ``particles`` does).
    """
    S = np.cumsum(rng.standard_exponential(M + 1))  # [M + 1]
    return np.minimum(S[:-1] / S[-1], np.nextafter(1.0, 0.0))


def resample_weights(W, scheme: str = "systematic", *, M: int | None = None, rng=None) -> np.ndarray:
    """Ancestor indices [M] from normalised weights [N], uniforms drawn from ``rng``.

    The uniforms: ``sorted_uniforms(M)`` for multinomial (so the ancestors come out sorted, as in
    ``particles``; shuffle them if an iid order matters), M iid for stratified, one for
    systematic, and for residual ``sorted_uniforms(R)`` for the R draws left after the
    deterministic copies. The twin draws them the same way, so a seeded Generator gives the same
    indices in both.

    Args:
        W: normalised weights [N].
        scheme: "multinomial", "stratified", "systematic" or "residual".
        M: number of draws, default N.
        rng: a numpy Generator (or a seed for ``np.random.default_rng``).

    Returns:
        int64 [M] ancestor indices.
    """
    check_scheme(scheme)
    W, total, _ = _as_weights(W)
    M = check_draws(W.shape[0] if M is None else M)
    rng = np.random.default_rng(rng)
    if scheme == "multinomial":
        return multinomial(W, sorted_uniforms(M, rng))
    if scheme == "stratified":
        return stratified(W, rng.random(M))
    if scheme == "systematic":
        return systematic(W, rng.random(), M=M)
    if M == 0:
        return np.empty(0, np.int64)
    A, res, R = _residual_parts(W, M, total)
    if R:
        _residual_finish(A, res, sorted_uniforms(R, rng), True)
    return A


def resample(logw, scheme: str = "systematic", *, M: int | None = None, rng=None) -> np.ndarray:
    """Ancestor indices [M] from log-weights [N]: ``log_normalise`` then ``resample_weights``.

    Args:
        logw: log-weights [N] (unnormalised; -inf means weight 0).
        scheme: "multinomial", "stratified", "systematic" or "residual".
        M: number of draws, default N.
        rng: a numpy Generator (or a seed for ``np.random.default_rng``).

    Returns:
        int64 [M] ancestor indices.
    """
    W, _ = log_normalise(logw)  # resample_weights checks the scheme
    return resample_weights(W, scheme, M=M, rng=rng)
