r"""Diffusers pipelines as a generator: batched particles, one denoising step per expansion.

A :class:`Diffusion` wraps the components of a diffusers pipeline (a denoiser, a stochastic
scheduler, and where the pipeline has them a VAE, a text encoder and its tokenizer) and runs its
own denoising loop over them: no pipeline's ``__call__`` is used or copied. States are
:class:`~ponder.search.protocols.LatentState` particles.

Expansion. ``root(prompt)`` is the prior (no sample yet). ``expand(states, k)`` moves every
state one step along the schedule :math:`t_0 > t_1 > \dots > t_{S-1}`, ``k`` children each:

- from the root: :math:`x_{t_0} \sim \mathcal N(0, \sigma_{\text{init}}^2 I)` (no denoiser call);
- from :math:`x_{t_i}`: one denoiser evaluation :math:`\epsilon_\theta(x_{t_i}, t_i, c)` per
  distinct parent, then the scheduler's stochastic step, which returns the next sample and the
  model's prediction :math:`\hat x_0 = \text{pred\_original\_sample}` (what intermediate rewards
  judge). Children of one parent share its evaluation and differ only in their noise. After the
  last step (``step == steps``) the state is finished and ``x`` is the sample.

Successors are sampled, never named (``actions`` is refused): a child is its parent's
evaluation plus fresh noise, drawn from one stream per row seeded by the call's ``seed``.
:meth:`step` is the same move on plain tensors: ``step(x_t, t) -> (x_prev, x0)``.

Classifier-free guidance, where the pipeline conditions on text and ``guidance_scale > 1``:

.. math:: \tilde\epsilon = \epsilon_\theta(x_t, t, \varnothing)
          + w\,[\epsilon_\theta(x_t, t, c) - \epsilon_\theta(x_t, t, \varnothing)],

one batched call over ``[unconditional; conditional]`` rows (two evaluations per particle).

Supported families (the loop is the same; what differs is the denoiser's conditioning):

================================  ==========================================  ==============
denoiser                          pipelines                                   prompt
================================  ==========================================  ==============
``UNet2DModel``                   DDPMPipeline (pixel), LDMPipeline (latent)  None; a class
                                                                              id if the UNet
                                                                              has class
                                                                              embeddings
``UNet2DConditionModel``          StableDiffusionPipeline (SD 1.x/2.x) and    a text
                                  its latent text-to-image relatives
``DiTTransformer2DModel``,        DiTPipeline (class-conditional latent)      a class id
``Transformer2DModel``
================================  ==========================================  ==============

Tests build tiny random UNet2DModel, UNet2DConditionModel (with VAE and CLIP text encoder) and
DiT pipelines in-process; no larger checkpoint runs on this machine.

Stochastic schedulers only: ``DDPMScheduler``, ``DDIMScheduler`` with ``eta > 0`` and
``EulerAncestralDiscreteScheduler``. A deterministic step (DDIM with eta = 0, Euler, DPM-Solver,
PNDM, ...) is refused: particles resampled into copies would stay identical forever, so
resampling could not explore.

Latents. ``space="latent"`` (any pipeline with a VAE slot) keeps :math:`x` in the VAE's latent
space; :meth:`decode` turns the states' :math:`\hat x_0` (or final samples) into pixels in
batches, only when asked (a reward that needs pixels): a search decodes at reward steps, never
at every step.

Ledger: ``denoiser_evals`` (samples evaluated; 2 per particle under guidance), ``denoiser_calls``
(batched forward calls), ``denoiser_seconds``, ``vae_decodes``, ``vae_seconds``, ``nodes``.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import numpy as np
import torch

from ponder.search import ledger
from ponder.search.config import seed_for
from ponder.search.protocols import ConfigError, LatentState, PonderError, check_choice

STOCHASTIC = ("DDPMScheduler", "DDIMScheduler", "EulerAncestralDiscreteScheduler")
SPACES = ("auto", "pixel", "latent")

for _name, _what in (("denoiser_evals", "samples evaluated by the denoiser (2 per particle with guidance)"),
                     ("denoiser_calls", "batched denoiser forward calls"),
                     ("vae_decodes", "latents decoded to pixels")):
    ledger.register_counter(_name, _what)


class MissingVAE(PonderError, ValueError):
    """Pixels were needed from a latent pipeline that has no VAE."""


def _plain(t) -> float | int:
    """A timestep as a Python number (an int when integral)."""
    value = float(t)
    return int(value) if value.is_integer() else value


def _row_generators(seed: int, n: int) -> list[torch.Generator]:
    """One torch stream per row, so a particle's noise does not depend on its batch."""
    seeds = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)
    return [torch.Generator().manual_seed(int(s) & (2**63 - 1)) for s in seeds]


