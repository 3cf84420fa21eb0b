import itertools

import numpy as np
import pytest

import fastcorr as fc
from layouts import layouts

DTYPES = [np.float32, np.float64]

# (layer options, input shape (N, C, H, W))
CASES = [
    (dict(kernel_size=(1, 2), bias=False), (1, 1, 6, 8)),
    (dict(kernel_size=3), (2, 1, 7, 6)),
    (dict(kernel_size=3, in_channels=3, out_channels=4, stride=2), (2, 3, 9, 8)),
    (dict(kernel_size=(2, 3), in_channels=2, out_channels=3, stride=(2, 1), padding=(1, 2)), (1, 2, 6, 7)),
    (dict(kernel_size=(2, 3), in_channels=2, out_channels=2, padding="same"), (2, 2, 5, 6)),
    (dict(kernel_size=3, in_channels=2, out_channels=2, padding="same", dilation=2, bias=False), (1, 2, 8, 7)),
    (dict(kernel_size=(3, 2), padding="valid", dilation=(2, 1)), (1, 1, 7, 5)),
    (dict(kernel_size=3, in_channels=4, out_channels=6, groups=2, padding=1), (2, 4, 5, 5)),
    (dict(kernel_size=2, in_channels=3, out_channels=3, groups=3, stride=2, dilation=2, padding=1, bias=False), (1, 3, 8, 9)),
]
CASE_IDS = [f"case{i}" for i in range(len(CASES))]


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def conv_args(layer):
    return layer.stride, layer.padding, layer.dilation, layer.groups


def make(options, dtype, seed=0):
    layer = fc.Conv2D(**options, dtype=dtype, rng=seed)
    if layer.bias is not None:
        layer.bias.data = np.random.default_rng(seed + 1).standard_normal(layer.bias.shape)
    return layer


# Against the functional API

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options, shape", CASES, ids=CASE_IDS)
def test_forward_and_backward_are_conv2d_and_its_gradients(options, shape, dtype, rng):
    layer = make(options, dtype)
    x = rng.standard_normal(shape).astype(dtype)
    bias = None if layer.bias is None else layer.bias.data
    y = layer(x)
    expected = fc.conv2d(x, layer.weight.data, bias, *conv_args(layer))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, expected)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_array_equal(dx, fc.conv2d_input_grad(x.shape, layer.weight.data, dy, *conv_args(layer)))
    np.testing.assert_array_equal(layer.weight.grad, fc.conv2d_weight_grad(x, layer.weight.shape, dy, *conv_args(layer)))
    assert layer.weight.grad.dtype == dtype
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=(0, 2, 3)), **tol(dtype))
        assert layer.bias.grad.dtype == dtype


# Against torch: same weights, same outputs and gradients

def assert_matches_torch(layer, shape, dtype, rng, padding_mode="zeros"):
    """The layer's outputs and gradients against torch's nn.Conv2d with the same weights, and autograd."""
    torch = pytest.importorskip("torch")
    tlayer = torch.nn.Conv2d(
        layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride, padding=layer.padding,
        dilation=layer.dilation, groups=layer.groups, bias=layer.bias is not None, padding_mode=padding_mode,
        dtype=torch.float32 if dtype == np.float32 else torch.float64,
    )
    with torch.no_grad():
        tlayer.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            tlayer.bias.copy_(torch.from_numpy(layer.bias.data))
    x = rng.standard_normal(shape).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    y, ty = layer(x), tlayer(tx)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol(dtype))

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(layer.weight.grad, tlayer.weight.grad.numpy(), **tol(dtype))
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad, tlayer.bias.grad.numpy(), **tol(dtype))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options, shape", CASES, ids=CASE_IDS)
def test_matches_torch_conv2d_and_autograd(options, shape, dtype, rng):
    assert_matches_torch(make(options, dtype), shape, dtype, rng)


