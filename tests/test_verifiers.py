"""Tests of ponder.verifiers: answer extraction, built-ins, composition, registry, caching, errors."""

from __future__ import annotations

import importlib.metadata
import json
import itertools
import math
import pathlib
import re
import threading
import time

import numpy as np
import pytest

import ponder.verifiers as pv
from ponder.search.ledger import Ledger, charge
from ponder.search.protocols import ConfigError, Node, SearchInterrupted
from ponder.verifiers import VerifierError, extract_answer, score_nodes

_INDICES = itertools.count()


def node(text: str, prompt: str = "q") -> Node:
    """A text state as a search's Trace would hold it (with its dense index)."""
    return Node(tokens=(1, 2, 3), prompt_len=1, prompt=prompt, text=text, index=next(_INDICES))


# ---------------------------------------------------------------------------------------------
# Answer extraction


def gsm8k_rows(n: int = 200) -> list[dict]:
    """The first ``n`` GSM8K rows of the repository's copy (a missing file fails the test)."""
    from ponder import data  # the data the repository ships (ponder.data, moved by $PONDER_DATA)

    with data.path("gsm8k_train.jsonl").open() as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def test_extract_answer_matches_gsm8k_reference_numbers():
    rows = gsm8k_rows()
    assert len(rows) == 200
    for row in rows:
        body, tail = row["answer"].rsplit("####", 1)
        expected = tail.strip().replace(",", "")
        assert extract_answer(row["answer"]) == expected, row["answer"]


def test_extract_answer_other_formats_on_gsm8k_solutions():
    # The worked solutions are full of other numbers: the marker must win over them.
    for row in gsm8k_rows(100):
        body, tail = row["answer"].rsplit("####", 1)
        expected = tail.strip().replace(",", "")
        assert extract_answer(f"{body}The answer is {tail.strip()}. That took 3 steps.") == expected
        assert extract_answer(f"{body}Final: $\\boxed{{{tail.strip()}}}$ after 2 checks.") == expected
        assert extract_answer(f"{body}So in total {tail.strip()}.") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("#### 72", "72"),
        ("#### 1,080", "1080"),
        ("#### -7", "-7"),
        ("The answer is 3,888.", "3888"),
        ("the ANSWER IS: $12.50.", "12.5"),
        ("So the answer is **-3.0**", "-3"),
        ("The final answer is $\\boxed{42}$.", "42"),
        ("\\boxed{\\text{1,200}} and then 7", "1200"),
        ("He paid $1,575,000.00 in total.", "1575000"),
        ("it fell to \u22124 degrees", "-4"),
        ("add .5 cups", "0.5"),
        ("from 2019-2020", "2020"),
        ("items 1,2,3", "3"),
        ("pi is about 3.14.", "3.14"),
        ("the 3rd try", "3"),
        ("no digits here", None),
        ("", None),
        # priority: #### > "answer is" > \boxed > last number
        ("The answer is 5. \\boxed{6} 7\n#### 8", "8"),
        ("\\boxed{6} The answer is 5. 7", "5"),
        ("\\boxed{6} then 7", "6"),
    ],
)
def test_extract_answer_cases(text, expected):
    assert extract_answer(text) == expected


def test_normalize_number():
    assert pv.normalize_number("$1,000.50") == "1000.5"
    assert pv.normalize_number("72.0") == "72"
    assert pv.normalize_number("-0") == "0"
    assert pv.normalize_number("1e3") == "1000"
    assert pv.normalize_number("nan") is None and pv.normalize_number("inf") is None
    assert pv.normalize_number("abc") is None


# ---------------------------------------------------------------------------------------------
# Built-in verifiers


def test_math_answer_right_and_wrong():
    v = pv.math_answer(reference=72)
    texts = ["Natalia sold 48 + 24 = 72 clips.\n#### 72", "#### 71", "The answer is 72.0", "nothing", "#### 72.0000001"]
    np.testing.assert_array_equal(v.score(["q"] * 5, texts), [1.0, 0.0, 1.0, 0.0, 1.0])
    assert v.score(["q"], ["#### 72.01"])[0] == 0.0
    assert v.kind == "outcome" and v.name == "math_answer"
    assert v.extract("so #### 1,000") == "1000"


