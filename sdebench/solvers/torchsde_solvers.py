"""torchsde's integrators on the reverse-time SDE, fixed-step on any grid or adaptive.

torchsde wants increasing time, so the reverse SDE dx = [f − g²·s](x, t) dt + g(t) dw̄ (t from 1 down to t_end) is
integrated in s = −t from −1 to −t_end: dx = −[f − g²·s](x, −s) ds + g(−s) dW_s, where W_s is the reverse-time
Brownian motion read in s (``brownian(t_from, t_to)`` = W(−t_to) − W(−t_from), the convention of
:class:`~sdebench.solvers.brownian.IntervalBrownian`). The VE noise is additive (g depends on t only), so torchsde is
told ``noise_type = "additive"`` (asked of the problem) and uses its additive-noise paths, where Itô and
Stratonovich coincide: the same drift serves both sde types.

**Any grid, one** ``sdeint`` **call.** torchsde's fixed-step loop advances by a constant ``dt``, so it cannot land
on an arbitrary grid, and calling ``sdeint`` once per interval costs a contract check per call (a drift evaluation
and a draw of n·d normals from the global RNG, to probe shapes): 1.5× the wall time of one call, measured at n = 10⁴
and 200 steps. Instead the adapter runs torchsde in the grid's index time u ∈ [0, N], with dt = 1: step k covers u ∈
[k, k + 1], mapped affinely onto the grid interval [s_k, s_{k+1}] of length h_k. The drift torchsde sees is h_k·f
(so its ``f·dt`` is h_k·f), the diffusion is g itself and the "Brownian" it is handed returns the true increment
W(s_{k+1}) − W(s_k) (and the space-time Lévy area integral divided by h_k, which is what SRK's ``U/dt`` needs).
Integers are exact in floating point, so every step lands on a grid node; drift, diffusion and Brownian path are
evaluated at exactly the s-times torchsde would use stepping directly on the grid, and the result agrees with
per-interval ``sdeint`` calls on the same path to round-off (tested). The reversible Heun method carries the last
drift into the next step; the adapter rescales that carried value from h_k to h_{k+1} when the next step begins
(torchsde asks for the Brownian increment before it uses the carried drift), which keeps it exact on non-uniform
grids too.

**Brownian motion.** The Brownian source is asked for the grid's increments; for SRK also for the space-time Lévy
area, which a source with a fixed path (:class:`~sdebench.solvers.brownian.IntervalBrownian`,
:class:`~sdebench.solvers.brownian.PartitionBrownian`) gives from that path, so the hand-written EM and
``torchsde-euler`` run on one path and agree to round-off, and SRK's strong order can be measured. With a source that
draws fresh increments (the default :class:`~sdebench.solvers.brownian.GeneratorBrownian`, asked for one increment per
step, in order) SRK's Lévy area H ~ N(0, h/12), independent of the increment, is drawn from the run's generator: the
run is reproducible from its seed, and cheaper than a ``BrownianInterval`` (at n = 10⁴ a query costs about twice the
exact score with a step hint, 25 times in IntervalBrownian's halfway tree). The adaptive solver needs a path it can
query on any interval (it tries a step, then its two halves): it uses the IntervalBrownian when given one, otherwise
it builds a ``BrownianInterval`` seeded with an integer drawn from the run's generator.

**NFE.** The score is evaluated only through the drift (the diffusion never calls it). A one-entry cache returns
the last drift when torchsde asks again at the same time for the very same state tensor: torchsde's shape probe
before the first step, SRK's re-evaluation of its first stage, and the adaptive loop's full step and first half
step all start from the same point. So the counted NFE is what each method needs: 1 a step for euler, milstein and
euler_heun, 2 for srk, heun and midpoint, 1 a step plus 1 at the start for reversible_heun.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, ClassVar

import torch
import torchsde

from sdebench.errors import DivergedError
from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import FixedStepSolver, Param, Solver, register
from sdebench.solvers.brownian import Brownian, GeneratorBrownian
from sdebench.solvers.noise import standard_normal_

Tensor = torch.Tensor

#: torchsde's sde type for each method (for additive noise the two coincide; torchsde insists on the match).
SDE_TYPES: dict[str, str] = {
    "euler": "ito",
    "milstein": "ito",
    "srk": "ito",
    "euler_heun": "stratonovich",
    "heun": "stratonovich",
    "midpoint": "stratonovich",
    "reversible_heun": "stratonovich",
}
#: Score evaluations a step costs (with the drift cache), and once at the start.
_EVALS_PER_STEP = {"euler": 1, "milstein": 1, "srk": 2, "euler_heun": 1, "heun": 2, "midpoint": 2, "reversible_heun": 1}
_EVALS_AT_START = {"reversible_heun": 1}
#: Methods whose space-time Lévy area torchsde asks for (SRK's U).
_NEEDS_LEVY_AREA = {"srk"}


def _noise_type_for_torchsde(method: str, noise_type: str) -> str:
    """The noise type to declare: the SDE's, except additive reversible Heun, declared diagonal.

    torchsde's reversible Heun multiplies g by dW with its generic ``prod``, for additive noise a batched
    matrix–vector product over (n, d, d) matrices (about 5 ms a step at n = 10⁴, d = 2: five times the score). For a
    diffusion g(t)·I the diagonal path computes the same numbers elementwise; the order is that of additive noise.
    """
    return "diagonal" if method == "reversible_heun" and noise_type == "additive" else noise_type


class _TorchsdeReverse:
    """The reverse SDE as torchsde sees it: drift ``f``, diffusion–vector product ``g_prod`` (and ``g`` if diagonal).

    Time is either s = −t itself (``times`` None, the adaptive solver) or the grid's index time u (``times`` the grid
    t_0 = 1 > … > t_N = t_end; see the module docstring). The current step k is set by the Brownian wrapper, which
    torchsde queries at the start of every step.
    """

    def __init__(
        self,
        problem: Problem,
        score: Score,
        method: str,
        times: list[float] | None,
        rescale_carried: bool = False,
        check_finite: bool = False,
    ) -> None:
        self.sde_type = SDE_TYPES[method]
        self.noise_type = _noise_type_for_torchsde(method, problem.sde.noise_type)
        self.reverse = problem.sde.reverse(score)
        self.times = times
        # h_k = s_{k+1} − s_k = t_k − t_{k+1} > 0.
        self.steps = [] if times is None else [a - b for a, b in itertools.pairwise(times)]
        self.k = 0
        self.rescale_carried = rescale_carried
        self.check_finite = check_finite
        self._carried: Tensor | None = None
        self._cache: tuple[int, float, Tensor, int, Tensor] | None = None
        if self.noise_type == "diagonal":
            self.g = self._g_diagonal

    def _locate(self, u: Tensor | float) -> tuple[float, float, float]:
        """(t, h, c): the SDE time of solver time u, the drift's scale, and u's fraction of the current step."""
        u = float(u)
        if self.times is None:
            return -u, 1.0, -1.0
        k = self.k
        c = u - k
        if c == 0.0:
            return self.times[k], self.steps[k], c
        if c == 1.0:  # the step's end node, exactly (not t_k − h_k, which may differ by an ulp)
            return self.times[k + 1], self.steps[k], c
        if not 0.0 < c < 1.0:
            raise RuntimeError(f"torchsde evaluated the drift at u = {u} outside step {k}")
        return self.times[k] - c * self.steps[k], self.steps[k], c

    def begin_step(self, k: int) -> None:
        """Called by the Brownian wrapper when torchsde starts step k (before it uses any carried state)."""
        if self.rescale_carried and self._carried is not None and k > 0:
            # Reversible Heun reuses the end-of-step drift h_{k−1}·f as the next step's start: rescale it to h_k.
            self._carried.mul_(self.steps[k] / self.steps[k - 1])
        self._carried = None
        self.k = k

    def f(self, u: Tensor, y: Tensor) -> Tensor:
        """h·(−reverse drift) at solver time u (h = 1 in s-time): torchsde's ``f·dt`` is then the step's drift."""
        key = float(u)
        cache = self._cache
        if cache is not None and cache[0] == self.k and cache[1] == key and cache[2] is y and cache[3] == y._version:
            return cache[4]
        t, h, c = self._locate(u)
        # reverse.drift returns a fresh tensor (score × a scalar), so scaling it in place is safe.
        out = self.reverse.drift(y, t).mul_(-h)
        if self.check_finite and not bool(torch.isfinite(out).all()):
            # torchsde's adaptive loop would assert on a NaN error estimate (or, under python -O, loop on NaN steps).
            raise DivergedError(f"NaN or inf in the drift at t = {t:.6g}")
        self._cache = (self.k, key, y, y._version, out)
        if c == 1.0:
            self._carried = out
        return out

    def g_prod(self, u: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """g(t)·v: the additive diffusion applied to a Brownian increment (or a weighted sum of them)."""
        t, _, _ = self._locate(u)
        return v * self.reverse.diffusion(t)

    def _g_diagonal(self, u: Tensor, y: Tensor) -> Tensor:
        """g(t) broadcast to the state's shape (the diagonal declaration; a view, nothing is allocated)."""
        t, _, _ = self._locate(u)
        return y.new_tensor(self.reverse.diffusion(t)).expand_as(y)


