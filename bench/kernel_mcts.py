"""Benchmark of the MCTS kernels (ponder.kernels.mcts, driven by the loop of ponder.search.mcts_policies)
vs their pure-Python twins vs mctx (jit, CPU JAX).

Problem: ``B = 64`` trees, ``S = 64`` simulations, ``A = 16`` actions, driven by a trivial model
whose state is an int index: ``next = (state * A + action + 1) mod T`` and the logits, value and
reward are rows of fixed random tables (the same model in numpy for ours and in jnp for mctx).
Ours runs in float64, mctx in its default float32. mctx is timed after jit compilation with
``block_until_ready``.

Each measurement runs in a fresh subprocess, once pinned to one core (``sched_setaffinity`` to the
lowest core allowed, so ``taskset -c 1 python -m bench.kernel_mcts`` uses core 1, and
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` before jax is
imported) and once unpinned. Targets: ours >= 10x faster than ``mctx.muzero_policy`` and >= 3x
faster than ``mctx.gumbel_muzero_policy`` on one core.

Ours and mctx are timed in alternating rounds in one process (so load from other processes falls
on both alike); the twin is timed before. Times are medians of wall time (``*_s``); process CPU
times (``*_cpu_s``, all threads) are reported too because this machine is shared and preemption
inflates wall times. ``met`` uses the wall ratio.
``notes`` splits our CPU time between the kernels, and recurrent_fn plus the Python loop.

``python -m bench.kernel_mcts [--quick]`` prints the table and writes bench/results/kernel_mcts.*.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

B, S, A, TABLE = 64, 64, 16, 4096
TARGETS = {"muzero": 10.0, "gumbel": 3.0}
PEERS = {"muzero": "mctx.muzero_policy (jit)", "gumbel": "mctx.gumbel_muzero_policy (jit)"}
OURS = {"muzero": "muzero_policy", "gumbel": "gumbel_muzero_policy"}


def run(*, quick: bool = False) -> list[dict]:
    """Measure in two subprocesses (one core, unpinned); one row per (policy, placement)."""
    rows = []
    for pinned in (True, False):
        res = _spawn(pinned=pinned, quick=quick)
        where = "1 core" if pinned else f"unpinned ({os.cpu_count()} cores)"
        for policy in ("muzero", "gumbel"):
            r = res[policy]
            ours, twin, peer = r["ours_s"], r.get("twin_s"), r.get("peer_s")
            ratio_peer = peer / ours if peer else None
            ratio_peer_cpu = r["peer_cpu_s"] / r["ours_cpu_s"] if peer else None
            rows.append({
                "kernel": "mcts",
                "case": f"{OURS[policy]} B={B} S={S} A={A}, {where}",
                "ours_s": ours,
                "twin_s": twin,
                "peer": PEERS[policy] if peer else f"{PEERS[policy]}: {r.get('peer_error', 'not installed')}",
                "peer_s": peer,
                "ratio_vs_twin": twin / ours if twin else None,
                "ratio_vs_peer": ratio_peer,
                "ours_cpu_s": r["ours_cpu_s"],
                "peer_cpu_s": r.get("peer_cpu_s"),
                "ratio_vs_peer_cpu": ratio_peer_cpu,
                "target": f">= {TARGETS[policy]:g}x vs peer",
                "met": None if ratio_peer is None else bool(ratio_peer >= TARGETS[policy]),
                "notes": r["profile"],
            })
    return rows


def main(argv: list[str] | None = None) -> None:
    from .common import markdown_table, write_results

    argv = list(sys.argv[1:] if argv is None else argv)
    rows = run(quick="--quick" in argv)
    cols = ["case", "ours_s", "twin_s", "peer", "peer_s", "ratio_vs_twin", "ratio_vs_peer",
            "ratio_vs_peer_cpu", "target", "met"]
    notes = "\n".join(f"- {r['case']}: {r['notes']}" for r in rows)
    md = markdown_table(rows, cols) + "\n\nwhere our time goes:\n" + notes
    write_results("kernel_mcts", {"rows": rows}, md)


# --------------------------------------------------------------------------------------------------
# Worker side (runs in a subprocess so that pinning and XLA flags apply before numpy/jax load).


def _spawn(*, pinned: bool, quick: bool) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if pinned:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, "-m", "bench.kernel_mcts", "--worker", json.dumps({"pinned": pinned, "quick": quick})]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(fn, repeat: int) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of ``fn()`` after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return sorted(walls)[repeat // 2], sorted(cpus)[repeat // 2]


def _worker(config: dict) -> dict:
    if config["pinned"] and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import numpy as np

    from ponder.search import mcts_policies as mcts

    quick = config["quick"]
    repeat = 5 if quick else 21
    rng = np.random.default_rng(0)
    t_logits = rng.normal(size=(TABLE, A))
    t_value = rng.uniform(-1.0, 1.0, TABLE)
    t_reward = rng.uniform(-0.1, 0.1, TABLE)
    root_logits = rng.normal(size=(B, A))
    root_value = rng.uniform(-1.0, 1.0, B)
    discount = np.full(B, 0.99)

    def recurrent_fn(params, rng, action, state):  # take() is numpy's cheapest row gather
        nxt = (state * A + action + 1) % TABLE
        return mcts.RecurrentFnOutput(reward=t_reward.take(nxt), discount=discount[: nxt.shape[0]],
                                      prior_logits=t_logits.take(nxt, axis=0), value=t_value.take(nxt)), nxt

    root = mcts.RootFnOutput(prior_logits=root_logits, value=root_value, embedding=np.arange(B))
    searches = {
        "muzero": lambda backend: mcts.muzero_policy(root, recurrent_fn, S, rng=0, backend=backend),
        "gumbel": lambda backend: mcts.gumbel_muzero_policy(root, recurrent_fn, S, rng=0, backend=backend),
    }
    result = {}
    for policy, search in searches.items():
        r = result[policy] = {}
        r["twin_s"], r["twin_cpu_s"] = _median(lambda: search("python"), 1 if quick else 3)
        r["profile"] = _profile(mcts, lambda: search("numba"))

    try:
        import jax
        import jax.numpy as jnp
        import mctx
    except ImportError as exc:  # peer missing: report ours and the twin only
        for policy, search in searches.items():
            result[policy]["ours_s"], result[policy]["ours_cpu_s"] = _median(lambda: search("numba"), repeat)
            result[policy]["peer_error"] = f"not installed ({exc.name})"
        return result

    j_logits, j_value, j_reward = (jnp.asarray(x, jnp.float32) for x in (t_logits, t_value, t_reward))
    j_discount = jnp.full((B,), 0.99, jnp.float32)

    def j_recurrent_fn(params, key, action, state):
        nxt = (state * A + action + 1) % TABLE
        return mctx.RecurrentFnOutput(reward=j_reward[nxt], discount=j_discount, prior_logits=j_logits[nxt],
                                      value=j_value[nxt]), nxt

    j_root = mctx.RootFnOutput(prior_logits=jnp.asarray(root_logits, jnp.float32),
                               value=jnp.asarray(root_value, jnp.float32), embedding=jnp.arange(B))
    peers = {
        "muzero": jax.jit(lambda key: mctx.muzero_policy(None, key, j_root, j_recurrent_fn, S)),
        "gumbel": jax.jit(lambda key: mctx.gumbel_muzero_policy(None, key, j_root, j_recurrent_fn, S)),
    }
    key = jax.random.PRNGKey(0)
    for policy, fn in peers.items():
        jax.block_until_ready(fn(key))  # compile
        # ours and the peer alternate, so that load from other processes falls on both alike
        result[policy].update(_interleaved({
            "ours": lambda: searches[policy]("numba"),
            "peer": lambda: jax.block_until_ready(fn(key)),
        }, repeat))
    return result


def _interleaved(fns: dict, rounds: int) -> dict:
    """``{name}_s`` and ``{name}_cpu_s``: median wall and process CPU time of each ``fns[name]()``,
    timed in alternating rounds after one warm-up each."""
    for fn in fns.values():
        fn()
    walls = {name: [] for name in fns}
    cpus = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    out = {}
    for name in fns:
        out[f"{name}_s"] = sorted(walls[name])[rounds // 2]
        out[f"{name}_cpu_s"] = sorted(cpus[name])[rounds // 2]
    return out


def _profile(mcts, search) -> str:
    """CPU time of one search spent in the selection kernel, in expand_and_backup, and elsewhere
    (recurrent_fn, the Python loop, allocating the tree)."""
    spent = {"select_puct_blocks": 0.0, "select_gumbel_blocks": 0.0, "expand_and_backup_blocks": 0.0}
    kernels = mcts._NumbaKernels
    originals = {name: getattr(kernels, name) for name in spent}

    def timed(name):
        fn = originals[name]

        def call(*args):
            t0 = time.process_time()
            out = fn(*args)  # the selection kernels return how many leaves need the model
            spent[name] += time.process_time() - t0
            return out

        return staticmethod(call)

    search()  # warm-up: numba compilation or cache loading is not part of a search
    for name in spent:
        setattr(kernels, name, timed(name))
    try:
        reps = 5
        t0 = time.process_time()
        for _ in range(reps):
            search()
        elapsed = (time.process_time() - t0) / reps
    finally:
        for name, fn in originals.items():
            setattr(kernels, name, staticmethod(fn))
    sel = (spent["select_puct_blocks"] + spent["select_gumbel_blocks"]) / reps
    eb = spent["expand_and_backup_blocks"] / reps
    return (f"CPU per search {elapsed * 1e3:.2f} ms: select {sel * 1e3:.2f}, expand_and_backup "
            f"{eb * 1e3:.2f}, recurrent_fn + Python loop + allocation {(elapsed - sel - eb) * 1e3:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(json.loads(sys.argv[2]))))
    else:
        main()
