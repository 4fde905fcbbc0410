"""Cost of one exact-score evaluation on every SDE of the family, against VE's (issue 10: VP within 10%).

The same data (the seed's two modes) under ve, vp, subvp and edm: each SDE's exact score is timed on the same
points, at times spread over (ε, T), with a float t (what fixed-step solvers pass) and with a per-row tensor t
(what per-sample adaptive solvers pass). Rounds are interleaved (ve, vp, subvp, edm, ve, ...) so that a slow moment
of the machine falls on every SDE alike; each figure is the median over rounds of the mean time per evaluation.
Usage: python benchmarks/score_cost.py [--n 20000] [--rounds 15] [--evals 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sdebench.problems import get_problem
from sdebench.scores import make_score

PROBLEMS = ("ve-gmm2", "vp-gmm2", "subvp-gmm2", "edm-gmm2")


def per_eval_seconds(score, x: torch.Tensor, times: list, evals: int) -> float:
    """Mean wall time of one evaluation, cycling through ``times``."""
    start = time.perf_counter()
    for i in range(evals):
        score(x, times[i % len(times)])
    return (time.perf_counter() - start) / evals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--evals", type=int, default=100)
    args = parser.parse_args()
    x = torch.randn(args.n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cases = {}
    for name in PROBLEMS:
        problem = get_problem(name)
        span = problem.t_start - problem.t_end
        floats = [problem.t_end + span * k / 9 for k in range(10)]
        rows = [torch.full((args.n,), t, dtype=torch.float64) for t in floats]
        cases[name] = (make_score("exact", problem), floats, rows)
    timings: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, (score, floats, rows) in cases.items():
            for kind, times in (("float t", floats), ("per-row t", rows)):
                timings.setdefault((name, kind), []).append(per_eval_seconds(score, x, times, args.evals))
    print(
        f"threads={torch.get_num_threads()} n={args.n} d=2, median of {args.rounds} rounds × {args.evals} evaluations"
    )
    print(f"{'problem':<12}{'t':<11}{'ms / eval':>10}{'/ ve':>8}")
    for (name, kind), values in timings.items():
        ms = 1e3 * statistics.median(values)
        ve_ms = 1e3 * statistics.median(timings[("ve-gmm2", kind)])
        print(f"{name:<12}{kind:<11}{ms:>10.3f}{ms / ve_ms:>8.3f}")
    print("target: vp / ve <= 1.10")


if __name__ == "__main__":
    main()
