"""Grid "ve-gmm2-dpmpp-3m-6", found by `sdebench grid-search`:

dpmpp-3m at 6 NFE on ve-gmm2: margin 1.008 (seed 0, n = 20000).
σ on ve-gmm2: 10, 5.015, 2.701, 0.4772, 0.1126, 0.03729, 0.01
Load this file with --plugin (or a sweep's plugins = [...]) and use it as grid = "ve-gmm2-dpmpp-3m-6".
"""

from sdebench.solvers.grids import saved_grid

saved_grid(
    "ve-gmm2-dpmpp-3m-6",
    [
        9.999999999999998,
        5.015012978728746,
        2.7011387626465706,
        0.47718006834696025,
        0.11260101797018067,
        0.03728808999307656,
        0.010000690799386988,
    ],
    solver="dpmpp-3m",
    options={},
    nfe=6,
    problem="ve-gmm2",
    objective="margin",
    value=1.0078484850715785,
    seed=0,
    n=20000,
    summary="dpmpp-3m at 6 NFE on ve-gmm2: margin 1.008 (seed 0, n = 20000)",
)
