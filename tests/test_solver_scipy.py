"""The probability-flow ODE by scipy's solve_ivp: NFE accounting, accuracy against closed forms, Jacobians, failures.

Two closed forms are used:
- ``ve-gauss1`` (data N(μ, diag v)): the score −(x − μ)/(v + σ²) is linear and the flow is
  x(t) − μ = (x(1) − μ)·sqrt((v + σ(t)²)/(v + σ(1)²)) per dimension (checked against the ODE below);
- a stiff linear score s(x) = −K(x − m) with K symmetric positive definite: dx/dt = ½ g² K (x − m) and
  ∫ g² dt = σ², so x(t) − m = exp(½ (σ(t)² − σ(1)²) K)(x(1) − m). With one eigenvalue of K at 100 the decay rate
  ½ g² λ reaches ~7·10⁴: explicit methods need thousands of steps, implicit ones need the Jacobian.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import torch

from sdebench.errors import DivergedError, UserError
from sdebench.metrics import DEFAULT_METRICS, compute_metrics, noise_floors
from sdebench.problems import Problem, get_problem, problem_from_spec
from sdebench.scores import ExactScore, make_score
from sdebench.solvers import SOLVERS, make_solver
from sdebench.solvers.scipy_ode import block_diagonal_pattern, pack_banded
from tests.conftest import generator
from tests.test_euler_maruyama import N, assert_quality_bars

EXPLICIT = ["scipy-rk45", "scipy-rk23", "scipy-dop853"]
IMPLICIT = ["scipy-radau", "scipy-bdf", "scipy-lsoda"]
METHODS = EXPLICIT + IMPLICIT


def gauss_flow(problem: Problem, x1: torch.Tensor, t: float) -> torch.Tensor:
    """Exact probability-flow solution at t from x1 at t = 1 for one Gaussian with diagonal covariance."""
    mean, var = problem.data.means[0], problem.data.covs[0].diagonal()
    sigma = problem.sde.sigma
    return mean + (x1 - mean) * torch.sqrt((var + sigma(t) ** 2) / (var + sigma(1.0) ** 2))


def check_nfe_accounting(result, d: int) -> None:
    """How the counted NFE relates to scipy's counters (each score call is counted by the base class).

    NFE = nfev + evaluations scipy's nfev leaves out. With the default block-fd Jacobian those are exactly
    d per Jacobian (one per coordinate, all samples perturbed at once) plus one per Jacobian whose base value f(y)
    was not in the cache: NFE = nfev + d·njev + jac_base_evals. The explicit methods build no Jacobian: NFE = nfev.
    """
    info = result.info
    assert result.nfe == info["scipy_nfev"] + info["evals_not_in_nfev"]
    assert info["jac_calls"] == info["scipy_njev"]
    assert info["jac_evals"] == d * info["scipy_njev"] + info["jac_base_evals"]
    assert info["evals_not_in_nfev"] == info["jac_evals"]


def test_registered_with_kind_orders_and_params() -> None:
    """Six adaptive ODE solvers, rtol/atol defaulting to 1e-5; the implicit ones also choose their Jacobian."""
    assert [name for name in SOLVERS.names() if name.startswith("scipy-")] == sorted(METHODS)
    for name in METHODS:
        cls = SOLVERS.get(name)
        assert (cls.kind, cls.adaptive) == ("ode", True)
        assert cls.strong_order == cls.weak_order  # deterministic: the two coincide
        params = cls.describe()["params"]
        assert params["rtol"]["default"] == params["atol"]["default"] == 1e-5
        assert ("jacobian" in params) == (name in IMPLICIT)
    orders = {name: SOLVERS.get(name).strong_order for name in METHODS}
    assert orders == {
        "scipy-rk45": 5.0,
        "scipy-rk23": 3.0,
        "scipy-dop853": 8.0,
        "scipy-radau": 5.0,
        "scipy-bdf": 5.0,
        "scipy-lsoda": None,
    }


@pytest.mark.parametrize("name", METHODS)
def test_every_method_runs_and_counts_its_nfe(name: str, gmm2: Problem) -> None:
    """Every method returns float64 (n, d) samples, and the counted NFE decomposes into scipy's counters."""
    result = make_solver(name).solve(gmm2, make_score("exact", gmm2), 300, generator(5))
    assert result.samples.shape == (300, 2) and result.samples.dtype == torch.float64
    check_nfe_accounting(result, d=2)
    if name in EXPLICIT or name == "scipy-lsoda":  # LSODA stays in its non-stiff (Adams) mode on this flow
        assert result.nfe == result.info["scipy_nfev"] and result.info["scipy_njev"] == 0
    else:  # Radau and BDF build at least the initial Jacobian
        assert result.info["scipy_njev"] >= 1