class _GridBrownian(torchsde.BaseBrownian):
    """The Brownian motion torchsde sees in index time: step k = [k, k + 1] ↦ the grid interval [s_k, s_{k+1}].

    Returns the true increment W(s_{k+1}) − W(s_k) of the Brownian source and, when asked, U/h_k where
    U = ∫ (W(s) − W(s_k)) ds over the step (torchsde's SRK then forms U/dt with dt = 1): the source's own when it
    has a path with Lévy areas (``space_time``), otherwise drawn from ``generator`` given the increment.
    """

    def __init__(
        self, sde: _TorchsdeReverse, shape: tuple[int, int], source: Brownian, generator: torch.Generator
    ) -> None:
        self._sde = sde
        self._shape = shape
        self._source = source
        self._generator = generator
        self._next = 0

    def __call__(self, ta: Any, tb: Any = None, return_U: bool = False, return_A: bool = False) -> Any:
        k = int(ta)
        if tb is None or float(ta) != k or float(tb) != k + 1 or return_A:
            raise RuntimeError(f"unexpected Brownian query ({ta}, {tb}, return_A={return_A}) in grid time")
        if getattr(self._source, "sequential", False) and k != self._next:
            raise RuntimeError(f"a sequential Brownian source was asked for step {k}, expected {self._next}")
        self._next = k + 1
        self._sde.begin_step(k)
        t_from, t_to = self._sde.times[k], self._sde.times[k + 1]
        if return_U and hasattr(self._source, "space_time"):
            return self._source.space_time(t_from, t_to)
        w = self._source(t_from, t_to)
        if not return_U:
            return w
        # U/h = W/2 + H with the space-time Lévy area H ~ N(0, h/12), independent of W.
        h = self._sde.steps[k]
        levy = standard_normal_(torch.empty_like(w), self._generator, math.sqrt(h / 12.0))
        return w, levy.add_(w, alpha=0.5)

    def __repr__(self) -> str:
        return f"_GridBrownian(shape={self._shape})"

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def levy_area_approximation(self) -> str:
        return "space-time"


