"""k-diffusion's samplers as peers (``kdiff-*``): sdebench's own samplers equal theirs where they are the same method.

Every comparison runs both on the same problem, score, grid and seed, so both start from the same draws; the
differences left are round-off (measured 0 to 5e-12 of the samples' scale), against a tolerance of 1e-10 of it.
Where sdebench and k-diffusion differ (the (3M) step), the test pins down exactly where. Skipped when k-diffusion
cannot be loaded, except in CI (``CI`` set), where ``make test`` installs it and a skip would hide a broken install.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import os

import numpy as np
import pytest
import torch

import sdebench.solvers.dpm_solver as dpm_solver
from sdebench.errors import UserError
from sdebench.metrics import DEFAULT_METRICS, compute_metrics
from sdebench.problems import SDES, get_problem, problem_from_spec
from sdebench.scores import make_score
from sdebench.solvers import SOLVERS, kdiff, make_solver
from tests.conftest import generator
from tests.test_euler_maruyama import N, assert_quality_bars
from tests.test_solvers_generic import exact_flow, fitted_slope, gauss1_problem, quality_case

try:
    SAMPLING = kdiff.load_sampling("kdiff-*")
except UserError as exc:
    if os.environ.get("CI"):
        raise
    pytest.skip(f"k-diffusion is not importable: {exc.message}", allow_module_level=True)

SDE_TYPES = SDES.names()
#: Round-off bound, relative to the samples' largest coordinate: measured 0 to 5e-12 over every pair and SDE
#: (the largest, dpm-2s at r = 0.3 on edm: the two compute σ_s = σ^{1−r}σ'^r with different round-off).
EQUAL = 1e-10
STEPS = 20
PATHS = 500


def asym3(sde_type: str):
    """The 3-D asymmetric mixture ``ve-asym3`` under the SDE ``sde_type``."""
    return problem_from_spec({**get_problem("ve-asym3").spec, "sde": SDES.get(sde_type)().spec()})


def samples_of(name: str, problem, seed: int = 1, n: int = PATHS, **options):
    """One run of solver ``name`` with the exact score (the result: samples and counted NFE)."""
    return make_solver(name, **options).solve(problem, make_score("exact", problem), n, generator(seed))


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest coordinate difference over the largest coordinate of ``a``."""
    return float((a - b).abs().max()) / float(a.abs().max())