def test_math_answer_reference_forms():
    row = gsm8k_rows(1)[0]
    # a whole worked solution as the reference
    assert pv.math_answer(reference=row["answer"])("q", "The answer is 72") == 1.0
    assert pv.math_answer(reference="1,080")("q", "#### 1080") == 1.0
    refs = {"a": "5", "b": -3}
    by_map = pv.math_answer(reference=refs)
    np.testing.assert_array_equal(by_map.score(["a", "b", "a"], ["5", "answer is -3", "6"]), [1, 1, 0])
    by_fn = pv.math_answer(reference=lambda prompt: len(prompt))
    np.testing.assert_array_equal(by_fn.score(["abc", "abcd"], ["3", "3"]), [1, 0])


def test_math_answer_without_reference_raises_naming_candidate():
    with pytest.raises(VerifierError, match=r"'math_answer' failed on candidate 1 of 2 .*no reference answer for prompt 'zzz'"):
        pv.math_answer(reference={"a": 1}).score(["a", "zzz"], ["1", "2"])
    with pytest.raises(VerifierError, match="no reference"):
        pv.math_answer()("q", "1")
    with pytest.raises(ConfigError):
        pv.math_answer(reference="no number here")
    with pytest.raises(ConfigError):
        pv.math_answer(reference=[1, 2])


def test_regex():
    v = pv.regex(r"\bParis\b")
    np.testing.assert_array_equal(v.score(["q"] * 3, ["It is Paris.", "paris", "Parisian"]), [1, 0, 0])
    assert pv.regex("paris", flags=re.IGNORECASE)("q", "PARIS") == 1.0
    assert v.name == r"regex(\bParis\b)"
    with pytest.raises(ConfigError, match="bad regex"):
        pv.regex("(unclosed")


def readme_refusal_phrases() -> list[str]:
    from ponder import data

    text = data.path("README.md").read_text()
    line = text.split("counts a response as a refusal when it contains any of these phrases:", 1)[1].strip().splitlines()[0]
    return re.findall(r'"([^"]+)"', line)


def test_refusal_phrases_are_the_readme_list():
    assert list(pv.REFUSAL_PHRASES) == readme_refusal_phrases()
    assert len(pv.REFUSAL_PHRASES) == 29


def test_refusal_detects_every_phrase():
    v = pv.refusal()
    texts = [f"Well. {p} that." for p in pv.REFUSAL_PHRASES]
    assert v.score(["q"] * len(texts), texts).tolist() == [1.0] * len(texts)
    compliant = ["Here is a recipe for bread: mix flour and water.", "sure, 2 + 2 = 4", "i'm sorry"]  # case-sensitive
    assert v.score(["q"] * 3, compliant).tolist() == [0.0, 0.0, 0.0]
    assert v.kind == "process"


def test_length_words_and_tokenizers():
    v = pv.length(per_token=0.5)
    np.testing.assert_allclose(v.score(["q"] * 3, ["one two  three", "", "x"]), [-1.5, 0.0, -0.5])
    assert pv.length()("q", " ".join(["w"] * 1000)) == pytest.approx(-1.0)

    class CharTokenizer:  # a character-level tokenizer with the Hugging Face encode signature
        def encode(self, text, add_special_tokens=True):
            return ([0] if add_special_tokens else []) + [ord(c) for c in text]

    assert pv.length(per_token=1.0, tokenizer=CharTokenizer())("q", "abc de") == -6.0
    assert pv.length(per_token=1.0, tokenizer=list)("q", "abcd") == -4.0
    assert pv.length(per_token=2.0, tokenizer=len)("q", "abcd") == -8.0
    with pytest.raises(ConfigError):
        pv.length(per_token=-1.0)
    with pytest.raises(ConfigError):
        pv.length(tokenizer=42)


# ---------------------------------------------------------------------------------------------
# Wrapping functions


def test_verifier_decorator_forms():
    @pv.verifier
    def has_digit(prompt, text):
        """Whether the text has a digit."""
        return any(c.isdigit() for c in text)

    @pv.verifier(name="lenq", kind="process")
    def prompt_len(prompt, text):
        return len(prompt)

    @pv.verifier(batched=True)
    def batch_len(prompts, texts):
        return [len(t) for t in texts]

    assert has_digit.name == "has_digit" and has_digit.kind == "outcome"
    assert has_digit.__doc__ == "Whether the text has a digit."
    assert has_digit("q", "a1") == 1.0 and has_digit("q", "a") == 0.0
    assert prompt_len.name == "lenq" and prompt_len.kind == "process"
    np.testing.assert_array_equal(prompt_len.score(["ab", "abc"], ["", ""]), [2, 3])
    out = batch_len.score(["q", "q"], ["ab", "abcd"])
    assert out.dtype == np.float64 and out.tolist() == [2.0, 4.0]
    assert pv.verifier(lambda p, t: 1.0, name="one")("q", "t") == 1.0
    with pytest.raises(ConfigError):
        pv.verifier(lambda p, t: 1.0, kind="outcomes")
    with pytest.raises(ConfigError):
        pv.verifier(lambda p, t: 1.0, timeout=0)
    with pytest.raises(ConfigError):
        pv.verifier("name")
    with pytest.raises(ValueError, match="2 prompts for 1 texts"):
        has_digit.score(["a", "b"], ["c"])


