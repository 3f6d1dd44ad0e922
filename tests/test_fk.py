"""FK steering: the estimator on an analytic Gaussian diffusion, and real diffusers pipelines
(tiny random pixel, latent text-to-image and DiT ones) steered, batched and charged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ponder
from ponder.search.errors import ConfigError
from ponder.search.fk import FKConfig, best_per_prompt
from ponder.search.ledger import Ledger, charge
from ponder.search.protocols import LatentState
from ponder.search.verify import VerifierError
from ponder.verifiers import verifier


# ------------------------------------------------------------------ an analytic diffusion


class GaussianDiffusion:
    r"""Exact reverse process of a VP diffusion whose data are x0 ~ N(mu, s^2) (1-D).

    Forward: x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) eps. Every marginal and every reverse
    conditional p(x_{i-1} | x_i) is Gaussian and known, as is E[x0 | x_i] (the x0 prediction),
    so a tilt exp(lam x0) has the analytic target N(mu + lam s^2, s^2) and
    Z = exp(lam mu + lam^2 s^2 / 2).
    """

    def __init__(self, mu=0.5, s=0.8, steps=10, seed=0):
        self.mu, self.s, self.steps = mu, s, steps
        self.abar = np.linspace(0.02, 1.0, steps + 1)  # abar[0] at x_T (noisy) ... abar[steps] = 1: x is x0
        self.rng = np.random.default_rng(seed)

    def _m(self, i):
        return math.sqrt(self.abar[i]) * self.mu

    def _v(self, i):
        return self.abar[i] * self.s**2 + 1 - self.abar[i]

    def root(self, prompt=None, *, steps=None):
        return LatentState(prompt=prompt, step=-1, steps=self.steps)

    def expand(self, states, k=1, *, actions=None, seed=None):
        counts = [k] * len(states) if isinstance(k, int) else list(k)
        rng = self.rng if seed is None else np.random.default_rng(seed)
        out = []
        for state, c in zip(states, counts):
            kids = []
            for _ in range(c):
                if state.step == -1:
                    x = rng.normal(self._m(0), math.sqrt(self._v(0)))
                    kids.append(LatentState(prompt=state.prompt, parent=state, x=np.array([x]), step=0, steps=self.steps, t=0))
                    continue
                i, j = state.step, state.step + 1  # from abar[i] to the less noisy abar[j]
                a = self.abar[i] / self.abar[j]  # x_i = sqrt(a) x_j + sqrt(1 - a) e
                vj, vi = self._v(j), self._v(i)
                mean = self._m(j) + math.sqrt(a) * vj / vi * (state.x[0] - self._m(i))
                var = vj - a * vj**2 / vi
                x = rng.normal(mean, math.sqrt(max(var, 1e-12)))
                x0 = self.mu + math.sqrt(self.abar[j]) * self.s**2 / vj * (x - self._m(j))
                done = j == self.steps
                kids.append(LatentState(prompt=state.prompt, parent=state, x=np.array([x]), x0=np.array([x0]),
                                        step=j, steps=self.steps, t=j, finished=done))
            charge(nodes=len(kids), denoiser_evals=len(kids) if state.step >= 0 else 0)
            out.append(kids)
        return out


def linear(prompt, x):
    return float(np.asarray(x).ravel()[0])


LINEAR = verifier(linear, name="linear")


@pytest.mark.parametrize("potential,resample", [("max", "every"), ("difference", "ess"), ("sum", "never"), ("immediate", "every")])
def test_fk_weighted_particles_estimate_the_tilted_gaussian(potential, resample):
    gen = GaussianDiffusion(steps=10)
    lam, mu, s = 1.0, gen.mu, gen.s
    means, z_hats = [], []
    for run in range(40):
        result = ponder.search("fk", gen, LINEAR, None, k=64, lam=lam, potential=potential, resample=resample, every=2,
                               select="weight", seed=1000 * run)
        group = result.info["groups"][0]
        xs = np.array([c.x[0] for c in result.candidates])
        means.append(float(np.dot(group["weights"], xs)))
        z_hats.append(math.exp(group["log_z"]))
    target_mean = mu + lam * s**2  # 1.14
    target_z = math.exp(lam * mu + lam**2 * s**2 / 2)
    se_mean = np.std(means) / math.sqrt(len(means))
    assert abs(np.mean(means) - target_mean) < 4 * se_mean + 0.03
    se_z = np.std(z_hats) / math.sqrt(len(z_hats))
    assert abs(np.mean(z_hats) - target_z) < 4 * se_z + 0.02 * target_z


def test_fk_carries_weights_across_steps_that_do_not_resample():
    """With resampling only at the last potential step, dropping the carried weights would bias
    the estimate towards the untilted mean (the reference code's issue #12)."""
    gen = GaussianDiffusion(steps=10)
    means = []
    for run in range(40):
        result = ponder.search("fk", gen, LINEAR, None, k=64, lam=1.0, potential="immediate", resample="ess",
                               ess_threshold=0.05, every=1, select="weight", seed=1000 * run + 7)
        xs = np.array([c.x[0] for c in result.candidates])
        means.append(float(np.dot(result.info["groups"][0]["weights"], xs)))
    assert abs(np.mean(means) - (gen.mu + gen.s**2)) < 4 * np.std(means) / math.sqrt(40) + 0.03
    assert abs(np.mean(means) - gen.mu) > 0.3  # far from the untilted mean


def test_fk_lambda_zero_keeps_weights_uniform_and_z_one():
    result = ponder.search("fk", GaussianDiffusion(), LINEAR, None, k=16, lam=0.0, select="weight", seed=0)
    group = result.info["groups"][0]
    assert np.allclose(group["weights"], 1 / 16)
    assert group["log_z"] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ real diffusers pipelines


def tiny_unet(**extra):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8, **extra)


