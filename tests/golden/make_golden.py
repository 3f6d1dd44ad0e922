"""Generate the golden peer outputs in this folder (run by hand; needs mctx, jax and particles).

    cd /work/main && .venv/bin/python tests/golden/make_golden.py

Writes two small JSON files that tests/test_mcts.py and tests/test_resample.py compare ponder's
kernels and policies against in every run, without the peers installed (as mctx commits golden
trees as test data):

* ``mctx_trees.json``: for a few fixed configurations, ``mctx.muzero_policy`` and
  ``mctx.gumbel_muzero_policy`` (float64, ``num_leaves`` 1) on a deterministic table model that the
  file itself holds: the state is an int, ``next = (state * A + action + 1) mod T``, and reward,
  discount, prior logits and value are rows of fixed tables. The root noise mctx drew (Dirichlet for
  MuZero, Gumbel for Gumbel MuZero) is stored too and passed to ponder. Stored per case: the
  inputs (tables, root states, invalid mask, noise, options) and mctx's tree (node_visits,
  node_values, parents, action_from_parent, children_index, children_visits, children_values,
  root action_weights, and for Gumbel the action).
* ``particles_resampling.json``: ``particles.resampling`` (multinomial, stratified, systematic,
  residual) on fixed weights with numpy's global generator seeded; stored are the weights, the
  uniforms particles drew (in ponder's convention for each scheme: ``rand(M)`` for stratified,
  ``rand(1)`` for systematic, ``uniform_spacings(M)`` for multinomial, and for residual
  ``uniform_spacings(R)`` padded to M), its ancestors and the offspring counts.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent

# (name, policy, B, S, A, T, options) -- num_leaves is 1 throughout (mctx has no virtual visits).
MCTX_CASES = [
    ("muzero_small", "muzero", 3, 8, 3, 17, {}),
    ("muzero_masked", "muzero", 5, 20, 5, 31, {"masked": True}),
    ("muzero_min_max_depth3", "muzero", 4, 16, 4, 23, {"min_max": (-2.0, 2.0), "max_depth": 3,
                                                       "dirichlet_fraction": 0.0}),
    ("gumbel_small", "gumbel", 3, 8, 3, 17, {"max_num_considered_actions": 2}),
    ("gumbel_masked", "gumbel", 5, 20, 5, 31, {"masked": True, "max_num_considered_actions": 4,
                                               "max_depth": 5}),
    ("gumbel_zero_noise", "gumbel", 4, 16, 4, 23, {"max_num_considered_actions": 4, "gumbel_scale": 0.0}),
]


def _tables(A: int, T: int, seed: int) -> dict:
    r = np.random.default_rng(seed)
    return {
        "logits": r.normal(size=(T, A)).tolist(),
        "value": r.uniform(-1.0, 1.0, T).tolist(),
        "reward": r.uniform(-0.5, 0.5, T).tolist(),
        "discount": np.where(r.random(T) < 0.15, 0.0, 0.9).tolist(),
    }


def mctx_trees() -> dict:
    import jax
    import mctx

    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    cases = {}
    for seed, (name, policy, B, S, A, T, opts) in enumerate(MCTX_CASES):
        tables = _tables(A, T, seed)
        r = np.random.default_rng(1000 + seed)
        states = r.integers(0, T, size=B)
        invalid = np.zeros((B, A), bool)
        if opts.get("masked"):
            invalid = r.random((B, A)) < 0.3
            invalid[:, 0] = False
        logits, value, reward, discount = (jnp.asarray(tables[k]) for k in ("logits", "value", "reward", "discount"))

        def recurrent_fn(params, key, actions, s):
            nxt = (s * A + actions + 1) % T
            return mctx.RecurrentFnOutput(reward=reward[nxt], discount=discount[nxt],
                                          prior_logits=logits[nxt], value=value[nxt]), nxt

        root = mctx.RootFnOutput(prior_logits=logits[states], value=value[states], embedding=jnp.asarray(states))
        key = jax.random.PRNGKey(seed)
        case = {"policy": policy, "B": B, "S": S, "A": A, "T": T, "tables": tables,
                "root_states": states.tolist(), "invalid_actions": invalid.tolist(), "options": {}}
        kw = {"invalid_actions": jnp.asarray(invalid)}
        if "max_depth" in opts:
            kw["max_depth"] = case["options"]["max_depth"] = opts["max_depth"]
        if policy == "muzero":
            if "min_max" in opts:
                lo, hi = opts["min_max"]
                kw["qtransform"] = lambda tree, node, lo=lo, hi=hi: mctx.qtransform_by_min_max(
                    tree, node, min_value=lo, max_value=hi)
                case["options"].update(qtransform="min_max", value_bounds=[lo, hi])
            f = opts.get("dirichlet_fraction", 0.25)
            kw["dirichlet_fraction"] = case["options"]["dirichlet_fraction"] = f
            out = jax.jit(lambda k: mctx.muzero_policy(None, k, root, recurrent_fn, S, **kw))(key)
            # mctx splits its key into (act, dirichlet, search): the Dirichlet noise it drew
            noise = jax.random.dirichlet(jax.random.split(key, 3)[1], alpha=jnp.full([A], 0.3), shape=(B,))
            case["dirichlet_noise"] = np.asarray(noise).tolist()
        else:
            m = opts["max_num_considered_actions"]
            scale = opts.get("gumbel_scale", 1.0)
            kw.update(max_num_considered_actions=m, gumbel_scale=scale)
            case["options"]["max_num_considered_actions"] = m
            out = jax.jit(lambda k: mctx.gumbel_muzero_policy(None, k, root, recurrent_fn, S, **kw))(key)
            _, gumbel_key = jax.random.split(key)  # mctx draws its Gumbel noise with the second half
            g = scale * np.asarray(jax.random.gumbel(gumbel_key, shape=(B, A), dtype=jnp.float64))
            case["gumbel"] = g.tolist()
            case["action"] = np.asarray(out.action).tolist()
        t = out.search_tree
        case["tree"] = {name_: np.asarray(getattr(t, name_)).tolist() for name_ in (
            "node_visits", "node_values", "parents", "action_from_parent", "children_index",
            "children_visits", "children_values")}
        case["action_weights"] = np.asarray(out.action_weights).tolist()
        cases[name] = case
    return {"peer": f"mctx {mctx.__version__}, jax {jax.__version__}, float64", "cases": cases}


def particles_resampling() -> dict:
    import particles
    from particles import resampling

    weight_sets = {
        "uneven_6": [0.05, 0.15, 0.25, 0.02, 0.33, 0.2],
        "with_zeros_10": [0.0, 0.3, 0.0, 0.1, 0.05, 0.0, 0.25, 0.2, 0.1, 0.0],
        "random_64": (lambda w: (w / w.sum()).tolist())(np.random.default_rng(7).gamma(0.5, size=64)),
    }
    cases = []
    for wname, W in weight_sets.items():
        W = np.asarray(W, dtype=np.float64)
        W = W / W.sum()
        for M in sorted({len(W), 7}):
            for scheme in ("multinomial", "stratified", "systematic", "residual"):
                seed = len(cases) + 1
                np.random.seed(seed)  # particles draws from numpy's global generator
                ancestors = getattr(resampling, scheme)(W, M=M)
                np.random.seed(seed)  # the same draws, in ponder's convention
                if scheme == "multinomial":
                    u = resampling.uniform_spacings(M)
                elif scheme == "stratified":
                    u = np.random.rand(M)
                elif scheme == "systematic":
                    u = np.random.rand(1)
                else:
                    R = M - int(np.floor(M * W).astype(np.int64).sum())
                    u = np.concatenate([resampling.uniform_spacings(R) if R else np.empty(0),
                                        np.full(M - R, 0.5)])
                cases.append({"weights_name": wname, "scheme": scheme, "M": M, "W": W.tolist(),
                              "u": np.asarray(u, dtype=np.float64).tolist(),
                              "ancestors": np.asarray(ancestors).tolist(),
                              "offspring": np.bincount(ancestors, minlength=len(W)).tolist()})
    return {"peer": f"particles {getattr(particles, '__version__', '?')}", "cases": cases}


def main() -> None:
    for name, make in (("mctx_trees", mctx_trees), ("particles_resampling", particles_resampling)):
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(make(), separators=(",", ":")) + "\n")
        print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
