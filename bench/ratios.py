"""Side-by-side medians of fastcorr against scipy, interleaved in one process.

    python bench/ratios.py [--rounds 15]

Each round runs every implementation once on the same arrays, in turn, so that a
slow moment of the machine hits all of them; the table shows medians and the ratio
scipy time / fastcorr time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numba
import numpy as np
import scipy
import scipy.signal

import fastcorr as fc
from fastcorr._kernels import corr

CASES = [(64, 3), (256, 3), (512, 3), (1024, 3), (2048, 3), (4096, 3), (512, 5), (2048, 5), (1024, 15), (256, 63)]


def timed(func):
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def compare(n, k, dtype, rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(dtype)
    w = rng.standard_normal((k, k)).astype(dtype)
    out = np.empty((n - k + 1, n - k + 1), dtype)
    zero = out.dtype.type(0)
    impls = {
        "scipy": lambda: scipy.signal.correlate2d(x, w, "valid"),
        "corr2d": lambda: fc.corr2d(x, w),
        "serial": lambda: corr.correlate.serial(x, w, out, 0, 0, corr.FILL, zero),
    }
    for f in impls.values():
        f()
    times = {name: [] for name in impls}
    scipy_rounds = max(1, min(rounds, int(2.0 / max(timed(impls["scipy"]), 1e-6))))
    for r in range(rounds):
        for name, f in impls.items():
            if name != "scipy" or r < scipy_rounds:
                times[name].append(timed(f))
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {numba.config.NUMBA_NUM_THREADS} threads, "
          f"numpy {np.__version__}, numba {numba.__version__}, scipy {scipy.__version__}")
    print(f"{'image':>10} {'kernel':>6} {'dtype':>8} {'scipy ms':>10} {'corr2d ms':>10} {'serial ms':>10} {'scipy/corr2d':>13}")
    for dtype in (np.float32, np.float64):
        for n, k in CASES:
            m = compare(n, k, dtype, args.rounds)
            print(f"{n:>5}x{n:<4} {k:>3}x{k:<2} {np.dtype(dtype).name:>8} {m['scipy'] * 1e3:10.3f} "
                  f"{m['corr2d'] * 1e3:10.3f} {m['serial'] * 1e3:10.3f} {m['scipy'] / m['corr2d']:12.1f}x")


if __name__ == "__main__":
    main()
