"""The solver interface: a class per solver with declared orders and parameters, a result, and the registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sdebench.errors import DivergedError, UserError, check
from sdebench.problems import Problem
from sdebench.registry import Registry
from sdebench.scores.base import CountingScore, Score
from sdebench.solvers.brownian import Brownian, GeneratorBrownian
from sdebench.solvers.grids import GRIDS, GridFn, make_grid

Tensor = torch.Tensor

#: Solver classes by name.
SOLVERS: Registry = Registry("solver")


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: register a solver under its ``name``."""
    return SOLVERS.register(cls.name)(cls)


@dataclass(frozen=True)
class Param:
    """A solver parameter: its type, default, an optional validity check and a one-line description."""

    name: str
    type: type
    default: Any
    doc: str
    valid: Callable[[Any], bool] | None = None
    requirement: str = ""
    choices: tuple[str, ...] | None = None
    registry: Registry | None = None  # the value must name an entry of this registry (e.g. GRIDS)

    def parse(self, value: Any, field_name: str) -> Any:
        """Convert (a string from the CLI, or a TOML value) and validate; None stays None (not set)."""
        if value is None:
            return None
        if self.type is bool:
            if isinstance(value, str):
                check(value.lower() in ("true", "false", "1", "0"), field_name, "must be true or false")
                value = value.lower() in ("true", "1")
            check(isinstance(value, bool), field_name, "must be true or false")
        elif self.type in (int, float):
            try:
                number = self.type(value) if isinstance(value, str) else value
            except ValueError:
                raise UserError(field_name, f"must be {'an integer' if self.type is int else 'a number'}") from None
            ok = isinstance(number, (int, float)) and not isinstance(number, bool)
            if self.type is int:
                ok = ok and float(number).is_integer()
            check(ok, field_name, f"must be {'an integer' if self.type is int else 'a number'}, got {value!r}")
            value = self.type(number)
        else:
            check(isinstance(value, str), field_name, "must be a string")
        if self.registry is not None:
            self.registry.get(value, field_name)
        if self.choices is not None:
            check(value in self.choices, field_name, f"unknown {value!r} (valid: {', '.join(self.choices)})")
        if self.valid is not None:
            check(self.valid(value), field_name, self.requirement)
        return value

    def describe(self) -> dict[str, Any]:
        """Plain-data description for ``sdebench list --json``."""
        out = {"type": self.type.__name__, "default": self.default, "doc": self.doc}
        if self.requirement:
            out["requirement"] = self.requirement
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.registry is not None:
            out["choices"] = self.registry.names()
        return out


@dataclass
class SolveResult:
    """Samples (float64, (n, d)), the counted number of score evaluations, wall time and solver-specific info."""

    samples: Tensor
    nfe: int
    nfe_per_sample: float
    wall_s: float
    info: dict[str, Any] = field(default_factory=dict)


class Solver:
    """Base class: subclasses set ``name``, ``kind``, the declared orders and ``params``, and implement ``_solve``.

    Parameters are validated when the solver is built, so a bad one fails before any work. ``solve`` counts score
    evaluations by wrapping the score, times the run, and turns NaN or inf into :class:`DivergedError`.
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "sde"  # "sde" (stochastic) or "ode" (deterministic)
    #: Adaptive solvers choose their own steps from tolerances named ``rtol`` and ``atol``; their declared orders
    #: are not fitted against step counts but checked by a tolerance–error test.
    adaptive: ClassVar[bool] = False
    #: For adaptive solvers: tolerances (coarse to fine) over which the error is expected to fall visibly.
    tolerance_scan: ClassVar[tuple[float, ...]] = (1e-2, 1e-4, 1e-6)
    #: SDE solvers that can run on a Brownian path handed to them (so two runs can share one path).
    shares_path: ClassVar[bool] = True
    peer: ClassVar[bool] = False  # another library's implementation, checked by equality to sdebench's own
    strong_order: ClassVar[float | None] = None
    weak_order: ClassVar[float | None] = None
    params: ClassVar[tuple[Param, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Every solver takes ``start``: appended here so that no solver can forget it.
        if all(p.name != "start" for p in cls.params):
            cls.params = (*cls.params, START)

    def __init__(self, **options: Any) -> None:
        known = {p.name: p for p in self.params}
        for key in options:
            check(key in known, key, f"solver {self.name!r} takes no parameter {key!r} (valid: {', '.join(known)})")
        self.options = {p.name: p.parse(options.get(p.name, p.default), p.name) for p in self.params}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Plain-data description: kind, declared orders, parameters with defaults."""
        return {
            "kind": cls.kind,
            "adaptive": cls.adaptive,
            "strong_order": cls.strong_order,
            "weak_order": cls.weak_order,
            "params": {p.name: p.describe() for p in cls.params},
            "doc": (cls.__doc__ or "").strip().splitlines()[0],
        }

    def supports(self, problem: Problem) -> str | None:
        """None when this solver applies to ``problem``; otherwise the reason it does not."""
        return None

    def initial_state(self, problem: Problem, n: int, generator: torch.Generator) -> Tensor:
        """n draws at t = T from the law the ``start`` option names (see :func:`initial_state`)."""
        return initial_state(problem, n, self.options["start"], generator)

    def solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None = None
    ) -> SolveResult:
        """Draw n samples for ``problem`` with ``score``; all randomness comes from ``generator``.

        SDE solvers take their Brownian increments from ``brownian`` when given (e.g. an :class:`IntervalBrownian`
        shared with another solver), otherwise fresh draws from ``generator``. The initial state always comes from
        ``generator``.
        """
        check(isinstance(n, int) and n > 0, "n", "must be a positive integer")
        reason = self.supports(problem)
        check(reason is None, "solver", f"{self.name!r} does not apply to problem {problem.name!r}: {reason}")
        counted = CountingScore(score)
        start = time.perf_counter()
        if brownian is None and self.kind == "sde":
            brownian = GeneratorBrownian(n, problem.dim, generator)
        samples, info = self._solve(problem, counted, n, generator, brownian)
        wall = time.perf_counter() - start
        if not bool(torch.isfinite(samples).all()):
            raise DivergedError(f"solver {self.name!r} diverged: NaN or inf in the samples after {counted.calls} NFE")
        return SolveResult(samples.to(torch.float64), counted.calls, counted.rows / n, wall, info)

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        """Return (samples, info); subclasses implement it. ``brownian`` is None for ODE solvers."""
        raise NotImplementedError


