"""The metric suite: W2, energy, MMD, mode coverage, per-mode covariance, log-density, and the score-error profile.

Every tolerance comes from the sampling error of the quantity tested (each says how). Floors and spreads quoted
for ve-gmm2 at n = 20 000 were measured over 60 exact draws when this suite was written.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sdebench.metrics.kernel
import sdebench.metrics.moments
import sdebench.metrics.transport  # these three imports register the metrics under test
from sdebench.analysis.score_error import score_error_profile
from sdebench.errors import UserError
from sdebench.metrics import Reference, compute_metrics, noise_floors
from sdebench.metrics.kernel import (
    characteristic_function,
    fourier_frequencies,
    mixture_bandwidth,
    mixture_mmd2,
)
from sdebench.metrics.moments import expected_log_density
from sdebench.metrics.transport import exact_w2, reference_points, subsample
from sdebench.problems import GaussianMixture, Problem, get_problem
from sdebench.scores import ExactScore
from tests.conftest import generator

N = 20_000
SAMPLE_METRICS = ["energy", "mmd", "mode_coverage", "mode_covariance", "log_density"]
#: Spread of mmd2 over exact samples of ve-gmm2 at n = 20 000 (60 draws): its null law has no simple closed form.
MMD2_NULL_SD = 1.6e-5
FEW = settings(max_examples=3, deadline=None)


def inflated(mixture: GaussianMixture, seed: int, factor: float = 1.05, n: int = N) -> torch.Tensor:
    """An exact sample with every point pushed away from its own component's mean by ``factor``."""
    x, labels = mixture.sample(n, generator(seed))
    return mixture.means[labels] + factor * (x - mixture.means[labels])


def imbalanced(mixture: GaussianMixture, seed: int, major: int = 0, share: float = 0.55, n: int = N) -> torch.Tensor:
    """Exact component draws with exactly ``share`` of the n points in component ``major`` (two components)."""
    gen = generator(seed)
    count = round(share * n)
    labels = torch.cat([torch.full((count,), major), torch.full((n - count,), 1 - major)])
    z = torch.randn(n, mixture.dim, generator=gen, dtype=torch.float64)
    chol = torch.linalg.cholesky(mixture.covs)
    return mixture.means[labels] + torch.einsum("nij,nj->ni", chol[labels], z)


@pytest.fixture(scope="module")
def floors(gmm2_reference: Reference) -> dict[str, float]:
    """The library's noise floors of the new sample metrics at n = 20 000 (3 exact draws)."""
    return noise_floors(SAMPLE_METRICS, gmm2_reference, N, draws=3)


@pytest.fixture(scope="module")
def energy_floor(gmm2_reference: Reference) -> float:
    """The exact mean of ``energy`` over exact n-samples: E‖Y − Y'‖ / n.

    Against the exact mixture the V-statistic is the unbiased U-statistic (mean 0 for an exact sample) plus the
    diagonal's share of the within-sample term, E‖X − X'‖ / n; that expectation is the reference's own term.
    """
    sdebench.metrics.kernel.energy(gmm2_reference.draw(10, generator(20)), gmm2_reference)  # fills the cache
    within = gmm2_reference.cache[("energy", 2, 32, 0)]["within"]
    return float(within.mean()) / (2 / math.pi) / N


