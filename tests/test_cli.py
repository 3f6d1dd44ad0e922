"""The `ponder` command line, run in-process on a tiny model saved as a local HF directory."""

import json
import os
import subprocess
import sys

import pytest

import ponder.models as pm
from ponder.cli import main


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    lm = pm.tiny_llama(seed=0)
    lm.model.save_pretrained(path)
    lm.tokenizer.save_pretrained(path)
    return str(path)


def test_search_prints_answer_and_ledger(tiny_dir, capsys):
    code = main(["search", "--model", tiny_dir, "--algo", "beam", "--verifier", "length", "--prompt", "The answer is",
                 "--budget-tokens", "40", "--set", "width=2", "--set", "expansions=2", "--set", "step_tokens=8", "--reference", "42"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ledger: computed" in out and "stopped: " in out and "vs reference '42'" in out


def test_search_json(tiny_dir, capsys):
    code = main(["search", "--model", tiny_dir, "--algo", "majority", "--prompt", "Step 1:", "--set", "n=3",
                 "--set", "max_new_tokens=6", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["ledger"]["generated_tokens"] > 0
    assert result["config"]["n"] == 3 and result["config"]["max_new_tokens"] == 6  # --set reached the config
    assert len(result["candidates"]) == 3 and result["algorithm"] == "best_of_n"


def test_list_and_bench_work_from_outside_the_repository(tmp_path):
    """`ponder list` and `ponder bench` run from any directory, with no repository root on sys.path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ponder_cli = [sys.executable, "-m", "ponder.cli"]
    listed = subprocess.run([*ponder_cli, "list"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert "benchmarks: kv_sharing" in listed
    bad = subprocess.run([*ponder_cli, "bench", "no_such_bench"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown benchmark 'no_such_bench'; valid: kv_sharing" in bad.stderr
    helped = subprocess.run([*ponder_cli, "bench", "sampling", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert "usage:" in helped and "--rounds" in helped  # the benchmark's own argument parser ran


def test_every_benchmark_imports_as_part_of_the_installed_package(tmp_path):
    """Each listed benchmark module imports as ``ponder.bench.NAME`` outside the checkout (no
    ``bench.`` absolute imports, which only resolve with the repository root on the path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import importlib, ponder.bench.__main__ as m\n"
            "for n in m.BENCHMARKS: importlib.import_module('ponder.bench.' + n)\n"
            "print(','.join(m.BENCHMARKS))")
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert {"kv_sharing", "fk_digits", "smc_lm", "tree_gsm8k"} <= set(out.stdout.strip().split(","))


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("beam", "rebase", "best_of_n", "math_answer", "arithmetic", "smollm2", "kv_sharing"):
        assert name in out


def test_bad_input_is_an_error_not_a_traceback(tiny_dir, capsys):
    assert main(["search", "--model", tiny_dir, "--algo", "nope", "--prompt", "x"]) == 2
    assert "unknown search algorithm 'nope'" in capsys.readouterr().err
    assert main(["search", "--model", "no-such-model", "--prompt", "x"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["search", "--model", tiny_dir, "--algo", "beam", "--prompt", "x", "--set", "width=-1"]) == 2
    assert "width" in capsys.readouterr().err
