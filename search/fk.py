r"""Feynman-Kac steering (Singhal et al., ICML 2025): interacting diffusion particles, resampled by
potentials computed from rewards.

Target. For a prompt :math:`c`, a diffusion model :math:`p_\theta(x_0 \mid c)` and a reward
:math:`r(x_0, c)`, FK steering samples the tilted distribution

.. math:: p^*(x_0 \mid c) = \frac{1}{Z}\, p_\theta(x_0 \mid c)\, e^{\lambda r(x_0, c)},
          \qquad Z = \mathbb E_{p_\theta}\bigl[e^{\lambda r(x_0, c)}\bigr].

Particles. :math:`k` particles per prompt run the model's own stochastic denoising steps (the
proposal is the model, so no :math:`p/q` correction arises). At *potential steps* (every
``every`` denoising steps from ``start`` to ``end``) each particle's intermediate reward
:math:`r_s = r(\hat x_0(x_s))` is computed on the model's :math:`x_0` prediction (decoded to pixels
if the reward needs them) or, with ``x0_samples = m > 1``, averaged over the :math:`\hat x_0` of
:math:`m` one-step look-ahead samples, and its log-weight grows by :math:`\log G_s`:

============  ===================================================
potential     :math:`\log G_s`
============  ===================================================
difference    :math:`\lambda (r_s - r_{s'})`, :math:`s'` the previous potential step (:math:`r = 0` before the first)
max           :math:`\lambda \max_{u \le s} r_u` (over the potential steps so far)
sum           :math:`\lambda \sum_{u \le s} r_u`
immediate     :math:`\lambda r_s`
============  ===================================================

Final correction. After the last step the sample's reward :math:`r(x_0)` gives the last factor
:math:`\log G_{\text{end}} = \lambda r(x_0) - \sum_s \log G_s` (the sum over the particle's own
lineage), so every particle's potentials multiply to exactly :math:`e^{\lambda r(x_0)}`: the
intermediate potentials only choose *where* the particles go, never what they target.

Resampling ("every": at every potential step; "ess": when
:math:`\mathrm{ESS}/k = (\sum_i w_i)^2 / (k \sum_i w_i^2) < \text{ess\_threshold}`; "never") draws
:math:`k` ancestors by the named scheme of :mod:`ponder.kernels.resample` and resets the weights.
Weights are *carried* across potential steps that do not resample (the reference code drops them,
its issue #12), all in log space, so the final weighted particles
:math:`\{(x_0^{(i)}, W_i)\}` are a proper importance sample of :math:`p^*` and

.. math:: \hat Z = \prod_{\text{epochs } e} \frac{1}{k} \sum_i w_i^{(e)}

(the product of the mean weights at every resampling and at the end) is an unbiased estimate of
:math:`Z`; ``info["groups"][g]["log_z"]`` holds :math:`\log \hat Z`.

Batching. All prompts' particles move in one ``generator.expand`` per step (several prompts per
call, each with its own particle group), and all their rewards in one verifier call per
potential step. Copies made by resampling share their parent's denoiser evaluation
(``expand(unique, counts)``).

Answers (``select``): "reward" ranks a group's final particles by :math:`r(x_0)` (what the FK
paper reports), "weight" by :math:`W_i`, "sample" draws one particle by :math:`W` and puts it first.
``SearchResult.candidates`` lists group 0's particles, then group 1's, ...; ``best`` is group 0's
first. :func:`best_per_prompt` gives each prompt's answer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from ponder.kernels import resample as resampling
from ponder.search.config import SearchConfig, check_int, check_option, check_real, seed_for
from ponder.search.errors import ConfigError
from ponder.search.ledger import Budget, Ledger, charge, register_counter
from ponder.search.protocols import LatentState
from ponder.search.result import SearchResult, Trace
from ponder.search.verify import require_verifier, score_states

NAME = "fk"
POTENTIALS = ("max", "difference", "sum", "immediate")
RESAMPLING = ("every", "ess", "never")
SELECTIONS = ("reward", "weight", "sample")
__all__ = ["FKConfig", "NAME", "POTENTIALS", "best_per_prompt", "run"]

register_counter("particles", "particles a particle search carried (per prompt group)")
register_counter("resamples", "resampling events (per prompt group)")


@dataclasses.dataclass(frozen=True)
class FKConfig(SearchConfig):
    """Configuration of FK steering.

    Args:
        k: particles per prompt (>= 1).
        potential: "max", "difference", "sum" or "immediate" (module docstring).
        lam: the tilt :math:`\\lambda >= 0` (0: no steering; the weights stay uniform).
        every: denoising steps between potential steps (>= 1).
        start: the first potential step, as a denoising step count in [1, steps].
        end: the last step a potential may apply at, in [start, steps - 1]; None: steps - 1.
        resample: "every" (at each potential step), "ess" (when ESS/k < ``ess_threshold``) or
            "never" (weights only).
        ess_threshold: in [0, 1]; used by ``resample="ess"``.
        scheme: the resampling scheme: "systematic", "stratified", "multinomial", "residual".
        x0_samples: rewards per particle at a potential step: 1 scores :math:`\\hat x_0(x_s)`;
            m > 1 averages over the :math:`\\hat x_0` of m one-step look-ahead samples (m more
            denoiser evaluations per particle).
        select: how a group's answer is chosen: "reward", "weight" or "sample".
        steps: denoising steps (None: the generator's default).
        seed: seeds the generator calls and the resampling draws.
    """

    k: int = 8
    potential: str = "max"
    lam: float = 10.0
    every: int = 5
    start: int = 1
    end: int | None = None
    resample: str = "every"
    ess_threshold: float = 0.5
    scheme: str = "systematic"
    x0_samples: int = 1
    select: str = "reward"
    steps: int | None = None

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_int(owner, "k", self.k)
        check_option(owner, "potential", self.potential, POTENTIALS)
        check_real(owner, "lam", self.lam, low=0.0)
        check_int(owner, "every", self.every)
        check_int(owner, "start", self.start)
        check_int(owner, "end", self.end, optional=True)
        if self.end is not None and self.end < self.start:
            raise ConfigError(f"{owner}.end must be >= start={self.start}, got {self.end}")
        check_option(owner, "resample", self.resample, RESAMPLING)
        check_real(owner, "ess_threshold", self.ess_threshold, low=0.0, high=1.0)
        check_option(owner, "scheme", self.scheme, resampling.SCHEMES)
        check_int(owner, "x0_samples", self.x0_samples)
        check_option(owner, "select", self.select, SELECTIONS)
        check_int(owner, "steps", self.steps, optional=True)

    def potential_steps(self, steps: int) -> list[int]:
        """The denoising step counts at which potentials apply, for a ``steps``-step schedule.

        Raises:
            ConfigError: ``start`` or ``end`` outside [1, steps - 1].
        """
        owner = type(self).__name__
        last = steps - 1 if self.end is None else self.end
        if not 1 <= self.start <= max(1, steps - 1) or last > steps - 1:
            raise ConfigError(f"{owner}.start and end must lie in [1, steps - 1] = [1, {steps - 1}] for a {steps}-step schedule, "
                              f"got start={self.start}, end={self.end}")
        return list(range(self.start, last + 1, self.every))


@dataclasses.dataclass
class _Group:
    """One prompt's particles and their running statistics (arrays are [k], per particle)."""

    prompt: Any
    particles: list[LatentState]
    logw: np.ndarray            # log-weight since the last resampling
    log_g: np.ndarray           # sum of log G applied along each particle's lineage
    r_prev: np.ndarray          # the last potential step's reward (difference)
    r_max: np.ndarray           # running max of rewards (max)
    r_sum: np.ndarray           # running sum of rewards (sum)
    log_z: float = 0.0
    ess: list = dataclasses.field(default_factory=list)       # (step, ESS) at every potential step
    resampled_at: list = dataclasses.field(default_factory=list)
    rewards: np.ndarray | None = None  # final rewards

    def take(self, ancestors: np.ndarray) -> None:
        self.particles = [self.particles[a] for a in ancestors]
        for name in ("log_g", "r_prev", "r_max", "r_sum"):
            setattr(self, name, getattr(self, name)[ancestors])
        self.logw = np.zeros(len(ancestors))


def run(
    generator: Any,
    verifier: Any,
    prompt: Any,
    *,
    budget: Budget | None = None,
    config: FKConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """FK steering of a diffusion generator by a reward.

    Args:
        generator: a diffusion generator (``root(prompt, steps=...)``, ``expand``, and ``decode``
            for latent pipelines), e.g. :class:`ponder.models.diffusion.Diffusion`.
        verifier: the reward :math:`r` (an outcome verifier on pixels, higher is better).
        prompt: one prompt (a text, a class id, None) or a list of them (one particle group each).
            An unconditional model ignores it, but the reward receives it beside every
            candidate (e.g. the target class of ``digit_class``).
        budget: caps on what the search may spend (e.g. ``denoiser_evals``).
        config: an :class:`FKConfig`.
        progress: called as ``progress(ledger, budget)`` after every denoising step.
        cancel: an event (``is_set()``) that ends the search at its next step.

    Returns:
        A :class:`SearchResult`; ``info["groups"]`` holds per prompt its candidates' positions,
        normalised weights, final rewards, :math:`\\log \\hat Z`, ESS history and resampling steps.

    Raises:
        VerifierError: the reward failed (raised, or NaN/inf for some particle, named with its
            position); ``err.partial`` holds every group's current particles.
        ConfigError: a bad option or ``start``/``end`` outside the schedule.
    """
    config = config or FKConfig()
    verifier = require_verifier(verifier, algorithm="fk")
    prompts = list(prompt) if isinstance(prompt, (list, tuple)) else [prompt]
    if not prompts:
        raise ConfigError("fk needs at least one prompt")
    trace = Trace(NAME, config, budget, progress, cancel)
    rng = np.random.default_rng(config.seed)
    groups: list[_Group] = []
    stopped = "done"
    call = [0]

    def seed() -> int | None:
        call[0] += 1
        return seed_for(config.seed, call[0])

    with trace.running(lambda: _ranked(groups, config, rng, final=False)):
        roots = [generator.root(p, **({} if config.steps is None else {"steps": config.steps})) for p in prompts]
        trace.add(roots)
        steps = roots[0].steps
        at = set(config.potential_steps(steps)) if steps > 1 else set()
        k = config.k
        first = generator.expand(roots, k, seed=seed())
        for root, kids in zip(roots, first):
            trace.add(kids)
            z = np.zeros(k)
            groups.append(_Group(root.prompt, kids, z.copy(), z.copy(), z.copy(), np.full(k, -np.inf), z.copy()))
        charge(particles=k * len(groups))
        for step in range(1, steps + 1):
            _advance(generator, groups, trace, seed())
            if step in at:
                rewards = _rewards(generator, verifier, groups, config, trace, seed)
                for group, r in zip(groups, rewards):
                    _potential(group, r, step, config, rng)
            elif step == steps:
                rewards = _final_rewards(generator, verifier, groups)
                for group, r in zip(groups, rewards):
                    _finish(group, r, config)
            cap = trace.step_done()
            if cap is not None and step < steps:
                stopped = cap
                break
    candidates, scores, info = _ranked(groups, config, rng, final=stopped == "done")
    return trace.result(candidates, scores, stopped, info)


def _advance(generator, groups: list[_Group], trace: Trace, seed) -> None:
    """One denoising step for every particle of every group, in one expand; resampled copies
    (the same state several times) share one evaluation."""
    unique: dict[int, LatentState] = {}
    copies: dict[int, int] = {}
    for group in groups:
        for p in group.particles:
            unique.setdefault(id(p), p)
            copies[id(p)] = copies.get(id(p), 0) + 1
    parents = list(unique.values())
    kids = generator.expand(parents, [copies[id(p)] for p in parents], seed=seed)
    pool = {id(p): list(c) for p, c in zip(parents, kids)}
    for group in groups:
        group.particles = [pool[id(p)].pop() for p in group.particles]
        trace.add(group.particles)


def _score(generator, verifier, states: Sequence[LatentState]) -> np.ndarray:
    """Rewards of ``states`` (their x0 predictions, or samples once finished), pixels decoded first."""
    if any(s.latent for s in states):
        generator.decode(states)
    return score_states(verifier, states)


def _rewards(generator, verifier, groups: list[_Group], config: FKConfig, trace: Trace, seed) -> list[np.ndarray]:
    """Every group's intermediate rewards [k], from one verifier call."""
    states = [p for g in groups for p in g.particles]
    if config.x0_samples == 1:
        flat = _score(generator, verifier, states)
    else:  # the mean reward over the x0 predictions of m one-step look-ahead samples
        m = config.x0_samples
        ahead = [kid for kids in generator.expand(states, m, seed=seed()) for kid in kids]
        trace.add(ahead)
        flat = _score(generator, verifier, ahead).reshape(len(states), m).mean(axis=1)
    out, n = [], 0
    for g in groups:
        out.append(flat[n : n + len(g.particles)])
        n += len(g.particles)
    return out


def _final_rewards(generator, verifier, groups: list[_Group]) -> list[np.ndarray]:
    flat = _score(generator, verifier, [p for g in groups for p in g.particles])
    out, n = [], 0
    for g in groups:
        out.append(flat[n : n + len(g.particles)])
        n += len(g.particles)
    return out


def _potential(group: _Group, r: np.ndarray, step: int, config: FKConfig, rng) -> None:
    """Apply the potential of one potential step to a group, then resample it if due."""
    lam = config.lam
    if config.potential == "difference":
        log_g = lam * (r - group.r_prev)
    elif config.potential == "max":
        group.r_max = np.maximum(group.r_max, r)
        log_g = lam * group.r_max
    elif config.potential == "sum":
        group.r_sum = group.r_sum + r
        log_g = lam * group.r_sum
    else:
        log_g = lam * r
    group.r_prev = r.copy()
    group.logw = group.logw + log_g
    group.log_g = group.log_g + log_g
    W, log_mean = resampling.log_normalise(group.logw)
    ess = resampling.ess(W)
    group.ess.append((step, ess))
    due = config.resample == "every" or (config.resample == "ess" and ess < config.ess_threshold * len(W))
    if due:
        group.log_z += log_mean
        group.take(resampling.resample_weights(W, config.scheme, rng=rng))
        group.resampled_at.append(step)
        charge(resamples=1)


def _finish(group: _Group, r: np.ndarray, config: FKConfig) -> None:
    """The final correction: every lineage's potentials multiply to exp(lam r(x0))."""
    group.rewards = r
    group.logw = group.logw + config.lam * r - group.log_g
    group.log_g = config.lam * r
    _, log_mean = resampling.log_normalise(group.logw)
    group.log_z += log_mean


def _ranked(groups: list[_Group], config: FKConfig, rng, *, final: bool) -> tuple[list, list, dict]:
    """Candidates of every group (ranked within it), their scores, and the groups' facts."""
    candidates, scores, info = [], [], []
    for group in groups:
        if not group.particles:
            continue
        W = resampling.log_normalise(group.logw)[0] if np.isfinite(group.logw).any() else np.full(len(group.logw), 1 / len(group.logw))
        rewards = group.rewards if group.rewards is not None else group.r_prev  # the last potential step's, until the end
        if config.select == "reward" and group.rewards is not None:
            order = np.argsort(-rewards, kind="stable")
            shown = rewards
        else:
            order = np.argsort(-W, kind="stable")
            shown = W
            if config.select == "sample" and final:
                pick = int(resampling.resample_weights(W, "multinomial", M=1, rng=rng)[0])
                order = np.concatenate([[pick], order[order != pick]])
        start = len(candidates)
        candidates += [group.particles[i] for i in order]
        scores += [float(shown[i]) for i in order]
        info.append({"prompt": group.prompt, "candidates": list(range(start, len(candidates))), "best": start,
                     "weights": [float(W[i]) for i in order], "rewards": [float(rewards[i]) for i in order],
                     "log_z": float(group.log_z) if final else None, "ess": group.ess, "resampled_at": group.resampled_at})
    return candidates, scores, {"groups": info}


def best_per_prompt(result: SearchResult) -> list[LatentState]:
    """Each prompt's answer (the first candidate of its group), in prompt order."""
    return [result.candidates[g["best"]] for g in result.info["groups"]]
