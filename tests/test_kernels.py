import itertools

import numpy as np
import pytest

from fastcorr import _kernels
from fastcorr._kernels import corr

BOUNDARIES = [corr.FILL, corr.WRAP, corr.SYMM]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int32])
@pytest.mark.parametrize("shapes", [((40, 3000), (3, 3)), ((90, 70), (7, 12)), ((5, 4), (9, 9))])
def test_serial_and_parallel_twins_agree(dtype, shapes, rng):
    x = (rng.standard_normal(shapes[0]) * 8).astype(dtype)
    k = (rng.standard_normal(shapes[1]) * 8).astype(dtype)
    (h, w), (kh, kw) = shapes
    for boundary, (p0, p1) in itertools.product(BOUNDARIES, [(0, 0), (kh - 1, kw - 1), (kh // 2, 1)]):
        shape = (h + kh - 1 - p0 if p0 else max(h - kh + 1, 1), w + kw - 1 - p1 if p1 else max(w - kw + 1, 1))
        serial, parallel = np.empty(shape, dtype), np.empty(shape, dtype)
        corr.correlate.serial(x, k, serial, p0, p1, boundary, dtype(3))
        corr.correlate.parallel(x, k, parallel, p0, p1, boundary, dtype(3))
        if np.dtype(dtype).kind in "iu":
            np.testing.assert_array_equal(serial, parallel)
        else:
            np.testing.assert_allclose(serial, parallel, rtol=1e-6)


def test_pick_runs_small_work_serially():
    assert corr.correlate.pick(_kernels.SERIAL_WORK - 1) is corr.correlate.serial
    assert corr.correlate.pick(_kernels.SERIAL_WORK) is corr.correlate.parallel


def test_twins_have_their_own_cache_entries():
    assert corr.correlate.serial.py_func.__qualname__ != corr.correlate.parallel.py_func.__qualname__


@pytest.mark.parametrize("twin", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, None])
def test_finite_finds_any_inf_or_nan(twin, dtype, bad, rng):
    from fastcorr._kernels import conv

    finite = getattr(conv.finite, twin)
    for shape in [(1,), (2, 3, 4, 5), (3, 1000)]:
        a = (rng.uniform(-1, 1, shape) * np.finfo(dtype).max).astype(dtype)  # large, but finite
        if bad is not None:
            a.reshape(-1)[rng.integers(a.size)] = bad
        assert finite(a) == (bad is None)
