"""Training time of the default score network and its sample quality next to the exact score's (issue 2).

Trains the default network from scratch (no cache), then samples ve-gmm2 with Euler–Maruyama (500 steps,
n = 20 000) using the exact and the trained score over several seeds, and prints each metric beside its noise
floor (the same metric for exact 20 000-samples, averaged over 5 draws).
Usage: python benchmarks/train_quality.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from sdebench.metrics import DEFAULT_METRICS, compute_metrics, exact_reference, noise_floors
from sdebench.problems import get_problem
from sdebench.scores import TrainConfig, make_score
from sdebench.scores.training import TrainedScore, train
from sdebench.solvers import make_solver

SHOWN = ["sw1", "sw2", "mode_max_dev_se", "mode_std_rel_err_max", "mode_mean_err_max"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    problem = get_problem("ve-gmm2")
    config = TrainConfig()
    start = time.perf_counter()
    model, _ = train(problem, config, progress=False)
    train_s = time.perf_counter() - start
    print(f"threads={torch.get_num_threads()} default network {config.resolved()['arch_options']}")
    print(f"training: {config.steps} steps × batch {config.batch_size} in {train_s:.1f} s (target <= 20 s)")
    reference = exact_reference(problem)
    floors = noise_floors(DEFAULT_METRICS, reference, args.n)
    scores = {"exact": make_score("exact", problem), "trained": TrainedScore(model)}
    print(f"\nEM 500 steps, n = {args.n}, seeds 1..{args.seeds}: mean (worst) over seeds; reference {reference.label}")
    print(f"{'metric':<22}{'floor':>10}" + "".join(f"{name:>22}" for name in scores))
    rows: dict[str, dict[str, list[float]]] = {m: {name: [] for name in scores} for m in SHOWN}
    for name, score in scores.items():
        for seed in range(1, args.seeds + 1):
            result = make_solver("em", steps=500).solve(problem, score, args.n, torch.Generator().manual_seed(seed))
            metrics = compute_metrics(DEFAULT_METRICS, result.samples, reference)
            for m in SHOWN:
                rows[m][name].append(metrics[m])
    for m in SHOWN:
        cells = "".join(f"{sum(v) / len(v):>12.4g} ({max(v):.4g})" for v in rows[m].values())
        print(f"{m:<22}{floors[m]:>10.4g}{cells}")


if __name__ == "__main__":
    main()
