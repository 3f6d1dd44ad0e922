"""An LM as a verifier (ponder.verifiers.lm_judge): the expected verdict from one next-token read."""

import numpy as np
import pytest

import ponder.models as pm
from ponder.search.ledger import Ledger
from ponder.search.protocols import ConfigError
from ponder.verifiers.lm_judge import LMJudge, game24_lm_value


@pytest.fixture(scope="module")
def lm():
    return pm.tiny_llama(seed=0)


def test_judge_score_is_the_normalised_expected_verdict(lm):
    judge = LMJudge(lm, lambda p, c: f"{p} {c} -> ", {"yes": 1.0, "no": 0.0}, name="yes_no", space="none")
    scores = judge.score(["Is it", "Is it"], ["red", "blue"])
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    # the same computation by hand, from the model's distribution
    roots = [lm.root(f"Is it {c} -> ", chat="raw") for c in ("red", "blue")]
    logp = lm.next_token_logprobs(roots)[:, judge.ids]
    p = np.exp(logp)
    assert np.allclose(scores, p[:, 0] / p.sum(-1), atol=1e-6)


def test_judge_charges_the_lm_tokens_to_the_ledger(lm):
    judge = game24_lm_value(lm)
    ledger = Ledger()
    with ledger.active():
        v = judge.score([None, None], [(4, 6), (1, 1, 1)])
    assert ledger.computed_tokens > 0
    assert np.all((v >= 0.01) & (v <= 1.0))


def test_verdicts_must_start_with_different_tokens(lm):
    with pytest.raises(ConfigError, match="at least two"):
        LMJudge(lm, lambda p, c: c, {"sure": 1.0})
    with pytest.raises(ConfigError, match="share a first token"):
        LMJudge(lm, lambda p, c: c, {"sure": 1.0, "sure thing": 0.5})
