"""k-diffusion's samplers as peers: ``kdiff-*`` solvers that run Katherine Crowson's ``sample_*`` functions.

Each peer drives one function of ``k_diffusion.sampling`` (version 0.1.1 and later) on sdebench's own grid
σ_i = σ(t_i) (the σ-samplers' grid, :class:`~sdebench.solvers.sigma.SigmaSampler`; σ = 0 is appended only with
``denoise``, which makes k-diffusion's own last step to σ = 0 the final denoising step: x̂ ← D(x̂, σ_N), the
Tweedie step, for every peer but ``kdiff-lms``, whose last step is an Adams–Bashforth step to 0), with the model
``model(x̂, σ·1) = D(x̂, σ)``: sdebench's denoiser on the scaled variable x̂ = x/s(t), so the peers run on every
SDE of the family and on the exact or a trained score, and each model call is one counted NFE like any solver's.
The tests compare sdebench's own samplers with their peers to round-off (``tests/test_kdiff_peers.py``), which is
why the generic order and quality tests skip the peers (``peer = True``).

Noise: the stochastic peers get a ``noise_sampler`` that draws from the run's generator (never torch's global
RNG, so a run is reproducible from its seed): the normalised increments (W(σ') − W(σ))/sqrt|σ' − σ| of one Brownian
path in σ. Where k-diffusion asks for consecutive intervals (the ancestral samplers, (2M) SDE, (3M) SDE) these are
plain standard normals, drawn in the order and the way sdebench's own samplers draw theirs; where it asks for
nested ones (``dpmpp_sde``'s half step, then the whole step, both from σ_i) they are increments of one path, as its
default Brownian-tree sampler gives. With η = 0 the stochastic peers are their ODE methods (kind "ode", with the
ODE method's order), as in :mod:`sdebench.solvers.dpm_solver`.

Where k-diffusion differs from sdebench's own (measured by the tests): its ``sample_dpmpp_3m_sde`` adds the
second-difference term as −φ₃·d2 with φ₃ = φ₂/H − 1/2 and d2 = (d1_0 − d1_1)/(r0 + r1), which estimates h²D''/2;
the exact integral of the quadratic through the last three denoiser outputs, ∫₀^h a e^{−a(h−u)} (D''/2) u² du,
needs −2φ₃·d2 (sdebench's c₂ term in :mod:`sdebench.solvers.dpm_solver`). Doubling that one term makes the two equal
to round-off; as shipped, k-diffusion's (3M) is a second-order method: at η = 0 its fitted order is 1.96 on
``ve-gauss1`` over 128–1024 steps (sdebench's ``dpmpp-3m``: 2.77 over 32–256), so ``kdiff-dpmpp-3m-sde`` declares
order 2 at η = 0.

Loading: k-diffusion's ``__init__`` imports every submodule, which need torchvision, kornia, CLIP, wandb, scikit-image
and more, none of which the samplers use; ``sampling.py`` itself needs only scipy, torch, torchdiffeq, torchsde, tqdm
and ``utils.append_dims``. So the package is imported normally when it can be, and otherwise its ``sampling.py`` is
loaded from the installed distribution's files under a private module name, with a stand-in for ``utils`` that
holds only ``append_dims`` (the CI installs k-diffusion without its dependencies this way). k-diffusion is
imported only when a peer runs: listing the solvers never imports it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import re
import sys
import types
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sdebench.errors import UserError, check
from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import Param, register
from sdebench.solvers.brownian import Brownian
from sdebench.solvers.sigma import SigmaSampler, denoiser

Tensor = torch.Tensor

#: The oldest k-diffusion whose ``sample_*`` signatures these peers were written against.
MIN_VERSION = (0, 1, 1)
_PRIVATE = "_sdebench_kdiffusion"  # the private package name ``sampling.py`` is loaded under when it must be
_sampling: types.ModuleType | None = None


def _append_dims(x: Tensor, target_dims: int) -> Tensor:
    """The one helper ``sampling.py`` takes from k-diffusion's ``utils``: x with trailing singleton dimensions."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


