"""Pure-Python twin of ``ponder.kernels.heap``: ``heapq`` with lazy deletion.

The recipe from the ``heapq`` documentation: each live id maps to a mutable entry
``[priority, seq, tick, id]`` in the heap; changing or removing an id marks its old entry as
removed and (for a change) pushes a fresh one, and ``pop`` skips removed entries. ``seq`` is the
insertion counter stamped at ``push`` and kept across priority changes, so ties pop first-in
first-out exactly as in the compiled heap; ``tick`` is unique per entry, so a stale entry and
the live one never compare their ids.
"""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np

PUSH, POP, DECREASE_KEY, UPDATE, REMOVE = range(5)

_REMOVED = object()  # placeholder id of a stale entry


class IndexedHeap:
    """Min-heap of (priority, id) with decrease-key, on ``heapq`` with lazy deletion."""

    def __init__(self, *, capacity: int = 0):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._heap: list[list] = []  # [priority, seq, tick, id]
        self._entries: dict[int, list] = {}  # id -> its live entry
        self._seq = itertools.count()
        self._ticks = itertools.count()

    def push(self, id: int, priority: float) -> None:
        """Insert ``id`` with ``priority``. ValueError if present or NaN."""
        if id in self._entries:
            raise ValueError(f"id {id} is already in the heap (use decrease_key or update)")
        priority = float(priority)
        if math.isnan(priority):
            raise ValueError(f"priority for id {id} is NaN")
        entry = [priority, next(self._seq), next(self._ticks), id]
        self._entries[id] = entry
        heapq.heappush(self._heap, entry)

    def _discard_removed(self) -> None:
        heap = self._heap
        while heap and heap[0][3] is _REMOVED:
            heapq.heappop(heap)

    def pop(self) -> tuple[int, float]:
        """Remove and return the (id, priority) with the smallest priority (FIFO among ties)."""
        heap = self._heap
        while heap:
            priority, _, _, id = heapq.heappop(heap)
            if id is not _REMOVED:
                del self._entries[id]
                return id, priority
        raise IndexError("pop from an empty IndexedHeap")

    def peek(self) -> tuple[int, float]:
        """The (id, priority) ``pop`` would return, without removing it."""
        self._discard_removed()
        if not self._heap:
            raise IndexError("peek at an empty IndexedHeap")
        priority, _, _, id = self._heap[0]
        return id, priority

    def _replace(self, id: int, priority: float) -> None:
        old = self._entries[id]
        old[3] = _REMOVED
        entry = [priority, old[1], next(self._ticks), id]
        self._entries[id] = entry
        heapq.heappush(self._heap, entry)

    def decrease_key(self, id: int, priority: float) -> None:
        """Lower the priority of ``id`` (equal allowed). ValueError if it would rise, KeyError if absent."""
        if id not in self._entries:
            raise KeyError(f"id {id} is not in the heap")
        priority = float(priority)
        if math.isnan(priority):
            raise ValueError(f"priority for id {id} is NaN")
        if priority > self._entries[id][0]:
            raise ValueError(
                f"decrease_key would raise the priority of id {id} to {priority!r} "
                f"(use update to move it either way)"
            )
        self._replace(id, priority)

    def update(self, id: int, priority: float) -> None:
        """Set the priority of ``id`` to any value. KeyError if absent."""
        if id not in self._entries:
            raise KeyError(f"id {id} is not in the heap")
        priority = float(priority)
        if math.isnan(priority):
            raise ValueError(f"priority for id {id} is NaN")
        self._replace(id, priority)

    def remove(self, id: int) -> float:
        """Remove ``id`` and return its priority. KeyError if absent."""
        try:
            entry = self._entries.pop(id)
        except KeyError:
            raise KeyError(f"id {id} is not in the heap") from None
        entry[3] = _REMOVED
        return entry[0]

    def priority(self, id: int) -> float:
        """The current priority of ``id``. KeyError if absent."""
        try:
            return self._entries[id][0]
        except KeyError:
            raise KeyError(f"id {id} is not in the heap") from None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, id) -> bool:
        return id in self._entries

    def __repr__(self) -> str:
        return f"IndexedHeap(len={len(self)})"

    def run_trace(self, ops, ids, priorities) -> tuple[np.ndarray, np.ndarray]:
        """Apply operations in order (0 push, 1 pop, 2 decrease_key, 3 update, 4 remove).

        Returns the popped (ids int64 [P], priorities float64 [P]); errors are re-raised
        prefixed with ``op t:``.
        """
        if not len(ops) == len(ids) == len(priorities):
            raise ValueError(
                f"ops, ids and priorities must have the same length, got {len(ops)}, {len(ids)}, {len(priorities)}"
            )
        push, pop, decrease_key, update, remove = self.push, self.pop, self.decrease_key, self.update, self.remove
        popped_ids, popped_priorities = [], []
        t = 0
        try:
            for t, (op, id, priority) in enumerate(
                zip(np.asarray(ops).tolist(), np.asarray(ids).tolist(), np.asarray(priorities, dtype=float).tolist())
            ):
                if op == PUSH:
                    push(id, priority)
                elif op == POP:
                    i, p = pop()
                    popped_ids.append(i)
                    popped_priorities.append(p)
                elif op == DECREASE_KEY:
                    decrease_key(id, priority)
                elif op == UPDATE:
                    update(id, priority)
                elif op == REMOVE:
                    remove(id)
                else:
                    raise ValueError("unknown operation code (valid: 0 push, 1 pop, 2 decrease_key, 3 update, 4 remove)")
        except (ValueError, KeyError, IndexError) as exc:
            message = exc.args[0] if exc.args else ""
            raise type(exc)(f"op {t}: {message}") from None
        return np.array(popped_ids, dtype=np.int64), np.array(popped_priorities, dtype=np.float64)
