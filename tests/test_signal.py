import itertools
import re
import sys
import tracemalloc

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

import fastcorr as fc
import naive
from layouts import layouts

MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "wrap", "symm"]
KERNEL_DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64,
                 np.float32, np.float64, np.complex64, np.complex128]



def assert_same(actual, expected, rtol=None):
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    if rtol is None:
        rtol = 2e-5 if actual.dtype in (np.float32, np.complex64) else 1e-12
    if actual.dtype.kind in "iu":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(1.0, np.abs(expected).max(initial=0)))


def sample(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -100), min(info.max, 100), shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# The chapter's examples

def test_chapter_example():
    X = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(fc.corr2d(X, [[0.0, 1.0], [2.0, 3.0]]), [[19.0, 25.0], [37.0, 43.0]])


def edge_image():
    X = np.ones((6, 8), np.float32)
    X[:, 2:6] = 0
    return X


def test_chapter_vertical_edges():
    Y = fc.corr2d(edge_image(), np.array([[1.0, -1.0]], np.float32))
    expected = np.zeros((6, 7), np.float32)
    expected[:, 1] = 1
    expected[:, 5] = -1
    assert Y.dtype == np.float32
    np.testing.assert_array_equal(Y, expected)


def test_chapter_horizontal_edges_of_transposed_image():
    K = np.array([[1.0, -1.0]], np.float32)
    np.testing.assert_array_equal(fc.corr2d(edge_image().T, K), np.zeros((8, 5)))
    Y = fc.corr2d(edge_image().T, K.T)
    expected = np.zeros((7, 6), np.float32)
    expected[1, :] = 1
    expected[5, :] = -1
    np.testing.assert_array_equal(Y, expected)


# corr2d

@given(
    h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 12), kw=st.integers(1, 12),
    dtype=st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.float16, np.complex64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_corr2d_matches_the_chapter_loops(h, w, kh, kw, dtype, seed):
    kh, kw = min(kh, h), min(kw, w)
    rng = np.random.default_rng(seed)
    X, K = sample(rng, (h, w), dtype) if dtype != np.bool_ else rng.random((h, w)) > 0.5, sample(rng, (kh, kw), dtype) if dtype != np.bool_ else rng.random((kh, kw)) > 0.5
    expected = naive.corr2d(X.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64), K)
    Y = fc.corr2d(X, K)
    wanted = {np.float32: np.float32, np.float16: np.float32, np.complex64: np.complex64}.get(dtype, np.float64)
    assert Y.dtype == wanted
    assert_same(Y, expected.astype(wanted))


@pytest.mark.parametrize(
    "x_dtype, k_dtype, out_dtype",
    [
        (np.float32, np.float32, np.float32),
        (np.float16, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.float32, np.int64, np.float64),
        (np.int8, np.int8, np.float64),
        (np.bool_, np.bool_, np.float64),
        (np.uint64, np.int64, np.float64),
        (np.float32, np.complex64, np.complex64),
        (np.float64, np.complex64, np.complex128),
        (np.longdouble, np.float64, np.float64),
    ],
)
def test_corr2d_dtype_rule(x_dtype, k_dtype, out_dtype):
    Y = fc.corr2d(np.ones((4, 5), x_dtype), np.ones((2, 2), k_dtype))
    assert Y.dtype == out_dtype
    np.testing.assert_array_equal(Y, np.full((3, 4), 4))


def test_corr2d_accepts_lists_and_returns_a_new_array():
    X = [[1, 2, 3], [4, 5, 6]]
    Y = fc.corr2d(X, [[1, 1]])
    np.testing.assert_array_equal(Y, [[3.0, 5.0], [9.0, 11.0]])
    assert Y.dtype == np.float64


def test_corr2d_integers_do_not_wrap():
    X = np.full((3, 3), 100, np.int8)
    np.testing.assert_array_equal(fc.corr2d(X, X), [[90000.0]])


def test_corr2d_out_buffer_is_reused(rng):
    X, K = rng.standard_normal((30, 40)), rng.standard_normal((3, 5))
    out = np.full((28, 36), np.nan)
    assert fc.corr2d(X, K, out=out) is out
    assert_same(out, naive.corr2d(X, K))


@pytest.mark.parametrize(
    "out, exception, match",
    [
        (np.empty((3, 3)), ValueError, r"out must have shape \(2, 2\) and dtype float64"),
        (np.empty((2, 2), np.float32), ValueError, "out must have shape"),
        (np.empty((2, 4))[:, ::2], ValueError, "writeable C-contiguous"),
        ([[0.0, 0.0], [0.0, 0.0]], TypeError, "out must be a numpy.ndarray"),
    ],
)
def test_corr2d_bad_out(out, exception, match):
    with pytest.raises(exception, match=match):
        fc.corr2d(np.ones((3, 3)), np.ones((2, 2)), out=out)