def test_gauss1_closed_form_solves_the_ode() -> None:
    """The closed form on ve-gauss1 satisfies dx/dt = −½ g² s(x, t): central differences in t agree to 1e-6."""
    problem = get_problem("ve-gauss1")
    flow = problem.sde.probability_flow(make_score("exact", problem))
    x1 = problem.sde.prior_sample(50, problem.dim, generator=generator(11))
    for t in (0.9, 0.5, 0.1, 0.01):
        h = 1e-5 * t
        derivative = (gauss_flow(problem, x1, t + h) - gauss_flow(problem, x1, t - h)) / (2 * h)
        drift = flow.drift(gauss_flow(problem, x1, t), t)
        assert float((derivative - drift).abs().max() / drift.abs().max()) < 1e-6


@pytest.mark.parametrize("name", METHODS)
def test_error_against_closed_form_falls_with_tolerance(name: str) -> None:
    """On ve-gauss1 the max error at t_end against the exact flow falls ≥ 10× per two decades of rtol = atol,
    and stays within 100× the tolerance (measured: 0.2–40×; the global error sums local errors over the steps)."""
    problem = get_problem("ve-gauss1")
    score = make_score("exact", problem)
    x1 = problem.sde.prior_sample(200, problem.dim, generator=generator(1))
    exact = gauss_flow(problem, x1, problem.t_end)
    tolerances = [1e-3, 1e-5, 1e-7]
    errors = []
    for tol in tolerances:
        samples = make_solver(name, rtol=tol, atol=tol).solve(problem, score, 200, generator(1)).samples
        errors.append(float((samples - exact).abs().max()))
    for coarse, fine in itertools.pairwise(errors):
        assert fine < coarse / 10, f"{name}: errors {errors}"
    for tol, error in zip(tolerances, errors, strict=True):
        assert error < 100 * tol, f"{name}: errors {errors}"


def test_rk45_passes_quality_bars_on_gmm2(gmm2: Problem, gmm2_reference) -> None:
    """RK45 at rtol = atol = 1e-5, exact score, n = 20 000: issue 2's bars (the generic test runs all six).

    Measured: 104 NFE (the issue's figure measured outside the project is also ≈ 104); the bound leaves room for
    scipy versions that pick a slightly different first step.
    """
    result = make_solver("scipy-rk45", rtol=1e-5, atol=1e-5).solve(gmm2, make_score("exact", gmm2), N, generator(1))
    assert result.nfe <= 150
    metrics = compute_metrics(DEFAULT_METRICS, result.samples, gmm2_reference)
    assert_quality_bars(metrics, noise_floors(DEFAULT_METRICS, gmm2_reference, N))


