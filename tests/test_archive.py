"""Go-Explore archive (numba) vs its numpy/Python twin: same keys, same table, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ponder.kernels import archive as K
from ponder.kernels import archive_py as T

COLUMNS = ("keys", "visits", "chosen", "since_improvement", "score", "traj_len", "payload")


def fnv1a_reference(data: bytes) -> int:
    """64-bit FNV-1a on Python ints, as int64."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return h - 2**64 if h >= 2**63 else h


# --------------------------------------------------------------------------------------------
# cell keys
# --------------------------------------------------------------------------------------------


@st.composite
def frames_and_options(draw):
    n = draw(st.integers(0, 3))
    H = draw(st.integers(1, 14))
    W = draw(st.integers(1, 14))
    rgb = draw(st.booleans())
    shape = (n, H, W, 3) if rgb else (n, H, W)
    frames = draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 255)))
    height = draw(st.integers(1, H))
    width = draw(st.integers(1, W))
    levels = draw(st.sampled_from([2, 3, 8, 16, 255, 256]))
    return frames, dict(width=width, height=height, levels=levels)


@settings(max_examples=120, deadline=None)
@given(case=frames_and_options())
def test_cell_keys_agree_with_twin(case):
    frames, options = case
    a = K.cell_keys(frames, **options)
    assert a.dtype == np.int64 and a.shape == (frames.shape[0],)
    np.testing.assert_array_equal(a, T.cell_keys(frames, **options))


def test_cell_keys_by_hand():
    """A 5x3 grey frame to 2x2 cells: rows {0,1,2 | 3,4}, columns {0,1 | 2}."""
    g = np.array([[0, 0, 255], [0, 0, 255], [0, 0, 255], [255, 255, 0], [255, 255, 100]], dtype=np.uint8)
    # cell means: 0, 255, 255, 50; with 4 levels: floor(mean * 4 / 255) capped at 3 -> 0, 3, 3, 0
    expected = fnv1a_reference(bytes([0, 3, 3, 0]))
    assert K.cell_keys(g[None], width=2, height=2, levels=4)[0] == expected
    assert T.cell_keys(g[None], width=2, height=2, levels=4)[0] == expected
    rgb = np.repeat(g[None, :, :, None], 3, axis=3)  # grey as RGB keys the same
    assert K.cell_keys(rgb, width=2, height=2, levels=4)[0] == expected
    # an Atari-sized black frame: 88 zero bytes
    black = np.zeros((2, 210, 160, 3), np.uint8)
    assert (K.cell_keys(black) == fnv1a_reference(bytes(88))).all()
    white = np.full((1, 210, 160, 3), 255, np.uint8)
    assert K.cell_keys(white, levels=8)[0] == fnv1a_reference(bytes([7] * 88))


def test_cell_keys_luma_and_non_contiguous_input():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(6, 30, 20, 3), dtype=np.uint8)
    view = frames[::2, :, ::-1]  # not contiguous
    np.testing.assert_array_equal(K.cell_keys(view, width=5, height=7), T.cell_keys(view, width=5, height=7))
    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 255  # luma 0.299 -> level floor(0.299 * 8) = 2
    assert K.cell_keys(red, width=1, height=1, levels=8)[0] == fnv1a_reference(bytes([2]))


@pytest.mark.parametrize("module", [K, T], ids=["numba", "numpy"])
def test_cell_keys_errors(module):
    with pytest.raises(ValueError, match="uint8"):
        module.cell_keys(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        module.cell_keys(np.zeros((1, 8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="levels"):
        module.cell_keys(np.zeros((1, 8, 8), np.uint8), width=2, height=2, levels=1)
    with pytest.raises(ValueError, match="cell size"):
        module.cell_keys(np.zeros((1, 8, 8), np.uint8), width=11, height=8)


# --------------------------------------------------------------------------------------------
# cell table
# --------------------------------------------------------------------------------------------

batch_st = st.integers(0, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-4, 30), min_size=n, max_size=n),  # keys (small: many repeats)
        st.lists(st.sampled_from([-np.inf, 0.0, 1.0, 2.5, 3.0]), min_size=n, max_size=n),  # scores (ties)
        st.lists(st.integers(0, 6), min_size=n, max_size=n),  # trajectory lengths
        st.lists(st.integers(0, 10**6), min_size=n, max_size=n),  # payload ids
        st.integers(0, 5),  # cells to sample after the batch
        st.integers(0, 2**31),  # sampling seed
    )
)
selection_st = st.sampled_from(
    [
        (("visits", "chosen"), (1.0, 1.0)),
        (("visits",), (1.0,)),
        (("chosen", "since_improvement"), (0.5, 2.0)),
        (("visits", "chosen", "since_improvement"), (1.0, 0.0, 0.3)),
    ]
)


def assert_same_table(a, b):
    assert len(a) == len(b)
    for col in COLUMNS:
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=col)


