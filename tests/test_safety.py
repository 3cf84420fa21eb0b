"""fastcorr from many threads, in forked and spawned workers, and without holding the GIL.

Scenarios that can crash or hang a process run in a fresh interpreter, bounded by timeouts,
so that the layer Numba picks there is fastcorr's choice and a dead child is a failure.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numba
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastcorr
from fastcorr._kernels import SERIAL_WORK, forced
from fastcorr._kernels.corr import rows

TESTS = Path(__file__).resolve().parent
SHAPE, KSHAPE = (512, 512), (3, 3)
REPEATS = 20
OMP_FORK_ABORT = "fork() called from a process already using GNU OpenMP"


def inputs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(SHAPE) for _ in range(n)], rng.standard_normal(KSHAPE)


def run(code: str, layer: str | None = None, timeout: float = 120, priority: str | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports fastcorr and this module from the checkout."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_THREADING_LAYER")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS.parent), str(TESTS), env.get("PYTHONPATH")]))
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    if priority is not None:
        env["NUMBA_THREADING_LAYER_PRIORITY"] = priority
    return subprocess.run(
        [sys.executable, "-c", code], cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=timeout
    )


def hammer(n_threads: int = 8) -> list:
    """Per thread, how many of its concurrent parallel-sized calls matched the single-threaded result."""
    xs, k = inputs(n_threads)
    assert (SHAPE[0] - KSHAPE[0] + 1) * (SHAPE[1] - KSHAPE[1] + 1) * k.size >= SERIAL_WORK
    expected = [(fastcorr.corr2d(x, k), fastcorr.correlate2d(x, k)) for x in xs]
    barrier = threading.Barrier(n_threads, timeout=30)
    results: list = [None] * n_threads

    def work(i):
        try:
            barrier.wait()
            matches = 0
            for _ in range(REPEATS):
                matches += np.array_equal(fastcorr.corr2d(xs[i], k), expected[i][0])
                matches += np.array_equal(fastcorr.correlate2d(xs[i], k), expected[i][1])
            results[i] = matches
        except BaseException as error:
            results[i] = error

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    assert not any(thread.is_alive() for thread in threads), "threads still running after 60 s"
    return results


def pool_vs_parent(method: str, timeout: float = 60) -> None:
    """Print the parent's threading layer and whether a Pool(2) reproduced its parallel results."""
    xs, k = inputs(4)
    expected = [fastcorr.corr2d(x, k) for x in xs]
    layer = numba.threading_layer()
    with multiprocessing.get_context(method).Pool(2) as pool:
        got = pool.map_async(partial(fastcorr.corr2d, K=k), xs).get(timeout=timeout)
    print(layer, all(np.array_equal(a, b) for a, b in zip(expected, got)))


def layer_and_exactness() -> None:
    """Print the threading layer after parallel calls and whether they were exact."""
    rng = np.random.default_rng(1)
    x = rng.integers(-8, 8, SHAPE).astype(np.float64)
    k = rng.integers(-8, 8, KSHAPE).astype(np.float64)
    valid = np.einsum("ijab,ab->ij", sliding_window_view(x, KSHAPE), k)
    full = np.einsum("ijab,ab->ij", sliding_window_view(np.pad(x, 2), KSHAPE), k)
    with forced("parallel"):
        exact = np.array_equal(fastcorr.corr2d(x, k), valid) and np.array_equal(fastcorr.correlate2d(x, k), full)
    print(numba.threading_layer(), exact)


def longest_gil_wait(call, tries: int = 3) -> float:
    """The longest part of ``call()`` in which a thread ticking every 1 ms never got the GIL, as a
    fraction; the least of ``tries`` calls (other processes on the machine, such as a second test
    worker, can keep the ticking thread off the CPU for a while; a held GIL stops it every time)."""
    return min(_gil_wait(call) for _ in range(tries))


def _gil_wait(call) -> float:
    ticks: list[float] = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            time.sleep(0.001)
            ticks.append(time.perf_counter())

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    time.sleep(0.02)
    start = time.perf_counter()
    call()
    end = time.perf_counter()
    stop.set()
    thread.join(5)
    points = [start, *(tick for tick in ticks if start < tick < end), end]
    return float(np.diff(points).max()) / (end - start)


def test_eight_threads_at_once_match_single_threaded():
    assert hammer() == [2 * REPEATS] * 8


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_after_parallel_call_in_parent(method):
    proc = run(f"from test_safety import pool_vs_parent; pool_vs_parent({method!r})")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["tbb", "True"]


