"""Wall time of a sweep (default: configs/default.toml) on each executor, measured in one run, with the ratios.

    python benchmarks/sweep_speed.py [--config FILE] [--workers 2] [--executors serial,pool,dask]

Each executor runs the whole sweep into a fresh store, as ``sdebench sweep`` would (trained scores are trained
once first and cached, so no executor pays for training). The script prints each wall time, the speed-up of the
pool over serial, Dask against the pool, and whether every executor stored identical metrics.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sdebench.sweeps import Store, load_sweep
from sdebench.sweeps.executors import make_executor
from sdebench.sweeps.sweep import prepare_scores, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def timed_sweep(config: Path, executor_name: str, workers: int, folder: Path) -> tuple[float, dict]:
    """Seconds from the start of the executor to the last stored run, and the stored metrics by key."""
    runs = load_sweep(config)
    checkpoints = prepare_scores(runs, progress=False)
    store_path = folder / f"{executor_name}.db"
    start = time.perf_counter()
    with Store(store_path) as store:
        executor = make_executor(executor_name, 1 if executor_name == "serial" else workers)
        try:
            summary = run_sweep(runs, store, executor, checkpoints, progress=False)
        finally:
            executor.close()
        elapsed = time.perf_counter() - start
        stored = {r["key"]: (r["status"], r["metrics"]) for r in store.runs()}
    print(f"{executor_name:>7}: {elapsed:7.1f} s   {summary.line()}", flush=True)
    return elapsed, stored


def main() -> None:
    """Run the sweep on each executor and print times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.toml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="serial,pool,dask")
    args = parser.parse_args()
    names = [n.strip() for n in args.executors.split(",") if n.strip()]
    runs = load_sweep(args.config)
    print(f"{args.config.name}: {len(runs)} runs; {os.cpu_count()} cores; pool and dask with {args.workers} workers")
    prepare_scores(runs, progress=True)  # train or load once, outside every timing
    times, stored = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            times[name], stored[name] = timed_sweep(args.config, name, args.workers, Path(tmp))
    if "serial" in times and "pool" in times:
        print(f"pool ({args.workers} workers) over serial: {times['serial'] / times['pool']:.2f}× faster")
    if "pool" in times and "dask" in times:
        print(f"dask local cluster against the pool: {times['dask'] / times['pool']:.2f}× the pool's time")
    first = next(iter(stored.values()))
    same = all(s == first for s in stored.values())
    print(f"identical stored metrics across {', '.join(stored)}: {same}")


if __name__ == "__main__":
    main()
