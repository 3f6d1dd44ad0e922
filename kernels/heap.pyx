# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Indexed binary min-heap of (priority, id) with decrease-key, for A* and best-first search.

Order: an entry a comes before b when ``(a.priority, a.seq) < (b.priority, b.seq)``, where
``seq`` is an insertion counter stamped at ``push``: equal priorities pop first-in first-out.
``decrease_key`` and ``update`` keep the entry's original stamp.

Layout (C++ containers, no Python objects inside):

    heap[i]        Entry {priority, seq, id, slot}   the binary heap, heap[0] is the minimum
    slot_pos[s]    int64                             where slot s sits in ``heap``
    id_slot        unordered_map<int64, int64>       id -> slot (one hash look-up per operation)

Sifting moves entries and updates ``slot_pos`` only (array writes, no hashing); freed slots are
recycled. Every operation is O(log n); ``__contains__``, ``priority`` and ``peek`` are O(1).

``run_trace(ops, ids, priorities)`` runs a whole array of operations in C (codes PUSH=0, POP=1,
DECREASE_KEY=2, UPDATE=3, REMOVE=4) and returns the popped ids and priorities: the batched entry
point for callers that can queue their operations, free of Python call overhead.

Not thread-safe: share a heap between threads only behind a lock.
"""

from cython.operator cimport dereference as deref
from libc.math cimport isnan
from libc.stdint cimport int64_t, uint64_t
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

import numpy as np

cdef enum Op:
    OP_PUSH = 0
    OP_POP = 1
    OP_DECREASE_KEY = 2
    OP_UPDATE = 3
    OP_REMOVE = 4

PUSH = OP_PUSH
POP = OP_POP
DECREASE_KEY = OP_DECREASE_KEY
UPDATE = OP_UPDATE
REMOVE = OP_REMOVE

cdef enum Status:
    OK = 0
    DUPLICATE = 1
    NAN_PRIORITY = 2
    MISSING = 3
    INCREASE = 4
    EMPTY = 5
    BAD_OP = 6

cdef struct Entry:
    double priority
    uint64_t seq
    int64_t id
    int64_t slot


cdef inline bint _before(const Entry& a, const Entry& b) noexcept nogil:
    return a.priority < b.priority or (a.priority == b.priority and a.seq < b.seq)


cdef class IndexedHeap:
    """Min-heap of (priority, id) pairs with O(log n) decrease-key and removal by id.

    Example:
        >>> h = IndexedHeap()
        >>> h.push(7, 2.0); h.push(3, 5.0); h.decrease_key(3, 1.0)
        >>> h.pop()
        (3, 1.0)
    """

    cdef vector[Entry] heap
    cdef vector[int64_t] slot_pos
    cdef vector[int64_t] free_slots
    cdef unordered_map[int64_t, int64_t] id_slot
    cdef uint64_t counter

    def __init__(self, *, capacity: int = 0):
        """Args:
            capacity: entries to reserve room for (a hint; the heap grows as needed).
        """
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.heap.reserve(capacity)
        self.slot_pos.reserve(capacity)
        self.id_slot.reserve(capacity)
        self.counter = 0

    # ---- internal, C level -------------------------------------------------------------------

    cdef inline void _place(self, Py_ssize_t i, const Entry& e) noexcept nogil:
        self.heap[i] = e
        self.slot_pos[e.slot] = i

    cdef void _sift_up(self, Py_ssize_t i) noexcept nogil:
        cdef Entry e = self.heap[i]
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) >> 1
            if not _before(e, self.heap[parent]):
                break
            self._place(i, self.heap[parent])
            i = parent
        self._place(i, e)

    cdef void _sift_down(self, Py_ssize_t i) noexcept nogil:
        cdef Py_ssize_t n = self.heap.size()
        cdef Entry e = self.heap[i]
        cdef Py_ssize_t child
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _before(self.heap[child + 1], self.heap[child]):
                child += 1
            if not _before(self.heap[child], e):
                break
            self._place(i, self.heap[child])
            i = child
        self._place(i, e)

    cdef Status _push(self, int64_t id, double priority) noexcept nogil:
        cdef Entry e
        cdef int64_t slot
        if isnan(priority):
            return NAN_PRIORITY
        if self.id_slot.count(id):
            return DUPLICATE
        if self.free_slots.size():
            slot = self.free_slots.back()
            self.free_slots.pop_back()
        else:
            slot = self.slot_pos.size()
            self.slot_pos.push_back(0)
        self.id_slot[id] = slot
        e.priority = priority
        e.seq = self.counter
        e.id = id
        e.slot = slot
        self.counter += 1
        self.heap.push_back(e)
        self._sift_up(self.heap.size() - 1)
        return OK

    cdef void _delete_at(self, Py_ssize_t i) noexcept nogil:
        """Remove heap[i]: move the last entry into the hole and restore the order."""
        cdef Entry gone = self.heap[i]
        cdef Entry last = self.heap.back()
        self.heap.pop_back()
        self.id_slot.erase(gone.id)
        self.free_slots.push_back(gone.slot)
        if <size_t> i < self.heap.size():
            self._place(i, last)
            if _before(last, gone):
                self._sift_up(i)
            else:
                self._sift_down(i)

    cdef Status _pop(self, int64_t* id, double* priority) noexcept nogil:
        if self.heap.empty():
            return EMPTY
        id[0] = self.heap[0].id
        priority[0] = self.heap[0].priority
        self._delete_at(0)
        return OK

    cdef Status _change(self, int64_t id, double priority, bint decrease_only) noexcept nogil:
        cdef unordered_map[int64_t, int64_t].iterator it
        cdef Py_ssize_t i
        cdef double old
        if isnan(priority):
            return NAN_PRIORITY
        it = self.id_slot.find(id)
        if it == self.id_slot.end():
            return MISSING
        i = self.slot_pos[deref(it).second]
        old = self.heap[i].priority
        if priority > old:
            if decrease_only:
                return INCREASE
            self.heap[i].priority = priority
            self._sift_down(i)
        else:
            self.heap[i].priority = priority
            self._sift_up(i)
        return OK

    cdef Status _remove(self, int64_t id, double* priority) noexcept nogil:
        cdef unordered_map[int64_t, int64_t].iterator it = self.id_slot.find(id)
        cdef Py_ssize_t i
        if it == self.id_slot.end():
            return MISSING
        i = self.slot_pos[deref(it).second]
        priority[0] = self.heap[i].priority
        self._delete_at(i)
        return OK

    cdef int _raise(self, Status status, int64_t id, double priority, str where) except -1:
        if status == DUPLICATE:
            raise ValueError(f"{where}id {id} is already in the heap (use decrease_key or update)")
        if status == NAN_PRIORITY:
            raise ValueError(f"{where}priority for id {id} is NaN")
        if status == MISSING:
            raise KeyError(f"{where}id {id} is not in the heap")
        if status == INCREASE:
            raise ValueError(
                f"{where}decrease_key would raise the priority of id {id} to {priority!r} "
                f"(use update to move it either way)"
            )
        if status == EMPTY:
            raise IndexError(f"{where}pop from an empty IndexedHeap")
        if status == BAD_OP:
            raise ValueError(f"{where}unknown operation code (valid: 0 push, 1 pop, 2 decrease_key, 3 update, 4 remove)")
        return 0

    # ---- Python API --------------------------------------------------------------------------

    def push(self, int64_t id, double priority):
        """Insert ``id`` with ``priority``. ValueError if ``id`` is already present or priority is NaN."""
        cdef Status st = self._push(id, priority)
        if st:
            self._raise(st, id, priority, "")

    def pop(self):
        """Remove and return the (id, priority) with the smallest priority (FIFO among ties).

        Raises:
            IndexError: the heap is empty.
        """
        cdef int64_t id
        cdef double priority
        if self._pop(&id, &priority):
            raise IndexError("pop from an empty IndexedHeap")
        return id, priority

    def peek(self):
        """The (id, priority) that ``pop`` would return, without removing it."""
        if self.heap.empty():
            raise IndexError("peek at an empty IndexedHeap")
        return self.heap[0].id, self.heap[0].priority

    def decrease_key(self, int64_t id, double priority):
        """Lower the priority of ``id`` (equal is allowed). ValueError if it would rise, KeyError if absent."""
        cdef Status st = self._change(id, priority, True)
        if st:
            self._raise(st, id, priority, "")

    def update(self, int64_t id, double priority):
        """Set the priority of ``id`` to any value. KeyError if absent."""
        cdef Status st = self._change(id, priority, False)
        if st:
            self._raise(st, id, priority, "")

    def remove(self, int64_t id):
        """Remove ``id`` and return its priority. KeyError if absent."""
        cdef double priority
        cdef Status st = self._remove(id, &priority)
        if st:
            self._raise(st, id, 0.0, "")
        return priority

    def priority(self, int64_t id):
        """The current priority of ``id``. KeyError if absent."""
        cdef unordered_map[int64_t, int64_t].iterator it = self.id_slot.find(id)
        if it == self.id_slot.end():
            raise KeyError(f"id {id} is not in the heap")
        return self.heap[self.slot_pos[deref(it).second]].priority

    def __len__(self):
        return self.heap.size()

    def __bool__(self):
        return not self.heap.empty()

    def __contains__(self, id):
        cdef int64_t key
        try:
            key = id
        except (TypeError, OverflowError):
            return False
        return self.id_slot.count(key) > 0

    def __repr__(self):
        return f"IndexedHeap(len={self.heap.size()})"

    def run_trace(self, ops, ids, priorities):
        """Run a sequence of operations in C and return what the pops returned.

        Args:
            ops: operation codes [T]: 0 push, 1 pop, 2 decrease_key, 3 update, 4 remove.
            ids: the id of each operation [T] (ignored for pop).
            priorities: the priority of each operation [T] (ignored for pop and remove).

        Returns:
            (popped_ids int64 [P], popped_priorities float64 [P]) in pop order, P = #pops.

        Raises:
            The error the single operation would raise, prefixed with ``op t:``; the operations
            before t have been applied.
        """
        cdef const int64_t[::1] op_v = np.ascontiguousarray(ops, dtype=np.int64)
        cdef const int64_t[::1] id_v = np.ascontiguousarray(ids, dtype=np.int64)
        cdef const double[::1] pr_v = np.ascontiguousarray(priorities, dtype=np.float64)
        cdef Py_ssize_t T = op_v.shape[0]
        if id_v.shape[0] != T or pr_v.shape[0] != T:
            raise ValueError(f"ops, ids and priorities must have the same length, got {T}, {id_v.shape[0]}, {pr_v.shape[0]}")
        n_pops = int(np.count_nonzero(np.asarray(op_v) == OP_POP))
        out_ids = np.empty(n_pops, dtype=np.int64)
        out_pr = np.empty(n_pops, dtype=np.float64)
        cdef int64_t[::1] oi = out_ids
        cdef double[::1] opr = out_pr
        cdef Py_ssize_t t, k = 0
        cdef Status st = OK
        cdef int64_t code
        cdef double removed
        for t in range(T):
            code = op_v[t]
            if code == OP_PUSH:
                st = self._push(id_v[t], pr_v[t])
            elif code == OP_POP:
                st = self._pop(&oi[k], &opr[k])
                if st == OK:
                    k += 1
            elif code == OP_DECREASE_KEY:
                st = self._change(id_v[t], pr_v[t], True)
            elif code == OP_UPDATE:
                st = self._change(id_v[t], pr_v[t], False)
            elif code == OP_REMOVE:
                st = self._remove(id_v[t], &removed)
            else:
                st = BAD_OP
            if st != OK:
                break
        if st != OK:
            self._raise(st, id_v[t], pr_v[t], f"op {t}: ")
        return out_ids, out_pr