class StiffLinearScore:
    """s(x) = −K(x − m) with K = V diag(λ) Vᵀ: a stiff (λ up to 100), coupled (V a rotation) linear score in 3-D."""

    name = "stiff-linear"

    def __init__(self) -> None:
        a, b = 0.6, 0.4
        rot_z = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        rot_x = torch.tensor([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
        self.rotation = (rot_z @ rot_x).to(torch.float64)
        self.eigenvalues = torch.tensor([0.01, 1.0, 100.0], dtype=torch.float64)
        self.matrix = self.rotation @ torch.diag(self.eigenvalues) @ self.rotation.T
        self.mean = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)

    def __call__(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        return -(x - self.mean) @ self.matrix

    def flow(self, problem: Problem, x1: torch.Tensor, t: float) -> torch.Tensor:
        """Exact solution at t of dx/dt = ½ g² K (x − m) from x1 at t = 1."""
        decay = torch.exp(0.5 * self.eigenvalues * (problem.sde.sigma(t) ** 2 - problem.sde.sigma(1.0) ** 2))
        return self.mean + ((x1 - self.mean) @ self.rotation) * decay @ self.rotation.T


@pytest.fixture(scope="module")
def stiff() -> tuple[Problem, StiffLinearScore]:
    """A 3-D problem stopped at t_end = 0.5 (the slow mode has decayed by e^−0.5) and the stiff score."""
    spec = {
        "name": "gauss3",
        "sde": {"type": "ve", "sigma_min": 0.01, "sigma_max": 10.0},
        "data": {"type": "gmm", "weights": [1.0], "means": [[0.0, 0.0, 0.0]], "covs": [[1.0, 1.0, 1.0]]},
        "t_end": 0.5,
    }
    return problem_from_spec(spec), StiffLinearScore()


@pytest.mark.parametrize("name", IMPLICIT)
@pytest.mark.parametrize("jacobian", ["block-fd", "scipy"])
def test_implicit_methods_on_stiff_flow(name: str, jacobian: str, stiff) -> None:
    """Radau, BDF and LSODA (which switches to its stiff mode) use Jacobians and match the exact solution.

    NFE relations: block-fd as in :func:`check_nfe_accounting`; with jacobian="scipy", LSODA's banded differences
    are inside its nfev (2d − 1 = 5 per Jacobian), Radau's sparse differences take d per Jacobian plus up to d
    refinements, BDF's one more for f(y). Measured at d = 2 on the same flow: block-fd 735 / 365 / 357 NFE,
    scipy 735 / 375 / 381 (Radau / BDF / LSODA). Error bound: 1e-4, ~100× the tolerance (as above).
    """
    problem, score = stiff
    result = make_solver(name, rtol=1e-6, atol=1e-6, jacobian=jacobian).solve(problem, score, 100, generator(3))
    x1 = problem.sde.prior_sample(100, 3, generator=generator(3))
    exact = score.flow(problem, x1, problem.t_end)
    assert float((result.samples - exact).abs().max()) < 1e-4
    info = result.info
    assert info["scipy_njev"] >= 1
    if jacobian == "block-fd":
        check_nfe_accounting(result, d=3)
        assert info["jac_base_evals"] <= info["scipy_njev"] // 4  # the cache supplies f(y) nearly always
    elif name == "scipy-lsoda":
        assert result.nfe == info["scipy_nfev"] and info["jac_calls"] == 0
    else:
        per_jacobian = info["evals_not_in_nfev"] / info["scipy_njev"]
        least = 3 + (name == "scipy-bdf")
        assert least <= per_jacobian <= least + 3


def test_explicit_method_on_stiff_flow_gives_up_at_max_nfe(stiff) -> None:
    """RK45 needs thousands of steps on the stiff flow: with max_nfe = 500 it stops with a diverged result."""
    problem, score = stiff
    with pytest.raises(DivergedError, match="max_nfe = 500"):
        make_solver("scipy-rk45", max_nfe=500).solve(problem, score, 20, generator(3))


def test_block_jacobian_layouts() -> None:
    """The CSC pattern and LSODA's packed band hold the blocks where a dense block-diagonal matrix has them."""
    n, d = 3, 3
    blocks = np.arange(n * d * d, dtype=np.float64).reshape(n, d, d) + 1
    dense = scipy.linalg.block_diag(*blocks)
    indices, indptr = block_diagonal_pattern(n, d)
    data = blocks.transpose(0, 2, 1).reshape(-1)  # column-major within each block
    assert np.array_equal(scipy.sparse.csc_matrix((data, indices, indptr), shape=(n * d, n * d)).toarray(), dense)
    packed = pack_banded(blocks)
    rows, cols = np.nonzero(np.abs(np.subtract.outer(np.arange(n * d), np.arange(n * d))) <= d - 1)
    assert np.array_equal(packed[d - 1 + rows - cols, cols], dense[rows, cols])


@pytest.mark.parametrize("name", METHODS)
def test_solve_ivp_failure_is_diverged_naming_solver_and_place(name: str, gmm2: Problem) -> None:
    """A drift singular like 1/(t − 0.5) makes every method fail near t = 0.5: a DivergedError naming the solver and
    where it stopped, never a hang or a crash.

    Which way it fails is floating point's choice and differs between machines: scipy may shrink the step until it
    underflows (status −1, "Required step size ...") or evaluate the drift at (or next to) t = 0.5, where it is inf.
    Both are the same result for a user, so the test asserts only that.
    """

    def singular(x: torch.Tensor, t: float) -> torch.Tensor:
        return torch.ones_like(x) / (t - 0.5)

    with pytest.raises(DivergedError) as info:
        make_solver(name).solve(gmm2, singular, 10, generator(0))
    message = str(info.value)
    assert message.startswith(f"solver {name!r} diverged: "), message
    where = re.search(r"at t = ([-+0-9.e]+)", message)
    assert where is not None and abs(float(where.group(1)) - 0.5) < 1e-3, message


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("scipy-rk45", {"rtol": 0}, "rtol"),
        ("scipy-rk45", {"rtol": -1e-3}, "rtol"),
        ("scipy-radau", {"atol": 0.0}, "atol"),
        ("scipy-lsoda", {"atol": "-1"}, "atol"),
        ("scipy-bdf", {"max_nfe": 0}, "max_nfe"),
        ("scipy-bdf", {"jacobian": "dense"}, "jacobian"),
        ("scipy-dop853", {"jacobian": "block-fd"}, "jacobian"),
    ],
)
def test_bad_options(name: str, options: dict, field: str) -> None:
    """Bad values fail when the solver is built, naming the field (explicit methods take no Jacobian option)."""
    with pytest.raises(UserError) as info:
        make_solver(name, **options)
    assert info.value.field == field
    if field == "jacobian" and name == "scipy-bdf":
        assert "block-fd, scipy" in info.value.message


