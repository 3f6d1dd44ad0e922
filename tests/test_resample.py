"""Resampling kernel (numba) vs its numpy twin, statistical checks, peers and bad inputs."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.kernels import resample as K
from ponder.kernels import resample_py as T

SCHEMES = ("multinomial", "stratified", "systematic", "residual")

raw_weights = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e6, allow_subnormal=False)),
    min_size=1,
    max_size=40,
).filter(lambda w: sum(w) > 0)
uniform = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def normalised(w) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    return w / w.sum()


# --------------------------------------------------------------------------------------------
# agreement with the twin
# --------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(w=raw_weights, u=st.lists(uniform, max_size=60), u1=uniform, sort=st.booleans())
def test_schemes_agree_with_twin(w, u, u1, sort):
    W = normalised(w)
    u = np.sort(u) if sort else np.asarray(u, dtype=np.float64)
    for scheme in ("multinomial", "stratified", "residual"):
        a = getattr(K, scheme)(W, u)
        b = getattr(T, scheme)(W, u)
        assert a.dtype == np.int64 and a.shape == (len(u),)
        np.testing.assert_array_equal(a, b, err_msg=scheme)
        assert (W[a] > 0).all(), f"{scheme} drew a zero-weight index"
    for M in (None, 0, 1, len(u), 2 * len(W) + 3):
        a = K.systematic(W, u1, M=M)
        np.testing.assert_array_equal(a, T.systematic(W, u1, M=M))
        assert a.shape == ((len(W) if M is None else M),)
        assert (W[a] > 0).all()


@settings(max_examples=60, deadline=None)
@given(w=raw_weights, seed=st.integers(0, 2**32 - 1), M=st.integers(0, 80))
def test_rng_entry_points_agree_with_twin(w, seed, M):
    W = normalised(w)
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(w, dtype=np.float64)) + 3.0
    for scheme in SCHEMES:
        a = K.resample_weights(W, scheme, M=M, rng=np.random.default_rng(seed))
        b = T.resample_weights(W, scheme, M=M, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(a, b, err_msg=scheme)
        a = K.resample(logw, scheme, M=M, rng=seed)
        np.testing.assert_array_equal(a, T.resample(logw, scheme, M=M, rng=seed), err_msg=scheme)
        assert a.shape == (M,) and (W[a] > 0).all()


@settings(max_examples=100, deadline=None)
@given(logw=st.lists(st.one_of(st.just(-np.inf), st.floats(-700, 700)), min_size=1, max_size=40))
def test_log_normalise_and_ess_agree_with_twin(logw):
    if max(logw) == -np.inf:
        return
    W, lmw = K.log_normalise(logw)
    W2, lmw2 = T.log_normalise(logw)
    np.testing.assert_allclose(W, W2, rtol=1e-12, atol=1e-300)
    assert lmw == pytest.approx(lmw2, rel=1e-12, abs=1e-12)
    assert W.sum() == pytest.approx(1.0, abs=1e-12)
    assert 1.0 - 1e-9 <= K.ess(W) <= len(W) + 1e-9
    assert K.ess(W) == pytest.approx(T.ess(W), rel=1e-12)


def test_log_normalise_values():
    W, lmw = K.log_normalise(np.log([1.0, 3.0]) + 100.0)
    np.testing.assert_allclose(W, [0.25, 0.75])
    assert lmw == pytest.approx(100.0 + np.log(2.0))
    assert K.ess([0.5, 0.5]) == pytest.approx(2.0)
    assert K.ess([1.0, 0.0, 0.0]) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# properties of the schemes
# --------------------------------------------------------------------------------------------


def test_systematic_and_residual_offspring_bounds():
    rng = np.random.default_rng(1)
    for _ in range(50):
        N = int(rng.integers(1, 300))
        W = normalised(rng.random(N) ** 3)
        M = int(rng.integers(1, 400))
        MW = M * W
        counts = np.bincount(K.systematic(W, rng.random(), M=M), minlength=N)
        assert ((counts >= np.floor(MW) - 1e-9) & (counts <= np.ceil(MW) + 1e-9)).all()
        counts = np.bincount(K.residual(W, rng.random(M)), minlength=N)
        assert (counts >= np.floor(MW * (1 - 1e-12))).all() and counts.sum() == M
        counts = np.bincount(K.stratified(W, rng.random(M)), minlength=N)
        assert counts.sum() == M


def test_multinomial_keeps_the_order_of_its_uniforms():
    W = np.array([0.2, 0.3, 0.5])
    np.testing.assert_array_equal(K.multinomial(W, [0.9, 0.1, 0.45, 0.2]), [2, 0, 1, 1])
    np.testing.assert_array_equal(K.systematic(W, 0.5, M=4), [0, 1, 2, 2])  # points .125 .375 .625 .875


@pytest.mark.parametrize("scheme", SCHEMES)
def test_offspring_counts_are_unbiased(scheme):
    """Chi-square of the total offspring counts over many resamplings against R * M * W."""
    rng = np.random.default_rng(7)
    W = normalised([0.01, 0.1, 0.19, 0.3, 0.4, 0.0])
    R, M = 4000, 6
    total = np.zeros(len(W))
    for _ in range(R):
        total += np.bincount(K.resample_weights(W, scheme, M=M, rng=rng), minlength=len(W))
    expected = R * M * W
    keep = expected > 0
    assert total[~keep].sum() == 0
    chi2 = (((total - expected) ** 2)[keep] / expected[keep]).sum()
    assert chi2 < 20.5  # 99.9 % quantile of chi-square with 4 degrees of freedom is 18.5


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_distribution_as_particles(scheme):
    """Per particle, the histogram of its offspring count matches ``particles.resampling``."""
    resampling = pytest.importorskip("particles.resampling")
    stats = pytest.importorskip("scipy.stats")
    W = normalised([0.05, 0.15, 0.25, 0.02, 0.33, 0.2])
    R, M, N = 3000, 6, 6
    rng = np.random.default_rng(11)
    np.random.seed(11)  # particles draws from numpy's global generator
    ours = np.array([np.bincount(K.resample_weights(W, scheme, M=M, rng=rng), minlength=N) for _ in range(R)])
    theirs = np.array([np.bincount(getattr(resampling, scheme)(W, M=M), minlength=N) for _ in range(R)])
    for n in range(N):
        values = np.union1d(ours[:, n], theirs[:, n])
        table = np.array([[np.sum(ours[:, n] == v) for v in values], [np.sum(theirs[:, n] == v) for v in values]])
        if table.shape[1] < 2:  # a deterministic count (e.g. systematic): both must agree exactly
            continue
        p = stats.chi2_contingency(table).pvalue
        assert p > 1e-4 / N, f"{scheme}: offspring of particle {n} differ from particles (p={p:.2g})"


GOLDEN_PARTICLES = json.loads((pathlib.Path(__file__).parent / "golden" / "particles_resampling.json").read_text())


@pytest.mark.parametrize("case", GOLDEN_PARTICLES["cases"],
                         ids=lambda c: f"{c['scheme']}-{c['weights_name']}-M{c['M']}")
@pytest.mark.parametrize("module", [K, T], ids=["kernel", "twin"])
def test_matches_golden_particles(module, case):
    """With the uniforms ``particles.resampling`` drew (tests/golden/make_golden.py), the same
    ancestors and offspring counts as particles, exactly; particles not needed."""
    W = np.asarray(case["W"], dtype=np.float64)
    u = np.asarray(case["u"], dtype=np.float64)
    scheme, M = case["scheme"], case["M"]
    ancestors = getattr(module, scheme)(W, u[0] if scheme == "systematic" else u, M=M)
    np.testing.assert_array_equal(ancestors, case["ancestors"])
    np.testing.assert_array_equal(np.bincount(ancestors, minlength=len(W)), case["offspring"])


# --------------------------------------------------------------------------------------------
# bad inputs: a clear ValueError, never a silent wrong draw
# --------------------------------------------------------------------------------------------

BAD_WEIGHTS = {
    "NaN": ([0.5, np.nan, 0.5], "NaN"),
    "negative": ([0.6, -0.1, 0.5], "negative"),
    "infinite": ([0.5, np.inf], "infinite"),
    "all zero": ([0.0, 0.0], "all weights are zero"),
    "unnormalised": ([1.0, 2.0], "sum to"),
    "empty": ([], "non-empty"),
}


@pytest.mark.parametrize("module", [K, T], ids=["kernel", "twin"])
@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_bad_weights_raise(module, case):
    W, message = BAD_WEIGHTS[case]
    for scheme in ("multinomial", "stratified", "residual"):
        with pytest.raises(ValueError, match=message):
            getattr(module, scheme)(W, [0.5, 0.25])
    with pytest.raises(ValueError, match=message):
        module.systematic(W, 0.5)
    with pytest.raises(ValueError, match=message):
        module.resample_weights(W, "systematic", rng=0)


@pytest.mark.parametrize("module", [K, T], ids=["kernel", "twin"])
def test_bad_log_weights_raise(module):
    with pytest.raises(ValueError, match="all log-weights are -inf"):
        module.log_normalise([-np.inf, -np.inf])
    with pytest.raises(ValueError, match="all log-weights are -inf"):
        module.resample([-np.inf] * 3, "multinomial", rng=0)
    with pytest.raises(ValueError, match="NaN"):
        module.log_normalise([0.0, np.nan])
    with pytest.raises(ValueError, match=r"\+inf"):
        module.log_normalise([0.0, np.inf])
    with pytest.raises(ValueError, match="NaN"):
        module.ess([0.5, np.nan])


@pytest.mark.parametrize("module", [K, T], ids=["kernel", "twin"])
def test_bad_uniforms_and_options_raise(module):
    W = [0.5, 0.5]
    for bad in ([0.5, 1.0], [-0.1], [np.nan]):
        with pytest.raises(ValueError, match="not in"):
            module.multinomial(W, bad)
    with pytest.raises(ValueError, match="not in"):
        module.systematic(W, 1.0)
    with pytest.raises(ValueError, match="exactly one uniform"):
        module.systematic(W, [0.1, 0.2])
    with pytest.raises(ValueError, match="M=3"):
        module.stratified(W, [0.1, 0.2], M=3)
    with pytest.raises(ValueError, match="unknown resampling scheme"):
        module.resample([0.0, 0.0], "killing", rng=0)
