"""Euler–Maruyama wall time against the time of the bare score evaluations it makes (issue 2's figure).

Runs EM (exact score, ve-gmm2) on N samples × S steps. The score is wrapped in a timer, so the "bare" time is
that of the very same S evaluations, on the very same states, inside the same run. Prints the ratio EM / bare.
Usage: python benchmarks/em_overhead.py [--n 100000] [--steps 1000]
"""

from __future__ import annotations

import argparse
import time

import torch

from sdebench.problems import get_problem
from sdebench.scores import make_score
from sdebench.solvers import make_solver


class TimedScore:
    """Adds up the wall time spent inside the score."""

    def __init__(self, score):
        self.score, self.seconds, self.name = score, 0.0, score.name

    def __call__(self, x, t):
        start = time.perf_counter()
        out = self.score(x, t)
        self.seconds += time.perf_counter() - start
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    problem = get_problem("ve-gmm2")
    timed = TimedScore(make_score("exact", problem))
    solver = make_solver("em", steps=args.steps)
    result = solver.solve(problem, timed, args.n, torch.Generator().manual_seed(0))
    print(f"threads={torch.get_num_threads()} n={args.n} steps={args.steps} nfe={result.nfe}")
    print(f"EM wall time        {result.wall_s:8.2f} s")
    print(f"bare score time     {timed.seconds:8.2f} s  ({result.nfe} evaluations)")
    print(f"ratio EM / bare     {result.wall_s / timed.seconds:8.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
