"""Trained scores: the default network's sample quality, determinism, the checkpoint cache, the seed's network."""

from __future__ import annotations

import math

import pytest
import torch

from sdebench.metrics import DEFAULT_METRICS, compute_metrics, noise_floors
from sdebench.problems import SDES, Problem, get_problem, problem_from_spec
from sdebench.problems.named import gauss1
from sdebench.scores import TrainConfig, make_score
from sdebench.scores import training as training_module
from sdebench.scores.networks import TimeMLP
from sdebench.scores.training import checkpoint_path, dsm_loss, load_or_train, train, training_times
from sdebench.solvers import make_solver
from tests.conftest import generator
from tests.test_euler_maruyama import N, assert_quality_bars


def test_default_network_passes_quality_bars(gmm2: Problem, gmm2_reference, trained_gmm2) -> None:
    """The default time-conditioned MLP (≈ 12 s of training) passes the exact score's bars with EM, 500 steps."""
    result = make_solver("em", steps=500).solve(gmm2, trained_gmm2, N, generator(1))
    metrics = compute_metrics(DEFAULT_METRICS, result.samples, gmm2_reference)
    assert_quality_bars(metrics, noise_floors(DEFAULT_METRICS, gmm2_reference, N))


def test_trained_score_is_close_to_exact_where_data_live(gmm2: Problem, trained_gmm2) -> None:
    """σ²-weighted score error on draws from p_t is small against the score's own size, at several t."""
    exact = make_score("exact", gmm2)
    gen = generator(2)
    for t in (0.1, 0.3, 0.6, 0.9):
        sigma = gmm2.sde.sigma(t)
        x = gmm2.data.sample(4000, gen)[0] + sigma * torch.randn(4000, 2, generator=gen, dtype=torch.float64)
        err = (sigma**2 * (trained_gmm2(x, t) - exact(x, t)).pow(2).sum(1)).mean()
        size = (sigma**2 * exact(x, t).pow(2).sum(1)).mean()
        assert float(err / size) < 0.05


def test_training_is_deterministic(gmm2: Problem) -> None:
    """Same seed → identical weights; another seed → different weights."""
    a, _ = train(gmm2, TrainConfig(steps=30), progress=False)
    b, _ = train(gmm2, TrainConfig(steps=30), progress=False)
    c, _ = train(gmm2, TrainConfig(steps=30, seed=1), progress=False)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.state_dict()["net.0.weight"], c.state_dict()["net.0.weight"])


def test_cache_is_reused_and_keyed_by_config(gmm2: Problem, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second request loads the checkpoint without training; another config gets another file."""
    config = TrainConfig(steps=20)
    first = load_or_train(gmm2, config, cache_dir=tmp_path, progress=False)
    assert first.path == checkpoint_path(gmm2, config, tmp_path) and first.path.exists()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of using the cache")

    monkeypatch.setattr(training_module, "train", no_training)
    again = load_or_train(gmm2, config, cache_dir=tmp_path, progress=False)
    x = torch.randn(8, 2, dtype=torch.float64)
    assert torch.equal(first(x, 0.3), again(x, 0.3))
    assert checkpoint_path(gmm2, TrainConfig(steps=21), tmp_path) != first.path
    assert checkpoint_path(gmm2, TrainConfig(steps=20, weighting="g2"), tmp_path) != first.path


def test_seed_network_and_seed_loss_options(gmm2: Problem) -> None:
    """The seed's network (no time input) and its loss (λ = g², plain L2 norm) are available as options.

    The seed's loss is the unsquared norm times g², so its value sits in the thousands, far above the default's.
    """
    gen = generator(3)
    x0 = gmm2.data.sample(512, gen, dtype=torch.float32)[0]
    seed_cfg = TrainConfig(arch="seed-mlp", weighting="g2", loss="norm", steps=5)
    model, _ = train(gmm2, seed_cfg, progress=False)
    seed_loss = float(dsm_loss(model, gmm2, x0, seed_cfg, gen))
    default_cfg = TrainConfig(arch="seed-mlp", steps=5)
    default_loss = float(dsm_loss(model, gmm2, x0, default_cfg, gen))
    assert seed_loss > 10 * default_loss
    score = make_score("trained", gmm2, train_config=TrainConfig(arch="seed-mlp", steps=5), progress=False)
    out = score(torch.zeros(3, 2, dtype=torch.float64), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    assert out.shape == (3, 2) and out.dtype == torch.float64


@pytest.mark.parametrize("sde_type", ["ve", "vp", "subvp", "edm"])
def test_training_times_are_log_uniform_in_sigma(sde_type: str) -> None:
    """DSM's default training times have log σ(t) uniform over [log max(σ(ε), σ_floor), log σ(T)] on every SDE,
    inside [ε, T]; on VE that is the law of t uniform, and the floor (0.002) binds only on sub-VP (σ(ε) = 1.1e-4).
    Kolmogorov–Smirnov distance over 20 000 draws below 0.015 (its 99.9% point is 1.95/sqrt(n) = 0.0138)."""
    problem = problem_from_spec(gauss1(sde_type))
    sde, n, floor = problem.sde, 20_000, TrainConfig().sigma_floor
    t = training_times(problem, "log-sigma", n, torch.Generator().manual_seed(0), torch.float64, floor)
    assert float(t.min()) >= problem.t_end and float(t.max()) <= problem.t_start
    lo, hi = math.log(max(sde.sigma(problem.t_end), floor)), math.log(sde.sigma(problem.t_start))
    assert (floor > sde.sigma(problem.t_end)) == (sde_type == "subvp")
    assert float(sde.sigma(t).min()) >= 0.999 * math.exp(lo)
    u = ((sde.sigma(t).log() - lo) / (hi - lo)).sort().values
    ks = float((u - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max())
    assert ks < 0.015
    if sde_type == "ve":
        uniform = ((t - problem.t_end) / (problem.t_start - problem.t_end)).sort().values
        assert float((uniform - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max()) < 0.015


@pytest.mark.parametrize("sde_type", ["ve", "vp", "subvp", "edm"])
def test_shared_time_path_equals_per_row_time(sde_type: str) -> None:
    """The network's fast path for one time shared by all rows (what samplers pass) gives the per-row path's
    output to float32 rounding: the two differ only in the order of the first layer's sums (|Δ| ≤ ~1e-6 of the
    output's scale, bar 1e-5), at ε, inside and at T, on a 3-D problem."""
    problem = problem_from_spec({**get_problem("ve-asym3").spec, "sde": SDES.get(sde_type)().spec()})
    torch.manual_seed(0)
    net = TimeMLP(problem.dim, problem.sde).eval()
    x = 3 * torch.randn(500, problem.dim, dtype=torch.float64, generator=generator(3))
    with torch.no_grad():
        for t in (problem.t_end, 0.5 * (problem.t_end + problem.t_start), problem.t_start):
            shared = net(x, t)
            per_row = net(x, torch.full((500, 1), t, dtype=torch.float64))
            scale = float(per_row.abs().max())
            assert float((shared - per_row).abs().max()) <= 1e-5 * scale
            assert torch.equal(net(x, torch.tensor(t, dtype=torch.float64)), shared)
