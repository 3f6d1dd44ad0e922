"""Token trie benchmark: the Cython kernel against its pure-Python twin, in one process.

Workload (what the LM generator does with its KV-cache index): ``n`` token sequences drawn as
random walks in a branching tree (each sequence continues a random prefix of an earlier one with
probability 0.8, else starts afresh; lengths uniform in [8, 64]; vocabulary 49152). Each sequence is
added as the generator would: ``match_prefix`` from the root, then ``insert`` of the unmatched rest
with fresh KV slots; afterwards every sequence is matched again (target: >= 20x the twin).

A second case adds sequences under a KV budget of a quarter of their tokens, as the generator does
when its cache is full: match, lock the matched node, evict just enough LRU leaves for the new
tokens, insert, unlock. Its ratio is mostly algorithmic: the twin (like SGLang's Python radix cache)
collects the evictable leaves with a scan of all nodes on every ``evict`` call, the kernel keeps
them in a lazy heap.

Run: ``python -m bench.kernel_trie [--quick]``.
"""

from __future__ import annotations

import sys

import numpy as np

from .common import machine, markdown_table, median_time
from ponder.kernels import trie, trie_py

TARGET_RATIO = 20.0


def make_sequences(n: int, *, vocab: int = 49152, min_len: int = 8, max_len: int = 64, p_branch: float = 0.8,
                   seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random branching token sequences and their KV slots (one fresh slot per token).

    Returns:
        seqs: ``n`` int64 arrays, each ``[L]`` with ``L ~ U[min_len, max_len]``; sequence ``i``
            copies a uniform prefix of a uniform earlier sequence with probability ``p_branch``.
        slots: ``n`` int64 arrays ``[L]`` of distinct slot ids.
    """
    rng = np.random.default_rng(seed)
    seqs: list[np.ndarray] = []
    for i in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        if i and rng.random() < p_branch:
            parent = seqs[int(rng.integers(i))]
            keep = int(rng.integers(0, min(length, len(parent)) + 1))
            seq = np.concatenate([parent[:keep], rng.integers(0, vocab, size=length - keep)])
        else:
            seq = rng.integers(0, vocab, size=length)
        seqs.append(seq.astype(np.int64))
    offsets = np.cumsum([0] + [len(s) for s in seqs])
    all_slots = np.arange(offsets[-1], dtype=np.int64)
    slots = [all_slots[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return seqs, slots


def insert_and_match(TokenTrie, seqs, slots) -> int:
    """Adds every sequence (match, then insert the rest), then matches them all; returns matched tokens."""
    t = TokenTrie()
    for seq, sl in zip(seqs, slots):
        node, n = t.match_prefix(seq)
        t.insert(node, seq[n:], sl[n:])
    return sum(t.match_prefix(seq)[1] for seq in seqs)


def insert_under_budget(TokenTrie, seqs, slots, budget: int) -> int:
    """Adds every sequence, first evicting LRU leaves so the trie stays within ``budget`` tokens."""
    t = TokenTrie()
    freed = 0
    for seq, sl in zip(seqs, slots):
        node, n = t.match_prefix(seq)
        over = t.total_tokens + len(seq) - n - budget
        if over > 0:
            t.lock(node)  # the matched prefix must survive the eviction
            freed += len(t.evict(over))
            t.unlock(node)
        t.insert(node, seq[n:], sl[n:])
    return freed


def run(*, quick: bool = False) -> list[dict]:
    """Times both cases for the kernel and the twin; returns one row per case."""
    n = 10_000 if quick else 100_000
    n_evict = 1_000 if quick else 5_000  # the twin's eviction is O(nodes) per call: kept smaller
    repeat = 1 if quick else 3
    seqs, slots = make_sequences(n)
    budget = sum(len(s) for s in seqs[:n_evict]) // 4
    cases = [
        (f"insert+match {n:,} branching seqs (len 8-64, vocab 49152)", insert_and_match, n, ()),
        (f"insert {n_evict:,} seqs under a {budget:,}-token KV budget (LRU eviction)", insert_under_budget,
         n_evict, (budget,)),
    ]
    rows = []
    for case, fn, k, extra in cases:
        args = (seqs[:k], slots[:k], *extra)
        # the two implementations must agree before their times mean anything
        if fn(trie.TokenTrie, *args) != fn(trie_py.TokenTrie, *args):
            raise AssertionError(f"trie and its twin disagree on {case!r}")
        ours = median_time(lambda: fn(trie.TokenTrie, *args), repeat=repeat, warmup=0)
        twin = median_time(lambda: fn(trie_py.TokenTrie, *args), repeat=repeat, warmup=0)
        ratio = twin / ours
        rows.append({
            "kernel": "trie",
            "case": case,
            "ours_s": ours,
            "twin_s": twin,
            "ratio_vs_twin": ratio,
            "peer": None,  # SGLang's radix cache is the model for the semantics, not an installable peer here
            "peer_s": None,
            "ratio_vs_peer": None,
            "target": f">= {TARGET_RATIO:.0f}x vs twin",
            "met": bool(ratio >= TARGET_RATIO),
        })
    return rows


if __name__ == "__main__":
    rows = run(quick="--quick" in sys.argv[1:])
    print(machine())
    print(markdown_table(rows, ["kernel", "case", "ours_s", "twin_s", "ratio_vs_twin", "target", "met"]))
