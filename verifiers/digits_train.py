r"""Train the digit classifiers of :mod:`ponder.verifiers.digits`: the reward and the judge.

``python -m ponder.verifiers.digits_train`` (about a minute on one CPU core) writes
``weights/digits_reward.npz``, ``weights/digits_judge.npz`` and ``weights/digits_report.json``.

Data: :func:`ponder.data.digits` split by :func:`ponder.data.digits_splits`. The reward trains on
``reward_train``, the judge on ``judge_train`` (the other, disjoint half), with different seeds;
each reports its accuracy on its own held-out 15% (never trained on) and on the other
classifier's held-out images.

Augmentation. Both: a random shift of each image by up to one pixel per axis (background fill).
The judge sees nothing else. The reward is meant to score the DDPM's predictions
:math:`\hat x_0(x_t)` during steering, which are blurred towards the mean digit early on, so each
training image is, with the probabilities ``--mix``:

- ``clean``: the (shifted) digit;
- ``wiener``: the linear posterior mean under a Gaussian fit :math:`\mathcal N(\mu, \Sigma)` of
  the reward split's images at a timestep :math:`t` uniform over the DDPM's 1000 training steps
  (the schedule of :data:`ponder.models.digits.SCHEDULER_CONFIG`):

  .. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon, \qquad
            \hat x_0 = \mu + \sqrt{\bar\alpha_t}\,\Sigma\,(\bar\alpha_t \Sigma + (1-\bar\alpha_t) I)^{-1}
                       (x_t - \sqrt{\bar\alpha_t}\,\mu),

  clipped to ``[-1, 1]`` as the DDPM scheduler clips its prediction: the best *linear* denoiser,
  a cheap stand-in for a trained denoiser's prediction (no DDPM needed to train the reward);
- ``blur``: a blend of the digit with its Gaussian blur (sigma 1 px, blend weight uniform in
  [0, 1]) plus Gaussian noise of standard deviation uniform in [0, 0.5], clipped.

Labels stay the digit's own, so on a degraded image the network learns :math:`p(y \mid \text{degraded } x)`,
falling back to the class prior where nothing can be read. The report also gives both networks'
accuracy on ``wiener`` predictions of the held-out images at a few timesteps.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import ponder.data as data
from ponder.verifiers import digits as v

MIX = "clean:0.4,wiener:0.45,blur:0.15"
REPORT_TIMESTEPS = (100, 300, 500, 700, 900)


def shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image moved by (dy, dx) in {-1, 0, 1}^2, uniformly, the uncovered border set to -1.    # [B, 1, 8, 8]"""
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)  # [B, 1, 10, 10]
    offset = torch.randint(0, 9, (len(x),), generator=g)
    out = torch.empty_like(x)
    for k in range(9):
        rows = offset == k
        dy, dx = divmod(k, 3)
        out[rows] = padded[rows, :, dy: dy + 8, dx: dx + 8]
    return out


class Wiener:
    r"""The linear posterior mean :math:`E[x_0 \mid x_t]` under a Gaussian fit of ``images``."""

    def __init__(self, images: torch.Tensor, alphas_cumprod: torch.Tensor):
        flat = images.reshape(len(images), -1).double()  # [N, 64]
        self.mu = flat.mean(0)  # [64]
        cov = torch.cov(flat.T)  # [64, 64]
        self.lam, self.u = torch.linalg.eigh(cov)  # [64], [64, 64]
        self.lam = self.lam.clamp_min(0.0)
        self.alphas_cumprod = alphas_cumprod.double()  # [T]

    def predict(self, x0: torch.Tensor, t: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Noise ``x0`` to ``x_t`` and return the clipped linear prediction of ``x0``.     # [B, 1, 8, 8]"""
        flat = x0.reshape(len(x0), -1).double()  # [B, 64]
        ab = self.alphas_cumprod[t][:, None]  # [B, 1]
        xt = ab.sqrt() * flat + (1 - ab).sqrt() * torch.randn(flat.shape, generator=g, dtype=torch.float64)
        gain = ab.sqrt() * self.lam / (ab * self.lam + (1 - ab))  # [B, 64] per eigen-direction
        z = (xt - ab.sqrt() * self.mu) @ self.u  # [B, 64] in the eigenbasis
        pred = self.mu + (gain * z) @ self.u.T
        return pred.clamp(-1.0, 1.0).float().reshape(x0.shape)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-(r**2) / (2 * sigma**2))
    k = k / k.sum()
    return (k[:, None] * k[None, :])[None, None]  # [1, 1, 5, 5]


BLUR = _gaussian_kernel(1.0)


def blur_noise(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``(1 - a) x + a blur(x) + s n``, ``a ~ U[0, 1]``, ``s ~ U[0, 0.5]``, clipped.          # [B, 1, 8, 8]"""
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), value=-1.0), BLUR)
    a = torch.rand(len(x), 1, 1, 1, generator=g)
    s = 0.5 * torch.rand(len(x), 1, 1, 1, generator=g)
    return ((1 - a) * x + a * blurred + s * torch.randn(x.shape, generator=g)).clamp(-1.0, 1.0)


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        name, _, p = part.partition(":")
        if name not in ("clean", "wiener", "blur"):
            raise ValueError(f"unknown augmentation {name!r} in --mix; valid: clean, wiener, blur")
        mix[name] = float(p)
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("--mix needs a positive probability")
    return {k: p / total for k, p in mix.items()}