def test_gradients_accumulate_like_autograd(rng):
    layer = fc.Conv2D(3, in_channels=2, out_channels=3, padding=1, dtype=np.float64, rng=1)
    x1, x2 = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((1, 2, 4, 4))
    dy1, dy2 = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((1, 3, 4, 4))
    layer(x1)
    dx_first = layer.backward(dy1)
    first_w, first_b = layer.weight.grad.copy(), layer.bias.grad.copy()
    np.testing.assert_array_equal(layer.backward(dy1), dx_first)
    np.testing.assert_allclose(layer.weight.grad, 2 * first_w, rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, 2 * first_b, rtol=1e-13)
    layer(x2)
    layer.backward(dy2)
    np.testing.assert_allclose(
        layer.weight.grad, 2 * first_w + fc.conv2d_weight_grad(x2, layer.weight.shape, dy2, padding=1), rtol=1e-12
    )
    np.testing.assert_allclose(layer.bias.grad, 2 * first_b + dy2.sum(axis=(0, 2, 3)), rtol=1e-12)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


@pytest.mark.parametrize("k", [2, 16], ids=["small pass", "direct loops"])
def test_dy_may_be_the_weight_gradient_itself(k, rng):
    """A k x k layer's output on a (2k - 1)-square input has the weight's shape: its own
    weight.grad is a valid dy, and the gradient added to it is that of the values it held."""
    layer = fc.Conv2D(k, bias=False, dtype=np.float64, rng=1)
    x = rng.standard_normal((1, 1, 2 * k - 1, 2 * k - 1))
    layer(x)
    layer.weight.grad = rng.standard_normal(layer.weight.shape)
    before = layer.weight.grad.copy()
    dx = layer.backward(layer.weight.grad)
    expected = before + fc.conv2d_weight_grad(x, layer.weight.shape, before)
    np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, fc.conv2d_input_grad(x.shape, layer.weight.data, before), rtol=1e-12, atol=1e-12)


def test_dy_may_be_a_view_of_the_bias_gradient(rng):
    """A one-output layer on a 2-D input whose output is 1 x 1: dy may view bias.grad."""
    layer = fc.Conv2D(3, dtype=np.float64, rng=1)
    x = rng.standard_normal((3, 3))
    layer(x)
    layer.bias.grad = [2.5]
    dx = layer.backward(layer.bias.grad.reshape(1, 1))
    np.testing.assert_array_equal(layer.bias.grad, [5.0])
    np.testing.assert_allclose(layer.weight.grad[0, 0], 2.5 * x, rtol=1e-14)
    np.testing.assert_allclose(dx, 2.5 * layer.weight.data[0, 0], rtol=1e-14)


# torch's padding modes

PADDED_CASES = [(options, shape) for options, shape in CASES if options.get("padding", 0) not in (0, "valid")]
MODES = ["reflect", "replicate", "circular"]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options, shape", PADDED_CASES)
def test_padding_modes_match_torch(options, shape, dtype, mode, rng):
    assert_matches_torch(make({**options, "padding_mode": mode}, dtype), shape, dtype, rng, mode)


