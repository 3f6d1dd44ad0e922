"""The digits the repository ships, their fixed split, the two committed digit classifiers
(ponder.verifiers.digits) and the committed digits DDPM (ponder.models.digits)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from ponder import data
from ponder.search.protocols import ConfigError
from ponder.verifiers import digits as vd
from ponder.verifiers.digits import DigitClass

LABEL_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(scope="module")
def digits():
    return data.digits()


@pytest.fixture(scope="module")
def splits(digits):
    return data.digits_splits(digits[1])


@pytest.fixture(scope="module")
def reward():
    return DigitClass()


@pytest.fixture(scope="module")
def judge():
    return DigitClass(classifier="judge")


def _accuracy(classifier, digits, index):
    images, labels = digits
    return float((classifier.predict(torch.from_numpy(images[index])) == labels[index]).mean())


def test_the_shipped_array_has_its_shape_dtype_and_label_counts(digits):
    with np.load(data.path("digits.npz")) as z:
        raw, labels = z["images"], z["labels"]
    assert raw.shape == (1797, 8, 8) and raw.dtype == np.uint8 and raw.min() == 0 and raw.max() == 16
    assert labels.shape == (1797,) and labels.dtype.kind == "i" and np.bincount(labels).tolist() == LABEL_COUNTS
    images, y = digits
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32 and y.dtype == np.int64
    assert images.min() == -1.0 and images.max() == 1.0
    np.testing.assert_allclose(images[:, 0], raw / 8.0 - 1.0)


def test_the_splits_are_disjoint_fixed_and_the_ddpm_split_is_everything(digits, splits):
    names = ("reward_train", "reward_heldout", "judge_train", "judge_heldout")
    sets = {n: set(splits[n].tolist()) for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not sets[a] & sets[b], (a, b)
    assert set().union(*sets.values()) == set(range(1797))
    assert splits["ddpm"].tolist() == list(range(1797))
    again = data.digits_splits()
    assert all(np.array_equal(splits[n], again[n]) for n in splits)
    for who in ("reward", "judge"):  # every class in both halves, 15% of each half held out
        half = len(splits[f"{who}_train"]) + len(splits[f"{who}_heldout"])
        assert abs(len(splits[f"{who}_heldout"]) / half - 0.15) < 0.01
        assert np.bincount(digits[1][splits[f"{who}_heldout"]], minlength=10).min() >= 10


def test_each_classifier_is_above_90_percent_on_its_own_heldout_images(digits, splits, reward, judge):
    assert reward.meta["split"] == "reward_train" and judge.meta["split"] == "judge_train"
    assert _accuracy(reward, digits, splits["reward_heldout"]) > 0.9
    assert _accuracy(judge, digits, splits["judge_heldout"]) > 0.9


def test_the_judge_is_above_90_percent_on_the_reward_classifiers_heldout_images(digits, splits, judge):
    assert _accuracy(judge, digits, splits["reward_heldout"]) > 0.9


def test_digit_class_scores_one_finite_log_probability_per_candidate(digits, reward):
    images = torch.from_numpy(digits[0][:3])
    candidates = [images[0], images[1, 0], images[2].expand(3, 8, 8), torch.randn(1, 8, 8) * 3]  # [1,8,8], [8,8], RGB, x_T-like
    scores = DigitClass(target=3).score([None] * 4, candidates)
    assert scores.shape == (4,) and scores.dtype == np.float64
    assert np.isfinite(scores).all() and (scores <= 0).all()
    np.testing.assert_allclose(np.exp(scores[:3]), reward.probs(images)[:, 3], rtol=1e-5)
    np.testing.assert_allclose(reward.probs(images).sum(axis=1), 1.0, rtol=1e-6)
    assert reward.score([], []).shape == (0,)
    with pytest.raises(ValueError, match=r"\[1, 8, 8\]"):
        reward.score([0], [torch.zeros(2, 8, 8)])


def test_without_a_target_each_prompt_is_the_target(digits, reward):
    images = torch.from_numpy(digits[0][:10])
    prompts = [0, 1, 2, 3, 4, 5, 6, 7, 8, np.int64(9)]
    scores = reward.score(prompts, list(images))
    logp = reward.log_probs(images).double().numpy()  # [10, 10]
    np.testing.assert_array_equal(scores, logp[np.arange(10), np.arange(10)])
    assert scores[7] == pytest.approx(DigitClass(target=7).score([None], [images[7]])[0], rel=1e-6)
    shifted = reward.score([(c + 1) % 10 for c in range(10)], list(images))
    np.testing.assert_array_equal(shifted, logp[np.arange(10), (np.arange(10) + 1) % 10])


@pytest.mark.parametrize("prompt", ["3", 10, -1, None, True, 2.5])
def test_a_prompt_that_is_not_a_class_raises(reward, prompt):
    with pytest.raises(ConfigError, match="int 0..9"):
        reward.score([prompt], [torch.zeros(1, 8, 8)])


def test_names_carry_the_classifier_and_the_target_and_the_registry_builds_both():
    from ponder import verifiers

    assert DigitClass().name == "digit_class" and DigitClass(3).name == "digit_class[3]"
    assert DigitClass(classifier="judge").name == "digit_judge" and DigitClass(5, classifier="judge").name == "digit_judge[5]"
    assert verifiers.get("digit_class").classifier == "reward" and verifiers.get("digit_judge", target=2).name == "digit_judge[2]"
    assert verifiers.get("digit_class").kind == "outcome"
    with pytest.raises(ConfigError):
        DigitClass(target=12)
    with pytest.raises(ConfigError):
        DigitClass(classifier="oracle")


def test_importing_ponder_verifiers_loads_no_digit_classifier():
    code = "import sys, ponder.verifiers; print('ponder.verifiers.digits' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"


def test_load_pipeline_gives_a_unet_of_sample_size_8_and_a_ddpm_scheduler_and_a_10_step_sample_runs():
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    from ponder.models import digits as md

    pipe = md.load_pipeline()
    assert isinstance(pipe, DDPMPipeline) and md.WEIGHTS.is_dir()
    assert isinstance(pipe.unet, UNet2DModel) and pipe.unet.config.sample_size == 8 and pipe.unet.config.in_channels == 1
    assert isinstance(pipe.scheduler, DDPMScheduler) and pipe.scheduler.config.num_train_timesteps == 1000
    assert pipe.unet.dtype == torch.float32 and not pipe.unet.training
    x = md.sample(pipe.unet, pipe.scheduler, 4, steps=10, seed=0)
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()
    assert torch.equal(x, md.sample(pipe.unet, pipe.scheduler, 4, steps=10, seed=0))  # seeded
    assert vd.DigitClass(classifier="judge").probs(x).shape == (4, 10)