def augment(x: torch.Tensor, mix: dict[str, float], wiener: Wiener | None, g: torch.Generator) -> torch.Tensor:
    """One training view of each image: shifted, then clean / wiener / blur by ``mix``.    # [B, 1, 8, 8]"""
    x = shift(x, g)
    if set(mix) == {"clean"}:
        return x
    names = list(mix)
    pick = torch.multinomial(torch.tensor([mix[n] for n in names]), len(x), replacement=True, generator=g)
    out = x.clone()
    for i, name in enumerate(names):
        rows = pick == i
        if name == "clean" or not rows.any():
            continue
        if name == "wiener":
            t = torch.randint(0, len(wiener.alphas_cumprod), (int(rows.sum()),), generator=g)
            out[rows] = wiener.predict(x[rows], t, g)
        else:
            out[rows] = blur_noise(x[rows], g)
    return out


def train(images: torch.Tensor, labels: torch.Tensor, *, mix: dict[str, float], wiener: Wiener | None, seed: int, epochs: int,
          batch: int, lr: float, weight_decay: float, dropout: float, desc: str) -> tuple[v.DigitNet, list[float]]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = v.DigitNet(dropout=dropout)
    steps_per_epoch = math.ceil(len(images) / batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    losses = []
    net.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch"):
        order = torch.randperm(len(images), generator=g)
        total = 0.0
        for start in range(0, len(images), batch):
            rows = order[start: start + batch]
            x = augment(images[rows], mix, wiener, g)
            loss = F.cross_entropy(net(x), labels[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(rows)
        losses.append(total / len(images))
    return net.eval(), losses


@torch.inference_mode()
def evaluate(net: v.DigitNet, images: torch.Tensor, labels: torch.Tensor) -> dict:
    logp = torch.log_softmax(net(images), dim=-1)
    return {"n": len(labels), "accuracy": round(float((logp.argmax(-1) == labels).float().mean()), 4),
            "nll": round(float(-logp[torch.arange(len(labels)), labels].mean()), 4)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m ponder.verifiers.digits_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=v.WEIGHTS, help="folder for the weights and the report (default: the package's weights/)")
    parser.add_argument("--reward-seed", type=int, default=1)
    parser.add_argument("--judge-seed", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--mix", default=MIX, help=f"the reward's augmentation probabilities (default {MIX}); the judge's is clean only")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        mix = parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    from ponder.models.digits import SCHEDULER_CONFIG, build_scheduler  # noqa: PLC0415 - the DDPM's noise schedule

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    x_all, y_all = data.digits()
    splits = data.digits_splits(y_all)
    x_all, y_all = torch.from_numpy(x_all), torch.from_numpy(y_all)
    part = {name: (x_all[idx], y_all[idx]) for name, idx in splits.items()}
    alphas_cumprod = build_scheduler().alphas_cumprod
    wiener = Wiener(part["reward_train"][0], alphas_cumprod)

    common = dict(epochs=args.epochs, batch=args.batch, lr=args.lr, weight_decay=args.weight_decay, dropout=args.dropout)
    plans = {"reward": dict(split="reward_train", seed=args.reward_seed, mix=mix),
             "judge": dict(split="judge_train", seed=args.judge_seed, mix={"clean": 1.0})}
    nets, report = {}, {
        "command": "python -m ponder.verifiers.digits_train " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "splits from ponder.data.digits_splits (seed %d): reward and judge halves are disjoint; held-out = 15%% of each half, never trained on"
                % data.DIGITS_SPLIT_SEED,
        "split_sizes": {k: len(idx) for k, idx in splits.items()},
        "versions": {"torch": torch.__version__},
        "threads": args.threads,
        "schedule": SCHEDULER_CONFIG["beta_schedule"],
    }
    for who, plan in plans.items():
        t = time.perf_counter()
        x, y = part[plan["split"]]
        net, losses = train(x, y, mix=plan["mix"], wiener=wiener, seed=plan["seed"], desc=who, **common)
        seconds = time.perf_counter() - t
        nets[who] = net
        meta = dict(common, classifier=who, split=plan["split"], seed=plan["seed"], mix=plan["mix"], split_seed=data.DIGITS_SPLIT_SEED,
                    schedule=SCHEDULER_CONFIG["beta_schedule"], train_seconds=round(seconds, 1))
        report[who] = {"train_split": plan["split"], "seed": plan["seed"], "mix": plan["mix"], "parameters": sum(p.numel() for p in net.parameters()),
                       "seconds": round(seconds, 1), "final_train_loss": round(losses[-1], 4)}
        v.save_classifier(args.out / f"digits_{who}.npz", net, meta)
        report[who]["file_bytes"] = (args.out / f"digits_{who}.npz").stat().st_size

    g = torch.Generator().manual_seed(12345)
    for who, net in nets.items():
        rep = report[who]
        for split in ("reward_heldout", "judge_heldout"):
            rep[split] = evaluate(net, *part[split])
        rep["heldout"] = rep[f"{who}_heldout"]["accuracy"]
        x, y = part["reward_heldout"]
        rep["wiener_x0_of_reward_heldout"] = {}
        for t in REPORT_TIMESTEPS:
            g.manual_seed(1000 + t)  # the same degraded images for both networks
            rep["wiener_x0_of_reward_heldout"][str(t)] = evaluate(net, wiener.predict(x, torch.full((len(x),), t), g), y)
    report["seconds_total"] = round(time.perf_counter() - t_start, 1)
    with open(args.out / "digits_report.json", "w") as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")
    for who in nets:
        r = report[who]
        wien = ", ".join(f"t={t}: {r['wiener_x0_of_reward_heldout'][str(t)]['accuracy']}" for t in REPORT_TIMESTEPS)
        print(f"{who}: held-out {r['heldout']} (reward_heldout {r['reward_heldout']['accuracy']}, judge_heldout {r['judge_heldout']['accuracy']}); "
              f"wiener x0: {wien}; {r['seconds']} s")
    print(f"total {report['seconds_total']} s; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
