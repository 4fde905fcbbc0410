"""The score-SDE family against exact answers: every registered SDE (ve, vp, subvp, edm and any added later).

- the four functions are consistent: f = d log s/dt and g² = s²·dσ²/dt (seed eqs. 3.26–3.29), by central
  differences; σ and t_of_σ are inverse; float and tensor forms agree; small t stays exact;
- the exact score of p_t = Σ w_k N(s μ_k, s²(Σ_k + σ² I)) equals central differences of the exact log-density;
- the closed-form kernel equals the law of the forward SDE simulated by fine Euler–Maruyama from x_0;
- the prior's log-density, and pc's VP steps against DDPM's formulas, DDIM's update against Song et al.'s.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sdebench.problems import SDES, problem_from_spec
from sdebench.problems.named import seed_data
from sdebench.scores import make_score
from sdebench.solvers import make_solver
from sdebench.solvers.pc import AncestralPredictor, ReverseDiffusionPredictor, forward_step
from tests.conftest import generator

SDE_TYPES = SDES.names()
#: Unequal weights, a non-zero mean, a full covariance and d = 3: nothing symmetric to hide an error.
ASYM_DATA = {
    "type": "gmm",
    "weights": [0.6, 0.3, 0.1],
    "means": [[1.0, 0.5, -0.5], [-1.5, 1.0, 0.5], [0.5, -1.0, 1.5]],
    "covs": [[[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.4]], [0.1, 0.3, 0.2], [0.05, 0.05, 0.05]],
}


def default_sde(sde_type: str):
    """The SDE ``sde_type`` with its default parameters."""
    return SDES.get(sde_type)()


def interior_times(sde) -> list[float]:
    """Times spread over (0, T), away from the ends where one-sided behaviour would need other step sizes."""
    return [sde.T * frac for frac in (0.003, 0.05, 0.3, 0.7, 0.95)]


def asym_problem(sde_type: str):
    """The asymmetric 3-D mixture under ``sde_type``."""
    return problem_from_spec({"name": f"{sde_type}-asym", "sde": default_sde(sde_type).spec(), "data": ASYM_DATA})


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_drift_and_diffusion_follow_from_s_and_sigma(sde_type: str) -> None:
    """f = d log s/dt and g² = s²·dσ²/dt by central differences (step 1e-6·T: truncation ~1e-12, round-off ~1e-10
    relative to the values, so 1e-6 relative is a wide margin)."""
    sde = default_sde(sde_type)
    h = 1e-6 * sde.T
    for t in interior_times(sde):
        dlog_s = (math.log(sde.s(t + h)) - math.log(sde.s(t - h))) / (2 * h)
        dsigma2 = (sde.sigma(t + h) ** 2 - sde.sigma(t - h) ** 2) / (2 * h)
        assert sde.f(t) == pytest.approx(dlog_s, rel=1e-6, abs=1e-9), (t, "f")
        assert sde.diffusion(t) ** 2 == pytest.approx(sde.s(t) ** 2 * dsigma2, rel=1e-6), (t, "g")


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_sigma_inverse_tensor_forms_and_small_t(sde_type: str) -> None:
    """t_of_σ(σ(t)) = t; tensor and float forms agree; σ, s and the kernel stay exact as t → 0."""
    sde = default_sde(sde_type)
    times = [*interior_times(sde), sde.default_t_end, sde.T]
    for t in times:
        assert sde.t_of_sigma(sde.sigma(t)) == pytest.approx(t, rel=1e-10)
    tensor = torch.tensor(times, dtype=torch.float64)
    for name in ("f", "diffusion", "s", "sigma", "std"):
        values = getattr(sde, name)(tensor)
        floats = torch.tensor([float(getattr(sde, name)(t)) for t in times], dtype=torch.float64)
        torch.testing.assert_close(torch.as_tensor(values, dtype=torch.float64).expand_as(floats), floats)
    # Small t: σ(t)² ≈ σ(0)² + g(0)²·t/s(0)², with no cancellation (VP's expm1 form: 1 − e^{−B} would lose digits).
    tiny = 1e-9 * sde.T
    sigma0 = sde.sigma(0.0) if sde_type != "edm" else 0.0
    expected = sigma0**2 + sde.diffusion(tiny) ** 2 * tiny
    assert sde.sigma(tiny) ** 2 == pytest.approx(expected, rel=1e-6)
    assert sde.s(tiny) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("sde_type", SDE_TYPES)
@pytest.mark.parametrize("frac", [0.0, 0.01, 0.5, 1.0])
def test_exact_score_equals_finite_differences_of_log_density(sde_type: str, frac: float) -> None:
    """The exact score of p_t equals the central difference of the exact log p_t, at t_end, inside and at T.

    Step 1e-5 times the kernel's scale: truncation error ~ (1e-5)²·|∂³ log p| and round-off ~1e-16/1e-5 of log p,
    both below 1e-6 relative to the score's scale 1/std.
    """
    problem = asym_problem(sde_type)
    sde = problem.sde
    t = problem.t_end + frac * (problem.t_start - problem.t_end)
    scale = float(sde.s(t)) * math.sqrt(0.05 + float(sde.sigma(t)) ** 2)  # the smallest component std at t
    x = problem.marginal_at(t).sample(64, generator(5))[0]
    score = make_score("exact", problem)(x, t)
    h = 1e-5 * scale
    data = problem.data
    differences = torch.empty_like(x)
    for j in range(problem.dim):
        step = torch.zeros(problem.dim, dtype=torch.float64)
        step[j] = h
        up = data.log_prob(x + step, sde.sigma(t), sde.s(t))
        down = data.log_prob(x - step, sde.sigma(t), sde.s(t))
        differences[:, j] = (up - down) / (2 * h)
    torch.testing.assert_close(score, differences, rtol=1e-5, atol=1e-5 / scale)
    # A per-row t (what per-sample adaptive solvers pass) takes another code path: the same values, and log p too.
    rows = torch.full((x.shape[0],), t, dtype=torch.float64)
    torch.testing.assert_close(make_score("exact", problem)(x, rows), score, rtol=1e-12, atol=1e-12)
    per_row = data.log_prob(x, sde.sigma(rows), sde.s(rows))
    torch.testing.assert_close(per_row, data.log_prob(x, sde.sigma(t), sde.s(t)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_closed_form_kernel_equals_simulated_forward_process(sde_type: str) -> None:
    """Draws of the forward SDE dx = f x dt + g dw, by Euler–Maruyama from p at t_a to t_b, have p_{t_b}'s exact
    mean and covariance (from s and σ alone, never from f and g).

    n = 20 000 paths, 500 steps (EM's weak bias on a linear SDE ~ Δt/T = 1/500 relative, below the covariance's
    sampling error of about 1%). Tolerance: 5
    standard errors of each mean (std/sqrt(n)) and of each covariance entry (sqrt((Σ_ii Σ_jj + Σ_ij²)/n)).
    """
    problem = asym_problem(sde_type)
    sde = problem.sde
    t_a, t_b = problem.t_end, 0.5 * problem.t_start
    n, steps = 20_000, 500
    gen = generator(6)
    x = problem.marginal_at(t_a).sample(n, gen)[0]
    times = torch.linspace(t_a, t_b, steps + 1, dtype=torch.float64).tolist()
    for t0, t1 in itertools.pairwise(times):
        dt = t1 - t0
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        x = x + sde.f(t0) * x * dt + sde.diffusion(t0) * math.sqrt(dt) * noise
    target = problem.marginal_at(t_b)
    mean, cov = target.mean(), target.covariance()
    sample_cov = torch.cov(x.T)
    mean_se = cov.diagonal().sqrt() / math.sqrt(n)
    cov_se = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / n).sqrt()
    assert bool(((x.mean(0) - mean).abs() < 5 * mean_se).all()), (x.mean(0), mean, mean_se)
    assert bool(((sample_cov - cov).abs() < 5 * cov_se).all()), (sample_cov, cov, cov_se)


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_prior_density_and_draws(sde_type: str) -> None:
    """The prior's log-density is N(0, prior_std² I)'s, and its draws have that std (5 SE at n = 20 000)."""
    sde = default_sde(sde_type)
    x = sde.prior_sample(20_000, 3, generator=generator(7))
    normal = torch.distributions.Normal(0.0, sde.prior_std)
    torch.testing.assert_close(sde.prior_log_prob(x[:50]), normal.log_prob(x[:50]).sum(-1))
    rel_se = 1 / math.sqrt(2 * x.numel())
    assert float(x.std()) == pytest.approx(sde.prior_std, rel=5 * rel_se)


class FixedNoise:
    """A 'Brownian path' whose increment over [t_next, t_cur] is z·sqrt(Δt) for a fixed z: the step's own noise."""

    def __init__(self, z: torch.Tensor) -> None:
        self.z = z

    def __call__(self, t_cur: float, t_next: float) -> torch.Tensor:
        return self.z * math.sqrt(t_cur - t_next)


