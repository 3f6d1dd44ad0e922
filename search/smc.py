r"""Sequential Monte Carlo for language models: particles on the token trie, steered by token-level
potentials (masks) and verifiers, with importance weights and a normalising-constant estimate.

Target. For a prompt :math:`x`, a language model :math:`p(y \mid x)` and potentials, SMC samples

.. math:: \pi(y) = \frac{1}{Z}\, p(y \mid x)^{1/\tau} \prod_t e^{\delta_t(y_t)}\; e^{\lambda s(y)}\; G(y),
          \qquad Z = \sum_y p(y \mid x)^{1/\tau} \prod_t e^{\delta_t(y_t)}\, e^{\lambda s(y)}\, G(y),

where :math:`\tau` is the target's ``power`` (1: the model itself; below 1 a sharpened,
sequence-level tempered model), :math:`\delta_t` is a *token-level potential* over the vocabulary at token :math:`t` (a hard
mask has :math:`\delta \in \{0, -\infty\}`; e.g. a lipogram bans every token containing a letter),
:math:`s` a *process verifier* (``verifier`` of kind "process"; it scores partial texts too) and
:math:`G` the *outcome* factor of outcome verifiers (``verifier`` of kind "outcome", and
``final``): :math:`G = e^{\lambda r(y)}` (``outcome="exp"``) or :math:`G = r(y)` for scores
:math:`r \ge 0`, such as a 1/0 check (``outcome="log"``; :math:`r = 0` is a hard constraint).
Every factor left out is 1.

Particles. :math:`N` particles :math:`i = 1..N` start at the root (the prompt). Step
:math:`s = 1, 2, \dots` extends every live particle by ``step_tokens`` tokens (or to a ``stop``
string, or EOS) in **one** batched ``generator.expand``: copies of one node (made by resampling)
are one parent with several children, so their prefix is computed once and shared through the
trie. The proposal :math:`q` is the model with the token potential applied through the core's
logits hook (logits :math:`z + \delta`, then temperature, top-k/p), so a mask never proposes a
banned token. A particle that finished (EOS, ``max_new_tokens``, or a step that wrote one of the
``end`` strings, e.g. the end of a sentence) stays fixed: it keeps its weight
and is not extended (as in llamppl's standard SMC).

Incremental weights, in log space, per particle and step:

.. math:: \log w_s = \sum_{t \in s} \bigl[\tfrac{1}{\tau}\log p(y_t \mid y_{<t}) + \delta_t(y_t) - \log q(y_t \mid y_{<t})\bigr]
          \;+\; \lambda\,(s_{s} - s_{s-1})\;+\;[\text{finished}]\,\log G.

The bracket is the proposal correction. At temperature 1 without truncation
:math:`q = p\, e^{\delta} / Z_t`, so the bracket is :math:`\log Z_t = \log \sum_v p(v)\, e^{\delta_t(v)}`,
the hook's log-normaliser that the generator records per step in ``child.meta["log_normaliser"]``;
for a mask :math:`\delta_t(y_t) = 0` and the bracket is ``step_logprob - step_proposal_logprob``.
The code uses the general form, :math:`\delta_t(y_t)` kept from the hook's call (so tempered or
truncated proposals are corrected too); the tests check it equals the log-normaliser at T = 1.
A ``guide`` changes only the proposal: tokens are drawn from :math:`z + \delta + \gamma` (e.g.
:math:`\gamma` raising the first tokens of a required word), :math:`\gamma` is not part of
:math:`\pi`, and the bracket above, with :math:`\log q` of that proposal, takes it back out.
A row whose potential bans every token is *dead*: :math:`\log w = -\infty`, not extended again.
The process term is a twist: :math:`\phi_s = e^{\lambda s_s}` with :math:`s_0 = 0` telescopes along
a lineage to :math:`e^{\lambda s(y)}` of the final text (the verifier is called on every particle's
final text, also between potential steps), so intermediate scores only choose *where* the
particles go, never what they target. The outcome factor enters once per particle, when it
finishes or, for particles still open, at the end.

Resampling. Every ``every`` steps (the resampling schedule; the process verifier is called at the
same steps), with normalised weights :math:`W_i = w_i / \sum_j w_j`, the particles are resampled
by the named scheme of :mod:`ponder.kernels.resample` when :math:`\mathrm{ESS}/N =
1 / (N \sum_i W_i^2) < \text{ess\_threshold}` (``resample="ess"``), always (``"every"``) or never;
the weights then restart at 1. The estimate of :math:`Z` is

.. math:: \hat Z = \prod_{\text{epochs } e} \frac{1}{N} \sum_i w_i^{(e)}

(the mean weight at each resampling and at the end: ``kernels.resample.log_normalise``'s log mean
weight), unbiased for :math:`Z`; ``info["log_z"]`` holds :math:`\log \hat Z`.

Result. ``candidates`` are the final particles, distinct texts merged (their weights summed),
ranked by weight (``select="weight"``) or with one drawn by weight first (``"sample"``);
``scores`` are their normalised weights :math:`W`. ``info``: ``log_z``, ``ess`` (step, ESS) at
every resampling point, ``resamples``, ``resampled_at``, ``weights``, ``log_weights`` (per
particle), ``steps``, ``dead``. When every particle has weight 0 (every one violates a hard
constraint) the search stops with ``stopped="infeasible"``, no candidate and ``log_z = -inf``;
no NaN arises anywhere.

Failures. A verifier or token potential returning NaN or +inf for some particle is a
:class:`~ponder.search.verify.VerifierError` naming it and the particle, with the particles so far
(ranked by their current weights) in ``err.partial``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

from ponder.kernels import resample as resampling
from ponder.search.config import SamplingConfig, check_int, check_option, check_real, stop_strings
from ponder.search.errors import ConfigError
from ponder.search.ledger import Budget, Ledger, charge, register_counter
from ponder.search.protocols import Node, Step
from ponder.search.result import SearchResult, Trace
from ponder.search.verify import VerifierError, require_verifier, score_states

NAME = "smc"
RESAMPLING = ("ess", "every", "never")
OUTCOMES = ("exp", "log")
SELECTIONS = ("weight", "sample")
__all__ = ["NAME", "OUTCOMES", "RESAMPLING", "SELECTIONS", "SMCConfig", "run"]

register_counter("particles", "particles a particle search carried (per prompt group)")
register_counter("resamples", "resampling events (per prompt group)")


@dataclasses.dataclass(frozen=True)
class SMCConfig(SamplingConfig):
    """Configuration of SMC for language models.

    Args:
        n: particles :math:`N` (>= 1).
        step_tokens: the longest step, in tokens (default 1: the potentials and the ESS check
            apply at every token).
        stop: step delimiter(s) that also end a step; ``()`` ends steps by length or EOS only.
        end: strings that finish a particle where a step writes one (e.g. ``(".", "!", "?")``
            for one sentence); ``()``: EOS and ``max_new_tokens`` only.
        max_steps: the most steps (None: until every particle finished; ``max_new_tokens``
            bounds that).
        mask: the token-level potential :math:`\\delta`: a logits hook ``fn(states, logits) ->
            logits`` (``states[r]`` a row's parent and step tokens so far, ``logits`` [R, V]; banned
            tokens returned as ``-inf``, finite changes are log-potentials), or an object with
            ``logits_hook(tokenizer)`` building one (``ponder.verifiers.Lipogram``); None: none.
        guide: a proposal-only hook of the same form (or an object with ``guide(tokenizer)``,
            ``ponder.verifiers.Keyword``): its changes :math:`\\gamma` to the (masked) logits
            shape what is sampled but not the target, entering the weight only through
            :math:`\\log p - \\log q` (e.g. raising a required word's tokens, which the process
            verifier then rewards). It must not ban a token the mask allows.
        lam: :math:`\\lambda >= 0`, the tilt of process scores and of ``outcome="exp"`` factors.
        outcome: how an outcome verifier's score :math:`r` weighs a finished particle: "exp"
            (:math:`e^{\\lambda r}`) or "log" (:math:`r` itself, which must be >= 0; 0 is a hard
            constraint).
        final: an outcome verifier applied to every final particle beside ``verifier`` (e.g. a
            1/0 check of the constraint on the decoded text), or None.
        resample: "ess" (when ESS/N < ``ess_threshold``), "every" (at every resampling point) or
            "never" (importance sampling).
        ess_threshold: in [0, 1].
        every: steps between resampling points (where the process verifier is called too), >= 1.
        scheme: "systematic", "stratified", "multinomial" or "residual".
        select: "weight" (candidates by weight) or "sample" (one drawn by weight, first).
        temperature, top_p, top_k, max_new_tokens, seed: see :class:`SamplingConfig`; the
            temperature must be > 0 (importance weights need a stochastic proposal). Top-k/p
            truncation restricts the target to what the proposal can reach.
        power: :math:`\\tau > 0` of a tempered target :math:`p(y)^{1/\\tau}` in place of
            :math:`p(y)` (sequence-level: :math:`\\tau < 1` favours whole texts the model finds
            likely, the target local sampling at ``temperature = tau`` only approximates
            token by token). Default 1: the model itself. Set ``temperature`` to the same value
            for a proposal close to it.
    """

    n: int = 8
    step_tokens: int = 1
    stop: str | tuple[str, ...] = ()
    end: str | tuple[str, ...] = ()
    max_steps: int | None = None
    mask: Any = None
    guide: Any = None
    lam: float = 10.0
    outcome: str = "exp"
    final: Any = None
    resample: str = "ess"
    ess_threshold: float = 0.5
    every: int = 1
    scheme: str = "systematic"
    select: str = "weight"
    max_new_tokens: int = 64
    power: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        check_int(owner, "n", self.n)
        check_int(owner, "step_tokens", self.step_tokens)
        object.__setattr__(self, "stop", stop_strings(owner, self.stop))
        object.__setattr__(self, "end", stop_strings(owner, self.end))
        check_int(owner, "max_steps", self.max_steps, optional=True)
        if self.mask is not None and not (callable(self.mask) or callable(getattr(self.mask, "logits_hook", None))):
            raise ConfigError(f"{owner}.mask must be a logits hook fn(states, logits) -> logits, an object with "
                              f"logits_hook(tokenizer), or None; got {self.mask!r}")
        if self.guide is not None and not (callable(self.guide) or callable(getattr(self.guide, "guide", None))):
            raise ConfigError(f"{owner}.guide must be a logits hook fn(states, logits) -> logits, an object with "
                              f"guide(tokenizer), or None; got {self.guide!r}")
        check_real(owner, "lam", self.lam, low=0.0)
        check_option(owner, "outcome", self.outcome, OUTCOMES)
        check_option(owner, "resample", self.resample, RESAMPLING)
        check_real(owner, "ess_threshold", self.ess_threshold, low=0.0, high=1.0)
        check_int(owner, "every", self.every)
        check_option(owner, "scheme", self.scheme, resampling.SCHEMES)
        check_option(owner, "select", self.select, SELECTIONS)
        check_real(owner, "temperature", self.temperature, low=0.0, low_open=True)
        check_real(owner, "power", self.power, low=0.0, low_open=True)


def run(
    generator: Any,
    verifier: Any,
    prompt: str,
    *,
    budget: Budget | None = None,
    config: SMCConfig | None = None,
    progress: Callable[[Ledger, Budget | None], None] | None = None,
    cancel: Any = None,
) -> SearchResult:
    """SMC over a language model's continuations of ``prompt``.

    Args:
        generator: a text generator (``root``, ``expand`` with ``logits_hook``; a ``tokenizer``
            when ``mask`` builds its hook from one), e.g. :class:`ponder.models.LM`.
        verifier: a process verifier (the twist :math:`e^{\\lambda s}`), an outcome verifier
            (a final factor), or None (the mask alone steers); ``ponder.search`` also takes a
            registered name or a function ``fn(prompt, text) -> float`` (wrapped as a process
            verifier).
        prompt: the prompt.
        budget: caps on what the search may spend; a search cut short returns its particles
            as they stand, with their final weights.
        config: an :class:`SMCConfig`.
        progress: called as ``progress(ledger, budget)`` after every step.
        cancel: an event (``is_set()``) that ends the search at its next step.

    Returns:
        A :class:`SearchResult` (module docstring); ``stopped`` is "done", a budget cap's name
        or "infeasible" (every particle has weight 0: no candidate, ``info["log_z"] = -inf``).

    Raises:
        VerifierError: a verifier or the mask failed (raised, or NaN/inf for some particle,
            named with its position); ``err.partial`` holds the particles so far.
        ConfigError: a bad option.
    """
    config = config or SMCConfig()
    verifier = require_verifier(verifier, algorithm="smc", required=False)
    final = require_verifier(config.final, algorithm="smc (final)") if config.final is not None else None
    outcomes = [v for v in (verifier, final) if v is not None and v.kind == "outcome"]
    process = verifier if verifier is not None and verifier.kind == "process" else None
    trace = Trace(NAME, config, budget, progress, cancel)
    swarm = _Swarm(config, np.random.default_rng(config.seed))
    with trace.running(lambda: swarm.ranked(final=False)):
        hook = _TokenPotential.of(config.mask, config.guide, generator)
        root = generator.root(prompt)
        trace.add([root])
        swarm.start(root)
        charge(particles=config.n)
        stopped, step = "done", 0
        while swarm.open().size and (config.max_steps is None or step < config.max_steps):
            step += 1
            swarm.steps = step
            children = swarm.extend(generator, trace, hook, step)
            due = step % config.every == 0
            swarm.potential(process, children if due else [i for i in children if swarm.ended[i]], config.lam)
            swarm.outcome(outcomes, [i for i in children if swarm.ended[i]], config)
            if not np.isfinite(swarm.logw).any():
                stopped = "infeasible"
                break
            if due:
                swarm.maybe_resample(step)
            cap = trace.step_done()
            if cap is not None and swarm.open().size:
                stopped = cap
                break
        if stopped != "infeasible":
            rest = [i for i in range(config.n) if not swarm.ended[i] and np.isfinite(swarm.logw[i])]
            swarm.potential(process, rest, config.lam)  # the final text's score, where the last step was not due
            swarm.outcome(outcomes, rest, config)
            if not np.isfinite(swarm.logw).any():
                stopped = "infeasible"
    candidates, scores, info = swarm.ranked(final=True)
    if stopped == "infeasible":
        return trace.result([], [], stopped, info)
    return trace.result(candidates, scores, stopped, info)


class _Swarm:
    """The N particles (nodes, copies sharing a node), their log weights and running statistics."""

    def __init__(self, config: SMCConfig, rng: np.random.Generator):
        self.config, self.rng = config, rng
        self.particles: list[Node] = []
        self.logw = np.zeros(config.n)       # [N] log weight since the last resampling
        self.s_prev = np.zeros(config.n)     # [N] the last process score s_{s-1} (0 before the first)
        self.outcome_done = np.zeros(config.n, dtype=bool)  # [N] the outcome factor was applied
        self.ended = np.zeros(config.n, dtype=bool)  # [N] finished: EOS, max_new_tokens, or an end string
        self.log_z = 0.0
        self.ess: list[tuple[int, float]] = []
        self.resampled_at: list[int] = []
        self.calls = 0
        self.steps = 0

    def start(self, root: Node) -> None:
        self.particles = [root] * self.config.n

    def open(self) -> np.ndarray:
        """Positions of the particles still extended: not finished, weight > 0.       # [N'] int"""
        return np.flatnonzero(~self.ended & (self.logw > -math.inf))

    def extend(self, generator, trace: Trace, hook: "_TokenPotential | None", step: int) -> list[int]:
        """One step of every open particle in one ``expand``; returns the positions extended."""
        live = self.open().tolist()
        parents: list[Node] = []
        copies: dict[int, int] = {}
        for i in live:
            node = self.particles[i]
            if id(node) not in copies:
                parents.append(node)
                copies[id(node)] = 0
            copies[id(node)] += 1
        if hook is not None:
            hook.begin({id(self.particles[i]): i for i in reversed(live)})
        tokens = trace.step_tokens(len(live), self.config.step_tokens)
        stop = tuple(dict.fromkeys(self.config.stop + self.config.end))
        kids = generator.expand(parents, [copies[id(p)] for p in parents], step=Step(max_tokens=tokens, stop=stop),
                                logits_hook=hook, **self.config.sampling(self.calls))
        self.calls += 1
        pool = {id(p): list(c) for p, c in zip(parents, kids)}
        for i in live:
            child = pool[id(self.particles[i])].pop()
            trace.add([child])
            correction = child.step_logprob / self.config.power - child.step_proposal_logprob  # log p^(1/tau) - log q of the step
            if hook is not None:
                correction += hook.delta_of(child)  # + delta(y): 0 for a mask, -inf for a dead row
            self.particles[i] = child
            self.logw[i] += correction
            self.ended[i] = child.finished or any(e in child.step_text for e in self.config.end)
        return live

    def potential(self, process, positions: Sequence[int], lam: float) -> None:
        """The twist :math:`\\lambda (s_s - s_{s-1})` of the process verifier, at ``positions``."""
        positions = [i for i in positions if self.logw[i] > -math.inf]
        if process is None or not positions:
            return
        s = _scores(process, [self.particles[i] for i in positions], positions, self.config.n)  # [P]
        idx = np.asarray(positions)
        self.logw[idx] += lam * (s - self.s_prev[idx])
        self.s_prev[idx] = s

    def outcome(self, verifiers, positions: Sequence[int], config: SMCConfig) -> None:
        """The outcome factor :math:`\\log G` of every particle at ``positions`` not yet given it."""
        positions = [i for i in positions if not self.outcome_done[i] and self.logw[i] > -math.inf]
        if not positions:
            return
        idx = np.asarray(positions)
        nodes = [self.particles[i] for i in positions]
        for v in verifiers:
            r = _scores(v, nodes, positions, config.n)  # [P]
            if config.outcome == "exp":
                self.logw[idx] += config.lam * r
            else:
                bad = np.flatnonzero(r < 0)
                if bad.size:
                    j = int(bad[0])
                    raise VerifierError(v.name, f"returned {r[j]}, but outcome='log' needs scores >= 0 (a probability or a 1/0 check)",
                                        index=positions[j], text=nodes[j].text, batch_size=config.n, node_id=nodes[j].index)
                with np.errstate(divide="ignore"):
                    self.logw[idx] += np.log(r)
        self.outcome_done[idx] = True

    def maybe_resample(self, step: int) -> None:
        W, log_mean = resampling.log_normalise(self.logw)
        ess = resampling.ess(W)
        self.ess.append((step, ess))
        config = self.config
        if config.resample == "never" or (config.resample == "ess" and ess >= config.ess_threshold * config.n):
            return
        ancestors = resampling.resample_weights(W, config.scheme, rng=self.rng)  # [N]
        self.log_z += log_mean
        self.particles = [self.particles[a] for a in ancestors]
        self.s_prev = self.s_prev[ancestors]
        self.outcome_done = self.outcome_done[ancestors]
        self.ended = self.ended[ancestors]
        self.logw = np.zeros(config.n)
        self.resampled_at.append(step)
        charge(resamples=1)

    def ranked(self, *, final: bool) -> tuple[list[Node], list[float], dict]:
        """Distinct final texts ranked (their weights summed), their normalised weights, the facts."""
        feasible = bool(np.isfinite(self.logw).any())
        if feasible:
            W, log_mean = resampling.log_normalise(self.logw)
        else:
            W, log_mean = np.zeros(len(self.logw)), -math.inf
        log_z = self.log_z + log_mean if final else None
        info = {"log_z": log_z, "ess": self.ess, "resamples": len(self.resampled_at), "resampled_at": self.resampled_at,
                "log_weights": self.logw.tolist(), "steps": self.steps, "dead": int((self.logw == -math.inf).sum())}
        merged: dict[tuple, list] = {}
        for node, w in zip(self.particles, W):
            if node.depth == 0:
                continue
            entry = merged.setdefault(node.tokens, [node, 0.0])
            entry[1] += float(w)
        entries = [e for e in merged.values() if e[1] > 0 or not feasible]
        entries.sort(key=lambda e: -e[1])
        if final and self.config.select == "sample" and feasible and entries:
            pick = int(resampling.resample_weights(np.array([e[1] for e in entries]) / sum(e[1] for e in entries), "multinomial", M=1, rng=self.rng)[0])
            entries.insert(0, entries.pop(pick))
        if final and not feasible:
            entries = []
        info["weights"] = [e[1] for e in entries]
        return [e[0] for e in entries], [e[1] for e in entries], info


