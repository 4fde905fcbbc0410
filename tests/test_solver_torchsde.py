"""The torchsde adapter: same path as the hand-written EM, exact grid stepping, NFE, reproducibility, adaptivity."""

from __future__ import annotations

import itertools

import pytest
import torch
import torchsde

from sdebench.errors import UserError
from sdebench.problems import Problem, get_problem
from sdebench.problems.sde import VESDE
from sdebench.scores import make_score
from sdebench.solvers import IntervalBrownian, make_grid, make_solver
from sdebench.solvers.base import initial_state
from sdebench.solvers.torchsde_solvers import SDE_TYPES
from tests.conftest import generator

METHODS = list(SDE_TYPES)
NAMES = [f"torchsde-{m}" for m in METHODS]


@pytest.fixture(scope="module")
def gauss1() -> Problem:
    """The unimodal problem (cheap, well-conditioned)."""
    return get_problem("ve-gauss1")


def run(name: str, problem: Problem, n: int, seed: int = 3, entropy: int | None = None, **options):
    """Solve with the exact score; on a fresh IntervalBrownian(entropy) when given, else generator noise."""
    brownian = None if entropy is None else IntervalBrownian(n, problem.dim, problem.t_end, entropy=entropy)
    return make_solver(name, **options).solve(problem, make_score("exact", problem), n, generator(seed), brownian)


def test_em_and_torchsde_euler_agree_to_round_off(gmm2: Problem) -> None:
    """Hand-written EM and torchsde ``euler`` on one Brownian path (same seed, grid and start) agree to round-off.

    Both compute x + h·g²s + g·ΔW from the same floats: the adapter's drift times, step lengths and Brownian queries
    are bit-identical to EM's, only the rounding of one product may differ (EM subtracts h·drift in one fused op).
    Measured: at most 8e-16, 1–2 ulps of the final |x| ≈ 2.5, on 14% of the entries. The bound 1e-12 leaves three
    decades for other CPUs' vectorisation, and is far below any real discrepancy: another Brownian path gives O(1),
    a Brownian path queried at times off by one ulp gives about sqrt(ulp) ≈ 1e-8.
    """
    em = run("em", gmm2, 1000, entropy=17, steps=100)
    ts = run("torchsde-euler", gmm2, 1000, entropy=17, steps=100)
    assert em.nfe == ts.nfe == 100
    assert float((em.samples - ts.samples).abs().max()) <= 1e-12


class _DirectReverseSDE:
    """The reverse SDE in s = −t for torchsde, written plainly (the reference, not the adapter's code)."""

    noise_type = "additive"

    def __init__(self, problem: Problem, method: str) -> None:
        self.problem = problem
        self.reverse = problem.sde.reverse(make_score("exact", problem))
        self.sde_type = SDE_TYPES[method]

    def f(self, s, y):
        return -self.reverse.drift(y, -float(s))

    def g(self, s, y):
        eye = torch.eye(y.shape[1], dtype=y.dtype) * self.problem.sde.diffusion(-float(s))
        return eye.expand(y.shape[0], -1, -1)  # additive noise: a (n, d, d) matrix for torchsde


def _per_interval_sdeint(problem: Problem, method: str, grid: str, steps: int, n: int, entropy: int) -> torch.Tensor:
    """torchsde.sdeint called once per grid interval (in s = −t, state and solver state threaded through)."""
    times = make_grid(grid, problem, steps)
    x = initial_state(problem, n, "prior", generator(3))
    bm = IntervalBrownian(n, problem.dim, problem.t_end, entropy=entropy).interval
    sde, extra = _DirectReverseSDE(problem, method), None
    for t_from, t_to in itertools.pairwise(times):
        # dt larger than the interval: torchsde clamps the step to the interval's end, so it lands on the grid.
        ys, extra = torchsde.sdeint(
            sde, x, [-t_from, -t_to], bm=bm, method=method, dt=2 * (t_from - t_to), extra=True, extra_solver_state=extra
        )
        x = ys[-1]
    return x


@pytest.mark.parametrize("method", METHODS)
def test_adapter_steps_exactly_on_a_non_uniform_grid(gauss1: Problem, method: str) -> None:
    """On the Karras grid the adapter's single sdeint call equals per-interval sdeint calls to round-off.

    The per-interval reference steps on the grid by construction. Agreement to 1e-12 relative (a few ulps a step
    over 40 steps; bit-identical in practice except reversible Heun, whose carried drift is rescaled between steps
    of different lengths: 1.3e-14 relative measured) shows the index-time mapping puts every step, drift time and
    Brownian query exactly where torchsde stepping on the grid would. On the unimodal problem the reverse drift
    contracts; on ve-gmm2 the few paths near the boundary between the modes amplify ulp differences (to ~1e-11).
    """
    n, steps = 200, 40
    reference = _per_interval_sdeint(gauss1, method, "karras", steps, n, entropy=5)
    result = run(f"torchsde-{method}", gauss1, n, entropy=5, steps=steps, grid="karras")
    scale = max(1.0, float(reference.abs().max()))
    assert float((result.samples - reference).abs().max()) <= 1e-12 * scale


