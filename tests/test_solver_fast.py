"""The fast samplers in σ (edm-euler, edm-heun, ddim, dpmpp-2m, edm-stochastic) and the adaptive ggf solver."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from sdebench.errors import DivergedError, UserError
from sdebench.metrics import DEFAULT_METRICS, compute_metrics, noise_floors
from sdebench.problems import Problem, get_problem
from sdebench.scores import make_score
from sdebench.solvers import make_solver
from sdebench.solvers.base import initial_state
from sdebench.solvers.ggf import LazyBrownianPaths
from tests.conftest import generator
from tests.test_euler_maruyama import assert_quality_bars

N = 20_000
SIGMA_SAMPLERS = ["edm-euler", "edm-heun", "ddim", "dpmpp-2m", "edm-stochastic"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Run this module's solvers on one intra-op thread: their many small tensor ops ran ~10× slower with two
    threads while the machine's other core was busy (the ggf tolerance test: 70 s against 7 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gauss1() -> Problem:
    """The unimodal problem: its p_ε = N(μ, Σ + σ(ε)² I) is known exactly."""
    return get_problem("ve-gauss1")


# -- NFE accounting ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SIGMA_SAMPLERS)
@pytest.mark.parametrize("denoise", [False, True])
def test_counted_nfe_equals_nfe_for_steps(gmm2: Problem, name: str, denoise: bool) -> None:
    """The counted score evaluations equal the solver's own nfe_for_steps (Heun-type steps cost two)."""
    options = {"S_churn": 3.0} if name == "edm-stochastic" else {}
    solver = make_solver(name, steps=7, denoise=denoise, **options)
    result = solver.solve(gmm2, make_score("exact", gmm2), 50, generator(0))
    per_step = 2 if name in ("edm-heun", "edm-stochastic") else 1
    assert result.nfe == solver.nfe_for_steps(7) == 7 * per_step + int(denoise)
    assert result.nfe_per_sample == result.nfe


@pytest.mark.parametrize(("name", "budget", "steps"), [("edm-heun", 9, 4), ("dpmpp-2m", 9, 9), ("ddim", 1, 1)])
def test_nfe_budget_buys_the_most_steps(name: str, budget: int, steps: int) -> None:
    """An NFE budget buys the most steps that fit: Heun's 2 NFE a step leaves one evaluation of 9 unused."""
    assert make_solver(name, nfe=budget).options["steps"] == steps


def test_heun_budget_too_small_is_an_error() -> None:
    """A budget below one Heun step (2 NFE) is a one-line user error naming nfe."""
    with pytest.raises(UserError) as info:
        make_solver("edm-heun", nfe=1)
    assert info.value.field == "nfe"


# -- closed forms and identities --------------------------------------------------------------------------------------
def test_one_ddim_step_equals_closed_form(gauss1: Problem) -> None:
    """One step from σmax to σ(ε): x' = D + (σ'/σ)(x − D) with D = x + σ²·s(x, 1), from the same prior draw."""
    score = make_score("exact", gauss1)
    x0 = initial_state(gauss1, 64, "prior", generator(4))
    sigma, sigma_next = gauss1.sde.sigma(1.0), gauss1.sde.sigma(gauss1.t_end)
    d = x0 + sigma**2 * score(x0, 1.0)
    expected = d + (sigma_next / sigma) * (x0 - d)
    result = make_solver("ddim", steps=1).solve(gauss1, score, 64, generator(4))
    torch.testing.assert_close(result.samples, expected, rtol=1e-12, atol=1e-12)


def test_ddim_is_euler_in_sigma_for_ve(gmm2: Problem) -> None:
    """For VE, DDIM's D + (σ'/σ)(x − D) is algebraically Euler's x + (σ' − σ)(x − D)/σ: equal to round-off."""
    score = make_score("exact", gmm2)
    a = make_solver("ddim", steps=12).solve(gmm2, score, 500, generator(5)).samples
    b = make_solver("edm-euler", steps=12).solve(gmm2, score, 500, generator(5)).samples
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_stochastic_without_churn_is_heun(gmm2: Problem) -> None:
    """S_churn = 0 (the default) gives exactly edm-heun, and keeps Heun's declared orders."""
    score = make_score("exact", gmm2)
    a = make_solver("edm-stochastic", steps=10).solve(gmm2, score, 300, generator(6)).samples
    b = make_solver("edm-heun", steps=10).solve(gmm2, score, 300, generator(6)).samples
    assert torch.equal(a, b)
    assert make_solver("edm-stochastic").strong_order == 2.0