# ---------------------------------------------------------------------------------------------
# Composition


def constant(value, name, kind="outcome"):
    return pv.verifier(lambda p, t: value, name=name, kind=kind)


def test_weighted_sum_product_threshold_arithmetic():
    right = pv.math_answer(reference=3)
    short = pv.length(per_token=0.1)
    w = pv.weighted_sum([(right, 0.5), (short, 0.5)])
    assert w.name == "0.5*math_answer+0.5*length"
    assert w.kind == "outcome"  # outcome + process
    texts = ["it is 3", "it is 4 I think", "3"]
    expected = 0.5 * np.array([1, 0, 1]) + 0.5 * np.array([-0.3, -0.5, -0.1])
    np.testing.assert_allclose(w.score(["q"] * 3, texts), expected)

    p = pv.product([right, constant(2.0, "two")])
    assert p.name == "math_answer*two"
    np.testing.assert_allclose(p.score(["q"] * 3, texts), [2, 0, 2])

    t = pv.threshold(w, 0.4)
    assert t.name == "[0.5*math_answer+0.5*length>=0.4]"
    np.testing.assert_array_equal(t.score(["q"] * 3, texts), [0.0, 0.0, 1.0])
    assert pv.threshold(constant(0.5, "half"), 0.5)("q", "x") == 1.0  # inclusive
    t2 = pv.threshold(constant(0.2, "low"), 0.5, above=3, below=-1)
    assert t2("q", "x") == -1.0 and t2.name == "(low>=0.5?3:-1)"


def test_composite_names_and_forms():
    a, b, c = constant(1.0, "a"), constant(2.0, "b"), constant(4.0, "c")
    s = pv.combine([(a, 1), (b, -1), (c, -0.25)])
    assert s.name == "a-b-0.25*c"
    assert s("q", "x") == pytest.approx(1 - 2 - 1)
    nested = pv.product([s, c])
    assert nested.name == "(a-b-0.25*c)*c"
    assert nested("q", "x") == pytest.approx(-8.0)
    assert pv.weighted_sum([(s, -1), (c, 1)]).name == "-(a-b-0.25*c)+c"
    assert pv.weighted_sum({a: 2, b: 3})("q", "x") == 8.0
    by_name = pv.weighted_sum([("refusal", -1.0), ("length", 1.0)])
    assert by_name.name == "-refusal+length"
    assert pv.weighted_sum([(a, 1)], name="custom").name == "custom"


def test_composite_validation():
    with pytest.raises(ConfigError):
        pv.weighted_sum([])
    with pytest.raises(ConfigError):
        pv.weighted_sum([(constant(1, "a"), float("nan"))])
    with pytest.raises(ConfigError, match="wrap a function"):
        pv.weighted_sum([(lambda p, t: 1.0, 1.0)])
    with pytest.raises(ConfigError, match="unknown verifier"):
        pv.product(["no_such_verifier"])
    tok = pv.verifier(lambda p, t: [0.0, 1.0], name="tok", kind="token")
    with pytest.raises(ConfigError, match="token"):
        pv.weighted_sum([(tok, 1), (constant(1, "a"), 1)])


def test_token_verifiers_and_their_composition():
    @pv.verifier(kind="token")
    def next_is_long(prompt, text):
        return [len(text), 0.0, 1.0]

    twice = pv.weighted_sum([(next_is_long, 2.0)])
    assert twice.kind == "token"
    nodes = [node("ab"), node("abcd")]
    ledger = Ledger()
    with ledger.active():
        out = pv.score_node_tokens(twice, nodes)
    np.testing.assert_array_equal(out, [[4, 0, 2], [8, 0, 2]])
    assert (ledger.verifier_calls, ledger.items_scored) == (1, 2)
    np.testing.assert_array_equal(pv.threshold(next_is_long, 1.0).score_tokens(["q"], ["abc"]), [[1, 0, 1]])
    with pytest.raises(ConfigError, match="kind 'token'"):
        pv.score_node_tokens(pv.length(), nodes)
    bad = pv.verifier(lambda p, t: [0.0, math.nan if len(t) > 2 else 0.0], name="bad_tok", kind="token")
    with pytest.raises(VerifierError, match=r"'bad_tok' failed on candidate 1 of 2 \(node \d+, text 'abcd'\): returned nan at token 1"):
        pv.score_node_tokens(bad, nodes)


