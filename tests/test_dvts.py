"""DVTS (ponder.search.dvts): independent greedy subtrees batched into one generator call per depth."""

import pytest

import ponder
import ponder.models as pm
import ponder.verifiers as pv
from ponder.search.dvts import DVTSConfig
from ponder.search.protocols import ConfigError

LETTERS = pv.verifier(lambda p, t: sum(c.isalpha() for c in t) / max(1, len(t)), name="letters", kind="process")


class Counting:
    """The generator, counting its expand calls and the rows of each."""

    def __init__(self, lm):
        self.lm, self.calls = lm, []

    def root(self, prompt, **options):
        return self.lm.root(prompt, **options)

    def expand(self, states, k=1, **options):
        out = self.lm.expand(states, k, **options)
        self.calls.append(sum(len(kids) for kids in out))
        return out


@pytest.fixture(scope="module")
def lm():
    return pm.tiny_llama(seed=0)


def depth1_ancestor(node):
    return node.path()[1]


def test_subtrees_stay_independent_and_share_one_call_per_depth(lm):
    gen = Counting(lm)
    r = ponder.search("dvts", gen, LETTERS, "Hi", n=6, width=2, max_steps=3, step_tokens=4, stop="\n", seed=1)
    subtrees = r.info["subtrees"]
    assert len(subtrees) == 3
    by_index = {s.index: s for s in r.tree}
    roots = [depth1_ancestor(by_index[s["leaf"]]) for s in subtrees]
    assert len({n.index for n in roots}) == 3  # three chains, three different first steps
    # depth 1: the root's 6 children dealt 2 per subtree, in order
    first = [n for n in r.tree if n.depth == 1]
    assert len(first) == 6
    for i, root in enumerate(roots):
        assert root in first[2 * i:2 * i + 2]
    # one generator call per depth, at most n rows each
    assert len(gen.calls) <= 3 and gen.calls[0] == 6 and all(c <= 6 for c in gen.calls)


def test_each_subtree_moves_to_its_best_child(lm):
    r = ponder.search("dvts", lm, LETTERS, "Hi", n=4, width=2, max_steps=2, step_tokens=4, stop="\n", seed=2)
    first = [n for n in r.tree if n.depth == 1]  # dealt out in order: subtree j owns first[2j:2j+2]
    second = [n for n in r.tree if n.depth == 2]
    assert second, "no subtree went past depth 1"
    for node in second:
        j = first.index(node.parent) // 2
        group = first[2 * j:2 * j + 2]
        assert node.parent.meta["path_score"] == max(s.meta["path_score"] for s in group)


def test_n_must_be_a_multiple_of_width():
    with pytest.raises(ConfigError, match="multiple of width"):
        DVTSConfig(n=6, width=4)


def test_budget_stops_dvts_with_a_result(lm):
    r = ponder.search("dvts", lm, LETTERS, "Hi", n=4, width=2, step_tokens=8, budget={"tokens": 20}, seed=0)
    assert r.stopped == "tokens" and r.candidates
    assert r.ledger.generated_tokens < 20 + 4
