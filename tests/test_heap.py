"""Cython IndexedHeap vs its heapq lazy-deletion twin: same operations, same pops, same errors."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.kernels import heap_py
from ponder.kernels.heap import DECREASE_KEY, POP, PUSH, REMOVE, UPDATE, IndexedHeap

HEAPS = [IndexedHeap, heap_py.IndexedHeap]
ids_st = st.integers(-3, 12)
priority_st = st.one_of(st.sampled_from([0.0, 1.0, 2.0, -1.5]), st.floats(-1e9, 1e9), st.just(math.inf))
op_st = st.one_of(
    st.tuples(st.just("push"), ids_st, priority_st),
    st.tuples(st.just("pop")),
    st.tuples(st.just("peek")),
    st.tuples(st.just("decrease_key"), ids_st, priority_st),
    st.tuples(st.just("update"), ids_st, priority_st),
    st.tuples(st.just("remove"), ids_st),
    st.tuples(st.just("priority"), ids_st),
    st.tuples(st.just("contains"), ids_st),
    st.tuples(st.just("len")),
)


def apply(heap, op):
    """Run one operation; returns its result or the type of the exception it raised."""
    name, *args = op
    try:
        if name == "contains":
            return args[0] in heap
        if name == "len":
            return len(heap)
        return getattr(heap, name)(*args)
    except (ValueError, KeyError, IndexError) as exc:
        return type(exc)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(op_st, max_size=80))
def test_same_operations_same_results(ops):
    ours, twin = IndexedHeap(), heap_py.IndexedHeap()
    for op in ops:
        assert apply(ours, op) == apply(twin, op), op
        assert len(ours) == len(twin)
    drained = [ours.pop() for _ in range(len(ours))]
    assert drained == [twin.pop() for _ in range(len(twin))]
    assert drained == sorted(drained, key=lambda e: e[1])


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from([PUSH, PUSH, POP, DECREASE_KEY, UPDATE, REMOVE]), st.integers(0, 15), st.floats(-5, 5)),
        max_size=100,
    )
)
def test_run_trace_matches_calls_and_twin(ops):
    ops_a = np.array([o[0] for o in ops], dtype=np.int64)
    ids_a = np.array([o[1] for o in ops], dtype=np.int64)
    prios_a = np.array([o[2] for o in ops], dtype=np.float64)
    results = []
    for cls in HEAPS:
        try:
            got = cls().run_trace(ops_a, ids_a, prios_a)
            results.append((got[0].tolist(), got[1].tolist()))
        except (ValueError, KeyError, IndexError) as exc:
            results.append((type(exc), str(exc).split(":")[0]))
    assert results[0] == results[1]
    if isinstance(results[0][0], list):  # no error: the per-call replay pops the same
        heap, popped = IndexedHeap(), []
        names = {PUSH: "push", DECREASE_KEY: "decrease_key", UPDATE: "update"}
        for op, i, p in ops:
            if op == POP:
                popped.append(heap.pop())
            elif op == REMOVE:
                heap.remove(i)
            else:
                getattr(heap, names[op])(i, p)
        assert [i for i, _ in popped] == results[0][0]


def test_matches_heapq_sort_with_fifo_ties():
    rng = np.random.default_rng(3)
    prios = rng.integers(0, 20, size=2000).astype(float)
    for cls in HEAPS:
        h = cls()
        for i, p in enumerate(prios):
            h.push(i, p)
        out = [h.pop() for _ in range(len(prios))]
        expected = [(i, p) for p, i in heapq.nsmallest(len(prios), ((p, i) for i, p in enumerate(prios)))]
        assert out == expected  # equal priorities come out in insertion order


def test_decrease_key_keeps_insertion_order_among_ties():
    for cls in HEAPS:
        h = cls()
        h.push(1, 5.0)
        h.push(2, 3.0)
        h.push(3, 4.0)
        h.decrease_key(1, 3.0)  # ties with 2, but 1 was pushed first
        h.update(3, 3.0)
        assert h.peek() == (1, 3.0)
        assert [h.pop()[0] for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("cls", HEAPS, ids=["cython", "heapq"])
def test_api_and_errors(cls):
    h = cls(capacity=4)
    with pytest.raises(IndexError, match="empty"):
        h.pop()
    with pytest.raises(IndexError, match="empty"):
        h.peek()
    h.push(10, 2.0)
    h.push(-7, 1.0)
    assert len(h) == 2 and 10 in h and -7 in h and 3 not in h
    assert h.priority(10) == 2.0
    with pytest.raises(ValueError, match="already in the heap"):
        h.push(10, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        h.push(11, float("nan"))
    with pytest.raises(ValueError, match="raise the priority"):
        h.decrease_key(10, 3.0)
    with pytest.raises(KeyError):
        h.decrease_key(99, 0.0)
    with pytest.raises(KeyError):
        h.remove(99)
    with pytest.raises(KeyError):
        h.priority(99)
    h.update(10, 0.5)
    assert h.peek() == (10, 0.5)
    assert h.remove(10) == 0.5
    assert 10 not in h
    h.push(10, 7.0)  # an id can come back after it left
    assert h.pop() == (-7, 1.0)
    assert h.pop() == (10, 7.0)
    assert len(h) == 0


@pytest.mark.parametrize("cls", HEAPS, ids=["cython", "heapq"])
def test_run_trace_errors_name_the_operation(cls):
    with pytest.raises(IndexError, match="op 2: pop from an empty"):
        cls().run_trace([PUSH, POP, POP], [1, 0, 0], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="op 1: .*already"):
        cls().run_trace([PUSH, PUSH], [1, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="unknown operation"):
        cls().run_trace([9], [1], [1.0])
    with pytest.raises(ValueError, match="same length"):
        cls().run_trace([PUSH, POP], [1], [1.0])


def test_large_random_trace_agrees():
    """A long valid trace (ties, decrease-keys, updates, removals): both heaps pop the same."""
    rng = np.random.default_rng(5)
    ref, live, next_id = heap_py.IndexedHeap(), [], 0
    ops, ids, prios = [], [], []
    for _ in range(20_000):
        kind = rng.choice(5, p=[0.4, 0.3, 0.15, 0.1, 0.05]) if live else 0
        if kind == 0:
            op, i, p = PUSH, next_id, float(rng.integers(0, 50))
            next_id += 1
            live.append(i)
        elif kind == 1:
            op, i, p = POP, 0, 0.0
        else:
            i = live[int(rng.integers(len(live)))]
            op = (DECREASE_KEY, UPDATE, REMOVE)[kind - 2]
            p = ref.priority(i) - float(rng.integers(0, 5)) if op == DECREASE_KEY else float(rng.integers(0, 50))
        if op == POP:
            live.remove(ref.pop()[0])
        elif op == REMOVE:
            ref.remove(i)
            live.remove(i)
        elif op != PUSH:
            getattr(ref, "decrease_key" if op == DECREASE_KEY else "update")(i, p)
        else:
            ref.push(i, p)
        ops.append(op)
        ids.append(i)
        prios.append(p)
    a = IndexedHeap().run_trace(ops, ids, prios)
    b = heap_py.IndexedHeap().run_trace(ops, ids, prios)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
