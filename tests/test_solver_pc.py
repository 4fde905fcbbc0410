"""Predictor–corrector samplers: every predictor × corrector, NFE counts, closed-form steps, orders, bars, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sdebench.errors import UserError
from sdebench.metrics import DEFAULT_METRICS, compute_metrics, noise_floors
from sdebench.problems import Problem, get_problem
from sdebench.scores import make_score
from sdebench.solvers import IntervalBrownian, PartitionBrownian, make_solver
from sdebench.solvers.base import initial_state
from sdebench.solvers.pc import (
    CORRECTORS,
    PREDICTORS,
    AnnealedLangevinCorrector,
    LangevinCorrector,
    Predictor,
    predictor,
)
from tests.conftest import generator
from tests.test_euler_maruyama import N, assert_quality_bars

PREDICTOR_NFE = {"none": 0, "euler_maruyama": 1, "reverse_diffusion": 1, "ancestral": 1}
CORRECTOR_NFE = {"none": 0, "langevin": 1, "annealed_langevin": 1}
COMBOS = [(p, c) for p, c in itertools.product(PREDICTOR_NFE, CORRECTOR_NFE) if (p, c) != ("none", "none")]


def test_registries_hold_the_documented_names() -> None:
    """The four predictors and three correctors are registered (and listed by a lookup miss)."""
    assert PREDICTORS.names() == sorted(PREDICTOR_NFE)
    assert CORRECTORS.names() == sorted(CORRECTOR_NFE)


def test_registering_a_name_twice_is_an_error() -> None:
    """A duplicate predictor name fails at registration and leaves the registry unchanged."""
    before = PREDICTORS.get("ancestral")
    with pytest.raises(ValueError, match="registered twice"):
        predictor("ancestral")(type("Duplicate", (Predictor,), {}))
    assert PREDICTORS.get("ancestral") is before


@pytest.mark.parametrize(("pred", "corr"), COMBOS)
def test_every_combination_runs_and_counts_nfe(pred: str, corr: str, gmm2: Problem) -> None:
    """Any predictor with any corrector: counted NFE = steps·(predictor + n_steps_each·corrector) + denoise.

    The count comes from the base class's counting wrapper, so it is checked against both the formula and
    ``nfe_for_steps``; the same seed gives the same samples.
    """
    score = make_score("exact", gmm2)
    solver = make_solver("pc", steps=3, predictor=pred, corrector=corr, n_steps_each=2, denoise=True)
    expected = 3 * (PREDICTOR_NFE[pred] + 2 * CORRECTOR_NFE[corr]) + 1
    a = solver.solve(gmm2, score, 64, generator(5))
    b = solver.solve(gmm2, score, 64, generator(5))
    assert a.nfe == solver.nfe_for_steps(3) == expected
    assert torch.equal(a.samples, b.samples) and a.samples.shape == (64, 2)
    assert a.info["predictor"] == pred and a.info["corrector"] == corr


def test_budget_buys_steps_that_fit_and_the_count_matches(gmm2: Problem) -> None:
    """An NFE budget with 3 corrector steps a step (4 NFE a step) buys 12 steps out of 50; 48 NFE are counted."""
    solver = make_solver("pc", nfe=50, n_steps_each=3)
    assert solver.options["steps"] == 12
    assert solver.solve(gmm2, make_score("exact", gmm2), 32, generator(6)).nfe == 48 == solver.nfe_for_steps(12)


def test_reverse_diffusion_step_matches_closed_form(gmm2: Problem) -> None:
    """One predictor-only step from t = 1 to t_end: x ← x + G²·s(x, 1) + G·ΔW̄/sqrt(Δt), G² = σ(1)² − σ(ε)².

    Same initial draw (same generator seed) and the same Brownian increment (a seeded IntervalBrownian, queried on
    the same interval), so the match is to round-off.
    """
    n, sde, t_end = 256, gmm2.sde, gmm2.t_end
    score = make_score("exact", gmm2)
    brownian = IntervalBrownian(n, gmm2.dim, t_end, entropy=3)
    got = make_solver("pc", steps=1, corrector="none").solve(gmm2, score, n, generator(4), brownian).samples
    x = initial_state(gmm2, n, "prior", generator(4))
    g2 = sde.sigma(1.0) ** 2 - sde.sigma(t_end) ** 2
    z = brownian(1.0, t_end) / math.sqrt(1.0 - t_end)
    expected = x + g2 * score(x, 1.0) + math.sqrt(g2) * z
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_ancestral_step_matches_closed_form(gmm2: Problem) -> None:
    """Ancestral step over two grid points: mean x + G²·s, noise std sqrt(σ_next²·G²/σ_cur²) (SMLD's posterior)."""
    n, sde = 256, gmm2.sde
    score = make_score("exact", gmm2)
    solver = make_solver("pc", steps=2, predictor="ancestral", corrector="none")
    times = solver.times(gmm2)
    brownian = IntervalBrownian(n, gmm2.dim, gmm2.t_end, entropy=3)
    got = solver.solve(gmm2, score, n, generator(4), brownian).samples
    x = initial_state(gmm2, n, "prior", generator(4))
    for t_cur, t_next in itertools.pairwise(times):
        g2 = sde.sigma(t_cur) ** 2 - sde.sigma(t_next) ** 2
        std = math.sqrt(sde.sigma(t_next) ** 2 * g2 / sde.sigma(t_cur) ** 2)
        x = x + g2 * score(x, t_cur) + std * brownian(t_cur, t_next) / math.sqrt(t_cur - t_next)
    torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-12)