# ---------------------------------------------------------------------------------------------
# Registry and entry points


def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        pv.get("math_anwser")
    message = str(info.value)
    for name in ("math_answer", "regex", "refusal", "length"):
        assert name in message
    assert set(pv.available()) >= {"math_answer", "regex", "refusal", "length"}
    assert pv.get("math_answer", reference=4)("q", "#### 4") == 1.0
    assert pv.get("regex", pattern="x")("q", "x") == 1.0
    with pytest.raises(ConfigError, match="bad arguments"):
        pv.get("regex", patern="x")


def test_register_ready_verifiers_and_factories():
    ready = constant(1.0, "test_ready")
    pv.register("test_ready", ready)
    try:
        assert pv.get("test_ready") is ready
        with pytest.raises(ConfigError, match="already registered"):
            pv.register("test_ready", ready)
        with pytest.raises(ConfigError, match="takes no arguments"):
            pv.get("test_ready", x=1)
        pv.register("test_ready", lambda: "not a verifier", if_exists="replace")
        with pytest.raises(ConfigError, match="not a verifier"):
            pv.get("test_ready")
        with pytest.raises(ConfigError):
            pv.register("", ready)
        with pytest.raises(ConfigError):
            pv.register("test_other", 42)
    finally:
        pv.registry._registry.pop("test_ready", None)


def make_shouting(*, bonus: float = 1.0):
    """A plug-in factory (the object of a test entry point)."""
    return pv.verifier(lambda p, t: bonus * float(t.isupper()), name="shouting")


@pv.verifier(name="exclaims")
def exclaims(prompt, text):
    """A plug-in ready verifier (the object of a test entry point)."""
    return float(text.endswith("!"))


@pytest.fixture
def plugins(monkeypatch):
    listed = []

    def entry_points(**selection):
        listed.append(selection)
        return [
            importlib.metadata.EntryPoint(name="shouting", value=f"{__name__}:make_shouting", group=selection["group"]),
            importlib.metadata.EntryPoint(name="exclaims", value=f"{__name__}:exclaims", group=selection["group"]),
            importlib.metadata.EntryPoint(name="broken", value=f"{__name__}:no_such_attribute", group=selection["group"]),
            importlib.metadata.EntryPoint(name="missing_module", value="ponder_no_such_module:make", group=selection["group"]),
        ]

    pv.refresh_plugins()
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    yield listed
    pv.refresh_plugins()


def test_entry_points_are_listed_lazily_and_loaded(plugins):
    assert plugins == []  # nothing listed before the first lookup
    names = pv.available()
    assert plugins == [{"group": "ponder.verifiers"}]
    assert {"shouting", "exclaims", "broken", "missing_module", "math_answer"} <= set(names)
    shouting = pv.get("shouting", bonus=2.0)
    assert shouting("q", "HEY") == 2.0 and shouting("q", "hey") == 0.0
    assert pv.get("exclaims") is exclaims
    pv.get("math_answer")
    assert len(plugins) == 1  # listed once


def test_broken_entry_point_warns_and_does_not_break_others(plugins):
    assert pv.get("exclaims")("q", "hi!") == 1.0
    with pytest.warns(RuntimeWarning, match=rf"plug-in 'broken' \({re.escape(__name__)}:no_such_attribute, .*failed to load"):
        with pytest.raises(ConfigError, match="'broken' failed to load"):
            pv.get("broken")
    with pytest.warns(RuntimeWarning, match="missing_module"):
        with pytest.raises(ConfigError):
            pv.get("missing_module")
    assert "broken" not in pv.available()
    assert pv.get("shouting")("q", "A") == 1.0
    assert pv.get("regex", pattern="a")("q", "a") == 1.0


# ---------------------------------------------------------------------------------------------
# Per-node caching and the ledger


