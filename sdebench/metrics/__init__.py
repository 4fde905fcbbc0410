"""Metrics: registered plain functions ``(samples, reference) -> dict[str, float]``, with noise floors.

Every module in this package is imported here, so a new metric file registers itself.
"""

import importlib
import pkgutil

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

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

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
