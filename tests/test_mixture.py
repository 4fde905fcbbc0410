"""Gaussian mixtures: exact score against autograd, densities against scipy, sampling moments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sdebench.problems import GaussianMixture, get_problem
from tests.conftest import generator


def random_mixture(dim: int, k: int, seed: int) -> GaussianMixture:
    """A mixture with full, anisotropic covariances (some thin: eigenvalues down to 1e-3)."""
    gen = generator(seed)
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.2
    means = 2 * torch.randn(k, dim, generator=gen, dtype=torch.float64)
    covs = []
    for _ in range(k):
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        eig = torch.logspace(-3, 0, dim, dtype=torch.float64)
        covs.append(q @ torch.diag(eig) @ q.T)
    return GaussianMixture(weights / weights.sum(), means, torch.stack(covs))


MIXTURES = {
    "gmm2": lambda: get_problem("ve-gmm2").data,
    "random-3d": lambda: random_mixture(3, 3, seed=1),
    "random-5d": lambda: random_mixture(5, 4, seed=2),
}


@pytest.mark.parametrize("name", MIXTURES)
@pytest.mark.parametrize("per_sample_sigma", [False, True])
def test_exact_score_equals_autograd_of_log_density(name: str, per_sample_sigma: bool) -> None:
    """∇ log p_σ by autograd matches the closed-form score to 1e-6 relative, at random x and σ (float64)."""
    mix = MIXTURES[name]()
    gen = generator(3)
    x = mix.sample(256, generator=gen)[0] + 0.5 * torch.randn(256, mix.dim, generator=gen, dtype=torch.float64)
    sigmas = 0.01 * 1000 ** torch.rand(256, generator=gen, dtype=torch.float64)  # σ(t) for t ~ U(0, 1)
    for sigma in [sigmas] if per_sample_sigma else [0.0, 0.01, 0.3, 10.0]:
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(mix.log_prob(xg, sigma).sum(), xg)
        score = mix.score(x, sigma)
        rel = (score - grad).norm(dim=1) / grad.norm(dim=1).clamp_min(1e-12)
        assert float(rel.max()) < 1e-6


@pytest.mark.parametrize("name", MIXTURES)
def test_log_density_matches_scipy(name: str) -> None:
    """log p_σ equals the log of Σ w_k N(μ_k, Σ_k + σ²I) computed by scipy."""
    mix = MIXTURES[name]()
    x = mix.sample(100, generator=generator(4))[0]
    for sigma in (0.0, 0.2):
        cov = mix.covs.numpy() + sigma**2 * np.eye(mix.dim)
        dens = sum(
            w * multivariate_normal(m, c).pdf(x.numpy())
            for w, m, c in zip(mix.weights.numpy(), mix.means.numpy(), cov, strict=True)
        )
        np.testing.assert_allclose(mix.log_prob(x, sigma).numpy(), np.log(dens), rtol=1e-10, atol=1e-10)


def test_score_stable_far_from_modes_and_at_small_sigma() -> None:
    """Far from every mode and at σ = 0 the score stays finite and points back (log-space responsibilities)."""
    mix = get_problem("ve-gmm2").data
    x = torch.tensor([[50.0, -40.0], [0.0, 0.0], [1e3, 1e3]], dtype=torch.float64)
    score = mix.score(x, 0.0)
    assert bool(torch.isfinite(score).all())
    assert float((score[[0, 2]] * x[[0, 2]]).sum(dim=1).max()) < 0


@pytest.mark.parametrize("name", MIXTURES)
def test_sample_moments_match_exact(name: str) -> None:
    """Sample mean and covariance of 200 000 draws agree with the exact moments within 5 standard errors."""
    mix = MIXTURES[name]()
    n = 200_000
    x, labels = mix.sample(n, generator=generator(5))
    cov = mix.covariance()
    # SE of a sample mean: sqrt(diag Σ / n); of a covariance entry: about sqrt((Σ_ii Σ_jj + Σ_ij²)/n) for
    # Gaussian data; mixtures have heavier fourth moments, so we estimate the SE from the sample itself.
    assert bool(((x.mean(0) - mix.mean()).abs() <= 5 * (cov.diagonal() / n).sqrt()).all())
    centred = x - x.mean(0)
    prods = centred[:, :, None] * centred[:, None, :]
    se = prods.std(0) / n**0.5
    assert bool(((prods.mean(0) - cov).abs() <= 5 * se + 1e-12).all())
    freq = torch.bincount(labels, minlength=mix.n_components).double() / n
    assert bool(((freq - mix.weights).abs() <= 5 * (mix.weights * (1 - mix.weights) / n).sqrt()).all())


def test_gmm2_is_normalised_by_exact_moments() -> None:
    """ve-gmm2 has exact mean 0 and unit variance per dimension; each mode's spread is 0.1/sqrt(4.01)."""
    mix = get_problem("ve-gmm2").data
    assert torch.allclose(mix.mean(), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(mix.covariance().diagonal(), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(mix.covs[0].diagonal().sqrt(), torch.full((2,), 0.1 / 4.01**0.5, dtype=torch.float64))


def test_float32_inputs_give_float32_scores() -> None:
    """The oracle works in the input's precision."""
    mix = get_problem("ve-gmm2").data
    x = mix.sample(10, generator=generator(6), dtype=torch.float32)[0]
    assert mix.score(x, 0.1).dtype == torch.float32
    assert torch.allclose(mix.score(x, 0.1).double(), mix.score(x.double(), 0.1), rtol=1e-4, atol=1e-3)
