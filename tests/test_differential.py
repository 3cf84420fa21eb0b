"""fastcorr against scipy.signal and torch over drawn inputs: shapes, modes, boundaries, fill
values (large and non-finite among them), dtypes, memory layouts, NaN and inf anywhere,
``method``, and both kernel twins. Seeded (the hypothesis profile is derandomised), so a
failure reproduces; each run is small, so the module fits in the suite's time.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcorr as fc
import naive
from fastcorr import conv
from fastcorr._kernels import conv as _conv
from fastcorr._kernels import simd
from layouts import layouts
from test_conv import conv_problems, operands, resolved_pads, torch_reference
from test_signal import assert_same_nonfinite, fft_bound
from twins import run_as

DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64,
          np.float32, np.float64, np.complex64, np.complex128]
#: The parallel twins are drawn for these only: each dtype is one more compile.
PARALLEL_DTYPES = [np.int32, np.float32, np.float64, np.complex128]
LAYOUTS = [name for name, _ in layouts(np.zeros((2, 2)))]
SPECIALS = [np.nan, np.inf, -np.inf]


@contextlib.contextmanager
def tiny_calls(allowed: bool):
    """Whether small conv calls may run plane by plane on the correlation loop (else the blocked loops)."""
    saved = conv._TINY_WORK
    conv._TINY_WORK = saved if allowed else 0
    try:
        yield
    finally:
        conv._TINY_WORK = saved


def laid_out(a, name):
    return dict(layouts(a))[name]


def sample(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -20), min(info.max, 20), shape, endpoint=True).astype(dtype)
    values = rng.standard_normal(shape) * 4
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def spoil(rng, a, count):
    """Put ``count`` NaN or inf values at random places of a float or complex ``a``."""
    if a.dtype.kind not in "fc" or a.size == 0:
        return a
    for _ in range(count):
        a.reshape(-1)[rng.integers(a.size)] = SPECIALS[rng.integers(len(SPECIALS))]
    return a


def assert_matches(got, expected):
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    if got.dtype.kind in "iu":
        np.testing.assert_array_equal(got, expected)
        return
    assert_same_nonfinite(got, expected)
    finite = np.isfinite(expected)
    rtol = 1e-4 if got.dtype in (np.float32, np.complex64) else 1e-10
    scale = max(1.0, np.abs(expected[finite]).max(initial=0))
    np.testing.assert_allclose(got[finite], expected[finite], rtol=rtol, atol=rtol * scale)


@st.composite
def signal_calls(draw):
    parallel = draw(st.booleans())
    dtype = np.dtype(draw(st.sampled_from(PARALLEL_DTYPES if parallel else DTYPES)))
    size = draw(st.sampled_from(["small", "wide rows", "large kernel"]))
    if size == "small":
        shape1 = (draw(st.integers(0, 24)), draw(st.integers(0, 24)))
    elif size == "wide rows":  # the tiles that take two output rows at once
        shape1 = (draw(st.integers(0, 6)), draw(st.integers(380, 420)))
    else:  # where method='auto' weighs the FFT, and tall kernels take the register tile
        shape1 = (draw(st.integers(30, 60)), draw(st.integers(30, 90)))
    side = (18, 30) if size == "large kernel" else (1, 6)
    shape2 = (draw(st.integers(*side)), draw(st.integers(*side)))
    fill = draw(st.sampled_from([0, 2, -1.5, 1e30, np.nan, np.inf, -np.inf]))
    return dict(
        twin="parallel" if parallel else "serial",
        dtype=dtype, shape1=shape1, shape2=shape2, fill=fill,
        mode=draw(st.sampled_from(["full", "same", "valid"])),
        # scipy dies of SIGFPE extending an empty in1 by 'wrap' or 'symm'
        boundary=draw(st.sampled_from(["fill", "wrap", "symm"] if min(shape1) else ["fill"])),
        convolve=draw(st.booleans()),
        method=draw(st.sampled_from(["auto", "direct", "fft"])),
        layout1=draw(st.sampled_from(LAYOUTS)), layout2=draw(st.sampled_from(LAYOUTS)),
        spoiled=(draw(st.integers(0, 3)), draw(st.integers(0, 1))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=200)
@given(call=signal_calls())
def test_correlate2d_and_convolve2d_against_scipy(call):
    rng = np.random.default_rng(call["seed"])
    dtype = call["dtype"]
    in1 = spoil(rng, sample(rng, call["shape1"], dtype), call["spoiled"][0])
    in2 = spoil(rng, sample(rng, call["shape2"], dtype), call["spoiled"][1])
    name = "convolve2d" if call["convolve"] else "correlate2d"
    args = (call["mode"], call["boundary"], call["fill"])
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on the way to some of its errors
            expected = getattr(scipy.signal, name)(in1, in2, *args)
    except (ValueError, OverflowError):
        expected = None
    method = call["method"]
    a, b = laid_out(in1, call["layout1"]), laid_out(in2, call["layout2"])
    with run_as(call["twin"]):
        if expected is None:
            with pytest.raises(ValueError):
                getattr(fc, name)(a, b, *args, method=method)
            return
        if method == "fft" and (call["boundary"] != "fill" or dtype.kind not in "fc"):
            with pytest.raises(ValueError, match="method='fft'"):
                getattr(fc, name)(a, b, *args, method=method)
            return
        got = getattr(fc, name)(a, b, *args, method=method)
    if name == "correlate2d" and call["mode"] == "valid" and dtype.kind == "c" and in1.shape != in2.shape and (
            in1.shape[0] <= in2.shape[0] and in1.shape[1] <= in2.shape[1]):
        expected = np.conj(expected)  # scipy's swapped complex 'valid' correlation is conjugated
    if method == "fft":
        assert got.shape == expected.shape and got.dtype == expected.dtype
        fill_read = call["mode"] != "valid" and in1.size > 0
        if np.isfinite(in1).all() and np.isfinite(in2).all() and (np.isfinite(call["fill"]) or not fill_read):
            assert np.abs(got - expected).max(initial=0) <= fft_bound(in1, in2, call["fill"] if fill_read else 0, dtype)
        elif not np.isfinite(in1).all() or not np.isfinite(in2).all():
            assert np.isnan(got).all()  # documented: the FFT spreads an inf or NaN over every output
        return
    assert_matches(got, expected)


def assert_passes_match(got, torch, x, w, b, dy, kwargs):
    """``got``, conv2d and its two gradients: non-finite values where the products with the zero
    padding put them (torch's CPU backends disagree among themselves on an inf in dY next to the
    padding), finite ones torch's."""
    expected = torch_reference(torch, x, w, b, dy, kwargs)
    with np.errstate(invalid="ignore"):
        products = [naive.conv2d(x, w, b, **kwargs), naive.conv2d_input_grad(x.shape, w, dy, **kwargs),
                    naive.conv2d_weight_grad(x, w.shape, dy, **kwargs)]
    for g, e, p in zip(got, expected, products):
        assert_same_nonfinite(g, p.astype(g.dtype))
        both = np.isfinite(e) & np.isfinite(p)
        assert_matches(g[both], e[both])