# -- exact samples sit at the floor --------------------------------------------------------------------------------
def test_exact_sample_sits_at_the_floor(
    gmm2_reference: Reference, floors: dict[str, float], energy_floor: float
) -> None:
    """An exact sample of n = 20 000 scores like the noise floor on every new metric."""
    m = compute_metrics(SAMPLE_METRICS, gmm2_reference.draw(N, generator(21)), gmm2_reference)
    # Energy: exact mean E‖Y − Y'‖/n ≈ 7e-5 (60 draws: mean 7.4e-5, sd 1.1e-4, max 7.1e-4). Its bulk is the
    # mode-fraction term, ≈ floor × χ²₁, and P(χ²₁ > 15) ≈ 1e-4. The library's 3-draw floor is near it.
    assert energy_floor == pytest.approx(7.1e-5, rel=0.05)
    assert 0 <= m["energy"] < 16 * energy_floor and floors["energy"] < 8 * energy_floor
    # Unbiased MMD²: mean 0, spread 1.6e-5 over exact draws; 6 spreads (its null law is skewed to the right).
    assert abs(m["mmd2"]) < 6 * MMD2_NULL_SD and abs(floors["mmd2"]) < 6 * MMD2_NULL_SD
    # Coverage: each mode holds ~10 000 ± 71 points, nowhere near the bar of 5 000.
    assert m["mode_coverage"] == 1.0 and m["modes_missed"] == 0.0 and floors["mode_coverage"] == 1.0
    # Relative count deficit has binomial SE sqrt((1 − w)/(w n)) = 0.0071: 4 SE.
    assert m["mode_deficit_max"] < 4 * 0.0071
    # Mahalanobis mean error: n_k |z̄|² ~ χ²₂ per mode, 99.99% quantile 18.4 → sqrt(18.4 / 10 000) = 0.043.
    assert m["mode_mean_mahal_max"] < 0.043
    # Covariance: RMS relative Frobenius error sqrt((d + 1)/n_k) = 0.017 per mode; 3.5 RMS.
    assert m["mode_cov_rel_err_max"] < 0.06
    # Log-density gap: mean zero with the standard error it reports; 4 SE.
    assert abs(m["log_density_gap"]) < 4 * m["log_density_gap_se"]
    assert abs(floors["log_density_gap"]) < 4 * m["log_density_gap_se"]


# -- symmetry ------------------------------------------------------------------------------------------------------
def test_symmetric_when_samples_and_reference_swap(gmm2_reference: Reference) -> None:
    """energy, mmd and w2 against held-out samples are symmetric in the two sets (the math says so).

    Energy and W2 use the same operations either way round (W2: the same seeded subsample indices for sets of equal
    size), so they agree to round-off. MMD is symmetric for a fixed kernel, so the bandwidth is given (its default
    rule reads the reference); its float32 phases are centred on the reference's mean, which moves when the roles
    swap, so it agrees to float32 round-off of the phases: ~1e-10 absolute, on terms of order 0.1.
    """
    x = gmm2_reference.draw(3000, generator(23))
    y = inflated(gmm2_reference.mixture, 24, n=3000)
    ref_y, ref_x = Reference("held-out y", samples=y), Reference("held-out x", samples=x)
    energy = sdebench.metrics.kernel.energy
    assert energy(x, ref_y)["energy"] == pytest.approx(energy(y, ref_x)["energy"], rel=1e-10, abs=1e-14)
    mmd = sdebench.metrics.kernel.mmd
    m_xy, m_yx = mmd(x, ref_y, bandwidth=0.05)["mmd2"], mmd(y, ref_x, bandwidth=0.05)["mmd2"]
    assert m_xy == pytest.approx(m_yx, abs=1e-9)
    w_xy = sdebench.metrics.transport.w2(x, ref_y, max_points=600)["w2"]
    w_yx = sdebench.metrics.transport.w2(y, ref_x, max_points=600)["w2"]
    assert w_xy == pytest.approx(w_yx, rel=1e-9)
    # Fixed seeds: the value depends on the samples only.
    assert sdebench.metrics.transport.w2(x, ref_y, max_points=600)["w2"] == w_xy


# -- detection at n = 20 000 ---------------------------------------------------------------------------------------
@FEW
@given(seed=st.integers(0, 2**31 - 1))
def test_detects_spread_inflation(gmm2_reference: Reference, seed: int) -> None:
    """A 5% inflation of every mode's spread, at n = 20 000.

    MMD² ≈ 3.5e-4 (closed form) against a null spread of 1.6e-5; covariance error 1.05² − 1 = 0.1025 against an
    exact-sampling RMS of 0.017; log-density gap −0.1025 against its SE 0.0075. Energy and coverage are blind to
    it by design (overall-scale and count metrics) and are not asserted on.
    """
    m = compute_metrics(SAMPLE_METRICS, inflated(gmm2_reference.mixture, seed), gmm2_reference)
    assert m["mmd2"] > 6 * MMD2_NULL_SD
    assert m["mode_cov_rel_err_max"] > 0.06  # the exact-sample bound above; the signal is 0.1025 ± 0.017
    assert m["log_density_gap"] < -4 * m["log_density_gap_se"]
    assert m["log_density_gap"] == pytest.approx(-(1.05**2 - 1), abs=4 * m["log_density_gap_se"])