def test_euler_maruyama_predictor_is_em_on_the_same_path(gmm2: Problem) -> None:
    """Predictor-only EM equals the `em` solver to round-off on one Brownian path (same grid, same start)."""
    n = 128
    score = make_score("exact", gmm2)
    pc = make_solver("pc", steps=20, predictor="euler_maruyama", corrector="none")
    a = pc.solve(gmm2, score, n, generator(8), IntervalBrownian(n, 2, gmm2.t_end, entropy=9)).samples
    b = make_solver("em", steps=20).solve(gmm2, score, n, generator(8), IntervalBrownian(n, 2, gmm2.t_end, 9)).samples
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_langevin_step_size_uses_batch_mean_norms(gmm2: Problem) -> None:
    """One Langevin step: ε = 2·(snr·mean‖z‖/mean‖s‖)², x ← x + ε·s + sqrt(2ε)·z, z from the run's generator."""
    x = gmm2.sde.prior_sample(500, 2, generator=generator(1)) * 0.01
    score = make_score("exact", gmm2)
    got = LangevinCorrector().correct(gmm2.sde, score, x.clone(), 0.1, 0.16, 1, generator(2))
    # The corrector's draws: float32 normals from the generator, widened (sdebench.solvers.noise).
    z = torch.randn(x.shape, generator=generator(2), dtype=torch.float32).to(torch.float64)
    s = score(x, 0.1)
    eps = 2 * (0.16 * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
    torch.testing.assert_close(got, x + eps * s + torch.sqrt(2 * eps) * z, rtol=1e-12, atol=1e-12)


def test_annealed_langevin_step_size_follows_sigma(gmm2: Problem) -> None:
    """Annealed Langevin: ε = 2·(snr·σ(t))², independent of the score's norm."""
    x = gmm2.sde.prior_sample(100, 2, generator=generator(1)) * 0.1
    score = make_score("exact", gmm2)
    got = AnnealedLangevinCorrector().correct(gmm2.sde, score, x.clone(), 0.3, 0.2, 1, generator(2))
    z = torch.randn(x.shape, generator=generator(2), dtype=torch.float32).to(torch.float64)
    eps = 2 * (0.2 * gmm2.sde.sigma(0.3)) ** 2
    torch.testing.assert_close(got, x + eps * score(x, 0.3) + math.sqrt(2 * eps) * z, rtol=1e-12, atol=1e-12)


def test_declared_orders_follow_the_options() -> None:
    """Orders are set on the built instance: the predictor's with corrector none, otherwise None."""
    assert make_solver("pc").strong_order is None and make_solver("pc").weak_order is None
    assert make_solver("pc").describe()["strong_order"] is None  # the class (``sdebench list``) shows the default's
    for pred in ("euler_maruyama", "reverse_diffusion", "ancestral"):
        solver = make_solver("pc", predictor=pred, corrector="none")
        assert (solver.strong_order, solver.weak_order) == (1.0, 1.0)
    assert make_solver("pc", predictor="none", corrector="annealed_langevin").strong_order is None


@pytest.mark.parametrize("pred", ["reverse_diffusion", "ancestral"])
def test_predictor_only_strong_order_on_one_gaussian(pred: str) -> None:
    """Predictor-only reverse diffusion and ancestral sampling converge at strong order 1 (additive noise).

    As the generic order test (which skips ``pc``: its default has a corrector): RMS error at t_end on
    ``ve-gauss1`` against a 4096-step run on the same Brownian path; slope within 0.3 of 1.0.
    """
    problem, n, fine = get_problem("ve-gauss1"), 200, 4096
    score = make_score("exact", problem)
    steps = [32, 64, 128, 256]

    def solver(k: int):
        return make_solver("pc", steps=k, predictor=pred, corrector="none")

    brownian = PartitionBrownian(n, problem.dim, [solver(k).times(problem) for k in [*steps, fine]], seed=7)

    def run(k: int) -> torch.Tensor:
        return solver(k).solve(problem, score, n, generator(1), brownian).samples

    reference = run(fine)
    errors = [float((run(k) - reference).pow(2).sum(1).mean().sqrt()) for k in steps]
    slope = -float(np.polyfit(np.log(steps), np.log(errors), 1)[0])
    assert abs(slope - 1.0) <= 0.3, f"{pred}: fitted order {slope:.2f}; errors {errors}"


@pytest.fixture(scope="module")
def floors(gmm2_reference) -> dict:
    """Noise floors of the default metrics at n = 20 000."""
    return noise_floors(DEFAULT_METRICS, gmm2_reference, N)


def test_default_pc_passes_quality_bars_at_140_nfe(gmm2: Problem, gmm2_reference, floors: dict) -> None:
    """Defaults (reverse diffusion + one Langevin step, snr 0.16) at 140 NFE (70 steps) pass issue 2's bars.

    Measured: 140 NFE passed on 11 of 11 seeds, 100 NFE on none (per-mode spread 3–4% high). The Langevin step
    leaves a bias of its own: for a Gaussian, the step ε = 2·snr²·v has stationary variance v/(1 − snr²), spread
    +1.3% at snr 0.16, so the spread stays 1.5–2.5% high at any budget, about 1% inside the 3% bar (at 200, 300 and
    500 NFE 31 of 33 seeds passed: one spread at 3.1%, one SW1 at 2.15× the floor from a 2-SE mode imbalance).
    Seed 1, as in the generic test.
    """
    result = make_solver("pc", nfe=140).solve(gmm2, make_score("exact", gmm2), N, generator(1))
    assert result.nfe == 140
    assert_quality_bars(compute_metrics(DEFAULT_METRICS, result.samples, gmm2_reference), floors)


def test_corrector_only_annealed_langevin_passes_quality_bars(gmm2: Problem, gmm2_reference, floors: dict) -> None:
    """Corrector-only sampling (annealed Langevin dynamics, no predictor): 300 levels × 2 steps, snr 0.5, 600 NFE.

    At snr 0.16 annealed Langevin does not get there within 1000 NFE (spread +8%): its step 2·(snr·σ)² is tiny
    against a mode's variance once σ falls below the mode spread (0.05), so the spread freezes too wide; a larger
    snr keeps it mixing. Measured at 600 NFE, snr 0.5: spread +2.1% and +2.8% on two seeds.
    """
    solver = make_solver("pc", steps=300, n_steps_each=2, snr=0.5, predictor="none", corrector="annealed_langevin")
    result = solver.solve(gmm2, make_score("exact", gmm2), N, generator(2))
    assert result.nfe == 600
    assert_quality_bars(compute_metrics(DEFAULT_METRICS, result.samples, gmm2_reference), floors)


@pytest.mark.parametrize(
    ("options", "field", "needle"),
    [
        ({"predictor": "heun"}, "predictor", "ancestral, euler_maruyama, none, reverse_diffusion"),
        ({"corrector": "mala"}, "corrector", "annealed_langevin, langevin, none"),
        ({"snr": 0}, "snr", "> 0"),
        ({"snr": -0.1}, "snr", "> 0"),
        ({"n_steps_each": 0}, "n_steps_each", ">= 1"),
        ({"predictor": "none", "corrector": "none"}, "corrector", "both be 'none'"),
        ({"predictor": "none", "corrector": "none", "nfe": 10}, "corrector", "both be 'none'"),
        ({"nfe": 1}, "nfe", "one step costs 2"),
    ],
)
def test_bad_options_name_the_field(options: dict, field: str, needle: str) -> None:
    """Bad options fail when the solver is built, naming the field; unknown names list the valid ones."""
    with pytest.raises(UserError) as info:
        make_solver("pc", **options)
    assert info.value.field == field
    assert needle in info.value.message