class _Float32Score:
    """The exact score rounded to float32, like a network's output, declaring its precision."""

    name = "exact-float32"

    def __init__(self, problem, precision=torch.float32):
        self.exact = ExactScore(problem)
        if precision is not None:
            self.precision = precision

    def __call__(self, x, t):
        return self.exact(x, t).float().double()


def test_jacobian_steps_over_float32_round_off(gmm2):
    """Finite differences sized for float64 see only a float32 score's round-off; sized by the score's declared
    precision they see the Jacobian.

    Checked on the Jacobian itself (against the exact score's, differenced in float64), not on the NFE an implicit
    solver then spends: that count is one machine's floating-point path. (Measured here: Radau at rtol 1e-2 spent
    1.8× more NFE with the undeclared float32 score than with the declared one, 3.6× on the trained network.)
    Round-off of a float32 value is ~6e-8 relative; a float64-sized step h ≈ 1.5e-8·|x| turns it into an error of
    order |s|·6e-8/h ≈ |s|·4/|x| in ∂s/∂x, while the declared step sqrt(6e-8) ≈ 2.4e-4 keeps it ~1e-3 of the entry.
    """
    from sdebench.solvers.scipy_ode import _Drift

    n, t = 200, 0.3
    y = (gmm2.target().sample(n, generator=generator(0))[0] * 1.5).reshape(-1).numpy()  # points on and off the modes
    blocks = {}
    for label, score in (
        ("exact", ExactScore(gmm2)),
        ("declared", _Float32Score(gmm2)),
        ("undeclared", _Float32Score(gmm2, None)),
    ):
        blocks[label] = _Drift(gmm2, score, n, 10_000, cache=False).blocks(t, y)
    scale = blocks["exact"].abs().amax(dim=(1, 2), keepdim=True)  # per sample: the size of its Jacobian block
    error = {label: float(((blocks[label] - blocks["exact"]).abs() / scale).max()) for label in blocks}
    assert error["declared"] < 1e-2, error
    assert error["undeclared"] > 10 * error["declared"], error
