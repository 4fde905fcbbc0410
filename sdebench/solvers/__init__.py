"""Solvers: the interface and registry, time grids, Brownian sources, and one file per solver family.

Every module in this package is imported here, so a new solver file registers itself: adding a solver touches
no other file.
"""

import importlib
import pkgutil

from sdebench.solvers.base import SOLVERS, FixedStepSolver, Param, Solver, SolveResult, make_solver, register
from sdebench.solvers.brownian import GeneratorBrownian, IntervalBrownian
from sdebench.solvers.grids import GRIDS, make_grid

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "GRIDS",
    "SOLVERS",
    "FixedStepSolver",
    "GeneratorBrownian",
    "IntervalBrownian",
    "Param",
    "SolveResult",
    "Solver",
    "make_grid",
    "make_solver",
    "register",
]
