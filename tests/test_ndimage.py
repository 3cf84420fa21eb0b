"""fastcorr.ndimage against scipy.ndimage and naive.py: every mode, origin, axes, ndim and dtype,
the integer conversions of scipy's C code, complex inputs, NaN and inf, both kernel twins, and
scipy's errors for bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.ndimage as snd
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastcorr.ndimage as fnd
from fastcorr._kernels import corr
import naive
from layouts import layouts

MODES = list(fnd.MODES)
FUNCS = ["correlate", "convolve"]
#: Input dtypes drawn; integers and bools are summed in float64 as scipy sums them.
DTYPES = [np.float64, np.float32, np.int16, np.uint8, np.int32, np.int64, np.bool_]


def pads(func, weights_shape, origins):
    """How far before index 0 the first tap of the first output reads, per axis."""
    if func == "convolve":
        origins = [-o - (1 - n % 2) for o, n in zip(origins, weights_shape)]
    return [n // 2 + o for n, o in zip(weights_shape, origins)]


def scipy_reads_outside(func, mode, shape, weights_shape, origins):
    """scipy's 'reflect' reads outside the input for positions -2n*m, m >= 2 (a kernel reaching
    four lengths of the input back): no oracle there."""
    return mode in ("reflect", "grid-mirror") and any(
        p >= 4 * n for p, n in zip(pads(func, weights_shape, origins), shape))


def tolerance(x, w, cval, dtype):
    """float32 sums (fastcorr's) against float64 ones (scipy's): rounding of the terms' magnitude."""
    scale = (np.abs(np.asarray(x, np.float64)).max(initial=0) + abs(cval)) * np.abs(np.asarray(w, np.float64)).sum()
    eps = np.finfo(np.float32).eps * 4 if np.dtype(dtype) == np.float32 else np.finfo(np.float64).eps * 16
    return dict(rtol=eps, atol=eps * max(scale, 1.0))


