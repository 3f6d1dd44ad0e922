"""Verifiers: the base class, the error type and the checked call path.

A verifier scores candidates in batches, higher is better (see
:class:`ponder.search.protocols.Verifier`). Its ``kind`` says what it can judge:

- ``"outcome"``: whole answers;
- ``"process"``: partial answers or single steps (scored exactly like whole ones: the text
  generated so far, after the prompt);
- ``"token"``: a vector over the vocabulary for one prefix, entry ``v`` scoring the prefix
  extended by token ``v`` (Saffron's multifurcation reward model); see :meth:`Verifier.score_tokens`.

:func:`run_verifier` is the one checked path: an exception, a timeout, a NaN or infinite score,
or the wrong number of scores becomes a :class:`VerifierError` naming the verifier and the
candidate, and nothing from the failed batch is cached. Both live in
:mod:`ponder.search.verify` (searches score states without importing this package) and are
re-exported here.

Plain functions become verifiers in :mod:`ponder.verifiers.function`; searches score nodes,
with the per-state cache, through :func:`ponder.search.verify.score_states`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ponder.search.verify import VerifierError, excerpt, run_token_verifier, run_verifier

__all__ = [
    "Verifier",
    "VerifierError",
    "run_verifier",
    "run_token_verifier",
]


class Verifier:
    """Base class of verifiers.

    Subclasses set ``name`` (the cache key under ``Node.scores``; defaults to the class name) and
    ``kind`` (one of ``KINDS``), and implement :meth:`score`; token verifiers implement
    :meth:`score_tokens` (and :meth:`score` if they can score a text as it stands).

    Calling a verifier on one pair, ``v(prompt, text)``, returns one checked float.
    """

    name: str = "verifier"
    kind: str = "outcome"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """One float per (prompt, candidate) pair, higher is better.           # [B] float64

        A candidate is what the searched states hold (``State.candidate``): the generated text
        for language-model states, so text verifiers take ``texts``.
        """
        raise NotImplementedError(f"{type(self).__name__} ({self.kind} verifier {self.name!r}) does not implement score()")

    def score_tokens(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """For token verifiers: ``out[b, v]`` scores ``texts[b]`` extended by token ``v``.  # [B, V]"""
        raise NotImplementedError(f"{type(self).__name__} ({self.kind} verifier {self.name!r}) does not implement score_tokens()")

    def __call__(self, prompt: str, text: str) -> float:
        return float(run_verifier(self, [prompt], [text])[0])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} kind={self.kind!r}>"
