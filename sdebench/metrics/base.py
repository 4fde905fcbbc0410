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


#: What an output's direction says, as ``sdebench list`` shows it.
DIRECTIONS = {
    "lower": "lower is better",
    "higher": "higher is better",
    "signed": "signed, exact value 0",
    "info": "informational, not judged",
}


@dataclass(frozen=True)
class Output:
    """The declaration of one output of a metric: what reports need to show and judge it without a list of their own.

    ``key`` is the dict key the metric returns, or a family ``"mode_frac_*"`` (one key per mode). ``title`` is the
    short column title (default: the key). ``direction``:

    - ``"lower"`` (default): lower is better. Best = the smallest mean; "≈ exact" = the mean over seeds is not
      significantly above the noise floor (one-sided).
    - ``"higher"``: the mirror image (best = the largest mean; ≈ exact = not significantly below the floor).
    - ``"signed"``: its exact value is 0 and either sign is an error. Best = the smallest |mean|; ≈ exact =
      within the floor on both sides (two-sided, a value far below is as wrong as one far above); its convergence
      error is |mean|.
    - ``"info"``: informational (an intermediate such as a mean log-density, a standard error, a per-mode
      fraction): shown in the full tables, never judged, never marked best.

    ``main``: a column of the main report table; the main outputs that have a direction and a meaningful floor are
    the ones "≈ exact" judges. ``floor``: whether the noise floor (the output for exact draws of the same n) is a
    meaningful yardstick for it (default: every direction but ``"info"``); without one it is never judged and its
    floor is not shown beside it.
    """

    key: str
    title: str = ""
    direction: str = "lower"
    main: bool = True
    floor: bool | None = None

    def __post_init__(self) -> None:
        check(
            isinstance(self.key, str) and self.key.strip() != "", "outputs", f"a key must be a name, got {self.key!r}"
        )
        check("*" not in self.key[:-1], "outputs", f"{self.key!r}: a family's '*' comes last (e.g. 'mode_frac_*')")
        check(
            self.direction in DIRECTIONS,
            "outputs",
            f"{self.key!r}: unknown direction {self.direction!r} (valid: {', '.join(DIRECTIONS)})",
        )
        object.__setattr__(self, "title", self.title or self.key)
        object.__setattr__(self, "main", bool(self.main))
        object.__setattr__(self, "floor", self.direction != "info" if self.floor is None else bool(self.floor))

    @property
    def family(self) -> bool:
        """Whether the declaration stands for a family of keys (``mode_frac_*``)."""
        return self.key.endswith("*")

    @property
    def judged(self) -> bool:
        """Whether "≈ exact" compares this output with its floor: a main column with a direction and a floor."""
        return self.main and self.floor and self.direction != "info"

    def matches(self, key: str) -> bool:
        """Whether ``key`` is this output (or one of its family)."""
        return key == self.key or (self.family and key.startswith(self.key[:-1]))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as stored with each run and shown by ``sdebench list --json``."""
        return {
            "key": self.key,
            "title": self.title,
            "direction": self.direction,
            "main": self.main,
            "floor": self.floor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Output:
        """The declaration :meth:`to_dict` wrote (fields it does not know, from newer code, are ignored)."""
        names = ("key", "title", "direction", "main", "floor")
        return cls(**{k: data[k] for k in names if k in data})

    def describe(self) -> str:
        """One line for ``sdebench list``: ``sw1 (SW1; lower is better; main column, judged)``."""
        parts = [self.title] if self.title != self.key else []
        parts.append(DIRECTIONS[self.direction])
        parts += [("main column, judged" if self.judged else "main column")] if self.main else []
        parts += ["no floor"] if not self.floor and self.direction != "info" else []
        return f"{self.key} ({'; '.join(parts)})"


def undeclared(key: str) -> Output:
    """What a key no declaration covers is taken for (a plugin metric declaring nothing): informational, so that it
    is shown but never judged by a direction nobody gave it."""
    return Output(key, direction="info", main=False)


def outputs(*declared: str | Output) -> Callable[[MetricFn], MetricFn]:
    """Declare the outputs a metric returns, each a bare key or an :class:`Output`.

    A bare key (``@outputs("sw1", "sw2")``) gets the defaults: lower is better, titled by its key, a main column
    judged against its floor. ``Output("sw2", title="SW2", main=False)`` says more; ``"mode_frac_*"`` is a family,
    one key per mode. The keys let a user ask for a metric by the name of what it outputs (``--metrics sw1``); the
    declarations go with every run into the store, so reports show and judge each output as declared, with or
    without the metric's module installed, and a test checks that a metric returns what it declares.
    """
    items = tuple(d if isinstance(d, Output) else Output(d) for d in declared)
    keys = [o.key for o in items]
    check(len(set(keys)) == len(keys), "outputs", f"a key is declared twice in {keys}")

    def declare(fn: MetricFn) -> MetricFn:
        fn.outputs = tuple(keys)  # type: ignore[attr-defined]
        fn.output_declarations = items  # type: ignore[attr-defined]
        return fn

    return declare


def declared_outputs(fn: MetricFn) -> tuple[Output, ...]:
    """A metric function's output declarations; keys set on ``fn.outputs`` by hand get the bare-key defaults, and a
    metric that declares nothing has none."""
    declared = getattr(fn, "output_declarations", None)
    if declared is not None:
        return tuple(declared)
    return tuple(Output(k) for k in getattr(fn, "outputs", ()))


def find_output(declared: tuple[Output, ...] | list[Output], key: str) -> Output:
    """The declaration of ``key`` among ``declared``: an exact key first, then the family it belongs to, else
    :func:`undeclared`."""
    for output in declared:
        if output.key == key:
            return output
    for output in declared:
        if output.matches(key):
            return output
    return undeclared(key)


def metric_outputs(names: list[str] | tuple[str, ...]) -> list[Output]:
    """The output declarations of the named registered metrics, in order (what a run stores with its result)."""
    return [o for name in names for o in declared_outputs(METRICS.get(name, "metric"))]


def _produces(fn: MetricFn, key: str) -> bool:
    return any(o.matches(key) for o in declared_outputs(fn))


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
    if metrics.get("mode_max_dev_se", 0.0) > MODE_SE_BAR:
        failures.append(f"mode fractions off by {metrics['mode_max_dev_se']:.1f} SE (> {MODE_SE_BAR:g})")
    if metrics.get("mode_std_rel_err_max", 0.0) > MODE_STD_BAR:
        failures.append(f"per-mode std off by {100 * metrics['mode_std_rel_err_max']:.1f}% (> {MODE_STD_BAR:.0%})")
    if "sw1" in metrics and metrics["sw1"] > SW1_FLOOR_FACTOR * floors["sw1"]:
        failures.append(f"SW1 {metrics['sw1']:.4f} > {SW1_FLOOR_FACTOR:g} × floor {floors['sw1']:.4f}")
    return failures


#: The "within noise" bars of :func:`quality_failures`: mode fractions in binomial SEs, per-mode std relative error,
#: SW1 as a multiple of its noise floor.
MODE_SE_BAR, MODE_STD_BAR, SW1_FLOOR_FACTOR = 4.0, 0.03, 2.0
#: The metrics the bars read.
QUALITY_METRICS = ["mode_balance", "mode_moments", "sliced_wasserstein"]


def quality_margin(metrics: dict[str, float], floors: dict[str, float]) -> float:
    """The worst of the bars' ratios (value / bar): at most 1 exactly when :func:`quality_failures` is empty, and a
    smooth-enough number to minimise (the grid search's default objective)."""
    ratios = [metrics["mode_max_dev_se"] / MODE_SE_BAR, metrics["mode_std_rel_err_max"] / MODE_STD_BAR]
    if "sw1" in metrics:
        ratios.append(metrics["sw1"] / (SW1_FLOOR_FACTOR * floors["sw1"]))
    return max(ratios)