@pytest.mark.parametrize("mode, np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
def test_padding_modes_are_explicit_padding_then_a_valid_convolution(mode, np_mode, rng):
    """The forward against np.pad and a 'valid' conv2d; the backward against the adjoint of the
    padding, folded by a loop over every padded sample, in a 2-D (H, W) input at the padding limits."""
    x = rng.standard_normal((4, 5))
    pad = (3, 4) if mode == "reflect" else (4, 5)  # the widest each mode allows (replicate allows any)
    layer = fc.Conv2D((3, 2), padding=pad, padding_mode=mode, bias=False, dtype=np.float64, rng=1)
    padded = np.pad(x, [(pad[0], pad[0]), (pad[1], pad[1])], mode=np_mode)
    y = layer(x)
    np.testing.assert_array_equal(y, fc.conv2d(padded[None, None], layer.weight.data)[0, 0])
    dy = rng.standard_normal(y.shape)
    grad_padded = fc.conv2d_input_grad((1, 1, *padded.shape), layer.weight.data, dy[None, None])[0, 0]
    source = np.pad(np.arange(x.size).reshape(x.shape), [(pad[0], pad[0]), (pad[1], pad[1])], mode=np_mode)
    expected = np.zeros(x.size)
    for flat, g in zip(source.ravel(), grad_padded.ravel()):
        expected[flat] += g
    np.testing.assert_allclose(layer.backward(dy), expected.reshape(x.shape), rtol=1e-13, atol=1e-13)


def test_zeros_mode_and_zero_padding_are_the_plain_layer(rng):
    x = rng.standard_normal((2, 1, 5, 6))
    plain = fc.Conv2D(3, padding=1, rng=0)
    same = fc.Conv2D(3, padding=1, padding_mode="zeros", rng=0)
    unpadded = fc.Conv2D(3, padding_mode="reflect", rng=0)
    np.testing.assert_array_equal(plain(x), same(x))
    np.testing.assert_array_equal(unpadded(x), fc.conv2d(x.astype(np.float32), unpadded.weight.data, unpadded.bias.data))
    assert repr(fc.Conv2D(3, padding=1, padding_mode="circular")) == "Conv2D((3, 3), in_channels=1, out_channels=1, padding=(1, 1), padding_mode='circular')"


def test_finite_differences():
    rng = np.random.default_rng(3)
    layer = fc.Conv2D((2, 3), in_channels=2, out_channels=2, stride=(1, 2), padding=1, dtype=np.float64, rng=4)
    x = rng.standard_normal((2, 2, 4, 5))
    dy = rng.standard_normal(layer(x).shape)
    dx = layer.backward(dy)

    def loss():
        return np.sum(layer(x) * dy)

    eps = 1e-6
    for array, grad in [(layer.weight.data, layer.weight.grad), (layer.bias.data, layer.bias.grad), (x, dx)]:
        for idx in itertools.product(*map(range, array.shape)):
            saved = array[idx]
            array[idx] = saved + eps
            up = loss()
            array[idx] = saved - eps
            down = loss()
            array[idx] = saved
            assert (up - down) / (2 * eps) == pytest.approx(grad[idx], rel=1e-6, abs=1e-8)


# Shapes, dtypes and state

def test_two_dimensional_input():
    x = np.random.default_rng(5).standard_normal((6, 8))
    layer = fc.Conv2D((1, 2), rng=0)
    y = layer(x)
    assert y.shape == (6, 7)
    np.testing.assert_array_equal(y, layer(x.reshape(1, 1, 6, 8)).reshape(6, 7))
    layer(x)
    dx = layer.backward(np.ones((6, 7)))
    assert dx.shape == (6, 8)
    grad_2d = layer.weight.grad.copy()
    layer.zero_grad()
    layer(x.reshape(1, 1, 6, 8))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 6, 7))).reshape(6, 8), dx)
    np.testing.assert_array_equal(layer.weight.grad, grad_2d)


def test_two_dimensional_input_with_several_output_channels():
    x = np.random.default_rng(6).standard_normal((5, 5)).astype(np.float32)
    layer = fc.Conv2D(3, out_channels=4, padding=1, rng=0)
    y = layer(x)
    assert y.shape == (4, 5, 5)
    np.testing.assert_array_equal(y, layer(x[None, None])[0])
    layer(x)
    assert layer.backward(np.ones((4, 5, 5))).shape == (5, 5)
    with pytest.raises(ValueError, match=r"dy must have the shape of the last output, \(4, 5, 5\)"):
        layer.backward(np.ones((1, 4, 5, 5)))


def test_every_layout_of_the_input(rng):
    x = rng.standard_normal((7, 9))
    layer = fc.Conv2D(3, dtype=np.float64, rng=0)
    expected = layer(x)
    for name, a in layouts(x):
        before = a.copy()
        np.testing.assert_allclose(layer(a), expected, rtol=1e-13, err_msg=name)
        np.testing.assert_array_equal(a, before, err_msg=f"{name} input modified")


def test_input_is_cast_to_the_layer_dtype(rng):
    x64 = rng.standard_normal((1, 1, 5, 5))
    layer32 = fc.Conv2D(2, rng=0)
    assert layer32.weight.data.dtype == layer32.bias.data.dtype == np.float32
    assert layer32(x64).dtype == np.float32
    assert layer32.backward(np.ones((1, 1, 4, 4))).dtype == np.float32
    layer64 = fc.Conv2D(2, dtype=np.float64, rng=0)
    assert layer64(x64.astype(np.float32)).dtype == np.float64
    assert layer64(np.ones((3, 3), int)).dtype == np.float64


