import itertools

import numpy as np
import pytest

from fastcorr import _kernels
from fastcorr._kernels import conv, corr

BOUNDARIES = [corr.FILL, corr.WRAP, corr.SYMM]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int32])
@pytest.mark.parametrize("shapes", [((40, 3000), (3, 3)), ((9, 2500), (5, 5)), ((90, 70), (7, 12)), ((5, 4), (9, 9))])
def test_serial_and_parallel_twins_agree(dtype, shapes, rng):
    x = (rng.standard_normal(shapes[0]) * 8).astype(dtype)
    k = (rng.standard_normal(shapes[1]) * 8).astype(dtype)
    (h, w), (kh, kw) = shapes
    for boundary, (p0, p1) in itertools.product(BOUNDARIES, [(0, 0), (kh - 1, kw - 1), (kh // 2, 1)]):
        shape = (h + kh - 1 - p0 if p0 else max(h - kh + 1, 1), w + kw - 1 - p1 if p1 else max(w - kw + 1, 1))
        serial, parallel = np.empty(shape, dtype), np.empty(shape, dtype)
        corr.correlate.serial(x, k, serial, p0, p1, boundary, dtype(3))
        corr.correlate.parallel(x, k, parallel, p0, p1, boundary, dtype(3))
        np.testing.assert_array_equal(serial, parallel)


def test_pick_runs_small_work_serially():
    assert corr.correlate.pick(_kernels.SERIAL_WORK - 1) is corr.correlate.serial
    assert corr.correlate.pick(_kernels.SERIAL_WORK) is corr.correlate.parallel


def test_twins_have_their_own_cache_entries():
    assert corr.correlate.serial.py_func.__qualname__ != corr.correlate.parallel.py_func.__qualname__


@pytest.mark.parametrize("twin", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, None])
def test_finite_finds_any_inf_or_nan(twin, dtype, bad, rng):
    from fastcorr._kernels import scan

    finite = getattr(scan.finite, twin)
    for shape in [(1,), (2, 3, 4, 5), (3, 1000)]:
        a = (rng.uniform(-1, 1, shape) * np.finfo(dtype).max).astype(dtype)  # large, but finite
        if bad is not None:
            a.reshape(-1)[rng.integers(a.size)] = bad
        assert finite(a) == (bad is None)


# (id, kernel, N, C, H, W, O, kh, kw, geometry): every block edge of the conv loops: four output
# channels per block with a partial last block, row chunks of 4096 elements, padding, dilation, groups.
CONV_TWINS = [
    ("3x3 tiles, three row chunks", 2, 3, 70, 130, 6, 3, 3, (1, 1, 1, 1, 1, 1, 1)),
    ("one channel per block", 1, 2, 64, 70, 1, 2, 3, (1, 1, 1, 1, 0, 2, 1)),
    ("taps, dilation, groups", 2, 4, 40, 90, 6, 2, 5, (1, 1, 2, 1, 1, 0, 2)),
    ("strided", 2, 3, 41, 45, 5, 3, 2, (2, 3, 1, 2, 1, 1, 1)),
]


def conv_operands(dtype, n, c, h, w, o, kh, kw, geometry, seed=3):
    rng = np.random.default_rng(seed)
    sh, sw, dh, dw, pt, pl, groups = geometry
    oh = (h + 2 * pt - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pl - dw * (kw - 1) - 1) // sw + 1
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c // groups, kh, kw)).astype(dtype)
    dy = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, weight, rng.standard_normal(o).astype(dtype), dy


def twins_agree(kernel, make_out, args):
    results = []
    for twin in (kernel.serial, kernel.parallel):
        out = make_out()
        twin(*args(out))
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_TWINS, ids=[case[0] for case in CONV_TWINS])
def test_conv_twins_agree_bit_for_bit(case, dtype):
    _, n, c, h, w, o, kh, kw, geometry = case
    x, weight, bias, dy = conv_operands(dtype, n, c, h, w, o, kh, kw, geometry)
    sh, sw, dh, dw, pt, pl, groups = geometry
    new = lambda shape: lambda: np.full(shape, np.nan, dtype)  # noqa: E731
    twins_agree(conv.forward, new(dy.shape), lambda out: (x, weight, bias, out, *geometry))
    twins_agree(conv.input_grad, new(x.shape), lambda out: (dy, weight, out, *geometry))
    twins_agree(conv.weight_grad, new(weight.shape), lambda out: (x, dy, out, *geometry))
    if sh == sw == 1:
        flat = (dh, dw, pt, pl, groups)
        twins_agree(conv.forward_flat, new(dy.shape), lambda out: (x, weight, bias, out, *flat))
        twins_agree(conv.weight_grad_flat, new(weight.shape), lambda out: (x, dy, out, *flat, 2))
