"""UniPC, DEIS tAB and iPNDM: the exact cases the generic tests do not cover.

- first-order cases are DDIM, and the warm-up caps the order by the history at hand (exact equalities);
- coefficients against exact ones: DEIS's quadrature (to 1e-12), iPNDM's constant weights against the variable-step
  Adams–Bashforth weights of lms, UniPC's order conditions on polynomial denoisers;
- one model output per grid node, none at the last (UniPC's corrector reuses it);
- the orders of the non-default variants, and the slopes of the cases that declare none (DEIS order 3, UniPC
  order 3 with the lower final orders), on one or two SDEs each (the generic test fits the defaults' declared
  orders on all four).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from sdebench.problems import SDES, get_problem, problem_from_spec
from sdebench.scores import make_score
from sdebench.solvers import make_solver
from sdebench.solvers.deis import deis_coefficients, lagrange_basis
from sdebench.solvers.ipndm import FIXED_WEIGHTS
from sdebench.solvers.lms import lms_coefficients as adams_bashforth_weights
from sdebench.solvers.unipc import b_of_h, phi_moments, unipc_weights
from tests.conftest import generator
from tests.test_solvers_generic import ORDER_STEPS, fitted_slope, flow_errors, gauss1_problem

SDE_TYPES = ["ve", "vp", "subvp", "edm"]


def asym3(sde_type: str):
    """The 3-D asymmetric mixture under ``sde_type``."""
    return problem_from_spec({**get_problem("ve-asym3").spec, "sde": SDES.get(sde_type)().spec()})


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest entry of |a − b| relative to the largest |b|."""
    return float((a - b).abs().max()) / float(b.abs().max())


def samples(problem, name: str, **options) -> torch.Tensor:
    """500 samples of ``name`` with the exact score, seed 1."""
    score = make_score("exact", problem)
    return make_solver(name, **options).solve(problem, score, 500, generator(1)).samples


# -- exact equalities ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_first_order_cases_are_ddim(sde_type: str) -> None:
    """deis and ipndm at order 1 (either coefficients) are DDIM, and one step of each of the three is a DDIM step.

    x̂ + (σ' − σ)·ε and D + (σ'/σ)(x̂ − D) are the same number up to round-off, and DEIS's quadrature of ℓ_0 = 1 is
    σ' − σ to ~1e-15 relative. The round-off is of the state's largest size, x̂ ≈ σ(T)·z with σ(T) up to 152 (VP),
    which a single step from σ(T) to σ(ε) cancels down to unit-size samples: ~1e-16·σ(T)·(a few) relative to them.
    Measured: at most 4e-14 at 20 steps, 9e-13 for one step (DEIS on VP); the bound is 1e-11.
    """
    problem = asym3(sde_type)
    ddim, ddim_one = samples(problem, "ddim", steps=20), samples(problem, "ddim", steps=1)
    for name, options in [
        ("deis", {"order": 1}),
        ("ipndm", {"order": 1}),
    ]:
        assert max_rel_diff(samples(problem, name, steps=20, **options), ddim) <= 1e-11, (name, options)
    for name in ("deis", "ipndm", "unipc"):
        assert max_rel_diff(samples(problem, name, steps=1), ddim_one) <= 1e-11, name


@pytest.mark.parametrize(
    ("name", "high", "low", "steps"),
    [
        ("deis", {"order": 3}, {"order": 2}, 2),
        ("ipndm", {"order": 4}, {"order": 3}, 3),
        ("unipc", {"order": 3, "lower_order_final": False}, {"order": 2, "lower_order_final": False}, 2),
    ],
)
def test_warm_up_uses_the_history_at_hand(name: str, high: dict, low: dict, steps: int) -> None:
    """With fewer steps than the order needs, a run is the lower-order run, bit for bit: step i uses i + 1 outputs."""
    problem = asym3("vp")
    assert torch.equal(samples(problem, name, steps=steps, **high), samples(problem, name, steps=steps, **low))


def test_on_edm_deis_is_adams_bashforth_in_sigma() -> None:
    """On EDM t = σ, so DEIS tAB (a polynomial in t integrated in σ, by quadrature) is lms (variable-step
    Adams–Bashforth in σ): equal to 1e-12 (two quadratures of the same polynomial integrals)."""
    problem = asym3("edm")
    for order in (2, 3):
        deis = samples(problem, "deis", steps=12, order=order)
        lms = samples(problem, "lms", steps=12, order=order)
        assert max_rel_diff(deis, lms) <= 1e-12


