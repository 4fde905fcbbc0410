"""The ≤ 6 NFE frontier of issue 11: a sampler on a searched grid, within noise on ve-gmm2 and vp-gmm2.

For each solver and NFE: the grid is searched (``sdebench.analysis.grid_search``, objective ``margin``) on ONE
problem and seed (default ve-gmm2, seed 0), then judged with the "within noise" bars on other seeds (default 1, 2)
of every judged problem (default ve-gmm2 and vp-gmm2: the second is a problem the search never saw). For
comparison, each built-in grid is judged the same way. A row passes when every bar holds on every judged seed.
Usage: python benchmarks/grid_frontier.py [--solvers dpmpp-3m,ipndm] [--nfe 4,5,6] [--evaluations 400]
"""

from __future__ import annotations

import argparse
import time

from sdebench.analysis.grid_search import START_GRIDS, judge, search_grid
from sdebench.problems import get_problem
from sdebench.solvers import make_solver
from sdebench.solvers.grids import saved_grid


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--solvers", default="dpmpp-3m")
    parser.add_argument("--nfe", default="4,5,6")
    parser.add_argument("--search-problem", default="ve-gmm2")
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--problems", default="ve-gmm2,vp-gmm2")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--evaluations", type=int, default=400)
    args = parser.parse_args()
    seeds, problems = _ints(args.seeds), [get_problem(name) for name in args.problems.split(",")]
    searched_on = get_problem(args.search_problem)
    print(
        f"grid searched on {searched_on.name} seed {args.search_seed} (n = {args.n}, {args.evaluations} evaluations); "
        f"judged on seeds {seeds}; worst bar ratio per seed (<= 1: within noise on every bar)"
    )
    header = "".join(f"{p.name:>22}" for p in problems)
    print(f"{'solver':<12}{'NFE':>4}  {'grid':<26}{header}  verdict   search s")
    for name in args.solvers.split(","):
        for nfe in _ints(args.nfe):
            start = time.perf_counter()
            found = search_grid(searched_on, name, nfe, n=args.n, seed=args.search_seed, evaluations=args.evaluations)
            seconds = time.perf_counter() - start
            saved = f"searched-{name}-{nfe}"  # registered as a saved grid is: used on each problem as the user would
            saved_grid(saved, found.sigmas)
            for grid in (*START_GRIDS, saved):
                cells, ok = [], True
                for problem in problems:
                    verdicts = judge(problem, make_solver(name, nfe=nfe, grid=grid), seeds, args.n)
                    ok = ok and all(not v.failures for v in verdicts)
                    cells.append(" ".join(f"{v.margin:6.2f}" for v in verdicts))
                tail = f"{seconds:9.1f}" if grid == saved else ""
                row = "".join(f"{c:>22}" for c in cells)
                print(f"{name:<12}{nfe:>4}  {grid:<26}{row}  {'passes' if ok else 'fails ':<8}{tail}")
            print("  searched σ: " + ", ".join(f"{s:.4g}" for s in found.sigmas))


if __name__ == "__main__":
    main()