def test_backward_uses_the_forward_call_state(rng):
    layer = fc.Conv2D(2, dtype=np.float64, rng=0)
    x = rng.standard_normal((1, 1, 4, 4))
    dy = rng.standard_normal((1, 1, 3, 3))
    weight = layer.weight.data.copy()
    layer(x)
    x_at_forward = x.copy()
    x[...] = 0
    layer.weight.data -= 1.0
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, fc.conv2d_input_grad(x.shape, weight, dy))
    np.testing.assert_array_equal(layer.weight.grad, fc.conv2d_weight_grad(x_at_forward, weight.shape, dy))


def test_parameters_and_shapes():
    layer = fc.Conv2D((3, 2), in_channels=4, out_channels=6, groups=2)
    assert layer.weight.shape == layer.weight.grad.shape == (6, 2, 3, 2)
    assert layer.bias.shape == (6,)
    assert layer.parameters() == [layer.weight, layer.bias]
    plain = fc.Conv2D(1, bias=False)
    assert plain.bias is None
    assert plain.parameters() == [plain.weight]


def test_repr():
    assert repr(fc.Conv2D((1, 2), bias=False)) == "Conv2D((1, 2), in_channels=1, out_channels=1, bias=False)"
    layer = fc.Conv2D(3, in_channels=4, out_channels=2, stride=2, padding=1, dilation=(1, 2), groups=2, dtype=np.float64)
    assert repr(layer) == ("Conv2D((3, 3), in_channels=4, out_channels=2, stride=(2, 2), padding=(1, 1), "
                           "dilation=(1, 2), groups=2, dtype=np.float64)")
    assert "padding='same'" in repr(fc.Conv2D(3, padding="same"))
    assert repr(fc.Conv2D(3, method="direct")) == "Conv2D((3, 3), in_channels=1, out_channels=1, method='direct')"
    assert repr(layer.weight) == "Parameter(shape=(2, 2, 3, 3), dtype=float64)"


@pytest.mark.parametrize("method", ["auto", "direct", "winograd"])
def test_method_chooses_the_algorithm_of_every_pass(method, monkeypatch, rng):
    """A layer shaped for Winograd's forward pass and input gradient: 'auto' runs it there (its
    weight gradient needs more blocks), 'winograd' in all three passes, 'direct' never; each gives
    conv2d's results for the same method."""
    from fastcorr._kernels import winograd as wg

    calls = []
    for name in ("forward", "weight_grad"):
        kernel = getattr(wg, name)
        monkeypatch.setattr(wg, name, lambda *args, kernel=kernel, name=name: calls.append(name) or kernel(*args))
    layer = fc.Conv2D(3, in_channels=32, out_channels=32, padding=1, method=method, rng=0)
    x, dy = rng.standard_normal((4, 32, 32, 32)).astype(np.float32), rng.standard_normal((4, 32, 32, 32)).astype(np.float32)
    y, dx = layer(x), layer.backward(dy)
    assert sorted(calls) == {"direct": [], "auto": ["forward", "forward"],
                             "winograd": ["forward", "forward", "weight_grad"]}[method]
    w, b = layer.weight.data, layer.bias.data
    np.testing.assert_array_equal(y, fc.conv2d(x, w, b, padding=1, method=method))
    np.testing.assert_array_equal(dx, fc.conv2d_input_grad(x.shape, w, dy, padding=1, method=method))
    np.testing.assert_array_equal(layer.weight.grad, fc.conv2d_weight_grad(x, w.shape, dy, padding=1, method=method))


# Initialisation

@pytest.mark.parametrize(
    "options, fan_in",
    [(dict(kernel_size=3, in_channels=4, out_channels=64), 36),
     (dict(kernel_size=(1, 2), out_channels=500), 2),
     (dict(kernel_size=(3, 2), in_channels=6, out_channels=96, groups=3), 12)],
)
def test_default_init_is_torch_uniform(options, fan_in):
    layer = fc.Conv2D(**options, rng=11)
    bound = 1 / np.sqrt(fan_in)
    for p in layer.parameters():
        values = p.data.astype(np.float64).ravel()
        assert np.all(np.abs(values) <= bound * (1 + 1e-6))
        assert values.max() > 0.8 * bound and values.min() < -0.8 * bound
        assert abs(values.mean()) < 4 * bound / np.sqrt(3 * values.size)
        counts, _ = np.histogram(values, bins=4, range=(-bound, bound))
        assert counts.min() > values.size / 8
        assert not p.grad.any()