def counting(name="counting", **kwargs):
    calls = []

    @pv.verifier(name=name, batched=True, **kwargs)
    def count_words(prompts, texts):
        calls.append(list(texts))
        return [len(t.split()) for t in texts]

    return count_words, calls


def test_score_nodes_caches_per_node_and_charges_the_ledger():
    v, calls = counting()
    a, b, c = node("one two"), node("one"), node("one two three")
    ledger = Ledger()
    with ledger.active():
        np.testing.assert_array_equal(score_nodes(v, [a, b, a, b]), [2, 1, 2, 1])
        assert calls == [["one two", "one"]]  # one batched call, each distinct node once
        assert (ledger.verifier_calls, ledger.items_scored) == (1, 2)
        assert a.scores == {"counting": 2.0}

        np.testing.assert_array_equal(score_nodes(v, [b, a]), [1, 2])
        assert len(calls) == 1 and (ledger.verifier_calls, ledger.items_scored) == (1, 2)  # all cached

        np.testing.assert_array_equal(score_nodes(v, [a, c, b]), [2, 3, 1])
        assert calls[-1] == ["one two three"]
        assert (ledger.verifier_calls, ledger.items_scored) == (2, 3)
    assert len(score_nodes(v, [])) == 0 and len(calls) == 2


def test_score_nodes_uses_prompt_and_generated_text_and_names():
    seen = []

    @pv.verifier(name="echo")
    def echo(prompt, text):
        seen.append((prompt, text))
        return 0.0

    n = Node(tokens=(5, 6, 7, 8), prompt_len=2, prompt="What is 2+2?", text=" 4", step_text=" 4")
    score_nodes(echo, [n])
    assert seen == [("What is 2+2?", " 4")]
    # a registered name works too, and keys the cache by the verifier's name
    m = node("I'm sorry, I cannot")
    assert score_nodes("refusal", [m]).tolist() == [1.0] and m.scores["refusal"] == 1.0


def test_score_nodes_charges_nested_ledgers_and_worker_threads():
    @pv.verifier(name="charging", timeout=5.0)
    def charging(prompt, text):
        charge(nodes=1)  # runs in the timeout worker thread, in a copy of the caller's context
        return 1.0

    outer, inner = Ledger(), Ledger()
    with outer.active(), inner.active():
        score_nodes(charging, [node("a"), node("b")])
    for ledger in (outer, inner):
        assert (ledger.verifier_calls, ledger.items_scored, ledger.nodes) == (1, 2, 2)


# ---------------------------------------------------------------------------------------------
# Errors


def test_raising_verifier_names_verifier_candidate_and_chains_cause():
    @pv.verifier(name="fragile")
    def fragile(prompt, text):
        if "boom" in text:
            raise ZeroDivisionError("division by zero")
        return 1.0

    nodes = [node("fine"), node("also fine " * 20 + "boom at the end"), node("fine too")]
    ledger = Ledger()
    with ledger.active(), pytest.raises(VerifierError) as info:
        score_nodes(fragile, nodes)
    err = info.value
    assert isinstance(err, SearchInterrupted) and err.partial is None
    assert err.verifier == "fragile" and err.index == 1 and err.node_id == nodes[1].id
    assert isinstance(err.__cause__, ZeroDivisionError)
    message = str(err)
    assert message.startswith(f"verifier 'fragile' failed on candidate 1 of 3 (node {nodes[1].id}, text 'also fine")
    assert message.endswith("): raised ZeroDivisionError: division by zero")
    assert "boom at the end" in message and len(message) < 250  # a short excerpt, not the whole text
    assert all(not n.scores for n in nodes)  # nothing from the failed batch is cached
    assert (ledger.verifier_calls, ledger.items_scored) == (1, 3)  # the attempt was spent


def test_batched_raise_names_the_batch():
    @pv.verifier(name="batch_boom", batched=True)
    def batch_boom(prompts, texts):
        raise RuntimeError("backend down")

    with pytest.raises(VerifierError, match=r"'batch_boom' failed on a batch of 2 candidates \(first text 'x'\): raised RuntimeError: backend down") as info:
        score_nodes(batch_boom, [node("x"), node("y")])
    assert info.value.index is None and isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("bad, shown", [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), ("1.5", "'1.5'"), (None, "None")])
