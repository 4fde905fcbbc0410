"""A user's solver as a plugin (README, "Plugins"): Euler steps of the probability-flow ODE in t.

It asks the SDE for the probability-flow drift, so it runs on every SDE of the family without a branch on its
class. Load it with ``--plugin examples/my_solver.py`` or ``plugins = ["my_solver.py"]`` in a sweep beside it.
"""

import itertools

from sdebench.solvers import FixedStepSolver, register


@register
class MyEuler(FixedStepSolver):
    """Euler steps of the probability-flow ODE on the solver's grid (one NFE a step)."""

    name, kind, strong_order, weak_order = "my-euler", "ode", 1.0, 1.0

    def _solve(self, problem, score, n, generator, brownian):
        flow = problem.sde.probability_flow(score)  # asks the SDE for f, g: no branch on its class
        x = self.initial_state(problem, n, generator)
        for t_cur, t_next in itertools.pairwise(self.times(problem)):
            x = x - flow.drift(x, t_cur) * (t_cur - t_next)
        return x, {"steps": self.options["steps"]}
