"""Start-up time of the command line: `sdebench --help`, `sdebench list` and a tiny `sample`, each a fresh process.

Each command runs ``--repeat`` times (default 5) and the median wall time is printed with the modules it imported
that matter for start-up (torch, scipy.stats, scipy.integrate, POT). Targets (issue 11): ≤ 2 s for --help and list.
Usage: python benchmarks/cli_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "--help": ["--help"],
    "list": ["list"],
    "sample (n=100, 20 steps)": ["sample", "--problem", "ve-gmm2", "--steps", "20", "--n", "100", "--quiet"],
}
HEAVY = ("torch", "scipy.stats", "scipy.integrate", "ot")
PROBE = (
    "import sys, runpy; sys.argv = ['sdebench'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('sdebench.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    f"print('IMPORTED', *[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)\n"
)


def main() -> None:
    """Time each command in fresh processes and print the median and what it imported."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for label, argv in COMMANDS.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sdebench.cli", *argv], capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        probe = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True)
        imported = [line for line in probe.stderr.splitlines() if line.startswith("IMPORTED")]
        heavy = imported[-1].split()[1:] if imported else ["?"]
        print(
            f"{label:<26} median {statistics.median(times):5.2f} s (min {min(times):.2f})   imports: "
            f"{', '.join(heavy) or 'none of ' + ', '.join(HEAVY)}"
        )


if __name__ == "__main__":
    main()
