"""Time grids from t = T (the SDE's final time: 1, or σmax for EDM) down to t_end.

Each is a named function ``grid(problem, steps) -> list of steps + 1 times``. The built-in ones are written in t
or in σ(t), so each applies to every SDE of the family. The names researchers know map as follows: time-uniform
is ``uniform-t``; DPM-Solver's logSNR-uniform grid is ``log-sigma`` (the scaled variable's SNR is 1/σ², so equal
steps in logSNR = −2 log σ are equal steps in log σ; ``logsnr`` is accepted as its other name); EDM's polynomial
in σ is ``karras``; DDIM's quadratic grid is ``time-quadratic``; k-diffusion's polynomial in log σ is
``polyexponential``. A grid found by :mod:`sdebench.analysis.grid_search` is a *saved* grid: its σ's, registered
under its own name by the plugin file the search writes (:func:`saved_grid`).

Any fixed-step solver takes any grid (the k-diffusion shape: schedules are separate from samplers).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from sdebench.errors import UserError
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


@GRIDS.register("logsnr")
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


def _sigma_ends(problem: Problem) -> tuple[float, float]:
    """log σ(T) and log σ(t_end): the ends every σ-written grid runs between."""
    sde = problem.sde
    return math.log(sde.sigma(problem.t_start)), math.log(sde.sigma(problem.t_end))


def times_from_positions(problem: Problem, positions: list[float]) -> list[float]:
    """The times whose log σ sit at ``positions`` ∈ [0, 1] along [log σ(T), log σ(t_end)] (0 is T, 1 is t_end).

    Normalised log σ is what lets one grid serve problems with other σ ranges (a grid found on VE used on VP).
    """
    sde = problem.sde
    high, low = _sigma_ends(problem)
    times = [float(sde.t_of_sigma(math.exp(high + (low - high) * u))) for u in positions]
    times[0], times[-1] = problem.t_start, problem.t_end  # exact ends despite round-off in σ → t
    return times


def positions_of(problem: Problem, times: list[float]) -> list[float]:
    """Inverse of :func:`times_from_positions`: each time's place in normalised log σ."""
    high, low = _sigma_ends(problem)
    return [(math.log(problem.sde.sigma(t)) - high) / (low - high) for t in times]


@GRIDS.register("time-quadratic")
def time_quadratic(problem: Problem, steps: int) -> list[float]:
    """DDIM's quadratic grid (Song et al. 2021a): t_i = t_end + (T − t_end)·(1 − i/N)², denser near t_end."""
    t_end, t_max = problem.t_end, problem.t_start
    times = [t_end + (t_max - t_end) * (1 - i / steps) ** 2 for i in range(steps)]
    return [*times, t_end]


@GRIDS.register("polyexponential")
def polyexponential(problem: Problem, steps: int, rho: float = 2.0) -> list[float]:
    """k-diffusion's polynomial in log σ: log σ_i = log σ(t_end) + (log σ(T) − log σ(t_end))·(1 − i/N)^ρ, ρ = 2
    (ρ = 1 is ``log-sigma``); denser at small σ than log-sigma, and at ρ = 2 already after one step."""
    return times_from_positions(problem, [1 - (1 - i / steps) ** rho for i in range(steps + 1)])


#: What each saved grid records about how it was found (solver, NFE, objective, ...), by name.
SAVED_GRIDS: dict[str, dict] = {}


def interpolate_log_sigmas(sigmas: list[float], steps: int) -> list[float]:
    """``sigmas`` (a grid of len − 1 steps) resampled to ``steps`` steps, linearly in log σ against i/N (Align Your
    Steps' interpolation): the grid itself when the counts agree."""
    count = len(sigmas) - 1
    if steps == count:
        return list(sigmas)
    logs = [math.log(s) for s in sigmas]
    out = []
    for i in range(steps + 1):
        where = i * count / steps
        left = min(int(where), count - 1)
        out.append(math.exp(logs[left] + (where - left) * (logs[left + 1] - logs[left])))
    return out


def saved_grid(name: str, sigmas: list[float], **info: object) -> GridFn:
    """Register the grid ``name``: its noise levels σ_0 > σ_1 > … > σ_N, kept in absolute σ.

    In the scaled variable x̂ = x/s every SDE of the family has the same denoiser D(x̂, σ) for the same data, so
    the probability-flow ODE in σ is the same ODE and a grid in σ means the same thing on each; only the ends
    differ. On a problem, the ends become its own σ(T) and σ(t_end) and the interior is kept (an interior σ
    outside that range is an error, raised when the grid is used); other step counts interpolate in log σ.
    ``info`` (how the grid was found) is kept in :data:`SAVED_GRIDS` for ``list`` and reports.
    """
    fixed = [float(s) for s in sigmas]
    ok = len(fixed) >= 2 and all(s > 0 and math.isfinite(s) for s in fixed)
    if not (ok and all(b < a for a, b in itertools.pairwise(fixed))):
        raise ValueError(f"grid {name!r}: σ's must be positive and decrease strictly, got {sigmas}")

    def grid(problem: Problem, steps: int) -> list[float]:
        levels = interpolate_log_sigmas(fixed, steps)
        sde = problem.sde
        top, bottom = float(sde.sigma(problem.t_start)), float(sde.sigma(problem.t_end))
        inner = levels[1:-1]
        if inner and not (bottom < min(inner) and max(inner) < top):
            raise UserError(
                "grid",
                f"{name!r} has σ's from {max(inner):.4g} to {min(inner):.4g}, outside {problem.name!r}'s range "
                f"({top:.4g} at T to {bottom:.4g} at t_end)",
            )
        return [problem.t_start, *(float(sde.t_of_sigma(s)) for s in inner), problem.t_end]

    grid.__doc__ = f"Saved grid ({len(fixed) - 1} steps): {info.get('summary', '')}".strip()
    GRIDS.register(name)(grid)
    SAVED_GRIDS[name] = {"sigmas": fixed, **info}
    return grid


def make_grid(name: str, problem: Problem, steps: int) -> list[float]:
    """The grid called ``name`` with ``steps`` steps for ``problem``."""
    return GRIDS.get(name, "grid")(problem, steps)
