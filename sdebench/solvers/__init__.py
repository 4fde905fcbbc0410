"""Solvers: the interface and registry, time grids, Brownian sources, and one file per solver family.

Every module in this package is imported here, so a new solver file registers itself: adding a solver touches
no other file.
"""

from sdebench.registry import import_modules
from sdebench.solvers.base import SOLVERS, FixedStepSolver, Param, Solver, SolveResult, make_solver, register
from sdebench.solvers.brownian import GeneratorBrownian, IntervalBrownian, NestedBrownian, PartitionBrownian
from sdebench.solvers.grids import GRIDS, make_grid

import_modules(__name__, __path__)

__all__ = [
    "GRIDS",
    "SOLVERS",
    "FixedStepSolver",
    "GeneratorBrownian",
    "IntervalBrownian",
    "NestedBrownian",
    "Param",
    "PartitionBrownian",
    "SolveResult",
    "Solver",
    "make_grid",
    "make_solver",
    "register",
]
