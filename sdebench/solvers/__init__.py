"""Solvers: the interface and registry, time grids, and one file per solver family."""

from sdebench.solvers import euler_maruyama  # noqa: F401  (registers the solvers)
from sdebench.solvers.base import SOLVERS, Param, Solver, SolveResult, make_solver, register
from sdebench.solvers.grids import GRIDS, make_grid

__all__ = ["GRIDS", "SOLVERS", "Param", "SolveResult", "Solver", "make_grid", "make_solver", "register"]
