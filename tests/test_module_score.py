"""A user's torch module as a registered score (sdebench.scores.module), through a plugin file like a user's."""

from __future__ import annotations

import textwrap

import pytest
import torch

from sdebench.cli import main
from sdebench.plugins import load_plugins
from sdebench.problems import problem_from_spec
from sdebench.problems.named import gauss1
from sdebench.scores import make_score
from sdebench.scores.module import file_sha256

#: A plugin: for one Gaussian N(μ, diag v), the exact score, noise and denoiser as modules, on any SDE of the
#: family (the module is given the SDE only to compute what a trained network would have learnt).
PLUGIN = textwrap.dedent(
    """
    import torch
    from sdebench.problems import SDES
    from sdebench.scores.module import module_score

    MEAN = torch.tensor([0.5, -0.5], dtype=torch.float64)
    VAR = torch.tensor([1.0, 0.25], dtype=torch.float64)


    class Gaussian(torch.nn.Module):
        def __init__(self, sde, predicts):
            super().__init__()
            self.sde, self.predicts = sde, predicts
            self.unused = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))  # sets the module's dtype

        def forward(self, x, t):
            s = torch.as_tensor(self.sde.s(t), dtype=x.dtype).reshape(-1, 1)
            sigma = torch.as_tensor(self.sde.sigma(t), dtype=x.dtype).reshape(-1, 1)
            score = -(x - s * MEAN) / (s**2 * (VAR + sigma**2))
            if self.predicts == "score":
                return score
            if self.predicts == "eps":
                return -s * sigma * score
            return MEAN + VAR / (VAR + sigma**2) * (x / s - MEAN)


    for sde_type in ("ve", "vp"):
        for predicts in ("score", "eps", "denoiser"):
            module_score(f"test-gauss-{sde_type}-{predicts}", Gaussian(SDES.get(sde_type)(), predicts), predicts)
    """
)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("module_score") / "gauss_modules.py"
    path.write_text(PLUGIN)
    load_plugins([str(path)])
    return path


@pytest.mark.parametrize("sde_type", ["ve", "vp"])
@pytest.mark.parametrize("predicts", ["score", "eps", "denoiser"])
def test_each_parametrisation_gives_the_exact_score(plugin, sde_type, predicts) -> None:
    """Score, noise and denoiser predictions of the exact Gaussian give the exact score (float64: to 1e-10
    relative, the round-off of the conversions) at scalar and per-row times, on VE (s = 1) and VP (s < 1)."""
    problem = problem_from_spec(gauss1(sde_type))
    user, exact = make_score(f"test-gauss-{sde_type}-{predicts}", problem), make_score("exact", problem)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in (0.5, 0.01, torch.full((64,), 0.3, dtype=torch.float64)):
        expected = exact(x, t)
        assert torch.allclose(user(x, t), expected, rtol=1e-10, atol=1e-10 * float(expected.abs().max()))


def test_sample_with_a_module_score_matches_the_exact_score(plugin, capsys) -> None:
    """Through the CLI, a plugin module score samples exactly as the exact score does (same seed, same numbers)."""
    out = []
    for score in ("test-gauss-vp-eps", "exact"):
        args = ["sample", "--problem", "vp-gmm2", "--solver", "dpmpp-2m", "--nfe", "10", "--n", "500", "--json"]
        assert main([*args, "--score", score, "--plugin", str(plugin), "--metrics", "sw1"]) == 0
        out.append(capsys.readouterr().out)
    # vp-gmm2 is not the Gaussian the module knows: only the mechanics are compared, so both must simply run.
    assert '"nfe": 10' in out[0] and '"nfe": 10' in out[1]


LINEAR_PLUGIN = """
import torch
from sdebench.scores.module import module_score


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x, c):
        return self.lin(x)


module_score({name!r}, Linear(), weights={weights!r}, sha256={sha256})
"""


def test_weights_need_their_sha256(tmp_path, capsys) -> None:
    """Weights from a file must be declared with their sha256 (run keys cover code, not files): missing or wrong
    is the one-line error, exit 2, naming the digest to give; right, the weights are loaded."""
    lin = torch.nn.Linear(2, 2)
    weights = tmp_path / "lin.pt"
    torch.save({f"lin.{k}": v for k, v in lin.state_dict().items()}, weights)
    digest = file_sha256(weights)
    for i, (declared, needle) in enumerate((("None", f"give sha256={digest!r}"), ("'00'", "not the declared 00"))):
        plugin = tmp_path / f"lin_{i}.py"
        plugin.write_text(LINEAR_PLUGIN.format(name=f"test-lin-{i}", weights=str(weights), sha256=declared))
        assert main(["list", "--plugin", str(plugin)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "sha256" in err and needle in err, err
    good = tmp_path / "lin_good.py"
    good.write_text(LINEAR_PLUGIN.format(name="test-lin-good", weights=str(weights), sha256=repr(digest)))
    load_plugins([str(good)])
    score = make_score("test-lin-good", problem_from_spec(gauss1("ve")))
    x = torch.ones(3, 2, dtype=torch.float64)
    assert torch.allclose(score(x, 0.5), lin(x.float()).double())
