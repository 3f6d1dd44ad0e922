r"""Hard constraints on generated text: checks on the decoded text and, where the constraint is
token-local, a vocabulary mask for constrained sampling.

- :class:`Lipogram`: no letter ``letter`` (either case) in the text. ``score`` is the 1/0 check
  on the decoded text (an outcome verifier); ``logits_hook(tokenizer)`` builds a
  :class:`TokenMask` banning every token whose decoded text contains the letter, so a sampler
  with the hook (SMC's ``mask=``, or ``LM.expand(..., logits_hook=...)``) satisfies the
  constraint by construction. The mask is exact for the check: a decoded text contains the
  letter iff one of its tokens' decoded texts does (the letter is one ASCII byte, never part of
  a multi-byte character, and decoding only concatenates and trims spaces). Special tokens
  decode to nothing and stay allowed, EOS among them.
- :class:`Keyword`: the word occurs in the text (whole word, any case), within its first
  ``within_tokens`` tokens when given. A process verifier: a partial text that contains the word
  keeps it. Scores 1/0; :math:`\lambda` turns it into the potential :math:`e^{\lambda s}` of SMC.

Both are registered by name (``ponder.verifiers.get("lipogram", letter="e")``, ``"keyword"``).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from ponder.models.vocab import token_texts
from ponder.search.protocols import KINDS, ConfigError, check_choice
from ponder.verifiers.base import Verifier

__all__ = ["Keyword", "Lipogram", "TokenBoost", "TokenMask", "WordGuide", "token_texts"]


class TokenMask:
    """A logits hook banning tokens: ``hook(states, logits)`` returns the logits with every
    banned token at ``-inf`` (the states are not looked at).

    Args:
        allowed: per token id, whether it may be sampled.                       # [V] bool
        name: named in errors and results.
    """

    def __init__(self, allowed: np.ndarray, *, name: str = "mask"):
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.ndim != 1 or not allowed.any():
            raise ConfigError(f"token mask {name!r} must be a 1-D boolean array allowing at least one token")
        self.allowed = allowed  # [V]
        self.name = name
        self._banned = None  # torch bool [V], built on first use

    def __call__(self, states: Sequence[Any], logits):
        import torch

        if self._banned is None or self._banned.shape[0] != logits.shape[-1]:
            allowed = np.zeros(logits.shape[-1], dtype=bool)
            m = min(len(allowed), len(self.allowed))
            allowed[:m] = self.allowed[:m]  # ids beyond the mask's vocabulary are banned
            self._banned = torch.from_numpy(~allowed)
        return logits.masked_fill(self._banned, float("-inf"))

    def __repr__(self) -> str:
        return f"TokenMask({self.name!r}, {int(self.allowed.sum())} of {len(self.allowed)} tokens allowed)"


class TokenBoost:
    """A logits hook adding a log-potential ``boost`` to some tokens: ``hook(states, logits)``
    returns ``logits + boost * 1[token in ids]`` (used as SMC's proposal-only ``guide``).

    Args:
        ids: the boosted token ids.
        boost: the log-potential added (finite).
        name: named in errors and results.
    """

    def __init__(self, ids: Sequence[int], boost: float, *, name: str = "boost"):
        ids = sorted({int(i) for i in ids})
        if not ids:
            raise ConfigError(f"token boost {name!r} has no token to boost")
        if not isinstance(boost, (int, float)) or isinstance(boost, bool) or not np.isfinite(boost):
            raise ConfigError(f"token boost {name!r}: boost must be a finite number, got {boost!r}")
        self.ids, self.boost, self.name = ids, float(boost), name
        self._add = None  # torch float [V], built on first use

    def __call__(self, states: Sequence[Any], logits):
        import torch

        if self._add is None or self._add.shape[0] != logits.shape[-1]:
            add = torch.zeros(logits.shape[-1])
            add[[i for i in self.ids if i < logits.shape[-1]]] = self.boost
            self._add = add
        return logits + self._add

    def __repr__(self) -> str:
        return f"TokenBoost({self.name!r}, {len(self.ids)} tokens, +{self.boost})"


class WordGuide:
    """A logits hook raising the tokens that write a required word (SMC's proposal-only ``guide``).

    Per row, from the row's text so far: nothing once the word occurs (whole word, any case);
    else ``+boost`` on the tokens that *continue* a started word, when the text ends with the
    beginning of the word (two letters or more) at a word boundary (``" sc"`` before ``"arf"``);
    else on the tokens
    that *begin* it (their text, leading spaces dropped, a prefix of the word of at least three
    characters, or all of it; shorter where the vocabulary has no such token). So words the tokenizer splits are guided to their end, and a
    particle that wrote the word is left alone.

    Args:
        word: the word (matched in any case).
        tokenizer: decodes the vocabulary and the rows' tails.
        boost: the log-potential (finite).
        vocab_size: the logits' width (default ``len(tokenizer)``).
    """

    def __init__(self, word: str, tokenizer: Any, *, boost: float, vocab_size: int | None = None, name: str | None = None):
        if not isinstance(boost, (int, float)) or isinstance(boost, bool) or not np.isfinite(boost):
            raise ConfigError(f"word guide: boost must be a finite number, got {boost!r}")
        self.word, self.tokenizer, self.boost = word.lower(), tokenizer, float(boost)
        self.name = name or f"guide({word})"
        self.texts = [t.lower() for t in token_texts(tokenizer, vocab_size)]  # [V]
        self.pattern = re.compile(r"(?<!\w)" + re.escape(self.word) + r"(?!\w)")
        begins = [(i, len(t.lstrip())) for i, t in enumerate(self.texts) if t.strip() and self.word.startswith(t.lstrip())]
        if not begins:
            raise ConfigError(f"word guide: no token begins {word!r}")
        need = min(3, max(n for _, n in begins))  # three characters, or the longest beginning the vocabulary has
        self.first = [i for i, n in begins if n >= need]
        self._next: dict[str, list[int]] = {}  # a started prefix of the word -> tokens that continue it

    def _continuing(self, started: str) -> list[int]:
        ids = self._next.get(started)
        if ids is None:
            rest = self.word[len(started):]
            ids = self._next[started] = [i for i, t in enumerate(self.texts) if t and (rest.startswith(t) or t.startswith(rest))]
        return ids

    def _started(self, tail: str) -> str | None:
        """The longest proper prefix of the word that ``tail`` ends with, at a word boundary."""
        for k in range(min(len(self.word) - 1, len(tail)), min(2, len(self.word) - 1) - 1, -1):
            if tail.endswith(self.word[:k]) and (len(tail) == k or not tail[-k - 1].isalnum()):
                return self.word[:k]
        return None

    def __call__(self, states: Sequence[Any], logits):
        import torch

        add = torch.zeros_like(logits)
        for r, state in enumerate(states):
            parent = state.parent
            tail = self.tokenizer.decode(list(parent.tokens[-3:]) + list(state.step_tokens), skip_special_tokens=True).lower()
            if self.pattern.search(tail) or self.pattern.search(parent.text.lower()):
                continue
            started = self._started(tail)
            ids = self._continuing(started) if started else self.first
            add[r, [i for i in ids if i < logits.shape[-1]]] = self.boost
        return logits + add


class Lipogram(Verifier):
    """A text without the letter ``letter`` (either case): 1.0, else 0.0; see the module docstring.

    Args:
        letter: one letter (default "e").
        name: default ``"lipogram(<letter>)"``.
        kind: "outcome" by default (the check holds for partial texts too, so "process" also works).
    """

    def __init__(self, letter: str = "e", *, name: str | None = None, kind: str = "outcome"):
        if not isinstance(letter, str) or len(letter) != 1 or not letter.isalpha():
            raise ConfigError(f"lipogram letter must be one letter, got {letter!r}")
        self.letter = letter
        self.forms = {letter.lower(), letter.upper()}
        self.name = name or f"lipogram({letter.lower()})"
        self.kind = check_choice("verifier kind", kind, KINDS)

    def holds(self, text: str) -> bool:
        return not any(c in text for c in self.forms)

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.holds(t) for t in texts), dtype=np.float64, count=len(texts))  # [B]

    def allowed(self, tokenizer: Any, vocab_size: int | None = None) -> np.ndarray:
        """Per token id, whether its decoded text lacks the letter (EOS and other special tokens
        decode to "" and are allowed).                                          # [V] bool"""
        allowed = np.fromiter((self.holds(t) for t in token_texts(tokenizer, vocab_size)), dtype=bool)
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is not None and eos < len(allowed):
            allowed[eos] = True
        return allowed

    def logits_hook(self, tokenizer: Any, vocab_size: int | None = None) -> TokenMask:
        """The :class:`TokenMask` of :meth:`allowed`: sampling with it never writes the letter."""
        return TokenMask(self.allowed(tokenizer, vocab_size), name=self.name)


class Keyword(Verifier):
    """1.0 when ``word`` occurs in the text as a whole word (any case), else 0.0.

    Args:
        word: the required word (or phrase).
        within_tokens: only the text's first ``within_tokens`` tokens count (re-tokenised with
            ``tokenizer``, which is then required); None: the whole text. A search that stops at
            ``max_new_tokens = within_tokens`` enforces the same bound exactly.
        tokenizer: counts tokens for ``within_tokens``.
        boost: the log-potential :meth:`guide` adds to the tokens that begin the word.
        name: default ``"keyword(<word>)"``.
        kind: "process" by default (a partial text containing the word keeps it).
    """

    def __init__(self, word: str, *, within_tokens: int | None = None, tokenizer: Any = None, boost: float = 4.0,
                 name: str | None = None, kind: str = "process"):
        if not isinstance(word, str) or not word.strip():
            raise ConfigError(f"keyword must be a non-empty string, got {word!r}")
        if within_tokens is not None and (isinstance(within_tokens, bool) or not isinstance(within_tokens, int) or within_tokens < 1):
            raise ConfigError(f"keyword within_tokens must be an integer >= 1 or None, got {within_tokens!r}")
        if within_tokens is not None and tokenizer is None:
            raise ConfigError("keyword within_tokens needs the tokenizer that counts the tokens")
        self.word = word.strip()
        self.within_tokens = within_tokens
        self.tokenizer = tokenizer
        self.boost = boost
        self.pattern = re.compile(r"(?<!\w)" + re.escape(self.word) + r"(?!\w)", re.IGNORECASE)
        self.name = name or f"keyword({self.word})"
        self.kind = check_choice("verifier kind", kind, KINDS)

    def _head(self, text: str) -> str:
        if self.within_tokens is None:
            return text
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= self.within_tokens else self.tokenizer.decode(ids[: self.within_tokens])

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        search = self.pattern.search
        return np.fromiter((search(self._head(t)) is not None for t in texts), dtype=np.float64, count=len(texts))  # [B]

    def starts(self, tokenizer: Any, vocab_size: int | None = None) -> list[int]:
        """Token ids that begin the word (:class:`WordGuide`'s first tokens)."""
        return self.guide(tokenizer, vocab_size).first

    def guide(self, tokenizer: Any, vocab_size: int | None = None) -> WordGuide:
        """A proposal-only hook for SMC (``guide=``): a :class:`WordGuide`, ``+boost`` on the
        tokens that begin the word and then on those that finish it, until a row has written
        it; SMC's weights take the boost back out (:math:`\\log p - \\log q`), and the
        keyword's process score decides what survives."""
        return WordGuide(self.word, tokenizer, boost=self.boost, vocab_size=vocab_size, name=f"{self.name} guide")