@FEW
@given(seed=st.integers(0, 2**31 - 1), major=st.sampled_from([0, 1]))
def test_detects_mode_imbalance(gmm2_reference: Reference, energy_floor: float, seed: int, major: int) -> None:
    """A 55/45 split between the two modes, at n = 20 000.

    Energy ≈ 0.0135 against a floor of ~7e-5 (null ≈ floor × χ²₁); MMD² ≈ 1.7e-3 against a null spread of
    1.6e-5; the minority mode's count is 10% short of its expectation (exactly: the split is exact), against an
    exact-sampling SE of 0.7%. Coverage stays full (45% is above half of 50%), and the log-density gap does not
    move: the two modes have the same shape, so log p is blind to their weights (within 4 SE).
    """
    m = compute_metrics(SAMPLE_METRICS, imbalanced(gmm2_reference.mixture, seed, major), gmm2_reference)
    assert m["energy"] > 16 * energy_floor
    assert m["mmd2"] > 6 * MMD2_NULL_SD
    assert m["mode_deficit_max"] == pytest.approx(0.1, abs=1e-3)  # only tail points can be misassigned
    assert m["mode_coverage"] == 1.0
    assert abs(m["log_density_gap"]) < 4 * m["log_density_gap_se"]


def test_mode_coverage_sees_a_dropped_mode(gmm2_reference: Reference) -> None:
    """All samples in one mode: half the modes covered, one missed, a full deficit; 1% of a mode is still missed."""
    mix = gmm2_reference.mixture
    m = compute_metrics(["mode_coverage"], imbalanced(mix, 25, share=1.0), gmm2_reference)
    assert m == {"mode_coverage": 0.5, "modes_missed": 1.0, "mode_deficit_max": 1.0}
    m = compute_metrics(["mode_coverage"], imbalanced(mix, 26, share=0.995), gmm2_reference)
    assert m["modes_missed"] == 1.0 and m["mode_deficit_max"] == pytest.approx(0.99, abs=1e-3)


# -- W2 ------------------------------------------------------------------------------------------------------------
@settings(max_examples=5, deadline=None)
@given(n=st.integers(2, 300), seed=st.integers(0, 2**31 - 1), shape=st.sampled_from(["normal", "exponential"]))
def test_w2_matches_exact_1d(n: int, seed: int, shape: str) -> None:
    """In 1-D with equal sizes, W2² = (1/n) Σ (x_(i) − y_(i))² (sorted samples); POT's LP must agree to round-off."""
    gen = generator(seed)
    x = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    if shape == "normal":
        y = 0.5 + 2 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    else:
        y = -torch.log(torch.rand(n, 1, generator=gen, dtype=torch.float64))
    exact = float(((torch.sort(x[:, 0]).values - torch.sort(y[:, 0]).values) ** 2).mean().sqrt())
    assert sdebench.metrics.transport.w2(x, Reference("held-out", samples=y))["w2"] == pytest.approx(exact, rel=1e-9)


def test_w2_uses_the_stated_subsample_and_sits_at_its_floor(gmm2_reference: Reference) -> None:
    """w2 on 20 000 exact samples is the exact W2 between the seeded 2 000-subsample and the fixed 2 000 exact draws,
    and it sits at the floor.

    At 2 000 points a side W2² ≈ L² |Δ| (L = 2.83 between the modes; the within-mode part is ~1e-5), with Δ the
    subsamples' difference in mode fractions, sd sqrt(2 · 0.25 / 2 000) = 0.016: so it spreads widely (0.13–0.28
    seen) and a few draws make a poor floor. Bound it instead by |Δ| < 4 sd: W2 < 2.83 · sqrt(0.063) ≈ 0.71.
    """
    x = gmm2_reference.draw(N, generator(27))
    value = compute_metrics(["w2"], x, gmm2_reference)["w2"]
    a, b = subsample(x, 2000, 0), reference_points(gmm2_reference, 2000, 0)
    assert a.shape == b.shape == (2000, 2)
    assert value == exact_w2(a.numpy(), b.numpy())
    floor = noise_floors(["w2"], gmm2_reference, 4000, draws=2)["w2"]
    assert 0 < floor < 0.75 and value < 0.75