def test_fixed_and_variable_coefficients_agree_on_equal_steps() -> None:
    """On EDM's uniform-t grid (equal steps in σ) the published constant weights are the variable-step ones: the
    runs agree to round-off (1e-12; measured 1.3e-13)."""
    problem = asym3("edm")
    fixed = samples(problem, "ipndm", steps=12, grid="uniform-t")
    variable = samples(problem, "lms", steps=12, grid="uniform-t")
    assert max_rel_diff(fixed, variable) <= 1e-12


class RecordingScore:
    """The exact score, recording the time of every call."""

    def __init__(self, problem) -> None:
        self.inner = make_score("exact", problem)
        self.name = "recording"
        self.times: list[float] = []

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.times.append(float(t))
        return self.inner(x, t)


@pytest.mark.parametrize(
    ("name", "options"),
    [("unipc", {}), ("unipc", {"order": 3, "lower_order_final": False}), ("deis", {"order": 3}), ("ipndm", {})],
)
def test_one_model_output_per_node(name: str, options: dict) -> None:
    """The score is asked once at each of t_0 … t_{N−1}, in order, and never at t_N: UniPC's corrector reuses the
    output at the predicted point, and the last step has no corrector."""
    problem = gauss1_problem("vp")
    solver = make_solver(name, steps=7, **options)
    score = RecordingScore(problem)
    solver.solve(problem, score, 10, generator(1))
    assert score.times == solver.times(problem)[:-1]


# -- coefficients against closed forms ----------------------------------------------------------------------------


def ve_closed_form(sde, nodes: list[float], t_a: float, t_b: float) -> list[float]:
    """∫ ℓ_j(t(σ)) dσ from σ(t_a) to σ(t_b) on VE, exactly: t = (u − log σmin)/log(σmax/σmin) is linear in
    u = log σ, so ℓ_j(t(e^u)) is a polynomial P(u), and ∫ P(u) e^u du = e^u Σ_k (−1)^k P^(k)(u)."""
    u_of_t = np.polynomial.Polynomial([math.log(sde.sigma_min), math.log(sde.sigma_max / sde.sigma_min)])
    u_a, u_b = float(u_of_t(t_a)), float(u_of_t(t_b))
    t_of_u = np.polynomial.Polynomial([-math.log(sde.sigma_min), 1.0]) / math.log(sde.sigma_max / sde.sigma_min)
    out = []
    for j, t_j in enumerate(nodes):
        basis = np.polynomial.Polynomial([1.0])
        for m, t_m in enumerate(nodes):
            if m != j:
                basis = basis * (t_of_u - t_m) / (t_j - t_m)

        def antiderivative(u: float, basis=basis) -> float:
            return math.exp(u) * sum((-1) ** k * basis.deriv(k)(u) for k in range(basis.degree() + 1))

        out.append(antiderivative(u_b) - antiderivative(u_a))
    return out


def adaptive_quadrature(sde, nodes: list[float], t_a: float, t_b: float) -> list[float]:
    """∫ ℓ_j(t(σ)) dσ by scipy's adaptive quadrature in u = log σ at a relative tolerance of 1e-13."""
    u_a, u_b = math.log(float(sde.sigma(t_a))), math.log(float(sde.sigma(t_b)))

    def integrand(u: float, j: int) -> float:
        t = float(sde.t_of_sigma(math.exp(u)))
        return float(lagrange_basis(nodes, np.array([t]))[j, 0]) * math.exp(u)

    return [quad(integrand, u_a, u_b, args=(j,), epsabs=0.0, epsrel=1e-13, limit=200)[0] for j in range(len(nodes))]


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_deis_coefficients_are_exact_to_1e_12(sde_type: str) -> None:
    """DEIS's Gauss–Legendre coefficients against exact values: closed forms on VE (above) and EDM (lms's
    Adams–Bashforth weights, exact for polynomials, t = σ), adaptive quadrature on VP and sub-VP. Within 1e-12 of
    the step |σ' − σ| on a 12-step karras grid and a 3-step log-σ grid (steps of 3.5 in log σ); measured at most
    2e-14."""
    problem = gauss1_problem(sde_type)
    sde = problem.sde
    for grid, steps in (("karras", 12), ("log-sigma", 3)):
        times = make_solver("deis", steps=steps, grid=grid).times(problem)
        for i, row in enumerate(deis_coefficients(sde, times, 3)):
            nodes = [times[i - j] for j in range(len(row))]
            sigma_a, sigma_b = float(sde.sigma(times[i])), float(sde.sigma(times[i + 1]))
            if sde_type == "ve":
                exact = ve_closed_form(sde, nodes, times[i], times[i + 1])
            elif sde_type == "edm":
                exact = adams_bashforth_weights(nodes, sigma_a, sigma_b)
            else:
                exact = adaptive_quadrature(sde, nodes, times[i], times[i + 1])
            assert np.allclose(row, exact, rtol=0.0, atol=1e-12 * abs(sigma_b - sigma_a)), (grid, i, row, exact)


