# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, auto_pickle=False
"""Token trie (radix tree over token ids, one KV slot per token), compiled with Cython (C++).

Same API, semantics, node-id allocation and eviction order as the reference twin
``ponder.kernels.trie_py`` (read its docstring for the model). Layout here:

* nodes are 64-byte structs (one cache line) in one C++ vector indexed by node id: parent,
  lock_ref, n_children, last_access, depth, the edge as ``(edge_start, edge_len)`` into two pooled
  buffers ``tok_pool`` (int32) and ``slot_pool`` (int64), and up to two children inline. A split at
  offset ``k`` only cuts a range in two, nothing is copied. Evicted ranges become garbage; the
  pools are compacted when garbage exceeds the live tokens, so memory stays ``O(total_tokens)``.
* further children (the root's, mostly: radix-tree nodes rarely have more than two) sit in one
  open-addressing hash table (linear probing, load <= 1/2, backward-shift deletion) keyed by
  ``parent_id << 32 | first_edge_token``.
* a child entry, inline or in the table, carries a copy of the child's ``edge_start``, so a walk
  loads the child's node line and its edge tokens in parallel: on large tries one last-level-cache
  miss per edge is the whole cost. Large buffers ask for transparent huge pages (fewer TLB misses).
* eviction candidates (unlocked leaves) sit in a lazy binary heap keyed by ``(last_access, id)``:
  an entry is pushed whenever a node becomes a candidate or a candidate is touched, and popped
  entries that no longer describe a live candidate with that time are skipped. The heap is rebuilt
  from a scan when stale entries outnumber the nodes.
"""

import numpy as np

cimport numpy as cnp
from cpython.number cimport PyNumber_Index
from libc.stdint cimport INT32_MAX, INT64_MAX, int32_t, int64_t, uint64_t
from libc.string cimport memcpy
from libcpp.algorithm cimport pop_heap, push_heap, make_heap
from libcpp.utility cimport pair
from libcpp.vector cimport vector

cnp.import_array()

cdef extern from *:
    """
    #include <cstdlib>
    #include <new>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    // std::allocator that backs buffers of 2 MiB or more with transparent huge pages where the OS
    // allows it: walks hit random nodes, table cells and edges, and TLB misses cost ~25% otherwise.
    template <class T> struct ponder_huge_alloc {
        typedef T value_type;
        ponder_huge_alloc() noexcept {}
        template <class U> ponder_huge_alloc(const ponder_huge_alloc<U>&) noexcept {}
        T* allocate(std::size_t n) {
            std::size_t bytes = n * sizeof(T);
            void* p = nullptr;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
            const std::size_t huge = std::size_t(1) << 21;
            if (bytes >= huge) {
                bytes = (bytes + huge - 1) & ~(huge - 1);
                p = std::aligned_alloc(huge, bytes);
                if (p) madvise(p, bytes, MADV_HUGEPAGE);
            }
    #endif
            if (!p) p = std::malloc(bytes ? bytes : 1);
            if (!p) throw std::bad_alloc();
            return static_cast<T*>(p);
        }
        void deallocate(T* p, std::size_t) noexcept { std::free(p); }
    };
    template <class T, class U>
    bool operator==(const ponder_huge_alloc<T>&, const ponder_huge_alloc<U>&) { return true; }
    template <class T, class U>
    bool operator!=(const ponder_huge_alloc<T>&, const ponder_huge_alloc<U>&) { return false; }
    """
    cdef cppclass ponder_huge_alloc[T]:
        pass

cdef enum:
    _EMPTY = -1  # marks a free cell of the child table

cdef int32_t DEAD = -2  # parent of an evicted node (the root's parent is -1)


cdef struct Node:  # 64 bytes: one cache line holds everything a walk or a touch reads
    int64_t last_access  # LRU clock of the last match/insert whose path held the node
    int32_t edge_start  # the edge is tok_pool/slot_pool[edge_start : edge_start + edge_len]
    int32_t edge_len
    int32_t depth  # tokens on the path root -> node
    int32_t parent  # -1 for the root, DEAD once evicted
    int32_t lock_ref  # locks taken on the node or its descendants
    int32_t n_children  # inline ones and those in the table
    int32_t kid[2]  # inline children (-1: free),
    int32_t kid_tok[2]  # the first token of their edges,
    int32_t kid_start[2]  # and a copy of their edge_start
    int32_t _pad[2]