@pytest.mark.parametrize("name", NAMES)
def test_each_method_runs_in_float64_and_counts_its_nfe(gauss1: Problem, name: str) -> None:
    """Every method returns float64 (n, d) finite samples; the counted NFE is what nfe_for_steps promises."""
    solver = make_solver(name, steps=7)
    result = solver.solve(gauss1, make_score("exact", gauss1), 64, generator(0))
    assert result.samples.shape == (64, 2) and result.samples.dtype == torch.float64
    assert bool(torch.isfinite(result.samples).all())
    assert result.nfe == solver.nfe_for_steps(7)
    budget = make_solver(name, nfe=15)
    assert budget.options["steps"] >= 7
    assert budget.solve(gauss1, make_score("exact", gauss1), 16, generator(0)).nfe <= 15


def test_milstein_is_euler_for_additive_noise(gmm2: Problem) -> None:
    """With g independent of x the Milstein correction g·∂g/∂x vanishes: the same samples as torchsde euler."""
    euler = run("torchsde-euler", gmm2, 500, steps=30)
    milstein = run("torchsde-milstein", gmm2, 500, steps=30)
    assert torch.equal(euler.samples, milstein.samples)


@pytest.mark.parametrize(("name", "options"), [("torchsde-srk", {"steps": 12}), ("torchsde-adaptive", {"rtol": 1e-2})])
def test_reproducible_from_the_seed_alone(gmm2: Problem, name: str, options: dict) -> None:
    """Generator noise (SRK's Lévy area included; the adaptive solver's BrownianInterval entropy) comes from the seed.

    Also: the global RNG is left as it was (torchsde's contract check draws from it; the adapter forks it).
    """
    state = torch.get_rng_state()
    a, b, c = (run(name, gmm2, 300, seed=seed, **options).samples for seed in (4, 4, 5))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)


def test_adaptive_error_falls_as_rtol_falls(gauss1: Problem) -> None:
    """On one Brownian path, the adaptive solver's RMS error to a fine fixed-step SRK run falls with rtol (= atol).

    Measured (n = 300, srk, three paths): errors 4.5e-2, 1.2e-2, 2.0e-3 at rtol 1e-1, 1e-2, 1e-3 with NFE 84, 132,
    252; the reference (SRK, 512 steps) is ~1.5e-4 from the true solution, 13× below the smallest error. Requiring
    each error to be at most half the previous leaves room for path-to-path variation of the ratios (0.17–0.27).
    """
    n = 300
    score = make_score("exact", gauss1)
    path = IntervalBrownian(n, gauss1.dim, gauss1.t_end, entropy=23)  # one object: every query is on one path
    reference = make_solver("torchsde-srk", steps=512).solve(gauss1, score, n, generator(3), path).samples
    errors, nfes = [], []
    for tol in (1e-1, 1e-2, 1e-3):
        result = make_solver("torchsde-adaptive", rtol=tol, atol=tol).solve(gauss1, score, n, generator(3), path)
        errors.append(float((result.samples - reference).pow(2).sum(1).mean().sqrt()))
        nfes.append(result.nfe)
    assert all(later <= 0.5 * earlier for earlier, later in itertools.pairwise(errors)), errors
    assert nfes == sorted(nfes) and nfes[0] < nfes[-1]


def test_adaptive_instance_takes_its_methods_orders() -> None:
    """The adaptive class declares no order; an instance reports those of its method's fixed-step solver."""
    assert make_solver("torchsde-adaptive").describe()["strong_order"] is None
    assert make_solver("torchsde-adaptive").strong_order == make_solver("torchsde-srk").strong_order
    assert make_solver("torchsde-adaptive", method="heun").strong_order == make_solver("torchsde-heun").strong_order


def test_adaptive_needs_a_path_it_can_query_anywhere(gmm2: Problem) -> None:
    """A sequential Brownian source (neither IntervalBrownian nor the default) is refused with a clear message."""

    def sequential(t_from: float, t_to: float) -> torch.Tensor:
        return torch.zeros(10, 2, dtype=torch.float64)

    with pytest.raises(TypeError, match="IntervalBrownian"):
        make_solver("torchsde-adaptive").solve(gmm2, make_score("exact", gmm2), 10, generator(0), sequential)


class _DiagonalVESDE(VESDE):
    noise_type = "diagonal"


@pytest.mark.parametrize("name", ["torchsde-euler", "torchsde-adaptive"])
def test_only_additive_noise_is_supported(gmm2: Problem, name: str) -> None:
    """supports() gives a reason for an SDE whose noise is not additive (the adapter's diffusion is g(t)·I)."""
    other = Problem(name="diag", sde=_DiagonalVESDE(), data=gmm2.data, t_end=gmm2.t_end)
    assert make_solver(name).supports(gmm2) is None
    assert "additive" in make_solver(name).supports(other)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"rtol": 0}, "rtol"), ({"atol": -1e-3}, "atol"), ({"dt_min": 0}, "dt_min"), ({"method": "rk4"}, "method")],
)
def test_adaptive_bad_options(options: dict, field: str) -> None:
    """Tolerances must be > 0; an unknown method lists the valid ones."""
    with pytest.raises(UserError) as info:
        make_solver("torchsde-adaptive", **options)
    assert info.value.field == field
    if field == "method":
        assert "reversible_heun" in info.value.message
