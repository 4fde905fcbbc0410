"""The torchsde adapter's wall time against raw ``torchsde.sdeint`` on the same SDE (issue 3's figure, target ≤ 1.10).

Both integrate the reverse VE-SDE of ve-gmm2 with the exact score, the same method, the same number of uniform
steps, the same initial state and the same Brownian path: a torchsde ``BrownianInterval`` in s = −t with one seed,
built as a fixed-step torchsde user would (``dt`` hint, no Lévy area unless the method needs it), handed to the
adapter through an object with an ``interval`` attribute, like :class:`~sdebench.solvers.IntervalBrownian`.
(IntervalBrownian itself refines a dyadic tree to 1e-7 so that every grid sees one path: about 28 ms a query at
n = 10⁴, which would swamp both runs.)
"Raw" is what a torchsde user writes: an SDE object with ``f`` and ``g_prod`` in s = −t and one ``sdeint`` call with
dt = (1 − t_end) / steps. The adapter adds the solver interface (NFE counting, validation), the index-time mapping
that lets it step on any grid, and the drift cache. Runs alternate (adapter, raw, adapter, raw, …) after a warm-up
so that load drift on a shared machine hits both alike; the ratio of the medians is printed, with the NFE each
made and how far apart their samples are. They are not equal to round-off: raw torchsde accumulates its times as
s_0 + k·dt (and needs dt nudged up, see ``raw_run``), the adapter queries the grid's exact times, and a
BrownianInterval without ``halfway_tree`` builds its path from the query points, so the two runs see slightly
different Brownian paths and a few paths end in the other mode. (The adapter against torchsde on the very same
query times agrees to round-off: tests/test_solver_torchsde.py.)

A second line times the adapter with its default noise (Gaussian draws from the run's generator, one per step)
against the same raw run, to show what the BrownianInterval itself costs.

Usage: python benchmarks/torchsde_overhead.py [--n 10000] [--steps 200] [--method euler] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchsde

from sdebench.problems import get_problem
from sdebench.scores import CountingScore, make_score
from sdebench.solvers import make_solver
from sdebench.solvers.base import initial_state
from sdebench.solvers.torchsde_solvers import SDE_TYPES


class RawReverseSDE:
    """The reverse SDE in s = −t as a torchsde user would write it (additive noise: g_prod = g(t)·v)."""

    noise_type = "additive"

    def __init__(self, problem, score, method: str) -> None:
        self.sde = problem.sde
        self.reverse = problem.sde.reverse(score)
        self.sde_type = SDE_TYPES[method]

    def f(self, s, y):
        return -self.reverse.drift(y, -float(s))

    def g_prod(self, s, y, v):
        return v * self.sde.diffusion(-float(s))


class HintedPath:
    """A BrownianInterval in s = −t with a step hint; callable like our Brownian sources (t_from > t_to)."""

    def __init__(self, problem, method: str, n: int, steps: int, entropy: int) -> None:
        levy = "space-time" if method == "srk" else "none"
        self.interval = torchsde.BrownianInterval(
            t0=-1.0, t1=-problem.t_end, size=(n, problem.dim), dtype=torch.float64, entropy=entropy,
            dt=(1.0 - problem.t_end) / steps, levy_area_approximation=levy,
        )  # fmt: skip

    def __call__(self, t_from: float, t_to: float) -> torch.Tensor:
        return self.interval(-t_from, -t_to)


def raw_run(problem, score, method: str, n: int, steps: int, entropy: int):
    """One raw sdeint call; returns (samples, NFE, seconds)."""
    counted = CountingScore(score)
    x = initial_state(problem, n, "prior", torch.Generator().manual_seed(0))
    bm = HintedPath(problem, method, n, steps, entropy).interval
    sde = RawReverseSDE(problem, counted, method)
    # dt a hair above (1 − t_end)/steps: with the exact value, s_0 + k·dt accumulated in floating point can end an
    # ulp short of −t_end, and torchsde then takes one more, ulp-sized step (here the BrownianInterval even recurses
    # until RecursionError splitting it). The hair moves the raw run's times by < steps·1e-9·dt.
    dt = (1.0 - problem.t_end) / steps * (1.0 + 1e-9)
    start = time.perf_counter()
    with torch.no_grad():
        ys = torchsde.sdeint(sde, x, [-1.0, -problem.t_end], bm=bm, method=method, dt=dt)
    return ys[-1], counted.calls, time.perf_counter() - start


def adapter_run(problem, score, method: str, n: int, steps: int, entropy: int | None):
    """The registered solver (uniform-t grid) on the hinted path, or on generator noise when entropy is None."""
    brownian = None if entropy is None else HintedPath(problem, method, n, steps, entropy)
    result = make_solver(f"torchsde-{method}", steps=steps).solve(
        problem, score, n, torch.Generator().manual_seed(0), brownian
    )
    return result.samples, result.nfe, result.wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--method", default="euler", choices=list(SDE_TYPES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    problem = get_problem("ve-gmm2")
    score = make_score("exact", problem)
    entropy = 1234

    adapter_run(problem, score, args.method, 500, 10, entropy)  # warm-up (imports, allocator)
    raw_run(problem, score, args.method, 500, 10, entropy)
    adapter_s, raw_s, default_s = [], [], []
    for _ in range(args.repeats):
        a_samples, a_nfe, seconds = adapter_run(problem, score, args.method, args.n, args.steps, entropy)
        adapter_s.append(seconds)
        r_samples, r_nfe, seconds = raw_run(problem, score, args.method, args.n, args.steps, entropy)
        raw_s.append(seconds)
        _, d_nfe, seconds = adapter_run(problem, score, args.method, args.n, args.steps, None)
        default_s.append(seconds)
    adapter, raw, default = (statistics.median(v) for v in (adapter_s, raw_s, default_s))
    diff = (a_samples - r_samples).norm(dim=1)
    print(f"threads={torch.get_num_threads()} n={args.n} steps={args.steps} method={args.method} ×{args.repeats}")
    print(f"raw torchsde.sdeint      {raw:7.3f} s  NFE {r_nfe}  (BrownianInterval path; +1: torchsde's shape probe)")
    print(
        f"adapter, same path       {adapter:7.3f} s  NFE {a_nfe}  |adapter − raw|: median {float(diff.median()):.1e}, "
        f"> 0.1 on {float((diff > 0.1).double().mean()):.1%} of the paths"
    )
    print(f"adapter, generator noise {default:7.3f} s  NFE {d_nfe}")
    print(f"ratio adapter / raw      {adapter / raw:7.3f}  (target <= 1.10)")
    print(f"ratio default / raw      {default / raw:7.3f}  (adapter's default noise vs raw on a BrownianInterval)")


if __name__ == "__main__":
    main()
