"""Training time of the default score network and its sample quality next to the exact score's, on every SDE.

For each problem (default: the seed's data under ve, vp, subvp and edm) trains the default network from scratch
(no cache, the same steps × batch on each), then samples with Euler–Maruyama (500 steps on a log-σ grid, n = 20 000)
using the exact and the trained score over several seeds, and prints each metric beside its noise floor (the same
metric for exact 20 000-samples) and whether the trained runs pass the quality bars of the test suite.
Usage: python benchmarks/train_quality.py [--seeds 3] [--problems ve-gmm2,vp-gmm2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from sdebench.metrics import DEFAULT_METRICS, compute_metrics, exact_reference, noise_floors
from sdebench.problems import get_problem
from sdebench.scores import TrainConfig, make_score
from sdebench.scores.training import TrainedScore, train
from sdebench.solvers import make_solver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_euler_maruyama import quality_failures

SHOWN = ["sw1", "sw2", "mode_max_dev_se", "mode_std_rel_err_max", "mode_mean_err_max"]
PROBLEMS = "ve-gmm2,vp-gmm2,subvp-gmm2,edm-gmm2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--problems", default=PROBLEMS)
    args = parser.parse_args()
    config = TrainConfig()
    print(f"threads={torch.get_num_threads()} default network {config.resolved()['arch_options']}")
    for name in args.problems.split(","):
        evaluate(get_problem(name), config, args.seeds, args.n)


def evaluate(problem, config: TrainConfig, seeds: int, n: int) -> None:
    """Train on ``problem``, then print the metric table and the trained runs' bar failures."""
    start = time.perf_counter()
    model, _ = train(problem, config, progress=False)
    train_s = time.perf_counter() - start
    print(f"\n## {problem.name} ({problem.sde.describe()})")
    print(f"training: {config.steps} steps × batch {config.batch_size} in {train_s:.1f} s (target <= 20 s)")
    reference = exact_reference(problem)
    floors = noise_floors(DEFAULT_METRICS, reference, n)
    scores = {"exact": make_score("exact", problem), "trained": TrainedScore(model)}
    print(f"EM 500 steps (log-sigma grid), n = {n}, seeds 1..{seeds}: mean (worst) over seeds")
    print(f"{'metric':<22}{'floor':>10}" + "".join(f"{name:>22}" for name in scores))
    rows: dict[str, dict[str, list[float]]] = {m: {name: [] for name in scores} for m in SHOWN}
    failures: dict[str, list[str]] = {name: [] for name in scores}
    for name, score in scores.items():
        for seed in range(1, seeds + 1):
            solver = make_solver("em", steps=500, grid="log-sigma")
            result = solver.solve(problem, score, n, torch.Generator().manual_seed(seed))
            metrics = compute_metrics(DEFAULT_METRICS, result.samples, reference)
            failures[name] += [f"seed {seed}: {f}" for f in quality_failures(metrics, floors)]
            for m in SHOWN:
                rows[m][name].append(metrics[m])
    for m in SHOWN:
        cells = "".join(f"{sum(v) / len(v):>12.4g} ({max(v):.4g})" for v in rows[m].values())
        print(f"{m:<22}{floors[m]:>10.4g}{cells}")
    for name, failed in failures.items():
        print(f"{name}: {'passes the bars on every seed' if not failed else '; '.join(failed)}")


if __name__ == "__main__":
    main()