STEPS = Param("steps", int, 1000, "number of steps (ignored when nfe is given)", lambda v: v > 0, "must be > 0")
NFE = Param("nfe", int, None, "NFE budget: use the most steps whose NFE fits", lambda v: v > 0, "must be > 0")
GRID = Param(
    "grid", str, None, "time grid from T to t_end (unset: the SDE's own, uniform-t; karras for edm)", registry=GRIDS
)


#: The option every sampler offers: the final Tweedie step.
DENOISE = Param("denoise", bool, False, "finish with the Tweedie step E[x_0 | x_ε] (one more NFE)")
#: The option every solver takes (added by :class:`Solver` itself): where the samples start at t = T.
START = Param(
    "start",
    str,
    "prior",
    "initial law at t = T: the SDE's prior; exact draws of p_T (isolates the prior mismatch); or the seed's N(0, I)"
    " (a quirk, kept to reproduce the seed)",
    choices=("prior", "exact", "standard-normal"),
)


def initial_state(problem: Problem, n: int, start: str, generator: torch.Generator) -> Tensor:
    """n float64 draws at t = T: from the prior, from the exact p_T (``start="exact"``), or the seed's N(0, I).

    The prior is not p_T: on data that are not symmetric about the origin the difference shifts mode weights, an
    error no number of steps removes. ``exact`` starts from p_T itself, so that error is absent.
    """
    if start == "standard-normal":
        return torch.randn(n, problem.dim, generator=generator, dtype=torch.float64)
    if start == "exact":
        return problem.marginal_at(problem.t_start).sample(n, generator=generator)[0]
    return problem.sde.prior_sample(n, problem.dim, generator=generator)


def tweedie_denoise(problem: Problem, score: Score, x: Tensor) -> Tensor:
    """E[x_0 | x_ε] = (x + s²σ²·∇log p_ε(x)) / s at t = ε: removes the kernel noise left at t_end (one NFE)."""
    sde, t = problem.sde, problem.t_end
    scale = sde.s(t)
    return (x + (scale * sde.sigma(t)) ** 2 * score(x, t)) / scale


class FixedStepSolver(Solver):
    """A solver on a time grid: parameters ``steps`` or an ``nfe`` budget, and ``grid``.

    Subclasses say how many score evaluations a number of steps costs (:meth:`nfe_for_steps`, default one per
    step); a budget then buys the most steps whose NFE fits, and a budget too small for one step is an error.
    """

    params: ClassVar[tuple[Param, ...]] = (STEPS, NFE, GRID)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        budget = self.options.get("nfe")
        if budget is not None:
            least = self.nfe_for_steps(1)
            check(budget >= least, "nfe", f"budget {budget} is too small for {self.name!r}: one step costs {least}")
            steps = 1
            while self.nfe_for_steps(steps + 1) <= budget:
                steps += 1
            self.options["steps"] = steps

    def nfe_for_steps(self, steps: int) -> int:
        """Score evaluations that ``steps`` steps cost with these options."""
        return steps

    #: A grid function used instead of the named one (set by :meth:`on_grid`: the grid search's trial grids).
    trial_grid: GridFn | None = None

    def grid_name(self, problem: Problem) -> str:
        """The grid this run uses: the ``grid`` option, or the SDE's default grid when it is unset."""
        if self.trial_grid is not None:
            return "trial"
        return self.options["grid"] or problem.sde.default_grid

    def times(self, problem: Problem) -> list[float]:
        """The grid: steps + 1 times from T down to t_end."""
        if self.trial_grid is not None:
            return self.trial_grid(problem, self.options["steps"])
        return make_grid(self.grid_name(problem), problem, self.options["steps"])

    def on_grid(self, grid: GridFn | None) -> FixedStepSolver:
        """Use ``grid`` (problem, steps) → times instead of the named grid, until set back to None; returns self.

        For searches over grids, which try thousands of grids that have no names.
        """
        self.trial_grid = grid
        return self


def make_solver(name: str, **options: Any) -> Solver:
    """Build the solver called ``name`` with validated options."""
    return SOLVERS.get(name, "solver")(**options)