def test_ipndm_weights_are_exact_adams_bashforth() -> None:
    """Equal steps give the published constants (to 1e-14); uneven (karras) steps integrate every σ^m, m < k, exactly
    (to 1e-12 relative), which the constants fail to do for m = 1 by far more (their O(h³) local error)."""
    for k, constants in FIXED_WEIGHTS.items():
        step = 0.37
        weights = adams_bashforth_weights([2.0 + j * step for j in range(k)], 2.0, 2.0 - step)
        assert np.allclose(np.array(weights) / -step, constants, rtol=0.0, atol=1e-14)
    sigmas = [float(s) for s in make_solver("ipndm", steps=10).grid(gauss1_problem("edm"))[1]]
    for k in (2, 3, 4):
        i = 6
        nodes, a, b = [sigmas[i - j] for j in range(k)], sigmas[i], sigmas[i + 1]
        weights = adams_bashforth_weights(nodes, a, b)
        for m in range(k):
            exact = (b ** (m + 1) - a ** (m + 1)) / (m + 1)
            assert abs(sum(w * node**m for w, node in zip(weights, nodes, strict=True)) - exact) <= 1e-12 * abs(exact)
        fixed = [(b - a) * c for c in FIXED_WEIGHTS[k]]
        miss = abs(sum(w * node for w, node in zip(fixed, nodes, strict=True)) - (b * b - a * a) / 2)
        assert miss > 1e-3 * abs(b * b - a * a) / 2


def exp_integral(poly: np.polynomial.Polynomial, lam: float, h: float) -> float:
    """∫_0^h e^{−(h−τ)} P(λ + τ) dτ for a polynomial P, exactly: Σ_k (−1)^k [P^(k)(λ + h) − e^{−h} P^(k)(λ)]."""
    return sum(
        (-1) ** k * (poly.deriv(k)(lam + h) - math.exp(-h) * poly.deriv(k)(lam)) for k in range(poly.degree() + 1)
    )


def unipc_update(poly, lams: list[float], lam_next: float, variant: str, corrector: bool) -> float:
    """(1 − e^{−h}) D_0 + B Σ a_m D1_m for D = P(λ) at the nodes ``lams`` (newest first), with the new output at
    λ_next as the last difference when ``corrector``: what a step adds to e^{−h} x̂."""
    h = lam_next - lams[0]
    d = [poly(lam) for lam in lams]
    ratios = [(lam - lams[0]) / h for lam in lams[1:]]
    diffs = [(d_m - d[0]) / r for d_m, r in zip(d[1:], ratios, strict=True)]
    if corrector:
        ratios, diffs = [*ratios, 1.0], [*diffs, poly(lam_next) - d[0]]
    weights = unipc_weights(ratios, h, variant) if ratios else []
    return -math.expm1(-h) * d[0] + b_of_h(h, variant) * sum(a * x for a, x in zip(weights, diffs, strict=True))


