"""conv2d and its input gradient by Winograd F(4x4, 3x3), its weight gradient by F(3x3, 4x4): the
transforms, the kernels at every tile and block edge, the accuracy contract, NaN and inf, and when
'auto' takes them."""

import numba
import numpy as np
import pytest

import fastcorr as fc
import naive
from fastcorr import conv
from fastcorr._kernels import simd
from fastcorr._kernels import winograd as wg
from test_conv import DEFAULTS
from test_kernels import windows_weight_grad

DTYPES = [np.float32, np.float64]
#: The documented bound on max|y - y64| / max|y64| for every method, and the float64 one.
CONTRACT = {np.float32: 2e-5, np.float64: 1e-13}
PADDINGS = [0, 1, 2, (1, 0), (0, 2), "same"]
#: (N, C, H, W, O): odd sizes leave partial tiles at the bottom and right; O and C go past the
#: register tile's rows and the channel blocks, and the tiles past one task's chunk.
SHAPES = [
    (1, 1, 3, 3, 1),
    (2, 3, 7, 9, 5),
    (1, 5, 13, 6, 9),
    (3, 2, 5, 17, 2 * simd.TILE_ROWS + 1),
    (2, 3, 30, 29, 4),
    (1, wg.C_BLOCK + 3, 6, 5, 3),
    (1, 2, 9, 6, wg.O_BLOCK + simd.TILE_ROWS + 1),
]


class NumpyOps:
    """The arithmetic of the transforms on arrays."""

    add, sub = staticmethod(np.add), staticmethod(np.subtract)

    @staticmethod
    def scale(k, a):
        return a * k

    @staticmethod
    def fma(k, a, b):
        return a * k + b


def relative_error(got, exact):
    return np.abs(got - exact).max() / np.abs(exact).max()


def error_of_terms(got, exact, terms):
    """The contract's measure: the error relative to the largest sum of absolute terms (the
    same pass on ``|x|``, ``|w|``...), which bounds it even where an output cancels."""
    return np.abs(got - exact).max() / np.abs(terms).max()


def operands(rng, shape, dtype, scale=None):
    n, c, h, w, o = shape
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, 3, 3))
    if scale is not None:
        x *= 10.0 ** rng.uniform(-scale, scale, x.shape)
        weight *= 10.0 ** rng.uniform(-scale, scale, weight.shape)
    return x.astype(dtype), weight.astype(dtype), rng.standard_normal(o).astype(dtype)


def test_the_transforms_compute_a_correlation(rng):
    """``A^T [(G g) * (B^T d)]`` is the 'valid' correlation of six values with three, in one and two dimensions."""
    d, g = rng.standard_normal(6), rng.standard_normal(3)
    products = np.array(wg.input_1d(NumpyOps, list(d))) * (wg.G @ g)
    np.testing.assert_allclose(wg.output_1d(NumpyOps, list(products)), np.correlate(d, g, "valid"), rtol=1e-13)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    v = np.array(wg._two_d(lambda r: wg.input_1d(NumpyOps, r), [list(row) for row in d]))
    y = wg._two_d(lambda r: wg.output_1d(NumpyOps, r), [list(row) for row in v * (wg.G @ g @ wg.G.T)])
    np.testing.assert_allclose(y, naive.conv2d(d[None, None], g[None, None])[0, 0], rtol=1e-12, atol=1e-13)


