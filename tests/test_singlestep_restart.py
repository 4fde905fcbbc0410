"""dpm-2s (DPM-Solver++(2S)), lms (linear multistep in σ) and restart (Restart sampling): exact cases the generic
tests do not cover, the orders of the non-default variants, and NFE counts.

The synthetic scores below are built so that the denoiser D(x̂, σ) = x̂ + σ²·s·score(s·x̂, t) is a chosen function:
score(x, t) = (D − x/s)/(s σ²). With D independent of x̂ the probability-flow ODE dx̂/dλ = D − x̂ (λ = −log σ) is
linear with a known solution, so a sampler's output can be checked against a closed form to round-off.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sdebench.errors import UserError
from sdebench.problems import SDES
from sdebench.scores import make_score
from sdebench.solvers import make_solver
from sdebench.solvers.base import initial_state
from sdebench.solvers.grids import make_grid
from sdebench.solvers.lms import DECLARED_ORDER, lms_coefficients
from sdebench.solvers.noise import standard_normal_
from sdebench.solvers.restart import restart_sigmas
from tests.conftest import generator
from tests.test_solvers_generic import fitted_slope, flow_errors, gauss1_problem, gmm2_problem

SDE_TYPES = SDES.names()
ORDER_STEPS = [32, 64, 128, 256]  # as the generic order test
PATHS = 200


def denoiser_score(problem, denoised):
    """A score whose denoiser is ``denoised(t, sigma)`` (a tensor broadcast against x), whatever x is."""
    sde = problem.sde

    def score(x, t):
        scale, sigma = float(sde.s(t)), float(sde.sigma(t))
        return (denoised(t, sigma) - x / scale) / (scale * sigma**2)

    return score


# -- dpm-2s ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_dpm_2s_at_half_is_the_exponential_midpoint_method(sde_type: str) -> None:
    """r = ½: each step is x̂' = (σ'/σ) x̂ − expm1(−h)·D(x̂_mid, σ_mid), x̂_mid the DDIM step to σ_mid = sqrt(σσ')
    (k-diffusion's sample_dpmpp_2s_ancestral at η = 0, written here in its variables t = −log σ); on the
    grid's σ's, equal to 1e-12 of the samples' scale (round-off of a few float64 operations a step)."""
    problem = gmm2_problem(sde_type)
    score = make_score("exact", problem)
    solver = make_solver("dpm-2s", steps=6)
    result = solver.solve(problem, score, 300, generator(2))
    sde = problem.sde
    times = solver.times(problem)
    x = initial_state(problem, 300, "prior", generator(2)) / sde.s(times[0])

    def denoise(x_hat, sigma):
        t = float(sde.t_of_sigma(sigma))
        return x_hat + sigma**2 * sde.s(t) * score(x_hat * sde.s(t), t)

    for t_now, t_next in itertools.pairwise(times):
        lam, lam_next = -math.log(sde.sigma(t_now)), -math.log(sde.sigma(t_next))
        h = lam_next - lam
        lam_mid = lam + 0.5 * h
        x_mid = math.exp(-0.5 * h) * x - math.expm1(-0.5 * h) * denoise(x, math.exp(-lam))
        x = math.exp(-h) * x - math.expm1(-h) * denoise(x_mid, math.exp(-lam_mid))
    expected = x * sde.s(problem.t_end)
    assert float((result.samples - expected).abs().max()) <= 1e-12 * float(expected.abs().max())


@pytest.mark.parametrize("sde_type", SDE_TYPES)
@pytest.mark.parametrize("r", [0.5, 0.3, 1.0])
def test_dpm_2s_linear_variant_is_exact_for_a_denoiser_affine_in_lambda(sde_type: str, r: float) -> None:
    """With D = a + b·λ (any x̂), dx̂/dλ = a + bλ − x̂ solves to x̂ = a + b(λ − 1) + C e^{−λ}: the "linear" variant
    integrates the slope exactly, so 5 steps on any SDE and any r end on the closed form to round-off (1e-10 of
    the scale: the coefficient (h − φ)/(r h) cancels a few digits on small steps). The midpoint weights are not
    exact for it (error O(h³) a step, here > 1e-4)."""
    problem = gauss1_problem(sde_type)
    a, b = torch.tensor([0.3, -1.2], dtype=torch.float64), torch.tensor([0.05, 0.02], dtype=torch.float64)
    score = denoiser_score(problem, lambda t, sigma: a + b * (-math.log(sigma)))
    sde = problem.sde
    lam0, lam1 = -math.log(sde.sigma(problem.t_start)), -math.log(sde.sigma(problem.t_end))
    x0 = initial_state(problem, 100, "prior", generator(3)) / sde.s(problem.t_start)
    particular = a + b * (lam1 - 1.0)
    expected = (particular + (x0 - (a + b * (lam0 - 1.0))) * math.exp(-(lam1 - lam0))) * sde.s(problem.t_end)
    runs = {
        variant: make_solver("dpm-2s", steps=5, r=r, variant=variant).solve(problem, score, 100, generator(3)).samples
        for variant in ("linear", "midpoint")
    }
    scale = float(expected.abs().max())
    assert float((runs["linear"] - expected).abs().max()) <= 1e-10 * scale
    assert float((runs["midpoint"] - expected).abs().max()) > 1e-4 * scale


@pytest.mark.parametrize(
    ("sde_type", "options"), [("ve", {"r": 1.0}), ("edm", {"r": 1.0}), ("vp", {"variant": "linear"})]
)
def test_dpm_2s_variants_are_second_order(sde_type: str, options: dict) -> None:
    """The non-default r and variant keep the declared strong order 2 (the generic test covers the default):
    fitted as the generic test fits, within its 0.3. Measured: r = 1 1.97 (ve), 1.95 (edm); linear 2.00 (vp)."""
    slope = fitted_slope(ORDER_STEPS, flow_errors("dpm-2s", sde_type, ORDER_STEPS, **options))
    assert make_solver("dpm-2s", **options).strong_order == 2.0
    assert abs(slope - 2.0) <= 0.3, slope


def test_dpm_2s_counts_two_nfe_a_step_and_checks_r(gmm2) -> None:
    """2 NFE a step plus one for denoise, counted; r outside (0, 1] and an unknown variant are user errors."""
    solver = make_solver("dpm-2s", steps=5, denoise=True)
    assert solver.solve(gmm2, make_score("exact", gmm2), 20, generator(0)).nfe == solver.nfe_for_steps(5) == 11
    assert make_solver("dpm-2s", nfe=9).options["steps"] == 4
    for options, field in (({"r": 0.0}, "r"), ({"r": 1.5}, "r"), ({"variant": "heun"}, "variant")):
        with pytest.raises(UserError) as info:
            make_solver("dpm-2s", **options)
        assert info.value.field == field


# -- lms ---------------------------------------------------------------------------------------------------------------
def test_lms_order_2_coefficients_match_the_closed_form() -> None:
    """Variable-step Adams–Bashforth 2 from σ_i to σ_{i+1} = σ_i + h, previous step h_p = σ_i − σ_{i−1}:
    c_0 = h (1 + h/(2 h_p)), c_1 = −h²/(2 h_p). On Karras steps from σ = 80 to 0.002, to 1e-12 relative."""
    sigmas = [(80 ** (1 / 7) + i / 20 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7 for i in range(21)]
    for i in range(1, 20):
        h, h_prev = sigmas[i + 1] - sigmas[i], sigmas[i] - sigmas[i - 1]
        closed = [h * (1 + h / (2 * h_prev)), -(h**2) / (2 * h_prev)]
        got = lms_coefficients([sigmas[i], sigmas[i - 1]], sigmas[i], sigmas[i + 1])
        assert np.allclose(got, closed, rtol=1e-12, atol=0.0), (i, got, closed)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lms_coefficients_integrate_polynomials_exactly(order: int) -> None:
    """The defining property: Σ_j c_j p(σ_{i−j}) = ∫ p over the step for every polynomial of degree < order
    (here τ^m about the step's start, so the check does not cancel), to 1e-12 of ∫ |p|."""
    nodes = [0.9, 1.3, 2.2, 3.0][:order]  # newest first, uneven spacing
    a, b = nodes[0], 0.55
    coefficients = lms_coefficients(nodes, a, b)
    for m in range(order):
        exact = ((b - a) ** (m + 1)) / (m + 1)
        quadrature = sum(c * (node - a) ** m for c, node in zip(coefficients, nodes, strict=True))
        assert abs(quadrature - exact) <= 1e-12 * abs(b - a) ** (m + 1), (m, quadrature, exact)


@pytest.mark.parametrize("sde_type", ["ve", "vp"])
def test_lms_order_1_is_edm_euler(sde_type: str) -> None:
    """Order 1: one coefficient ∫ 1 dτ = σ' − σ, so each step is Euler's x̂ + (σ' − σ)·d (to 1e-13 of the scale)."""
    problem = gmm2_problem(sde_type)
    score = make_score("exact", problem)
    a = make_solver("lms", steps=12, order=1).solve(problem, score, 300, generator(5)).samples
    b = make_solver("edm-euler", steps=12).solve(problem, score, 300, generator(5)).samples
    assert float((a - b).abs().max()) <= 1e-13 * float(b.abs().max())


@pytest.mark.parametrize(("order", "sde_type"), [(2, "edm"), (3, "ve"), (3, "subvp")])
def test_lms_declared_orders_of_orders_2_and_3(order: int, sde_type: str) -> None:
    """Orders 2 and 3 declare 2.0 and 3.0: fitted as the generic test fits (measured 1.91 on edm; 2.83 on ve,
    2.78 on subvp), within its 0.3."""
    declared = make_solver("lms", order=order).strong_order
    assert declared == DECLARED_ORDER[order] == float(order)
    slope = fitted_slope(ORDER_STEPS, flow_errors("lms", sde_type, ORDER_STEPS, order=order))
    assert abs(slope - declared) <= 0.3, slope


def test_lms_order_4_has_no_one_order_over_the_sdes() -> None:
    """Why order 4 (the default) declares none: over the generic test's 32–256 steps its fitted slope depends on
    σ(T) (measured 3.14 on ve, σ(T) = 10; 3.68 on edm, σ(T) = 80: no one number is within 0.3 of both), and
    asymptotically the warm-up's Euler step makes it 2 (on ve the local slope from 512 to 1024 steps is 2.08)."""
    assert make_solver("lms").strong_order is None and make_solver("lms").options["order"] == 4
    ve = fitted_slope(ORDER_STEPS, flow_errors("lms", "ve", ORDER_STEPS))
    edm = fitted_slope(ORDER_STEPS, flow_errors("lms", "edm", ORDER_STEPS))
    assert 2.8 < ve < 3.4 < edm < 4.0, (ve, edm)
    fine = flow_errors("lms", "ve", [512, 1024])
    assert abs(math.log2(fine[0] / fine[1]) - 2.0) <= 0.3, fine


def test_lms_counts_one_nfe_a_step(gmm2) -> None:
    """One NFE a step plus one for denoise, counted; order outside 1..4 is a user error."""
    solver = make_solver("lms", steps=7, denoise=True)
    assert solver.solve(gmm2, make_score("exact", gmm2), 20, generator(0)).nfe == solver.nfe_for_steps(7) == 8
    for bad in (0, 5):
        with pytest.raises(UserError) as info:
            make_solver("lms", order=bad)
        assert info.value.field == "order"


# -- restart -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde_type", SDE_TYPES)
@pytest.mark.parametrize("grid", ["karras", "log-sigma"])
def test_restart_without_cycles_is_edm_heun(sde_type: str, grid: str) -> None:
    """K = 0: the main pass alone, which is edm-heun on the same grid, sample for sample."""
    problem = gmm2_problem(sde_type)
    score = make_score("exact", problem)
    a = make_solver("restart", steps=9, restarts=0, grid=grid).solve(problem, score, 200, generator(6)).samples
    b = make_solver("edm-heun", steps=9, grid=grid).solve(problem, score, 200, generator(6)).samples
    assert torch.equal(a, b)


@pytest.mark.parametrize("sde_type", ["ve", "vp"])
def test_restart_cycles_in_closed_form(sde_type: str) -> None:
    """With a constant denoiser D ≡ c the flow is x̂ − c ∝ σ, linear in σ, so every Heun step is exact: the main pass
    scales x̂ − c by σ_node/σ(T) down to the restart node (nearest 0.06 in log σ), each cycle adds
    sqrt(σ_max² − σ_node²)·z with z the run generator's next normals, then scales by σ_node/σ_max, and the rest of the
    pass by σ(t_end)/σ_node. The samples equal that to 1e-12 of their scale: the jump's size, the generator's draws
    in order, the cycles returning onto the main grid's node. (On vp, s ≠ 1 checks the scaled variable.)"""
    problem = gauss1_problem(sde_type)
    sde = problem.sde
    c = torch.tensor([0.4, -0.7], dtype=torch.float64)
    score = denoiser_score(problem, lambda t, sigma: c)
    steps, cycles = 16, 3
    solver = make_solver("restart", steps=steps, restarts=cycles, restart_steps=3)
    result = solver.solve(problem, score, 200, generator(9))

    sigmas = [float(sde.sigma(t)) for t in make_grid("karras", problem, steps)]
    below = [i for i, s in enumerate(sigmas) if s < 0.3]
    node = min(below, key=lambda i: abs(math.log(sigmas[i] / 0.06)))
    gen = generator(9)
    x = initial_state(problem, 200, "prior", gen) / sde.s(problem.t_start)
    x = c + (x - c) * (sigmas[node] / sigmas[0])
    jump = math.sqrt(0.3**2 - sigmas[node] ** 2)
    for _ in range(cycles):
        jumped = x + standard_normal_(torch.empty_like(x), gen, jump)  # as drawn in the solver: float32 normals
        x = c + (jumped - c) * (sigmas[node] / 0.3)
    expected = (c + (x - c) * (sigmas[-1] / sigmas[node])) * sde.s(problem.t_end)
    assert result.info["restart_node"] == node
    assert float((result.samples - expected).abs().max()) <= 1e-12 * float(expected.abs().max())


def test_restart_noise_comes_from_the_run_generator(gmm2) -> None:
    """Same seed, same samples; another seed, other samples; and the cycles change the result (K = 1 vs K = 0 from
    the same seed)."""
    score = make_score("exact", gmm2)

    def sample(seed, **options):
        return make_solver("restart", nfe=40, **options).solve(gmm2, score, 200, generator(seed)).samples

    assert torch.equal(sample(3), sample(3)) and not torch.equal(sample(3), sample(4))
    assert not torch.equal(sample(3), sample(3, restarts=0, restart_steps=10))


@pytest.mark.parametrize(
    ("options", "steps", "nfe"),
    [
        ({}, 20, 2 * 20 + 2 * 10),  # default: K = 1, ⌈20/2⌉ steps a cycle
        ({"steps": 7, "restarts": 3, "restart_steps": 2, "denoise": True}, 7, 14 + 12 + 1),
        ({"nfe": 60}, 20, 60),  # the budget buys 20 main steps with their 10-step cycle
        ({"nfe": 61, "restarts": 2, "restart_steps": 4}, 22, 44 + 16),  # one NFE of 61 left unused
    ],
)
def test_restart_nfe_is_counted_exactly(gmm2, options: dict, steps: int, nfe: int) -> None:
    """nfe_for_steps is exact: 2 per main step + 2·K·(cycle steps) + denoise, and a budget buys the most main
    steps that fit."""
    options = {"steps": 20, **options} if "nfe" not in options and "steps" not in options else options
    solver = make_solver("restart", **options)
    assert solver.options["steps"] == steps
    result = solver.solve(gmm2, make_score("exact", gmm2), 20, generator(0))
    assert result.nfe == solver.nfe_for_steps(steps) == nfe


def test_restart_sub_grid_and_interval_checks(gmm2) -> None:
    """The cycle's grid runs from σ_max to σ_min exactly (Karras, decreasing); an empty interval is refused when
    built, one outside the problem's σ range is refused with a reason when run."""
    sigmas = restart_sigmas(0.3, 0.061, 4)
    assert sigmas[0] == 0.3 and sigmas[-1] == 0.061 and all(a > b for a, b in itertools.pairwise(sigmas))
    with pytest.raises(UserError) as info:
        make_solver("restart", restart_sigma_min=0.3, restart_sigma_max=0.2)
    assert info.value.field == "restart_sigma_max"
    solver = make_solver("restart", steps=5, restart_sigma_max=50.0)  # ve-gmm2's σ(T) is 10
    assert "not within" in solver.supports(gmm2)
    with pytest.raises(UserError):
        solver.solve(gmm2, make_score("exact", gmm2), 10, generator(0))
