"""Shared fixtures. Checkpoints go to a per-run temporary cache, never to the user's home.

The suite runs on several processes (pytest-xdist, ``make test`` uses 2): each worker uses one torch thread (two
workers with two threads each on two cores spent most of their time waiting on each other's spinning threads), and
all workers share one checkpoint cache, where a lock makes the default network train once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
import torch

from sdebench.metrics import exact_reference
from sdebench.problems import Problem, get_problem
from sdebench.scores import TrainConfig, make_score


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def _shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder shared by every worker of this test run (the workers' base temp folders share a parent)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    cache = _shared_dir(tmp_path_factory, "cache")
    mp.setenv("SDEBENCH_CACHE", str(cache))
    yield cache
    mp.undo()


@pytest.fixture(scope="session")
def gmm2() -> Problem:
    """The seed's problem."""
    return get_problem("ve-gmm2")


@pytest.fixture(scope="session")
def gmm2_reference(gmm2: Problem):
    """Exact p_ε of the seed's problem (shared, so its quantile cache is reused)."""
    return exact_reference(gmm2)


@pytest.fixture(scope="session")
def trained_gmm2(gmm2: Problem, _cache_dir: Path):
    """The default trained network on ve-gmm2 (trained once per test run, ~10 s; other workers wait, then load it)."""
    with (_cache_dir / "train.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return make_score("trained", gmm2, train_config=TrainConfig(), progress=False)


def generator(seed: int) -> torch.Generator:
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(seed)
