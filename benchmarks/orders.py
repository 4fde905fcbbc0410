"""Measured strong orders of every fixed-step solver next to its declared one (issue 4's figure).

On ve-gauss1 with the exact score: each solver at 32, 64, 128, 256 steps against a 2048-step run of itself on the
same Brownian path (ODE solvers: the same construction, deterministic). Orders are −slopes of log RMS error
against log steps with 95% CIs. Adaptive solvers are listed without a fit (they are checked by tolerance).
Usage: python benchmarks/orders.py [--n 200]
"""

from __future__ import annotations

import argparse
import warnings

from sdebench.analysis.convergence import convergence_study
from sdebench.problems import get_problem
from sdebench.scores import make_score
from sdebench.solvers import SOLVERS, make_solver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    problem = get_problem("ve-gauss1")
    score = make_score("exact", problem)
    print(f"ve-gauss1, exact score, n = {args.n} paths, steps 32–256 against 2048 on the same path")
    print(f"{'solver':<26}{'declared':>10}{'measured':>10}  95% CI")
    for name in SOLVERS.names():
        solver = make_solver(name)
        if solver.adaptive:
            print(f"{name:<26}{solver.strong_order!s:>10}{'-':>10}  adaptive: tolerance test instead")
            continue
        if solver.supports(problem) is not None:
            print(f"{name:<26}{solver.strong_order!s:>10}{'-':>10}  does not apply: {solver.supports(problem)[:50]}")
            continue
        study = convergence_study(problem, score, name, [32, 64, 128, 256], n=args.n, fine_steps=2048)
        fit = study.orders["strong"]
        ci = f"[{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]" if fit.ci else ""
        note = "" if solver.strong_order is not None else "  (declares none: corrector)"
        print(f"{name:<26}{solver.strong_order!s:>10}{fit.value:>10.2f}  {ci}{note}")


if __name__ == "__main__":
    main()
