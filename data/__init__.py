"""The evaluation data the demo, the tests and the benchmarks read, shipped with ponder.

Four public dev sets (provenance and licences in this folder's ``README.md``):

==================  =====  ==============================================================
file                rows   what
==================  =====  ==============================================================
game24.csv          1262   Game of 24 puzzles, ranked by human solve time
gsm8k_train.jsonl   7473   GSM8K train: grade-school math word problems
advbench_dev.csv     320   AdvBench harmful instructions with target prefixes (dev split)
xstest_dev.csv       225   XSTest prompts labelled safe / unsafe (dev split)
==================  =====  ==============================================================

:func:`path` finds a file: in the folder named by the ``PONDER_DATA`` environment variable when
it is set, else in this package's folder (installed as ``ponder.data``). Every benchmark and the
demo also take ``--data`` to point at one file directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "PONDER_DATA"
FOLDER = Path(__file__).resolve().parent
FILES = ("game24.csv", "gsm8k_train.jsonl", "advbench_dev.csv", "xstest_dev.csv")


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
