"""The named choices of the library's options, in a module that imports nothing heavy.

The library's modules take them from here and the command line builds its help from them, so ``sdebench --help``
needs neither torch nor scipy.
"""

from __future__ import annotations

#: What `sdebench sample` and sweeps compute unless told otherwise (w2 is opt-in: exact OT costs ~1 s).
DEFAULT_METRICS = [
    "sliced_wasserstein",
    "mode_balance",
    "mode_moments",
    "energy",
    "mmd",
    "mode_coverage",
    "mode_covariance",
    "log_density",
]

#: DSM weightings λ(t): the kernel variance (default) or g(t)² (the seed's).
WEIGHTINGS = ("sigma2", "g2")
#: How DSM draws its training times: log σ uniform over [σ(ε), σ(T)] (default), or t uniform over [ε, T].
T_SAMPLINGS = ("log-sigma", "uniform-t")
#: DSM losses: the squared error (default) or its plain norm (the seed's quirk).
LOSSES = ("squared", "norm")
#: Where the log-σ training law starts at the least (EDM's σ_min; see TrainConfig).
DEFAULT_SIGMA_FLOOR = 0.002

#: NLL divergence estimators, and the Hutchinson probes' law.
DIVERGENCES = ("exact", "hutchinson")
NOISES = ("rademacher", "gaussian")
