r"""A language model as a verifier: the expected value of its next word over a few labelled answers.

The candidate is written into a prompt (``template(prompt, candidate) -> str``) that ends where the
model names a verdict, such as Tree of Thoughts' Game of 24 value prompt ("sure / likely /
impossible"). Instead of sampling a verdict, the judge reads the model's next-token distribution
once, batched over all candidates (so the prompt's few-shot lines put the verdict right after
the arrow), and returns the expected value of the verdicts,

.. math::  v(x) = \frac{\sum_j p(w_j \mid \text{prompt}(x))\, c_j}{\sum_j p(w_j \mid \text{prompt}(x))},

where :math:`w_j` is the first token of verdict :math:`j` (with its leading space) and
:math:`c_j` its value. The normalisation over the verdicts makes the score a proper average even
when the model puts most of its mass elsewhere. Every call charges the LM's tokens to the active
ledgers like any generator call, and ``verifier_seconds`` through the search's scoring path, so a
judge's cost is visible beside the search's own.

:func:`game24_lm_value` builds the Tree-of-Thoughts-style judge of Game of 24 states.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ponder.search.protocols import ConfigError
from ponder.verifiers.base import Verifier

__all__ = ["LMJudge", "game24_lm_value", "GAME24_VALUE_PROMPT"]


class LMJudge(Verifier):
    """Score candidates by an LM's expected verdict.

    Args:
        lm: a generator with ``root(text, chat=...)``, ``next_token_logprobs(nodes)`` and a
            ``tokenizer`` (e.g. :class:`ponder.models.LM`).
        template: ``(prompt, candidate) -> str``, the judge's prompt, ending where the verdict goes.
        verdicts: verdict word -> value (at least two; the words' first tokens must differ).
        name, kind: the verifier's name and kind.
        chat: how the LM reads the judge's prompt ("raw" for a few-shot completion prompt).
        space: "before" (the verdict follows the prompt after a space, as " sure": the usual
            case for BPE vocabularies) or "none" (the template ends with the space itself).
    """

    def __init__(self, lm: Any, template: Callable[[Any, Any], str], verdicts: Mapping[str, float], *, name: str = "lm_judge",
                 kind: str = "process", chat: str = "raw", space: str = "before"):
        if space not in ("before", "none"):
            raise ConfigError(f"LMJudge space must be 'before' or 'none', got {space!r}")
        if len(verdicts) < 2:
            raise ConfigError(f"LMJudge needs at least two verdicts, got {dict(verdicts)!r}")
        self.lm, self.template, self.chat = lm, template, chat
        self.name, self.kind = name, kind
        tok = lm.tokenizer
        ids = []
        for word in verdicts:
            pieces = tok.encode((" " if space == "before" else "") + word.strip(), add_special_tokens=False)
            if not pieces:
                raise ConfigError(f"verdict {word!r} encodes to no token")
            ids.append(pieces[0])
        if len(set(ids)) != len(ids):
            raise ConfigError(f"verdicts {list(verdicts)} share a first token; choose words that start differently")
        self.ids = np.array(ids)  # [J]
        self.values = np.array([float(v) for v in verdicts.values()])  # [J]

    def score(self, prompts: Sequence[Any], candidates: Sequence[Any]) -> np.ndarray:
        roots = [self.lm.root(self.template(p, c), chat=self.chat) for p, c in zip(prompts, candidates)]
        logp = self.lm.next_token_logprobs(roots)[:, self.ids].astype(np.float64)  # [B, J]
        w = np.exp(logp - logp.max(-1, keepdims=True))
        return (w @ self.values) / w.sum(-1)  # [B]


GAME24_VALUE_PROMPT = (
    "Can the numbers reach 24 with + - * / ? Answer sure, likely or impossible.\n"
    "Numbers: 10 14 -> sure\n"
    "Numbers: 4 4 10 -> sure\n"
    "Numbers: 11 12 -> impossible\n"
    "Numbers: 5 7 8 -> likely\n"
    "Numbers: 1 3 3 -> impossible\n"
    "Numbers: 2 3 4 -> sure\n"
    "Numbers: 1 1 1 -> impossible\n"
    "Numbers: {numbers} ->"
)


def game24_lm_value(lm: Any, *, name: str = "game24_lm_value") -> LMJudge:
    """The LM's value of a Game of 24 state: ``sure`` 1.0, ``likely`` 0.5, ``impossible`` 0.01
    (Tree of Thoughts' three verdicts, read from one next-token distribution rather than sampled).

    The candidate is a state's numbers (a tuple of Fractions, or a state with ``.world``); a
    solved state is not special-cased, so A* still needs its goal test."""
    from ponder.models.game24 import format_numbers  # noqa: PLC0415 - models is below verifiers

    def template(prompt, candidate):
        numbers = getattr(candidate, "world", candidate)
        return GAME24_VALUE_PROMPT.format(numbers=format_numbers(numbers))

    return LMJudge(lm, template, {"sure": 1.0, "likely": 0.5, "impossible": 0.01}, name=name)
