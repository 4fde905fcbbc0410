"""Denoising score matching for any SDE of the family, with checkpoints cached on disk by a hash of their maker."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sdebench import __version__
from sdebench.choices import DEFAULT_SIGMA_FLOOR, LOSSES, T_SAMPLINGS, WEIGHTINGS
from sdebench.errors import UserError, check
from sdebench.fingerprint import closure, combine
from sdebench.problems import Problem
from sdebench.scores.networks import ARCHS

Tensor = torch.Tensor
CHECKPOINT_FORMAT = "sdebench-checkpoint-1"


@dataclass
class TrainConfig:
    """What determines a trained score (together with the problem): the cache key is a hash of both.

    ``weighting``: λ(t) = the kernel variance s(t)²σ(t)² (default; σ(t)² for VE) or g(t)² (the seed's). ``loss``: the
    squared L2 error (default) or its plain L2 norm (the seed's quirk: its values sit at 1200–2000 and barely move).
    ``t_sampling``: training times with log σ(t) uniform (default; for VE, whose log σ is linear in t, the same law as
    t uniform) or t uniform (score_sde's). Uniform t starves the small noise levels on the other SDEs, and they are
    what sets the per-mode spread: measured with uniform t, EM 500 steps, n = 20 000, the per-mode std was 10.8% off
    on vp-gmm2, 4–5% on subvp-gmm2 and 47% on edm-gmm2 (σ < 0.05 in 0.06% of EDM's draws), against 1.2% on ve-gmm2.
    ``sigma_floor``: the log-σ law starts at max(σ(ε), sigma_floor) (default 0.002, EDM's σ_min). Below it the
    denoiser is the identity to within σ, so draws there teach the network nothing the sampler uses; sub-VP's
    σ(ε) = 1.1e-4 put a third of its draws there, and its per-mode std was 1.9–3.3% off (EM 500 steps, n = 20 000,
    6 seeds), against 0.6–2.3% with the floor over 3 training seeds (ve-gmm2: 0.6–2.0%). It changes no other
    shipped SDE's law.
    """

    arch: str = "mlp"
    arch_options: dict[str, Any] = field(default_factory=dict)
    steps: int = 4000
    batch_size: int = 1024
    lr: float = 3e-3
    ema: float = 0.995
    seed: int = 0
    weighting: str = "sigma2"
    loss: str = "squared"
    t_sampling: str = "log-sigma"
    sigma_floor: float = DEFAULT_SIGMA_FLOOR

    def validate(self) -> None:
        """Raise :class:`UserError` for an invalid field."""
        arch_cls = ARCHS.get(self.arch, "arch")
        unknown = set(self.arch_options) - set(arch_cls.defaults)
        check(not unknown, "arch_options", f"unknown option(s) {sorted(unknown)} for arch {self.arch!r}")
        for name, value in self.arch_options.items():
            # every architecture option is a positive number of its default's type (width, depth, σ_data, ...)
            default = arch_cls.defaults[name]
            kind = int if isinstance(default, int) else float
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            ok = ok and (kind is float or isinstance(value, int))
            word = "a positive integer" if kind is int else "a positive number"
            check(ok, f"arch_options.{name}", f"must be {word}, got {value!r}")
        check(isinstance(self.steps, int) and self.steps > 0, "steps", "must be a positive integer")
        check(isinstance(self.batch_size, int) and self.batch_size > 0, "batch_size", "must be a positive integer")
        check(self.lr > 0, "lr", "must be > 0")
        check(
            isinstance(self.sigma_floor, (int, float)) and 0 <= self.sigma_floor < math.inf,
            "sigma_floor",
            f"must be a finite number ≥ 0, got {self.sigma_floor!r}",
        )
        check(0.0 <= self.ema < 1.0, "ema", "must lie in [0, 1)")
        check(self.weighting in WEIGHTINGS, "weighting", f"unknown {self.weighting!r} (valid: {', '.join(WEIGHTINGS)})")
        check(self.loss in LOSSES, "loss", f"unknown {self.loss!r} (valid: {', '.join(LOSSES)})")
        check(
            self.t_sampling in T_SAMPLINGS,
            "t_sampling",
            f"unknown {self.t_sampling!r} (valid: {', '.join(T_SAMPLINGS)})",
        )

    def resolved(self) -> dict[str, Any]:
        """The config with the architecture's defaults filled in (what the hash covers)."""
        out = asdict(self)
        out["arch_options"] = {**ARCHS.get(self.arch, "arch").defaults, **self.arch_options}
        return out


def cache_key(problem: Problem, config: TrainConfig) -> dict[str, Any]:
    """Everything a checkpoint depends on, as plain data."""
    return {"problem": problem.spec, "train": config.resolved(), "format": CHECKPOINT_FORMAT}


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$SDEBENCH_CACHE`` or ``~/.cache/sdebench``."""
    return Path(os.environ.get("SDEBENCH_CACHE", Path.home() / ".cache" / "sdebench"))


def training_code() -> dict[str, str | None]:
    """Hash of every module that trains and evaluates a network (this one, the networks, the problems, ...)."""
    return closure([__name__])


def checkpoint_path(problem: Problem, config: TrainConfig, cache_dir: Path | None = None) -> Path:
    """Where the checkpoint for this problem and config, trained by the installed code, lives in the cache.

    The name's digest covers the training code's fingerprint: after a change to the training or network code, a
    cached network made by the old code is not found, and the network is trained again.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = _digest({"key": cache_key(problem, config), "code": combine(training_code())})
    return directory / f"{problem.name}-{config.arch}-{digest}.pt"


class TrainedScore:
    """A trained network used as a score (evaluated without gradients)."""

    name = "trained"
    precision = torch.float32  # the network runs in float32 (see the Score protocol)

    def __init__(self, model: torch.nn.Module, path: Path | None = None, info: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.path = path
        self.info = info or {}

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        with torch.no_grad():
            return self.model(x, t)


def _build_model(problem: Problem, config: TrainConfig) -> torch.nn.Module:
    arch_cls = ARCHS.get(config.arch, "arch")
    return arch_cls(problem.dim, problem.sde, **config.resolved()["arch_options"])


def training_times(
    problem: Problem, how: str, n: int, gen: torch.Generator, dtype: torch.dtype, sigma_floor: float = 0.0
) -> Tensor:
    """n training times in [ε, T]: log σ(t) uniform over [log max(σ(ε), sigma_floor), log σ(T)] ("log-sigma")
    or t uniform."""
    t_end, t_max = problem.t_end, problem.t_start
    u = torch.rand(n, generator=gen, dtype=dtype)
    if how == "uniform-t":
        return t_end + (t_max - t_end) * u
    sde = problem.sde
    lo, hi = math.log(max(sde.sigma(t_end), min(sigma_floor, sde.sigma(t_max)))), math.log(sde.sigma(t_max))
    return sde.t_of_sigma(torch.exp(lo + (hi - lo) * u)).clamp(t_end, t_max)


def dsm_loss(model: torch.nn.Module, problem: Problem, x0: Tensor, config: TrainConfig, gen: torch.Generator) -> Tensor:
    """Denoising score matching: E_t λ(t) |s_θ(x_t, t) + z/std|², x_t = s(t)x0 + std·z, std = s(t)σ(t),
    t drawn by ``config.t_sampling`` over [ε, T] (or the seed's unsquared norm)."""
    n = x0.shape[0]
    sde = problem.sde
    t = training_times(problem, config.t_sampling, n, gen, x0.dtype, config.sigma_floor)
    z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    sigma = sde.std(t)[:, None]
    x_t, _ = sde.marginal(x0, t)
    pred = model(x_t + sigma * z, t)
    # std²|s − (−z/std)|² = |std·s + z|²: written this way it never divides by a small std.
    residual2 = (sigma * pred + z).pow(2).sum(-1)
    sigma = sigma[:, 0]
    # λ(t)/std²: 1 for the default λ = std², and g²/std² (for VE the constant 2 log(σmax/σmin)) for the seed's λ = g².
    ratio = 1.0 if config.weighting == "sigma2" else (sde.diffusion(t) / sigma) ** 2
    if config.loss == "squared":
        return (ratio * residual2).mean()
    # The seed's quirk: λ·‖s − target‖ (a norm, not its square) = λ/σ · sqrt(residual2).
    return (ratio * sigma * residual2.sqrt()).mean()


def train(problem: Problem, config: TrainConfig, progress: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train a score network by DSM on fresh draws from the problem's data (float32); deterministic per seed."""
    config.validate()
    torch.manual_seed(config.seed)
    model = _build_model(problem, config).float()
    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps)
    gen = torch.Generator().manual_seed(config.seed)
    start = time.perf_counter()
    losses: list[float] = []
    bar = tqdm(range(config.steps), desc="train", disable=not progress, mininterval=0.5, leave=False)
    for step in bar:
        x0, _ = problem.data.sample(config.batch_size, generator=gen, dtype=torch.float32)
        loss = dsm_loss(model, problem, x0, config, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        # EMA with warm-up: early on the average would otherwise be dominated by the random initial weights.
        decay = min(config.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema_model.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
        losses.append(loss.item())
        if len(losses) % 100 == 0:
            bar.set_postfix(loss=f"{sum(losses[-100:]) / 100:.4f}")
    info = {"train_seconds": time.perf_counter() - start, "final_loss": sum(losses[-100:]) / len(losses[-100:])}
    return ema_model, info


def weights_digest(state_dict: dict[str, Tensor]) -> str:
    """sha256 of the weights (names, shapes and bytes): torch does not check a checkpoint's integrity itself."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: Path, model: torch.nn.Module, key: dict[str, Any], info: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename), so an interrupted write leaves nothing half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "sdebench_version": __version__,
        "key": json.dumps(key, sort_keys=True),
        "code": training_code(),
        "info": info,
        "state_dict": model.state_dict(),
        "weights_sha256": weights_digest(model.state_dict()),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, problem: Problem, config: TrainConfig) -> TrainedScore:
    """Load with ``weights_only``; refuse a file that is corrupt or was trained for another problem or config."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError("checkpoint", f"no such file {str(path)!r}") from None
    except Exception as exc:  # torch raises many types for a bad file; all mean the same to the user
        raise UserError("checkpoint", f"{str(path)!r} is truncated or corrupt ({type(exc).__name__})") from None
    check(
        isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT,
        "checkpoint",
        f"{str(path)!r} is not an sdebench checkpoint",
    )
    expected = json.dumps(cache_key(problem, config), sort_keys=True)
    if payload.get("key") != expected:
        try:
            stored = json.loads(payload.get("key", "{}"))
        except (TypeError, ValueError):
            raise UserError("checkpoint", f"{str(path)!r} has an unreadable config record") from None
        diff = _first_difference(stored, json.loads(expected))
        raise UserError("checkpoint", f"{str(path)!r} was trained for another config ({diff})")
    state = payload.get("state_dict")
    check(
        isinstance(state, dict) and payload.get("weights_sha256") == weights_digest(state),
        "checkpoint",
        f"{str(path)!r} is corrupt (its weights do not match their recorded checksum)",
    )
    model = _build_model(problem, config).float()
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise UserError("checkpoint", f"{str(path)!r} has unusable weights ({type(exc).__name__})") from None
    return TrainedScore(model, path=path, info=payload.get("info", {}))


def _first_difference(stored: Any, expected: Any, where: str = "") -> str:
    """A short description of the first place two configs differ."""
    if isinstance(stored, dict) and isinstance(expected, dict):
        for k in sorted(set(stored) | set(expected)):
            if stored.get(k) != expected.get(k):
                return _first_difference(stored.get(k), expected.get(k), f"{where}.{k}" if where else k)
    return f"{where or 'config'}: stored {json.dumps(stored)[:60]}, wanted {json.dumps(expected)[:60]}"


def load_or_train(
    problem: Problem,
    config: TrainConfig,
    cache_dir: Path | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> TrainedScore:
    """The cached trained score for this problem and config, training and caching it first if needed.

    With ``checkpoint`` given, that file is loaded (and must match), never trained or overwritten.
    """
    config.validate()
    if checkpoint is not None:
        return load_checkpoint(Path(checkpoint), problem, config)
    path = checkpoint_path(problem, config, cache_dir)
    if path.exists():
        return load_checkpoint(path, problem, config)
    model, info = train(problem, config, progress=progress)
    save_checkpoint(path, model, cache_key(problem, config), info)
    return TrainedScore(model, path=path, info=info)
