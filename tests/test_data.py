"""The repository carries its data: the demo's, the benchmarks' and the tests' data loading work
from a copy of the repository with no sibling ``shared/`` folder, and data paths move with
``$PONDER_DATA``."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from ponder import data

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROWS = {"game24.csv": 1262 + 1, "gsm8k_train.jsonl": 7473, "advbench_dev.csv": 320 + 1, "xstest_dev.csv": 225 + 1}  # + header

LOADERS = """
from ponder import data
from ponder.demo import load_problems
from ponder.bench.accuracy_vs_budget import load_problems as bench_problems
from ponder.bench.kv_sharing import gsm8k_file
import ponder
print(ponder.__file__, data.folder())
demo = load_problems(None, [132, 94, 126])
bench = bench_problems(None, 5)
print(len(demo), demo[0]["reference"], len(bench), bench[0]["reference"], gsm8k_file().name, len(data.gsm8k()))
"""
PACKAGES = {"ponder": "ponder", "search": "ponder/search", "models": "ponder/models", "verifiers": "ponder/verifiers", "kernels": "ponder/kernels", "bench": "ponder/bench", "data": "ponder/data"}


def _copy_as_installed(site: pathlib.Path) -> None:
    """The repository's source folders laid out as the installed ``ponder`` package (no compiled kernels)."""
    for folder, target in PACKAGES.items():
        shutil.copytree(ROOT / folder, site / target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.so", "results"))


def test_the_repository_holds_the_four_dev_sets_with_their_provenance():
    for name, rows in ROWS.items():
        lines = [line for line in data.path(name).read_text().splitlines() if line.strip()]
        assert len(lines) == rows, name
    readme = data.path("README.md").read_text()
    assert all(name in readme for name in ROWS) and "licence" in readme


def test_gsm8k_rows_carry_their_reference_number():
    rows = data.gsm8k()
    assert len(rows) == 7473 and rows[0]["reference"] == "72"


def test_data_loading_works_in_a_copy_with_no_sibling_shared_folder(tmp_path):
    site = tmp_path / "clone" / "site"
    _copy_as_installed(site)
    assert not any((parent / "shared").exists() for parent in site.parents)
    env = {k: v for k, v in os.environ.items() if k != data.ENV}
    env["PYTHONPATH"] = str(site)  # the copy comes before the editable install on sys.path
    out = subprocess.run([sys.executable, "-c", LOADERS], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    where, counts = out.stdout.strip().splitlines()
    assert where.split() == [str(site / "ponder" / "__init__.py"), str(site / "ponder" / "data")]  # the copy's code and data
    assert counts.split() == ["3", "110", "5", "72", "gsm8k_train.jsonl", "7473"]


def test_a_missing_data_file_names_the_folder_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    with pytest.raises(data.DataNotFound, match=rf"'gsm8k_train.jsonl' not found in {tmp_path} \(\$PONDER_DATA\); set PONDER_DATA"):
        data.path("gsm8k_train.jsonl")


def test_the_installed_package_finds_its_data_without_the_variable(monkeypatch):
    monkeypatch.delenv(data.ENV, raising=False)
    assert data.folder() == data.FOLDER and data.path("game24.csv").parent == data.FOLDER