@st.composite
def problems(draw, max_ndim=4):
    ndim = draw(st.integers(1, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    axes = None
    if ndim > 1 and draw(st.booleans()):
        count = draw(st.integers(1, ndim))
        axes = draw(st.permutations(range(ndim)))[:count]
        axes = [a - ndim if draw(st.booleans()) else a for a in axes]
    spanned = sorted(a % ndim for a in axes) if axes is not None else list(range(ndim))
    size = {a: draw(st.integers(1, shape[a] + 3)) for a in spanned}
    wshape = tuple(size[a] for a in spanned)
    order = origin_axes(axes, ndim)
    origin = [draw(st.integers(-(size[a] // 2), (size[a] - 1) // 2)) for a in order]
    if draw(st.booleans()) and len(set(origin)) == 1:
        origin = origin[0]
    return dict(shape=shape, axes=axes, wshape=wshape, origin=origin,
                mode=draw(st.sampled_from(MODES)), func=draw(st.sampled_from(FUNCS)),
                dtype=draw(st.sampled_from(DTYPES)), cval=draw(st.sampled_from([0.0, 2.5, -3.0])),
                output=draw(st.sampled_from([None, "dtype", "array", "float32"])),
                seed=draw(st.integers(0, 2**16)))


def origin_axes(axes, ndim):
    """The input axis of each origin, as scipy reads them: weights' dimensions follow the input's
    axes in order, and origins follow ``axes`` unless ``axes`` names every axis."""
    if axes is None or len(axes) == ndim:
        return list(range(ndim))
    return [a % ndim for a in axes]


def full_origins(p):
    origin = p["origin"]
    return [origin] * len(p["wshape"]) if np.ndim(origin) == 0 else origin


def filtered_shape(p):
    """The shape and origins along every input axis (size 1 and 0 off ``axes``)."""
    if p["axes"] is None:
        return p["wshape"], full_origins(p)
    ndim = len(p["shape"])
    spanned = sorted(a % ndim for a in p["axes"])
    shape, origins = [1] * ndim, [0] * ndim
    for a, n in zip(spanned, p["wshape"]):
        shape[a] = n
    for a, o in zip(origin_axes(p["axes"], ndim), full_origins(p)):
        origins[a] = o
    return shape, origins


def draw_arrays(p):
    rng = np.random.default_rng(p["seed"])
    dtype = np.dtype(p["dtype"])
    if dtype.kind == "b":
        x = rng.integers(0, 2, p["shape"]).astype(bool)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        x = rng.integers(max(info.min, -1000), min(info.max, 1000), p["shape"]).astype(dtype)
    else:
        x = (rng.standard_normal(p["shape"]) * 4).astype(dtype)
    integer = dtype.kind in "biu"
    w = rng.integers(-3, 4, p["wshape"]).astype(np.float64) if integer else rng.standard_normal(p["wshape"])
    return x, w


@settings(max_examples=300)
@given(problems())
def test_equals_scipy(p):
    """Any shape (1-D to 4-D), kernel (even, larger than the input), mode, origin, axes, dtype
    and output: scipy's values (integers exactly), dtype and shape."""
    x, w = draw_arrays(p)
    fshape, forigins = filtered_shape(p)
    assume(not scipy_reads_outside(p["func"], p["mode"], p["shape"], fshape, forigins))
    dtype = np.dtype(p["dtype"])
    kwargs = dict(mode=p["mode"], cval=p["cval"], origin=p["origin"], axes=p["axes"])
    if p["output"] == "dtype":
        out_dtype = np.int32 if dtype.kind in "biu" else np.float64
        ours, theirs = dict(output=out_dtype), dict(output=out_dtype)
    elif p["output"] == "float32":
        ours, theirs = dict(output="float32"), dict(output="float32")
    elif p["output"] == "array":
        out_dtype = np.int16 if dtype.kind in "biu" else np.float64
        ours, theirs = dict(output=np.full(x.shape, 9, out_dtype)), dict(output=np.zeros(x.shape, out_dtype))
    else:
        ours, theirs = {}, {}
    expected = getattr(snd, p["func"])(x, w, **kwargs, **theirs)
    result = getattr(fnd, p["func"])(x, w, **kwargs, **ours)
    if p["output"] == "array":
        assert result is ours["output"]
    assert result.dtype == expected.dtype and result.shape == expected.shape
    assert result.flags.c_contiguous
    if result.dtype.kind in "biu":
        np.testing.assert_array_equal(result, expected)
    else:
        np.testing.assert_allclose(result, expected, **tolerance(x, w, p["cval"], result.dtype))


@settings(max_examples=100)
@given(problems(max_ndim=3))
def test_equals_the_loops(p):
    """naive.py's loops, an oracle independent of scipy (and where scipy's 'reflect' reads past
    the input's end, the only one)."""
    x, w = draw_arrays(p)
    x = x.astype(np.float64)
    fshape, forigins = filtered_shape(p)
    weights = w.reshape(fshape)
    if p["func"] == "convolve":
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        forigins = [-o - (1 - n % 2) for o, n in zip(forigins, fshape)]
    expected = naive.ndimage_correlate(x, weights, p["mode"], p["cval"], forigins)
    result = getattr(fnd, p["func"])(x, w, mode=p["mode"], cval=p["cval"], origin=p["origin"], axes=p["axes"])
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("mode", ["reflect", "mirror"])
def test_kernels_many_times_longer_than_the_input_keep_reflecting(mode):
    x = np.array([1.0, 10.0, 100.0])
    w = np.arange(1.0, 32.0)
    for origin in (-15, 0, 15):
        expected = naive.ndimage_correlate(x, w, mode, 0.0, [origin])
        np.testing.assert_allclose(fnd.correlate(x, w, mode=mode, origin=origin), expected, rtol=1e-13)
    if mode == "mirror":
        np.testing.assert_allclose(fnd.correlate(x, w, mode=mode), snd.correlate(x, w, mode=mode), rtol=1e-13)


def test_grid_modes_are_the_plain_ones():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 6)), rng.standard_normal((3, 4))
    for grid, plain in [("grid-mirror", "reflect"), ("grid-constant", "constant"), ("grid-wrap", "wrap")]:
        np.testing.assert_array_equal(fnd.correlate(x, w, mode=grid, cval=2.0), fnd.correlate(x, w, mode=plain, cval=2.0))
        np.testing.assert_allclose(fnd.correlate(x, w, mode=grid, cval=2.0), snd.correlate(x, w, mode=grid, cval=2.0))


#: Values around every edge of scipy's double-to-integer conversions.
EDGES = np.array([-300.7, -129.5, -1.5, -0.5, 0.5, 1.5, 127.6, 255.9, 256.2, 65535.5, 65536.5, 3e9, -3e9, 5e9,
                  -5e9, 1e10, -1e10, 2.0**31, -(2.0**31) - 1, 2.0**63, -(2.0**63), -(2.0**63) - 4096, 1e19, -1e19,
                  2.0**64, -(2.0**64), 1e20, -1e20, np.nan, np.inf, -np.inf])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                                   np.bool_])
def test_integer_outputs_convert_as_scipy_does(dtype):
    """Truncation, wrap-around, and what a NaN, an inf or an overflow becomes, value for value."""
    expected = snd.correlate(EDGES, [1.0], output=dtype)
    np.testing.assert_array_equal(fnd.c_cast(EDGES, np.dtype(dtype)), expected)
    np.testing.assert_array_equal(fnd.correlate(EDGES, [1.0], output=dtype), expected)
    result = fnd.correlate(EDGES[:12].reshape(3, 4), np.ones((1, 1)), output=np.zeros((3, 4), dtype))
    np.testing.assert_array_equal(result, snd.correlate(EDGES[:12].reshape(3, 4), np.ones((1, 1)), output=dtype))


def test_integer_inputs_wrap_around_in_their_own_dtype():
    x = np.array([[200, 100, 250], [3, 0, 255]], np.uint8)
    w = np.array([[1, 1], [-2, 1]])
    for mode in MODES:
        np.testing.assert_array_equal(fnd.correlate(x, w, mode=mode, cval=7), snd.correlate(x, w, mode=mode, cval=7))
        np.testing.assert_array_equal(fnd.convolve(x, w, mode=mode, cval=7), snd.convolve(x, w, mode=mode, cval=7))


COMPLEX = [(np.complex128, np.float64), (np.float64, np.complex128), (np.complex64, np.complex64),
           (np.complex128, np.complex128), (np.float32, np.complex64), (np.int32, np.complex128)]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("dtypes", COMPLEX, ids=str)
@pytest.mark.parametrize("mode", ["constant", "mirror"])
def test_complex_inputs_and_weights(func, dtypes, mode):
    """Complex input, weights or both: scipy's dtype, its conjugated weights in correlate (not in
    convolve) and its use of cval's real and imaginary parts."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((5, 7)) * 4).astype(np.float64)
    w = rng.standard_normal((3, 2))
    if np.dtype(dtypes[0]).kind == "c":
        x = x + 1j * rng.standard_normal(x.shape)
    if np.dtype(dtypes[1]).kind == "c":
        w = w + 1j * rng.standard_normal(w.shape)
    x, w = x.astype(dtypes[0]), w.astype(dtypes[1])
    cval = 1.5 - 2j if x.dtype.kind == "c" else 1.5
    expected = getattr(snd, func)(x, w, mode=mode, cval=cval, origin=(0, -1))
    result = getattr(fnd, func)(x, w, mode=mode, cval=cval, origin=(0, -1))
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(result, expected, rtol=1e-5 if result.dtype == np.complex64 else 1e-12, atol=1e-5)


def test_correlate_conjugates_complex_weights_and_convolve_does_not():
    x = np.array([0.0, 1.0, 0.0])
    w = np.array([0.0, 1j, 0.0])
    np.testing.assert_array_equal(fnd.correlate(x, w, mode="constant"), [0, -1j, 0])
    np.testing.assert_array_equal(fnd.convolve(x, w, mode="constant"), [0, 1j, 0])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_land_where_scipy_puts_them(mode, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 7)).astype(dtype)
    x[0, 0, 0], x[1, 3, 4], x[2, 5, 6] = np.nan, np.inf, -np.inf
    w = rng.standard_normal((2, 3, 3))
    for cval in (0.0, np.nan, np.inf):
        with np.errstate(invalid="ignore"):
            expected = snd.correlate(x, w, mode=mode, cval=cval)
        result = fnd.correlate(x, w, mode=mode, cval=cval)
        np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
        np.testing.assert_array_equal(np.isposinf(result), np.isposinf(expected))
        np.testing.assert_allclose(result, expected, **tolerance(np.nan_to_num(x, posinf=0, neginf=0), w, 0, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [((9, 70, 80), (3, 3, 3), None), ((5, 40, 300), (3, 5), (1, 2)),
                                  ((300, 3, 40), (4,), 0), ((40, 50, 3), (5, 3), (0, 1)),
                                  ((3, 4, 60, 70), (2, 3, 3, 2), None)], ids=str)
@pytest.mark.parametrize("mode", ["reflect", "constant", "nearest", "mirror", "wrap"])
def test_both_twins(twin, dtype, case, mode):
    """Volumes, stacks of planes and a colour image, each loop forced to its serial then its parallel twin."""
    shape, wshape, axes = case
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(wshape)
    origin = [n // 2 - 1 if n > 1 else 0 for n in wshape]
    expected = snd.correlate(x, w, mode=mode, cval=1.25, origin=origin, axes=axes)
    result = fnd.correlate(x, w, mode=mode, cval=1.25, origin=origin, axes=axes)
    np.testing.assert_allclose(result, expected, **tolerance(x, w, 1.25, dtype))


def test_large_planes_one_by_one_equal_the_stack(rng):
    """Planes large enough for the 2-D kernels' own threads, and the same planes in one stack call."""
    x = rng.standard_normal((2, 1100, 1000)).astype(np.float32)
    w = rng.standard_normal((3, 3)).astype(np.float32)
    result = fnd.correlate(x, w, axes=(1, 2), mode="mirror")
    expected = np.stack([fnd.correlate(x[i], w, mode="mirror") for i in range(2)])
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_allclose(result, snd.correlate(x, w[None], mode="mirror"), **tolerance(x, w, 0, np.float32))


@pytest.mark.parametrize("name, x", list(layouts(np.arange(42.0).reshape(6, 7) % 5 - 2)))
def test_any_memory_layout_and_input_unchanged(name, x):
    before = x.copy()
    w = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    for mode in ("reflect", "wrap"):
        result, expected = fnd.correlate(x, w, mode=mode), snd.correlate(x, w, mode=mode)
        assert result.dtype == expected.dtype and result.dtype.isnative  # a byte-swapped input gives a native output
        np.testing.assert_allclose(result, expected, rtol=1e-13)
        np.testing.assert_allclose(fnd.convolve(x.astype(np.int32), w, mode=mode),
                                   snd.convolve(before.astype(np.int32), w, mode=mode))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, wshape, axes", [((40, 50), (3, 3), None), ((20, 30, 3), (3, 3), (0, 1)),
                                                 ((6, 7, 8), (3, 1, 3), None), ((5, 200), (1, 3), None),
                                                 ((9, 4, 5), (3, 2), (2, 0)), ((4, 5), (1, 1), None)])
