"""The perturbed score: the exact score with a controlled error, a registered score with declared parameters."""

from __future__ import annotations

import pytest
import torch

from sdebench.cli import main
from sdebench.errors import UserError
from sdebench.problems import SDES, get_problem, problem_from_spec
from sdebench.scores import make_score, score_params
from sdebench.sweeps import Store, expand_sweep
from tests.conftest import generator


@pytest.mark.parametrize("sde_type", ["ve", "vp", "subvp", "edm"])
def test_perturbed_is_exact_at_its_defaults_and_shifts_the_predicted_noise(sde_type):
    """scale = 1, shift = 0 is the exact score to the bit; scale multiplies it; shift moves the predicted noise
    ε̂ = −std(t)·s by shift·(1, …, 1)/sqrt(d) at every t (float and per-row t), on a 3-D problem."""
    problem = problem_from_spec({**get_problem("ve-asym3").spec, "sde": SDES.get(sde_type)().spec()})
    exact = make_score("exact", problem)
    x = 2 * torch.randn(200, 3, dtype=torch.float64, generator=generator(5))
    times = [problem.t_end, 0.3 * problem.t_start, torch.linspace(problem.t_end, problem.t_start, 200)]
    for t in times:
        assert torch.equal(make_score("perturbed", problem)(x, t), exact(x, t))
        assert torch.allclose(make_score("perturbed", problem, scale=1.1)(x, t), 1.1 * exact(x, t), rtol=1e-14)
        std = torch.as_tensor(problem.sde.std(t), dtype=x.dtype).reshape(-1, 1)
        moved = -std * make_score("perturbed", problem, shift=0.05)(x, t) - (-std * exact(x, t))
        assert torch.allclose(moved, torch.full_like(x, 0.05 / 3**0.5), atol=1e-9)


def test_perturbed_in_a_sweep_resolves_its_parameters_and_label(tmp_path):
    """Score tables take the declared parameters (defaults filled in, so equal configs share keys); the label shows
    the ones that differ; a 5% score error shows in the per-mode spread against the exact score's runs."""
    config = {
        "sweep": [
            {
                "problems": ["ve-gmm2"],
                "scores": ["exact", {"name": "perturbed"}, {"name": "perturbed", "scale": 1.05}],
                "solvers": [{"name": "em"}],
                "budgets": [128],
                "n": [5000],
                "metrics": ["mode_moments"],
            }
        ]
    }
    runs = expand_sweep(config)
    assert [r.score for r in runs] == [
        {"name": "exact"},
        {"name": "perturbed", "scale": 1.0, "shift": 0.0},
        {"name": "perturbed", "scale": 1.05, "shift": 0.0},
    ]
    assert runs[2].info["score_label"] == "perturbed (scale=1.05)" and runs[1].info["score_label"] == "perturbed"
    (tmp_path / "s.toml").write_text(
        '[[sweep]]\nproblems = ["ve-gmm2"]\nscores = ["exact", { name = "perturbed", scale = 1.05 }]\n'
        'solvers = [{ name = "em" }]\nbudgets = [128]\nn = [5000]\nmetrics = ["mode_moments"]\n'
    )
    assert main(["sweep", str(tmp_path / "s.toml"), "--store", str(tmp_path / "runs.db"), "--quiet"]) == 0
    with Store(tmp_path / "runs.db", readonly=True) as store:
        spread = {r["config"]["score"]["name"]: r["metrics"]["mode_std_rel_err_max"] for r in store.runs()}
    # a score 5% too strong narrows each mode by about 2.5%; the exact run's error at n = 5000 is ~1%
    assert spread["perturbed"] > spread["exact"] + 0.01


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"name": "perturbed", "scael": 1.0}, "sweep[0].scores[0].scael"),
        ({"name": "perturbed", "scale": "big"}, "sweep[0].scores[0].scale"),
        ({"name": "perturbed", "shift": float("inf")}, "sweep[0].scores[0].shift"),
        ({"name": "exact", "scale": 1.0}, "sweep[0].scores[0].scale"),
    ],
    ids=["unknown", "text", "inf", "exact-takes-none"],
)
def test_bad_score_parameters_name_their_field(table, field):
    config = {"sweep": [{"problems": ["ve-gmm2"], "scores": [table], "solvers": [{"name": "em"}]}]}
    with pytest.raises(UserError) as info:
        expand_sweep(config)
    assert field in [info.value.field] + [f for f, _ in info.value.more]


def test_declared_parameters():
    assert score_params("perturbed") == {"scale": 1.0, "shift": 0.0} and score_params("exact") == {}


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (["--score-param", "scal=1"], "error: score-param: 'perturbed' has no parameter 'scal' (valid: scale, shift)"),
        (["--score-param", "scale=inf"], "error: score-param scale: must be a finite number, got 'inf'"),
    ],
    ids=["unknown", "inf"],
)
def test_bad_score_param_on_the_command_line(extra, line, capsys, tmp_path):
    out = tmp_path / "s.npy"
    argv = ["sample", "--problem", "ve-gmm2", "--score", "perturbed", *extra, "--n", "10", "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == line and not out.exists()
