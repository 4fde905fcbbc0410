"""The error budget: a sampler's error against p_ε split into the sources that make it, each with its noise.

A run's metric against the exact p_ε is the sum (in a metric's own, not always additive, scale) of what each
departure from exact sampling adds. Running the same solver and budget with the exact score from exact draws of p_T
(``start = exact``), then from the prior, then with the trained score, isolates them one at a time:

- **discretisation**: exact score, exact start, minus the noise floor (the solver's own error);
- **prior mismatch**: exact score from the prior, minus the same from exact p_T draws (the prior is not p_T);
- **score error**: the trained score from the prior, minus the exact score from the prior;
- **ε-truncation**: exact draws of p_data judged against p_ε, minus the floor (what stopping at ε costs when
  p_data, not p_ε, is the goal; not part of the sampler's error against p_ε, shown for scale).

Each term is a difference of means over seeds with the half-width sqrt(h₁² + h₂²) of a difference of independent
means: a term within its half-width is not distinguishable from zero. Not a metric: nothing here is registered.
"""

from __future__ import annotations

import math

from sdebench.metrics.uncertainty import Estimate

#: The sources, in the order a budget table shows them.
SOURCES = ("discretisation", "prior mismatch", "score error", "ε-truncation")


def difference(a: Estimate | None, b: Estimate | None) -> Estimate | None:
    """a − b as an Estimate (half-widths combined in quadrature); None when either is missing."""
    if a is None or b is None:
        return None
    return Estimate(a.mean - b.mean, math.hypot(a.half_width, b.half_width), min(a.count, b.count))


def budget_terms(
    floor: Estimate | None,
    exact_start: Estimate | None,
    prior_start: Estimate | None,
    trained: Estimate | None = None,
    truncation: Estimate | None = None,
) -> dict[str, Estimate | None]:
    """The four terms of one metric's budget from the runs that isolate them (None where a run is missing)."""
    return {
        "discretisation": difference(exact_start, floor),
        "prior mismatch": difference(prior_start, exact_start),
        "score error": difference(trained, prior_start),
        "ε-truncation": difference(truncation, floor),
    }


def significant(term: Estimate | None) -> bool:
    """Whether a term is distinguishable from zero (its |mean| exceeds its half-width)."""
    return term is not None and math.isfinite(term.mean) and abs(term.mean) > term.half_width


def dominant(terms: dict[str, Estimate | None], sampler_only: bool = True) -> str:
    """The source with the largest significant term ("none above noise" if none is); the ε-truncation term is left
    out with ``sampler_only`` (it is not an error of the sampler against p_ε)."""
    candidates = {
        source: term.mean
        for source, term in terms.items()
        if significant(term) and term.mean > 0 and not (sampler_only and source == "ε-truncation")
    }
    if not candidates:
        return "none above noise"
    return max(candidates, key=candidates.get)


def format_term(term: Estimate | None) -> str:
    """``+0.0123 ± 0.004`` (a * when significant), or — when the runs for it are missing."""
    if term is None:
        return "—"
    if not math.isfinite(term.half_width):
        return f"{term.mean:+.3g} (1 seed)"
    mark = "*" if significant(term) else ""
    return f"{term.mean:+.3g} ± {term.half_width:.2g}{mark}"
