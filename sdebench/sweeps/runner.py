"""Executing one run: problem, score, solver and metrics from a :class:`RunSpec`, with every failure caught.

A run's randomness comes only from a generator seeded by its config key (which hashes its seed), so a run gives the
same numbers whichever executor, process or order runs it, and a change of code that changes no arithmetic gives the
same numbers again. A worker whose own code differs from the code the run is keyed by (a Dask worker with another
sdebench installed) refuses the run: its numbers would be filed under code that did not make them.

Each run uses one torch thread: runs are small, the parallelism is across runs, and a fixed thread count keeps
floating-point reductions bit-identical."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import sdebench
from sdebench.errors import DivergedError
from sdebench.fingerprint import changed_modules
from sdebench.metrics import compute_metrics, data_reference, exact_reference, metric_outputs
from sdebench.metrics.base import Reference
from sdebench.metrics.uncertainty import floor_estimates, truncation_estimates
from sdebench.plugins import load as load_plugin
from sdebench.problems import Problem
from sdebench.problems.problem import problem_from_spec
from sdebench.scores import Score, TrainConfig, make_score
from sdebench.scores.training import load_checkpoint
from sdebench.solvers import make_solver
from sdebench.sweeps.store import RunResult

if TYPE_CHECKING:
    from sdebench.sweeps.config import RunSpec

#: Rows of the preview kept in the store for the report's density pictures (first two coordinates, float32).
PREVIEW_ROWS = 10_000
#: Exact draws per noise floor (the floor is a mean over these, with its CI).
FLOOR_DRAWS = 5

# Per-process memos: a worker builds each problem, reference, floor and network once, whatever it runs after.
_problems: dict[str, tuple[Problem, Reference]] = {}
_floors: dict[str, dict[str, list[float]]] = {}
_truncations: dict[str, dict[str, list[float]]] = {}
_networks: dict[str, Score] = {}


def run_seed(spec: RunSpec) -> int:
    """The generator seed of a run: from its config key, which hashes its whole config including its seed."""
    return int(spec.config_key[:15], 16)


def _code_mismatch(spec: RunSpec) -> str | None:
    """Why this process must not run ``spec`` (its code differs from the code the run is keyed by), or None."""
    changed = changed_modules(spec.code)
    if not changed:
        return None
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"this worker's code differs from the sweep's ({shown}): install the same sdebench on every worker"


def train_config(score: dict[str, Any]) -> TrainConfig:
    """The training config in a resolved ``trained`` score table."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in score.items() if k in names})


def _problem(spec: RunSpec) -> tuple[Problem, Reference]:
    """The run's problem and its exact reference, built once per process and problem spec."""
    text = json.dumps(spec.problem, sort_keys=True)
    if text not in _problems:
        problem = problem_from_spec(spec.problem)
        _problems[text] = (problem, exact_reference(problem))
    return _problems[text]


def _score(spec: RunSpec, problem: Problem, checkpoint: str | None) -> Score:
    if spec.score["name"] != "trained":  # exact, perturbed or a plugin's: built by its registered factory
        return make_score(spec.score["name"], problem, **{k: v for k, v in spec.score.items() if k != "name"})
    if checkpoint not in _networks:
        _networks[checkpoint] = load_checkpoint(Path(checkpoint), problem, train_config(spec.score))
    return _networks[checkpoint]


def _floors_for(spec: RunSpec, reference: Reference) -> dict[str, list[float]]:
    """Noise floors (mean, CI half-width, draws) of the run's metrics at its n: fixed seed, so the same anywhere."""
    memo = json.dumps([spec.problem, spec.n, list(spec.metrics)], sort_keys=True)
    if memo not in _floors:
        estimates = floor_estimates(list(spec.metrics), reference, spec.n, draws=FLOOR_DRAWS)
        _floors[memo] = {k: [e.mean, e.half_width, e.count] for k, e in estimates.items()}
    return _floors[memo]


def _truncation_for(spec: RunSpec, problem: Problem, reference: Reference) -> dict[str, list[float]]:
    """The ε-truncation term of the error budget: the metrics of exact p_data draws against p_ε, at the run's n."""
    memo = json.dumps([spec.problem, spec.n, list(spec.metrics)], sort_keys=True)
    if memo not in _truncations:
        estimates = truncation_estimates(
            list(spec.metrics), data_reference(problem), reference, spec.n, draws=FLOOR_DRAWS
        )
        _truncations[memo] = {k: [e.mean, e.half_width, e.count] for k, e in estimates.items()}
    return _truncations[memo]


def environment() -> dict[str, Any]:
    """Where a run ran: versions, host, process (for the record; never part of the key)."""
    return {
        "sdebench": sdebench.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
    }


@contextmanager
def one_thread() -> Iterator[None]:
    """numpy's BLAS and torch on one thread for the duration, whatever process runs it.

    Not only for speed: a BLAS reduction split over two threads rounds differently, and scipy's step-size control
    then takes other steps (scipy-rk45 on the trained score at rtol 1e-3: 7e-15 apart between a serial run with
    2 BLAS threads and a pool worker's). Set here, a run computes the same in the sweep's process, a pool worker
    or a Dask worker started without SINGLE_THREAD_ENV.
    """
    previous = torch.get_num_threads()
    with threadpool_limits(limits=1):
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def execute(spec: RunSpec, checkpoint: str | None = None, keep_samples: bool = False) -> RunResult:
    """Run ``spec`` and compute its metrics, on one thread per library; a divergence or any exception becomes a
    stored status, never a raise."""
    with one_thread():
        return _execute(spec, checkpoint, keep_samples)


def _execute(spec: RunSpec, checkpoint: str | None, keep_samples: bool) -> RunResult:
    result = spec.result()
    try:
        for plugin in spec.plugins:  # before the code check: a plugin's modules are part of the run's code
            load_plugin(plugin)
        mismatch = _code_mismatch(spec)
        if mismatch is not None:
            raise RuntimeError(mismatch)
        # The metrics' output declarations go into the store with the result (a new dict: the spec's stays as it
        # is), so that reports read titles and directions from the store alone, a plugin metric's included.
        result.info = {**result.info, "outputs": [o.to_dict() for o in metric_outputs(spec.metrics)]}
        problem, reference = _problem(spec)
        score = _score(spec, problem, checkpoint)
        solver = make_solver(spec.solver, **spec.options)
        generator = torch.Generator().manual_seed(run_seed(spec))
        solved = solver.solve(problem, score, spec.n, generator)
        result.nfe, result.nfe_per_sample, result.wall_s = solved.nfe, solved.nfe_per_sample, solved.wall_s
        start = time.perf_counter()
        result.metrics = compute_metrics(list(spec.metrics), solved.samples, reference)
        result.floors = _floors_for(spec, reference)
        result.truncation = _truncation_for(spec, problem, reference)
        result.metrics_s = time.perf_counter() - start
        samples = solved.samples.numpy()
        result.preview = samples[:PREVIEW_ROWS, :2].astype(np.float32)
        if keep_samples:
            result.samples = samples
    except DivergedError as exc:
        result.status, result.error = "diverged", str(exc)
    except Exception as exc:  # a failing run is a result; the sweep goes on
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
        result.env["traceback"] = traceback.format_exc(limit=8)
    finally:
        result.env.update(environment())
    return result
