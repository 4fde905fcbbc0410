"""Shared fixtures. Checkpoints go to a per-session temporary cache, never to the user's home."""

from __future__ import annotations

import pytest
import torch

from sdebench.metrics import exact_reference
from sdebench.problems import Problem, get_problem
from sdebench.scores import TrainConfig, make_score


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("SDEBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
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
def trained_gmm2(gmm2: Problem):
    """The default trained network on ve-gmm2 (trained once per test session, ~12 s)."""
    return make_score("trained", gmm2, train_config=TrainConfig(), progress=False)


def generator(seed: int) -> torch.Generator:
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(seed)
