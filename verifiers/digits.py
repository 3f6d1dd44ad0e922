r"""Digit classifiers for 8x8 images (:func:`ponder.data.digits`): a reward and a judge.

Two copies of one small CNN (:class:`DigitNet`, ~62k parameters), trained by
:mod:`ponder.verifiers.digits_train` on the two disjoint halves of :func:`ponder.data.digits_splits`:

``"reward"`` (``weights/digits_reward.npz``)
    trained on the ``reward_train`` split, on clean digits *and* on degraded copies like the
    :math:`\hat x_0` predictions Feynman-Kac steering scores mid-denoising: the closed-form
    (Wiener) posterior mean :math:`E[x_0 \mid x_t]` under a Gaussian fit of the digits at a noise
    level drawn from the DDPM's own schedule, and blurred, noisy copies. So its
    :math:`p(y \mid \hat x_0)` stays informative (and calibrated towards the class prior) on the
    blurry early predictions instead of being confidently wrong about them.
``"judge"`` (``weights/digits_judge.npz``)
    trained on the disjoint ``judge_train`` split, on clean digits with light augmentation only
    (one-pixel shifts), with another seed: an independent opinion on finished samples, so a
    search steered by the reward is not graded by the reward itself.

Held-out accuracies are in ``weights/digits_report.json``.

:class:`DigitClass` (registered as ``"digit_class"`` and, with ``classifier="judge"``, as
``"digit_judge"``; kind ``"outcome"``) scores

.. math:: r(x) = \log p_\theta(c \mid x)

for a target class :math:`c`: the one given (``target=3``), or, with ``target=None``, each pair's
prompt (an int 0..9: the class a particle group is steered to). A candidate is an image tensor
(torch or numpy) ``[1, 8, 8]``, ``[8, 8]`` or ``[3, 8, 8]`` (RGB: the channel mean is taken) in
``[-1, 1]``; values outside are clamped to ``[-1, 1]`` first (the first sample of a diffusion
search is :math:`x_T \sim \mathcal N(0, I)`, and unclipped predictions stray outside). A batch is
one forward pass. Weights load lazily, on the first score.
"""

from __future__ import annotations

import json
import operator
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ponder.search.protocols import ConfigError
from ponder.verifiers.base import Verifier

__all__ = ["WEIGHTS", "CLASSIFIERS", "ARCH_VERSION", "DigitNet", "DigitClass", "load_classifier", "as_images", "digit_class", "digit_judge"]

WEIGHTS = Path(__file__).parent / "weights"
TRAIN_COMMAND = "python -m ponder.verifiers.digits_train"
CLASSIFIERS = ("reward", "judge")
ARCH_VERSION = 1