def float64_noise(out: torch.Tensor, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """sdebench's noise with the product by ``scale`` in float64: the same float32 normals, widened, then scaled.

    sdebench's own :func:`~sdebench.solvers.noise.standard_normal_` rounds the scaled noise to float32 (a ~6e-8
    relative change, its speed trade); k-diffusion scales the widened normals in float64. With this the two add
    the same noise to round-off, and the comparison sees only the formulas.
    """
    return torch.mul(torch.randn(out.shape, generator=gen, dtype=torch.float32).to(out.dtype), scale, out=out)


#: (sdebench's solver, its options, the peer, the peer's options): the same method.
SAME = [
    ("edm-euler", {}, "kdiff-euler", {}),
    ("edm-heun", {}, "kdiff-heun", {}),
    ("dpmpp-2m", {}, "kdiff-dpmpp-2m", {}),
    ("lms", {}, "kdiff-lms", {}),
    ("dpm-2s", {}, "kdiff-dpmpp-2s-ancestral", {"eta": 0.0}),  # k-diffusion's 2S ancestral at η = 0 is (2S)
    ("dpm-2s", {"r": 0.3}, "kdiff-dpmpp-sde", {"eta": 0.0, "r": 0.3}),  # and its dpmpp_sde at η = 0 too, any r
]


@pytest.mark.parametrize("sde_type", SDE_TYPES)
@pytest.mark.parametrize(("ours", "our_options", "peer", "peer_options"), SAME, ids=[f"{a}={c}" for a, _, c, _ in SAME])
def test_same_method_equals_the_peer(ours, our_options, peer, peer_options, sde_type):
    """sdebench's sampler and k-diffusion's on the same grid and draws: equal samples (to 1e-10 of their scale,
    measured ≤ 5e-12) and equal counted NFE, on a 3-D asymmetric mixture under every SDE."""
    if ours not in SOLVERS:
        pytest.skip(f"{ours} is not registered")
    problem = asym3(sde_type)
    a = samples_of(ours, problem, steps=STEPS, **our_options)
    b = samples_of(peer, problem, steps=STEPS, **peer_options)
    assert relative_gap(a.samples, b.samples) <= EQUAL
    assert a.nfe == b.nfe == make_solver(peer, steps=STEPS, **peer_options).nfe_for_steps(STEPS)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_lms_orders_equal_the_peer(order):
    """The other orders of sdebench's ``lms`` equal k-diffusion's (order 4 is the parametrised test's default)."""
    if "lms" not in SOLVERS:
        pytest.skip("lms is not registered")
    problem = asym3("vp")
    a, b = (samples_of(name, problem, steps=STEPS, order=order).samples for name in ("lms", "kdiff-lms"))
    assert relative_gap(a, b) <= EQUAL


def test_denoise_is_the_peers_last_step_to_zero():
    """``denoise`` appends σ = 0 to k-diffusion's grid: its last Euler step to 0 is sdebench's Tweedie step."""
    problem = asym3("vp")
    a = samples_of("edm-heun", problem, steps=STEPS, denoise=True)
    b = samples_of("kdiff-heun", problem, steps=STEPS, denoise=True)
    assert relative_gap(a.samples, b.samples) <= EQUAL and a.nfe == b.nfe == 2 * STEPS + 1


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_2m_sde_equals_the_peer_with_the_same_normals(sde_type, monkeypatch):
    """DPM-Solver++(2M) SDE (η = 1, the "midpoint" form): the same normals from the same generator, in the same
    order, give equal samples (to 1e-10; measured ≤ 7e-14) once both scale them in float64. With sdebench's
    float32-rounded noise the gap is that rounding carried along the path: measured ≤ 6e-6 on these runs, bound
    1e-4."""
    problem = asym3(sde_type)
    b = samples_of("kdiff-dpmpp-2m-sde", problem, steps=STEPS).samples
    rounded = samples_of("dpmpp-2m-sde", problem, steps=STEPS).samples
    assert relative_gap(rounded, b) <= 1e-4
    monkeypatch.setattr(dpm_solver, "standard_normal_", float64_noise)
    a = samples_of("dpmpp-2m-sde", problem, steps=STEPS)
    assert relative_gap(a.samples, b) <= EQUAL and a.nfe == STEPS


def k_diffusion_3m_with_doubled_phi3():
    """k-diffusion's ``sample_dpmpp_3m_sde`` with its one differing term doubled: −2·φ₃·d2 for −φ₃·d2."""
    source = inspect.getsource(SAMPLING.sample_dpmpp_3m_sde)
    assert source.count("x = x + phi_2 * d1 - phi_3 * d2") == 1, "k-diffusion's (3M) step changed: re-derive"
    namespace = dict(vars(SAMPLING))
    exec(source.replace("- phi_3 * d2", "- 2 * phi_3 * d2"), namespace)
    return namespace["sample_dpmpp_3m_sde"]


@pytest.mark.parametrize("sde_type", SDE_TYPES)
def test_3m_sde_differs_from_the_peer_only_in_the_second_difference_term(sde_type, monkeypatch):
    """DPM-Solver++(3M) SDE, η = 1, same normals: k-diffusion's differs from sdebench's in one term, the
    second-difference one (see :mod:`sdebench.solvers.kdiff`). Over the first two steps, which have no such term,
    the two are equal; over 20 steps they are far apart, and equal to round-off once that term is doubled in a
    copy of k-diffusion's function."""
    problem = asym3(sde_type)
    monkeypatch.setattr(dpm_solver, "standard_normal_", float64_noise)
    two = [samples_of(name, problem, steps=2).samples for name in ("dpmpp-3m-sde", "kdiff-dpmpp-3m-sde")]
    assert relative_gap(*two) <= EQUAL
    ours = samples_of("dpmpp-3m-sde", problem, steps=STEPS).samples
    theirs = samples_of("kdiff-dpmpp-3m-sde", problem, steps=STEPS).samples
    assert relative_gap(ours, theirs) > 1e-3  # measured 0.7–0.87: a different method, not round-off
    monkeypatch.setattr(SAMPLING, "sample_dpmpp_3m_sde", k_diffusion_3m_with_doubled_phi3())
    assert relative_gap(ours, samples_of("kdiff-dpmpp-3m-sde", problem, steps=STEPS).samples) <= EQUAL


def test_k_diffusion_3m_is_second_order():
    """Why ``kdiff-dpmpp-3m-sde`` declares order 2 at η = 0: against the exact flow of one Gaussian (ve-gauss1,
    200 paths) its error falls at order 1.96 over 128–1024 steps (sdebench's ``dpmpp-3m``: order 3); the generic
    tests' tolerance of 0.3 on the fitted order."""
    problem = gauss1_problem("ve")
    x1 = problem.sde.prior_sample(200, problem.dim, generator=generator(1))
    reference = exact_flow(problem, x1, problem.t_end)
    steps = [128, 256, 512, 1024]
    runs = [samples_of("kdiff-dpmpp-3m-sde", problem, n=200, steps=s, eta=0.0).samples for s in steps]
    errors = [float((x - reference).pow(2).sum(1).mean().sqrt()) for x in runs]
    assert abs(fitted_slope(steps, errors) - 2.0) <= 0.3, errors
    assert make_solver("kdiff-dpmpp-3m-sde", eta=0.0).strong_order == 2.0


STOCHASTIC = [spec.name for spec in kdiff.PEERS if spec.stochastic]
#: NFE at which each stochastic peer passes issue 2's bars on ve-gmm2 (seed 1; measured on seeds 1–3 with every
#: per-mode std within 2.8%: euler-ancestral needs 300, the second-order ones 40–100).
SMOKE_NFE = {
    "kdiff-euler-ancestral": 300,
    "kdiff-dpmpp-2s-ancestral": 100,
    "kdiff-dpmpp-sde": 100,
    "kdiff-dpmpp-2m-sde": 40,
    "kdiff-dpmpp-3m-sde": 40,
}


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_peer_passes_the_quality_bars(name, gmm2, gmm2_reference):
    """Each stochastic peer (the generic quality test skips peers) passes issue 2's bars on ve-gmm2, n = 20 000."""
    _, reference, floors = quality_case("ve", gmm2, gmm2_reference)  # the generic tests' floors, built once
    result = make_solver(name, nfe=SMOKE_NFE[name]).solve(gmm2, make_score("exact", gmm2), N, generator(1))
    assert_quality_bars(compute_metrics(DEFAULT_METRICS, result.samples, reference), floors)


@pytest.mark.parametrize("name", ["kdiff-euler-ancestral", "kdiff-dpmpp-sde"])
def test_noise_comes_from_the_run_generator(name):
    """Same seed, same samples; another seed, other ones; torch's global RNG is left as it was."""
    problem = get_problem("ve-gmm2")
    before = torch.get_rng_state()
    runs = [samples_of(name, problem, seed=seed, n=200, nfe=12).samples for seed in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert torch.equal(torch.get_rng_state(), before)


def test_nested_noise_queries_are_one_brownian_path():
    """dpmpp_sde asks for (σ, σ_mid), then (σ, σ'): the second answer is the first increment plus an independent
    one, normalised; over 20 000 paths the correlation of the two answers is sqrt(|σ − σ_mid| / |σ − σ'|)
    (standard error 1/sqrt(20 000) = 0.007; bound 5 SE)."""
    noise = kdiff.GeneratorNoise(torch.empty(20_000, 1, dtype=torch.float64), generator(5))
    first, second = noise(2.0, 1.5), noise(2.0, 1.0)
    correlation = float(np.corrcoef(first[:, 0].numpy(), second[:, 0].numpy())[0, 1])
    assert abs(correlation - 0.5**0.5) <= 0.035
    assert abs(float(second.std()) - 1.0) <= 0.035  # std of a normalised increment: 1, SE 1/sqrt(2n) = 0.005


def test_missing_k_diffusion_is_a_one_line_user_error(monkeypatch):
    """Without k-diffusion a peer's run fails with the user error naming the extra to install."""

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(kdiff, "_sampling", None)
    monkeypatch.setattr(kdiff.importlib.metadata, "version", not_installed)
    with pytest.raises(UserError) as info:
        samples_of("kdiff-euler", get_problem("ve-gmm2"), n=10, steps=2)
    assert (info.value.field, info.value.message) == (
        "solver",
        "kdiff-euler needs k-diffusion: pip install 'sdebench[kdiff]'",
    )


def test_sampling_py_loads_without_the_heavy_package():
    """The fallback loader runs the installed ``sampling.py`` under a private name with the stand-in ``utils``."""
    module = kdiff._load_sampling_alone("hint")
    assert module.__name__ == "_sdebench_kdiffusion.sampling" and module.utils.append_dims is kdiff._append_dims
    assert all(hasattr(module, spec.function) for spec in kdiff.PEERS)


def test_listing_solvers_does_not_import_k_diffusion():
    """Importing the solvers (``sdebench list``) registers the peers without loading k-diffusion: the module's only
    import of it is inside :func:`~sdebench.solvers.kdiff.load_sampling` (read from the source; a fresh process
    that checks ``sys.modules`` would cost a torch import, ~2 s)."""
    tree = ast.parse(inspect.getsource(kdiff))
    where = {
        (node.names[0].name, function.name)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not any("k_diffusion" in alias.name or "torchdiffeq" in alias.name for n in top for alias in n.names)
    assert where == {("k_diffusion.sampling", "load_sampling")}
    assert {"kdiff-euler", "kdiff-dpmpp-3m-sde"} <= set(SOLVERS.names())