def test_an_output_array_of_the_sums_dtype_is_written_in_place(dtype, shape, wshape, axes, rng):
    """The sums go straight into a C-contiguous output of their own dtype (no second pass): the
    same bits as a new array, on every path (planes, channels, volumes, rows, a transpose)."""
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(wshape)
    expected = fnd.correlate(x, w, axes=axes)
    output = np.full(shape, 9, dtype)
    assert fnd.correlate(x, w, output=output, axes=axes) is output
    np.testing.assert_array_equal(output, expected)
    strided = np.full(shape[::-1], 9, dtype).T  # not C-contiguous: written by a copy
    assert fnd.correlate(x, w, output=strided, axes=axes) is strided
    np.testing.assert_array_equal(strided, expected)


def test_output_may_be_the_input():
    x = np.arange(20.0).reshape(4, 5)
    expected = snd.correlate(x, [[1, 2], [3, 4]])
    assert fnd.correlate(x, [[1, 2], [3, 4]], output=x) is x
    np.testing.assert_array_equal(x, expected)


def test_zero_size_and_zero_dimensional_inputs():
    np.testing.assert_array_equal(fnd.correlate(np.float64(3.0), np.float64(2.0)), snd.correlate(np.float64(3.0), 2.0))
    assert fnd.correlate(np.float64(3.0), np.float64(2.0)).shape == ()
    empty = np.ones((3, 0))
    result = fnd.correlate(empty, np.ones((3, 3)))
    assert result.shape == (3, 0) and result.dtype == np.float64
    x = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(fnd.correlate(x, np.ones(()) * 3, axes=()), snd.correlate(x, np.ones(()) * 3, axes=()))
    for weights in (np.ones((3, 0)), np.ones((0, 3))):
        np.testing.assert_array_equal(fnd.correlate(np.ones(4), weights), snd.correlate(np.ones(4), weights))


