"""Running a sweep: train the scores it needs once, fan the pending runs out to an executor, store each result.

The client keeps only a few runs in flight (twice the workers) and checks the store just before submitting each
one, so a rerun skips what is done and two sweeps sharing a store split the work instead of repeating it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sdebench.io import write_atomic
from sdebench.problems.problem import problem_from_spec
from sdebench.scores.training import load_or_train
from sdebench.sweeps.config import RunSpec
from sdebench.sweeps.runner import execute, train_config
from sdebench.sweeps.store import RunResult, Store


@dataclass
class SweepSummary:
    """Counts of what a sweep did: runs stored by status, runs skipped (already stored), and the total."""

    total: int
    skipped: int = 0
    stored: Counter = field(default_factory=Counter)
    lost_races: int = 0  # finished here, but another sweep had stored the run first

    def line(self) -> str:
        """One line for the terminal."""
        parts = [f"{self.stored[s]} {s}" for s in ("ok", "diverged", "failed") if self.stored[s]]
        done = ", ".join(parts) or "nothing new"
        extra = f", {self.lost_races} already stored by another sweep" if self.lost_races else ""
        return f"{self.total} runs: {done}; {self.skipped} skipped (already in the store){extra}"


def score_key(spec: RunSpec) -> str:
    """What identifies the trained network a run needs (problem + training config)."""
    return json.dumps([spec.problem, spec.score], sort_keys=True)


def _checkpoint_for(
    problem_spec: dict[str, Any], score_spec: dict[str, Any], cache_dir: Path | None, progress: bool
) -> str:
    """Train (or find cached) one network and return its checkpoint's path (also what an executor's worker runs)."""
    problem = problem_from_spec(problem_spec)
    return str(load_or_train(problem, train_config(score_spec), cache_dir, None, progress).path)


def prepare_scores(
    runs: list[RunSpec], cache_dir: Path | None = None, progress: bool = True, executor: Any = None
) -> dict[str, str]:
    """Train (or find cached) every network the runs need, once, before any fan-out; map score key → checkpoint.

    With an executor of several workers the networks train side by side, one per worker (a network trains as fast
    on one thread as on two, and to the same weights), under one progress bar over the networks; else one after
    the other here, each with its own bar over the training steps.
    """
    needed: dict[str, RunSpec] = {}
    for spec in runs:
        if spec.score["name"] == "trained":
            needed.setdefault(score_key(spec), spec)
    if executor is None or executor.workers == 1 or len(needed) < 2:
        return {key: _checkpoint_for(s.problem, s.score, cache_dir, progress) for key, s in needed.items()}
    futures = {executor.submit(_checkpoint_for, s.problem, s.score, cache_dir, False): key for key, s in needed.items()}
    checkpoints: dict[str, str] = {}
    with tqdm(
        total=len(futures), desc="train networks", unit="net", disable=None if progress else True, leave=False
    ) as bar:
        pending = set(futures)
        while pending:
            done, pending = executor.wait_first(pending)
            for future in done:
                checkpoints[futures[future]] = future.result()
                bar.update()
    return {key: checkpoints[key] for key in needed}


def samples_dir(store_path: Path) -> Path:
    """Where kept samples go: ``<store>.samples/`` beside the store, one ``<key>.npy`` per run."""
    return store_path.with_name(store_path.name + ".samples")


def _keep(result: RunResult, store_path: Path) -> None:
    if result.samples is None:
        return
    folder = samples_dir(store_path)
    folder.mkdir(exist_ok=True)
    path = folder / f"{result.key}.npy"
    samples = result.samples

    def save(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a handle, so numpy does not append ".npy" to the temporary name
            np.save(handle, samples)

    write_atomic(path, save)
    result.samples_path = str(path)


def run_sweep(
    runs: list[RunSpec],
    store: Store,
    executor: Any,
    checkpoints: dict[str, str],
    retry_failed: bool = False,
    keep_samples: bool = False,
    progress: bool = True,
    on_result: Callable[[RunResult], None] | None = None,
) -> SweepSummary:
    """Execute every run not yet done in ``store`` on ``executor``, recording each result as it arrives."""
    summary = SweepSummary(total=len(runs))
    queue = iter(runs)
    in_flight: dict[Any, RunSpec] = {}
    bar = tqdm(total=len(runs), desc="sweep", unit="run", disable=None if progress else True, smoothing=0.1)

    def show() -> None:
        bar.set_postfix(
            ok=summary.stored["ok"],
            skipped=summary.skipped,
            diverged=summary.stored["diverged"],
            failed=summary.stored["failed"],
            refresh=False,
        )

    def fill() -> None:
        for spec in queue:
            if store.is_done(spec.key, retry_failed):
                summary.skipped += 1
                bar.update(1)
                continue
            in_flight[executor.submit(execute, spec, checkpoints.get(score_key(spec)), keep_samples)] = spec
            if len(in_flight) >= 2 * executor.workers:
                return

    try:
        fill()
        show()
        while in_flight:
            done, _ = executor.wait_first(set(in_flight))
            for future in done:
                in_flight.pop(future)
                result = future.result()
                _keep(result, store.path)
                if store.record(result):
                    summary.stored[result.status] += 1
                else:
                    summary.lost_races += 1
                if on_result is not None:
                    on_result(result)
                bar.update(1)
            fill()
            show()
    finally:
        bar.close()
    return summary
