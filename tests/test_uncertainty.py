"""Results over seeds (mean ± 95% CI) and the "indistinguishable from exact" flag."""

from __future__ import annotations

import math

import pytest
import torch

from sdebench.metrics import compute_metrics
from sdebench.metrics.uncertainty import Estimate, floor_estimates, indistinguishable_from_exact, summarize
from tests.conftest import generator


def test_summarize_matches_student_t() -> None:
    """Mean and half-width t_{0.975, k−1}·sd/sqrt(k) for k = 3 runs: values 1, 2, 3 → 2 ± 4.303·1/sqrt(3)."""
    est = summarize([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}])["a"]
    assert est.mean == pytest.approx(2.0)
    assert est.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert summarize([{"a": 1.0}])["a"].half_width == math.inf


def test_exact_samples_are_indistinguishable_and_inflated_ones_are_not(gmm2_reference) -> None:
    """Over 4 seeds at n = 20 000: exact samples sit at the floor; 5%-inflated modes stand out in per-mode std."""
    names = ["sliced_wasserstein", "mode_moments"]
    floors = floor_estimates(names, gmm2_reference, 20_000, draws=4)
    mix = gmm2_reference.mixture
    exact_runs, inflated_runs = [], []
    for seed in range(4):
        x, labels = mix.sample(20_000, generator(100 + seed))
        exact_runs.append(compute_metrics(names, x, gmm2_reference))
        inflated = mix.means[labels] + 1.05 * (x - mix.means[labels])
        inflated_runs.append(compute_metrics(names, inflated, gmm2_reference))
    exact, inflated = summarize(exact_runs), summarize(inflated_runs)
    for key in ("sw1", "mode_std_rel_err_max"):
        assert indistinguishable_from_exact(exact[key], floors[key]), (key, exact[key], floors[key])
    assert not indistinguishable_from_exact(inflated["mode_std_rel_err_max"], floors["mode_std_rel_err_max"])


def test_estimate_prints_mean_and_half_width() -> None:
    """An estimate prints as 'mean ± half-width'."""
    assert str(Estimate(0.01234, 0.002, 3)) == "0.01234 ± 0.002"
    assert torch.isfinite(torch.tensor(Estimate(1.0, 0.5, 2).half_width))