def test_non_finite_or_non_numeric_scores_raise(bad, shown):
    v = pv.verifier(lambda p, t: bad if t == "bad" else 0.5, name="flaky")
    nodes = [node("good"), node("bad")]
    with pytest.raises(VerifierError, match=rf"'flaky' failed on candidate 1 of 2 \(node {nodes[1].id}, text 'bad'\): returned {re.escape(shown)}"):
        score_nodes(v, nodes)
    assert not nodes[0].scores


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_batched_scores_raise(bad):
    v = pv.verifier(lambda ps, ts: [0.0, bad, 1.0], name="flaky_batch", batched=True)
    with pytest.raises(VerifierError, match=rf"'flaky_batch' failed on candidate 1 of 3 \(node \d+, text 'b'\): returned {bad}"):
        score_nodes(v, [node("a"), node("b"), node("c")])


def test_wrong_number_of_scores_raises():
    v = pv.verifier(lambda ps, ts: [1.0] * (len(ts) - 1), name="short_batch", batched=True)
    nodes = [node("a"), node("b"), node("c")]
    with pytest.raises(VerifierError, match=r"'short_batch' failed on a batch of 3 candidates \(first text 'a'\): returned 2 scores for 3 candidates"):
        score_nodes(v, nodes)
    v2 = pv.verifier(lambda ps, ts: [[1.0]] * len(ts), name="column", batched=True)
    with pytest.raises(VerifierError, match=r"'column' failed .*: returned an array of shape \(3, 1\)"):
        score_nodes(v2, nodes)
    assert not any(n.scores for n in nodes)


def test_timeout_raises_and_keeps_earlier_batches_cached():
    release = threading.Event()

    @pv.verifier(name="slow", timeout=0.1)
    def slow(prompt, text):
        if "slow" in text:
            release.wait(5.0)
        return float(len(text))

    try:
        first = [node("quick"), node("fast")]
        score_nodes(slow, first)
        nodes = [first[0], node("ok"), node("very slow one"), node("never reached")]
        start = time.perf_counter()
        with pytest.raises(VerifierError, match=r"'slow' failed on candidate 2 of 4 \(node \d+, text 'very slow one'\): timed out after 0.1 s") as info:
            score_nodes(slow, nodes)
        assert time.perf_counter() - start < 2.0
        assert info.value.index == 2
        assert first[0].scores == {"slow": 5.0} and first[1].scores == {"slow": 4.0}  # earlier batch stays
        assert not nodes[1].scores  # computed in the failed batch, not cached
    finally:
        release.set()


def test_batched_timeout():
    release = threading.Event()

    @pv.verifier(name="slow_batch", batched=True, timeout=0.05)
    def slow_batch(prompts, texts):
        release.wait(5.0)
        return [0.0] * len(texts)

    try:
        with pytest.raises(VerifierError, match=r"'slow_batch' failed on a batch of 1 candidate .*: timed out after 0.05 s"):
            slow_batch.score(["q"], ["t"])
    finally:
        release.set()


def test_error_inside_composite_names_part_and_whole():
    fragile = pv.verifier(lambda p, t: 1 / 0, name="fragile")
    w = pv.weighted_sum([(pv.length(), 1.0), (fragile, 2.0)])
    with pytest.raises(VerifierError, match=r"verifier 'fragile' \(in 'length\+2\*fragile'\) failed on candidate 0 of 1 \(node \d+, text 'x'\): raised ZeroDivisionError"):
        score_nodes(w, [node("x")])


def test_class_based_verifier_and_protocol_objects():
    class Exclaims(pv.Verifier):
        kind = "process"

        def score(self, prompts, texts):
            return np.array([t.count("!") for t in texts])

    v = Exclaims()
    assert v.name == "Exclaims"
    assert score_nodes(v, [node("a!!"), node("b")]).tolist() == [2.0, 0.0]

    class Plain:  # follows the protocol without subclassing
        name, kind = "plain", "outcome"

        def score(self, prompts, texts):
            return [1.0, float("nan")][: len(texts)]

    with pytest.raises(VerifierError, match="'plain' failed on candidate 1 of 2 .*: returned nan"):
        score_nodes(Plain(), [node("a"), node("b")])

    class NoScore(pv.Verifier):
        name = "no_score"

    with pytest.raises(VerifierError, match="'no_score' failed on a batch of 1 candidate .*: raised NotImplementedError"):
        NoScore()("q", "t")


def test_verifier_error_pickles():
    import pickle

    err = VerifierError("v", "returned nan", index=3, text="abc", batch_size=5, node_id=9)
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "verifier 'v' failed on candidate 3 of 5 (node 9, text 'abc'): returned nan"