def test_init_is_reproducible():
    same = [fc.Conv2D(3, out_channels=2, rng=7), fc.Conv2D(3, out_channels=2, rng=7),
            fc.Conv2D(3, out_channels=2, rng=np.random.default_rng(7))]
    for layer in same[1:]:
        np.testing.assert_array_equal(layer.weight.data, same[0].weight.data)
        np.testing.assert_array_equal(layer.bias.data, same[0].bias.data)
    gen = np.random.default_rng(7)
    first, second = fc.Conv2D(3, rng=gen), fc.Conv2D(3, rng=gen)
    assert not np.array_equal(first.weight.data, second.weight.data)
    assert not np.array_equal(fc.Conv2D(3, rng=8).weight.data, same[0].weight.data)
    assert not np.array_equal(fc.Conv2D(3).weight.data, fc.Conv2D(3).weight.data)


# Parameter

def test_parameter_assignment_copies_into_its_own_array():
    source = np.array([1.0, 2.0, 3.0])
    p = fc.Parameter(source.astype(np.float32))
    data, grad = p.data, p.grad
    assert grad.dtype == np.float32 and not grad.any()
    p.data = source
    source[0] = 99
    assert p.data is data and p.data.dtype == np.float32
    np.testing.assert_array_equal(p.data, [1, 2, 3])
    p.data -= 1
    p.grad = [1, 1, 1]
    assert p.data is data and p.grad is grad
    np.testing.assert_array_equal(p.data, [0, 1, 2])
    np.testing.assert_array_equal(p.grad, [1, 1, 1])
    owned = np.ones(2)
    q = fc.Parameter(owned)
    q.data[0] = 5
    assert owned[0] == 1


# Bad input

def call_backward_first():
    fc.Conv2D(2).backward(np.ones((1, 1, 2, 2)))


def call(x, **options):
    return lambda: fc.Conv2D(**{"kernel_size": 2, **options})(x)


def backward_with(dy):
    def run():
        layer = fc.Conv2D(2)
        layer(np.ones((1, 1, 5, 4)))
        layer.backward(dy)
    return run


def assign(name, value):
    def run():
        setattr(fc.Parameter(np.ones((2, 2))), name, value)
    return run


