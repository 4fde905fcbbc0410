"""Metrics: registered plain functions ``(samples, reference) -> dict[str, float]``, with noise floors.

Every module in this package is imported here, so a new metric file registers itself.
"""

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
from sdebench.registry import import_modules

import_modules(__name__, __path__)

#: What `sdebench sample` and sweeps compute unless told otherwise (w2 is opt-in: exact OT costs ~1 s).
DEFAULT_METRICS = [
    "sliced_wasserstein",
    "mode_balance",
    "mode_moments",
    "energy",
    "mmd",
    "mode_coverage",
    "mode_covariance",
    "log_density",
]

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
