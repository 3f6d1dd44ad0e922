"""SMC for language models: the normalising-constant estimate against exact enumeration on a tiny
model (mask, tempered proposal, process twist, resampling), hard constraints, shared expansion,
failures, and the real SmolLM2 path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ponder
import ponder.models as pm
from ponder.search.errors import ConfigError
from ponder.search.ledger import Budget
from ponder.search.protocols import Step
from ponder.search.smc import SMCConfig
from ponder.search.verify import VerifierError
from ponder.verifiers import Keyword, Lipogram, TokenBoost, TokenMask, verifier
from ponder.verifiers.constraints import token_texts

PROMPT = "Step 1: read"


@pytest.fixture(scope="module")
def lm():
    return pm.tiny_llama(seed=0, max_cache_tokens=1 << 16)


def has_a(prompt, text):
    return float("a" in text)


def exact_log_z(lm, *, lam: float, letter: str = "e", power: float = 1.0) -> float:
    r"""log Z of p(y) 1[y lacks the letter] e^{lam [y contains "a"]} over continuations of at most
    two tokens (EOS ends one early), by enumeration of every token pair.

    Byte-level tokens: a text contains an ASCII letter iff one of its tokens' texts does.
    """
    texts = token_texts(lm.tokenizer, lm.next_token_logprobs([lm.root(PROMPT)]).shape[1])
    allowed = np.array([letter not in t.lower() for t in texts])  # [V]
    eos = np.zeros(len(texts), dtype=bool)
    eos[sorted(lm.eos_ids)] = True
    allowed |= eos
    a = np.array(["a" in t for t in texts])  # [V]
    root = lm.root(PROMPT)
    p1 = np.exp(lm.next_token_logprobs([root])[0] / power)  # [V] p^(1/tau)
    firsts = [v for v in np.flatnonzero(allowed) if not eos[v]]
    kids = lm.extend([root] * len(firsts), [[int(v)] for v in firsts])
    p2 = np.exp(lm.next_token_logprobs(kids) / power)  # [F, V]
    z = sum(p1[v] * math.exp(lam * a[v]) for v in np.flatnonzero(allowed & eos))
    for row, v in enumerate(firsts):
        tilt = np.exp(lam * (a[v] | a))  # [V]
        z += p1[v] * float((p2[row] * allowed * tilt).sum())
    return math.log(z)


# ------------------------------------------------------------------ the estimator


def test_one_token_log_z_is_the_masks_log_normaliser_exactly(lm):
    lip = Lipogram("e")
    result = ponder.search("smc", lm, None, PROMPT, n=6, max_new_tokens=1, mask=lip, seed=3)
    root = lm.root(PROMPT)
    logp = lm.next_token_logprobs([root])[0]  # [V]
    allowed = lip.allowed(lm.tokenizer, len(logp))
    expected = float(np.logaddexp.reduce(logp[allowed]))
    # every particle's weight is p(v) / q(v) = Z_1: the estimate has no variance
    assert result.info["log_z"] == pytest.approx(expected, abs=1e-4)
    assert np.allclose(result.info["log_weights"], result.info["log_weights"][0])
    assert all(lip.holds(c.text) for c in result.candidates)
    child = result.candidates[0]
    assert child.meta["log_normaliser"] == pytest.approx(child.step_logprob - child.step_proposal_logprob, abs=1e-4)


def a_guide(lm):
    """A proposal-only boost (+2) on every token containing "a" (the twist's letter)."""
    return TokenBoost([i for i, t in enumerate(token_texts(lm.tokenizer)) if "a" in t], 2.0, name="a-boost")


@pytest.mark.parametrize("resample,temperature,guide,power", [("every", 1.0, False, 1.0), ("ess", 0.7, False, 1.0),
                                                              ("never", 1.3, False, 1.0), ("every", 1.0, True, 1.0),
                                                              ("every", 0.5, False, 0.5)])
def test_log_z_estimate_is_unbiased_against_enumeration(lm, resample, temperature, guide, power):
    """E[Z_hat] = Z for the mask, the process twist e^{lam s}, a tempered proposal, a guide
    (which changes the proposal, not the target) and a tempered target p^(1/tau)."""
    lam = 1.0
    exact = exact_log_z(lm, lam=lam, power=power)
    zs = []
    for seed in range(40):
        result = ponder.search("smc", lm, has_a, PROMPT, n=4, max_new_tokens=2, mask=Lipogram("e"), lam=lam,
                               resample=resample, temperature=temperature, guide=a_guide(lm) if guide else None,
                               power=power, seed=seed)
        zs.append(math.exp(result.info["log_z"]))
        assert all("e" not in c.text.lower() for c in result.candidates)
    zs = np.array(zs)
    se = zs.std(ddof=1) / math.sqrt(len(zs))
    assert abs(zs.mean() - math.exp(exact)) < 3.5 * se + 1e-3 * math.exp(exact), (zs.mean(), math.exp(exact), se)


def test_twist_moves_particles_toward_the_process_score(lm):
    tilted = ponder.search("smc", lm, has_a, PROMPT, n=16, max_new_tokens=6, lam=4.0, resample="every", seed=0)
    plain = ponder.search("smc", lm, has_a, PROMPT, n=16, max_new_tokens=6, lam=0.0, resample="never", seed=0)
    share = lambda r: sum(w for c, w in zip(r.candidates, r.scores) if "a" in c.text)  # noqa: E731
    assert tilted.info["resamples"] > 0
    assert share(tilted) > share(plain) + 0.2
    assert sum(tilted.scores) == pytest.approx(1.0)


def test_end_strings_finish_particles_at_their_first_occurrence(lm):
    result = ponder.search("smc", lm, None, PROMPT, n=8, max_new_tokens=12, end=("a",), step_tokens=3, seed=0)
    ended = [c for c in result.candidates if not c.finished]
    assert ended, "no particle ended at an end string"
    for c in ended:
        steps = [s.step_text for s in c.path()[1:]]
        assert "a" in steps[-1] and not any("a" in t for t in steps[:-1])


# ------------------------------------------------------------------ hard constraints


def test_every_particle_dead_is_infeasible_without_nan(lm):
    def ban_everything(states, logits):
        return torch.full_like(logits, float("-inf"))

    result = ponder.search("smc", lm, None, PROMPT, n=4, max_new_tokens=3, mask=ban_everything, seed=0)
    assert result.stopped == "infeasible"
    assert result.candidates == [] and result.best is None
    assert result.info["log_z"] == -math.inf
    assert result.info["dead"] == 4
    assert not any(math.isnan(w) for w in result.info["log_weights"])


def test_zero_outcome_scores_are_infeasible(lm):
    never = verifier(lambda prompt, text: 0.0, name="never")
    result = ponder.search("smc", lm, never, PROMPT, n=4, max_new_tokens=3, outcome="log", seed=0)
    assert result.stopped == "infeasible" and result.candidates == [] and result.info["log_z"] == -math.inf


def test_hard_outcome_check_keeps_only_satisfying_particles(lm):
    lip = Lipogram("e")
    result = ponder.search("smc", lm, lip, PROMPT, n=12, max_new_tokens=4, outcome="log", seed=1)
    assert result.stopped == "done" and result.candidates
    assert all(lip.holds(c.text) for c in result.candidates)
    assert sum(result.scores) == pytest.approx(1.0)


def test_final_outcome_check_applies_beside_a_process_twist(lm):
    lip = Lipogram("e")
    result = ponder.search("smc", lm, has_a, PROMPT, n=12, max_new_tokens=4, lam=1.0, final=lip, outcome="log", seed=2)
    assert result.candidates and all(lip.holds(c.text) for c in result.candidates)
    with pytest.raises(ConfigError, match="verifier"):
        ponder.search("smc", lm, has_a, PROMPT, n=2, max_new_tokens=2, final=lambda p, t: 1.0, seed=0)


def test_lipogram_mask_bans_exactly_the_tokens_with_the_letter(lm):
    lip = Lipogram("E")
    texts = token_texts(lm.tokenizer)
    allowed = lip.allowed(lm.tokenizer)
    assert allowed.sum() < len(texts)
    for t, ok in zip(texts, allowed):
        assert ok == ("e" not in t.lower())
    hook = lip.logits_hook(lm.tokenizer)
    root = lm.root(PROMPT)
    kids = lm.expand([root], 8, step=Step(max_tokens=10), logits_hook=hook, seed=2)[0]
    assert all("e" not in k.text.lower() for k in kids)
    with pytest.raises(ConfigError, match="one letter"):
        Lipogram("ee")
    with pytest.raises(ConfigError, match="at least one token"):
        TokenMask(np.zeros(5, dtype=bool))


def test_keyword_scores_whole_words_within_the_token_window(lm):
    kw = Keyword("cat", within_tokens=3, tokenizer=lm.tokenizer)
    assert kw.kind == "process"
    assert kw.score(["", "", "", ""], ["a cat", "concatenate", "Cat!", "one two three four five six cat"]).tolist() == [1, 0, 1, 0]
    with pytest.raises(ConfigError, match="tokenizer"):
        Keyword("cat", within_tokens=3)
    starts = Keyword("the").starts(lm.tokenizer)
    texts = token_texts(lm.tokenizer)
    assert starts and all("the".startswith(texts[i].strip().lower()) and len(texts[i].strip()) == 3 for i in starts)


def test_word_guide_finishes_a_split_word_and_stops_once_written(lm):
    from ponder.models.decode import RowState

    guide = Keyword("scarf").guide(lm.tokenizer)
    root = lm.root(PROMPT)
    texts = [t.lower() for t in token_texts(lm.tokenizer)]
    logits = torch.zeros(3, len(texts))

    def row(text):
        return RowState(lm.extend([root], [lm.tokenizer.encode(text, add_special_tokens=False)])[0], ())

    out = guide([row(" a red sc"), row(" a red"), row(" a red scarf and")], logits)  # [3, V]
    raised = [set(np.flatnonzero(out[r].numpy() > 0)) for r in range(3)]
    assert raised[0] and all("arf".startswith(texts[i]) or texts[i].startswith("arf") for i in raised[0])
    assert raised[1] == set(guide.first) and all("scarf".startswith(texts[i].lstrip()) for i in raised[1])
    assert raised[2] == set()  # the word is written: no boost


def test_keyword_guide_raises_the_hit_rate_and_weights_take_it_back(lm):
    kw = Keyword("the")
    plain = ponder.search("smc", lm, kw, PROMPT, n=16, max_new_tokens=6, lam=0.0, resample="never", seed=0)
    guided = ponder.search("smc", lm, kw, PROMPT, n=16, max_new_tokens=6, lam=0.0, resample="never", guide=kw, seed=0)
    hits = lambda r: sum(kw.score([""], [c.text])[0] for c in r.candidates)  # noqa: E731
    assert hits(guided) > hits(plain)
    # lam = 0: the target is the model, so particles that took the boosted word weigh less
    logw = np.array(guided.info["log_weights"])
    assert logw.min() < logw.max() - 1.0


# ------------------------------------------------------------------ shared expansion, budget


class Recording:
    """The real tiny LM, recording how many distinct parents and rows each expand gets."""

    def __init__(self, lm):
        self.lm, self.calls = lm, []
        self.tokenizer = lm.tokenizer

    def root(self, prompt):
        return self.lm.root(prompt)

    def expand(self, parents, counts, **options):
        self.calls.append((len(parents), int(sum(counts))))
        return self.lm.expand(parents, counts, **options)


def test_resampled_copies_expand_as_one_parent(lm):
    gen = Recording(lm)
    longer = verifier(lambda prompt, text: len(text) / 4, name="longer", kind="process")  # varied weights: duplicates
    result = ponder.search("smc", gen, longer, PROMPT, n=8, max_new_tokens=4, lam=3.0, resample="every", seed=0)
    assert result.info["resamples"] >= 1
    assert gen.calls[0] == (1, 8)  # eight particles from one root: one parent
    assert any(parents < rows for parents, rows in gen.calls[1:])  # copies made by resampling share one parent


def test_token_budget_stops_with_particles(lm):
    result = ponder.search("smc", lm, None, PROMPT, n=4, max_new_tokens=30, budget=Budget(tokens=20), seed=0)
    assert result.stopped == "tokens"
    assert result.ledger.count("generated_tokens") <= 24
    assert len(result.candidates) >= 1 and result.info["log_z"] is not None


# ------------------------------------------------------------------ failures, configs


def test_nan_verifier_is_a_verifier_error_with_the_particles_so_far(lm):
    calls = []

    def flaky(prompt, text):
        calls.append(text)
        return float("nan") if len(calls) == 6 else 0.5

    with pytest.raises(VerifierError) as info:
        ponder.search("smc", lm, flaky, PROMPT, n=4, max_new_tokens=5, seed=0)
    err = info.value
    assert "flaky" in str(err) and err.index is not None and 0 <= err.index < 4
    assert err.partial is not None and err.partial.stopped == "interrupted" and len(err.partial.candidates) >= 1


def test_nan_token_potential_is_a_verifier_error(lm):
    def broken(states, logits):
        out = logits.clone()
        out[:, 3] = float("nan")
        return out

    with pytest.raises(VerifierError, match="broken"):
        ponder.search("smc", lm, None, PROMPT, n=2, max_new_tokens=3, mask=broken, seed=0)


@pytest.mark.parametrize("field,value,match", [
    ("lam", -1.0, "lam"), ("ess_threshold", 1.5, "ess_threshold"), ("every", 0, "every"), ("temperature", 0.0, "temperature"),
    ("resample", "sometimes", "resample"), ("mask", "e", "mask"), ("n", 0, "n"), ("outcome", "linear", "outcome"),
])
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        SMCConfig(**{field: value})


def test_negative_score_with_log_outcome_is_refused(lm):
    neg = verifier(lambda prompt, text: -1.0, name="neg")
    with pytest.raises(VerifierError, match=">= 0"):
        ponder.search("smc", lm, neg, PROMPT, n=2, max_new_tokens=2, outcome="log", seed=0)


# ------------------------------------------------------------------ the real model


def test_smollm2_lipogram_by_smc(smollm2):
    lip = Lipogram("e")
    prompt = "Write one sentence about a cat."  # the chat template applies ("auto")
    result = ponder.search("smc", smollm2, lip, prompt, n=4, max_new_tokens=8, mask=lip, outcome="log", seed=0)
    assert result.stopped == "done" and result.candidates
    assert all(lip.holds(c.text) and c.text.strip() for c in result.candidates)
    assert math.isfinite(result.info["log_z"]) and result.info["log_z"] < 0