def test_colour_image_plane_by_plane():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    w = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    result = fnd.correlate(image, w, axes=(0, 1), mode="mirror")
    np.testing.assert_array_equal(result, snd.correlate(image, w, axes=(0, 1), mode="mirror"))
    for c in range(3):
        np.testing.assert_array_equal(result[..., c], fnd.correlate(image[..., c], w, mode="mirror"))


def test_warnings_as_scipy():
    x = np.ones(4)
    with pytest.warns(UserWarning, match="promoting specified output dtype to complex"):
        assert fnd.correlate(x, [1, 1j], output=np.float32).dtype == np.complex64
    with pytest.warns(np.exceptions.ComplexWarning):
        fnd.correlate(x, [1.0, 1.0], cval=np.complex128(2))


X2 = np.ones((3, 4))
BAD = [
    (dict(weights=np.ones(3)), RuntimeError, r"weights.ndim \(1\) must match len\(axes\) \(2\)"),
    (dict(weights=np.ones((3, 0))), RuntimeError, r"weights.ndim \(1\) must match len\(axes\) \(2\)"),
    (dict(weights=np.ones((3, 3)), axes=(0,)), RuntimeError, r"weights.ndim \(2\) must match len\(axes\) \(1\)"),
    (dict(origin=2), ValueError, "Invalid origin; origin must satisfy"),
    (dict(origin=(0, -2)), ValueError, "Invalid origin"),
    (dict(origin=(0, 0, 0)), RuntimeError, "sequence argument must have length equal to input rank"),
    (dict(origin=0.5, weights=np.ones((3, 3))), TypeError, "'float' object cannot be interpreted as an integer"),
    (dict(mode="foo"), RuntimeError, "boundary mode not supported"),
    (dict(mode=None), RuntimeError, "boundary mode not supported"),
    (dict(mode=["reflect", "reflect"]), RuntimeError, "A sequence of modes is not supported"),
    (dict(axes=(0, 0)), ValueError, "axes must be unique"),
    (dict(axes=(0, -2)), ValueError, "axes must be unique"),
    (dict(axes=(0, 2)), ValueError, "specified axis: 2 is out of range"),
    (dict(axes=(-3, 1)), ValueError, "specified axis: -3 is out of range"),
    (dict(axes=1.0), TypeError, "'float' object cannot be interpreted as an integer"),
    (dict(axes=[]), RuntimeError, r"weights.ndim \(2\) must match len\(axes\) \(0\)"),
    (dict(output=np.zeros((4, 3))), RuntimeError, "output shape not correct"),
    (dict(output="U3"), RuntimeError, "output must have numeric dtype"),
    (dict(output=np.float16), RuntimeError, "array type not supported"),
    (dict(output=np.zeros((3, 4), complex)), RuntimeError, "array type not supported"),
    (dict(input=X2.astype(np.float16)), RuntimeError, "array type not supported"),
    (dict(input=X2.astype(np.longdouble)), RuntimeError, "array type not supported"),
    (dict(input=X2.astype(object)), RuntimeError, "array type not supported"),
    (dict(cval="a"), TypeError, "must be real number, not str"),
    (dict(cval=None), TypeError, "must be real number, not NoneType"),
    (dict(cval=1j), TypeError, "must be real number, not complex"),
    (dict(weights=np.array([["a", "b"]])), ValueError, "could not convert string to float"),
    (dict(input=X2.astype(complex), output="f8"), RuntimeError, "output must have complex dtype"),
    (dict(weights=np.ones((2, 2)) * 1j, cval=1j), ValueError, "Cannot provide a complex-valued cval"),
]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("kwargs, exception, match", BAD, ids=[str(row[0])[:60] for row in BAD])
def test_bad_input_raises_as_scipy(func, kwargs, exception, match):
    arguments = dict(input=X2, weights=np.ones((2, 2)))
    arguments.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exception, match=match):
            getattr(snd, func)(**arguments)
    with pytest.raises(exception, match=match):
        getattr(fnd, func)(**arguments)