def _version(text: str) -> tuple[int, ...]:
    """The leading release numbers of a version string ("0.1.1.post1" → (0, 1, 1))."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def load_sampling(solver: str) -> types.ModuleType:
    """k-diffusion's ``sampling`` module (cached); a :class:`UserError` naming the extra when it cannot be had."""
    global _sampling
    if _sampling is not None:
        return _sampling
    hint = f"{solver} needs k-diffusion: pip install 'sdebench[kdiff]'"
    try:
        version = importlib.metadata.version("k-diffusion")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("solver", hint) from None
    check(_version(version) >= MIN_VERSION, "solver", f"{hint} (found k-diffusion {version}, need >= 0.1.1)")
    try:
        import k_diffusion.sampling as module
    except Exception:  # the heavy __init__ (torchvision, kornia, clip, wandb, ...): load sampling.py alone
        module = _load_sampling_alone(hint)
    module.sdebench_peer_version = version  # recorded in each run's info
    _sampling = module
    return module


def _load_sampling_alone(hint: str) -> types.ModuleType:
    """Execute the installed ``k_diffusion/sampling.py`` as ``_sdebench_kdiffusion.sampling``, beside a stand-in
    ``utils`` with ``append_dims`` only, so that its ``from . import utils`` finds it."""
    path = importlib.metadata.distribution("k-diffusion").locate_file("k_diffusion/sampling.py")
    spec = importlib.util.spec_from_file_location(f"{_PRIVATE}.sampling", str(path))
    check(spec is not None and spec.loader is not None, "solver", f"{hint} (no k_diffusion/sampling.py)")
    package = types.ModuleType(_PRIVATE, "stand-in package for k-diffusion's sampling.py")
    package.__path__ = []
    utils = types.ModuleType(f"{_PRIVATE}.utils", "stand-in for k_diffusion.utils: append_dims only")
    utils.append_dims = _append_dims
    package.utils = utils
    sys.modules.update({_PRIVATE: package, utils.__name__: utils})
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # e.g. torchdiffeq missing
        del sys.modules[spec.name]
        raise UserError("solver", f"{hint} ({exc})") from None
    package.sampling = module
    return module


class GeneratorNoise:
    """k-diffusion's ``noise_sampler(σ, σ')``: (W(σ') − W(σ))/sqrt|σ' − σ| for one Brownian path W in σ, drawn from
    the run's generator.

    A query that continues the path from its last point is answered with a fresh standard normal (float32 draws
    widened, exactly as :func:`sdebench.solvers.noise.standard_normal_` draws them); any other query (a point
    before the last one, as ``dpmpp_sde`` asks for the whole step after its half step) is answered from the path's
    known points, with a Brownian bridge between two of them. Points above the latest query's start are dropped:
    the samplers never go back up in σ.
    """

    def __init__(self, like: Tensor, generator: torch.Generator) -> None:
        self.shape, self.dtype, self.generator = like.shape, like.dtype, generator
        self.known: dict[float, Tensor] = {}  # σ → W(σ), W = 0 at the first query's start
        self.last: float | None = None

    def _normal(self) -> Tensor:
        return torch.randn(self.shape, generator=self.generator, dtype=torch.float32).to(self.dtype)

    def _at(self, sigma: float) -> Tensor:
        """W(σ): known, extended past the last point, or bridged between known points."""
        if sigma in self.known:
            return self.known[sigma]
        below = [s for s in self.known if s < sigma]
        above = [s for s in self.known if s > sigma]
        if not below:  # past the path's lowest point: an independent increment
            low = min(self.known)
            value = self.known[low] + math.sqrt(low - sigma) * self._normal()
        else:
            check(bool(above), "noise", f"σ = {sigma} lies above the noise path's points: samplers run down in σ")
            lo, hi = max(below), min(above)
            weight = (hi - sigma) / (hi - lo)
            mean = self.known[lo] * weight + self.known[hi] * (1.0 - weight)
            value = mean + math.sqrt((sigma - lo) * weight) * self._normal()
        self.known[sigma] = value
        return value

    def __call__(self, sigma: Tensor | float, sigma_next: Tensor | float) -> Tensor:
        a, b = float(sigma), float(sigma_next)
        if not self.known:
            self.known[a], self.last = torch.zeros(self.shape, dtype=self.dtype), a
        if a == self.last and b < a:  # the path continues: a fresh normal is the normalised increment itself
            z = self._normal()
            self.known[b], self.last = self.known[a] + math.sqrt(a - b) * z, b
            out = z
        else:
            out = (self._at(b) - self._at(a)) / math.sqrt(abs(b - a))
            self.last = min(self.last, b)
        for s in [s for s in self.known if s > a]:
            del self.known[s]
        return out