def _scores(verifier, nodes: Sequence[Node], positions: Sequence[int], n: int) -> np.ndarray:
    """``score_states`` of the particles at ``positions``; a failure names the particle's position."""
    try:
        return score_states(verifier, nodes)  # [P]
    except VerifierError as exc:
        if exc.index is not None and 0 <= exc.index < len(positions):
            exc.index, exc.batch_size = int(positions[exc.index]), n
        raise


class _TokenPotential:
    """The logits hook the generator calls, around the user's token potential and guide.

    The mask's adjusted logits :math:`z + \\delta` define the target; the guide's further
    changes :math:`\\gamma` only shape the proposal (sampling from :math:`z + \\delta + \\gamma`),
    so they enter the weight only through :math:`\\log p - \\log q`. It checks what both return
    (a NaN or +inf is a VerifierError naming it and the particle), keeps :math:`\\delta_t(y)` of
    rows whose potential is not a pure mask (a mask's is 0 on every token it allows), and marks
    rows whose potential bans every token as dead (they are sampled from the model instead, so
    decoding goes on, and get weight 0). Keys are (parent, step tokens so far): the potential
    must be a function of the row's state.
    """

    def __init__(self, mask: Callable | None, guide: Callable | None, names: tuple[str | None, str | None]):
        self.mask, self.guide = mask, guide
        self.mask_name, self.guide_name = names
        self.delta: dict[tuple, np.ndarray] = {}  # (id(parent), step tokens) -> delta [V]
        self.dead: set[tuple] = set()
        self.positions: dict[int, int] = {}  # id(parent) -> a particle position (for messages)

    @classmethod
    def of(cls, mask: Any, guide: Any, generator: Any) -> "_TokenPotential | None":
        if mask is None and guide is None:
            return None
        hooks, names = [], []
        for what, builder, hook in (("mask", "logits_hook", mask), ("guide", "guide", guide)):
            name = None if hook is None else str(getattr(hook, "name", None) or getattr(hook, "__name__", None) or type(hook).__name__)
            if callable(getattr(hook, builder, None)):
                tokenizer = getattr(generator, "tokenizer", None)
                if tokenizer is None:
                    raise ConfigError(f"smc {what} {name!r} builds its hook from a tokenizer, but the generator {generator!r} has none")
                hook = getattr(hook, builder)(tokenizer)
            hooks.append(hook)
            names.append(name)
        return cls(hooks[0], hooks[1], tuple(names))

    def begin(self, positions: dict[int, int]) -> None:
        self.delta.clear()
        self.dead.clear()
        self.positions = positions

    def _call(self, fn: Callable, name: str, states, logits):
        try:
            adjusted = fn(states, logits)
        except VerifierError:
            raise
        except Exception as exc:  # noqa: BLE001 - the one failure path: a VerifierError naming the potential
            raise VerifierError(name, f"raised {type(exc).__name__}: {exc}", batch_size=len(states)) from exc
        if tuple(adjusted.shape) != tuple(logits.shape):
            raise VerifierError(name, f"returned logits of shape {tuple(adjusted.shape)}, expected {tuple(logits.shape)}",
                                batch_size=len(states))
        a = np.asarray(adjusted, dtype=np.float32)      # [R, V]
        bad = np.isnan(a) | (a == np.inf)
        if bad.any():
            r, v = (int(x) for x in np.argwhere(bad)[0])
            parent = states[r].parent
            raise VerifierError(name, f"returned {a[r, v]} at token {v}", index=self.positions.get(id(parent)),
                                text=parent.text, node_id=parent.index)
        return adjusted, a

    def __call__(self, states, logits):
        target = logits
        if self.mask is not None:
            target, a = self._call(self.mask, self.mask_name, states, logits)
            z = np.asarray(logits, dtype=np.float32)     # [R, V]
            finite = np.isfinite(a)                      # [R, V]
            dead = ~finite.any(axis=1)                   # [R]
            delta = np.where(finite, a - z, 0.0)         # [R, V]
            soft = (delta != 0).any(axis=1)              # [R]: not a pure mask
            for r in np.flatnonzero(soft | dead):
                key = (id(states[r].parent), tuple(states[r].step_tokens))
                if dead[r]:
                    self.dead.add(key)
                else:
                    self.delta[key] = delta[r]
            if dead.any():
                target = target.clone()
                for r in np.flatnonzero(dead):
                    target[int(r)] = logits[int(r)]
        if self.guide is None:
            return target
        proposal, g = self._call(self.guide, self.guide_name, states, target)
        lost = np.isfinite(np.asarray(target, dtype=np.float32)) & ~np.isfinite(g)
        if lost.any():
            r, v = (int(x) for x in np.argwhere(lost)[0])
            raise VerifierError(self.guide_name, f"banned token {v}, which the target allows: a guide only reweights the "
                                "proposal (finite changes); bans belong in the mask", index=self.positions.get(id(states[r].parent)))
        return proposal

    def delta_of(self, child: Node) -> float:
        """:math:`\\sum_t \\delta_t(y_t)` over the child's step (-inf when a row of it was dead)."""
        total, parent = 0.0, id(child.parent)
        for j, token in enumerate(child.step_tokens):
            key = (parent, child.step_tokens[:j])
            if key in self.dead:
                return -math.inf
            row = self.delta.get(key)
            if row is not None:
                total += float(row[token])
        return total
