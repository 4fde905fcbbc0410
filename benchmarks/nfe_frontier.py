"""The smallest NFE at which each solver reaches within-noise quality on ve-gmm2 with the exact score (issue 3).

"Within noise" = the bars of `sdebench.metrics.quality_failures` (mode fractions within 4 SE, per-mode std within
3%, SW1 ≤ 2 × floor) at n = 20 000, on every one of the given seeds. Fixed-step solvers are scanned over NFE
budgets; adaptive solvers over tolerances (rtol = atol), reporting the NFE they spent (per sample where that
differs from batched calls). Usage: python benchmarks/nfe_frontier.py [--solvers a,b] [--seeds 1,2] [--n 20000]
"""

from __future__ import annotations

import argparse
import time

import torch

from sdebench.errors import DivergedError, UserError
from sdebench.metrics import DEFAULT_METRICS, compute_metrics, exact_reference, noise_floors, quality_failures
from sdebench.problems import get_problem
from sdebench.scores import make_score
from sdebench.solvers import SOLVERS, make_solver

BUDGETS = [4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500, 1000]
TOLERANCES = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6]


def passes(name: str, options: dict, seeds: list[int], n: int, problem, reference, floors) -> tuple[bool, float, str]:
    """(passes on every seed, mean NFE per sample, first failure)."""
    try:
        solver = make_solver(name, **options)
    except UserError:
        return False, float("nan"), "budget too small"
    score = make_score("exact", problem)
    nfes = []
    for seed in seeds:
        try:
            result = solver.solve(problem, score, n, torch.Generator().manual_seed(seed))
        except DivergedError:
            return False, float("nan"), "diverged"
        nfes.append(result.nfe_per_sample)
        failures = quality_failures(compute_metrics(DEFAULT_METRICS, result.samples, reference), floors)
        if failures:
            return False, sum(nfes) / len(nfes), failures[0]
    return True, sum(nfes) / len(nfes), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--solvers", default=",".join(SOLVERS.names()))
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE for every solver that takes it")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    problem = get_problem("ve-gmm2")
    reference = exact_reference(problem)
    floors = noise_floors(DEFAULT_METRICS, reference, args.n)
    extra = dict(p.split("=", 1) for p in args.param)
    print(f"ve-gmm2, exact score, n = {args.n}, seeds {seeds}; smallest NFE that passes every bar on every seed")
    print(f"{'solver':<28}{'setting':>16}{'NFE':>10}{'seconds':>10}  note")
    for name in args.solvers.split(","):
        cls = SOLVERS.get(name)
        own = {k: v for k, v in extra.items() if k in {p.name for p in cls.params}}
        start = time.perf_counter()
        found, note = None, "never within noise"
        if cls.adaptive:
            for tol in TOLERANCES:
                options = {"rtol": tol, "atol": tol, **own}
                ok, nfe, why = passes(name, options, seeds, args.n, problem, reference, floors)
                if ok:
                    found = (f"rtol={tol:g}", nfe)
                    break
                note = why
        else:
            for budget in BUDGETS:
                ok, nfe, why = passes(name, {"nfe": budget, **own}, seeds, args.n, problem, reference, floors)
                if ok:
                    found = (f"nfe={budget}", nfe)
                    break
                note = why
        seconds = time.perf_counter() - start
        if found:
            print(f"{name:<28}{found[0]:>16}{found[1]:>10.1f}{seconds:>10.1f}")
        else:
            print(f"{name:<28}{'-':>16}{'-':>10}{seconds:>10.1f}  {note}")


if __name__ == "__main__":
    main()
