"""A problem: an SDE, the data distribution it perturbs, and the time t_end = ε where sampling stops."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdebench.errors import check
from sdebench.io import read_toml
from sdebench.problems.mixture import GaussianMixture
from sdebench.problems.sde import LinearSDE, sde_from_spec
from sdebench.registry import Registry

#: Named problems: each entry is a function returning the problem's spec (a plain dict, as in a TOML file).
PROBLEMS: Registry = Registry("problem")

#: The VE-SDE's ε (score_sde's sampling_eps for VE); each SDE has its own default (``LinearSDE.default_t_end``).
DEFAULT_T_END = 1e-5
_TOP_KEYS = {"name", "sde", "data", "t_end"}
_DATA_KEYS = {"type", "weights", "means", "covs", "normalize"}


@dataclass
class Problem:
    """An SDE, its data (an exact Gaussian mixture, in the problem's normalised coordinates) and t_end = ε.

    Samplers integrate the reverse SDE from t = T to t = t_end, so their honest target is
    :meth:`target` = p_ε = law of s(ε)(x_0 + σ(ε) z) (see the σ(0) convention in :mod:`sdebench.problems.sde`).
    """

    name: str
    sde: LinearSDE
    data: GaussianMixture
    t_end: float = DEFAULT_T_END
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Dimension d of the data."""
        return self.data.dim

    @property
    def t_start(self) -> float:
        """Where samplers start: the SDE's final time T."""
        return self.sde.T

    def marginal_at(self, t: float) -> GaussianMixture:
        """The exact p_t: the mixture of N(s(t) μ_k, s(t)²(Σ_k + σ(t)² I))."""
        return self.data.perturbed(float(self.sde.s(t)), float(self.sde.sigma(t)))

    def target(self) -> GaussianMixture:
        """The exact distribution p_ε a sampler stopping at t_end should produce."""
        return self.marginal_at(self.t_end)


def _check_keys(table: Any, allowed: set[str], where: str) -> None:
    check(isinstance(table, dict), where or "config", "must be a table")
    for key in table:
        prefix = f"{where}." if where else ""
        check(key in allowed, f"{prefix}{key}", f"unknown key (valid: {', '.join(sorted(allowed))})")


def _number(value: Any, field_name: str) -> float:
    check(
        isinstance(value, (int, float)) and not isinstance(value, bool), field_name, f"must be a number, got {value!r}"
    )
    return float(value)


def problem_from_spec(spec: dict[str, Any], t_end: float | None = None) -> Problem:
    """Build (and fully validate) a problem from its plain-data spec; ``t_end`` overrides the spec's ε."""
    _check_keys(spec, _TOP_KEYS, "")
    check("data" in spec, "data", "missing table")
    sde = sde_from_spec(spec.get("sde", {"type": "ve"}))
    data_spec = spec["data"]
    _check_keys(data_spec, _DATA_KEYS, "data")
    check(data_spec.get("type", "gmm") == "gmm", "data.type", f"unknown data {data_spec.get('type')!r} (valid: gmm)")
    for key in ("weights", "means", "covs"):
        check(key in data_spec, f"data.{key}", "missing")
    normalize = data_spec.get("normalize", False)
    check(isinstance(normalize, bool), "data.normalize", "must be true or false")
    mixture = GaussianMixture(data_spec["weights"], data_spec["means"], data_spec["covs"])
    if normalize:
        mixture = mixture.standardized()
    eps = _number(t_end if t_end is not None else spec.get("t_end", sde.default_t_end), "t_end")
    check(math.isfinite(eps) and 0.0 < eps < sde.T, "t_end", f"must lie in (0, {sde.T:g}) for this SDE, got {eps!r}")
    name = spec.get("name", "custom")
    check(isinstance(name, str) and name != "", "name", "must be a non-empty string")
    resolved = copy.deepcopy(spec)
    resolved["t_end"] = eps
    resolved["sde"] = sde.spec()
    return Problem(name=name, sde=sde, data=mixture, t_end=eps, spec=resolved)


def get_problem(name: str, t_end: float | None = None) -> Problem:
    """The registered problem ``name`` (with ε overridden when ``t_end`` is given)."""
    return problem_from_spec(PROBLEMS.get(name, "problem")(), t_end=t_end)


def load_problem(path: str | Path, t_end: float | None = None) -> Problem:
    """A problem defined in a TOML file (format in README: [sde] with its type and parameters, [data], t_end)."""
    path = Path(path)
    spec = read_toml(path)
    spec.setdefault("name", path.stem)
    return problem_from_spec(spec, t_end=t_end)
