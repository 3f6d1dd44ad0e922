r"""Token sampling: temperature, top-k, top-p (nucleus), greedy at temperature 0.

Given logits z over the vocabulary, the sampling distribution is

    q(v) ∝ exp(z_v / T) · [v ∈ top-k(z)] · [v ∈ nucleus_p(z / T)]

where nucleus_p keeps the smallest set of most likely tokens whose mass reaches p. T = 0 is
greedy (argmax). A token is drawn by inverting the CDF: with :math:`C_v = \sum_{u \le v} q(u)`
and one uniform :math:`U` per row, the token is the first :math:`v` with :math:`C_v > U C_V`
(one cumulative sum over the vocabulary, where ``torch.multinomial`` draws an exponential
variate per token: about 20x the work at SmolLM2's 49,152 tokens). Node log-probabilities are always those of the *model* (T = 1, untruncated),
so scores stay comparable across sampling settings; :meth:`Sampling.sample` also returns
:math:`\log q` of each drawn token (the proposal's; 0 when greedy), for importance weights.

Random streams. The generator gives every row its own stream: the uniforms of child ``j`` of
the parent at position ``i`` of a call seeded ``s`` come from a ``torch.Generator`` seeded
with ``row_seed(s, i, j)`` (numpy's ``SeedSequence`` over ``(s, i, j)``), so a row's tokens do
not depend on which other rows share its batch. (This changed once, when per-row streams came
in: a given seed draws different tokens than it did with one stream per call.)
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import torch

from ponder.search.protocols import ConfigError


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How to draw tokens.

    Args:
        temperature: T >= 0; 0 is greedy.
        top_k: keep the k most likely tokens (0 = all).
        top_p: keep the nucleus of mass p, 0 < p <= 1 (1 = all).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not isinstance(self.top_k, numbers.Integral) or isinstance(self.top_k, bool) or self.top_k < 0:
            raise ConfigError(f"top_k must be an integer >= 0 (0 keeps every token), got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")

    def draw(self, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One token per row, the uniforms from one generator.

        Args:
            logits: [R, V] float.
            generator: the seeded torch RNG of this call.

        Returns:
            token ids [R] (int64).
        """
        u = None if self.temperature == 0 else torch.rand((logits.shape[0],), generator=generator, dtype=torch.float32)
        return self.sample(logits, u)[0]

    def sample(self, logits: torch.Tensor, uniforms: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per row by inverting q's CDF at ``uniforms``, and log q of each.

        Args:
            logits: [R, V] float.
            uniforms: U ~ Uniform[0, 1) per row [R] (unused and may be None when greedy).

        Returns:
            token ids [R] (int64) and log q(token) [R] float32 (0 when greedy).
        """
        if self.temperature == 0:
            tokens = logits.argmax(dim=-1)
            return tokens, torch.zeros(tokens.shape, dtype=torch.float32)
        z = logits.float() if self.temperature == 1 else logits.float() / self.temperature  # [R, V]
        if self.top_k and self.top_k < z.shape[-1]:
            kth = torch.topk(z, self.top_k, dim=-1).values[:, -1:]  # [R, 1]
            z = z.masked_fill(z < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_z, order = torch.sort(z, dim=-1, descending=True)
            probs = torch.softmax(sorted_z, dim=-1)
            mass_before = torch.cumsum(probs, dim=-1) - probs  # mass of strictly better tokens
            sorted_z = sorted_z.masked_fill(mass_before >= self.top_p, float("-inf"))
            z = torch.full_like(z, float("-inf")).scatter(-1, order, sorted_z)
        probs = torch.softmax(z, dim=-1)  # [R, V]
        cdf = torch.cumsum(probs, dim=-1)  # [R, V]
        u = uniforms.to(cdf.dtype).reshape(-1, 1) * cdf[:, -1:]  # [R, 1]
        tokens = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)  # [R, 1]
        # rounding can land U C_V on the final plateau of zero-probability tokens; take the mode there
        stray = probs.gather(-1, tokens) == 0  # [R, 1]
        if bool(stray.any()):
            tokens = torch.where(stray, probs.argmax(dim=-1, keepdim=True), tokens)
        log_q = probs.gather(-1, tokens).log().squeeze(-1)  # [R]
        return tokens.squeeze(-1), log_q


def row_seed(seed: int, parent: int, child: int) -> int:
    """The seed of the stream of child ``child`` of the parent at position ``parent`` in a call."""
    return int(np.random.SeedSequence((int(seed), int(parent), int(child))).generate_state(1, np.uint64)[0] >> 1)