def brightness(prompt, image):
    return float(torch.as_tensor(image).mean())


BRIGHT = verifier(brightness, name="brightness")


def test_fk_steers_a_pixel_ddpm_towards_its_reward():
    from diffusers import DDPMScheduler

    from ponder.models.diffusion import Diffusion

    gen = Diffusion(tiny_unet(), DDPMScheduler(num_train_timesteps=100), steps=10)
    steered = ponder.search("fk", gen, BRIGHT, [None] * 4, k=8, lam=30.0, every=2, seed=0)
    plain = ponder.search("fk", gen, BRIGHT, [None] * 4, k=8, lam=0.0, every=2, resample="never", seed=0)
    reward = lambda res: np.mean([np.average(g["rewards"], weights=g["weights"]) for g in res.info["groups"]])
    assert reward(steered) > reward(plain) + 0.05
    assert steered.ledger.count("resamples") == 4 * 5  # 4 groups x potential steps 1, 3, 5, 7, 9


def colour(prompt, image):
    """Red for prompts that say red, blue otherwise: a reward that depends on the prompt."""
    image = torch.as_tensor(image)
    channel = 0 if "red" in prompt else 2
    return float(image[channel].mean() - image.mean())


COLOUR = verifier(colour, name="colour")


def test_fk_steers_several_prompts_of_a_latent_text_to_image_pipeline_in_one_call():
    from ponder.models.diffusion import Diffusion
    from ponder.models.tiny import tiny_text_to_image

    gen = Diffusion.from_pipeline(tiny_text_to_image(), guidance_scale=3.0, steps=6)
    prompts = ["a red square", "a blue circle", "a red circle"]
    result = ponder.search("fk", gen, COLOUR, prompts, k=4, lam=50.0, every=2, resample="never", seed=1)
    groups = result.info["groups"]
    assert [g["prompt"] for g in groups] == prompts
    best = best_per_prompt(result)
    assert [b.prompt for b in best] == prompts and all(b.finished and b.image.shape == (3, 16, 16) for b in best)
    # guidance doubles every evaluation; resample="never" keeps every particle distinct
    assert result.ledger.count("denoiser_evals") == 2 * len(prompts) * 4 * 6
    assert result.ledger.count("denoiser_calls") == 6  # every prompt's particles move in one batched call per step
    # pixels are decoded only where the reward is computed: potential steps 1, 3, 5 and the end
    assert result.ledger.count("vae_decodes") == len(prompts) * 4 * 4
    assert result.ledger.count("verifier_calls") == 4
    assert len(result.candidates) == 12 and all(0 <= w <= 1 for g in groups for w in g["weights"])


def test_fk_resampled_copies_share_their_denoiser_evaluation():
    from diffusers import DDPMScheduler

    from ponder.models.diffusion import Diffusion
    from ponder.models.tiny import tiny_unet

    gen = Diffusion(tiny_unet(), DDPMScheduler(num_train_timesteps=100), steps=6)
    result = ponder.search("fk", gen, BRIGHT, None, k=8, lam=200.0, every=1, end=5, seed=0)
    # a sharp tilt resamples into copies: steps after a resampling evaluate fewer distinct states
    assert result.ledger.count("denoiser_evals") < 8 * 6
    assert result.ledger.count("particles") == 8


def test_fk_steers_a_class_conditional_dit_and_an_euler_ancestral_pipeline():
    from ponder.models.diffusion import Diffusion
    from ponder.models.tiny import tiny_dit, tiny_text_to_image

    model, scheduler = tiny_dit()
    dit = Diffusion(model, scheduler, steps=4)
    result = ponder.search("fk", dit, BRIGHT, [3, 7], k=4, lam=5.0, every=1, seed=0)
    assert [b.prompt for b in best_per_prompt(result)] == [3, 7] and result.best.x.shape == (4, 8, 8)
    euler = Diffusion.from_pipeline(tiny_text_to_image(scheduler="euler_ancestral"), guidance_scale=2.0, steps=4)
    result = ponder.search("fk", euler, COLOUR, ["red"], k=4, lam=5.0, every=1, seed=0)
    assert result.best.finished and np.isfinite(result.score)