@given(problem=conv_problems(), dtype=st.sampled_from([np.float32, np.float64]), bias=st.booleans(),
       spoiled=st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 1)),
       parallel=st.booleans(), blocked=st.booleans(), layout=st.sampled_from(["C", "negative strides", "byte-swapped"]),
       seed=st.integers(0, 2**32 - 1))
def test_conv2d_and_grads_against_torch(torch, problem, dtype, bias, spoiled, parallel, blocked, layout, seed):
    shapes, kwargs = problem
    rng = np.random.default_rng(seed)
    x, w, b, dy = operands(rng, shapes, kwargs, dtype)
    x, w, dy = spoil(rng, x, spoiled[0]), spoil(rng, w, spoiled[1]), spoil(rng, dy, spoiled[2])
    b = b if bias else None
    x4 = x if layout == "C" else laid_out(x.reshape(x.shape[0] * x.shape[1], -1), layout).reshape(x.shape)
    with run_as("parallel" if parallel else "serial"), tiny_calls(not blocked):
        got = [
            fc.conv2d(x4, w, b, **kwargs),
            fc.conv2d_input_grad(x.shape, w, dy, **kwargs),
            fc.conv2d_weight_grad(x4, w.shape, dy, **kwargs),
        ]
    assert_passes_match(got, torch, x, w, b, dy, kwargs)