def test_churn_is_seeded_and_drops_the_order_claim(gmm2: Problem) -> None:
    """With S_churn > 0 the churn noise comes from the generator (same seed → same samples, another seed differs)
    and the instance declares no order; the class (default S_churn = 0) still declares Heun's."""
    score = make_score("exact", gmm2)
    solver = make_solver("edm-stochastic", steps=10, S_churn=2.0, S_min=0.05, S_max=5.0)
    a = solver.solve(gmm2, score, 300, generator(7))
    b = solver.solve(gmm2, score, 300, generator(7))
    c = solver.solve(gmm2, score, 300, generator(8))
    assert torch.equal(a.samples, b.samples) and not torch.equal(a.samples, c.samples)
    assert (solver.strong_order, solver.weak_order) == (None, None)
    assert type(solver).strong_order == 2.0
    # Karras grid, 10 steps: σ_2 … σ_8 = 3.90, 2.32, 1.33, 0.72, 0.37, 0.17, 0.076 lie in [0.05, 5]: 7 churned steps.
    assert a.info["churned_steps"] == 7 and a.info["gamma"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"S_churn": -0.1}, "S_churn"),
        ({"S_noise": 0}, "S_noise"),
        ({"S_min": 2.0, "S_max": 1.0}, "S_max"),
        ({"S_churn": "lots"}, "S_churn"),
    ],
)
def test_bad_churn_parameters(options: dict, field: str) -> None:
    """Bad churn parameters fail when the solver is built, naming the field."""
    with pytest.raises(UserError) as info:
        make_solver("edm-stochastic", **options)
    assert info.value.field == field


def test_ggf_refuses_non_additive_noise() -> None:
    """ggf's error estimate assumes additive noise: another noise type gets a reason, not a wrong run."""
    problem = SimpleNamespace(sde=SimpleNamespace(zero_drift=False, noise_type="general"))
    assert isinstance(make_solver("ggf").supports(problem), str)


# -- quality on the seed's problem ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options"),
    [
        # Smallest budgets that passed on every seed tried (0-5, and 10-17 for log-σ): dpmpp-2m 13 NFE on the
        # Karras grid and 10 on the log-σ grid; edm-heun 48 on Karras (44 passes 5/6) and 32 on log-σ.
        ("dpmpp-2m", {"nfe": 14}),
        ("dpmpp-2m", {"nfe": 10, "grid": "log-sigma"}),
        ("edm-heun", {"nfe": 48}),
        ("edm-heun", {"nfe": 36, "grid": "log-sigma"}),
    ],
)
def test_fast_samplers_pass_quality_bars(gmm2: Problem, gmm2_reference, name: str, options: dict) -> None:
    """At a modest budget, n = 20 000 with the exact score: mode fractions, per-mode spread, SW1 against the floor."""
    result = make_solver(name, **options).solve(gmm2, make_score("exact", gmm2), N, generator(1))
    assert result.nfe == options["nfe"]
    metrics = compute_metrics(DEFAULT_METRICS, result.samples, gmm2_reference)
    assert_quality_bars(metrics, noise_floors(DEFAULT_METRICS, gmm2_reference, N))


