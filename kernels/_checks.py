"""Argument checks shared by the resampling kernel (``resample.py``) and its twin (``resample_py.py``).

One place for what both accept and the errors both raise, as ``particles`` puts its shared checks
behind one decorator: each scheme calls :func:`as_weights`, :func:`as_uniforms` and
:func:`check_M` and gets the same ValueError for the same bad input. Pure numpy; the scans that
look at every element are passed in (``scan_weights``, ``scan_uniforms``), so the kernel keeps its
one-pass numba scan and the twin uses the numpy scans defined here, with the same results:

* ``scan_weights(W) -> (status, index, total, last)``: ``status`` 0 if every ``W_n`` is finite and
  ``>= 0`` and some is ``> 0``, else the code of the first bad element in :data:`WEIGHT_ERRORS` (4:
  all zero); ``total`` the sequential sum (``== cumsum(W)[-1]``); ``last`` the last index with
  ``W_n > 0``.
* ``scan_uniforms(u) -> (status, index, is_sorted)``: ``status`` 1 at the first ``u_m`` outside
  ``[0, 1)``; ``is_sorted`` whether ``u`` is non-decreasing.
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("multinomial", "stratified", "systematic", "residual")
SUM_TOLERANCE = 1e-6  # |sum(W) - 1| allowed before a ValueError

WEIGHT_ERRORS = {
    1: "weights contain NaN (at index {i})",
    2: "weights contain a negative value (at index {i})",
    3: "weights contain an infinite value (at index {i})",
    4: "all weights are zero",
}


def scan_weights_numpy(W: np.ndarray):
    """:func:`as_weights`'s scan in numpy (the twin's): ``(status, index, total, last)``."""
    bad = ~(W >= 0.0) | (W == np.inf)  # NaN, negative (also -inf), +inf
    if bad.any():
        i = int(np.argmax(bad))
        w = W[i]
        return (1 if w != w else 2 if w < 0.0 else 3), i, float("nan"), -1
    positive = np.flatnonzero(W)
    total = float(np.cumsum(W)[-1])
    if positive.shape[0] == 0:
        return 4, -1, total, -1
    return 0, -1, total, int(positive[-1])


def scan_uniforms_numpy(u: np.ndarray):
    """:func:`as_uniforms`'s scan in numpy (the twin's): ``(status, index, is_sorted)``."""
    bad = ~((u >= 0.0) & (u < 1.0))
    if bad.any():
        return 1, int(np.argmax(bad)), False
    return 0, -1, bool(np.all(u[1:] >= u[:-1]))


def as_weights(W, *, scan, normalised: bool = True):
    """Validate weights ``W`` [N]; return ``(W float64 contiguous, total, last positive index)``.

    Raises ValueError if ``W`` is not a non-empty 1-D array, holds NaN, a negative value or +inf, is
    all zero, or (``normalised=True``) does not sum to 1 within :data:`SUM_TOLERANCE`.
    """
    W = np.ascontiguousarray(W, dtype=np.float64)
    if W.ndim != 1 or W.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {W.shape}")
    status, i, total, last = scan(W)
    if status:
        raise ValueError(WEIGHT_ERRORS[status].format(i=i))
    if normalised and not abs(total - 1.0) <= SUM_TOLERANCE:
        raise ValueError(f"weights sum to {total!r}, not 1; normalise them first (e.g. log_normalise)")
    return W, total, last


def as_uniforms(u, name: str = "u", *, scan):
    """Validate uniforms ``u`` [M] in ``[0, 1)``; return ``(u float64 contiguous, is_sorted)``."""
    u = np.ascontiguousarray(u, dtype=np.float64)
    if u.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of uniforms, got shape {u.shape}")
    status, i, is_sorted = scan(u)
    if status:
        raise ValueError(f"{name}[{i}] = {u[i]!r} is not in [0, 1)")
    return u, is_sorted


def check_M(M, count: int, scheme: str) -> int:
    """``M`` (None: ``count``) must equal the number of uniforms given; returns it."""
    if M is None:
        return count
    if int(M) != count:
        raise ValueError(f"{scheme}: M={M} but {count} uniforms were given (one per draw)")
    return count


def check_draws(M) -> int:
    """A number of draws ``M >= 0`` (systematic and ``resample_weights``)."""
    M = int(M)
    if M < 0:
        raise ValueError(f"M must be >= 0, got {M}")
    return M


def check_scheme(scheme: str) -> str:
    """One of :data:`SCHEMES`, else ValueError."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown resampling scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    return scheme


def one_uniform(u, *, scan) -> float:
    """The single uniform of systematic resampling (a scalar or a [1] array)."""
    u_arr, _ = as_uniforms(np.atleast_1d(np.asarray(u, dtype=np.float64)), scan=scan)
    if u_arr.shape[0] != 1:
        raise ValueError(f"systematic takes exactly one uniform, got {u_arr.shape[0]}")
    return float(u_arr[0])
