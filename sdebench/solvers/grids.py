"""Time grids from t = 1 down to t_end: each a named function ``grid(problem, steps) -> list of steps + 1 times``.

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
    """Equal steps in t from 1 to t_end."""
    t_end = problem.t_end
    times = [1.0 - (1.0 - t_end) * i / steps for i in range(steps)]
    return [*times, t_end]  # exactly t_end, not its round-off


@GRIDS.register("log-sigma")
def uniform_log_sigma(problem: Problem, steps: int) -> list[float]:
    """Equal steps in log σ(t) from σ(1) to σ(t_end)."""
    sde = problem.sde
    lo, hi = math.log(sde.sigma(problem.t_end)), math.log(sde.sigma(1.0))
    times = [sde.t_of_sigma(math.exp(hi + (lo - hi) * i / steps)) for i in range(steps + 1)]
    times[0], times[-1] = 1.0, problem.t_end  # exact ends despite round-off in σ → t
    return times


@GRIDS.register("karras")
def karras(problem: Problem, steps: int, rho: float = 7.0) -> list[float]:
    """The EDM schedule (Karras et al. 2022): σ_i = (σmax^(1/ρ) + i/N (σmin^(1/ρ) − σmax^(1/ρ)))^ρ, ρ = 7."""
    sde = problem.sde
    a, b = sde.sigma(1.0) ** (1 / rho), sde.sigma(problem.t_end) ** (1 / rho)
    times = [sde.t_of_sigma((a + (b - a) * i / steps) ** rho) for i in range(steps + 1)]
    times[0], times[-1] = 1.0, problem.t_end  # exact ends despite round-off in σ → t → σ
    return times


def make_grid(name: str, problem: Problem, steps: int) -> list[float]:
    """The grid called ``name`` with ``steps`` steps for ``problem``."""
    return GRIDS.get(name, "grid")(problem, steps)
