"""A user's own torch module as a registered score, from a plugin file: ``module_score("my-net", net, ...)``.

A plugin (see :mod:`sdebench.plugins`) builds the network, loads its weights and registers it::

    from sdebench.scores.module import module_score
    net = MyNet()
    module_score("my-net", net, predicts="eps", condition="sigma", weights="my_net.pt", sha256="9f2c...")

after which ``--score my-net`` (or ``scores = ["my-net"]`` in a sweep with ``plugins = ["that_file.py"]``) samples
with it like with any built-in score, on every executor. The module is called as ``module(x, c)`` with x of shape
(n, d) and c of shape (n,): the time t or the noise level σ(t) (``condition``). What it returns (``predicts``) is
turned into the score of x_t through the SDE's own s(t) and σ(t), for any SDE of the family (std(t) = s·σ):

- ``"score"``: ∇ log p_t(x) itself;
- ``"eps"``: the noise, ε̂ = −std(t)·score (DDPM's parametrisation);
- ``"denoiser"``: x̂_0 = E[x_0 | x_t], so score = (s(t)·x̂_0 − x)/std(t)² (EDM's parametrisation).

A run's key covers its plugin's code, not the files the code reads; so weights loaded from a file must be named
with their sha256, which is checked on loading: other weights are other code, and make other run keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from sdebench.errors import UserError, check
from sdebench.problems import Problem
from sdebench.scores.base import Score

Tensor = torch.Tensor

#: What a module may predict, and what it may be conditioned on.
PREDICTS = ("score", "eps", "denoiser")
CONDITIONS = ("t", "sigma")


class ModuleScore:
    """A torch module's prediction as the score of x_t for ``problem``'s SDE (see the module docstring)."""

    def __init__(self, problem: Problem, module: torch.nn.Module, predicts: str, condition: str) -> None:
        self.module, self.sde, self.predicts, self.condition = module, problem.sde, predicts, condition
        first = next(iter(module.parameters()), None)
        self.dtype = first.dtype if first is not None else torch.float32

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        n = x.shape[0]
        times = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(n) if torch.is_tensor(t) else None
        times = times if times is not None else torch.full((n,), float(t), dtype=torch.float64)
        level = torch.as_tensor(self.sde.sigma(times)) if self.condition == "sigma" else times
        out = self.module(x.to(self.dtype), level.to(self.dtype)).to(x.dtype)
        check(out.shape == x.shape, "score", f"the module returned shape {tuple(out.shape)} for x of {tuple(x.shape)}")
        if self.predicts == "score":
            return out
        scale = torch.as_tensor(self.sde.s(times), dtype=x.dtype).reshape(-1, 1)  # s = 1 comes as a float
        std = scale * torch.as_tensor(self.sde.sigma(times), dtype=x.dtype).reshape(-1, 1)
        if self.predicts == "eps":
            return -out / std
        return (scale * out - x) / std**2


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def module_score(
    name: str,
    module: torch.nn.Module,
    predicts: str = "score",
    condition: str = "t",
    weights: str | Path | None = None,
    sha256: str | None = None,
) -> torch.nn.Module:
    """Register ``module`` as the score ``name`` (see the module docstring); returns the module.

    ``weights``: a state dict file to load into the module first (relative paths from the current folder; a
    plugin should pass one relative to its own file, ``Path(__file__).parent / "net.pt"``), whose ``sha256`` must
    be given and match. The module is put in eval mode and its parameters stop requiring gradients (a score is not
    trained here; gradients with respect to x, for the likelihood's divergence, still flow).
    """
    from sdebench.scores import SCORES

    check(isinstance(module, torch.nn.Module), "module", f"must be a torch.nn.Module, got {type(module).__name__}")
    check(predicts in PREDICTS, "predicts", f"must be one of {', '.join(PREDICTS)}, got {predicts!r}")
    check(condition in CONDITIONS, "condition", f"must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    if weights is not None:
        path = Path(weights)
        check(path.is_file(), "weights", f"no such file {str(path)!r}")
        actual = file_sha256(path)
        if sha256 is None:
            raise UserError("sha256", f"give sha256={actual!r} for {str(path)!r} (run keys cover code, not files)")
        check(actual == sha256, "sha256", f"{str(path)!r} has sha256 {actual}, not the declared {sha256}")
        try:
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # the user's file: any failure to load is theirs to fix
            raise UserError("weights", f"cannot load {str(path)!r}: {type(exc).__name__}: {exc}") from None
    module.eval().requires_grad_(False)

    def factory(problem: Problem, **_: Any) -> Score:
        return ModuleScore(problem, module, predicts, condition)

    factory.__doc__ = (
        f"A user's torch module ({type(module).__name__}, predicts {predicts}, conditioned on {condition})"
    )
    factory.params = {}  # type: ignore[attr-defined]
    SCORES.register(name)(factory)
    return module