def _torchsde_interval(brownian: Brownian | None) -> torchsde.BaseBrownian | None:
    """The torchsde Brownian (in s = −t) behind an IntervalBrownian, or None for other sources."""
    interval = getattr(brownian, "interval", None)
    return interval if isinstance(interval, torchsde.BaseBrownian) else None


def _sdeint(sde: _TorchsdeReverse, y0: Tensor, ts: list[float], bm: torchsde.BaseBrownian, **kwargs: Any) -> Tensor:
    """``torchsde.sdeint`` without side effects: no autograd graph, and the global RNG left as it was.

    (torchsde's contract check draws a random vector from the global generator to probe ``g_prod``.)
    """
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        ys = torchsde.sdeint(sde, y0, ts, bm=bm, **kwargs)
    return ys[-1]


def _supports(problem: Problem) -> str | None:
    noise = problem.sde.noise_type
    if noise != "additive":
        return f"the torchsde adapter handles additive noise g(t)·I only, this SDE's noise is {noise!r}"
    return None


class TorchsdeFixedStep(FixedStepSolver):
    """Base of the fixed-step torchsde solvers (one registered subclass per method); not registered itself."""

    method: ClassVar[str]
    kind = "sde"

    def nfe_for_steps(self, steps: int) -> int:
        """Score evaluations per step times steps, plus any at the start (reversible Heun's first drift)."""
        return _EVALS_PER_STEP[self.method] * steps + _EVALS_AT_START.get(self.method, 0)

    def supports(self, problem: Problem) -> str | None:
        """None for additive noise (the adapter's diffusion is g(t)·I), else the reason."""
        return _supports(problem)

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian
    ) -> tuple[Tensor, dict]:
        times = self.times(problem)
        x = self.initial_state(problem, n, generator)
        sde = _TorchsdeReverse(problem, score, self.method, times, rescale_carried=self.method == "reversible_heun")
        bm = _GridBrownian(sde, (n, problem.dim), brownian, generator)
        steps = len(times) - 1
        # Index time: dt = 1 lands exactly on the integers 0..N, i.e. on the grid's nodes.
        y = _sdeint(sde, x, [0.0, float(steps)], bm, method=self.method, dt=1.0)
        info = {"method": self.method, "steps": steps, "grid": self.grid_name(problem), "noise_type": sde.noise_type}
        return y, info