def test_a_deterministic_scheduler_is_refused_with_the_reason():
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    from ponder.models.diffusion import Diffusion
    from ponder.models.tiny import tiny_unet

    with pytest.raises(ConfigError, match="deterministic.*identical"):
        Diffusion(tiny_unet(), EulerDiscreteScheduler())
    with pytest.raises(ConfigError, match="eta"):
        Diffusion(tiny_unet(), DDIMScheduler())
    assert Diffusion(tiny_unet(), DDIMScheduler(), eta=1.0, steps=3).sample([None])[0].finished


def test_a_nan_reward_names_the_verifier_and_particle_and_keeps_the_particles():
    from diffusers import DDPMScheduler

    from ponder.models.diffusion import Diffusion
    from ponder.models.tiny import tiny_unet

    calls = {"n": 0}

    def flaky(prompt, image):
        calls["n"] += 1
        return math.nan if calls["n"] == 7 else 0.0

    gen = Diffusion(tiny_unet(), DDPMScheduler(num_train_timesteps=100), steps=6)
    with pytest.raises(VerifierError) as info:
        ponder.search("fk", gen, verifier(flaky, name="flaky"), [None, None], k=4, every=1, seed=0)
    err = info.value
    assert err.verifier == "flaky" and err.index == 6 and "nan" in str(err)
    assert err.partial.stopped == "interrupted" and len(err.partial.candidates) == 8
    assert len(err.partial.info["groups"]) == 2


@pytest.mark.parametrize("field,value,words", [("lam", -1.0, "lam must be a finite number >= 0"),
                                               ("ess_threshold", 1.5, "ess_threshold must be a finite number >= 0 and <= 1"),
                                               ("every", 0, "every must be an integer >= 1"),
                                               ("start", 9, "start and end must lie in \\[1, steps - 1\\] = \\[1, 5\\]"),
                                               ("potential", "mean", "unknown FKConfig.potential")])
def test_fk_options_out_of_range_name_the_field_and_range(field, value, words):
    gen = GaussianDiffusion(steps=6)
    with pytest.raises(ConfigError, match=words):
        ponder.search("fk", gen, LINEAR, None, **{field: value})


def test_a_pixel_reward_on_a_latent_pipeline_without_vae_is_a_clear_error():
    from ponder.models.diffusion import Diffusion, MissingVAE
    from ponder.models.tiny import tiny_text_to_image

    gen = Diffusion.from_pipeline(tiny_text_to_image(vae=False), steps=3)
    with pytest.raises(MissingVAE, match="latent pipeline without a VAE"):
        ponder.search("fk", gen, COLOUR, ["red"], k=2, every=1, seed=0)


def test_diffusion_step_returns_prev_sample_and_x0_prediction():
    from diffusers import DDPMScheduler

    from ponder.models.diffusion import Diffusion
    from ponder.models.tiny import tiny_unet

    scheduler = DDPMScheduler(num_train_timesteps=100)
    gen = Diffusion(tiny_unet(), scheduler, steps=5)
    t = gen.timesteps()[0]
    x = torch.randn(3, 1, 8, 8)
    prev, x0 = gen.step(x, t, seed=0)
    eps = gen.denoiser(x, torch.full((3,), t)).sample
    abar = scheduler.alphas_cumprod[t]
    expected_x0 = ((x - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)  # DDPM clips x0 by default
    assert torch.allclose(x0, expected_x0, atol=1e-5)
    assert prev.shape == x.shape and not torch.allclose(prev, gen.step(x, t, seed=1)[0])
    with pytest.raises(ConfigError, match="not on the 5-step schedule"):
        gen.step(x, t + 1)


def test_the_digits_ddpm_loads_by_name_and_fk_steers_it_to_a_target_class():
    from ponder.models.diffusion import Diffusion
    from ponder.verifiers.digits import DigitClass

    gen = ponder.load("digits-ddpm", steps=10)
    assert isinstance(gen, Diffusion) and gen.space == "pixel" and gen.size == (8, 8)
    result = ponder.search("fk", gen, DigitClass(), [3, 7], k=4, lam=2.0, every=2, seed=0)
    best = best_per_prompt(result)
    assert [b.prompt for b in best] == [3, 7] and all(b.finished and b.x.shape == (1, 8, 8) for b in best)
    assert result.ledger.count("denoiser_evals") <= 2 * 4 * 10
