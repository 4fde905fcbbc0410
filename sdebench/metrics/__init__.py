"""Metrics: registered plain functions ``(samples, reference) -> dict[str, float]``, with noise floors."""

from sdebench.metrics import modes, sliced  # noqa: F401  (registers the metrics)
from sdebench.metrics.base import (
    METRICS,
    Reference,
    check_samples,
    compute_metrics,
    data_reference,
    exact_reference,
    noise_floors,
    quality_failures,
)

DEFAULT_METRICS = ["sliced_wasserstein", "mode_balance", "mode_moments"]

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "Reference",
    "check_samples",
    "compute_metrics",
    "data_reference",
    "exact_reference",
    "noise_floors",
    "quality_failures",
]
