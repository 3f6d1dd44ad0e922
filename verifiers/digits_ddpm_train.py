r"""Train the digits DDPM of :mod:`ponder.models.digits` and write ``weights/digits-ddpm/``.

``python -m ponder.verifiers.digits_ddpm_train`` (about 4 minutes on two CPU cores; see ``--help``).

Training: all 1797 digits of :func:`ponder.data.digits` in ``[-1, 1]`` (no labels, no
augmentation), the epsilon-prediction loss

.. math:: L(\theta) = E_{x_0, t, \epsilon}\,\lVert \epsilon_\theta(\sqrt{\bar\alpha_t}\,x_0
          + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t) - \epsilon \rVert^2,
          \qquad t \sim U\{0, \dots, 999\},

against the ``DDPMScheduler`` of :data:`~ponder.models.digits.SCHEDULER_CONFIG` (``add_noise``
makes :math:`x_t`), AdamW with a linear warm-up and a cosine decay of the learning rate, and an
exponential moving average of the weights (decay ``min(ema, (1 + n) / (10 + n))`` after step
``n``), which is what is saved. Seeded: a rerun on the same machine and versions repeats the run.

Written: ``unet/`` and ``scheduler/`` (``save_pretrained``, safetensors), ``model_index.json``
(so ``DDPMPipeline.from_pretrained`` reads the folder too) and ``report.json``: training time,
steps, losses, seed, versions, and sample quality judged by the *judge* classifier of
:mod:`ponder.verifiers.digits` (trained on a split the reward never saw; run
``python -m ponder.verifiers.digits_train`` first): the class histogram and the mean max
probability of 500 samples drawn in 50 DDPM steps, next to the judge's accuracy and mean max
probability on real held-out digits; the distance from each sample to its nearest training
digit next to the same for real held-out digits (memorisation would show as much smaller
distances); and both classifiers' accuracy on the DDPM's own :math:`\hat x_0` predictions of the
reward's held-out digits at a few timesteps (what Feynman-Kac steering scores).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import ponder.data as data
from ponder.models import digits as m

X0_TIMESTEPS = (100, 300, 500, 700, 900)


def _judge_samples(classifier, images: torch.Tensor) -> dict:
    probs = classifier.probs(images)  # [n, 10]
    pred = probs.argmax(axis=1)
    return {"n": len(images), "class_histogram": np.bincount(pred, minlength=10).tolist(),
            "mean_max_probability": round(float(probs.max(axis=1).mean()), 4),
            "share_max_probability_above_0.9": round(float((probs.max(axis=1) > 0.9).mean()), 4)}


def _judge_real(classifier, images: torch.Tensor, labels: torch.Tensor) -> dict:
    probs = classifier.probs(images)
    return {"n": len(images), "accuracy": round(float((probs.argmax(axis=1) == labels.numpy()).mean()), 4),
            "mean_max_probability": round(float(probs.max(axis=1).mean()), 4)}


def _nearest(a: torch.Tensor, b: torch.Tensor, *, exclude_self: bool = False) -> float:
    """The median L2 distance (pixels in [-1, 1]) from each image of ``a`` to its nearest in ``b``."""
    d = torch.cdist(a.flatten(1), b.flatten(1))  # [len(a), len(b)]
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    return round(float(d.min(dim=1).values.median()), 4)


@torch.inference_mode()
def x0_predictions(unet, scheduler, x0: torch.Tensor, t: int, g: torch.Generator) -> torch.Tensor:
    r""":math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)) / \sqrt{\bar\alpha_t}`, clipped.  # [n, 1, 8, 8]"""
    ab = scheduler.alphas_cumprod[t]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(x0.shape, generator=g)
    eps = unet(xt, torch.full((len(x0),), t)).sample
    return ((xt - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m ponder.verifiers.digits_ddpm_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=m.WEIGHTS, help="the weights folder (default: the package's weights/digits-ddpm/)")
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--ema", type=float, default=0.999, help="the EMA decay (0: save the trained weights themselves)")
    parser.add_argument("--schedule", default=m.SCHEDULER_CONFIG["beta_schedule"], choices=["squaredcos_cap_v2", "linear", "scaled_linear"],
                        help=f"the noise schedule (default {m.SCHEDULER_CONFIG['beta_schedule']})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=500, help="samples judged for the report")
    parser.add_argument("--sample-steps", type=int, default=50, help="DDPM steps per sample in the report")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from diffusers import DDPMPipeline, __version__ as diffusers_version  # noqa: PLC0415

    from ponder.verifiers.digits import DigitClass  # noqa: PLC0415

    judge, reward = DigitClass(classifier="judge"), DigitClass(classifier="reward")
    judge.meta, reward.meta  # noqa: B018 - fail now, not after training, when the classifiers are missing

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    images, labels = (torch.from_numpy(a) for a in data.digits())
    splits = data.digits_splits(labels.numpy())
    train = images[splits["ddpm"]]  # [N, 1, 8, 8]: all images
    unet, scheduler = m.build_unet(), m.build_scheduler(beta_schedule=args.schedule)
    ema = m.build_unet()
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return (step + 1) / args.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - args.warmup) / max(1, args.steps - args.warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    T = scheduler.config.num_train_timesteps
    losses, running = [], None
    t_start = time.perf_counter()
    unet.train()
    bar = tqdm(range(args.steps), desc="digits-ddpm", unit="step")
    for step in bar:
        x0 = train[torch.randint(0, len(train), (args.batch,), generator=g)]  # [b, 1, 8, 8]
        eps = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, T, (args.batch,), generator=g)
        loss = F.mse_loss(unet(scheduler.add_noise(x0, eps, t), t).sample, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), unet.parameters()):
                p_ema.lerp_(p, 1 - decay)
        running = float(loss) if running is None else 0.98 * running + 0.02 * float(loss)
        losses.append(float(loss))
        if step % 50 == 0 or step == args.steps - 1:
            bar.set_postfix(loss=f"{running:.4f}")
    train_seconds = time.perf_counter() - t_start
    if args.ema > 0:
        for b_ema, b in zip(ema.buffers(), unet.buffers()):
            b_ema.copy_(b)
        final = ema
    else:
        final = unet
    final.eval()

    args.out.mkdir(parents=True, exist_ok=True)
    DDPMPipeline(unet=final, scheduler=scheduler).save_pretrained(args.out, safe_serialization=True)
    pipe = m.load_pipeline(weights=args.out)  # judge what was written, read back as users will

    t_eval = time.perf_counter()
    samples = m.sample(pipe.unet, pipe.scheduler, args.samples, steps=args.sample_steps, seed=args.seed + 1)
    sample_seconds = time.perf_counter() - t_eval
    held = {name: (images[splits[name]], labels[splits[name]]) for name in ("judge_heldout", "reward_heldout")}
    report = {
        "command": "python -m ponder.verifiers.digits_ddpm_train " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "trained on all 1797 digits (ponder.data.digits_splits()['ddpm']); samples judged by the judge classifier "
                "(ponder.verifiers.digits, trained on the judge split, disjoint from the reward's)",
        "seed": args.seed,
        "versions": {"torch": torch.__version__, "diffusers": diffusers_version, "python": platform.python_version()},
        "threads": args.threads,
        "unet": {"parameters": sum(p.numel() for p in final.parameters()),
                 "file_bytes": (args.out / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size, "config": m.UNET_CONFIG},
        "scheduler": dict(m.SCHEDULER_CONFIG, beta_schedule=args.schedule),
        "training": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "warmup": args.warmup, "weight_decay": args.weight_decay,
                     "ema": args.ema, "seconds": round(train_seconds, 1),
                     "loss_first_100": round(float(np.mean(losses[:100])), 5),
                     "loss_last_500": round(float(np.mean(losses[-500:])), 5),
                     "loss_by_tenth": [round(float(np.mean(c)), 5) for c in np.array_split(np.array(losses), 10)]},
        "samples": {"n": args.samples, "ddpm_steps": args.sample_steps, "seconds": round(sample_seconds, 1),
                    "judge": _judge_samples(judge, samples), "reward": _judge_samples(reward, samples)},
        "real_heldout": {"judge_on_judge_heldout": _judge_real(judge, *held["judge_heldout"]),
                         "judge_on_reward_heldout": _judge_real(judge, *held["reward_heldout"])},
        "nearest_training_digit_median_l2": {"samples": _nearest(samples.clamp(-1, 1), train),
                                             "real_digits_excluding_themselves": _nearest(train, train, exclude_self=True)},
    }
    x, y = held["reward_heldout"]
    gx = torch.Generator()
    x0_report = {}
    for t in X0_TIMESTEPS:
        gx.manual_seed(1000 + t)
        pred = x0_predictions(pipe.unet, pipe.scheduler, x, t, gx)
        x0_report[str(t)] = {"alpha_bar": round(float(pipe.scheduler.alphas_cumprod[t]), 4),
                             "reward": _judge_real(reward, pred, y), "judge": _judge_real(judge, pred, y)}
    report["x0_predictions_of_reward_heldout"] = x0_report
    report["seconds_total"] = round(time.perf_counter() - t_start, 1)
    with open(args.out / "report.json", "w") as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")
    s = report["samples"]["judge"]
    print(f"trained {args.steps} steps in {train_seconds:.0f} s (loss last 500: {report['training']['loss_last_500']}); "
          f"judge on {args.samples} samples: classes {s['class_histogram']}, mean max p {s['mean_max_probability']} "
          f"(real held-out: accuracy {report['real_heldout']['judge_on_judge_heldout']['accuracy']}, "
          f"mean max p {report['real_heldout']['judge_on_judge_heldout']['mean_max_probability']}); wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