def test_corr2d_out_may_not_alias_the_input():
    X = np.ones((4, 4))
    with pytest.raises(ValueError, match="must not share memory"):
        fc.corr2d(X, np.ones((1, 1)), out=X)


def test_corr2d_kernel_as_large_as_the_image(rng):
    X = rng.standard_normal((7, 5))
    assert_same(fc.corr2d(X, X), np.array([[np.sum(X * X)]]))


def test_corr2d_empty_kernel_dimension():
    np.testing.assert_array_equal(fc.corr2d(np.ones((3, 4)), np.ones((0, 2))), np.zeros((4, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((6, 8), (1, 2)), ((64, 64), (3, 3)), ((5, 4), (5, 4)), ((3, 4), (0, 2)), ((3, 4), (4, 1))])
def test_corr2d_common_case_equals_the_checked_path(dtype, shapes, rng):
    """C-ordered arrays of one native float dtype skip the checks: the same result bit for bit, the same errors."""
    X, K = (rng.standard_normal(shape).astype(dtype) for shape in shapes)
    checked = (np.asfortranarray(X), K.astype(K.dtype.newbyteorder()))  # same values, not the common case
    try:
        expected = fc.corr2d(*checked)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            fc.corr2d(X, K)
    else:
        got = fc.corr2d(X, K)
        assert got.dtype == expected.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)


# correlate2d and convolve2d against scipy and the loops

@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("mode, boundary", list(itertools.product(MODES, BOUNDARIES)))
@pytest.mark.parametrize("shapes", [((5, 6), (2, 3)), ((4, 4), (3, 3)), ((3, 7), (4, 2)), ((1, 3), (1, 9)), ((2, 3), (5, 6)),
                                    ((9, 11), (5, 5)), ((5, 8), (5, 5))])
def test_matches_naive_and_scipy(func, mode, boundary, shapes, rng):
    in1 = sample(rng, shapes[0], np.complex128)
    in2 = sample(rng, shapes[1], np.complex128)
    ours = getattr(fc, func)
    if mode == "valid" and not (np.all(np.greater_equal(*shapes)) or np.all(np.less_equal(*shapes))):
        with pytest.raises(ValueError, match="at least as large as the other in every dimension"):
            ours(in1, in2, mode)
        return
    result = ours(in1, in2, mode, boundary, 1.5 - 0.5j)
    assert_same(result, getattr(naive, func)(in1, in2, mode, boundary, 1.5 - 0.5j))
    reference = getattr(scipy.signal, func)(in1, in2, mode, boundary, 1.5 - 0.5j)
    if func == "correlate2d" and mode == "valid" and np.all(np.less_equal(*shapes)) and shapes[0] != shapes[1]:
        reference = np.conj(reference)
    assert_same(result, reference)


@pytest.mark.parametrize("dtype", KERNEL_DTYPES)
@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
def test_dtypes_match_scipy_bit_for_bit_on_integers(func, dtype, rng):
    in1 = sample(rng, (9, 11), dtype)
    in2 = sample(rng, (3, 4), dtype)
    for mode, boundary in itertools.product(MODES, BOUNDARIES):
        expected = getattr(scipy.signal, func)(in1, in2, mode, boundary, 7)
        assert_same(getattr(fc, func)(in1, in2, mode, boundary, 7), expected)


@pytest.mark.parametrize("dtypes", [(np.int8, np.uint8), (np.int16, np.float32), (np.float32, np.complex64), (np.uint64, np.int64), (np.int32, np.complex128)])
def test_mixed_dtypes_follow_result_type(dtypes, rng):
    in1, in2 = sample(rng, (6, 6), dtypes[0]), sample(rng, (3, 2), dtypes[1])
    out = fc.correlate2d(in1, in2)
    assert out.dtype == np.result_type(*dtypes)
    assert_same(out, scipy.signal.correlate2d(in1, in2))


def test_integer_results_wrap_around_like_scipy():
    a = np.full((3, 3), 100, np.int8)
    out = fc.correlate2d(a, a)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, scipy.signal.correlate2d(a, a))
    assert out[2, 2] == np.int8(np.int64(90000).astype(np.int8))


