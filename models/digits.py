r"""A DDPM on the 8x8 digits (:func:`ponder.data.digits`), with weights in the repository.

A diffusers ``UNet2DModel`` (sample size 8, one channel, ``block_out_channels=(32, 64)``, one
ResNet layer per block, no attention: 651k parameters, 2.6 MB in float32) predicts the noise
:math:`\epsilon` of

.. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon,
          \qquad \epsilon \sim \mathcal N(0, I),

trained on all 1797 digits (scaled to ``[-1, 1]``; the DDPM never sees labels) with the loss
:math:`\lVert \epsilon_\theta(x_t, t) - \epsilon \rVert^2`, :math:`t` uniform over the
``DDPMScheduler``'s 1000 training steps. The weights shipped are an exponential moving average of
the trained ones.

The noise schedule is ``squaredcos_cap_v2`` (the cosine schedule of Nichol & Dhariwal 2021). On
an image of 64 pixels the linear schedule's :math:`\bar\alpha_t` falls so fast that half of its
timesteps are nearly pure noise (:math:`\bar\alpha_{500}` = 0.078 linear, 0.49 cosine). Measured
with the same training (``--schedule linear``, 3000 steps, seed 0), judged by the judge classifier
on 500 samples of 50 steps: mean max probability 0.984 cosine vs 0.972 linear (share above 0.9:
95% vs 92%; real held-out digits: 0.992); and, what matters for steering, the model's
:math:`\hat x_0` predictions stay readable longer: the reward classifier reads the class of noised
held-out digits from them at 79% (cosine) vs 27% (linear) at :math:`t = 500`, 96% vs 74% at
:math:`t = 300`, so a reward guides about half the schedule more. ``weights/digits-ddpm/report.json``
has the shipped run's figures.

:func:`load_pipeline` returns a ``DDPMPipeline`` (``unet`` and ``scheduler`` components) read
from ``weights/digits-ddpm/`` (local files only, never a hub). :mod:`ponder.verifiers.digits_ddpm_train`
reproduces the weights (``python -m ponder.verifiers.digits_ddpm_train``, a few minutes on two CPU cores).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["WEIGHTS", "TRAIN_COMMAND", "UNET_CONFIG", "SCHEDULER_CONFIG", "build_unet", "build_scheduler", "load_pipeline", "sample"]

WEIGHTS = Path(__file__).parent / "weights" / "digits-ddpm"
TRAIN_COMMAND = "python -m ponder.verifiers.digits_ddpm_train"

UNET_CONFIG = dict(
    sample_size=8,
    in_channels=1,
    out_channels=1,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon", clip_sample=True)


def build_unet(**overrides):
    """A freshly initialised ``UNet2DModel`` of :data:`UNET_CONFIG` (``overrides`` replace entries)."""
    from diffusers import UNet2DModel  # noqa: PLC0415

    return UNet2DModel(**{**UNET_CONFIG, **overrides})


def build_scheduler(**overrides):
    """A ``DDPMScheduler`` of :data:`SCHEDULER_CONFIG` (``overrides`` replace entries)."""
    from diffusers import DDPMScheduler  # noqa: PLC0415

    return DDPMScheduler(**{**SCHEDULER_CONFIG, **overrides})


def load_pipeline(*, dtype: torch.dtype = torch.float32, weights: str | Path | None = None):
    """The trained digits DDPM as a ``diffusers.DDPMPipeline`` (on the CPU, in eval mode).

    Args:
        dtype: the UNet's parameter type.
        weights: a folder written by :mod:`ponder.verifiers.digits_ddpm_train` (``unet/`` and
            ``scheduler/`` subfolders; default :data:`WEIGHTS`).

    Raises:
        FileNotFoundError: the folder lacks the UNet or the scheduler (the message names the
            training command).
    """
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel  # noqa: PLC0415

    folder = Path(weights) if weights is not None else WEIGHTS
    for part, file in (("unet", "config.json"), ("unet", "diffusion_pytorch_model.safetensors"), ("scheduler", "scheduler_config.json")):
        if not (folder / part / file).is_file():
            raise FileNotFoundError(f"no digits DDPM at {folder} (missing {part}/{file}); train it with `{TRAIN_COMMAND}`")
    unet = UNet2DModel.from_pretrained(folder / "unet", local_files_only=True, use_safetensors=True, dtype=dtype)
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler", local_files_only=True)
    return DDPMPipeline(unet=unet.eval(), scheduler=scheduler)


@torch.inference_mode()
def sample(unet, scheduler, n: int, *, steps: int = 50, seed: int = 0, batch: int = 500) -> torch.Tensor:
    r"""``n`` ancestral DDPM samples in ``steps`` steps, from :math:`x_T \sim \mathcal N(0, I)`.   # [n, 1, 8, 8]

    The plain loop over the components (``scheduler.step`` with a seeded generator), in float32
    on the UNet's device; the scheduler's timesteps are reset to ``steps``. Values are in
    ``[-1, 1]`` up to the last step's noise (none: the DDPM adds no noise at ``t = 0``).
    """
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    size = unet.config.sample_size
    device, dtype = unet.device, unet.dtype
    out = []
    for start in range(0, n, batch):
        x = torch.randn(min(batch, n - start), unet.config.in_channels, size, size, generator=g)  # [b, 1, 8, 8]
        for t in scheduler.timesteps:
            eps = unet(x.to(device, dtype), t).sample.float().cpu()
            x = scheduler.step(eps, t, x, generator=g).prev_sample
        out.append(x)
    return torch.cat(out)