@dataclass(frozen=True)
class Peer:
    """One row of the peer table: the sdebench name, k-diffusion's function, NFE a step, the ODE method's order
    (with η = 0 for the stochastic ones), whether it adds noise, its parameters, and the docstring's first line."""

    name: str
    function: str
    evals: int
    order: float | None
    stochastic: bool
    params: tuple[Param, ...]
    doc: str


#: kdiff-lms's declared order by its ``order`` option: as sdebench's own ``lms`` (the same method, tested equal).
#: The warm-up's first-order Euler step keeps order 4 from showing over 32–256 steps (fitted 3.1–3.7 over the SDEs).
LMS_ORDERS: dict[int, float | None] = {1: 1.0, 2: 2.0, 3: 3.0, 4: None}

# η above 1 can make k-diffusion's ancestral σ_down 0, where the step changes form and NFE: 0 ≤ η ≤ 1 there.
ANCESTRAL_ETA = Param(
    "eta", float, 1.0, "ancestral noise level η (0: the ODE)", lambda v: 0 <= v <= 1, "must be in [0, 1]"
)
SDE_ETA = Param(
    "eta",
    float,
    1.0,
    "noise level η (0: the probability-flow ODE, 1: the reverse SDE)",
    lambda v: v >= 0,
    "must be >= 0",
)
S_NOISE = Param("s_noise", float, 1.0, "scale of the added noise", lambda v: v > 0, "must be > 0")

PEERS = (
    Peer("kdiff-euler", "sample_euler", 1, 1.0, False, (), "k-diffusion's Euler in σ (its sample_euler, no churn)"),
    Peer("kdiff-heun", "sample_heun", 2, 2.0, False, (), "k-diffusion's Heun in σ, EDM's Algorithm 1 (sample_heun)"),
    Peer("kdiff-dpm-2", "sample_dpm_2", 2, 2.0, False, (), "k-diffusion's DPM-Solver-2-like midpoint in log σ"),
    Peer(
        "kdiff-lms",
        "sample_lms",
        1,
        LMS_ORDERS[4],
        False,
        (Param("order", int, 4, "order of the linear multistep method", lambda v: 1 <= v <= 4, "must be 1 to 4"),),
        "k-diffusion's linear multistep in σ (sample_lms): Adams–Bashforth on dx/dσ = (x − D)/σ",
    ),
    Peer("kdiff-dpmpp-2m", "sample_dpmpp_2m", 1, 2.0, False, (), "k-diffusion's DPM-Solver++(2M)"),
    Peer(
        "kdiff-euler-ancestral",
        "sample_euler_ancestral",
        1,
        1.0,
        True,
        (ANCESTRAL_ETA, S_NOISE),
        "k-diffusion's ancestral Euler: Euler to σ_down, then noise up to σ'",
    ),
    Peer(
        "kdiff-dpmpp-2s-ancestral",
        "sample_dpmpp_2s_ancestral",
        2,
        2.0,
        True,
        (ANCESTRAL_ETA, S_NOISE),
        "k-diffusion's ancestral DPM-Solver++(2S): a 2S step to σ_down, then noise up to σ'",
    ),
    Peer(
        "kdiff-dpmpp-sde",
        "sample_dpmpp_sde",
        2,
        2.0,
        True,
        (
            ANCESTRAL_ETA,
            S_NOISE,
            Param(
                "r", float, 0.5, "where the intermediate step lands, as a share of h", lambda v: 0 < v < 1, "in (0, 1)"
            ),
        ),
        "k-diffusion's stochastic DPM-Solver++ (sample_dpmpp_sde): two ancestral stages a step on one noise path",
    ),
    Peer(
        "kdiff-dpmpp-2m-sde",
        "sample_dpmpp_2m_sde",
        1,
        2.0,
        True,
        (
            SDE_ETA,
            S_NOISE,
            Param("solver_type", str, "midpoint", "form of the second-order term", choices=("midpoint", "heun")),
        ),
        "k-diffusion's DPM-Solver++(2M) SDE",
    ),
    Peer(
        "kdiff-dpmpp-3m-sde",
        "sample_dpmpp_3m_sde",
        1,
        2.0,  # not 3: see the module docstring
        True,
        (SDE_ETA, S_NOISE),
        "k-diffusion's DPM-Solver++(3M) SDE (second order at η = 0: see the module docstring)",
    ),
)


