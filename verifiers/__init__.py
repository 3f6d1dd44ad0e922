"""Verifiers: score candidates in batches, higher is better.

Kinds: "outcome" (whole answers), "process" (partial answers / steps) and "token" (a vector
over the vocabulary for one prefix). Any ``fn(prompt, text) -> float`` becomes a verifier with
:func:`verifier`; verifiers combine with :func:`weighted_sum`, :func:`product` and
:func:`threshold`; searches score nodes through :func:`score_nodes`, which caches per node,
charges the ledger and turns every failure into a :class:`VerifierError`.

Built-ins, by registered name (:func:`get`):

==============  ==========================================================  ========
name            score                                                       kind
==============  ==========================================================  ========
math_answer     1.0 when the final number equals the reference, else 0.0     outcome
regex           1.0 when the pattern is found, else 0.0                      outcome
refusal         1.0 when a refusal phrase (GCG judge) occurs, else 0.0       process
length          ``-per_token * n_tokens``                                    process
arithmetic      share of correct ``a op b = c`` equations (a calculator)     process
game24_value    P(a Game of 24 state can still reach 24), a learned MLP      process
game24_policy   P(a call leads to a solvable state), scored before it runs   process
digit_class     log p(target | x) for an 8x8 digit image, a small CNN        outcome
                robust to blurry x0 predictions (target: an int, or the
                prompt)
digit_judge     the same from a CNN trained on a disjoint split (grading)    outcome
lipogram        1.0 when the text lacks a letter (either case); its          outcome
                ``logits_hook(tokenizer)`` masks the vocabulary
keyword         1.0 when a word occurs (whole word, within N tokens); its     process
                ``guide(tokenizer)`` raises the word's first tokens (SMC)
==============  ==========================================================  ========

Third-party verifiers register through the ``ponder.verifiers`` entry-point group.
"""

from ponder.verifiers.arithmetic import Arithmetic, arithmetic, check_equations
from ponder.verifiers.answers import MathAnswer, extract_answer, math_answer, normalize_number
from ponder.verifiers.base import Verifier, VerifierError, run_token_verifier, run_verifier
from ponder.verifiers.function import FunctionVerifier, verifier
from ponder.verifiers.nodes import as_verifier, score_node_tokens, score_nodes
from ponder.verifiers.compose import combine, product, threshold, weighted_sum
from ponder.verifiers.constraints import Keyword, Lipogram, TokenBoost, TokenMask, WordGuide
from ponder.verifiers.registry import ENTRY_POINT_GROUP, available, get, refresh_plugins, register
from ponder.verifiers.text import REFUSAL_PHRASES, length, refusal, regex



def game24_value(**options):
    """The learned Game of 24 value (:class:`ponder.verifiers.game24.Game24Value`), imported on use."""
    from ponder.verifiers.game24 import Game24Value

    return Game24Value(**options)


def game24_policy(**options):
    """The learned Game of 24 policy over calls (:class:`ponder.verifiers.game24.Game24Policy`), imported on use."""
    from ponder.verifiers.game24 import Game24Policy

    return Game24Policy(**options)


def digit_class(**options):
    """``log p(target | x)`` under the reward digit classifier (:class:`ponder.verifiers.digits.DigitClass`), imported on use."""
    from ponder.verifiers.digits import digit_class as factory

    return factory(**options)


def digit_judge(**options):
    """``log p(target | x)`` under the judge digit classifier (disjoint training split), imported on use."""
    from ponder.verifiers.digits import digit_judge as factory

    return factory(**options)


for _name, _factory in (("math_answer", math_answer), ("regex", regex), ("refusal", refusal), ("length", length), ("arithmetic", arithmetic),
                        ("game24_value", game24_value), ("game24_policy", game24_policy),
                        ("digit_class", digit_class), ("digit_judge", digit_judge)):
    register(_name, _factory, if_exists="replace")
del _name, _factory
register("lipogram", Lipogram, if_exists="replace")
register("keyword", Keyword, if_exists="replace")

__all__ = [
    "Verifier",
    "FunctionVerifier",
    "VerifierError",
    "verifier",
    "as_verifier",
    "run_verifier",
    "run_token_verifier",
    "score_nodes",
    "score_node_tokens",
    "weighted_sum",
    "combine",
    "product",
    "threshold",
    "register",
    "get",
    "available",
    "refresh_plugins",
    "ENTRY_POINT_GROUP",
    "math_answer",
    "MathAnswer",
    "extract_answer",
    "normalize_number",
    "regex",
    "refusal",
    "length",
    "REFUSAL_PHRASES",
    "arithmetic",
    "Arithmetic",
    "check_equations",
    "game24_value",
    "game24_policy",
    "digit_class",
    "digit_judge",
    "Lipogram",
    "Keyword",
    "TokenMask",
    "TokenBoost",
    "WordGuide",
]