@pytest.mark.parametrize("h", [0.05, 0.4, 2.0])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
def test_unipc_order_conditions_on_polynomial_denoisers(h: float, variant: str) -> None:
    """Where UniPC solves its order conditions (two or more unknowns) a step is exact for a denoiser polynomial in λ
    of the degree it matches: UniP-3 for degree 2, UniC-2 for degree 2, UniC-3 for degree 3 (previous steps of
    0.7h and 1.3h); exact to 1e-12 relative. The variants give the same step there (B cancels), and the single
    unknowns are 1/2, within h/5 of the solution c_1/B of their one condition."""
    lam = -1.3
    history = [lam, lam - 0.7 * h, lam - 2.0 * h]  # newest first
    cases = [(history, 2, False), (history[:2], 2, True), (history, 3, True)]
    rng = np.random.default_rng(5)
    for nodes, degree, corrector in cases:
        poly = np.polynomial.Polynomial(rng.normal(size=degree + 1))
        exact = exp_integral(poly, lam, h)
        value = unipc_update(poly, nodes, lam + h, variant, corrector)
        assert abs(value - exact) <= 1e-12 * max(1.0, abs(exact)), (nodes, corrector, value, exact)
    ratios = [-0.7, -2.0]
    scaled = [b_of_h(h, v) * np.array(unipc_weights(ratios, h, v)) for v in ("bh1", "bh2")]
    assert np.allclose(scaled[0], scaled[1], rtol=1e-13, atol=0.0)
    assert unipc_weights([-0.7], h, variant) == [0.5] == unipc_weights([1.0], h, variant)
    if h < 1:
        assert abs(phi_moments(h, 1)[0] / b_of_h(h, variant) - 0.5) <= h / 5


def test_phi_moments_match_their_closed_forms() -> None:
    """c_1 = 1 − (1 − e^{−h})/h and c_2 = 1 − 2c_1/h where neither cancels (h ≥ 1); c_k → h/(k + 1) as h → 0."""
    for h in (1.0, 3.0, 10.0):
        c1 = 1.0 - (1.0 - math.exp(-h)) / h
        assert np.allclose(phi_moments(h, 2), [c1, 1.0 - 2.0 * c1 / h], rtol=1e-14)
    h = 1e-6
    assert np.allclose(phi_moments(h, 3), [h / 2, h / 3, h / 4], rtol=1e-5)


# -- orders -------------------------------------------------------------------------------------------------------


def fitted_order(name: str, sde_type: str, **options) -> float:
    """The generic test's fit on ``<sde>-gauss1`` over ORDER_STEPS."""
    return fitted_slope(ORDER_STEPS, flow_errors(name, sde_type, ORDER_STEPS, **options))


@pytest.mark.parametrize(
    ("name", "options", "sde_type"),
    [
        ("unipc", {"variant": "bh1"}, "vp"),
        ("unipc", {"lower_order_final": False}, "ve"),
        ("unipc", {"order": 3, "lower_order_final": False}, "edm"),
        ("unipc", {"order": 3, "variant": "bh1", "lower_order_final": False}, "subvp"),
        ("deis", {"order": 1}, "vp"),
        ("ipndm", {"order": 1}, "edm"),
        ("ipndm", {}, "vp"),
    ],
)
def test_non_default_variants_reach_their_declared_order(name: str, options: dict, sde_type: str) -> None:
    """Each non-default variant's fitted slope is within 0.3 of its declared order (the generic test's bar), on one
    SDE each (the module docstrings give the slopes on all four)."""
    declared = make_solver(name, **options).strong_order
    assert declared is not None
    slope = fitted_order(name, sde_type, **options)
    assert abs(slope - declared) <= 0.3, f"{name} {options} on {sde_type}: fitted {slope:.2f}, declared {declared}"


@pytest.mark.parametrize(
    ("name", "options", "sde_type", "low", "high"),
    [
        # DEIS order 3: the warm-up's O(h²) bends VE's slope (2.58); VP is on order 3 (2.88).
        ("deis", {"order": 3}, "ve", 2.3, 2.8),
        ("deis", {"order": 3}, "vp", 2.7, 3.3),
        # UniPC order 3 with the lower-order final steps: VE 3.28, VP 3.54.
        ("unipc", {"order": 3}, "ve", 3.0, 3.5),
        ("unipc", {"order": 3}, "vp", 3.3, 3.8),
    ],
)
def test_slopes_of_the_cases_that_declare_no_order(name: str, options: dict, sde_type: str, low: float, high: float):
    """The cases that declare no order (no single one fits every SDE within 0.3) still converge as their docstrings
    say: the fitted slope in the measured band (measured value ± ~0.25)."""
    assert make_solver(name, **options).strong_order is None
    assert low <= fitted_order(name, sde_type, **options) <= high
