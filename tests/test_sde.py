"""The VE-SDE: σ(t), g(t) = sqrt(dσ²/dt), prior, reverse SDE and probability-flow ODE, TOML problems."""

from __future__ import annotations

import math

import pytest
import torch

from sdebench.errors import UserError
from sdebench.problems import VESDE, get_problem, load_problem
from sdebench.scores import make_score
from tests.conftest import generator


def test_sigma_and_diffusion() -> None:
    """σ(0) = σmin, σ(1) = σmax, g² = dσ²/dt (central difference), t_of_sigma inverts σ."""
    sde = VESDE(0.01, 10.0)
    assert sde.sigma(0.0) == pytest.approx(0.01)
    assert sde.sigma(1.0) == pytest.approx(10.0)
    for t in (0.1, 0.5, 0.9):
        h = 1e-6
        dsig2 = (sde.sigma(t + h) ** 2 - sde.sigma(t - h) ** 2) / (2 * h)
        assert sde.diffusion(t) ** 2 == pytest.approx(dsig2, rel=1e-7)
        assert sde.t_of_sigma(sde.sigma(t)) == pytest.approx(t, abs=1e-12)
    t = torch.tensor([0.2, 0.7], dtype=torch.float32)
    assert sde.sigma(t).dtype == torch.float32


def test_prior() -> None:
    """The prior is N(0, σmax² I): its log-density matches torch.distributions and draws have variance σmax²."""
    sde = VESDE(0.01, 10.0)
    x = sde.prior_sample(100_000, 3, generator=generator(0))
    ref = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 10.0).log_prob(x).sum(-1)
    assert torch.allclose(sde.prior_log_prob(x), ref, rtol=1e-12)
    # SE of a sample variance of a Gaussian: σ² sqrt(2/n) = 100 · 0.0045.
    assert bool(((x.var(0) - 100.0).abs() < 5 * 100 * math.sqrt(2 / 100_000)).all())
    assert sde.prior_sample(4, 2, dtype=torch.float32).dtype == torch.float32


def test_reverse_sde_and_probability_flow_drifts() -> None:
    """Reverse drift f − g²s and probability-flow drift f − ½g²s (f = 0 for VE), per-sample t too."""
    problem = get_problem("ve-gmm2")
    score = make_score("exact", problem)
    x = torch.randn(5, 2, dtype=torch.float64)
    g2 = problem.sde.diffusion(0.3) ** 2
    assert torch.allclose(problem.sde.reverse(score).drift(x, 0.3), -g2 * score(x, 0.3))
    assert torch.allclose(problem.sde.probability_flow(score).drift(x, 0.3), -0.5 * g2 * score(x, 0.3))
    t = torch.full((5,), 0.3, dtype=torch.float64)
    assert torch.allclose(problem.sde.reverse(score).drift(x, t), -g2 * score(x, 0.3))


def test_marginal_kernel() -> None:
    """p_0t(x_t | x_0) = N(x_0, σ(t)² I) (the σ(0) convention of sdebench.problems.sde)."""
    sde = VESDE(0.01, 10.0)
    x0 = torch.ones(3, 2)
    mean, std = sde.marginal(x0, 0.5)
    assert torch.equal(mean, x0)
    assert std == pytest.approx(0.01 * 1000**0.5)


def test_toml_problem_equals_named(tmp_path) -> None:
    """A TOML file with the seed's definition gives the same mixture as the registered ve-gmm2."""
    path = tmp_path / "gmm2.toml"
    path.write_text(
        't_end = 1e-5\n[sde]\ntype = "ve"\nsigma_min = 0.01\nsigma_max = 10.0\n'
        '[data]\ntype = "gmm"\nweights = [0.5, 0.5]\nmeans = [[-2, -2], [2, 2]]\n'
        "covs = [[[0.01, 0.0], [0.0, 0.01]], [0.01, 0.01]]\nnormalize = true\n"
    )
    problem = load_problem(path)
    named = get_problem("ve-gmm2")
    assert problem.name == "gmm2"
    assert torch.allclose(problem.data.means, named.data.means)
    assert torch.allclose(problem.data.covs, named.data.covs)
    assert problem.t_end == named.t_end


@pytest.mark.parametrize(
    ("spec_change", "field"),
    [
        ({"t_end": 1.5}, "t_end"),
        ({"t_end": 0.0}, "t_end"),
        ({"sde": {"type": "ve", "sigma_min": 0.0, "sigma_max": 10.0}}, "sde.sigma_min"),
        ({"sde": {"type": "ve", "sigma_min": 5.0, "sigma_max": 1.0}}, "sde.sigma_max"),
    ],
)
def test_problem_spec_errors(spec_change: dict, field: str) -> None:
    """Out-of-range SDE parameters and ε raise a UserError naming the field."""
    from sdebench.problems import PROBLEMS, problem_from_spec

    spec = {**PROBLEMS.get("ve-gmm2")(), **spec_change}
    with pytest.raises(UserError) as info:
        problem_from_spec(spec)
    assert info.value.field == field