@register
class TorchsdeEuler(TorchsdeFixedStep):
    """torchsde ``euler`` (Itô Euler–Maruyama), one NFE a step.

    Strong order 1.0 (torchsde's value for additive noise: the noise term is exact to first order when g does not
    depend on x); weak order 1.0. Same numbers as the hand-written ``em`` on the same path.
    """

    name = "torchsde-euler"
    method = "euler"
    strong_order = 1.0
    weak_order = 1.0


@register
class TorchsdeMilstein(TorchsdeFixedStep):
    """torchsde ``milstein`` (Itô), one NFE a step; with additive noise its correction g·g' vanishes.

    Strong and weak order 1.0 (torchsde's values): with g independent of x it is Euler–Maruyama step for step.
    """

    name = "torchsde-milstein"
    method = "milstein"
    strong_order = 1.0
    weak_order = 1.0


@register
class TorchsdeSRK(TorchsdeFixedStep):
    """torchsde ``srk``: Rößler's SRA1 stochastic Runge–Kutta for additive noise, two NFE a step.

    torchsde guarantees strong order 1.5 for additive noise (it uses the space-time Lévy area). On this bench's
    problems it converges at 2.0, which is what we declare, because the declared order is what the bench checks:
    measured 2.0–2.15 on ve-gauss1 (linear drift, where the term that limits SRA1 to 1.5 vanishes), 2.0 on a
    nonlinear unimodal mixture and about 1.8 on the same-mode paths of ve-gmm2.
    """

    name = "torchsde-srk"
    method = "srk"
    strong_order = 2.0
    weak_order = 2.0


@register
class TorchsdeEulerHeun(TorchsdeFixedStep):
    """torchsde ``euler_heun`` (Stratonovich), one NFE a step: Euler drift, diffusion averaged over the step's ends.

    Strong order 1.0 for non-general noise, weak order 1.0 (torchsde's values).
    """

    name = "torchsde-euler_heun"
    method = "euler_heun"
    strong_order = 1.0
    weak_order = 1.0


@register
class TorchsdeHeun(TorchsdeFixedStep):
    """torchsde ``heun`` (Stratonovich Heun), two NFE a step.

    Strong order 1.0 for non-general noise, weak order 1.0 (torchsde's values).
    """

    name = "torchsde-heun"
    method = "heun"
    strong_order = 1.0
    weak_order = 1.0


@register
class TorchsdeMidpoint(TorchsdeFixedStep):
    """torchsde ``midpoint`` (Stratonovich), two NFE a step.

    Strong order 1.0 for non-general noise, weak order 1.0 (torchsde's values).
    """

    name = "torchsde-midpoint"
    method = "midpoint"
    strong_order = 1.0
    weak_order = 1.0


@register
class TorchsdeReversibleHeun(TorchsdeFixedStep):
    """torchsde ``reversible_heun`` (Kidger et al. 2021), one NFE a step plus one; unstable on this contracting SDE.

    Strong order 1.0 for additive noise (torchsde's value; 0.5 in general), measured 1.0 on ve-gauss1; weak order
    1.0 as torchsde declares it. Its second root −1 + hλ − … has modulus 1 + h|λ| when the drift contracts (λ < 0),
    as the reverse drift of a diffusion model does, so a parasitic, sign-alternating mode grows by
    exp(∫|λ| dt) = (σ(1)² + v)/(σ(t_end)² + v) over the run, whatever the step (v: the data's variance across the
    direction). On ve-gmm2 (v = 0.0025) that is 4·10⁴: it misses the quality bars even at 25 600 steps.
    """

    name = "torchsde-reversible_heun"
    method = "reversible_heun"
    strong_order = 1.0
    weak_order = 1.0

    def supports(self, problem: Problem) -> str | None:
        """Refuse when the parasitic mode's growth over the run exceeds 500.

        For data of variance v the reverse drift's Jacobian is λ(t) = f + g²/V with V = s²(v + σ²); since
        dV/dt = 2fV + g², λ = d log V/dt − f, and the growth exp ∫λ is s(T)(v + σ(T)²) / (s(ε)(v + σ(ε)²))
        (for VE: (σ(1)² + v)/(σ(ε)² + v)). Measured: ve-gauss1 (growth 400) converges at order 1; vp-gauss1 and
        subvp-gauss1 (growth 610) fit slopes 1.75 and 2.66 over 16–256 steps, still pre-asymptotic; ve-gmm2 (4·10⁴)
        misses the per-mode spread by 300%.
        """
        reason = super().supports(problem)
        if reason is not None:
            return reason
        v = float(problem.data.covs.diagonal(dim1=1, dim2=2).min())
        sde, t_max, t_end = problem.sde, problem.t_start, problem.t_end
        growth = float(sde.s(t_max) * (v + sde.sigma(t_max) ** 2) / (sde.s(t_end) * (v + sde.sigma(t_end) ** 2)))
        if growth > 500:
            return (
                f"unstable here: its parasitic mode grows by s(T)(v + σ(T)²)/(s(ε)(v + σ(ε)²)) = {growth:.3g} over the "
                "run, whatever the step"
            )
        return None