@pytest.mark.slow
def test_omp_layer_kills_forked_pool_workers():
    """Numba's default layer on Linux: why fastcorr picks TBB."""
    proc = run("from test_safety import pool_vs_parent; pool_vs_parent('fork', timeout=3)", layer="omp")
    assert proc.returncode != 0
    assert "True" not in proc.stdout
    assert OMP_FORK_ABORT in proc.stderr


@pytest.mark.slow
def test_workqueue_layer_aborts_on_concurrent_threads():
    proc = run("from test_safety import hammer; hammer()", layer="workqueue")
    assert proc.returncode != 0
    assert "workqueue threading layer is not threadsafe" in proc.stderr


def test_gil_released_during_long_calls():
    """Numba releases the GIL around every parallel region whatever ``nogil`` says; the serial twin needs ``nogil``."""
    rng = np.random.default_rng(2)
    x, k = rng.standard_normal((4096, 4096)), rng.standard_normal((9, 9))
    out = np.empty((4088, 4088))
    fastcorr.corr2d(x[:64, :64], k)
    rows.serial(x[:64], k, np.empty((56, 4088)), 0, 56, 0, 4088, 0, 0, 56)
    assert longest_gil_wait(lambda: sum(range(10**7))) > 0.5
    assert longest_gil_wait(lambda: fastcorr.corr2d(x, k)) < 0.5
    assert longest_gil_wait(lambda: rows.serial(x, k, out, 0, 4088, 0, 4088, 0, 0, 4088)) < 0.5


def test_gil_released_by_ndimage_on_volumes_and_colour_images():
    """The stack loop (volumes, colour images) and the public calls around it, on the serial twins
    (which need ``nogil``; one core stays free for the ticking thread); each call made once first,
    so that no compile is measured. Each call lasts tens of milliseconds: a busy second test worker
    has kept the ticking thread off the CPU for over 10 ms, most of a 3x3 call on a 1024x2048 image."""
    import fastcorr.ndimage as fnd
    from twins import run_as

    rng = np.random.default_rng(3)
    volume, k = rng.standard_normal((48, 512, 512)), rng.standard_normal((3, 3, 3))
    colour = rng.standard_normal((2048, 2048, 3)).astype(np.float32)
    k5 = rng.standard_normal((5, 5))
    calls = [lambda: fnd.correlate(volume, k), lambda: fnd.correlate(colour, k5, mode="mirror", axes=(0, 1))]
    with run_as("serial"):
        for call in calls:
            call()
            assert longest_gil_wait(call) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize(
    "requested, expected",
    [
        (None, "tbb"),
        ("workqueue", "workqueue"),
        ("omp", "omp"),
        ("tbb", "tbb"),
        ("threadsafe", "tbb"),
    ],
)
def test_threading_layer(requested, expected):
    proc = run("from test_safety import layer_and_exactness; layer_and_exactness()", layer=requested)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [expected, "True"]


USERS_OWN_PARALLEL_CODE = """
import numba, numpy as np
import fastcorr
print(numba.config.THREADING_LAYER)
@numba.njit(parallel=True)
def total(a):
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s
total(np.ones(1000))
print(numba.threading_layer())
"""


@pytest.mark.slow
@pytest.mark.parametrize("priority, expected", [(None, "tbb"), ("omp tbb workqueue", "omp"), ("workqueue tbb omp", "workqueue")])
def test_import_leaves_the_layer_to_numba_and_the_user(priority, expected):
    """Importing fastcorr only makes TBB loadable: Numba's priority list still decides, for everyone's code."""
    proc = run(USERS_OWN_PARALLEL_CODE, priority=priority)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["default", expected]


@pytest.mark.parametrize("version, usable", [("2021.5.0", False), ("2020.3", False), ("2021.6.0", True), ("2022.0.0", True)])
def test_only_a_tbb_release_numba_accepts_is_loaded(monkeypatch, version, usable):
    from importlib import metadata

    from fastcorr._kernels import _threading

    class Library:
        name = "libtbb.so.12"

        def locate(self):
            return Path("/prefix/lib/libtbb.so.12")

    class Wheel:
        files = [Library()]

    Wheel.version = version
    monkeypatch.setattr(metadata, "distribution", lambda name: Wheel)
    monkeypatch.setattr(sys, "platform", "linux")
    assert (_threading.tbb_library() is not None) == usable