def test_the_weight_gradient_transforms_compute_a_correlation(rng):
    """``G^T [(A a) * (B^T d)]`` is the 'valid' correlation of six values with four (three values),
    in one and two dimensions."""
    d, a = rng.standard_normal(6), rng.standard_normal(4)
    products = np.array(wg.gradient_1d(NumpyOps, list(a))) * np.array(wg.input_1d(NumpyOps, list(d)))
    np.testing.assert_allclose(wg.G.T @ products, np.correlate(d, a, "valid"), rtol=1e-13)
    d, a = rng.standard_normal((6, 6)), rng.standard_normal((4, 4))
    v = np.array(wg._two_d(lambda r: wg.input_1d(NumpyOps, r), [list(row) for row in d]))
    u = np.array(wg._two_d(lambda r: wg.gradient_1d(NumpyOps, r), [list(row) for row in a]))
    np.testing.assert_allclose(wg.G.T @ (u * v) @ wg.G, naive.conv2d(d[None, None], a[None, None])[0, 0],
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("o, c", [(11, 3), (16, 5), (37, 29)])  # one product (whole blocks or not); several
def test_the_packed_kernel_transform(o, c, rng):
    weight = rng.standard_normal((o, c, 3, 3))
    blocks = -(-o // simd.TILE_ROWS)
    packed = wg.transformed_weights(weight, blocks).reshape(wg.POINTS, blocks, c, simd.TILE_ROWS)
    u = np.einsum("ik,ockl,jl->ijoc", wg.G, weight, wg.G).reshape(wg.POINTS, o, c)
    unpacked = packed.transpose(0, 1, 3, 2).reshape(wg.POINTS, blocks * simd.TILE_ROWS, c)
    np.testing.assert_allclose(unpacked[:, :o], u, rtol=1e-14, atol=1e-15)
    assert not unpacked[:, o:].any()
    assert blocks * simd.TILE_ROWS * c > wg._PRODUCT_COLUMNS or o < 37


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_input_grad_match_the_loops(shape, padding, dtype, twin, rng):
    x, w, b = operands(rng, shape, dtype)
    exact = naive.conv2d(x, w, b, padding=padding)
    y = fc.conv2d(x, w, b, padding=padding, method="winograd")
    assert y.dtype == dtype and y.shape == exact.shape
    terms = naive.conv2d(abs(x), abs(w), abs(b), padding=padding)  # (1, 1, 3, 3, 1) unpadded: one output, may cancel
    assert error_of_terms(y, exact, terms) <= CONTRACT[dtype]
    dy = rng.standard_normal(exact.shape).astype(dtype)
    exact = naive.conv2d_input_grad(x.shape, w, dy, padding=padding)
    dx = fc.conv2d_input_grad(x.shape, w, dy, padding=padding, method="winograd")
    assert dx.dtype == dtype and dx.shape == x.shape
    assert error_of_terms(dx, exact, naive.conv2d_input_grad(x.shape, abs(w), abs(dy), padding=padding)) <= CONTRACT[dtype]


def pads_of(padding):
    if padding == "same":
        return ((1, 1), (1, 1))
    top, left = padding if isinstance(padding, tuple) else (padding, padding)
    return ((top, top), (left, left))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(2, 20, 9, 11, 3), (1, 3, 10, 9, 20)], ids=str)
def test_weight_grad_matches_the_window_sums(shape, padding, dtype, twin, rng):
    """Both ways round (the tile's rows the input channels, or the output channels), every partial tile."""
    x, w, _ = operands(rng, shape, dtype)
    dy = rng.standard_normal(naive._conv_terms(x.shape, w.shape, 1, padding, 1, 1)[1]).astype(dtype)
    dw = fc.conv2d_weight_grad(x, w.shape, dy, padding=padding, method="winograd")
    assert dw.dtype == dtype and dw.shape == w.shape
    assert relative_error(dw, windows_weight_grad(x, dy, (3, 3), pads_of(padding))) <= CONTRACT[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 3, 33, 30, 5), (3, 33, 13, 14, 17), (1, 17, 33, 30, 40)], ids=str)
