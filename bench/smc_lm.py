r"""SMC on SmolLM2 with two constraints, against best-of-N and locally constrained sampling, and
its particle-steps per second against llamppl.

Model: SmolLM2-135M-Instruct (``ponder.load("smollm2")``), fp32 on CPU, no top-k/p; temperature
1 on the keyword task, ``--tau`` on the lipogram (below). Prompts:
"Write one sentence about <topic>." through the chat template, ``--prompts`` topics (default 30)
from the fixed list below; ``--tokens`` (default 40) new tokens at most.

Lipogram (no letter "e", either case, checked on the decoded text):

- ``smc``: ``--particles`` N (default 8) particles, the lipogram's token mask as the token
  potential (:math:`\delta \in \{0, -\infty\}`, applied before sampling; the weight gets the
  mask's log-normaliser), the 1/0 check as the outcome factor (``outcome="log"``), resampling
  when ESS < N/2 after every token; the answer one particle drawn by weight (``select="sample"``).
- ``local``: locally constrained sampling: the same mask, one particle, no weights.
- ``best-of-N``: N unmasked samples (the same N x tokens budget), the answer one that passes.

Every method samples at temperature ``--tau`` (default 0.5) and SMC targets the tempered
constrained model :math:`p(y)^{1/\tau}\, 1[\text{no e}]` (``power=tau``): the sequence-level
version of what masked sampling at that temperature does token by token (best-of-N keeps a
passing sample by the same target's weight). A first run at temperature 1 (``--tau 1``, the
model's own posterior) found no fluency difference (0.00 SE; README); 0.5 was then chosen on
topics 30-39, outside the default 30.

A text is one sentence: every method finishes a particle at its first ".", "!", "?" or newline
(or EOS, or the token cap). Without that, the model's own posterior given "no e in 40 tokens" at
temperature 1 is dominated by non-English runs (other scripts, digits), which never need an "e";
SMC samples that posterior faithfully (a first run did), which is not the task.

Fluency is the answer's mean per-token log-probability under the unconstrained model (its
``logprob / n_generated``), compared **paired per prompt** (the same prompt for every method):
mean difference SMC - local with its standard error. Masking makes the lipogram hold by
construction, so fluency is the test there.

Keyword (the word must occur within the first ``--tokens`` tokens; ``Keyword`` as a process
verifier, no mask):

- ``smc``: N particles, the keyword's 1/0 score as a twist :math:`e^{\lambda s}` (``--lam``,
  default 20: with P(keyword) ~ 1e-4 under the model, e^20 puts almost all of the target's mass
  on texts with it), steps of ``--step-tokens`` (default 4) tokens, ESS resampling after every
  step;
- ``smc-guided``: the same with the keyword's ``guide`` (a proposal-only log-potential
  ``--boost``, default 6, on the tokens that begin the word; the weights take it back out through
  log p - log q): a ``WordGuide``, on the tokens that begin the word, then on those that finish
  a word the tokenizer splits (" scar" + "f"), until the row has written it. lam and boost were
  chosen on topics 30-33 of the list, outside the default 30. A first run whose guide raised
  only the first tokens satisfied 26 of 30; its 4 misses (scarf, chalk, owl, dust) included
  split words, which prompted the WordGuide, rerun on the same 30 topics (so that figure is not
  from a fresh split);
- ``best-of-N``: N samples, one containing the word if any.

Satisfaction: the share of prompts whose answer satisfies the constraint, with a 95% Wilson
interval; the SMC - best-of-N gap is paired per prompt, with its 95% interval (1.96 standard
errors of the mean per-prompt difference). Tokens computed are reported beside every method.

Speed: ``--speed-rounds`` (default 3) interleaved rounds on one lipogram prompt of ponder's SMC
and llamppl's (``bench/llamppl_peer.py``: its standard SMC with the same mask on the same model,
N particles, the same token limit); particle-steps per second (one token for one particle),
medians with their range; if llamppl cannot run, its error is reported.

Targets, fixed before the run (issue 10): on the lipogram, SMC more fluent than locally
constrained sampling with the paired difference above 2 standard errors; on the keyword, SMC
(the guided variant is the configuration we ship for keywords) satisfies >= 90% of prompts where
best-of-N at equal tokens satisfies fewer, with the gap above its 95% interval; >= 2x llamppl's
particle-steps per second.

``--topics fresh --tasks keyword`` reruns the keyword task on a second list of 30 topics (FRESH),
written after the guide was settled, into ``smc_lm_fresh.json``/``.md``.

Rows are appended per (task, method, prompt) to ``bench/results/smc_lm.jsonl`` and reused, so a
run can be stopped (``--time-limit``) and resumed.

    python -m bench smc_lm [--prompts 30] [--particles 8] [--tokens 40] [--tasks lipogram,keyword,speed]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np

from .common import RESULTS, markdown_table, metric, write_results

LOG = RESULTS / "smc_lm.jsonl"
SENTENCE_END = (".", "!", "?", "\n")

# (topic, keyword): the keyword fits the topic but is not the word a sentence on it must use
TOPICS = [
    ("the ocean", "whale"), ("a city at night", "bridge"), ("winter", "scarf"), ("a garden", "bee"),
    ("the night sky", "moon"), ("a kitchen", "knife"), ("a school", "chalk"), ("a forest", "owl"),
    ("a train ride", "window"), ("a birthday party", "candle"), ("a library", "dust"), ("a farm", "tractor"),
    ("the desert", "camel"), ("a rainy day", "umbrella"), ("a mountain", "snow"), ("a market", "bread"),
    ("a river", "fish"), ("an old house", "door"), ("a football match", "goal"), ("a hospital", "nurse"),
    ("the morning", "coffee"), ("a dog", "ball"), ("a cat", "milk"), ("a storm", "thunder"),
    ("a journey", "map"), ("a painter", "brush"), ("music", "drum"), ("a village", "church"),
    ("the summer", "sun"), ("a road trip", "car"), ("a museum", "statue"), ("a wedding", "ring"),
    ("an island", "palm"), ("a bakery", "cake"), ("a zoo", "lion"), ("a beach", "sand"),
    ("a computer", "screen"), ("a park", "bench"), ("the moon landing", "flag"), ("a snowy night", "fire"),
]

# a second set, written after the keyword guide was settled on TOPICS, to check it on prompts it
# was never run on (``--topics fresh``)
FRESH = [
    ("a fishing trip", "hook"), ("a thunderstorm", "lightning"), ("a chess game", "knight"), ("a circus", "clown"),
    ("a lighthouse", "lamp"), ("a volcano", "lava"), ("a pirate ship", "parrot"), ("a science lab", "microscope"),
    ("a jungle", "monkey"), ("a violin concert", "bow"), ("an airport", "luggage"), ("a picnic", "basket"),
    ("a castle", "tower"), ("a spaceship", "engine"), ("a haunted house", "ghost"), ("a bookshop", "shelf"),
    ("a marathon", "shoes"), ("a snowman", "carrot"), ("a harbor", "anchor"), ("a vineyard", "grape"),
    ("a police station", "badge"), ("a barber shop", "mirror"), ("a honey farm", "hive"), ("a ski resort", "lift"),
    ("an orchard", "apple"), ("a tailor", "needle"), ("a candle shop", "wax"), ("a cave", "bat"),
    ("a swimming pool", "towel"), ("an old clock", "pendulum"),
]


def prompt_of(topic: str) -> str:
    return f"Write one sentence about {topic}."


def fluency(node) -> float:
    """Mean per-token log-probability under the unconstrained model."""
    return float(node.logprob) / max(node.n_generated, 1)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def paired(a: list[float], b: list[float]) -> dict:
    """Mean of a - b over pairs where both are finite, its standard error and n."""
    d = np.array([x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)])
    if len(d) < 2:
        return {"mean": float("nan"), "se": float("nan"), "n": int(len(d))}
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(len(d))), "n": int(len(d))}


def run_one(lm, task: str, method: str, topic: str, keyword: str, *, n: int, tokens: int, step_tokens: int, lam: float,
            boost: float, tau: float, seed: int) -> dict:
    import ponder
    from ponder.verifiers import Keyword, Lipogram

    prompt = prompt_of(topic)
    began = time.perf_counter()
    if task == "lipogram":  # one sentence: a particle finishes at its first sentence end (or EOS, or the token cap)
        check = Lipogram("e")
        common = dict(max_new_tokens=tokens, end=SENTENCE_END, temperature=tau, seed=seed)
        if method == "smc":
            r = ponder.search("smc", lm, check, prompt, n=n, mask=check, outcome="log", select="sample", power=tau, **common)
        elif method == "local":
            r = ponder.search("smc", lm, None, prompt, n=1, mask=check, resample="never", **common)
        else:  # N independent samples of the model, a passing one kept: importance sampling with 1/0 weights
            r = ponder.search("smc", lm, check, prompt, n=n, outcome="log", resample="never", select="sample", power=tau, **common)
    else:
        check = Keyword(keyword, boost=boost)
        if method in ("smc", "smc-guided"):
            r = ponder.search("smc", lm, check, prompt, n=n, lam=lam, step_tokens=step_tokens, max_new_tokens=tokens,
                              guide=check if method == "smc-guided" else None, select="sample", seed=seed)
        else:
            r = ponder.search("best_of_n", lm, check, prompt, n=n, max_new_tokens=tokens, seed=seed)
    seconds = time.perf_counter() - began
    row = {"task": task, "method": method, "topic": topic, "keyword": keyword if task == "keyword" else None,
           "stopped": r.stopped, "seconds": seconds, "computed_tokens": r.ledger.computed_tokens,
           "generated_tokens": r.ledger.count("generated_tokens")}
    if r.best is None:
        return {**row, "satisfied": False, "fluency": float("nan"), "text": None}
    best = r.best
    ok = bool(check.score([prompt], [best.text])[0] > 0)
    row.update(satisfied=ok, fluency=fluency(best) if ok else float("nan"), text=best.text)
    if method.startswith("smc") and r.scores:
        w = np.asarray(r.scores)
        f = np.array([fluency(c) for c in r.candidates])
        row["weighted_fluency"] = float((w * f).sum() / w.sum())
        row["log_z"] = r.info.get("log_z")
        row["resamples"] = r.info.get("resamples")
    return row


def row_settings(args, task: str, method: str) -> dict:
    """What a stored row must have been run with to be reused."""
    common = {"particles": args.particles, "tokens": args.tokens}
    if task == "lipogram":
        return {**common, "tau": args.tau}
    out = {**common, "step_tokens": args.step_tokens, "lam": args.lam, "boost": args.boost}
    if method == "smc-guided":
        out["guide"] = "word"  # WordGuide: first tokens, then the tokens finishing a split word, until written
    return out


def load_rows(args) -> dict:
    """Stored rows run with their settings, by (task, method, topic)."""
    rows = {}
    if LOG.exists():
        for line in LOG.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("settings") == row_settings(args, r["task"], r["method"]):
                    rows[(r["task"], r["method"], r["topic"])] = r
    return rows


def summarise(rows: dict, task: str, methods: list[str], topics: list[str]) -> list[dict]:
    out = []
    for m in methods:
        rs = [rows[(task, m, t)] for t in topics if (task, m, t) in rows]
        if not rs:
            continue
        k = sum(r["satisfied"] for r in rs)
        lo, hi = wilson(k, len(rs))
        fl = [r["fluency"] for r in rs if math.isfinite(r["fluency"])]
        out.append({"task": task, "method": m, "prompts": len(rs), "satisfied": k / len(rs), "ci_low": lo, "ci_high": hi,
                    "fluency": float(np.mean(fl)) if fl else float("nan"),
                    "computed_tokens": float(np.mean([r["computed_tokens"] for r in rs])),
                    "generated_tokens": float(np.mean([r["generated_tokens"] for r in rs])),
                    "seconds": float(np.mean([r["seconds"] for r in rs]))})
    return out


def speed(lm, *, n: int, tokens: int, rounds: int, seed: int) -> dict:
    import ponder
    from ponder.models import loading
    from ponder.verifiers import Lipogram

    from . import llamppl_peer

    topic = TOPICS[0][0]
    prompt = prompt_of(topic)
    check = Lipogram("e")
    out = {"prompt": prompt, "particles": n, "tokens": tokens, "ponder": [], "llamppl": [], "llamppl_error": None}
    error = llamppl_peer.available()
    if error is not None:
        out["llamppl_error"] = error
    for i in range(rounds):
        began = time.perf_counter()
        r = ponder.search("smc", lm, None, prompt, n=n, mask=check, max_new_tokens=tokens, seed=seed + i)
        seconds = time.perf_counter() - began
        steps = r.ledger.count("generated_tokens")
        out["ponder"].append({"seconds": seconds, "particle_steps": steps, "per_second": steps / seconds})
        if error is None:
            try:
                got = llamppl_peer.run_lipogram(str(loading.smollm2_dir()), prompt, letter="e", n=n, max_tokens=tokens, seed=seed + i)
            except Exception as exc:  # noqa: BLE001 - the peer's failure is reported, not fatal
                out["llamppl_error"] = f"{type(exc).__name__}: {exc}"
                error = out["llamppl_error"]
                continue
            out["llamppl"].append({"seconds": got["seconds"], "particle_steps": got["particle_steps"],
                                   "per_second": got["particle_steps_per_second"], "version": got.get("version")})
        print(f"[smc_lm] speed round {i + 1}/{rounds}: ponder {out['ponder'][-1]['per_second']:.1f} steps/s"
              + (f", llamppl {out['llamppl'][-1]['per_second']:.1f}" if out["llamppl"] and len(out["llamppl"]) == i + 1 else ""),
              flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench smc_lm", description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=30)
    p.add_argument("--particles", type=int, default=8)
    p.add_argument("--tokens", type=int, default=40)
    p.add_argument("--step-tokens", type=int, default=4, help="tokens per SMC step on the keyword task")
    p.add_argument("--tau", type=float, default=0.5, help="lipogram: the temperature of every method and SMC's target power")
    p.add_argument("--lam", type=float, default=20.0, help="keyword: the twist's lambda")
    p.add_argument("--boost", type=float, default=6.0, help="keyword: the guide's log-potential on the word's first tokens")
    p.add_argument("--tasks", default="lipogram,keyword,speed")
    p.add_argument("--speed-rounds", type=int, default=3)
    p.add_argument("--time-limit", type=float, default=None, help="seconds; stop starting new prompts after it (rerun to resume)")
    p.add_argument("--methods", default=None, help="only these methods (comma list; default: all of each task)")
    p.add_argument("--topics", choices=("main", "fresh"), default="main",
                   help="the topic list: main (TOPICS) or fresh (FRESH; results go to smc_lm_fresh.*)")
    p.add_argument("--report", action="store_true", help="only rewrite the report from stored rows")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    import ponder

    tasks = args.tasks.split(",")
    topics = (TOPICS if args.topics == "main" else FRESH)[: args.prompts]
    names = [t for t, _ in topics]
    rows = load_rows(args)
    lm = None if args.report else ponder.load("smollm2")
    began = time.perf_counter()
    methods = {"lipogram": ["smc", "local", "best-of-N"], "keyword": ["smc", "smc-guided", "best-of-N"]}
    RESULTS.mkdir(exist_ok=True)
    stopped_early = False
    for task in [t for t in tasks if t in methods]:
        for i, (topic, keyword) in enumerate(topics):
            if args.report or stopped_early:
                break
            if args.time_limit is not None and time.perf_counter() - began > args.time_limit:
                print(f"[smc_lm] time limit reached in {task} after {i} prompts (rerun to resume)")
                stopped_early = True
                break
            for m in [m for m in methods[task] if args.methods is None or m in args.methods.split(",")]:  # interleaved per prompt
                if (task, m, topic) in rows:
                    continue
                row = run_one(lm, task, m, topic, keyword, n=args.particles, tokens=args.tokens, step_tokens=args.step_tokens,
                              lam=args.lam, boost=args.boost, tau=args.tau, seed=1000 + i)
                row["settings"] = row_settings(args, task, m)
                rows[(task, m, topic)] = row
                with LOG.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"[smc_lm] {task} {m} {topic!r}: {'ok' if row['satisfied'] else '--'} fluency {row['fluency']:.2f} "
                      f"{row['seconds']:.1f} s | {(row['text'] or '')[:70]!r}", flush=True)
    speed_path = RESULTS / "smc_lm_speed.jsonl"  # the raw rounds, one JSON line
    if "speed" in tasks and not args.report and not stopped_early and args.topics == "main":
        speed_path.write_text(json.dumps(speed(lm, n=args.particles, tokens=args.tokens, rounds=args.speed_rounds, seed=7)) + "\n")
    sp = json.loads(speed_path.read_text()) if speed_path.exists() and args.topics == "main" else None
    report(rows, names, sp, args)


def report(rows: dict, names: list[str], sp: dict | None, args) -> None:
    lip = summarise(rows, "lipogram", ["smc", "local", "best-of-N"], names)
    kw = summarise(rows, "keyword", ["smc", "smc-guided", "best-of-N"], names)
    metrics = []
    get = lambda task, m: [rows[(task, m, t)] for t in names if (task, m, t) in rows]  # noqa: E731
    topics_done = [t for t in names if all((("lipogram", m, t) in rows) for m in ("smc", "local"))]
    if topics_done:
        d = paired([rows[("lipogram", "smc", t)]["fluency"] for t in topics_done], [rows[("lipogram", "local", t)]["fluency"] for t in topics_done])
        metrics.append(metric("lipogram: fluency SMC - locally constrained (mean per-token log p, paired), in standard errors",
                              d["mean"] / d["se"] if d["se"] and d["se"] > 0 else float("nan"), 2, ">",
                              mean=d["mean"], se=d["se"], n=d["n"]))
        w = paired([rows[("lipogram", "smc", t)].get("weighted_fluency", float("nan")) for t in topics_done],
                   [rows[("lipogram", "local", t)]["fluency"] for t in topics_done])
        metrics.append(metric("lipogram: fluency of SMC's weighted particles - locally constrained, in standard errors",
                              w["mean"] / w["se"] if w["se"] and w["se"] > 0 else float("nan"), None, mean=w["mean"], se=w["se"], n=w["n"]))
    for m in ("smc-guided", "smc"):
        both = [t for t in names if ("keyword", m, t) in rows and ("keyword", "best-of-N", t) in rows]
        if not both:
            continue
        s = [float(rows[("keyword", m, t)]["satisfied"]) for t in both]
        b = [float(rows[("keyword", "best-of-N", t)]["satisfied"]) for t in both]
        d = paired(s, b)
        half = 1.96 * d["se"] if math.isfinite(d["se"]) else float("nan")
        metrics.append(metric(f"keyword: {m} satisfied share", float(np.mean(s)), 0.9 if m == "smc-guided" else None, ">=", n=len(both)))
        metrics.append(metric(f"keyword: {m} - best-of-N satisfied share (paired), minus its 95% half-interval",
                              d["mean"] - half if math.isfinite(half) else float("nan"), 0 if m == "smc-guided" else None, ">",
                              gap=d["mean"], half_interval=half, best_of_n=float(np.mean(b))))
    speed_rows = []
    if sp:
        for who in ("ponder", "llamppl"):
            xs = [r["per_second"] for r in sp.get(who, [])]
            if xs:
                speed_rows.append({"who": who, "particle_steps_per_s": statistics.median(xs), "min": min(xs), "max": max(xs), "rounds": len(xs)})
        pon, peer = sp.get("ponder", []), sp.get("llamppl", [])
        if pon and peer:
            ratios = [a["per_second"] / b["per_second"] for a, b in zip(pon, peer)]
            metrics.append(metric("particle-steps/s, ponder SMC / llamppl (same model, mask, N, tokens), median of interleaved rounds",
                                  statistics.median(ratios), 2, ">=", min=min(ratios), max=max(ratios)))
        else:
            metrics.append(metric("particle-steps/s, ponder SMC / llamppl", float("nan"), 2, ">=", error=sp.get("llamppl_error")))
    cols = ["method", "prompts", "satisfied", "ci_low", "ci_high", "fluency", "computed_tokens", "generated_tokens", "seconds"]
    md = ["# SMC on SmolLM2 (`python -m bench smc_lm`)", "",
          f"N = {args.particles} particles, at most {args.tokens} new tokens; lipogram at temperature and target power {args.tau}, "
          "keyword at temperature 1; fluency = mean per-token log p "
          "under the unconstrained model (of answers that satisfy); satisfied with 95% Wilson intervals.", "",
          "## Lipogram (no 'e')", "", markdown_table(lip, cols), "", "## Keyword", "", markdown_table(kw, cols)]
    if speed_rows:
        md += ["", "## Particle-steps per second (lipogram, one prompt, interleaved rounds)", "",
               markdown_table(speed_rows, ["who", "particle_steps_per_s", "min", "max", "rounds"])]
        if sp.get("llamppl_error"):
            md += ["", f"llamppl error: `{sp['llamppl_error']}`"]
    examples = [r for r in get("lipogram", "smc")[:3]] + [r for r in get("lipogram", "local")[:3]]
    if examples:
        md += ["", "## Examples", ""] + [f"- {r['method']} ({r['topic']}): {r['text']!r}" for r in examples]
    write_results("smc_lm" if args.topics == "main" else "smc_lm_fresh", {"settings": vars(args), "lipogram": lip, "keyword": kw, "speed": sp}, "\n".join(md), metrics=metrics)


if __name__ == "__main__":
    main()