def ddpm_quantities(sde, t_cur: float, t_next: float) -> tuple[float, float, float]:
    """DDPM's (β_i, ᾱ_i, ᾱ_{i−1}) for the step from t_cur down to t_next: ᾱ = s², 1 − β_i = ᾱ_i/ᾱ_{i−1}."""
    abar_cur, abar_next = float(sde.s(t_cur)) ** 2, float(sde.s(t_next)) ** 2
    return 1 - abar_cur / abar_next, abar_cur, abar_next


def test_pc_vp_steps_are_ddpm_and_score_sde() -> None:
    """On VP, pc's ancestral predictor is DDPM's ancestral step and its reverse-diffusion predictor score_sde's,
    written here from the papers' formulas in ᾱ and β_i (to round-off)."""
    problem = problem_from_spec({"name": "vp-asym", "sde": {"type": "vp"}, "data": ASYM_DATA})
    sde, score = problem.sde, make_score("exact", problem)
    x = problem.marginal_at(0.4).sample(100, generator(8))[0]
    z = torch.randn(x.shape, generator=generator(9), dtype=torch.float64)
    t_cur, t_next = 0.4, 0.39
    beta, abar_cur, abar_next = ddpm_quantities(sde, t_cur, t_next)
    # VP preserves variance: the forward step's G² is 1 − a² = β_i exactly.
    a, g2 = forward_step(sde, t_cur, t_next)
    assert a == pytest.approx(math.sqrt(1 - beta), rel=1e-14) and g2 == pytest.approx(beta, rel=1e-12)
    grad = score(x, t_cur)
    ddpm = (x + beta * grad) / math.sqrt(1 - beta) + math.sqrt(beta * (1 - abar_next) / (1 - abar_cur)) * z
    ours = AncestralPredictor().step(sde, score, x.clone(), t_cur, t_next, FixedNoise(z))
    torch.testing.assert_close(ours, ddpm, rtol=1e-12, atol=1e-12)
    score_sde = (2 - math.sqrt(1 - beta)) * x + beta * grad + math.sqrt(beta) * z
    ours = ReverseDiffusionPredictor().step(sde, score, x.clone(), t_cur, t_next, FixedNoise(z))
    torch.testing.assert_close(ours, score_sde, rtol=1e-12, atol=1e-12)


def test_ddim_on_vp_is_song_et_al_eta_zero() -> None:
    """sdebench's ddim on VP equals DDIM (η = 0) in its own variables: x_{i−1} = √ᾱ_{i−1} x̂_0 + √(1 − ᾱ_{i−1}) ε̂
    with ε̂ = −√(1 − ᾱ_i)·score and x̂_0 = (x − √(1 − ᾱ_i) ε̂)/√ᾱ_i, on the same grid from the same start."""
    problem = problem_from_spec({"name": "vp-seed", "sde": {"type": "vp"}, "data": seed_data()})
    sde, score = problem.sde, make_score("exact", problem)
    solver = make_solver("ddim", steps=12, grid="uniform-t")
    ours = solver.solve(problem, score, 200, generator(10)).samples
    x = solver.initial_state(problem, 200, generator(10)) * float(sde.s(problem.t_start))
    times = solver.times(problem)
    for t_cur, t_next in itertools.pairwise(times):
        abar, abar_prev = float(sde.s(t_cur)) ** 2, float(sde.s(t_next)) ** 2
        eps = -math.sqrt(1 - abar) * score(x, t_cur)
        x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
        x = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
    torch.testing.assert_close(ours, x, rtol=1e-10, atol=1e-10)