# -- ggf --------------------------------------------------------------------------------------------------------------
def test_ggf_reports_nfe_per_sample(gmm2: Problem) -> None:
    """The NFE ggf reports per sample is consistent with the counts (its quality at the default tolerances is the
    generic test's, on every SDE)."""
    result = make_solver("ggf", rtol=0.02, atol=0.02).solve(gmm2, make_score("exact", gmm2), 2000, generator(1))
    info = result.info
    # rows evaluated / n is the mean per-sample NFE; the slowest sample takes part in every batched call.
    assert info["nfe_per_sample_mean"] == pytest.approx(result.nfe_per_sample)
    assert info["nfe_per_sample_max"] == result.nfe == 2 * info["iterations"]
    assert info["nfe_per_sample_min"] < info["nfe_per_sample_mean"] < info["nfe_per_sample_max"]
    assert 0.0 < info["rejected_fraction"] < 1.0


def test_ggf_fresh_noise_retry_is_biased_in_low_dimension(gauss1: Problem) -> None:
    """The paper's retry with fresh noise selects noise draws by their error (in d = 2 the scaled L2 error hardly
    averages over entries), which inflates the variance as the tolerance tightens; retrying on the same path
    (the default) does not. Measured at rtol = atol = 0.02, n = 4000, two seeds: variance ratios 1.9 and 2.6 with
    fresh noise, within 0.04 of 1 with the bridge (SE of a variance ratio: sqrt(2/n) ≈ 0.022)."""
    score = make_score("exact", gauss1)
    exact_var = gauss1.target().covariance().diagonal()
    ratios = {}
    for retry in ("fresh", "bridge"):
        samples = make_solver("ggf", rtol=0.02, atol=0.02, retry=retry).solve(gauss1, score, 4000, generator(12))
        ratios[retry] = samples.samples.var(0) / exact_var
    assert float(ratios["fresh"].min()) > 1.3
    assert float((ratios["bridge"] - 1).abs().max()) < 0.1  # 4000 samples: SE of a ratio ≈ 0.022, so > 4 SE


def test_ggf_nan_score_is_reported_as_diverged(gmm2: Problem) -> None:
    """A NaN score makes every step's error NaN: ggf stops with DivergedError instead of rejecting forever."""

    def bad_score(x, t):
        return torch.full_like(x, float("nan"))

    with pytest.raises(DivergedError, match="diverged"):
        make_solver("ggf").solve(gmm2, bad_score, 10, generator(0))


@pytest.mark.parametrize("field", ["rtol", "atol", "h_init"])
def test_ggf_tolerances_must_be_positive(field: str) -> None:
    """rtol, atol and h_init ≤ 0 are one-line user errors naming the field."""
    with pytest.raises(UserError) as info:
        make_solver("ggf", **{field: 0.0})
    assert info.value.field == field


def test_lazy_paths_keep_one_path_through_rejections() -> None:
    """Retried queries see the same path: after a rejected query of W(1), the accepted increments that cover
    [0, 1] sum to that W(1) exactly; increments over [0, 0.4], [0.4, 0.7], [0.7, 1] have variances 0.4, 0.3, 0.3
    and are uncorrelated (n = 40 000 rows: SE of a variance ≈ sqrt(2/n)·v ≈ 0.007·v, of a correlation 0.005)."""
    n = 40_000
    paths = LazyBrownianPaths(n, 1, generator(13))
    yes, no = torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)

    def query(h: float, accept: torch.Tensor) -> torch.Tensor:
        step = torch.full((n,), h, dtype=torch.float64)
        dw = paths.increment(step)
        paths.advance(accept, step, dw)
        return dw[:, 0].clone()

    w1 = query(1.0, no)  # rejected
    query(0.5, no)  # rejected again, between two knots
    a = query(0.4, yes)
    b = query(0.3, yes)  # crosses the knot at 0.5 (now 0.1 ahead)
    c = query(0.3, yes)  # ends exactly on the knot at 1
    torch.testing.assert_close(a + b + c, w1, rtol=0, atol=1e-12)
    for inc, var in ((a, 0.4), (b, 0.3), (c, 0.3)):
        assert abs(float(inc.var()) / var - 1) < 4 * math.sqrt(2 / n)
    corr = torch.corrcoef(torch.stack([a, b, c]))
    assert float((corr - torch.eye(3, dtype=corr.dtype)).abs().max()) < 4 / math.sqrt(n)