@given(
    shape1=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    shape2=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    mode=st.sampled_from(MODES),
    boundary=st.sampled_from(BOUNDARIES + ["pad", "circular", "symmetric"]),
    fillvalue=st.one_of(st.integers(-5, 5), st.floats(-3, 3, allow_nan=False)),
    dtype=st.sampled_from([np.float64, np.float32, np.int32, np.complex128]),
    convolve=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_against_scipy(shape1, shape2, mode, boundary, fillvalue, dtype, convolve, seed):
    rng = np.random.default_rng(seed)
    in1, in2 = sample(rng, shape1, dtype), sample(rng, shape2, dtype)
    name = "convolve2d" if convolve else "correlate2d"
    try:
        expected = getattr(scipy.signal, name)(in1, in2, mode, boundary, fillvalue)
    except ValueError as exc:
        with pytest.raises(ValueError, match="at least as large"):
            getattr(fc, name)(in1, in2, mode, boundary, fillvalue)
        assert "at least as large" in str(exc)
        return
    if not convolve and dtype == np.complex128 and mode == "valid" and shape1 != shape2 and all(np.less_equal(shape1, shape2)):
        expected = np.conj(expected)
    assert_same(getattr(fc, name)(in1, in2, mode, boundary, fillvalue), expected)


@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
def test_every_layout_gives_the_same_answer(func, rng):
    in1, in2 = sample(rng, (13, 17), np.float64), sample(rng, (4, 3), np.float64)
    expected = getattr(scipy.signal, func)(in1, in2, "same", "symm")
    for (name1, a), (name2, b) in itertools.product(layouts(in1), layouts(in2)):
        before = a.copy(), b.copy()
        assert_same(getattr(fc, func)(a, b, "same", "symm"), expected)
        np.testing.assert_array_equal(a, before[0], err_msg=f"{name1} input modified")
        np.testing.assert_array_equal(b, before[1], err_msg=f"{name2} kernel modified")


def test_corr2d_every_layout(rng):
    X, K = sample(rng, (20, 30), np.float32), sample(rng, (3, 3), np.float32)
    expected = naive.corr2d(X, K).astype(np.float32)
    for (_, a), (_, b) in itertools.product(layouts(X), layouts(K)):
        assert_same(fc.corr2d(a, b), expected)


def test_swapped_complex_valid_correlation_is_the_true_correlation(rng):
    small, large = sample(rng, (2, 3), np.complex128), sample(rng, (5, 6), np.complex128)
    ours = fc.correlate2d(small, large, "valid")
    assert_same(ours, naive.correlate2d(small, large, "valid"))
    assert_same(ours, np.conj(scipy.signal.correlate2d(small, large, "valid")))
    real_small, real_large = small.real.copy(), large.real.copy()
    assert_same(fc.correlate2d(real_small, real_large, "valid"), scipy.signal.correlate2d(real_small, real_large, "valid"))


def test_long_kernels_extend_the_boundary_repeatedly():
    image = np.array([[2.0, -1.0, 3.0, 4.0]])
    kernel = np.ones((1, 21))
    np.testing.assert_array_equal(fc.correlate2d(image, kernel, "same", "symm"), [[37.0, 42.0, 44.0, 45.0]])
    np.testing.assert_array_equal(fc.convolve2d(image, kernel, "same", "wrap"), [[43.0, 44.0, 42.0, 39.0]])


def test_fillvalue_casting_follows_scipy():
    np.testing.assert_array_equal(fc.correlate2d([[1]], [[1, 1]], fillvalue=2.7), [[3, 3]])
    assert np.isnan(fc.correlate2d(np.ones((1, 1)), np.ones((1, 2)), fillvalue=None)).all()
    np.testing.assert_array_equal(fc.correlate2d(np.ones((1, 1)), np.ones((1, 2)), fillvalue=np.array([[3.0]])), [[4.0, 4.0]])
    np.testing.assert_array_equal(fc.correlate2d(np.ones((1, 1)), np.ones((1, 2)), "full", "wrap", fillvalue=[1, 2]), [[2.0, 2.0]])


def test_nan_and_inf_propagate_where_the_maths_puts_them():
    x = np.zeros((5, 5))
    x[2, 2] = np.nan
    x[0, 4] = np.inf
    out = fc.correlate2d(x, np.ones((3, 3)), "valid")
    expected = scipy.signal.correlate2d(x, np.ones((3, 3)), "valid")
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(out, expected)
    assert np.isnan(out).all() and np.isnan(out[0, 2])
    corr = fc.corr2d(x, np.ones((1, 1)))
    np.testing.assert_array_equal(corr, x)
    inf_kernel = np.array([[np.inf]])
    np.testing.assert_array_equal(fc.correlate2d(np.ones((2, 2)), inf_kernel, "full"), np.full((2, 2), np.inf))


@pytest.mark.parametrize("kernel", [(5, 4), (5, 5)])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_large_image_parallel_path(boundary, kernel, rng):
    in1, in2 = sample(rng, (300, 257), np.float32), sample(rng, kernel, np.float32)
    for mode in MODES:
        expected = scipy.signal.correlate2d(in1.astype(np.float64), in2.astype(np.float64), mode, boundary)
        assert_same(fc.correlate2d(in1, in2, mode, boundary), expected.astype(np.float32), rtol=1e-4)


@pytest.mark.parametrize("shapes", [((3, 5000), (2, 7)), ((7, 2100), (5, 5)), ((9, 2100), (3, 3)), ((8, 700), (4, 6)),
                                    ((2, 2100), (2, 150)), ((1, 40), (1, 300))],
                         ids=["edge columns one by one", "5x5 in one pass", "3x3 two rows per pass",
                              "two rows per first pass", "extended rows", "dot products"])
def test_wide_rows_cross_column_blocks(shapes, rng):
    in1, in2 = sample(rng, shapes[0], np.float64), sample(rng, shapes[1], np.float64)
    for mode, boundary in itertools.product(MODES, BOUNDARIES):
        assert_same(fc.convolve2d(in1, in2, mode, boundary, 2.0), scipy.signal.convolve2d(in1, in2, mode, boundary, 2.0))


def test_empty_inputs():
    np.testing.assert_array_equal(fc.correlate2d(np.ones((0, 2)), np.ones((3, 2)), fillvalue=2), np.full((2, 3), 12.0))
    np.testing.assert_array_equal(fc.correlate2d(np.ones((2, 2)), np.ones((0, 2))), np.zeros((1, 3)))
    assert fc.convolve2d(np.ones((0, 2)), np.ones((3, 2)), "same").shape == (0, 2)
    with pytest.raises(ValueError, match="boundary='circular' cannot extend an empty in1"):
        fc.correlate2d(np.ones((0, 2)), np.ones((3, 2)), boundary="circular")
    with pytest.raises(ValueError, match="give no output"):
        fc.correlate2d(np.ones((0, 0)), np.ones((0, 0)))


# method="fft"

@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_fft_method_agrees_with_direct(func, mode, dtype, rng):
    in1, in2 = sample(rng, (37, 41), dtype), sample(rng, (9, 12), dtype)
    direct = getattr(fc, func)(in1, in2, mode, fillvalue=0.5, method="direct")
    fft = getattr(fc, func)(in1, in2, mode, fillvalue=0.5, method="fft")
    assert_same(fft, direct, rtol=1e-4 if dtype == np.float32 else 1e-10)


# corr2d_grad

@given(
    h=st.integers(1, 8), w=st.integers(1, 8), kh=st.integers(1, 8), kw=st.integers(1, 8),
    dtype=st.sampled_from([np.float64, np.complex128]), seed=st.integers(0, 2**32 - 1),
)
def test_corr2d_grad_matches_the_chain_rule(h, w, kh, kw, dtype, seed):
    kh, kw = min(kh, h), min(kw, w)
    rng = np.random.default_rng(seed)
    X, K, dY = sample(rng, (h, w), dtype), sample(rng, (kh, kw), dtype), sample(rng, (h - kh + 1, w - kw + 1), dtype)
    dX, dK = fc.corr2d_grad(X, K, dY)
    eX, eK = naive.corr2d_grad(X, K, dY)
    assert_same(dX, eX)
    assert_same(dK, eK)
    # Adjoint identity: <corr2d(X, K), dY> == <X, dX> == <K, dK>
    np.testing.assert_allclose(np.sum(fc.corr2d(X, K) * dY), np.sum(X * dX), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.sum(fc.corr2d(X, K) * dY), np.sum(K * dK), rtol=1e-10, atol=1e-10)


def test_corr2d_grad_finite_differences(rng):
    X, K = rng.standard_normal((7, 9)), rng.standard_normal((3, 4))
    dY = rng.standard_normal((5, 6))
    dX, dK = fc.corr2d_grad(X, K, dY)

    def loss(X, K):
        return np.sum(fc.corr2d(X, K) * dY)

    eps = 1e-6
    for idx in itertools.product(range(7), range(9)):
        E = np.zeros_like(X)
        E[idx] = eps
        assert (loss(X + E, K) - loss(X - E, K)) / (2 * eps) == pytest.approx(dX[idx], rel=1e-6, abs=1e-6)
    for idx in itertools.product(range(3), range(4)):
        E = np.zeros_like(K)
        E[idx] = eps
        assert (loss(X, K + E) - loss(X, K - E)) / (2 * eps) == pytest.approx(dK[idx], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("padded_bytes", [0, 1 << 20], ids=["border loops", "padded copy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize("spoiled", ["finite", "dY", "K"])
def test_corr2d_grad_dx_either_way_puts_inf_and_nan_where_the_loops_do(padded_bytes, dtype, spoiled, monkeypatch, rng):
    """dX over a zero-padded copy of dY (small calls) or on the border loops (large ones): the
    chain rule's values, and an inf or NaN of dY or K exactly where the plain loops put it."""
    monkeypatch.setattr(fc.signal, "_PADDED_BYTES", padded_bytes)
    X, K, dY = sample(rng, (9, 11), dtype), sample(rng, (3, 4), dtype), sample(rng, (7, 8), dtype)
    if spoiled == "dY":
        dY[0, 0], dY[3, 5] = np.inf, np.nan
    elif spoiled == "K":
        K[2, 3] = -np.inf
    with np.errstate(invalid="ignore"):
        dX, _ = fc.corr2d_grad(X, K, dY)
        eX = naive.corr2d_grad(X, K, dY)[0].astype(dX.dtype)
    assert_same_nonfinite(dX, eX)
    finite = np.isfinite(eX)
    assert_same(dX[finite], eX[finite])
    assert bool(finite.all()) is (spoiled == "finite")


def test_corr2d_grad_float32_stays_float32(rng):
    X = rng.standard_normal((64, 64)).astype(np.float32)
    K = rng.standard_normal((3, 3)).astype(np.float32)
    dY = rng.standard_normal((62, 62)).astype(np.float32)
    dX, dK = fc.corr2d_grad(X, K, dY)
    assert dX.dtype == dK.dtype == np.float32
    eX, eK = naive.corr2d_grad(X.astype(np.float64), K.astype(np.float64), dY.astype(np.float64))
    assert_same(dX, eX.astype(np.float32), rtol=1e-4)
    assert_same(dK, eK.astype(np.float32), rtol=1e-4)


# Bad input: every path names the argument and the fix

BAD_INPUTS = [
    (fc.corr2d, (None, [[1]]), {}, TypeError, "X must be an array-like of numbers, got None"),
    (fc.corr2d, ([[1]], None), {}, TypeError, "K must be an array-like of numbers, got None"),
    (fc.corr2d, ([1, 2, 3], [[1]]), {}, ValueError, r"corr2d: X must be 2-D, got shape \(3,\)"),
    (fc.corr2d, ([[1]], np.ones((1, 1, 1))), {}, ValueError, "K must be 2-D"),
    (fc.corr2d, (np.ones((3, 3)), np.ones((4, 1))), {}, ValueError, "kernel K of shape .* is larger than X"),
    (fc.corr2d, (np.ones((3, 3)), np.ones((1, 4))), {}, ValueError, "use correlate2d"),
    (fc.corr2d, (np.array([["a"]]), [[1]]), {}, TypeError, "X must hold numbers .* got dtype <U1"),
    (fc.corr2d, (np.ones((2, 2), object), [[1]]), {}, TypeError, "X must hold numbers"),
    (fc.corr2d, (np.ones((2, 2), "M8[s]"), [[1]]), {}, TypeError, "X must hold numbers"),
    (fc.corr2d, ([[1, 2], [3]], [[1]]), {}, TypeError, "X must be an array-like of numbers"),
    (fc.correlate2d, (np.ones(3), np.ones((2, 2))), {}, ValueError, "correlate2d inputs must both be 2-D arrays"),
    (fc.convolve2d, (None, np.ones((2, 2))), {}, ValueError, "convolve2d inputs must both be 2-D arrays"),
    (fc.correlate2d, (np.ones((2, 3)), np.ones((3, 2)), "valid"), {}, ValueError, "at least as large as the other"),
    (fc.correlate2d, (np.ones((2, 2)), np.ones((2, 2)), "bad"), {}, ValueError, "Acceptable mode flags .* got mode='bad'"),
    (fc.correlate2d, (np.ones((2, 2)), np.ones((2, 2)), "full", "reflect"), {}, ValueError, "Acceptable boundary flags"),
    (fc.correlate2d, (np.ones((2, 2)), np.ones((2, 2)), "full", None), {}, ValueError, "got boundary=None"),
    (fc.correlate2d, (np.ones((2, 2)), np.ones((2, 2))), {"method": "fast"}, ValueError, "method must be one of 'auto', 'direct', 'fft'"),
    (fc.correlate2d, (np.ones((2, 2), bool), np.ones((2, 2), bool)), {}, ValueError, "not available for dtype bool"),
    (fc.convolve2d, (np.ones((2, 2), np.float16), np.ones((2, 2), np.float16)), {}, ValueError, "not available for dtype float16.*cast the inputs"),
    (fc.correlate2d, (np.ones((2, 2), object), np.ones((2, 2))), {}, ValueError, "not available for dtype object"),
    (fc.correlate2d, (np.ones((2, 2), np.longdouble), np.ones((2, 2))), {}, ValueError, "not available for dtype float128"),
    (fc.correlate2d, ([[1]], [[1, 2]]), {"fillvalue": 1j}, ValueError, "could not cast `fillvalue` directly to the output type"),
    (fc.correlate2d, ([[1]], [[1, 2]]), {"fillvalue": -1.0 * 2**70}, ValueError, "could not cast `fillvalue`"),
    (fc.correlate2d, (np.ones((1, 1), np.uint8), np.ones((1, 2), np.uint8)), {"fillvalue": -1}, ValueError, "could not cast `fillvalue`"),
    (fc.correlate2d, ([[1]], [[1, 2]]), {"fillvalue": [1, 2]}, ValueError, "`fillvalue` must be scalar or an array with one element"),
    (fc.correlate2d, ([[1]], [[1, 2]]), {"fillvalue": []}, ValueError, "`fillvalue` cannot be an empty array"),
    (fc.correlate2d, ([[1]], [[1, 2]]), {"fillvalue": np.array([1, 2])}, ValueError,
     "`fillvalue` must be scalar or an array with one element"),
    (fc.convolve2d, ([[1.0]], [[1, 2]]), {"fillvalue": object()}, TypeError, "`fillvalue` must be a number, got object"),
    (fc.correlate2d, (np.ones((3, 3)), np.ones((2, 2))), {"boundary": "wrap", "method": "fft"}, ValueError, "method='fft' supports boundary='fill' only"),
    (fc.correlate2d, (np.ones((3, 3), int), np.ones((2, 2), int)), {"method": "fft"}, ValueError, "method='fft' needs float or complex inputs"),
    (fc.corr2d_grad, (np.ones((3, 3)), np.ones((2, 2)), np.ones((3, 3))), {}, ValueError, r"dY must have the shape of corr2d\(X, K\), \(2, 2\)"),
    (fc.corr2d_grad, (np.ones((3, 3)), np.ones((4, 2)), np.ones((1, 1))), {}, ValueError, "larger than X"),
    (fc.corr2d_grad, (np.ones((3, 3)), np.ones((2, 2)), None), {}, TypeError, "dY must be an array-like"),
]


@pytest.mark.parametrize("func, args, kwargs, exception, match", BAD_INPUTS)
def test_bad_input(func, args, kwargs, exception, match):
    with pytest.raises(exception, match=match):
        func(*args, **kwargs)


# Memory: the output is the only large allocation

@pytest.mark.parametrize(
    "call",
    [
        lambda x, k, dy: fc.corr2d(x, k),
        lambda x, k, dy: fc.correlate2d(x, k, "same", "symm"),
        lambda x, k, dy: fc.convolve2d(x, k, "full", "wrap"),
        lambda x, k, dy: fc.corr2d_grad(x, k, dy),
    ],
    ids=["corr2d", "correlate2d", "convolve2d", "corr2d_grad"],
)
def test_no_temporaries_beyond_the_output(call):
    x = np.ones((1024, 1024), np.float32)
    k = np.ones((3, 3), np.float32)
    dy = np.ones((1022, 1022), np.float32)
    call(x, k, dy)
    tracemalloc.start()
    try:
        result = call(x, k, dy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    outputs = sum(r.nbytes for r in (result if isinstance(result, tuple) else (result,)))
    assert peak <= outputs + 0.25 * x.nbytes


@pytest.mark.parametrize(
    "shape, kernel, dtype, boundary, expect_fft",
    [
        ((300, 300), (40, 40), np.float64, "fill", True),
        ((300, 300), (40, 40), np.complex64, "fill", True),
        ((300, 300), (3, 3), np.float64, "fill", False),
        ((300, 300), (40, 40), np.int64, "fill", False),
        ((300, 300), (40, 40), np.float64, "symm", False),
    ],
)
def test_auto_method_takes_the_fft_only_where_it_pays(monkeypatch, shape, kernel, dtype, boundary, expect_fft, rng):
    from fastcorr import signal

    calls = []
    original = signal._fft_correlate
    monkeypatch.setattr(signal, "_fft_correlate", lambda *args: calls.append(1) or original(*args))
    in1, in2 = sample(rng, shape, dtype), sample(rng, kernel, dtype)
    auto = fc.correlate2d(in1, in2, "same", boundary, fillvalue=2)
    assert bool(calls) == expect_fft
    direct = fc.correlate2d(in1, in2, "same", boundary, fillvalue=2, method="direct")
    assert_same(auto, direct, rtol=1e-3 if dtype == np.complex64 else 1e-9)


def test_fft_method_without_scipy_uses_numpy(monkeypatch, rng):
    monkeypatch.setitem(sys.modules, "scipy.fft", None)
    in1, in2 = sample(rng, (50, 61), np.float64), sample(rng, (9, 12), np.float64)
    assert_same(fc.convolve2d(in1, in2, method="fft"), fc.convolve2d(in1, in2, method="direct"), rtol=1e-9)


# method="auto" and the FFT: no other answer than direct's beyond the documented rounding

def fft_bound(in1, in2, fillvalue, dtype):
    """correlate2d's documented FFT accuracy: eps * log2((M1 + M2)(N1 + N2)) * max|ext(in1)| * sum|in2|."""
    (h, w), (kh, kw) = in1.shape, in2.shape
    largest = max(np.abs(in1).max(initial=0), abs(fillvalue))
    return np.finfo(dtype).eps * np.log2((h + kh) * (w + kw)) * largest * np.abs(in2).sum()


def assert_same_nonfinite(actual, expected):
    for part in (np.real, np.imag):
        for name, test in [("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)]:
            np.testing.assert_array_equal(test(part(actual)), test(part(expected)), err_msg=f"{name} positions")


@pytest.mark.parametrize("where, value", [("in1", np.nan), ("in1", np.inf), ("in2", np.inf), ("in2", -np.nan)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_keeps_nan_and_inf_where_direct_puts_them(where, value, dtype, rng):
    in1, in2 = sample(rng, (160, 150), dtype), sample(rng, (41, 41), dtype)
    (in1 if where == "in1" else in2)[20, 30] = value
    auto = fc.correlate2d(in1, in2)
    direct = fc.correlate2d(in1, in2, method="direct")
    assert where == "in2" or np.isfinite(direct).mean() > 0.5
    assert_same_nonfinite(auto, direct)
    assert_same_nonfinite(auto, scipy.signal.correlate2d(in1, in2))


def test_auto_keeps_integer_inputs_exact(rng):
    in1 = rng.integers(0, 2**20, (120, 130), dtype=np.uint64)
    in2 = rng.integers(-(2**10), 2**10, (41, 41), dtype=np.int64)
    expected = scipy.signal.correlate2d(in1, in2, "valid")
    assert expected.dtype == np.float64
    np.testing.assert_array_equal(fc.correlate2d(in1, in2, "valid"), expected)


@pytest.mark.parametrize("method", ["auto", "fft"])
@pytest.mark.parametrize("mode", MODES)
def test_large_fill_values_do_not_cancel(mode, method, rng):
    in1, in2 = sample(rng, (150, 160), np.float32), sample(rng, (41, 41), np.float32)
    got = fc.correlate2d(in1, in2, mode, fillvalue=1e6, method=method)
    exact = scipy.signal.correlate2d(in1.astype(np.float64), in2.astype(np.float64), mode, fillvalue=1e6)
    if mode == "valid" or method == "auto":
        # The fill is never read ('valid'), or auto keeps a fill far above the image's values
        # away from the FFT: each output is as accurate as its own terms allow.
        terms = scipy.signal.correlate2d(np.abs(in1.astype(np.float64)), np.abs(in2.astype(np.float64)), mode,
                                         fillvalue=1e6)
        tolerance = in2.size * np.finfo(np.float32).eps * terms
    else:
        tolerance = fft_bound(in1, in2, 1e6, np.float32)
    assert (np.abs(got - exact) <= tolerance).all()


@pytest.mark.parametrize("fillvalue", [np.nan, np.inf, 1e30])
def test_auto_with_a_fill_it_cannot_bound_runs_direct(fillvalue, rng):
    in1, in2 = sample(rng, (160, 150), np.float64), sample(rng, (41, 41), np.float64)
    auto = fc.correlate2d(in1, in2, "same", fillvalue=fillvalue)
    direct = fc.correlate2d(in1, in2, "same", fillvalue=fillvalue, method="direct")
    np.testing.assert_array_equal(auto, direct)


@given(
    shape1=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    shape2=st.tuples(st.integers(1, 25), st.integers(1, 25)),
    mode=st.sampled_from(MODES), convolve=st.booleans(),
    fillvalue=st.sampled_from([0, 0.5, -3.0, 1e4]),
    dtype=st.sampled_from([np.float32, np.float64, np.complex64, np.complex128]),
    scale=st.sampled_from([1.0, 1e-3, 1e20]), seed=st.integers(0, 2**32 - 1),
)
def test_fft_meets_its_documented_bound(shape1, shape2, mode, convolve, fillvalue, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    in1, in2 = sample(rng, shape1, dtype) * dtype(scale), sample(rng, shape2, dtype)
    if mode == "valid" and not (shape1[0] >= shape2[0] and shape1[1] >= shape2[1]):
        in1, in2 = in2, in1
        if not (in1.shape[0] >= in2.shape[0] and in1.shape[1] >= in2.shape[1]):
            mode = "full"
    func = fc.convolve2d if convolve else fc.correlate2d
    exact = (scipy.signal.convolve2d if convolve else scipy.signal.correlate2d)(
        in1.astype(np.clongdouble), in2.astype(np.clongdouble), mode, fillvalue=fillvalue)
    got = func(in1, in2, mode, fillvalue=fillvalue, method="fft")
    assert got.dtype == np.dtype(dtype)
    assert np.abs(got - exact).max(initial=0) <= fft_bound(in1, in2, fillvalue, dtype)


def test_fft_method_spreads_nan_as_documented(rng):
    in1, in2 = sample(rng, (30, 30), np.float64), sample(rng, (5, 5), np.float64)
    in1[3, 3] = np.nan
    assert np.isnan(fc.correlate2d(in1, in2, method="fft")).all()


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_corr2d_grad_follows_the_chain_rule_for_nonfinite_kernels(bad, dtype, twin, rng):
    X, K, dY = sample(rng, (6, 7), dtype), sample(rng, (3, 2), dtype), sample(rng, (4, 6), dtype)
    K[0, 1] = bad
    dX, dK = fc.corr2d_grad(X, K, dY)
    with np.errstate(invalid="ignore"):
        expected_dX, expected_dK = naive.corr2d_grad(X, K, dY)
    for got, expected in [(dX, expected_dX), (dK, expected_dK.astype(dK.dtype))]:
        assert_same_nonfinite(got, expected)
        finite = np.isfinite(expected)
        assert finite.any()
        assert_same(got[finite], expected[finite].astype(got.dtype))


def test_corr2d_grad_is_finite_where_the_chain_rule_is():
    dX, _ = fc.corr2d_grad(np.arange(9.0).reshape(3, 3), [[np.inf, 1], [2, 3]], np.ones((2, 2)))
    assert dX[2, 2] == 3.0
    np.testing.assert_array_equal(np.isinf(dX), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("spoiled", ["nothing", "x", "k"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tall_kernels_on_the_register_tile_match_scipy_with_extremes_inf_and_nan(spoiled, dtype, rng):
    """Kernels of 7 rows or more run their interior on the register tile when X is finite: extreme
    magnitudes sum as scipy's, an inf or NaN in X sends the call to the row loop, one in K stays
    where the products put it."""
    big = 1e18 if dtype == np.float32 else 1e150
    X = sample(rng, (40, 80), dtype) * np.where(rng.random((40, 80)) < 0.1, big, 1).astype(dtype)
    K = sample(rng, (9, 7), dtype)
    if spoiled == "x":
        X[10, 20], X[30, 61] = np.inf, np.nan
    elif spoiled == "k":
        K[4, 3], K[0, 6] = np.inf, -np.inf
    for mode, boundary in [("valid", "fill"), ("same", "symm"), ("full", "wrap")]:
        got = fc.correlate2d(X, K, mode, boundary, method="direct")
        expected = scipy.signal.correlate2d(X.astype(np.float64), K.astype(np.float64), mode, boundary)
        assert_same_nonfinite(got, expected.astype(dtype))
        finite = np.isfinite(expected)
        rtol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got[finite], expected[finite], rtol=rtol, atol=rtol * np.abs(expected[finite]).max(initial=0))