def test_weight_grad_runs_chunks_runs_and_parts_the_same_on_any_thread(shape, dtype, monkeypatch, rng):
    """Small chunks of tiles (16) and runs of two chunks, so that a part has several runs and the
    last chunk is partial: serial and parallel bit for bit, within the contract."""
    x, w, _ = operands(rng, shape, dtype)
    dy = rng.standard_normal((shape[0], shape[4], shape[2], shape[3])).astype(dtype)
    monkeypatch.setattr(wg, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(wg, "_RUN", 32)
    results = []
    for work in (1, 2**62):
        dw = np.full(w.shape, np.nan, dtype)
        wg.weight_grad(x, dy, dw, 1, 1, work)
        results.append(dw)
    np.testing.assert_array_equal(results[0], results[1])
    assert relative_error(results[0], windows_weight_grad(x, dy, (3, 3), ((1, 1), (1, 1)))) <= CONTRACT[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_against_torch(dtype, torch, rng):
    x, w, b = operands(rng, (3, 6, 11, 14, 10), dtype)
    for padding in (0, 1, 2, (2, 1)):
        expected = torch.nn.functional.conv2d(*map(torch.from_numpy, (x, w, b)), padding=padding).numpy()
        np.testing.assert_allclose(fc.conv2d(x, w, b, padding=padding, method="winograd"), expected,
                                   rtol=0, atol=CONTRACT[dtype] * np.abs(expected).max())
        dy = np.random.default_rng(0).standard_normal(expected.shape).astype(dtype)
        expected = torch.nn.grad.conv2d_input(x.shape, torch.from_numpy(w), torch.from_numpy(dy), padding=padding).numpy()
        np.testing.assert_allclose(fc.conv2d_input_grad(x.shape, w, dy, padding=padding, method="winograd"), expected,
                                   rtol=0, atol=CONTRACT[dtype] * np.abs(expected).max())
        expected = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w.shape, torch.from_numpy(dy), padding=padding).numpy()
        np.testing.assert_allclose(fc.conv2d_weight_grad(x, w.shape, dy, padding=padding, method="winograd"), expected,
                                   rtol=0, atol=CONTRACT[dtype] * np.abs(expected).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [None, 2, 4], ids=["normal", "1e-2..1e2", "1e-4..1e4"])
def test_accuracy_contract_with_a_float64_reference(dtype, scale, rng):
    """max|y - y64| <= bound * max|y64|, also when the values span eight orders of magnitude (the
    reference: direct sums in float64, of rounding error far below the bound)."""
    x, w, b = operands(rng, (2, 64, 20, 20, 16), dtype, scale)
    y64 = fc.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1, method="direct")
    assert relative_error(fc.conv2d(x, w, b, padding=1, method="winograd"), y64) <= CONTRACT[dtype]
    assert relative_error(fc.conv2d(x, w, b, padding=1), y64) <= CONTRACT[dtype]
    dy = (rng.standard_normal(y64.shape) * (1 if scale is None else 10.0 ** rng.uniform(-scale, scale, y64.shape)))
    dy = dy.astype(dtype)
    dx64 = fc.conv2d_input_grad(x.shape, w.astype(np.float64), dy.astype(np.float64), padding=1, method="direct")
    assert relative_error(fc.conv2d_input_grad(x.shape, w, dy, padding=1, method="winograd"), dx64) <= CONTRACT[dtype]
    dw64 = fc.conv2d_weight_grad(x.astype(np.float64), w.shape, dy.astype(np.float64), padding=1, method="direct")
    assert relative_error(fc.conv2d_weight_grad(x, w.shape, dy, padding=1, method="winograd"), dw64) <= CONTRACT[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_and_winograd_agree(dtype, rng):
    x, w, b = operands(rng, (2, 9, 19, 21, 12), dtype)
    direct = fc.conv2d(x, w, b, padding="same", method="direct")
    np.testing.assert_allclose(fc.conv2d(x, w, b, padding="same", method="winograd"), direct,
                               rtol=0, atol=CONTRACT[dtype] * np.abs(direct).max())


def test_out_buffer(rng):
    x, w, b = operands(rng, (2, 3, 10, 7, 5), np.float32)
    out = np.full((2, 5, 10, 7), np.nan, np.float32)
    assert fc.conv2d(x, w, b, padding=1, out=out, method="winograd") is out
    direct = fc.conv2d(x, w, b, padding=1, method="direct")
    np.testing.assert_allclose(out, direct, rtol=0, atol=CONTRACT[np.float32] * np.abs(direct).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 10, 7, 5), (3, 2, 9, 17, 4), (1, 4, 30, 29, 3)], ids=str)
def test_the_output_transform_writes_inside_out_only(shape, dtype, rng):
    """Tiles past the right edge (rows of tiles are whole groups), past the bottom, and past the
    last tile (a chunk's last groups) are masked off: ``out`` in the middle of a larger buffer
    keeps the values around it."""
    x, w, b = operands(rng, shape, dtype)
    size = shape[0] * shape[4] * shape[2] * shape[3]
    buffer = np.full(size + 2000, 7, dtype)
    out = buffer[1000 : 1000 + size].reshape(shape[0], shape[4], shape[2], shape[3])
    fc.conv2d(x, w, b, padding=1, out=out, method="winograd")
    assert (buffer[:1000] == 7).all() and (buffer[-1000:] == 7).all()
    direct = fc.conv2d(x, w, b, padding=1, method="direct")
    np.testing.assert_allclose(out, direct, rtol=0, atol=CONTRACT[dtype] * np.abs(direct).max())


@numba.njit
def _transforms(v, x, x_at, out, m, y_at, rows, columns):
    wg.transform_input(v, 0, 64, x, x_at, 0, 0, 70)
    wg.transform_output(out, 0, m, 0, 64, 0.0, y_at, rows, columns, 0, 70)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_transforms_read_and_write_without_gathers(dtype):
    """A group of tiles' rows are vector loads and a row of their outputs one masked store: no
    gather (one per value and vector of tiles) or scatter."""
    v, m = np.zeros(64 * wg.POINTS, dtype), np.zeros(64 * wg.POINTS, dtype)
    table = np.arange(simd.lanes(np.dtype(dtype).itemsize), dtype=np.int64)
    x, out = np.zeros(10_000, dtype), np.zeros(10_000, dtype)
    _transforms(v, x, table * 4, out, m, table * 4, table * 0 + 4, table * 0 + 4)
    asm = next(iter(_transforms.inspect_asm().values()))
    assert "gather" not in asm and "scatter" not in asm