# -- the kernel metrics against closed forms -----------------------------------------------------------------------
def test_energy_matches_pairwise_distances() -> None:
    """Against held-out samples the sliced form equals the pairwise V-statistic: exactly in 1-D; in 2-D within the
    direction quadrature (kernel within 8e-4 of ‖z‖, so each term within 8e-4 of its value)."""
    gen = generator(28)
    for dim in (1, 2):
        x = torch.randn(400, dim, generator=gen, dtype=torch.float64)
        y = 0.3 + 1.2 * torch.randn(300, dim, generator=gen, dtype=torch.float64)
        terms = [torch.cdist(x, y).mean(), torch.cdist(x, x).mean(), torch.cdist(y, y).mean()]
        pairwise = float(2 * terms[0] - terms[1] - terms[2])
        value = compute_metrics(["energy"], x, Reference("held-out", samples=y))["energy"]
        tol = 1e-12 if dim == 1 else 8e-4 * float(2 * terms[0] + terms[1] + terms[2])
        assert value == pytest.approx(pairwise, abs=tol)


def test_energy_closed_form_matches_a_large_reference_sample(gmm2_reference: Reference) -> None:
    """The closed-form reference terms agree with 200 000 held-out exact draws on an imbalanced sample (≈ 0.0135).

    The held-out version differs by its own sampling noise (the reference's mode fractions: sd 0.0011, moving the
    value by ~2 × 0.0135 × 0.0011/0.05 ≈ 6e-4) plus its diagonal bias E‖Y − Y'‖/200 000 ≈ 7e-6: 1.5e-3 is ~2.5 sd.
    """
    x = imbalanced(gmm2_reference.mixture, 29)
    held_out = Reference("held-out", samples=gmm2_reference.draw(200_000, generator(30)))
    exact = compute_metrics(["energy"], x, gmm2_reference)["energy"]
    assert exact == pytest.approx(0.0135, abs=3e-3)
    assert compute_metrics(["energy"], x, held_out)["energy"] == pytest.approx(exact, abs=1.5e-3)


def test_mmd_features_match_the_gaussian_kernel(gmm2_reference: Reference) -> None:
    """Random-feature MMD² against the closed-form Gaussian-kernel MMD² between ve-gmm2 and its 5%-inflated self.

    (i) Population: with exact characteristic functions on both sides, 65 536 features average the kernel with a
    relative Monte-Carlo error ~1/sqrt(65 536)·O(1) < 1%: within 2%. (ii) The estimator on 20 000 inflated samples
    against that population value at the default 256 features: the sample's spread under this alternative is
    ~6e-5 (first-order term), so 2.5e-4 is 4 spreads.
    """
    mix = gmm2_reference.mixture
    wide = GaussianMixture(mix.weights, mix.means, mix.covs * 1.05**2)
    h = mixture_bandwidth(mix)
    exact = mixture_mmd2(mix, wide, h)
    assert exact == pytest.approx(3.52e-4, rel=0.01)  # the value quoted in the docstrings
    omega = fourier_frequencies(2, 65_536, h, 0)
    (pr, pi), (qr, qi) = characteristic_function(mix, omega), characteristic_function(wide, omega)
    assert float(((pr - qr) ** 2 + (pi - qi) ** 2).mean()) == pytest.approx(exact, rel=0.02)
    omega = fourier_frequencies(2, 256, h, 0)
    (pr, pi), (qr, qi) = characteristic_function(mix, omega), characteristic_function(wide, omega)
    population = float(((pr - qr) ** 2 + (pi - qi) ** 2).mean())
    estimate = compute_metrics(["mmd"], inflated(mix, 31), gmm2_reference)["mmd2"]
    assert estimate == pytest.approx(population, abs=2.5e-4)


def test_mmd_bandwidth_rule_and_held_out_reference(gmm2_reference: Reference) -> None:
    """The mixture rule gives the spread of one mode (≈ 0.051 with p_ε's kernel); the held-out rule is the median
    heuristic. Against 20 000 held-out exact draws, an exact sample's MMD² at the mixture's bandwidth is null
    (noise on both sides: the U-statistic's variance is 4× the one-sided one, so its spread is 2 × 1.6e-5; 6 of
    those)."""
    assert sdebench.metrics.kernel.reference_bandwidth(gmm2_reference) == pytest.approx(0.0509, abs=5e-4)
    held_out = Reference("held-out", samples=gmm2_reference.draw(N, generator(32)))
    assert 0.1 < sdebench.metrics.kernel.reference_bandwidth(held_out) < 3.0
    x = gmm2_reference.draw(N, generator(33))
    value = sdebench.metrics.kernel.mmd(x, held_out, bandwidth=mixture_bandwidth(gmm2_reference.mixture))["mmd2"]
    assert abs(value) < 6 * 2 * MMD2_NULL_SD