BAD = [
    (call_backward_first, RuntimeError, r"call the layer on an input first \(y = layer\(x\)\)"),
    (backward_with(np.ones((1, 1, 4, 4))), ValueError, r"dy must have the shape of the last output, \(1, 1, 4, 3\), got \(1, 1, 4, 4\)"),
    (backward_with(np.ones((4, 3))), ValueError, r"dy must have the shape of the last output, \(1, 1, 4, 3\)"),
    (backward_with(None), TypeError, "dy must be an array-like"),
    (backward_with(np.ones((1, 1, 4, 3), complex)), TypeError, "dy must be real"),
    (call(np.ones((1, 2, 4, 4)), in_channels=3), ValueError, r"x has 2 channels .* in_channels=3"),
    (call(np.ones((4, 4)), in_channels=2), ValueError, r"a 2-D x \(H, W\) needs in_channels == 1.*in_channels=2"),
    (call(np.ones((1, 4, 4))), ValueError, r"2-D \(H, W\) or 4-D \(N, C, H, W\).*x\[None\]"),
    (call(np.ones(4)), ValueError, "2-D .* or 4-D"),
    (call(np.ones((1, 1, 1, 4))), ValueError, "Conv2D: the \\(dilated\\) kernel .* is larger than the padded input"),
    (call(None), TypeError, "x must be an array-like"),
    (call(np.ones((3, 3), complex)), TypeError, "x must be real"),
    (call(np.array([["a"]])), TypeError, "x must hold numbers"),
    (lambda: fc.Conv2D(2, dtype=np.float16), ValueError, "dtype must be np.float32 or np.float64"),
    (lambda: fc.Conv2D(2, dtype=np.int32), ValueError, "dtype must be np.float32 or np.float64"),
    (lambda: fc.Conv2D(2, dtype=np.complex128), ValueError, "dtype must be np.float32 or np.float64"),
    (lambda: fc.Conv2D(2, dtype="nonsense"), ValueError, "dtype must be np.float32 or np.float64"),
    (lambda: fc.Conv2D(2, dtype=None), ValueError, "dtype must be np.float32 or np.float64"),
    (lambda: fc.Conv2D(2, in_channels=3, out_channels=4, groups=2), ValueError, "in_channels=3 must be divisible by groups=2"),
    (lambda: fc.Conv2D(2, in_channels=4, out_channels=3, groups=2), ValueError, "out_channels=3 must be divisible by groups=2"),
    (lambda: fc.Conv2D(2, groups=0), ValueError, "groups must be a positive int"),
    (lambda: fc.Conv2D(2, groups=1.0), ValueError, "groups must be a positive int"),
    (lambda: fc.Conv2D(2, in_channels=0), ValueError, "in_channels must be a positive int"),
    (lambda: fc.Conv2D(2, out_channels=-1), ValueError, "out_channels must be a positive int"),
    (lambda: fc.Conv2D(2, in_channels=2.0), ValueError, "in_channels must be a positive int"),
    (lambda: fc.Conv2D(0), ValueError, "kernel_size must be at least 1"),
    (lambda: fc.Conv2D((1, 2, 3)), TypeError, "kernel_size must be an int or a pair of ints"),
    (lambda: fc.Conv2D(2, stride=0), ValueError, "stride must be at least 1"),
    (lambda: fc.Conv2D(2, dilation=(1, 0)), ValueError, "dilation must be at least 1"),
    (lambda: fc.Conv2D(2, padding=-1), ValueError, "padding must be at least 0"),
    (lambda: fc.Conv2D(2, padding="full"), ValueError, "padding must be an int, a pair of ints, 'valid' or 'same'"),
    (lambda: fc.Conv2D(2, padding="same", stride=2), ValueError, "padding='same' is not supported for strided"),
    (lambda: fc.Conv2D(2, padding_mode="mirror"), ValueError,
     r"padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular'; got padding_mode='mirror'"),
    (lambda: fc.Conv2D(2, padding_mode=None), ValueError, "padding_mode must be one of"),
    (lambda: fc.Conv2D(3, padding=3, padding_mode="reflect")(np.ones((3, 5))), ValueError,
     r"padding_mode='reflect' needs padding narrower than the input: padding \(3, 3\) along axis 2"),
    (lambda: fc.Conv2D(3, padding=4, padding_mode="circular")(np.ones((5, 3))), ValueError,
     r"padding_mode='circular' wraps around more than once: padding \(4, 4\) along axis 3"),
    (lambda: fc.Conv2D(1, padding=1, padding_mode="replicate")(np.ones((0, 3))), ValueError,
     "padding_mode='replicate' cannot pad an empty axis"),
    (lambda: fc.Conv2D(2, method="fast"), ValueError, "Conv2D: method must be one of 'auto', 'direct', 'winograd'"),
    (lambda: fc.Conv2D(5, method="winograd"), ValueError,
     r"Conv2D: method='winograd' needs a 3x3 kernel, got 5x5; use method='direct' or 'auto'"),
    (lambda: fc.Conv2D(3, padding=3, method="winograd"), ValueError,
     r"Conv2D: method='winograd' needs a padding of at most 2 at the top and left for the input gradient"),
    (lambda: fc.Conv2D(3, groups=2, in_channels=2, out_channels=2, method="winograd"), ValueError,
     "Conv2D: method='winograd' needs groups=1, got 2"),
    (lambda: fc.Parameter(np.arange(3)), TypeError, "must be a real floating-point array"),
    (lambda: fc.Parameter(None), TypeError, "data must be an array-like"),
    (assign("data", np.ones(4)), ValueError, r"Parameter.data must keep its shape \(2, 2\), got \(4,\)"),
    (assign("grad", np.ones((2, 2), complex)), TypeError, "Parameter.grad must be real"),
]


@pytest.mark.parametrize("func, exception, match", BAD)
def test_bad_input(func, exception, match):
    with pytest.raises(exception, match=match):
        func()