def spied(monkeypatch, name):
    """The shapes of the first argument of the calls of ``wg.<name>`` that compute from now on
    (the forward pass declines, returning None, an input that holds an inf or NaN under 'auto')."""
    calls = []
    kernel = getattr(wg, name)

    def spy(*args):
        result = kernel(*args)
        if result is not None:
            calls.append(args[0].shape)
        return result

    monkeypatch.setattr(wg, name, spy)
    return calls


@pytest.fixture
def winograd_calls(monkeypatch):
    """The calls that reach the Winograd forward pass (the forward and the input gradient)."""
    return spied(monkeypatch, "forward")


#: A layer where 'auto' takes Winograd (forward and input gradient: 32 channels each way).
LAYER = (4, 32, 32, 32, 32)


def test_auto_takes_winograd_where_it_pays(winograd_calls, rng):
    x, w, b = operands(rng, LAYER, np.float32)
    assert conv._winograd_pays(w.shape, (4, 32, 32, 32))
    y = fc.conv2d(x, w, b, padding=1)
    dx = fc.conv2d_input_grad(x.shape, w, y, padding=1)
    assert winograd_calls == [x.shape, y.shape]
    np.testing.assert_array_equal(y, fc.conv2d(x, w, b, padding=1, method="winograd"))
    np.testing.assert_array_equal(dx, fc.conv2d_input_grad(x.shape, w, y, padding=1, method="winograd"))


def test_auto_takes_winograd_for_16_output_channels_from_1024_tiles(winograd_calls, rng):
    x, w, b = operands(rng, (16, 16, 32, 32, 16), np.float32)
    fc.conv2d(x, w, b, padding=1)
    assert winograd_calls == [x.shape]


@pytest.mark.parametrize("shape, kwargs", [
    ((4, 16, 32, 32, 8), dict(padding=1)),  # few output channels
    ((15, 16, 32, 32, 16), dict(padding=1)),  # 16 output channels over fewer than 1024 tiles
    ((4, 8, 32, 32, 16), dict(padding=1)),  # few input channels
    ((4, 256, 32, 32, 16), dict(padding=1)),  # many input channels
    ((1, 16, 60, 60, 16), dict(padding=1)),  # little output
    (LAYER, dict(padding=1, stride=2)),
    (LAYER, dict(padding=2, dilation=2)),
])
def test_auto_keeps_direct_elsewhere(shape, kwargs, winograd_calls, rng):
    x, w, b = operands(rng, shape, np.float64)
    fc.conv2d(x, w, b, **kwargs)
    assert winograd_calls == []


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spoiled", ["x", "weight", "grad_output"])
def test_auto_puts_nan_and_inf_where_direct_does(spoiled, dtype, winograd_calls, rng):
    x, w, b = operands(rng, LAYER, dtype)
    dy = rng.standard_normal((4, LAYER[4], 32, 32)).astype(dtype)
    target = {"x": x, "weight": w, "grad_output": dy}[spoiled]
    target[0, 0, 1, 2], target[-1, -1, -1, -1], target[1, 3, 0, 0] = np.inf, -np.inf, np.nan

    def passes(method):
        return fc.conv2d(x, w, b, padding=1, method=method), fc.conv2d_input_grad(x.shape, w, dy, padding=1, method=method)

    auto, direct = passes("auto"), passes("direct")
    assert winograd_calls == ([] if spoiled == "weight" else [dy.shape] if spoiled == "x" else [x.shape])
    for got, expected in zip(auto, direct):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))


@pytest.fixture
def weight_grad_calls(monkeypatch):
    """The calls that reach the Winograd weight gradient."""
    return spied(monkeypatch, "weight_grad")