cdef struct Cell:  # a cell of the child table, 16 bytes
    int64_t key  # _key(parent, first edge token), or _EMPTY
    int32_t child
    int32_t edge_start  # copy of the child's


ctypedef vector[Node, ponder_huge_alloc[Node]] NodeVec
ctypedef vector[Cell, ponder_huge_alloc[Cell]] CellVec
ctypedef vector[int32_t, ponder_huge_alloc[int32_t]] TokVec
ctypedef vector[int64_t, ponder_huge_alloc[int64_t]] SlotVec


cdef inline uint64_t _mix(uint64_t k) noexcept nogil:
    # murmur3 finaliser: spreads (node << 32 | token) over the table
    k ^= k >> 33
    k *= 0xff51afd7ed558ccdULL
    k ^= k >> 33
    k *= 0xc4ceb9fe1a85ec53ULL
    k ^= k >> 33
    return k


cdef inline int64_t _key(int32_t node, int64_t token) noexcept nogil:
    return ((<int64_t>node) << 32) | token


cdef cnp.ndarray _as_int64(object values, str name):
    """``values`` as a 1-D C-contiguous int64 array (no copy when it already is one)."""
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(values):
        arr = <cnp.ndarray>values
        if (cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_TYPE(arr) == cnp.NPY_INT64
                and cnp.PyArray_IS_C_CONTIGUOUS(arr)):
            return arr
    cdef object a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


cdef inline cnp.ndarray _empty_int64(Py_ssize_t n):
    cdef cnp.npy_intp dim = n
    return cnp.PyArray_EMPTY(1, &dim, cnp.NPY_INT64, 0)


cdef int _check_tokens(const int64_t* tok, Py_ssize_t n) except -1:
    cdef Py_ssize_t i
    cdef uint64_t bits = 0
    for i in range(n):  # a token outside [0, 2**31) sets a bit >= 31 (negatives: the sign bit)
        bits |= <uint64_t>tok[i]
    if bits >> 31:
        _raise_token_range(tok, n)
    return 0


cdef int _raise_token_range(const int64_t* tok, Py_ssize_t n) except -1:
    cdef Py_ssize_t i
    cdef int64_t lo = tok[0], hi = tok[0]
    for i in range(n):
        lo = min(lo, tok[i])
        hi = max(hi, tok[i])
    raise ValueError(f"tokens must lie in [0, 2**31), got min {lo}, max {hi}")


