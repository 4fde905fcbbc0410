"""The metric interface: a registered plain function ``(samples, reference) -> dict[str, float]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from sdebench.errors import UserError, check
from sdebench.problems import GaussianMixture, Problem
from sdebench.registry import Registry

Tensor = torch.Tensor
MetricFn = Callable[..., dict[str, float]]

#: Metric functions by name.
METRICS: Registry = Registry("metric")


@dataclass
class Reference:
    """What samples are judged against: an exact mixture when the data has one, otherwise held-out samples.

    ``label`` says which (it goes into reports). ``cache`` holds work that depends only on the reference (such as
    exact projected quantiles), so that comparing many sample sets costs it once.
    """

    label: str
    mixture: GaussianMixture | None = None
    samples: Tensor | None = None
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        """Dimension d of the reference."""
        return self.mixture.dim if self.mixture is not None else self.samples.shape[1]

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """n exact draws (from the mixture, or resampled from the held-out samples)."""
        if self.mixture is not None:
            return self.mixture.sample(n, generator=generator)[0]
        index = torch.randint(self.samples.shape[0], (n,), generator=generator)
        return self.samples[index]


def exact_reference(problem: Problem) -> Reference:
    """The exact p_ε = data ⊛ N(0, σ(ε)² I): the honest target of a sampler that stops at t = ε."""
    return Reference(label=f"exact p_eps (t_end={problem.t_end:g})", mixture=problem.target())


def data_reference(problem: Problem) -> Reference:
    """The exact data distribution p_0 (without the kernel noise left at ε)."""
    return Reference(label="exact p_data", mixture=problem.data)


def check_samples(samples: Any, reference: Reference, min_n: int = 2) -> Tensor:
    """Samples as a float64 (n, d) tensor matching the reference; a :class:`UserError` otherwise."""
    x = torch.as_tensor(samples)
    check(x.dim() == 2, "samples", f"must have shape (n, d), got {tuple(x.shape)}")
    check(x.shape[1] == reference.dim, "samples", f"have dimension {x.shape[1]}, the reference has {reference.dim}")
    check(x.shape[0] >= min_n, "samples", f"need at least {min_n} rows, got {x.shape[0]}")
    check(bool(torch.isfinite(x).all()), "samples", "contain NaN or inf")
    return x.to(torch.float64)


def require_mixture(reference: Reference, metric: str) -> GaussianMixture:
    """The reference's exact mixture, or a :class:`UserError` saying the metric needs one."""
    if reference.mixture is None:
        raise UserError("metric", f"{metric!r} needs an exact mixture reference")
    return reference.mixture


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread, then restore: metric arrays of n × d gain nothing from threads, and on a busy
    machine the threads' synchronisation made mode_balance 100× slower (0.3 s instead of 3 ms at n = 20 000)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def outputs(*keys: str) -> Callable[[MetricFn], MetricFn]:
    """Declare the keys a metric returns (``"mode_frac_*"``: a family, one per mode), so that a user may ask for a
    metric by the name of what it outputs (``--metrics sw1``) and a test can check what it returns."""

    def declare(fn: MetricFn) -> MetricFn:
        fn.outputs = tuple(keys)  # type: ignore[attr-defined]
        return fn

    return declare


def _produces(fn: MetricFn, key: str) -> bool:
    return any(key == k or (k.endswith("*") and key.startswith(k[:-1])) for k in getattr(fn, "outputs", ()))


def metric_names(names: list[str], field: str = "metrics") -> list[str]:
    """The metrics to compute for ``names``, each a metric's name or the name of one of its declared outputs
    (``sw1`` → ``sliced_wasserstein``), in order without repeats; a :class:`UserError` names an unknown one."""
    out: list[str] = []
    for name in names:
        if name in METRICS:
            chosen = name
        else:
            makers = [m for m, fn in METRICS.items() if _produces(fn, name)]
            if not makers:
                declared = sorted({k for _, fn in METRICS.items() for k in getattr(fn, "outputs", ())})
                raise UserError(
                    field,
                    f"unknown metric {name!r} (metrics: {', '.join(METRICS.names())}; their outputs: "
                    f"{', '.join(declared)})",
                )
            chosen = makers[0]
        if chosen not in out:
            out.append(chosen)
    return out


def compute_metrics(names: list[str], samples: Any, reference: Reference) -> dict[str, float]:
    """All the named metrics of ``samples`` against ``reference``, merged into one dict."""
    functions = [METRICS.get(name, "metric") for name in names]
    out: dict[str, float] = {}
    with single_thread():
        for fn in functions:
            out.update(fn(samples, reference))
    return out


def noise_floors(names: list[str], reference: Reference, n: int, draws: int = 5, seed: int = 12345) -> dict[str, float]:
    """Each metric between an exact n-sample and the reference, averaged over ``draws`` draws.

    A result at or below its floor cannot be told apart from exact sampling at this n.
    """
    gen = torch.Generator().manual_seed(seed)
    total: dict[str, float] = {}
    for _ in range(draws):
        for key, value in compute_metrics(names, reference.draw(n, gen), reference).items():
            total[key] = total.get(key, 0.0) + value / draws
    return total


def quality_failures(metrics: dict[str, float], floors: dict[str, float]) -> list[str]:
    """Which of the "within noise" bars a result misses (empty: indistinguishable from exact sampling).

    The bars (issue 2), for a mixture problem at n samples: every mode fraction within 4 binomial standard errors
    of its weight; each mode's std within 3% of the reference's; SW1 at most twice its noise floor.
    """
    failures = []
    if metrics.get("mode_max_dev_se", 0.0) > 4.0:
        failures.append(f"mode fractions off by {metrics['mode_max_dev_se']:.1f} SE (> 4)")
    if metrics.get("mode_std_rel_err_max", 0.0) > 0.03:
        failures.append(f"per-mode std off by {100 * metrics['mode_std_rel_err_max']:.1f}% (> 3%)")
    if "sw1" in metrics and metrics["sw1"] > 2 * floors["sw1"]:
        failures.append(f"SW1 {metrics['sw1']:.4f} > 2 × floor {floors['sw1']:.4f}")
    return failures