#: The smallest layer of a 32x32 image where 'auto' takes Winograd for the weight gradient: 1024 tiles.
WEIGHT_LAYER = (16, 32, 32, 32, 64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_auto_takes_winograd_for_the_weight_gradient_where_it_pays(dtype, weight_grad_calls, rng):
    x, w, _ = operands(rng, WEIGHT_LAYER, dtype)
    dy = rng.standard_normal((16, 64, 32, 32)).astype(dtype)
    dw = fc.conv2d_weight_grad(x, w.shape, dy, padding=1)
    assert weight_grad_calls == [x.shape]
    np.testing.assert_array_equal(dw, fc.conv2d_weight_grad(x, w.shape, dy, padding=1, method="winograd"))
    dw64 = fc.conv2d_weight_grad(x.astype(np.float64), w.shape, dy.astype(np.float64), padding=1, method="direct")
    assert relative_error(dw, dw64) <= CONTRACT[dtype]


@pytest.mark.parametrize("shape", [
    (15, 32, 32, 32, 64),  # fewer tiles
    (16, 16, 32, 32, 16),  # 16 channels each way
    (16, 64, 32, 32, 8),  # few output channels
])
def test_auto_keeps_the_direct_weight_gradient_elsewhere(shape, weight_grad_calls, rng):
    x, w, _ = operands(rng, shape, np.float32)
    fc.conv2d_weight_grad(x, w.shape, np.ones((shape[0], shape[4], 32, 32), np.float32), padding=1)
    assert weight_grad_calls == []


@pytest.mark.parametrize("spoiled", ["input", "grad_output"])
def test_auto_weight_gradient_puts_nan_and_inf_where_direct_does(spoiled, weight_grad_calls, rng):
    x, w, _ = operands(rng, WEIGHT_LAYER, np.float32)
    dy = rng.standard_normal((16, 64, 32, 32)).astype(np.float32)
    target = x if spoiled == "input" else dy
    target[0, 0, 1, 2], target[-1, -1, -1, -1], target[1, 3, 0, 0] = np.inf, -np.inf, np.nan
    with np.errstate(invalid="ignore"):
        auto = fc.conv2d_weight_grad(x, w.shape, dy, padding=1)
        direct = fc.conv2d_weight_grad(x, w.shape, dy, padding=1, method="direct")
    assert weight_grad_calls == []
    np.testing.assert_array_equal(auto, direct)


def test_winograd_asked_for_spreads_nan_over_whole_tiles_only(rng):
    x, w, b = operands(rng, (1, 3, 13, 13, 2), np.float64)
    x[0, 1, 6, 6] = np.inf
    direct = fc.conv2d(x, w, b, padding=1, method="direct")
    with np.errstate(invalid="ignore"):
        y = fc.conv2d(x, w, b, padding=1, method="winograd")
    assert (~np.isfinite(direct) <= ~np.isfinite(y)).all()
    assert not np.isfinite(y[:, :, 4:8, 4:8]).any()  # the tile that reads (6, 6) and no other
    assert np.isfinite(np.delete(np.delete(y, np.s_[4:8], 2), np.s_[4:8], 3)).all()


BAD_METHODS = [
    ("conv2d", dict(weight=np.ones((2, 4, 2, 3))), "method='winograd' needs a 3x3 kernel, got 2x3"),
    ("conv2d", dict(stride=2), r"method='winograd' needs stride 1, got \(2, 2\)"),
    ("conv2d", dict(dilation=(1, 2), padding=2), r"method='winograd' needs dilation 1, got \(1, 2\)"),
    ("conv2d", dict(weight=np.ones((2, 2, 3, 3)), groups=2), "method='winograd' needs groups=1, got 2"),
    ("conv2d_input_grad", dict(padding=3, grad_output=np.ones((1, 2, 10, 10))),
     r"method='winograd' needs a padding of at most 2 at the top and left for the input gradient, got \(3, 3\)"),
    ("conv2d_input_grad", dict(stride=2, padding=1, grad_output=np.ones((1, 2, 3, 3))), "method='winograd' needs stride 1"),
    ("conv2d_weight_grad", dict(weight_shape=(2, 4, 3, 2), grad_output=np.ones((1, 2, 4, 5))),
     "method='winograd' needs a 3x3 kernel, got 3x2"),
    ("conv2d_weight_grad", dict(stride=2, grad_output=np.ones((1, 2, 2, 2))), r"method='winograd' needs stride 1"),
    ("conv2d_weight_grad", dict(weight_shape=(2, 2, 3, 3), groups=2), "method='winograd' needs groups=1, got 2"),
]


@pytest.mark.parametrize("name, kwargs, match", BAD_METHODS)
def test_winograd_says_why_it_cannot_run(name, kwargs, match):
    with pytest.raises(ValueError, match=f"{name}: {match}.*use method='direct' or 'auto'"):
        getattr(fc, name)(**(DEFAULTS[name] | kwargs), method="winograd")


@pytest.mark.parametrize("name", DEFAULTS)
@pytest.mark.parametrize("method", ["fft", "Winograd", None, 4])
def test_unknown_methods_list_the_choices(name, method):
    with pytest.raises(ValueError, match=f"{name}: method must be one of 'auto', 'direct', 'winograd'; "
                                         f"got method={method!r}"):
        getattr(fc, name)(**DEFAULTS[name], method=method)