cdef class TokenTrie:
    """Radix tree over token ids mapping every path token to a KV slot (see the module docstring)."""

    cdef NodeVec _nodes  # indexed by node id
    cdef vector[int32_t] _free  # LIFO free list of ids
    cdef TokVec _tok_pool  # edge tokens
    cdef SlotVec _slot_pool  # their KV slots
    cdef CellVec _cells  # child table, size a power of two
    cdef uint64_t _cmask
    cdef Py_ssize_t _csize
    # eviction candidates: max-heap of (-last_access, -id), i.e. a min-heap of (last_access, id)
    cdef vector[pair[int64_t, int32_t]] _heap
    cdef int64_t _clock
    cdef int64_t _total
    cdef int64_t _locked  # tokens in nodes with lock_ref > 0
    cdef Py_ssize_t _n_alive
    cdef readonly int root

    def __init__(self) -> None:
        cdef Cell empty
        empty.key = _EMPTY
        empty.child = -1
        empty.edge_start = 0
        self.root = 0
        self._clock = 0
        self._total = 0
        self._locked = 0
        self._n_alive = 0
        self._cells.assign(1024, empty)
        self._cmask = 1023
        self._csize = 0
        self._new_node(-1, 0, 0, 0, 0, 0)

    # ------------------------------------------------------------------------------- children
    cdef inline bint _find_child(self, int32_t node, int64_t token, int32_t* child, int32_t* start) noexcept:
        cdef const Node* v = &self._nodes[node]
        cdef int j
        cdef int n_inline = 0
        cdef uint64_t i
        cdef const Cell* cells
        for j in range(2):
            if v.kid[j] >= 0:
                n_inline += 1
                if v.kid_tok[j] == token:
                    child[0] = v.kid[j]
                    start[0] = v.kid_start[j]
                    return True
        if v.n_children == n_inline:
            return False
        cells = self._cells.data()
        i = _mix(<uint64_t>_key(node, token)) & self._cmask
        while cells[i].key != _EMPTY:
            if cells[i].key == _key(node, token):
                child[0] = cells[i].child
                start[0] = cells[i].edge_start
                return True
            i = (i + 1) & self._cmask
        return False

    cdef void _add_child(self, int32_t node, int32_t token, int32_t child) noexcept:
        """Links a new child under ``node``: in a free inline slot if there is one, else in the table."""
        cdef Node* v = &self._nodes[node]
        cdef int j
        v.n_children += 1
        for j in range(2):
            if v.kid[j] < 0:
                v.kid[j] = child
                v.kid_tok[j] = token
                v.kid_start[j] = self._nodes[child].edge_start
                return
        self._cell_put(_key(node, token), child)

    cdef void _relink_child(self, int32_t node, int32_t token, int32_t child) noexcept:
        """Points ``node``'s existing entry for ``token`` at ``child`` (a split puts a node between)."""
        cdef Node* v = &self._nodes[node]
        cdef int j
        for j in range(2):
            if v.kid[j] >= 0 and v.kid_tok[j] == token:
                v.kid[j] = child
                v.kid_start[j] = self._nodes[child].edge_start
                return
        self._cell_put(_key(node, token), child)

    cdef void _remove_child(self, int32_t node, int32_t token) noexcept:
        cdef Node* v = &self._nodes[node]
        cdef int j
        v.n_children -= 1
        for j in range(2):
            if v.kid[j] >= 0 and v.kid_tok[j] == token:
                v.kid[j] = -1
                return
        self._cell_del(_key(node, token))

    cdef void _cell_put(self, int64_t key, int32_t child) noexcept:
        cdef uint64_t i
        if 2 * (self._csize + 1) > <Py_ssize_t>self._cells.size():
            self._cells_grow()
        i = _mix(<uint64_t>key) & self._cmask
        while self._cells[i].key != _EMPTY and self._cells[i].key != key:
            i = (i + 1) & self._cmask
        if self._cells[i].key == _EMPTY:
            self._cells[i].key = key
            self._csize += 1
        self._cells[i].child = child
        self._cells[i].edge_start = self._nodes[child].edge_start

    cdef void _cells_grow(self) noexcept:
        cdef CellVec old
        cdef Cell empty
        cdef size_t j
        cdef uint64_t i
        empty.key = _EMPTY
        empty.child = -1
        empty.edge_start = 0
        old.swap(self._cells)
        self._cells.assign(2 * old.size(), empty)
        self._cmask = 2 * old.size() - 1
        for j in range(old.size()):
            if old[j].key != _EMPTY:
                i = _mix(<uint64_t>old[j].key) & self._cmask
                while self._cells[i].key != _EMPTY:
                    i = (i + 1) & self._cmask
                self._cells[i] = old[j]

    cdef void _cell_del(self, int64_t key) noexcept:
        cdef uint64_t i = _mix(<uint64_t>key) & self._cmask
        cdef uint64_t j, h
        while self._cells[i].key != key:
            if self._cells[i].key == _EMPTY:
                return
            i = (i + 1) & self._cmask
        # backward-shift deletion: pull later cells of the probe run into the hole at i
        j = i
        while True:
            j = (j + 1) & self._cmask
            if self._cells[j].key == _EMPTY:
                break
            h = _mix(<uint64_t>self._cells[j].key) & self._cmask
            # the cell at j may move into the hole unless its home h lies cyclically in (i, j]
            if (i < j and (h <= i or h > j)) or (i > j and h <= i and h > j):
                self._cells[i] = self._cells[j]
                i = j
        self._cells[i].key = _EMPTY
        self._csize -= 1

    # ------------------------------------------------------------------------------ node storage
    cdef int32_t _new_node(self, int32_t parent, int32_t start, int32_t length, int32_t depth,
                           int64_t time, int32_t lock_ref) noexcept:
        cdef int32_t i
        cdef Node v
        v.last_access = time
        v.edge_start = start
        v.edge_len = length
        v.depth = depth
        v.parent = parent
        v.lock_ref = lock_ref
        v.n_children = 0
        v.kid[0] = v.kid[1] = -1
        v.kid_tok[0] = v.kid_tok[1] = 0
        v.kid_start[0] = v.kid_start[1] = 0
        v._pad[0] = v._pad[1] = 0
        if self._free.size():
            i = self._free.back()
            self._free.pop_back()
            self._nodes[i] = v
        else:
            i = <int32_t>self._nodes.size()
            self._nodes.push_back(v)
        self._n_alive += 1
        return i

    cdef inline bint _alive(self, long long i) noexcept:
        return 0 <= i < <long long>self._nodes.size() and self._nodes[i].parent != DEAD

    cdef int32_t _check_node(self, object node) except -1:
        cdef long long i
        try:
            i = PyNumber_Index(node)
        except (TypeError, OverflowError):
            raise ValueError(f"node {node!r} is not a live node of this trie") from None
        if not self._alive(i):
            raise ValueError(f"node {node!r} is not a live node of this trie")
        return <int32_t>i

    cdef void _compact(self) noexcept:
        """Copies the live edges into fresh pools, dropping the ranges of evicted nodes."""
        cdef TokVec toks
        cdef SlotVec slots
        cdef Node* v
        cdef size_t i
        cdef int j
        toks.reserve(2 * self._total + 1024)
        slots.reserve(2 * self._total + 1024)
        for i in range(self._nodes.size()):
            v = &self._nodes[i]
            if v.parent != DEAD and v.edge_len:
                toks.insert(toks.end(), self._tok_pool.begin() + v.edge_start,
                            self._tok_pool.begin() + v.edge_start + v.edge_len)
                slots.insert(slots.end(), self._slot_pool.begin() + v.edge_start,
                             self._slot_pool.begin() + v.edge_start + v.edge_len)
                v.edge_start = <int32_t>(toks.size() - v.edge_len)
        self._tok_pool.swap(toks)
        self._slot_pool.swap(slots)
        # refresh the copies of edge_start held by the child entries
        for i in range(self._nodes.size()):
            v = &self._nodes[i]
            if v.parent != DEAD:
                for j in range(2):
                    if v.kid[j] >= 0:
                        v.kid_start[j] = self._nodes[v.kid[j]].edge_start
        for i in range(self._cells.size()):
            if self._cells[i].key != _EMPTY:
                self._cells[i].edge_start = self._nodes[self._cells[i].child].edge_start

    # ---------------------------------------------------------------------------------- queries
    def is_valid(self, node) -> bool:
        """Whether ``node`` is the id of a live node (False for evicted ids and non-integers)."""
        cdef long long i
        try:
            i = PyNumber_Index(node)
        except (TypeError, OverflowError):
            return False
        return self._alive(i)

    def node_depth(self, node) -> int:
        """Number of tokens on the path root -> ``node``."""
        return self._nodes[self._check_node(node)].depth

    def parent(self, node) -> int:
        """Id of ``node``'s parent; -1 for the root."""
        return self._nodes[self._check_node(node)].parent

    def path_slots(self, node) -> np.ndarray:
        """KV slots of the path root -> ``node``, int64 ``[node_depth(node)]``."""
        cdef int32_t v = self._check_node(node)
        cdef cnp.ndarray out = _empty_int64(self._nodes[v].depth)  # [depth]
        cdef int64_t* dst = <int64_t*>cnp.PyArray_DATA(out)
        cdef int64_t pos = self._nodes[v].depth
        while v != self.root:
            pos -= self._nodes[v].edge_len
            memcpy(dst + pos, self._slot_pool.data() + self._nodes[v].edge_start,
                   self._nodes[v].edge_len * sizeof(int64_t))
            v = self._nodes[v].parent
        return out

    def path_tokens(self, node) -> np.ndarray:
        """Tokens of the path root -> ``node``, int64 ``[node_depth(node)]``."""
        cdef int32_t v = self._check_node(node)
        cdef cnp.ndarray out = _empty_int64(self._nodes[v].depth)  # [depth]
        cdef int64_t* dst = <int64_t*>cnp.PyArray_DATA(out)
        cdef int64_t pos = self._nodes[v].depth
        cdef int64_t j
        cdef const int32_t* src
        while v != self.root:
            pos -= self._nodes[v].edge_len
            src = self._tok_pool.data() + self._nodes[v].edge_start
            for j in range(self._nodes[v].edge_len):
                dst[pos + j] = src[j]
            v = self._nodes[v].parent
        return out

    @property
    def total_tokens(self) -> int:
        """Tokens (= KV slots) held by the trie."""
        return self._total

    @property
    def evictable_tokens(self) -> int:
        """Tokens held by nodes with ``lock_ref == 0``."""
        return self._total - self._locked

    @property
    def n_nodes(self) -> int:
        """Live nodes, the root included."""
        return self._n_alive

    # --------------------------------------------------------------------------------- mutation
    def match_prefix(self, tokens) -> tuple:
        """Longest prefix of ``tokens`` in the trie; see ``ponder.kernels.trie_py.TokenTrie``."""
        cdef cnp.ndarray arr = _as_int64(tokens, "tokens")
        cdef const int64_t* tok = <const int64_t*>cnp.PyArray_DATA(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0)
        cdef Py_ssize_t m
        cdef int32_t node
        _check_tokens(tok, n)
        self._clock += 1
        node = self._walk(self.root, tok, n, &m)
        self._touch(node)
        return node, m

    def insert(self, parent, tokens, slots) -> tuple:
        """Adds ``tokens`` with their KV ``slots`` below ``parent``; see ``trie_py.TokenTrie.insert``."""
        cdef int32_t node = self._check_node(parent)
        cdef cnp.ndarray tarr = _as_int64(tokens, "tokens")
        cdef cnp.ndarray sarr = _as_int64(slots, "slots")
        cdef const int64_t* tok = <const int64_t*>cnp.PyArray_DATA(tarr)
        cdef const int64_t* slt = <const int64_t*>cnp.PyArray_DATA(sarr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(tarr, 0)
        cdef Py_ssize_t m, j
        cdef int32_t start, leaf
        cdef cnp.ndarray dup
        if cnp.PyArray_DIM(sarr, 0) != n:
            raise ValueError(f"tokens and slots differ in length: {n} != {cnp.PyArray_DIM(sarr, 0)}")
        _check_tokens(tok, n)
        if n and <int64_t>self._tok_pool.size() > 2 * self._total + 4096:
            self._compact()
        if <int64_t>self._tok_pool.size() + n > INT32_MAX or self._nodes[node].depth + n > INT32_MAX:
            raise ValueError(f"insert of {n} tokens exceeds the trie's capacity of 2**31 tokens")
        self._clock += 1
        node = self._walk(node, tok, n, &m)
        dup = _empty_int64(m)  # [m]
        if m:
            memcpy(cnp.PyArray_DATA(dup), slt, m * sizeof(int64_t))
        if m < n:
            start = <int32_t>self._tok_pool.size()
            for j in range(m, n):
                self._tok_pool.push_back(<int32_t>tok[j])
            self._slot_pool.insert(self._slot_pool.end(), slt + m, slt + n)
            leaf = self._new_node(node, start, <int32_t>(n - m), <int32_t>(self._nodes[node].depth + n - m),
                                  self._clock, 0)
            self._add_child(node, <int32_t>tok[m], leaf)
            self._total += n - m
            node = leaf
        self._touch(node)
        return node, dup

    cdef int32_t _walk(self, int32_t node, const int64_t* tok, Py_ssize_t n, Py_ssize_t* matched) noexcept:
        """Follows ``tok[:n]`` down from ``node``; splits an edge where the match ends inside it."""
        cdef Py_ssize_t i = 0, k, lim
        cdef int32_t child, start
        cdef const int32_t* edge
        cdef int64_t edge_len
        while i < n and self._find_child(node, tok[i], &child, &start):
            # the child's edge and node line load in parallel, both addressed by the entry
            edge = self._tok_pool.data() + start
            edge_len = self._nodes[child].edge_len
            lim = min(<Py_ssize_t>edge_len, n - i)
            k = 1  # the first token matched through the entry
            while k < lim and edge[k] == tok[i + k]:
                k += 1
            i += k
            if k < edge_len:
                node = self._split(child, <int32_t>k)
                break
            node = child
        matched[0] = i
        return node

    cdef int32_t _split(self, int32_t node, int32_t k) noexcept:
        """Cuts the edge into ``node`` after ``k`` tokens; ``node`` keeps the lower part and its id."""
        cdef Node v = self._nodes[node]  # a copy: _new_node may move the vector
        cdef int32_t upper = self._new_node(v.parent, v.edge_start, k, v.depth - v.edge_len + k,
                                            v.last_access, v.lock_ref)
        self._nodes[node].edge_start = v.edge_start + k
        self._nodes[node].edge_len = v.edge_len - k
        self._nodes[node].parent = upper
        self._relink_child(v.parent, self._tok_pool[v.edge_start], upper)
        self._add_child(upper, self._tok_pool[v.edge_start + k], node)
        return upper

    cdef void _touch(self, int32_t node) noexcept:
        cdef int32_t v = node
        cdef Node* nodes = self._nodes.data()
        while v >= 0:
            nodes[v].last_access = self._clock
            v = nodes[v].parent
        if self._is_candidate(node):
            self._push_candidate(node)

    cdef inline bint _is_candidate(self, size_t v) noexcept:
        cdef const Node* x = &self._nodes[v]
        return v != <size_t>self.root and x.parent != DEAD and x.n_children == 0 and x.lock_ref == 0

    cdef void _push_candidate(self, int32_t node) noexcept:
        cdef size_t v
        if <Py_ssize_t>self._heap.size() > 2 * self._n_alive + 64:
            # mostly stale entries: rebuild from the live candidates (which include node)
            self._heap.clear()
            for v in range(self._nodes.size()):
                if self._is_candidate(v):
                    self._heap.push_back(pair[int64_t, int32_t](-self._nodes[v].last_access, -<int32_t>v))
            make_heap(self._heap.begin(), self._heap.end())
            return
        self._heap.push_back(pair[int64_t, int32_t](-self._nodes[node].last_access, -node))
        push_heap(self._heap.begin(), self._heap.end())

    def lock(self, node) -> None:
        """``lock_ref += 1`` on ``node`` and its ancestors: none of them can be evicted until unlocked."""
        cdef int32_t v = self._check_node(node)
        while v >= 0:
            if self._nodes[v].lock_ref == 0:
                self._locked += self._nodes[v].edge_len
            self._nodes[v].lock_ref += 1
            v = self._nodes[v].parent

    def unlock(self, node) -> None:
        """``lock_ref -= 1`` on ``node`` and its ancestors; ValueError if ``node`` is not locked."""
        cdef int32_t v = self._check_node(node)
        cdef int32_t first = v
        if self._nodes[v].lock_ref <= 0:
            raise ValueError(f"unlock of node {v} whose lock_ref is already 0")
        while v >= 0:
            self._nodes[v].lock_ref -= 1
            if self._nodes[v].lock_ref == 0:
                self._locked -= self._nodes[v].edge_len
            v = self._nodes[v].parent
        if self._is_candidate(first):
            self._push_candidate(first)

    def evict(self, n_tokens) -> np.ndarray:
        """Removes unlocked leaves, least recently used first (ties: smaller id), until at least
        ``n_tokens`` slots are freed or nothing is evictable; returns the freed slots (int64)."""
        cdef int64_t want
        cdef vector[int64_t] freed
        cdef pair[int64_t, int32_t] top
        cdef int32_t v, p
        cdef Node x
        cdef cnp.ndarray out
        try:
            want = PyNumber_Index(n_tokens)
        except TypeError:
            want = -1
        except OverflowError:
            want = INT64_MAX if n_tokens > 0 else -1
        if want < 0:
            raise ValueError(f"n_tokens must be an int >= 0, got {n_tokens!r}")
        while <int64_t>freed.size() < want and self._heap.size():
            pop_heap(self._heap.begin(), self._heap.end())
            top = self._heap.back()
            self._heap.pop_back()
            v = -top.second
            if not self._is_candidate(v) or self._nodes[v].last_access != -top.first:
                continue  # stale entry
            x = self._nodes[v]
            freed.insert(freed.end(), self._slot_pool.begin() + x.edge_start,
                         self._slot_pool.begin() + x.edge_start + x.edge_len)
            p = x.parent
            self._remove_child(p, self._tok_pool[x.edge_start])
            self._nodes[v].parent = DEAD
            self._free.push_back(v)
            self._n_alive -= 1
            self._total -= x.edge_len
            if self._is_candidate(p):
                self._push_candidate(p)
        out = _empty_int64(freed.size())
        if freed.size():
            memcpy(cnp.PyArray_DATA(out), freed.data(), freed.size() * sizeof(int64_t))
        return out

    def __repr__(self) -> str:
        return (f"TokenTrie(n_nodes={self._n_alive}, total_tokens={self._total}, "
                f"evictable_tokens={self._total - self._locked})")