# -- log-density ---------------------------------------------------------------------------------------------------
def test_expected_log_density_matches_the_entropy(gmm2_reference: Reference) -> None:
    """E log p of two modes 57 spreads apart is Σ_k w_k (log w_k − ½ log det(2πe Σ_k)) up to e^-400: within 4 SE."""
    mix = gmm2_reference.mixture
    expected, se = expected_log_density(gmm2_reference)
    exact = float((mix.weights * (mix.weights.log() - 0.5 * torch.logdet(2 * math.pi * math.e * mix.covs))).sum())
    assert expected == pytest.approx(exact, abs=4 * se)
    assert 0 < se < 0.005


# -- score error profile -------------------------------------------------------------------------------------------
class ShiftedScore:
    """The exact score plus a constant vector: its σ²-weighted error is exactly σ(t)² ‖b‖² at every x."""

    name = "shifted"

    def __init__(self, problem: Problem, shift: torch.Tensor) -> None:
        self.exact, self.shift = ExactScore(problem), shift

    def __call__(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        return self.exact(x, t) + self.shift


def test_score_error_profile_exact_and_shifted(gmm2: Problem) -> None:
    """Exact score: error 0 at every t. Exact + b: error σ(t)² ‖b‖² (the same at every x, so its SE is ~0)."""
    times = [gmm2.t_end, 0.1, 0.5, 1.0]
    rows = score_error_profile(ExactScore(gmm2), gmm2, times, n=2000, generator=generator(34))
    assert [r["t"] for r in rows] == times
    assert all(r["error"] == 0.0 and r["relative_error"] == 0.0 for r in rows)
    shift = torch.tensor([0.3, -0.4], dtype=torch.float64)  # ‖b‖² = 0.25
    rows = score_error_profile(ShiftedScore(gmm2, shift), gmm2, times, n=2000, generator=generator(34))
    for row in rows:
        assert row["sigma"] == pytest.approx(gmm2.sde.sigma(row["t"]))
        assert row["error"] == pytest.approx(0.25 * row["sigma"] ** 2, rel=1e-12)
        assert row["error_se"] < 1e-12 * max(row["error"], 1e-300) + 1e-18
        assert row["relative_error"] == pytest.approx(row["error"] / row["exact_norm"])


def test_score_error_profile_normaliser_is_exact_for_a_gaussian() -> None:
    """For one Gaussian N(μ, Σ), E σ²‖∇log p_t‖² = σ² tr((Σ + σ²I)⁻¹): within 4 Monte-Carlo SEs.

    σ²‖(Σ + σ²I)⁻¹(x − μ)‖² = Σ_i a_i z_i² with a_i = σ²/(λ_i + σ²) and z standard normal: variance 2 Σ a_i².
    """
    problem = get_problem("ve-gauss1")
    n = 4000
    rows = score_error_profile(ExactScore(problem), problem, [0.2, 0.7], n=n, generator=generator(35))
    eig = torch.linalg.eigvalsh(problem.data.covs[0])
    for row in rows:
        a = row["sigma"] ** 2 / (eig + row["sigma"] ** 2)
        se = math.sqrt(2 * float((a * a).sum()) / n)
        assert row["exact_norm"] == pytest.approx(float(a.sum()), abs=4 * se)


@pytest.mark.parametrize(
    ("times", "n", "field"),
    [([], 100, "times"), ([0.5, 1.5], 100, "times"), ([float("nan")], 100, "times"), ([0.5], 1, "n")],
)
def test_score_error_profile_bad_input(gmm2: Problem, times: list[float], n: int, field: str) -> None:
    """Empty or out-of-range times, or too few draws: a UserError on that field."""
    with pytest.raises(UserError) as info:
        score_error_profile(ExactScore(gmm2), gmm2, times, n=n)
    assert info.value.field == field


# -- bad input -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["w2", *SAMPLE_METRICS])
@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (torch.zeros(10), "shape"),
        (torch.zeros(10, 3), "dimension"),
        (torch.full((10, 2), float("nan")), "NaN"),
        (torch.tensor([[0.0, float("inf")]] * 10), "inf"),
        (torch.zeros(1, 2), "at least"),
    ],
)
def test_bad_samples_are_user_errors(
    gmm2_reference: Reference, metric: str, samples: torch.Tensor, message: str
) -> None:
    """Wrong shape or dimension, NaN or inf, too few rows: a UserError naming "samples", never a NaN metric."""
    with pytest.raises(UserError, match=message) as info:
        compute_metrics([metric], samples, gmm2_reference)
    assert info.value.field == "samples"