class KDiffusionSampler(SigmaSampler):
    """Common part of the peers: the model wrapper, the noise sampler, the grid handed to k-diffusion."""

    peer = True
    shares_path = False  # the noise is the generator's, not a Brownian path handed in
    peer_spec: ClassVar[Peer]

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.peer_spec.stochastic and self.options["eta"] > 0:  # the generator's noise: no declared order
            self.kind, self.strong_order, self.weak_order = "sde", None, None
        else:
            order = LMS_ORDERS[self.options["order"]] if "order" in self.options else self.peer_spec.order
            self.kind, self.strong_order, self.weak_order = "ode", order, order

    def unavailable(self) -> str | None:
        """None when k-diffusion can be loaded; otherwise the user error's message (for tests that skip)."""
        try:
            load_sampling(self.name)
        except UserError as exc:
            return exc.message
        return None

    def model(self, problem: Problem, score: Score, times: list[float], sigmas: list[float]):
        """k-diffusion's model(x̂, σ·1) → D(x̂, σ): the grid's σ_i at their own t_i, any other σ at t(σ)."""
        grid_time = dict(zip(sigmas, times, strict=True))

        def call(x: Tensor, sigma: Tensor, **_: Any) -> Tensor:
            value = float(sigma[0])
            if not bool((sigma == sigma[0]).all()):  # k-diffusion asks every row at one σ; the score takes one t
                raise ValueError(f"{self.name}: k-diffusion asked rows at different σ")
            t = grid_time.get(value)
            if t is None:
                t = float(problem.sde.t_of_sigma(value))
            return denoiser(problem, score, x, t, value)

        return call

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        sampling = load_sampling(self.name)
        times, sigmas = self.grid(problem)
        x = self.initial_state(problem, n, generator)
        ladder = torch.tensor([*sigmas, 0.0] if self.options["denoise"] else sigmas, dtype=torch.float64)
        kwargs = {name: self.options[name] for name in (p.name for p in self.peer_spec.params)}
        if self.peer_spec.stochastic:
            kwargs["noise_sampler"] = GeneratorNoise(x, generator)
        function = getattr(sampling, self.peer_spec.function)
        # euler, heun and dpm_2 draw churn noise from torch's global RNG at every step (unused without churn):
        # fork it, so a run leaves the caller's global RNG as it found it.
        with torch.random.fork_rng(devices=[]):
            x = function(self.model(problem, score, times, sigmas), x, ladder, disable=True, **kwargs)
        info = {"steps": self.options["steps"], "grid": self.grid_name(problem), "denoise": self.options["denoise"]}
        info["peer"] = f"k-diffusion {sampling.sdebench_peer_version}"
        if not self.options["denoise"]:  # with denoise, k-diffusion's last step to σ = 0 returned E[x_0 | x_ε]
            scale = float(problem.sde.s(problem.t_end))
            x = x if scale == 1.0 else x * scale
        return x, info


def _peer_class(spec: Peer) -> type[KDiffusionSampler]:
    """The registered solver class of one table row."""
    class_name = "KDiff" + "".join(part.capitalize() for part in spec.function.removeprefix("sample_").split("_"))
    doc = (
        f"{spec.doc}; {spec.evals} NFE a step.\n\n"
        f"A peer: k-diffusion's ``{spec.function}`` on sdebench's grid and denoiser (:mod:`sdebench.solvers.kdiff`)."
    )
    namespace = {
        "__doc__": doc,
        "__module__": __name__,
        "__qualname__": class_name,
        "name": spec.name,
        "peer_spec": spec,
        "evals_per_step": spec.evals,
        "kind": "sde" if spec.stochastic else "ode",
        "strong_order": None if spec.stochastic else spec.order,
        "weak_order": None if spec.stochastic else spec.order,
        "params": (*SigmaSampler.params, *spec.params),
    }
    return register(type(class_name, (KDiffusionSampler,), namespace))


for _spec in PEERS:
    _cls = _peer_class(_spec)
    globals()[_cls.__name__] = _cls  # importable by name, so instances pickle
