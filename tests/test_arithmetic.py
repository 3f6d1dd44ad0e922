"""The calculator process verifier on real GSM8K solutions and on wrong arithmetic."""

import json

import pytest

from ponder import data
from ponder.search.protocols import Node
from ponder.verifiers import check_equations, get, score_nodes


def test_reference_solutions_are_almost_all_correct():
    rows = [json.loads(line) for line, _ in zip(open(data.path("gsm8k_train.jsonl")), range(300))]
    assert len(rows) == 300
    correct = total = 0
    for row in rows:
        c, t = check_equations(row["answer"])
        correct, total = correct + c, total + t
    assert total > 500 and correct / total > 0.97


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3 + 4 = 7", (1, 1)),
        ("3 + 4 = 8", (0, 1)),
        ("2 x 5 = 10 and $1,200 / 4 = $300", (2, 2)),
        ("48/2 = <<48/2=24>>24 clips", (1, 1)),
        ("(3 + 5) * 2 = 16, 2/3 = 0.67", (2, 2)),
        ("no equations here, just 42", (0, 0)),
        ("1/2 * 1/2 = 1/4", (0, 0)),
    ],
)
def test_check_equations(text, expected):
    assert check_equations(text) == expected


def test_scores_are_smoothed_shares():
    v = get("arithmetic")
    nodes = [Node(tokens=(1,), prompt_len=1, text=t) for t in ("3*4 = 12, 5-1 = 3", "nothing", "1+1 = 2")]
    assert list(score_nodes(v, nodes)) == pytest.approx([2 / 3, 1.0, 1.0])  # no equation: the prior, 1
    assert get("arithmetic", prior=0.0).score(["q"], ["1+1 = 3"])[0] == 0.0