@settings(max_examples=80, deadline=None)
@given(batches=st.lists(batch_st, max_size=6), selection=selection_st)
def test_same_operations_same_table(batches, selection):
    attrs, c = selection
    ours, twin = K.CellArchive(capacity=1), T.CellArchive()
    for keys, scores, lens, pids, n_sample, seed in batches:
        np.testing.assert_array_equal(ours.update(keys, scores, lens, pids), twin.update(keys, scores, lens, pids))
        assert_same_table(ours, twin)
        np.testing.assert_array_equal(
            ours.selection_weights(attrs=attrs, c=c), twin.selection_weights(attrs=attrs, c=c)
        )
        if len(ours):
            np.testing.assert_array_equal(
                ours.sample(n_sample, np.random.default_rng(seed), attrs=attrs, c=c),
                twin.sample(n_sample, np.random.default_rng(seed), attrs=attrs, c=c),
            )
            assert_same_table(ours, twin)
        keys_probe = np.arange(-5, 32)
        np.testing.assert_array_equal(ours.rows(keys_probe), twin.rows(keys_probe))


def test_update_rules():
    for cls in (K.CellArchive, T.CellArchive):
        a = cls()
        st_ = a.update([7, 7, 7, 7, 9], [1.0, 0.5, 1.0, 2.0, 0.0], [10, 1, 5, 20, 3], [100, 101, 102, 103, 104])
        np.testing.assert_array_equal(st_, [1, 0, 2, 2, 1])  # new, worse, same score shorter, better, new
        np.testing.assert_array_equal(a.keys, [7, 9])
        np.testing.assert_array_equal(a.visits, [4, 1])
        np.testing.assert_array_equal(a.score, [2.0, 0.0])
        np.testing.assert_array_equal(a.traj_len, [20, 3])
        np.testing.assert_array_equal(a.payload, [103, 104])
        np.testing.assert_array_equal(a.since_improvement, [0, 0])
        a.update([7, 7], [2.0, 1.0], [25, 1], [0, 0])  # equal score but longer; lower score
        np.testing.assert_array_equal(a.since_improvement, [2, 0])
        np.testing.assert_array_equal(a.payload, [103, 104])
        w = a.selection_weights()
        np.testing.assert_allclose(w, [1 / np.sqrt(7) + 1, 1 / np.sqrt(2) + 1])
        assert 7 in a and 8 not in a
        np.testing.assert_array_equal(a.rows([9, 8, 7]), [1, -1, 0])


def test_growth_keeps_every_cell():
    rng = np.random.default_rng(2)
    keys = rng.integers(-(2**62), 2**62, size=5000)
    a = K.CellArchive(capacity=16)
    for batch in np.array_split(keys, 7):
        a.update(batch, np.zeros(len(batch)), np.ones(len(batch), int), np.arange(len(batch)))
    assert len(a) == len(np.unique(keys))
    np.testing.assert_array_equal(a.keys[a.rows(keys)], keys)
    assert (a.rows(np.arange(10) * 3 + 1) == -1).all()


def test_sample_follows_the_weights():
    a = K.CellArchive()
    a.update(np.arange(4), np.zeros(4), np.zeros(4, int), np.arange(4))
    a.update([0] * 80 + [1] * 15, np.zeros(95), np.zeros(95, int), np.zeros(95, int))  # visits 81, 16, 1, 1
    rows = a.sample(20_000, np.random.default_rng(0), attrs=("visits",), c=(1.0,))
    p = 1 / np.sqrt(np.array([81, 16, 1, 1]) + 1)
    freq = np.bincount(rows, minlength=4) / len(rows)
    np.testing.assert_allclose(freq, p / p.sum(), atol=0.015)
    np.testing.assert_array_equal(a.chosen, np.bincount(rows, minlength=4))


@pytest.mark.parametrize("cls", [K.CellArchive, T.CellArchive], ids=["numba", "python"])
def test_archive_errors(cls):
    a = cls()
    with pytest.raises(ValueError, match="empty archive"):
        a.sample(3, 0)
    with pytest.raises(ValueError, match="NaN"):
        a.update([1], [np.nan], [1], [0])
    with pytest.raises(ValueError, match="same length"):
        a.update([1, 2], [1.0], [1], [0])
    with pytest.raises(ValueError, match=">= 0"):
        a.update([1], [1.0], [-1], [0])
    a.update([1], [1.0], [1], [0])
    with pytest.raises(ValueError, match="unknown attribute"):
        a.selection_weights(attrs=("score",), c=(1.0,))
    with pytest.raises(ValueError, match="all selection weights are zero"):
        a.sample(2, 0, attrs=("visits",), c=(0.0,))
    with pytest.raises(ValueError, match="same length"):
        a.selection_weights(attrs=("visits",), c=(1.0, 2.0))
