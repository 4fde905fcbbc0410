"""Metrics: exact mixture quantiles, sliced Wasserstein, mode balance and moments, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from sdebench.errors import UserError
from sdebench.metrics import Reference, compute_metrics, noise_floors
from sdebench.metrics.sliced import mixture_quantiles
from sdebench.problems import Problem
from tests.conftest import generator


def test_mixture_quantiles_invert_the_cdf() -> None:
    """F(F⁻¹(u)) = u for two-mode 1-D mixtures with very unequal spreads, including the tails.

    The solver stops when the bracket is narrower than 1e-10, so |F(q) − u| ≤ 1e-10 · max density (≤ 40 here).
    """
    means = np.array([[-1.0, 1.0], [0.0, 0.3]])
    stds = np.array([[0.05, 0.5], [0.01, 1.0]])
    weights = np.array([0.3, 0.7])
    u = (np.arange(20_000) + 0.5) / 20_000
    q = mixture_quantiles(means, stds, weights, u)
    cdf = (weights * ndtr((q[:, :, None] - means[:, None, :]) / stds[:, None, :])).sum(-1)
    assert np.abs(cdf - u).max() < 5e-9


def test_sliced_wasserstein_of_exact_sample_is_at_floor(gmm2: Problem, gmm2_reference: Reference) -> None:
    """An exact sample scores like the floor: within 3× of it (SW1 is dominated by random mode imbalance)."""
    floors = noise_floors(["sliced_wasserstein"], gmm2_reference, 5000, draws=5)
    x = gmm2_reference.draw(5000, generator(11))
    m = compute_metrics(["sliced_wasserstein"], x, gmm2_reference)
    assert m["sw1"] < 3 * floors["sw1"] and m["sw2"] < 3 * floors["sw2"]


def test_sliced_wasserstein_sees_a_shift(gmm2_reference: Reference) -> None:
    """Shifting every sample by δ along e₁ raises SW1 to about δ·E|θ₁| = δ·2/π for 2-D directions."""
    x = gmm2_reference.draw(20_000, generator(12))
    delta = 0.2
    m = compute_metrics(["sliced_wasserstein"], x + torch.tensor([delta, 0.0], dtype=torch.float64), gmm2_reference)
    # 64 random directions: E|θ₁| estimated with error ~ 0.3/8; the floor (~0.005) adds a little.
    assert m["sw1"] == pytest.approx(delta * 2 / np.pi, rel=0.15)


def test_sliced_wasserstein_against_samples_reference(gmm2_reference: Reference) -> None:
    """Against held-out samples instead of the exact mixture, SW1 of an exact sample is near the floor too."""
    held_out = Reference(label="held-out", samples=gmm2_reference.draw(20_000, generator(13)))
    x = gmm2_reference.draw(20_000, generator(14))
    m = compute_metrics(["sliced_wasserstein"], x, held_out)
    assert m["sw1"] < 0.03


def test_mode_balance_detects_imbalance(gmm2_reference: Reference) -> None:
    """A 55/45 split at n = 20 000 is 14 binomial SEs off 50/50; an exact sample is within 4."""
    gen = generator(15)
    mix = gmm2_reference.mixture
    exact = compute_metrics(["mode_balance"], gmm2_reference.draw(20_000, gen), gmm2_reference)
    assert exact["mode_max_dev_se"] < 4
    idx0 = torch.arange(11_000)
    x = torch.cat([mix.sample(40_000, gen)[0][mix.sample(40_000, gen)[1] >= 0]])
    labels = mix.responsibilities(x).argmax(1)
    skewed = torch.cat([x[labels == 0][idx0], x[labels == 1][:9_000]])
    m = compute_metrics(["mode_balance"], skewed, gmm2_reference)
    assert m["mode_frac_0"] == pytest.approx(0.55) and m["mode_max_dev_se"] == pytest.approx(14.14, rel=1e-3)


def test_mode_moments_detect_spread_inflation(gmm2_reference: Reference) -> None:
    """Scaling each mode's spread by 1.05 shows as a 5% std error (SE per mode and dimension ≈ 0.7%)."""
    mix = gmm2_reference.mixture
    x, labels = mix.sample(20_000, generator(16))
    inflated = mix.means[labels] + 1.05 * (x - mix.means[labels])
    assert compute_metrics(["mode_moments"], x, gmm2_reference)["mode_std_rel_err_max"] < 0.03
    assert compute_metrics(["mode_moments"], inflated, gmm2_reference)["mode_std_rel_err_max"] > 0.03


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (torch.zeros(10), "shape"),
        (torch.zeros(10, 3), "dimension"),
        (torch.full((10, 2), float("nan")), "NaN"),
        (torch.zeros(1, 2), "at least"),
    ],
)
def test_bad_samples_are_user_errors(gmm2_reference: Reference, samples: torch.Tensor, message: str) -> None:
    """Wrong shape or dimension, NaN or too few samples: a UserError on the samples, not a NaN metric."""
    with pytest.raises(UserError, match=message) as info:
        compute_metrics(["sliced_wasserstein", "mode_balance"], samples, gmm2_reference)
    assert info.value.field == "samples"


def test_unknown_metric_lists_valid_names(gmm2_reference: Reference) -> None:
    """An unknown metric name lists the registered ones."""
    with pytest.raises(UserError, match="sliced_wasserstein"):
        compute_metrics(["nope"], torch.zeros(10, 2), gmm2_reference)


def test_mode_metrics_need_a_mixture() -> None:
    """Mode metrics against held-out samples only are refused with a clear error."""
    ref = Reference(label="held-out", samples=torch.zeros(10, 2, dtype=torch.float64))
    with pytest.raises(UserError, match="exact mixture"):
        compute_metrics(["mode_balance"], torch.zeros(10, 2), ref)
