"""Wall time of k-diffusion's samplers (the ``kdiff-*`` peers) against sdebench's own, same method, same budget.

Each pair runs the same method on ve-gmm2 with the exact score, the same grid, budget, n and seed (so both make the
same NFE and, for these pairs, equal samples to round-off: tests/test_kdiff_peers.py). Runs alternate (ours, peer,
ours, peer, ...) after a warm-up so that load drift on a shared machine hits both alike, on one torch thread as
every sweep run; the ratio of the medians is printed with the NFE and the samples' largest gap. The peer's time
includes what k-diffusion does beyond the method: its per-step tensor arithmetic on 0-d σ tensors, the churn draws
that ``sample_euler`` and ``sample_heun`` make at every step even without churn, and the model wrapper's σ check.

Usage: python benchmarks/kdiff_overhead.py [--n 20000] [--nfe 20] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sdebench.problems import get_problem
from sdebench.scores import make_score
from sdebench.solvers import SOLVERS, make_solver

PAIRS = [
    ("edm-euler", "kdiff-euler"),
    ("edm-heun", "kdiff-heun"),
    ("dpmpp-2m", "kdiff-dpmpp-2m"),
    ("lms", "kdiff-lms"),
    ("dpmpp-2m-sde", "kdiff-dpmpp-2m-sde"),
]


def main() -> None:
    """Print one line per pair: median wall times, their ratio, NFE, largest gap."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--nfe", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    problem = get_problem("ve-gmm2")
    score = make_score("exact", problem)
    print(f"ve-gmm2, exact score, n = {args.n}, NFE budget {args.nfe}, median of {args.repeats} alternating runs")
    for ours, peer in PAIRS:
        if ours not in SOLVERS:
            continue
        solvers = [make_solver(name, nfe=args.nfe) for name in (ours, peer)]
        times: list[list[float]] = [[], []]
        results = []
        for round_ in range(args.repeats + 1):
            results = []
            for k, solver in enumerate(solvers):
                start = time.perf_counter()
                results.append(solver.solve(problem, score, args.n, torch.Generator().manual_seed(1)))
                if round_:  # the first round warms up
                    times[k].append(time.perf_counter() - start)
        ours_s, peer_s = (statistics.median(t) for t in times)
        gap = float((results[0].samples - results[1].samples).abs().max())
        print(
            f"{ours:>13} {ours_s * 1e3:7.1f} ms   {peer:>19} {peer_s * 1e3:7.1f} ms   peer/ours {peer_s / ours_s:5.2f}"
            f"   NFE {results[0].nfe}/{results[1].nfe}   max gap {gap:.1e}"
        )


if __name__ == "__main__":
    main()
