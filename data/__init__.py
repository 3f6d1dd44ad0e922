"""The evaluation data the demo, the tests and the benchmarks read, shipped with ponder.

Four public dev sets and one small image set (provenance and licences in this folder's ``README.md``):

==================  =====  ==============================================================
file                rows   what
==================  =====  ==============================================================
game24.csv          1262   Game of 24 puzzles, ranked by human solve time
gsm8k_train.jsonl   7473   GSM8K train: grade-school math word problems
advbench_dev.csv     320   AdvBench harmful instructions with target prefixes (dev split)
xstest_dev.csv       225   XSTest prompts labelled safe / unsafe (dev split)
digits.npz          1797   8x8 handwritten digits 0-9 (scikit-learn's ``load_digits``)
==================  =====  ==============================================================

:func:`path` finds a file: in the folder named by the ``PONDER_DATA`` environment variable when
it is set, else in this package's folder (installed as ``ponder.data``). Every benchmark and the
demo also take ``--data`` to point at one file directly.

The digits (:func:`digits`) feed the project's own small models: a DDPM
(:mod:`ponder.models.digits`) and two digit classifiers (:mod:`ponder.verifiers.digits`).
:func:`digits_splits` fixes who trains on what: the DDPM on all 1797 images, the reward
classifier on one half, the judge classifier on the other, disjoint half, so the judge's verdict
on steered samples is not the reward's own opinion.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

ENV = "PONDER_DATA"
FOLDER = Path(__file__).resolve().parent
FILES = ("game24.csv", "gsm8k_train.jsonl", "advbench_dev.csv", "xstest_dev.csv", "digits.npz")
DIGITS_SPLIT_SEED = 0  # the seed of the fixed permutation behind digits_splits(); never change it
DIGITS_HELDOUT = 0.15  # the share of each classifier's half held out for its reported accuracy


class DataNotFound(FileNotFoundError):
    """A data file is not where ponder looked for it."""


def folder() -> Path:
    """The data folder: ``$PONDER_DATA`` when set, else the package's own folder."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else FOLDER


def path(name: str) -> Path:
    """The path of data file ``name`` (one of :data:`FILES`, or any file in the folder).

    Raises:
        DataNotFound: the file is missing; the message names the folder searched and the
            environment variable that moves it.
    """
    where = folder()
    found = where / name
    if not found.is_file():
        source = f"${ENV}" if os.environ.get(ENV) else "the ponder.data package folder"
        raise DataNotFound(f"data file {name!r} not found in {where} ({source}); set {ENV} to a folder holding {', '.join(FILES)}, or pass --data PATH")
    return found


def gsm8k(file: str | Path | None = None) -> list[dict]:
    """GSM8K rows ``{"question", "answer", "reference"}``; ``reference`` is the number after ``####``.

    Args:
        file: a JSONL file of GSM8K rows (default: ``path("gsm8k_train.jsonl")``).
    """
    file = Path(file) if file is not None else path("gsm8k_train.jsonl")
    if not file.is_file():
        raise DataNotFound(f"GSM8K file {str(file)!r} not found; pass --data PATH or set {ENV}")
    rows = []
    for line in file.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({"question": row["question"], "answer": row["answer"], "reference": row["answer"].split("####")[-1].strip()})
    return rows


def digits(file: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 digits as model inputs: ``(images, labels)``.

    ``images`` are float32 ``[N, 1, 8, 8]`` in ``[-1, 1]`` (the shipped pixel counts ``0..16``
    mapped by ``x / 8 - 1``: 0 is -1, the background); ``labels`` are int64 ``[N]`` in ``0..9``.

    Args:
        file: an ``.npz`` with ``images`` (uint8 ``[N, 8, 8]``, 0..16) and ``labels`` (default:
            ``path("digits.npz")``).
    """
    file = Path(file) if file is not None else path("digits.npz")
    if not file.is_file():
        raise DataNotFound(f"digits file {str(file)!r} not found; set {ENV} or pass the file")
    with np.load(file, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    if images.ndim != 3 or images.shape[1:] != (8, 8) or labels.shape != images.shape[:1]:
        raise ValueError(f"{file} holds images {images.shape} and labels {labels.shape}; expected [N, 8, 8] and [N]")
    x = images.astype(np.float32)[:, None] / 8.0 - 1.0  # [N, 1, 8, 8] in [-1, 1]
    return x, labels.astype(np.int64)


def digits_splits(labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The fixed split of the digits into disjoint index sets, by name.             # each [n] int64

    Per class, the images' indices are shuffled by one permutation seeded
    :data:`DIGITS_SPLIT_SEED`; the first half of each class (rounded down) goes to the reward
    classifier, the rest to the judge (stratified, so both halves hold every class evenly). Inside
    each half, the last :data:`DIGITS_HELDOUT` (15%) of every class is held out: never trained on,
    used for the classifier's reported accuracy.

    ==================  =====================================================================
    name                what
    ==================  =====================================================================
    ``ddpm``            all images: the DDPM trains on everything (it never sees labels)
    ``reward_train``    the reward classifier trains here (~85% of the reward half)
    ``reward_heldout``  the reward classifier's held-out images (~15% of the reward half)
    ``judge_train``     the judge trains here (~85% of the judge half)
    ``judge_heldout``   the judge's held-out images (~15% of the judge half)
    ==================  =====================================================================

    The reward and judge halves are disjoint; each set is sorted.

    Args:
        labels: the labels to split (default: those of :func:`digits`).
    """
    if labels is None:
        labels = digits()[1]
    labels = np.asarray(labels)
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    parts: dict[str, list] = {"reward_train": [], "reward_heldout": [], "judge_train": [], "judge_heldout": []}
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        half = len(members) // 2
        for who, block in (("reward", members[:half]), ("judge", members[half:])):
            held = int(round(DIGITS_HELDOUT * len(block)))
            parts[f"{who}_train"].append(block[: len(block) - held])
            parts[f"{who}_heldout"].append(block[len(block) - held:])
    out = {"ddpm": np.arange(len(labels), dtype=np.int64)}
    out.update({name: np.sort(np.concatenate(blocks)).astype(np.int64) for name, blocks in parts.items()})
    return out