def test_a_bool_origin_is_refused_as_scipy_refuses_it():
    """scipy's C code wants an int; convolve negates the origin first, so there it is one."""
    for module in (snd, fnd):
        with pytest.raises(TypeError, match="an integer is required"):
            module.correlate(X2, np.ones((3, 3)), origin=True)
        np.testing.assert_array_equal(module.convolve(X2, np.ones((3, 3)), origin=True),
                                      snd.convolve(X2, np.ones((3, 3)), origin=1))


def test_every_mode_name_maps_to_a_kernel_edge_rule():
    for mode, code in fnd.MODES.items():
        assert naive.NDIMAGE_MODES[mode] == {0: "fill", 1: "symm", 2: "wrap", 3: "nearest", 4: "mirror"}[code]


def test_edge_index_is_the_kernels_rule():
    """The plane picker along leading axes and the kernels' edge rule agree at every position."""
    for boundary, name in {0: "fill", 1: "symm", 2: "wrap", 3: "nearest", 4: "mirror"}.items():
        for n in (1, 2, 3, 5):
            t = np.arange(-4 * n - 3, 5 * n + 3)
            expected = [naive.source(int(v), n, name) for v in t]
            assert corr.edge_index(t, n, boundary).tolist() == [-1 if e is None else e for e in expected]


def test_sources_pick_planes_by_each_leading_axis_rule():
    sources = fnd._sources(6, [3], [2], [1], fnd.MODES["constant"])
    expected = [[-1, 0], [0, 1], [1, 2]]
    np.testing.assert_array_equal(sources, np.array(expected + [[-1, 3], [3, 4], [4, 5]]))
    both = fnd._sources(4, [2, 2], [2, 2], [0, 1], fnd.MODES["wrap"])
    for (i, j), row in zip(itertools.product(range(2), range(2)), both):
        assert row.tolist() == [((i + a) % 2) * 2 + (j + b - 1) % 2 for a in range(2) for b in range(2)]
