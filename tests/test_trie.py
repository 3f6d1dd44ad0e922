"""Token trie: the Cython kernel against its pure-Python twin, and the invariants both must keep."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.kernels import trie, trie_py

IMPLS = [trie.TokenTrie, trie_py.TokenTrie]
ids = ["cython", "python"]


def arr(*xs):
    return np.array(xs, dtype=np.int64)


@pytest.mark.parametrize("T", IMPLS, ids=ids)
def test_insert_then_match_returns_inserted_length(T):
    t = T()
    node, dup = t.insert(t.root, [5, 6, 7, 8], [10, 11, 12, 13])
    assert dup.dtype == np.int64 and dup.size == 0
    assert t.match_prefix([5, 6, 7, 8]) == (node, 4)
    assert t.match_prefix([5, 6, 7, 8, 9])[1] == 4
    assert t.match_prefix([9]) == (t.root, 0)
    assert t.match_prefix([]) == (t.root, 0)
    np.testing.assert_array_equal(t.path_tokens(node), [5, 6, 7, 8])
    np.testing.assert_array_equal(t.path_slots(node), [10, 11, 12, 13])
    assert t.node_depth(node) == 4 and t.parent(node) == t.root and t.parent(t.root) == -1
    assert (t.total_tokens, t.evictable_tokens, t.n_nodes) == (4, 4, 2)


@pytest.mark.parametrize("T", IMPLS, ids=ids)
def test_split_keeps_caller_ids_and_locks(T):
    t = T()
    low, _ = t.insert(t.root, [1, 2, 3, 4], [10, 11, 12, 13])
    t.lock(low)
    up, n = t.match_prefix(np.array([1, 2, 9], dtype=np.int32))  # ends inside the edge: split at 2
    assert n == 2 and up != low and t.n_nodes == 3
    assert t.parent(low) == up and t.parent(up) == t.root
    np.testing.assert_array_equal(t.path_tokens(low), [1, 2, 3, 4])
    np.testing.assert_array_equal(t.path_slots(up), [10, 11])
    assert t.node_depth(up) == 2 and t.node_depth(low) == 4
    assert t.evictable_tokens == 0  # the new upper node inherited the lock
    t.unlock(low)
    assert t.evictable_tokens == 4
    with pytest.raises(ValueError, match="lock_ref"):
        t.unlock(up)


@pytest.mark.parametrize("T", IMPLS, ids=ids)
def test_insert_shares_existing_tokens_and_returns_duplicates(T):
    t = T()
    a, _ = t.insert(t.root, [1, 2, 3], [10, 11, 12])
    b, dup = t.insert(t.root, [1, 2, 5, 6], [20, 21, 22, 23])
    np.testing.assert_array_equal(dup, [20, 21])
    np.testing.assert_array_equal(t.path_slots(b), [10, 11, 22, 23])
    assert t.total_tokens == 5 and t.n_nodes == 4  # root, [1 2], [3], [5 6]
    c, dup = t.insert(t.parent(b), [3], [30])  # fully present below the split node
    assert c == a
    np.testing.assert_array_equal(dup, [30])
    same, dup = t.insert(b, [], [])
    assert same == b and dup.dtype == np.int64 and dup.size == 0


@pytest.mark.parametrize("T", IMPLS, ids=ids)
def test_evict_lru_leaves_first_then_parents(T):
    t = T()
    a, _ = t.insert(t.root, [1, 2], [0, 1])
    b, _ = t.insert(a, [3], [2])
    c, _ = t.insert(a, [4], [3])
    d, _ = t.insert(t.root, [7], [4])
    t.match_prefix([1, 2, 3])  # b (and a) now most recent
    np.testing.assert_array_equal(t.evict(1), [3])  # c: oldest leaf
    np.testing.assert_array_equal(t.evict(1), [4])  # d
    t.lock(b)
    assert t.evict(10).size == 0  # a and b are locked
    t.unlock(b)
    np.testing.assert_array_equal(t.evict(2), [2, 0, 1])  # b, then a became a leaf
    assert (t.total_tokens, t.n_nodes) == (0, 1) and not t.is_valid(a)
    assert t.evict(5).size == 0


@pytest.mark.parametrize("T", IMPLS, ids=ids)
def test_evict_ties_break_by_smaller_id_and_ids_are_recycled(T):
    t = T()
    first, _ = t.insert(t.root, [1], [100])
    second, _ = t.insert(t.root, [2], [200])
    t.match_prefix([1])
    t.match_prefix([2])  # both touched, different times: [1] older
    np.testing.assert_array_equal(t.evict(1), [100])
    again, _ = t.insert(t.root, [3], [300])
    assert again == first  # LIFO free list
    t.lock(again)
    t.unlock(again)
    np.testing.assert_array_equal(t.evict(1), [200])


@pytest.mark.parametrize("T", IMPLS, ids=ids)
def test_bad_input_raises_value_error(T):
    t = T()
    node, _ = t.insert(t.root, [1, 2], [0, 1])
    for bad in (-1, 99, 1.5, "x"):
        assert not t.is_valid(bad)
        with pytest.raises(ValueError, match="not a live node"):
            t.path_slots(bad)
        with pytest.raises(ValueError, match="not a live node"):
            t.insert(bad, [1], [1])
    with pytest.raises(ValueError, match="differ in length"):
        t.insert(node, [1, 2], [3])
    with pytest.raises(ValueError, match="1-D"):
        t.match_prefix([[1, 2]])
    with pytest.raises(ValueError, match="integers"):
        t.match_prefix([1.5])
    with pytest.raises(ValueError, match=r"2\*\*31"):
        t.insert(node, [-3], [0])
    for bad in (-1, 2.5, None):
        with pytest.raises(ValueError, match=">= 0"):
            t.evict(bad)
    with pytest.raises(ValueError, match="lock_ref"):
        t.unlock(node)
    assert t.total_tokens == 2 and t.n_nodes == 2  # nothing changed


def _run_both(ops):
    """Runs ``ops`` on both implementations, comparing every observable result; checks invariants."""
    tries = [T() for T in IMPLS]
    next_slot = 0
    given_slots: list[int] = []
    returned: list[int] = []  # duplicate slots handed back by insert and slots freed by evict
    held: dict[int, tuple[list[int], list[int]]] = {0: ([], [])}  # node -> (path tokens, path slots)
    locks: list[int] = []
    for op in ops:
        kind = op[0]
        if kind == "insert":
            _, prefix_len, tokens, under_held = op
            if under_held:
                parent = sorted(held)[prefix_len % len(held)]
                rest = tokens
            else:
                res = [t.match_prefix(tokens[:prefix_len]) for t in tries]
                assert res[0] == res[1]
                parent, n = res[0]
                rest = tokens[n:]
                held[parent] = (tokens[:n], tries[1].path_slots(parent).tolist())
            slots = np.arange(next_slot, next_slot + len(rest), dtype=np.int64)
            next_slot += len(rest)
            given_slots += slots.tolist()
            res = [t.insert(parent, rest, slots) for t in tries]
            assert res[0][0] == res[1][0]
            np.testing.assert_array_equal(res[0][1], res[1][1])
            node, dup = res[0]
            returned += dup.tolist()
            path = held[parent][0] + list(rest)
            assert tries[0].path_tokens(node).tolist() == path
            assert tries[0].match_prefix(path) == tries[1].match_prefix(path) == (node, len(path))
            held[node] = (path, tries[0].path_slots(node).tolist())
        elif kind == "match":
            res = [t.match_prefix(op[1]) for t in tries]
            assert res[0] == res[1]
            node, n = res[0]
            held[node] = (list(op[1][:n]), tries[0].path_slots(node).tolist())
        elif kind == "lock":
            node = sorted(held)[op[1] % len(held)]
            for t in tries:
                t.lock(node)
            locks.append(node)
        elif kind == "unlock" and locks:
            node = locks.pop(op[1] % len(locks))
            for t in tries:
                t.unlock(node)
        elif kind == "evict":
            res = [t.evict(op[1]) for t in tries]
            assert sorted(res[0].tolist()) == sorted(res[1].tolist())
            freed = set(res[0].tolist())
            returned += res[0].tolist()
            if len(freed) < op[1]:
                assert tries[0].evictable_tokens == 0
            for node, (_, slots) in list(held.items()):
                if slots and slots[-1] in freed:
                    assert node not in locks, "evicted a locked node"
                    del held[node]
        for t in tries:  # caller-held ids keep their paths
            for node, (tokens, slots) in held.items():
                assert t.is_valid(node)
                assert t.path_tokens(node).tolist() == tokens and t.path_slots(node).tolist() == slots
        stats = [(t.total_tokens, t.evictable_tokens, t.n_nodes) for t in tries]
        assert stats[0] == stats[1]
    # every given slot is either still in the trie or was handed back exactly once
    live = [n for n in range(4 * len(given_slots) + 2) if tries[1].is_valid(n)]
    assert [tries[0].is_valid(n) for n in live] == [True] * len(live)
    held_slots = set()
    for n in live:
        held_slots.update(tries[0].path_slots(n).tolist())
        assert tries[0].path_tokens(n).tolist() == tries[1].path_tokens(n).tolist()
        assert tries[0].parent(n) == tries[1].parent(n)
    assert len(held_slots) == tries[0].total_tokens
    assert sorted(returned + sorted(held_slots)) == sorted(given_slots)


tokens_st = st.lists(st.integers(0, 3), min_size=0, max_size=8)
op_st = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 8), tokens_st, st.booleans()),
    st.tuples(st.just("match"), tokens_st),
    st.tuples(st.just("lock"), st.integers(0, 50)),
    st.tuples(st.just("unlock"), st.integers(0, 50)),
    st.tuples(st.just("evict"), st.integers(0, 12)),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(op_st, max_size=40))
def test_random_operations_agree_and_keep_invariants(ops):
    _run_both(ops)


def test_many_operations_exercise_heap_rebuild_compaction_and_table_growth():
    """Long deterministic run: stale heap entries, pool compaction and child-table growth."""
    rng = np.random.default_rng(0)
    a, b = trie.TokenTrie(), trie_py.TokenTrie()
    seqs = [rng.integers(0, 2000, size=rng.integers(1, 40)) for _ in range(400)]
    slot = 0
    for rnd in range(12):
        for s in seqs:
            (na, n), (nb, m) = a.match_prefix(s), b.match_prefix(s)
            assert (na, n) == (nb, m)
            sl = np.arange(slot, slot + len(s) - n)
            slot += len(sl)
            (na, da), (nb, db) = a.insert(na, s[n:], sl), b.insert(nb, s[n:], sl)
            assert na == nb and da.tolist() == db.tolist()
            for _ in range(3):  # touching leaves again and again piles up stale heap entries
                assert a.match_prefix(s[: len(s) // 2]) == b.match_prefix(s[: len(s) // 2])
                assert a.match_prefix(s) == b.match_prefix(s)
        if rnd % 3 == 0:
            a.lock(na)
            b.lock(nb)
        for budget in (500, 1, 3000):
            fa, fb = a.evict(budget), b.evict(budget)
            assert sorted(fa.tolist()) == sorted(fb.tolist())
        assert (a.total_tokens, a.evictable_tokens, a.n_nodes) == (b.total_tokens, b.evictable_tokens, b.n_nodes)
        seqs = [rng.integers(0, 2000, size=rng.integers(1, 40)) if rng.random() < 0.5 else s for s in seqs]
    for n in range(20_000):
        assert a.is_valid(n) == b.is_valid(n)
        if b.is_valid(n):
            assert a.path_slots(n).tolist() == b.path_slots(n).tolist()
    fa, fb = a.evict(10**9), b.evict(10**9)
    assert sorted(fa.tolist()) == sorted(fb.tolist())
    assert a.total_tokens == b.total_tokens > 0  # the locked paths stay


@pytest.mark.parametrize("T", IMPLS, ids=ids)
def test_inputs_lists_int32_int64_and_strided_agree(T):
    t = T()
    base = np.array([4, 9, 4, 9, 4, 9, 4, 9], dtype=np.int64)
    node, _ = t.insert(t.root, base[::2], np.arange(4))  # strided view: [4, 4, 4, 4]
    assert t.match_prefix([4, 4, 4, 4]) == (node, 4)
    assert t.match_prefix(np.array([4, 4, 4, 4], dtype=np.int32)) == (node, 4)
    assert t.match_prefix(np.array([4, 4, 4, 4], dtype=np.uint16)) == (node, 4)
