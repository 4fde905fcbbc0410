"""The notebook API: the same numbers as the command line, a sweep from a dict, results() with its schema."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import sdebench
from sdebench.api import RESULT_COLUMNS
from sdebench.cli import main
from sdebench.errors import UserError


def test_sample_gives_the_command_lines_numbers(capsys):
    """``sdebench.sample`` and ``sdebench sample --json`` with the same seed give the same metrics and NFE."""
    argv = ["sample", "--problem", "ve-asym3", "--solver", "dpmpp-2m", "--nfe", "12", "--n", "800", "--seed", "3"]
    assert main([*argv, "--metrics", "sliced_wasserstein,mode_balance", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    api = sdebench.sample("ve-asym3", "dpmpp-2m", nfe=12, n=800, seed=3, metrics=["sliced_wasserstein", "mode_balance"])
    assert api["nfe"] == cli["nfe"] == 12 and api["samples"].shape == (800, 3)
    assert api["metrics"] == cli["metrics"] and api["floors"] == cli["floors"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: sdebench.sample("ve-gmm2", "bogus"), "solver"),
        (lambda: sdebench.sample("ve-gmm2", "em", n=0), "n"),
        (lambda: sdebench.sample("ve-gmm2", "em", metrics=["bogus"]), "metrics"),
        (lambda: sdebench.results("/nonexistent/runs.db"), "store"),
    ],
    ids=["solver", "n", "metric", "store"],
)
def test_bad_input_is_a_user_error_before_any_work(call, field):
    with pytest.raises(UserError) as info:
        call()
    assert info.value.field == field


def test_sweep_from_a_dict_then_results_frame(tmp_path):
    """A sweep given as a dict runs into the store; ``results`` has one row per run, the documented fixed columns
    first, then metric.<key> and floor.<key> columns holding the stored numbers."""
    config = {
        "sweep": [
            {
                "problems": ["ve-gmm2", "vp-gmm2"],
                "solvers": [{"name": "em"}, {"name": "scipy-rk45"}],
                "budgets": [16],
                "tolerances": [1e-2],
                "seeds": [0, 1],
                "n": [500],
                "metrics": ["mode_balance", "sliced_wasserstein"],
            }
        ]
    }
    store = tmp_path / "runs.db"
    summary = sdebench.sweep(config, store, workers=2)
    assert summary.stored["ok"] == 8
    frame = sdebench.results(store)
    assert list(frame.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS) and len(frame) == 8
    assert {"metric.sw1", "floor.sw1", "metric.mode_max_dev_se"} <= set(frame.columns)
    assert set(frame.sde) == {"ve", "vp"} and set(frame.status) == {"ok"} and set(frame.start) == {"prior"}
    em = frame[(frame.solver == "em") & (frame.problem == "vp-gmm2") & (frame.seed == 1)].iloc[0]
    assert em.nfe == 16 and em.budget == 16 and em.kind == "sde" and not em.adaptive
    rk45 = frame[frame.solver == "scipy-rk45"]
    assert rk45.adaptive.all() and (rk45.budget == 1e-2).all()
    assert all(math.isfinite(v) for v in frame["metric.sw1"])
    again = sdebench.sweep(config, store)  # resumable: nothing recomputed
    assert again.skipped == 8


def test_import_sdebench_stays_light():
    """``import sdebench`` loads no torch: the API is imported on first use."""
    code = "import sys, sdebench; print('torch' in sys.modules, callable(sdebench.results))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