class Diffusion:
    """A diffusion generator over diffusers components (see the module docstring).

    Args:
        denoiser: ``UNet2DModel``, ``UNet2DConditionModel`` or a DiT transformer.
        scheduler: a stochastic diffusers scheduler (copied; the original is not touched).
        vae: the pipeline's ``AutoencoderKL`` (latent pipelines), or None.
        text_encoder, tokenizer: the pipeline's text encoder and tokenizer (text-conditioned).
        steps: denoising steps from :math:`x_T` to the sample (the scheduler's
            ``num_inference_steps``); a root may ask for another count.
        guidance_scale: classifier-free guidance weight :math:`w` (used when > 1 and the
            pipeline conditions on text).
        negative_prompt: the unconditional text of guidance.
        eta: DDIM's noise scale (required > 0 with a ``DDIMScheduler``; ignored otherwise).
        space: "pixel", "latent" or "auto" (latent when a VAE is given).
        name: a label for results.
        seed: seeds the generator's stream (calls without an explicit seed draw from it).
    """

    def __init__(self, denoiser, scheduler, *, vae=None, text_encoder=None, tokenizer=None, steps: int = 50,
                 guidance_scale: float = 1.0, negative_prompt: str = "", eta: float | None = None,
                 space: str = "auto", name: str = "diffusion", seed: int = 0):
        kind = type(scheduler).__name__
        if kind not in STOCHASTIC:
            raise ConfigError(
                f"{kind} is deterministic (or not supported): resampled copies of a particle would stay identical, so "
                f"steering could not explore. Use a stochastic scheduler: {', '.join(STOCHASTIC)} (DDIM with eta > 0), "
                "e.g. DDPMScheduler.from_config(pipe.scheduler.config)")
        if kind == "DDIMScheduler" and not (eta is not None and eta > 0):
            raise ConfigError(f"DDIMScheduler with eta={eta} is deterministic: pass eta > 0 (eta=1 is DDPM's noise level)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
        if not guidance_scale >= 0:
            raise ConfigError(f"guidance_scale must be >= 0, got {guidance_scale!r}")
        self.denoiser = denoiser.eval()
        self.vae = vae.eval() if vae is not None else None
        self.text_encoder = text_encoder.eval() if text_encoder is not None else None
        self.tokenizer = tokenizer
        self.space = check_choice("space", space, SPACES)
        if self.space == "auto":
            self.space = "latent" if vae is not None else "pixel"
        self.steps = steps
        self.guidance_scale = float(guidance_scale)
        self.negative_prompt = negative_prompt
        self.eta = eta
        self.name = name
        self._scheduler = scheduler
        self._schedules: dict[int, Any] = {}
        self._text: dict[str, torch.Tensor] = {}
        self._rng = np.random.default_rng(seed)
        self.dtype = next(denoiser.parameters()).dtype
        config = denoiser.config
        self.channels = int(config.in_channels)
        size = config.sample_size
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.conditioning = self._conditioning()
        self.stateful = kind == "EulerAncestralDiscreteScheduler"

    @classmethod
    def from_pipeline(cls, pipe, **options) -> "Diffusion":
        """A generator over a diffusers pipeline's components (``pipe.components``).

        Options are :class:`Diffusion`'s keyword arguments; ``space`` defaults to "latent" for a
        pipeline with a VAE slot (even an empty one, so that a reward needing pixels fails
        clearly rather than judging latents).
        """
        parts = dict(pipe.components)
        denoiser = parts.get("unet") or parts.get("transformer")
        if denoiser is None:
            raise ConfigError(f"{type(pipe).__name__} has no 'unet' or 'transformer' component to denoise with")
        if "space" not in options:
            options["space"] = "latent" if "vae" in parts or "vqvae" in parts else "pixel"
        return cls(denoiser, parts["scheduler"], vae=parts.get("vae") or parts.get("vqvae"), text_encoder=parts.get("text_encoder"),
                   tokenizer=parts.get("tokenizer"), name=options.pop("name", type(pipe).__name__), **options)

    def __repr__(self) -> str:
        return (f"Diffusion({self.name!r}, {type(self.denoiser).__name__}, {type(self._scheduler).__name__}, steps={self.steps}, "
                f"space={self.space!r}, conditioning={self.conditioning!r})")

    # ------------------------------------------------------------------ conditioning

    def _conditioning(self) -> str:
        """"none", "class" or "text": what a prompt means to this denoiser."""
        config = self.denoiser.config
        if type(self.denoiser).__name__ == "UNet2DConditionModel":
            if self.text_encoder is None or self.tokenizer is None:
                raise ConfigError("a UNet2DConditionModel needs the pipeline's text_encoder and tokenizer")
            return "text"
        if getattr(config, "num_class_embeds", None) or getattr(config, "num_embeds_ada_norm", None):
            return "class"
        return "none"

    def _check_prompt(self, prompt: Any) -> Any:
        if self.conditioning == "text":
            if not isinstance(prompt, str):
                raise ConfigError(f"{self.name} conditions on text: the prompt must be a string, got {prompt!r}")
        elif self.conditioning == "class":
            n = getattr(self.denoiser.config, "num_class_embeds", None) or self.denoiser.config.num_embeds_ada_norm
            if isinstance(prompt, bool) or not isinstance(prompt, (int, np.integer)) or not 0 <= prompt < n:
                raise ConfigError(f"{self.name} is class-conditional: the prompt must be a class id in [0, {n}), got {prompt!r}")
        return prompt  # unconditional: the denoiser never sees it; rewards still receive it

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Text-encoder hidden states of each text, cached per text.           # [B, L, D]"""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text]
        if missing:
            ids = self.tokenizer(missing, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            hidden = self.text_encoder(ids)[0]
            for t, h in zip(missing, hidden):
                self._text[t] = h
        return torch.stack([self._text[t] for t in texts])

    # ------------------------------------------------------------------ the schedule

    def schedule(self, steps: int | None = None):
        """The scheduler set to ``steps`` inference steps (one private copy per count)."""
        steps = self.steps if steps is None else steps
        if steps not in self._schedules:
            scheduler = copy.deepcopy(self._scheduler)
            scheduler.set_timesteps(steps)
            if len(scheduler.timesteps) != steps:
                raise ConfigError(f"{type(scheduler).__name__} made {len(scheduler.timesteps)} timesteps for steps={steps}")
            self._schedules[steps] = scheduler
        return self._schedules[steps]

    def timesteps(self, steps: int | None = None) -> list[float]:
        """The schedule's timesteps :math:`t_0 > \\dots > t_{S-1}` (integers for DDPM and DDIM)."""
        return [_plain(t) for t in self.schedule(steps).timesteps]

    # ------------------------------------------------------------------ expansion protocol

    def root(self, prompt: Any = None, *, steps: int | None = None) -> LatentState:
        """The prior of ``prompt`` (a text, a class id, or None for an unconditional model)."""
        steps = self.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
        self.schedule(steps)
        ledger.charge(nodes=1)
        return LatentState(prompt=self._check_prompt(prompt), step=-1, steps=steps, latent=self.space == "latent")

    def expand(self, states: Sequence[LatentState], k: int | Sequence[int] = 1, *, actions: Sequence[Sequence[Any]] | None = None,
               seed: int | None = None) -> list[list[LatentState]]:
        """One step along the schedule for every state: ``k`` children each (or ``k[i]`` of
        ``states[i]``); ``out[i][j]`` is the j-th child of ``states[i]``.

        States at different steps are moved in one call each per step position.
        """
        states = list(states)
        if actions is not None:
            raise ConfigError("diffusion successors are sampled, not named: drop actions= (seed= fixes their noise)")
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            if k < 1:
                raise ConfigError(f"k must be >= 1, got {k}")
            counts = np.full(len(states), int(k), dtype=np.int64)
        else:
            counts = np.array(list(k), dtype=np.int64)
            if len(counts) != len(states) or (counts < 0).any():
                raise ConfigError(f"k must be an integer >= 1 or {len(states)} counts >= 0, got {k!r}")
        for state in states:
            if not isinstance(state, LatentState):
                raise ConfigError(f"Diffusion expands LatentState particles, got {state!r}")
            if state.finished:
                raise ConfigError(f"cannot expand a finished particle (the sample is complete): {state!r}")
        if seed is None:
            seed = int(self._rng.integers(2**62))
        out: list[list[LatentState]] = [[] for _ in states]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, state in enumerate(states):
            if counts[i]:
                groups.setdefault((state.steps, state.step), []).append(i)
        for g, ((steps, step), members) in enumerate(sorted(groups.items())):
            parents = [states[i] for i in members]
            n = counts[members]
            kids = self._prior(parents, n, seed + g) if step == -1 else self._denoise(parents, n, seed + g)
            ledger.charge(nodes=len(kids))
            ends = np.cumsum(n)
            for i, c, end in zip(members, n.tolist(), ends.tolist()):
                out[i] = kids[end - c : end]
        return out

    def _shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def _prior(self, roots: list[LatentState], counts: np.ndarray, seed: int) -> list[LatentState]:
        """x_{t_0} for every child of every root (no denoiser call)."""
        total = int(counts.sum())
        schedule = self.schedule(roots[0].steps)
        gens = _row_generators(seed, total)
        noise = torch.cat([torch.randn((1, *self._shape()), generator=g, dtype=self.dtype) for g in gens])
        x = noise * schedule.init_noise_sigma  # [N, C, H, W]
        t0 = _plain(schedule.timesteps[0])
        parents = np.repeat(np.arange(len(roots)), counts)
        return [LatentState(prompt=roots[p].prompt, parent=roots[p], depth=1, x=x[r], t=t0, step=0, steps=roots[p].steps,
                            latent=roots[p].latent) for r, p in enumerate(parents.tolist())]

    def _denoise(self, parents: list[LatentState], counts: np.ndarray, seed: int) -> list[LatentState]:
        """One scheduler step for every child of every parent (one evaluation per parent)."""
        steps, i = parents[0].steps, parents[0].step
        schedule = self.schedule(steps)
        t = schedule.timesteps[i]
        x = torch.stack([p.x for p in parents])  # [P, C, H, W]
        eps = self._eps(x, t, i, [p.prompt for p in parents], schedule)  # [P, C, H, W]
        rows = torch.from_numpy(np.repeat(np.arange(len(parents)), counts))
        x_prev, x0 = self._scheduler_step(schedule, i, eps[rows], x[rows], seed)
        finished = i + 1 == steps
        t_next = 0 if finished else _plain(schedule.timesteps[i + 1])
        return [LatentState(prompt=parents[p].prompt, parent=parents[p], depth=parents[p].depth + 1, x=x_prev[r], x0=x0[r], t=t_next,
                            step=i + 1, steps=steps, finished=finished, latent=parents[p].latent)
                for r, p in enumerate(rows.tolist())]

    def _eps(self, x: torch.Tensor, t: torch.Tensor, i: int, prompts: list, schedule) -> torch.Tensor:
        """The denoiser's output at (x, t), guided where the pipeline guides.     # [P, C, H, W]"""
        if self.stateful:
            schedule._step_index = i
        started = time.perf_counter()
        with torch.inference_mode():
            inputs = schedule.scale_model_input(x, t)
            guided = self.conditioning == "text" and self.guidance_scale > 1
            if guided:
                inputs = torch.cat([inputs, inputs])
            timestep = t.reshape(1).expand(len(inputs))
            if self.conditioning == "text":
                texts = ([self.negative_prompt] * len(prompts) if guided else []) + list(prompts)
                out = self.denoiser(inputs, timestep, encoder_hidden_states=self._embed(texts)).sample
            elif self.conditioning == "class":
                out = self.denoiser(inputs, timestep, class_labels=torch.tensor([int(p) for p in prompts])).sample
            else:
                out = self.denoiser(inputs, timestep).sample
            if out.shape[1] == 2 * self.channels:  # learned variance (DiT): keep the noise prediction
                out = out[:, : self.channels]
            if guided:
                uncond, cond = out.chunk(2)
                out = uncond + self.guidance_scale * (cond - uncond)
        ledger.charge(denoiser_evals=len(inputs), denoiser_calls=1, denoiser_seconds=time.perf_counter() - started)
        return out

    def _scheduler_step(self, schedule, i: int, eps: torch.Tensor, x: torch.Tensor, seed: int):
        """The scheduler's step from schedule position ``i``: (x_prev, x0), both [N, C, H, W].

        Each row's noise comes from its own stream (diffusers' ``randn_tensor`` draws row r from
        ``generator[r]`` when given a list)."""
        t = schedule.timesteps[i]
        gens = _row_generators(seed, len(x))
        extra = {"eta": self.eta} if type(schedule).__name__ == "DDIMScheduler" else {}
        with torch.inference_mode():
            if self.stateful:
                schedule._step_index = i
            out = schedule.step(eps, t, x, generator=gens if len(gens) > 1 else gens[0], **extra)
        return out.prev_sample, out.pred_original_sample

    def step(self, x_t: torch.Tensor, t: int, *, prompts: Sequence[Any] | None = None, steps: int | None = None,
             seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One denoising step on tensors: ``(x_prev, x0)`` from ``x_t`` at timestep ``t``.

        Args:
            x_t: samples at timestep ``t`` of the ``steps``-step schedule.       # [B, C, H, W]
            t: a timestep of :meth:`timesteps`.
            prompts: one conditioning per sample (texts or class ids), or None.
            steps: the schedule's length (default: the generator's).
            seed: seeds the step's noise (one stream per row).

        Returns:
            ``prev_sample`` and ``pred_original_sample``, as diffusers' schedulers name them.
        """
        schedule = self.schedule(steps)
        ts = self.timesteps(steps)
        if _plain(t) not in ts:
            raise ConfigError(f"timestep {t} is not on the {len(ts)}-step schedule (first {ts[:3]}..., last {ts[-1]})")
        i = ts.index(_plain(t))
        prompts = [None] * len(x_t) if prompts is None else [self._check_prompt(p) for p in prompts]
        if len(prompts) != len(x_t):
            raise ConfigError(f"step got {len(x_t)} samples but {len(prompts)} prompts")
        eps = self._eps(x_t.to(self.dtype), schedule.timesteps[i], i, prompts, schedule)
        seed = int(self._rng.integers(2**62)) if seed is None else seed
        return self._scheduler_step(schedule, i, eps, x_t.to(self.dtype), seed)

    # ------------------------------------------------------------------ pixels

    def decode(self, states: Sequence[LatentState], *, batch: int = 64) -> None:
        """Decode the pixels of every latent state that has none yet, in batches.

        A state's pixels are those of :math:`\\hat x_0` (of ``x`` once finished), in [-1, 1],
        stored in ``state.image``; pixel-space states need nothing.

        Raises:
            MissingVAE: the states are latent and this pipeline has no VAE.
        """
        todo = [s for s in states if s.latent and s.image is None]
        if not todo:
            return
        if self.vae is None:
            raise MissingVAE(f"a reward needs pixels, but {self.name} is a latent pipeline without a VAE: pass vae=... "
                             "(pipe.vae) or use a reward that scores latents")
        scale = float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            z = torch.stack([s.x if s.finished or s.x0 is None else s.x0 for s in chunk]) / scale
            began = time.perf_counter()
            with torch.inference_mode():
                pixels = self.vae.decode(z).sample.clamp(-1, 1)  # [b, 3, H', W']
            ledger.charge(vae_decodes=len(chunk), vae_seconds=time.perf_counter() - began)
            for s, p in zip(chunk, pixels):
                s.image = p

    def sample(self, prompts: Sequence[Any], *, steps: int | None = None, seed: int | None = None) -> list[LatentState]:
        """Plain ancestral sampling: one particle per prompt, no steering (the baseline)."""
        roots = [self.root(p, steps=steps) for p in prompts]
        seed = int(self._rng.integers(2**62)) if seed is None else seed
        states = [kids[0] for kids in self.expand(roots, 1, seed=seed)]
        for s in range(roots[0].steps):
            states = [kids[0] for kids in self.expand(states, 1, seed=seed_for(seed, 1 + s))]
        return states
