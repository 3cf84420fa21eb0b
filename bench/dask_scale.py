"""fastcorr.dask on an image larger than memory should need, and against in-memory fastcorr.

    python bench/dask_scale.py [--part all|scale|speedup] [--size 20000] [--chunk 2048]
                               [--speedup-size 8192] [--rounds 3] [--no-scipy]

scale: a lazily generated ``size x size`` float32 image, correlated with a 5x5 kernel
('same', fill) and reduced to its sum, so that no full-size array ever exists. Prints
the wall time, the process's peak RSS and the memory bound the chunking implies.
It runs first, so that the peak belongs to it.

speedup: at ``speedup-size``^2 float32, 5x5 'same', the threaded scheduler's
fastcorr.dask.correlate2d (input and output in memory) against fastcorr.correlate2d,
and dask-wrapped scipy.signal.correlate2d (map_overlap) against scipy itself.
Interleaved rounds, medians, ratios in one process.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import resource
import statistics
import time

import dask
import dask.array as da
import numba
import numpy as np

import fastcorr as fc
import fastcorr.dask as fcd

MB = 2**20


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def timed(func):
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def scale(size: int, chunk: int) -> None:
    k = np.random.default_rng(1).standard_normal((5, 5)).astype(np.float32)
    x = da.random.default_rng(0).random((size, size), dtype=np.float32, chunks=chunk)
    y = fcd.correlate2d(x, k, mode="same")
    total = y.sum(dtype=np.float64)
    workers = os.cpu_count() or 1
    chunk_bytes = chunk * chunk * 4
    working = workers * (chunk_bytes + (chunk + 4) ** 2 * 4 + chunk_bytes)
    row = math.sqrt(x.npartitions) * chunk_bytes
    print(f"scale: {size}x{size} float32 ({x.nbytes / 2**30:.2f} GiB), chunks {chunk}x{chunk} "
          f"({chunk_bytes / MB:.0f} MiB, {x.npartitions} chunks), 5x5 'same', sum; {workers} threads; {load()}")
    baseline = current_rss()
    wall = timed(lambda: total.compute(scheduler="threads"))
    used = peak_rss() - baseline
    print(f"  wall {wall:.1f} s, {x.nbytes / wall / 2**30:.2f} GiB/s of input, {load()}")
    print(f"  bound: running tasks {workers} threads x (input + input with halo + output) = {working / MB:.0f} MiB, "
          f"plus the input chunks kept for their neighbours' halos along the front of the computation, "
          f"in rows of sqrt({x.npartitions}) chunks = {row / MB:.0f} MiB: 2 rows at least, "
          f"{(working + 2 * row) / MB:.0f} MiB")
    print(f"  measured: RSS {baseline / MB:.0f} MiB before, peak {used / MB:.0f} MiB above it "
          f"= running tasks + {(used - working) / row:.1f} rows ({used / x.nbytes:.0%} of the image)")
    r0, c0 = size // 2 - 50, size // 3 - 50
    window = x[r0 - 2 : r0 + 102, c0 - 2 : c0 + 102].compute()
    spot = np.abs(y[r0 : r0 + 100, c0 : c0 + 100].compute() - fc.correlate2d(window, k, "valid")).max()
    print(f"  spot check of a 100x100 window against fastcorr.correlate2d: max |difference| {spot:.1e}")


def speedup(n: int, chunk: int, rounds: int, with_scipy: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((n, n), dtype=np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    X = da.from_array(x, chunks=chunk)
    impls = {
        "fastcorr": lambda: fc.correlate2d(x, k, "same"),
        "fastcorr.dask": lambda: fcd.correlate2d(X, k, "same").compute(scheduler="threads"),
        "np.copyto": lambda: np.copyto(np.empty_like(x), x),
    }
    if with_scipy:
        import scipy.signal

        scipy_block = functools.partial(scipy.signal.correlate2d, in2=k, mode="same")
        impls["scipy"] = lambda: scipy.signal.correlate2d(x, k, "same")
        impls["dask+scipy"] = lambda: X.map_overlap(scipy_block, depth=2, boundary=0).compute(scheduler="threads")
    print(f"speedup: {n}x{n} float32, 5x5 'same', dask chunks {chunk}x{chunk} ({X.npartitions}), threads scheduler, "
          f"{rounds} interleaved rounds; {load()}")
    checks = {name: f() for name, f in impls.items() if name != "np.copyto"}
    for name, result in checks.items():
        err = np.abs(result - checks["fastcorr"]).max()
        print(f"  {name:>14}: max |difference| from fastcorr {err:.1e}")
    times = {name: [] for name in impls}
    for _ in range(rounds):
        for name, f in impls.items():
            times[name].append(timed(f))
    m = {name: statistics.median(t) for name, t in times.items()}
    for name, t in m.items():
        print(f"  {name:>14}: median {t * 1e3:8.1f} ms  (runs: {', '.join(f'{v * 1e3:.0f}' for v in times[name])})")
    print(f"  fastcorr.dask speed-up over fastcorr: {m['fastcorr'] / m['fastcorr.dask']:.2f}x; "
          f"fastcorr is {m['fastcorr'] / m['np.copyto']:.1f}x a plain copy of the image")
    if with_scipy:
        print(f"  dask+scipy speed-up over scipy: {m['scipy'] / m['dask+scipy']:.2f}x; "
              f"fastcorr.dask over dask+scipy: {m['dask+scipy'] / m['fastcorr.dask']:.1f}x")
    print(f"  {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "scale", "speedup"], default="all")
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--speedup-size", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-scipy", dest="scipy", action="store_false")
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, numba {numba.__version__} "
          f"({numba.config.NUMBA_NUM_THREADS} threads), dask {dask.__version__}, numpy {np.__version__}")
    fc.correlate2d(np.ones((64, 64), np.float32), np.ones((5, 5), np.float32), "same")
    if args.part in ("all", "scale"):
        scale(args.size, args.chunk)
    if args.part in ("all", "speedup"):
        speedup(args.speedup_size, args.chunk, args.rounds, args.scipy)


if __name__ == "__main__":
    main()
