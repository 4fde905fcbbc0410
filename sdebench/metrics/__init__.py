"""Metrics: registered plain functions ``(samples, reference) -> dict[str, float]``, with noise floors.

Every module in this package is imported here, so a new metric file registers itself.
"""

from sdebench.choices import DEFAULT_METRICS
from sdebench.metrics.base import (
    DIRECTIONS,
    METRICS,
    Output,
    Reference,
    check_samples,
    compute_metrics,
    data_reference,
    declared_outputs,
    exact_reference,
    find_output,
    metric_names,
    metric_outputs,
    noise_floors,
    outputs,
    quality_failures,
)
from sdebench.registry import import_modules

import_modules(__name__, __path__)

__all__ = [
    "DEFAULT_METRICS",
    "DIRECTIONS",
    "METRICS",
    "Output",
    "Reference",
    "check_samples",
    "compute_metrics",
    "data_reference",
    "declared_outputs",
    "exact_reference",
    "find_output",
    "metric_names",
    "metric_outputs",
    "noise_floors",
    "outputs",
    "quality_failures",
]