@pytest.mark.parametrize("metric", ["mode_coverage", "mode_covariance", "log_density"])
def test_mixture_metrics_refuse_a_held_out_reference(metric: str) -> None:
    """Metrics defined by the reference's components or density need the exact mixture: a clear UserError."""
    ref = Reference(label="held-out", samples=torch.randn(50, 2, dtype=torch.float64))
    with pytest.raises(UserError, match="exact mixture"):
        compute_metrics([metric], torch.randn(50, 2, dtype=torch.float64), ref)


def test_results_are_plain_finite_floats(gmm2_reference: Reference) -> None:
    """Every key of every new metric is a finite Python float on an ordinary sample (what the store expects)."""
    out = compute_metrics(["w2", *SAMPLE_METRICS], gmm2_reference.draw(500, generator(36)), gmm2_reference)
    assert all(type(v) is float and np.isfinite(v) for v in out.values())


def test_every_metric_declares_what_it_returns():
    """Each built-in metric returns exactly its declared outputs (a ``*`` key: one per mode), on a 3-D
    three-mode problem, so that ``--metrics <output>`` finds its metric and no output goes undeclared; and each
    output is declared in full (an :class:`Output` with a title and a direction), which is all reports know of it.
    Plugin metrics that other tests of this process registered are left out: declaring is their authors' choice."""
    import fnmatch

    import torch

    from sdebench.metrics import DIRECTIONS, METRICS, Output, compute_metrics, exact_reference
    from sdebench.problems import get_problem

    reference = exact_reference(get_problem("ve-asym3"))
    samples = reference.draw(600, torch.Generator().manual_seed(0))
    builtin = [(name, fn) for name, fn in METRICS.items() if fn.__module__.startswith("sdebench.metrics.")]
    assert len(builtin) >= 9
    for name, fn in builtin:
        declared = getattr(fn, "outputs", ())
        assert declared, f"{name} declares no outputs"
        full = getattr(fn, "output_declarations", ())
        assert [o.key for o in full] == list(declared), f"{name} declares bare keys, not Output(...)"
        for output in full:
            assert isinstance(output, Output) and output.direction in DIRECTIONS, (name, output)
            # a title of its own (a report column reads "SW1", not "sw1"); "energy" is its own best title
            assert output.title != output.key or output.key == "energy", output
        keys = compute_metrics([name], samples, reference)
        for key in keys:
            assert any(fnmatch.fnmatchcase(key, pattern) for pattern in declared), (name, key, declared)
        for pattern in declared:
            assert any(fnmatch.fnmatchcase(key, pattern) for key in keys), (name, pattern, sorted(keys))


def test_metrics_asked_for_by_output_name():
    """``sw1`` means sliced_wasserstein, ``mode_frac_2`` mode_balance; repeats collapse; unknown names list both."""
    import pytest

    from sdebench.errors import UserError
    from sdebench.metrics import metric_names
    from sdebench.sweeps import expand_sweep

    assert metric_names(["sw1", "sw2", "mode_frac_2", "energy"]) == ["sliced_wasserstein", "mode_balance", "energy"]
    with pytest.raises(UserError, match=r"sw3.*their outputs: .*sw1"):
        metric_names(["sw3"])
    (run,) = expand_sweep(
        {"sweep": [{"problems": ["ve-gmm2"], "solvers": [{"name": "em"}], "metrics": ["sw1", "mmd2"], "n": [10]}]}
    )
    assert run.metrics == ("sliced_wasserstein", "mmd")
    with pytest.raises(UserError) as info:
        expand_sweep({"sweep": [{"problems": ["ve-gmm2"], "solvers": [{"name": "em"}], "metrics": ["sw1", "nope"]}]})
    assert info.value.field == "sweep[0].metrics[1]"
