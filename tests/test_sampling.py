"""Token sampling draws from the distribution it documents (chi-square against the exact q)."""

import numpy as np
import pytest
import torch

from ponder.models.sampling import Sampling
from ponder.search.protocols import ConfigError

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0, float("-inf"), 1.5])
CHI2_DF7_P0001 = 24.32  # chi-square critical value at p = 0.001 for 7 degrees of freedom, the most any case here has


def expected(sampling: Sampling) -> np.ndarray:
    """q(v) from the module docstring's formula, computed independently of ``draw``."""
    z = LOGITS.double().numpy() / sampling.temperature
    keep = np.isfinite(z)
    if sampling.top_k:
        keep &= z >= np.sort(z)[::-1][sampling.top_k - 1]
    p = np.where(keep, np.exp(z - z[keep].max()), 0.0)
    p /= p.sum()
    if sampling.top_p < 1:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        p[order[before >= sampling.top_p]] = 0.0
        p /= p.sum()
    return p


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.7), Sampling(top_k=3), Sampling(top_p=0.8, temperature=1.3)])
def test_draws_follow_the_sampling_distribution(sampling):
    n = 40_000
    rows = LOGITS.repeat(n // 8, 1)  # [n/8, V]: 8 batches of rows
    gen = torch.Generator().manual_seed(0)
    tokens = torch.cat([sampling.draw(rows, gen) for _ in range(8)]).numpy()
    q = expected(sampling)
    counts = np.bincount(tokens, minlength=len(q))
    assert counts[q == 0].sum() == 0  # never a token outside the support
    support = q > 0
    chi2 = (((counts - n * q) ** 2)[support] / (n * q[support])).sum()
    assert chi2 < CHI2_DF7_P0001, (counts, n * q)


def test_greedy_and_seeds():
    gen = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    rows = LOGITS.repeat(4, 1)
    assert Sampling(temperature=0).draw(rows, gen(0)).tolist() == [0, 0, 0, 0]
    assert torch.equal(Sampling().draw(rows, gen(1)), Sampling().draw(rows, gen(1)))
    one_hot = torch.full((3, 8), float("-inf"))
    one_hot[:, 5] = 0.0  # all mass on a late token: the plateau after it has zero probability
    assert Sampling().draw(one_hot, gen(2)).tolist() == [5, 5, 5]
    with pytest.raises(ConfigError, match="top_p"):
        Sampling(top_p=0)