class DigitNet(nn.Module):
    """A small CNN over 8x8 digits in ``[-1, 1]``: ``[B, 1, 8, 8] -> [B, 10]`` logits.

    conv3x3(1->32) ReLU, conv3x3(32->32) ReLU, maxpool 2 (4x4), conv3x3(32->64) ReLU, maxpool 2
    (2x2), linear(256->128) ReLU, dropout, linear(128->10).
    """

    def __init__(self, *, dropout: float = 0.3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(256, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # [B, 10]


def save_classifier(path: str | Path, net: DigitNet, meta: dict) -> None:
    """Write ``net``'s parameters (float32) and ``meta`` (JSON, plus the architecture version) to an ``.npz``."""
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    meta = dict(meta, arch_version=ARCH_VERSION)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def load_classifier(path: str | Path) -> tuple[DigitNet, dict]:
    """``(net in eval mode, meta)`` from a file written by :func:`save_classifier`.

    Raises:
        FileNotFoundError: no file (the message names the training command).
        ValueError: a file of another architecture version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no digit classifier weights at {path}; train them with `{TRAIN_COMMAND}`")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("arch_version") != ARCH_VERSION:
            raise ValueError(f"{path} holds a digit classifier of architecture version {meta.get('arch_version')}, "
                             f"expected {ARCH_VERSION}; retrain with `{TRAIN_COMMAND}`")
        state = {k: torch.from_numpy(z[k].copy()) for k in z.files if k != "meta"}
    net = DigitNet(dropout=float(meta.get("dropout", 0.3)))
    net.load_state_dict(state)
    return net.eval(), meta


def _image(candidate: Any) -> torch.Tensor:
    """One candidate as a float32 ``[1, 8, 8]`` tensor (see the module docstring)."""
    x = candidate if isinstance(candidate, torch.Tensor) else torch.as_tensor(np.asarray(candidate))
    x = x.detach().to("cpu", torch.float32)
    if x.shape == (8, 8):
        x = x[None]
    elif x.ndim == 3 and x.shape[1:] == (8, 8) and x.shape[0] in (1, 3):
        x = x.mean(dim=0, keepdim=True)
    else:
        raise ValueError(f"a digit candidate is an image [1, 8, 8], [8, 8] or [3, 8, 8] in [-1, 1], got shape {tuple(x.shape)}")
    return x


def as_images(images: Any) -> torch.Tensor:
    """A batch of images as float32 ``[B, 1, 8, 8]`` clamped to ``[-1, 1]``.             # [B, 1, 8, 8]

    Args:
        images: a tensor or array ``[B, 1, 8, 8]``, ``[B, 8, 8]`` or ``[B, 3, 8, 8]``, or a
            sequence of single images (each ``[1, 8, 8]``, ``[8, 8]`` or ``[3, 8, 8]``).
    """
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim in (3, 4):
        batch = [images[i] for i in range(images.shape[0])]
    else:
        batch = list(images)
    if not batch:
        return torch.zeros(0, 1, 8, 8)
    return torch.stack([_image(x) for x in batch]).clamp_(-1.0, 1.0)


def _target(prompt: Any) -> int:
    try:
        if isinstance(prompt, (bool, np.bool_)) or isinstance(prompt, str):
            raise TypeError
        c = operator.index(prompt.item() if isinstance(prompt, (torch.Tensor, np.ndarray)) and prompt.ndim == 0 else prompt)
    except (TypeError, ValueError):
        c = None
    if c is None or not 0 <= c <= 9:
        raise ConfigError(f"digit_class with target=None takes each prompt as the target class, an int 0..9; got {prompt!r:.80}")
    return c


class DigitClass(Verifier):
    r"""``log p(target | x)`` under a digit classifier; see the module docstring.

    Args:
        target: the class 0..9 every candidate is scored for, or None: each pair's prompt is its
            target (an int 0..9).
        classifier: "reward" (default; robust to blurry :math:`\hat x_0` predictions) or "judge"
            (trained on the disjoint split, for grading results).
        weights: another ``.npz`` from :mod:`ponder.verifiers.digits_train` (default: the
            package's ``weights/digits_<classifier>.npz``).
        name: the verifier's name (default ``"digit_class"`` for the reward, ``"digit_judge"``
            for the judge, with ``[target]`` appended when a target is given: scores are cached
            per name).

    Raises:
        ConfigError: a target outside 0..9 or an unknown classifier.
    """

    kind = "outcome"

    def __init__(self, target: int | None = None, *, classifier: str = "reward", weights: str | Path | None = None, name: str | None = None):
        if classifier not in CLASSIFIERS:
            raise ConfigError(f"unknown digit classifier {classifier!r}; valid choices: {', '.join(CLASSIFIERS)}")
        if target is not None:
            try:
                target = _target(target)
            except ConfigError:
                raise ConfigError(f"DigitClass target must be an int 0..9 or None, got {target!r}") from None
        self.target = target
        self.classifier = classifier
        self.weights = Path(weights) if weights is not None else WEIGHTS / f"digits_{classifier}.npz"
        base = "digit_class" if classifier == "reward" else "digit_judge"
        self.name = name if name is not None else (base if target is None else f"{base}[{target}]")
        self._net: DigitNet | None = None
        self._meta: dict | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> DigitNet:
        if self._net is None:
            with self._lock:
                if self._net is None:
                    net, self._meta = load_classifier(self.weights)
                    self._net = net
        return self._net

    @property
    def meta(self) -> dict:
        """What the weights file says of its training (split, seed, augmentation, accuracy)."""
        self._ensure()
        return dict(self._meta)

    def log_probs(self, images: Any) -> torch.Tensor:
        """``log p(y | x)`` for every class, one forward pass.                            # [B, 10]"""
        net = self._ensure()
        x = as_images(images)
        if len(x) == 0:
            return torch.zeros(0, 10)
        with torch.inference_mode():
            return torch.log_softmax(net(x), dim=-1)

    def probs(self, images: Any) -> np.ndarray:
        """``p(y | x)`` for every class (float64).                                        # [B, 10]"""
        return self.log_probs(images).exp().double().numpy()

    def predict(self, images: Any) -> np.ndarray:
        """The most probable class of each image (int64).                                 # [B]"""
        return self.log_probs(images).argmax(dim=-1).numpy().astype(np.int64)

    def score(self, prompts: Sequence[Any], candidates: Sequence[Any]) -> np.ndarray:
        """``log p(c_b | x_b)`` with ``c_b`` the target or the ``b``-th prompt (float64).    # [B]"""
        if self.target is None:
            if len(prompts) != len(candidates):
                raise ValueError(f"{self.name}: {len(prompts)} prompts for {len(candidates)} candidates")
            targets = [_target(p) for p in prompts]
        else:
            targets = [self.target] * len(candidates)
        logp = self.log_probs(candidates)  # [B, 10]
        picked = logp[torch.arange(len(targets)), torch.as_tensor(targets, dtype=torch.long)]
        return picked.double().numpy()

    def __repr__(self) -> str:
        return f"<DigitClass {self.name!r} kind={self.kind!r} classifier={self.classifier!r} weights={str(self.weights)!r}>"


def digit_class(**options) -> DigitClass:
    """The reward classifier's ``log p(target | x)`` (``target=`` an int, or None: the prompt)."""
    return DigitClass(**options)


def digit_judge(**options) -> DigitClass:
    """The judge classifier's ``log p(target | x)`` (trained on the split disjoint from the reward's)."""
    options.setdefault("classifier", "judge")
    return DigitClass(**options)
