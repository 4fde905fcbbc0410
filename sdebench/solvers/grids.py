"""Time grids from t = T (the SDE's final time: 1, or σmax for EDM) down to t_end.

Each is a named function ``grid(problem, steps) -> list of steps + 1 times``.

Any fixed-step solver takes any grid (the k-diffusion shape: schedules are separate from samplers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sdebench.problems import Problem
from sdebench.registry import Registry

GridFn = Callable[[Problem, int], list[float]]

#: Time grids by name.
GRIDS: Registry = Registry("grid")


@GRIDS.register("uniform-t")
def uniform_t(problem: Problem, steps: int) -> list[float]:
    """Equal steps in t from T to t_end."""
    t_end, t_max = problem.t_end, problem.t_start
    times = [t_max - (t_max - t_end) * i / steps for i in range(steps)]
    return [*times, t_end]  # exactly t_end, not its round-off


@GRIDS.register("log-sigma")
def uniform_log_sigma(problem: Problem, steps: int) -> list[float]:
    """Equal steps in log σ(t) from σ(T) to σ(t_end)."""
    sde = problem.sde
    lo, hi = math.log(sde.sigma(problem.t_end)), math.log(sde.sigma(problem.t_start))
    times = [sde.t_of_sigma(math.exp(hi + (lo - hi) * i / steps)) for i in range(steps + 1)]
    times[0], times[-1] = problem.t_start, problem.t_end  # exact ends despite round-off in σ → t
    return times


@GRIDS.register("karras")
def karras(problem: Problem, steps: int, rho: float = 7.0) -> list[float]:
    """The EDM schedule (Karras et al. 2022): σ_i = (σmax^(1/ρ) + i/N (σmin^(1/ρ) − σmax^(1/ρ)))^ρ, ρ = 7."""
    sde = problem.sde
    a, b = sde.sigma(problem.t_start) ** (1 / rho), sde.sigma(problem.t_end) ** (1 / rho)
    times = [sde.t_of_sigma((a + (b - a) * i / steps) ** rho) for i in range(steps + 1)]
    times[0], times[-1] = problem.t_start, problem.t_end  # exact ends despite round-off in σ → t → σ
    return times


def make_grid(name: str, problem: Problem, steps: int) -> list[float]:
    """The grid called ``name`` with ``steps`` steps for ``problem``."""
    return GRIDS.get(name, "grid")(problem, steps)