_BY_METHOD: dict[str, type[TorchsdeFixedStep]] = {
    cls.method: cls
    for cls in (
        TorchsdeEuler, TorchsdeMilstein, TorchsdeSRK, TorchsdeEulerHeun, TorchsdeHeun, TorchsdeMidpoint,
        TorchsdeReversibleHeun,
    )
}  # fmt: skip


def _positive(v: float) -> bool:
    return v > 0


@register
class TorchsdeAdaptive(Solver):
    """torchsde adaptive stepping (step doubling: one step against two half steps) with any of its methods.

    The step size is shared by the whole batch: torchsde's error estimate is the RMS over all n·d entries of
    (full − two halves) / (rtol·|y| + atol). Each attempted step costs three steps of the method (two with the
    drift cache for euler, milstein, euler_heun). Declared orders None on the class: an instance takes those of
    its ``method`` (see ``torchsde-<method>``); adaptive solvers get a tolerance–error test instead of an order fit.
    """

    name = "torchsde-adaptive"
    kind = "sde"
    adaptive = True
    strong_order = None
    tolerance_scan = (1e-1, 1e-2, 1e-3)
    weak_order = None
    params = (
        Param("method", str, "srk", "torchsde method", choices=tuple(SDE_TYPES)),
        Param("rtol", float, 1e-3, "relative tolerance", _positive, "must be > 0"),
        Param("atol", float, 1e-3, "absolute tolerance", _positive, "must be > 0"),
        Param("dt_min", float, 1e-5, "smallest step in t (smaller ones are accepted)", _positive, "must be > 0"),
        Param("dt0", float, 0.01, "first step size in t", _positive, "must be > 0"),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        fixed = _BY_METHOD[self.options["method"]]
        self.strong_order, self.weak_order = fixed.strong_order, fixed.weak_order

    def supports(self, problem: Problem) -> str | None:
        """None for additive noise (the adapter's diffusion is g(t)·I), else the reason."""
        return _supports(problem)

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian
    ) -> tuple[Tensor, dict]:
        opts = self.options
        method = opts["method"]
        x = self.initial_state(problem, n, generator)
        bm = _torchsde_interval(brownian)
        if bm is None:
            if not isinstance(brownian, GeneratorBrownian):
                raise TypeError(
                    "torchsde-adaptive queries the Brownian path on overlapping intervals (a step, then its halves): "
                    "give it an IntervalBrownian (or none, for one seeded from the generator)"
                )
            entropy = int(torch.randint(0, 2**31 - 1, (), generator=generator))
            levy = "space-time" if method in _NEEDS_LEVY_AREA else "none"
            bm = torchsde.BrownianInterval(
                t0=-problem.t_start, t1=-problem.t_end, size=(n, problem.dim), dtype=torch.float64, entropy=entropy,
                levy_area_approximation=levy,
            )  # fmt: skip
        sde = _TorchsdeReverse(problem, score, method, None, check_finite=True)
        dt0 = min(opts["dt0"], problem.t_start - problem.t_end)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                y = _sdeint(
                    sde, x, [-problem.t_start, -problem.t_end], bm, method=method, dt=dt0, adaptive=True,
                    rtol=opts["rtol"], atol=opts["atol"], dt_min=opts["dt_min"],
                )  # fmt: skip
            except DivergedError as exc:
                raise DivergedError(f"solver {self.name!r} diverged: {exc}") from None
        hits = sum("minimum allowed step size" in str(w.message) for w in caught)
        for w in caught:
            if "minimum allowed step size" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        info = {"method": method, "rtol": opts["rtol"], "atol": opts["atol"], "dt_min": opts["dt_min"]}
        info["dt_min_hits"] = hits
        return y, info