@st.composite
def band_problems(draw):
    """3x3 and 5x5 stride-1 layers over few channels, with outputs of a block of rows and a vector
    of columns or more: the calls the channel band runs (forward and input gradient)."""
    k, groups = draw(st.sampled_from([3, 5])), draw(st.integers(1, 2))
    cg, og, pad = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, k // 2))
    oh = draw(st.integers(simd.CHANNEL_ROWS, simd.CHANNEL_ROWS + 9))
    ow = draw(st.integers(simd.lanes(4), simd.lanes(4) + 9))
    shapes = (1, groups * cg, oh + k - 1 - 2 * pad, ow + k - 1 - 2 * pad, groups * og, k, k)
    return shapes, dict(padding=pad, groups=groups)


@settings(max_examples=20)
@given(problem=band_problems(), dtype=st.sampled_from([np.float32, np.float64]), bias=st.booleans(),
       spoiled=st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 2)), parallel=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_conv2d_and_grads_on_the_channel_band_against_torch(torch, problem, dtype, bias, spoiled, parallel, seed):
    """The channel band's layers, NaN and inf in any operand: torch's finite values, the padding's
    products' non-finite ones."""
    shapes, kwargs = problem
    n, c, h, w_, o, k, _ = shapes
    assert _conv.band_fits((o, c // kwargs["groups"], k, k), (n, o, h + 2 * kwargs["padding"] - k + 1,
                                                                w_ + 2 * kwargs["padding"] - k + 1), 1, 1,
                           np.dtype(dtype).itemsize)
    rng = np.random.default_rng(seed)
    x, w, b, dy = operands(rng, shapes, kwargs, dtype)
    x, w, dy = spoil(rng, x, spoiled[0]), spoil(rng, w, spoiled[1]), spoil(rng, dy, spoiled[2])
    b = b if bias else None
    with run_as("parallel" if parallel else "serial"), tiny_calls(False):
        got = [fc.conv2d(x, w, b, **kwargs), fc.conv2d_input_grad(x.shape, w, dy, **kwargs),
               fc.conv2d_weight_grad(x, w.shape, dy, **kwargs)]
    assert_passes_match(got, torch, x, w, b, dy, kwargs)


@st.composite
def winograd_problems(draw):
    """3x3, stride-1, one-group layers: the calls Winograd can run."""
    padding = draw(st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)), st.sampled_from(["valid", "same"])))
    pads = [resolved_pads(padding if isinstance(padding, str) else padding[i], 3, 1) for i in range(2)]
    hw = [draw(st.integers(max(1, 3 - pads[i]), 14)) for i in range(2)]
    shapes = (draw(st.integers(1, 3)), draw(st.integers(1, 9)), *hw, draw(st.sampled_from([1, 2, 3, 8, 9, 17])), 3, 3)
    return shapes, dict(padding=padding)


@given(problem=winograd_problems(), dtype=st.sampled_from([np.float32, np.float64]), bias=st.booleans(),
       method=st.sampled_from(["auto", "winograd"]), spoiled=st.tuples(st.integers(0, 2), st.integers(0, 1)),
       parallel=st.booleans(), layout=st.sampled_from(["C", "negative strides", "byte-swapped"]),
       seed=st.integers(0, 2**32 - 1))
def test_conv2d_and_grads_by_winograd_against_torch(torch, problem, dtype, bias, method, spoiled, parallel, layout, seed):
    """Winograd asked for, on finite values; 'auto' with NaN and inf too (they land where direct puts them)."""
    shapes, kwargs = problem
    rng = np.random.default_rng(seed)
    x, w, b, dy = operands(rng, shapes, kwargs, dtype)
    if method == "auto":
        x, dy = spoil(rng, x, spoiled[0]), spoil(rng, dy, spoiled[1])
    b = b if bias else None
    x4 = x if layout == "C" else laid_out(x.reshape(x.shape[0] * x.shape[1], -1), layout).reshape(x.shape)
    with run_as("parallel" if parallel else "serial"):
        got = [fc.conv2d(x4, w, b, **kwargs, method=method),
               fc.conv2d_input_grad(x.shape, w, dy, **kwargs, method=method),
               fc.conv2d_weight_grad(x4, w.shape, dy, **kwargs, method=method)]
    assert_passes_match(got, torch, x, w, b, dy, kwargs)
