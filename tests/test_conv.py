"""conv2d and its two gradients: the loops in naive.py, then fastcorr against them and against torch."""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastcorr as fc
import naive

DTYPES = [np.float32, np.float64]

# (id, (N, C, H, W, O, kh, kw), kwargs)
CASES = [
    ("plain", (2, 3, 7, 8, 4, 3, 3), {}),
    ("N3 C1 O1", (3, 1, 6, 5, 1, 2, 2), {}),
    ("stride 2", (2, 2, 9, 8, 3, 3, 3), dict(stride=2)),
    ("stride 3 leaves rows over", (1, 2, 9, 8, 2, 2, 3), dict(stride=3)),
    ("stride (1, 2)", (2, 2, 6, 9, 2, 3, 2), dict(stride=(1, 2))),
    ("stride (3, 1)", (1, 3, 9, 6, 2, 2, 2), dict(stride=(3, 1))),
    ("stride beyond the input", (1, 2, 4, 4, 2, 2, 2), dict(stride=5)),
    ("padding 1", (2, 2, 6, 7, 3, 3, 3), dict(padding=1)),
    ("padding (2, 0)", (1, 2, 5, 7, 2, 3, 2), dict(padding=(2, 0))),
    ("padding wider than the kernel", (1, 2, 5, 4, 2, 2, 2), dict(padding=(0, 3))),
    ("padding and stride, border of zeros", (1, 1, 3, 3, 2, 1, 1), dict(padding=2, stride=2)),
    ("valid", (2, 2, 6, 7, 3, 3, 2), dict(padding="valid")),
    ("same odd kernel", (2, 2, 7, 6, 3, 3, 5), dict(padding="same")),
    ("same even kernel", (2, 2, 6, 7, 3, 2, 4), dict(padding="same")),
    ("same even kernel dilated", (1, 2, 7, 8, 2, 4, 2), dict(padding="same", dilation=(2, 3))),
    ("same 1x1", (1, 3, 5, 4, 2, 1, 1), dict(padding="same")),
    ("dilation 2", (2, 2, 9, 9, 3, 3, 3), dict(dilation=2)),
    ("dilation (1, 2)", (1, 2, 6, 9, 2, 3, 3), dict(dilation=(1, 2))),
    ("dilation stride padding", (2, 2, 9, 8, 2, 3, 2), dict(stride=2, padding=1, dilation=2)),
    ("groups 2", (2, 4, 7, 7, 4, 3, 3), dict(groups=2)),
    ("groups 2, O = 3 groups", (1, 4, 6, 7, 6, 2, 3), dict(groups=2, stride=(2, 1), padding=1)),
    ("depthwise", (2, 3, 7, 8, 3, 3, 3), dict(groups=3, padding=1)),
    ("depthwise multiplier 2", (1, 2, 6, 6, 4, 3, 3), dict(groups=2, dilation=2, padding="same")),
    ("groups 4", (1, 4, 5, 6, 4, 2, 2), dict(groups=4, stride=2)),
    ("1x1", (3, 4, 5, 6, 2, 1, 1), {}),
    ("1x1 stride 2 padding 1", (2, 3, 7, 6, 4, 1, 1), dict(stride=2, padding=1)),
    ("kernel fills the padded input", (2, 2, 5, 6, 3, 7, 8), dict(padding=1)),
    ("kernel fills the input", (1, 3, 4, 5, 2, 4, 5), {}),
    ("dilated kernel fills the input", (1, 2, 5, 7, 2, 3, 4), dict(dilation=2)),
    ("one-row image", (2, 2, 1, 9, 2, 1, 3), dict(padding=(0, 1))),
    ("a register tile of output channels", (2, 3, 9, 10, 8, 3, 3), dict(padding=1)),
    ("three quarters of a register tile", (2, 1, 9, 10, 6, 5, 5), dict(padding=2)),
    ("bands of a tall image", (1, 2, 40, 9, 8, 3, 3), dict(padding=1)),
    ("five output channels", (2, 3, 8, 9, 5, 3, 3), dict(padding=1)),
    ("two tiles and a part", (1, 4, 12, 11, 17, 2, 3), dict(dilation=(2, 1), padding=(1, 2))),
    ("tiles in two groups", (1, 4, 7, 9, 18, 3, 2), dict(groups=2)),
    ("same even kernel, 16 channels", (2, 2, 8, 7, 16, 2, 4), dict(padding="same")),
    ("band of one row", (1, 3, 3, 40, 9, 3, 1), {}),
    ("weight gradient as a matrix product", (1, 16, 4, 5, 9, 3, 3), dict(padding=1)),
]
CASE_PARAMS = [pytest.param(shapes, kwargs, id=name) for name, shapes, kwargs in CASES]


def sample(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def out_shape(x, w, stride=1, padding=0, dilation=1, groups=1):
    return naive._conv_terms(x.shape, w.shape, stride, padding, dilation, groups)[1]


def operands(rng, shapes, kwargs, dtype=np.float64):
    """x, weight, bias and a grad_output of the right shape for one case."""
    N, C, H, W, O, kh, kw = shapes
    x = sample(rng, (N, C, H, W), dtype)
    w = sample(rng, (O, C // kwargs.get("groups", 1), kh, kw), dtype)
    b = sample(rng, (O,), dtype)
    dy = sample(rng, out_shape(x, w, **kwargs), dtype)
    return x, w, b, dy


def assert_close(actual, expected, dtype):
    assert isinstance(actual, np.ndarray)
    assert actual.shape == expected.shape
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(1.0, np.abs(expected).max(initial=0)))


# The loops in naive.py check out against each other and against the definitions

@pytest.mark.parametrize("shapes, kwargs", CASE_PARAMS)
def test_naive_adjoint_identities(shapes, kwargs, rng):
    x, w, _, dy = operands(rng, shapes, kwargs)
    forward = np.vdot(naive.conv2d(x, w, **kwargs), dy)
    dx = naive.conv2d_input_grad(x.shape, w, dy, **kwargs)
    dw = naive.conv2d_weight_grad(x, w.shape, dy, **kwargs)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert np.vdot(x, dx) == pytest.approx(forward, rel=1e-12, abs=1e-12)
    assert np.vdot(w, dw) == pytest.approx(forward, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    "shapes, kwargs",
    [
        ((1, 2, 4, 5, 4, 2, 3), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
        ((2, 1, 4, 5, 2, 2, 4), dict(padding="same", dilation=(1, 2))),
    ],
)
def test_naive_finite_differences(shapes, kwargs, rng):
    x, w, b, dy = operands(rng, shapes, kwargs)
    dx = naive.conv2d_input_grad(x.shape, w, dy, **kwargs)
    dw = naive.conv2d_weight_grad(x, w.shape, dy, **kwargs)

    def loss(x, w):
        return np.vdot(naive.conv2d(x, w, b, **kwargs), dy)

    eps = 1e-3
    for a, grad, perturb in ((x, dx, lambda e: (x + e, w)), (w, dw, lambda e: (x, w + e))):
        for idx in np.ndindex(a.shape):
            e = np.zeros_like(a)
            e[idx] = eps
            numeric = (loss(*perturb(e)) - loss(*perturb(-e))) / (2 * eps)
            assert numeric == pytest.approx(grad[idx], rel=1e-7, abs=1e-9)


def test_naive_single_channel_is_the_chapter_corr2d(rng):
    x, k = sample(rng, (6, 7)), sample(rng, (2, 3))
    np.testing.assert_allclose(naive.conv2d(x[None, None], k[None, None])[0, 0], naive.corr2d(x, k), rtol=1e-14)


def test_naive_padding_stride_dilation_groups_from_their_definitions(rng):
    x, w = sample(rng, (2, 4, 7, 8)), sample(rng, (6, 2, 2, 3))
    valid = naive.conv2d(x, w, groups=2)
    np.testing.assert_allclose(naive.conv2d(x, w, padding=(1, 2), groups=2),
                               naive.conv2d(np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2))), w, groups=2), rtol=1e-14)
    np.testing.assert_allclose(naive.conv2d(x, w, stride=(2, 3), groups=2), valid[:, :, ::2, ::3], rtol=1e-14)
    spread = np.zeros((6, 2, 3, 7))
    spread[:, :, ::2, ::3] = w
    np.testing.assert_allclose(naive.conv2d(x, w, dilation=(2, 3), groups=2), naive.conv2d(x, spread, groups=2), rtol=1e-14)
    by_group = [naive.conv2d(x[:, 2 * g : 2 * g + 2], w[3 * g : 3 * g + 3]) for g in range(2)]
    np.testing.assert_allclose(valid, np.concatenate(by_group, axis=1), rtol=1e-14)
    b = sample(rng, (6,))
    np.testing.assert_allclose(naive.conv2d(x, w, b, groups=2), valid + b[:, None, None], rtol=1e-14)


@pytest.mark.parametrize("k, d, pads", [((3, 5), (1, 1), ((1, 1), (2, 2))), ((2, 4), (1, 1), ((0, 1), (1, 2))),
                                        ((4, 2), (2, 3), ((3, 3), (1, 2))), ((1, 1), (2, 2), ((0, 0), (0, 0)))])
def test_naive_same_padding_puts_the_extra_row_bottom_right(k, d, pads, rng):
    x, w = sample(rng, (1, 2, 6, 7)), sample(rng, (3, 2) + k)
    same = naive.conv2d(x, w, padding="same", dilation=d)
    assert same.shape[2:] == x.shape[2:]
    np.testing.assert_allclose(same, naive.conv2d(np.pad(x, ((0, 0), (0, 0)) + pads), w, dilation=d), rtol=1e-14)
    with pytest.raises(ValueError, match="same"):
        naive.conv2d(x, w, padding="same", stride=(1, 2))


# torch, when installed

def torch_reference(torch, x, w, b, dy, kwargs):
    """torch's forward and, by autograd, its input and weight gradients."""
    X = torch.from_numpy(x.copy()).requires_grad_()
    W = torch.from_numpy(w.copy()).requires_grad_()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
        Y = torch.nn.functional.conv2d(X, W, None if b is None else torch.from_numpy(b.copy()), **kwargs)
        Y.backward(torch.from_numpy(dy.copy()))
    return Y.detach().numpy(), X.grad.numpy(), W.grad.numpy()


@pytest.mark.parametrize("shapes, kwargs", CASE_PARAMS)
def test_naive_matches_torch(shapes, kwargs, torch, rng):
    x, w, b, dy = operands(rng, shapes, kwargs)
    y, dx, dw = torch_reference(torch, x, w, b, dy, kwargs)
    assert_close(naive.conv2d(x, w, b, **kwargs), y, np.float64)
    assert_close(naive.conv2d_input_grad(x.shape, w, dy, **kwargs), dx, np.float64)
    assert_close(naive.conv2d_weight_grad(x, w.shape, dy, **kwargs), dw, np.float64)


# fastcorr against the loops

@pytest.fixture(params=["plane by plane", "blocked"])
def conv_path(request, monkeypatch):
    """Small calls run plane by plane on the correlation loop; run them on the blocked conv loops too."""
    if request.param == "blocked":
        from fastcorr import conv

        monkeypatch.setattr(conv, "_TINY_WORK", 0)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes, kwargs", CASE_PARAMS)
def test_conv2d_and_grads_match_the_loops(shapes, kwargs, dtype, conv_path, twin, rng):
    x, w, b, dy = operands(rng, shapes, kwargs, dtype)
    assert_close(fc.conv2d(x, w, **kwargs), naive.conv2d(x, w, **kwargs), dtype)
    assert_close(fc.conv2d(x, w, b, **kwargs), naive.conv2d(x, w, b, **kwargs), dtype)
    assert_close(fc.conv2d_input_grad(x.shape, w, dy, **kwargs), naive.conv2d_input_grad(x.shape, w, dy, **kwargs), dtype)
    assert_close(fc.conv2d_weight_grad(x, w.shape, dy, **kwargs), naive.conv2d_weight_grad(x, w.shape, dy, **kwargs), dtype)


def resolved_pads(padding, k, d):
    if padding == "valid":
        return 0
    if padding == "same":
        return d * (k - 1)
    return 2 * padding


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 4))
    cg, og = draw(st.integers(1, 4 // groups)), draw(st.sampled_from([1, 2, 3, 8, 9, 17]))
    k = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    choices = [st.tuples(st.integers(0, 2), st.integers(0, 2)), st.just("valid")]
    padding = draw(st.one_of(choices + ([st.just("same")] if stride == (1, 1) else [])))
    pads = [resolved_pads(padding if isinstance(padding, str) else padding[i], k[i], dilation[i]) for i in range(2)]
    hw = [draw(st.integers(max(1, dilation[i] * (k[i] - 1) + 1 - pads[i]), 9)) for i in range(2)]
    scalar = draw(st.booleans())
    kwargs = dict(
        stride=stride[0] if scalar and stride[0] == stride[1] else stride,
        padding=padding[0] if scalar and not isinstance(padding, str) and padding[0] == padding[1] else padding,
        dilation=dilation, groups=groups,
    )
    return (draw(st.integers(1, 3)), groups * cg, hw[0], hw[1], groups * og) + k, kwargs


@given(problem=conv_problems(), dtype=st.sampled_from(DTYPES), bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_against_the_loops(problem, dtype, bias, seed):
    shapes, kwargs = problem
    x, w, b, dy = operands(np.random.default_rng(seed), shapes, kwargs, dtype)
    b = b if bias else None
    assert_close(fc.conv2d(x, w, b, **kwargs), naive.conv2d(x, w, b, **kwargs), dtype)
    assert_close(fc.conv2d_input_grad(x.shape, w, dy, **kwargs), naive.conv2d_input_grad(x.shape, w, dy, **kwargs), dtype)
    assert_close(fc.conv2d_weight_grad(x, w.shape, dy, **kwargs), naive.conv2d_weight_grad(x, w.shape, dy, **kwargs), dtype)


def nan_inf_operands(rng):
    """NaN and inf in x, inf and a zero in weight, inf in grad_output, some of them next to the zero padding."""
    x, w, dy = sample(rng, (2, 2, 6, 7)), sample(rng, (3, 2, 3, 2)), sample(rng, (2, 3, 6, 8))
    x[0, 1, 2, 3], x[1, 0, 5, 6] = np.nan, np.inf
    w[1, 0, 1, 1], w[0, 1, 0, 0] = 0.0, np.inf
    dy[1, 2, 0, 0] = np.inf
    return x, w, dy


NAN_INF_CALLS = {
    "conv2d": lambda m, x, w, dy: m.conv2d(x, w, padding=1),
    "conv2d_input_grad": lambda m, x, w, dy: m.conv2d_input_grad(x.shape, w, dy, padding=1),
    "conv2d_weight_grad": lambda m, x, w, dy: m.conv2d_weight_grad(x, w.shape, dy, padding=1),
}


def assert_same_nonfinite(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg="NaN positions")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected), err_msg="+inf positions")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected), err_msg="-inf positions")
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAN_INF_CALLS)
def test_naive_nan_and_inf_match_torch(name, torch, rng):
    x, w, dy = nan_inf_operands(rng)
    T = torch.from_numpy
    expected = {
        "conv2d": lambda: torch.nn.functional.conv2d(T(x), T(w), padding=1),
        "conv2d_input_grad": lambda: torch.nn.grad.conv2d_input(x.shape, T(w), T(dy), padding=1),
        "conv2d_weight_grad": lambda: torch.nn.grad.conv2d_weight(T(x), w.shape, T(dy), padding=1),
    }[name]().numpy()
    with np.errstate(invalid="ignore"):
        assert_same_nonfinite(NAN_INF_CALLS[name](naive, x, w, dy), expected)


@pytest.mark.parametrize("name", NAN_INF_CALLS)
def test_nan_and_inf_propagate_like_the_loops(name, rng):
    x, w, dy = nan_inf_operands(rng)
    with np.errstate(invalid="ignore"):
        expected = NAN_INF_CALLS[name](naive, x, w, dy)
    assert_same_nonfinite(NAN_INF_CALLS[name](fc, x, w, dy), expected)


def test_empty_batch(rng):
    x, w = np.zeros((0, 2, 5, 6)), sample(rng, (4, 1, 3, 3))
    y = fc.conv2d(x, w, groups=2, padding=1)
    assert y.shape == (0, 4, 5, 6) and y.dtype == np.float64
    assert fc.conv2d_input_grad(x.shape, w, y, groups=2, padding=1).shape == x.shape
    dw = fc.conv2d_weight_grad(x, w.shape, y, groups=2, padding=1)
    np.testing.assert_array_equal(dw, np.zeros(w.shape))


def test_grad_input_shape_picks_among_strided_sizes(rng):
    w, dy = sample(rng, (2, 3, 3, 3)), sample(rng, (1, 2, 3, 3))
    for size in (7, 8):
        dx = fc.conv2d_input_grad((1, 3, size, size), w, dy, stride=2)
        assert_close(dx, naive.conv2d_input_grad((1, 3, size, size), w, dy, stride=2), np.float64)
    np.testing.assert_array_equal(dx[:, :, 7], 0.0)


def test_positional_arguments_follow_torch(rng):
    x, w, b = sample(rng, (2, 4, 7, 8)), sample(rng, (4, 2, 3, 2)), sample(rng, (4,))
    kwargs = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    y = fc.conv2d(x, w, b, (2, 1), 1, (1, 2), 2)
    assert_close(y, naive.conv2d(x, w, b, **kwargs), np.float64)
    dy = sample(rng, y.shape)
    assert_close(fc.conv2d_input_grad(x.shape, w, dy, (2, 1), 1, (1, 2), 2), naive.conv2d_input_grad(x.shape, w, dy, **kwargs), np.float64)
    assert_close(fc.conv2d_weight_grad(x, w.shape, dy, (2, 1), 1, (1, 2), 2), naive.conv2d_weight_grad(x, w.shape, dy, **kwargs), np.float64)


def test_numpy_integers_and_lists_as_options(rng):
    x, w = sample(rng, (1, 2, 7, 7)), sample(rng, (2, 1, 3, 3))
    expected = naive.conv2d(x, w, stride=2, padding=(1, 0), dilation=2, groups=2)
    got = fc.conv2d(x, w, stride=np.int64(2), padding=[np.int32(1), 0], dilation=(np.uint8(2), 2), groups=np.int16(2))
    assert_close(got, expected, np.float64)


# fastcorr against torch over the option grid

STRIDES = [1, 2, 3, (1, 2), (3, 1)]
PADDINGS = [0, 1, (2, 0), (0, 3), "valid", "same"]
DILATIONS = [1, 2, (1, 2)]
GROUPINGS = [(4, 4, 1), (4, 6, 2), (3, 3, 3), (2, 4, 2)]
KERNELS = [(3, 3), (2, 4), (1, 1), (4, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "stride, padding",
    [(s, p) for s, p in itertools.product(STRIDES, PADDINGS) if p != "same" or s == 1],
)
def test_against_torch(stride, padding, dtype, torch, rng):
    for dilation, (C, O, groups), k in itertools.product(DILATIONS, GROUPINGS, KERNELS):
        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        x, w, b = sample(rng, (2, C, 9, 8), dtype), sample(rng, (O, C // groups) + k, dtype), sample(rng, (O,), dtype)
        dy = sample(rng, out_shape(x, w, **kwargs), dtype)
        y, dx, dw = torch_reference(torch, x, w, b, dy, kwargs)
        case = f"{kwargs}, kernel {k}, C={C}, O={O}, {np.dtype(dtype)}"
        checks = [
            ("conv2d", fc.conv2d(x, w, b, **kwargs), y),
            ("conv2d_input_grad", fc.conv2d_input_grad(x.shape, w, dy, **kwargs), dx),
            ("conv2d_weight_grad", fc.conv2d_weight_grad(x, w.shape, dy, **kwargs), dw),
        ]
        if not isinstance(padding, str):
            T = torch.from_numpy
            checks += [
                ("conv2d_input_grad vs torch.nn.grad", checks[1][1], torch.nn.grad.conv2d_input(x.shape, T(w), T(dy), **kwargs).numpy()),
                ("conv2d_weight_grad vs torch.nn.grad", checks[2][1], torch.nn.grad.conv2d_weight(T(x), w.shape, T(dy), **kwargs).numpy()),
            ]
        for name, got, expected in checks:
            try:
                assert_close(got, expected, expected.dtype)
            except AssertionError as exc:
                raise AssertionError(f"{name} with {case}: {exc}") from None


@pytest.mark.parametrize("k", [(2, 2), (2, 4), (4, 3), (1, 2)])
@pytest.mark.parametrize("dilation", [1, (2, 3)])
def test_same_padding_with_even_kernels_matches_torch(k, dilation, torch, rng):
    x, w = sample(rng, (2, 3, 7, 8), np.float32), sample(rng, (2, 3) + k, np.float32)
    kwargs = dict(padding="same", dilation=dilation)
    dy = sample(rng, (2, 2, 7, 8), np.float32)
    y, dx, dw = torch_reference(torch, x, w, None, dy, kwargs)
    assert_close(fc.conv2d(x, w, **kwargs), y, np.float32)
    assert_close(fc.conv2d_input_grad(x.shape, w, dy, **kwargs), dx, np.float32)
    assert_close(fc.conv2d_weight_grad(x, w.shape, dy, **kwargs), dw, np.float32)


# Memory layouts

def layouts4(a):
    """Yield (name, array) pairs that all hold the values of the 4-D array ``a``."""
    a = np.asarray(a)
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    yield "negative strides", np.ascontiguousarray(a[::-1, ::-1, ::-1, ::-1])[::-1, ::-1, ::-1, ::-1]
    gapped = np.full((2 * a.shape[0], a.shape[1], 3 * a.shape[2], 2 * a.shape[3]), np.nan, a.dtype)
    gapped[::2, :, ::3, ::2] = a
    yield "gapped", gapped[::2, :, ::3, ::2]
    yield "channels last", np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    yield "transposed", np.ascontiguousarray(a.T).T
    yield "byte-swapped", a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder in "=<" else "<"))
    readonly = a.copy()
    readonly.flags.writeable = False
    yield "read-only", readonly


def vector_layouts(b):
    yield "C", b.copy()
    yield "negative stride", b[::-1].copy()[::-1]
    gapped = np.full(2 * b.size, np.nan, b.dtype)
    gapped[::2] = b
    yield "gapped", gapped[::2]
    yield "byte-swapped", b.astype(b.dtype.newbyteorder(">" if b.dtype.byteorder in "=<" else "<"))


def unchanged(arrays, call):
    before = [a.copy() for a in arrays]
    result = call()
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
    return result


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_layout_gives_the_same_answer_and_is_not_modified(dtype, rng):
    x, w, b = sample(rng, (2, 4, 7, 6), dtype), sample(rng, (6, 2, 3, 2), dtype), sample(rng, (6,), dtype)
    kwargs = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    dy = sample(rng, out_shape(x, w, **kwargs), dtype)
    y = naive.conv2d(x, w, b, **kwargs)
    dx = naive.conv2d_input_grad(x.shape, w, dy, **kwargs)
    dw = naive.conv2d_weight_grad(x, w.shape, dy, **kwargs)
    for (nx, xl), (nw, wl) in itertools.product(layouts4(x), layouts4(w)):
        try:
            assert_close(unchanged([xl, wl], lambda: fc.conv2d(xl, wl, b, **kwargs)), y, dtype)
        except AssertionError as exc:
            raise AssertionError(f"x {nx}, weight {nw}: {exc}") from None
    for nb, bl in vector_layouts(b):
        try:
            assert_close(unchanged([bl], lambda: fc.conv2d(x, w, bl, **kwargs)), y, dtype)
        except AssertionError as exc:
            raise AssertionError(f"bias {nb}: {exc}") from None
    for (nw, wl), (ny, dyl) in itertools.product(layouts4(w), layouts4(dy)):
        try:
            assert_close(unchanged([wl, dyl], lambda: fc.conv2d_input_grad(x.shape, wl, dyl, **kwargs)), dx, dtype)
        except AssertionError as exc:
            raise AssertionError(f"input grad: weight {nw}, grad_output {ny}: {exc}") from None
    for (nx, xl), (ny, dyl) in itertools.product(layouts4(x), layouts4(dy)):
        try:
            assert_close(unchanged([xl, dyl], lambda: fc.conv2d_weight_grad(xl, w.shape, dyl, **kwargs)), dw, dtype)
        except AssertionError as exc:
            raise AssertionError(f"weight grad: input {nx}, grad_output {ny}: {exc}") from None


# dtypes

@pytest.mark.parametrize(
    "x_dtype, w_dtype, b_dtype, out_dtype",
    [
        (np.float32, np.float32, None, np.float32),
        (np.float32, np.float32, np.float32, np.float32),
        (np.float16, np.float32, None, np.float32),
        (np.float16, np.float16, np.float16, np.float32),
        (np.float32, np.float64, None, np.float64),
        (np.float64, np.float32, None, np.float64),
        (np.float32, np.float32, np.float64, np.float64),
        (np.float64, np.float64, None, np.float64),
        (np.int64, np.int64, None, np.float64),
        (np.int8, np.float32, None, np.float64),
        (np.float32, np.uint8, np.float32, np.float64),
        (np.bool_, np.bool_, np.bool_, np.float64),
    ],
)
def test_conv2d_dtype_rule(x_dtype, w_dtype, b_dtype, out_dtype):
    x, w = np.ones((2, 2, 4, 5), x_dtype), np.ones((3, 2, 2, 2), w_dtype)
    b = None if b_dtype is None else np.ones(3, b_dtype)
    y = fc.conv2d(x, w, b)
    assert y.dtype == out_dtype
    np.testing.assert_array_equal(y, np.full((2, 3, 3, 4), 8.0 if b is None else 9.0))


@pytest.mark.parametrize(
    "a_dtype, dy_dtype, out_dtype",
    [
        (np.float32, np.float32, np.float32),
        (np.float16, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.float64, np.float32, np.float64),
        (np.int32, np.float32, np.float64),
        (np.float32, np.int16, np.float64),
        (np.bool_, np.bool_, np.float64),
    ],
)
def test_grad_dtype_rule(a_dtype, dy_dtype, out_dtype):
    x, w, dy = np.ones((2, 2, 4, 5), a_dtype), np.ones((3, 2, 2, 2), a_dtype), np.ones((2, 3, 3, 4), dy_dtype)
    dx = fc.conv2d_input_grad(x.shape, w, dy)
    dw = fc.conv2d_weight_grad(x, w.shape, dy)
    assert dx.dtype == dw.dtype == out_dtype
    np.testing.assert_array_equal(dx, naive.conv2d_input_grad(x.shape, w, dy))
    np.testing.assert_array_equal(dw, np.full(w.shape, 24.0))


# out=

@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_out_buffer_is_reused(dtype, rng):
    x, w, b = sample(rng, (2, 4, 7, 6), dtype), sample(rng, (2, 2, 3, 3), dtype), sample(rng, (2,), dtype)
    out = np.full((2, 2, 4, 3), np.nan, dtype)
    assert fc.conv2d(x, w, b, stride=(2, 2), padding=1, groups=2, out=out) is out
    assert_close(out, naive.conv2d(x, w, b, stride=(2, 2), padding=1, groups=2), dtype)


@pytest.mark.parametrize(
    "out, exception",
    [
        (np.empty((2, 2, 4, 4)), ValueError),
        (np.empty((2, 2, 5, 4)), ValueError),
        (np.empty((2, 2, 5, 5), np.float32), ValueError),
        (np.empty((2, 2, 5, 10))[..., ::2], ValueError),
        (np.empty((2, 2, 5, 5)).tolist(), TypeError),
    ],
    ids=["wrong shape", "wrong shape 2", "wrong dtype", "not contiguous", "list"],
)
def test_conv2d_bad_out(out, exception):
    with pytest.raises(exception, match="out must"):
        fc.conv2d(np.ones((2, 3, 7, 7)), np.ones((2, 3, 3, 3)), out=out)


def test_conv2d_out_may_not_alias_the_input():
    x = np.ones((1, 2, 4, 4))
    with pytest.raises(ValueError, match="out must"):
        fc.conv2d(x, np.ones((2, 2, 1, 1)), out=x)


@pytest.mark.parametrize("read", ["x", "weight", "bias"])
def test_conv2d_out_may_not_alias_anything_it_reads(read):
    out = np.zeros((1, 2, 4, 4))
    args = dict(x=np.ones((1, 1, 4, 4)), weight=np.ones((2, 1, 1, 1)), bias=np.ones(2))
    args[read] = out.reshape(-1)[: args[read].size].reshape(args[read].shape)
    with pytest.raises(ValueError, match="out must not share memory with the inputs"):
        fc.conv2d(**args, out=out)


def test_strides_up_to_the_index_limit_match_torch(torch, rng):
    x, w = sample(rng, (1, 2, 5, 6)), sample(rng, (3, 2, 2, 2))
    got = fc.conv2d(x, w, stride=2**62, dilation=(1, 3))
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2**62, dilation=(1, 3))
    assert got.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12)


# Bad input names the argument

DEFAULTS = {
    "conv2d": dict(x=np.ones((1, 4, 6, 6)), weight=np.ones((2, 4, 3, 3))),
    "conv2d_input_grad": dict(input_shape=(1, 4, 6, 6), weight=np.ones((2, 4, 3, 3)), grad_output=np.ones((1, 2, 4, 4))),
    "conv2d_weight_grad": dict(input=np.ones((1, 4, 6, 6)), weight_shape=(2, 4, 3, 3), grad_output=np.ones((1, 2, 4, 4))),
}
BOTH = (ValueError, TypeError)

BAD_OPTIONS = [
    (dict(groups=0), ValueError, "groups"),
    (dict(groups=-2), ValueError, "groups"),
    (dict(groups=3), ValueError, "groups"),
    (dict(groups=1.5), BOTH, "groups"),
    (dict(stride=0), ValueError, "stride must be"),
    (dict(stride=-1), ValueError, "stride must be"),
    (dict(stride=(1, 0)), ValueError, "stride must be"),
    (dict(stride=(1, 2, 3)), BOTH, "stride"),
    (dict(stride=1.5), BOTH, "stride"),
    (dict(stride="2"), BOTH, "stride"),
    (dict(dilation=0), ValueError, "dilation must be"),
    (dict(dilation=(2, 0)), ValueError, "dilation must be"),
    (dict(dilation=(1,)), BOTH, "dilation"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding=(0, -2)), ValueError, "padding"),
    (dict(padding="full"), ValueError, "padding"),
    (dict(padding="SAME"), ValueError, "padding"),
    (dict(padding=None), BOTH, "padding"),
    (dict(padding=(1, 1, 1, 1)), BOTH, "padding"),
    (dict(padding="same", stride=2), ValueError, "same"),
    (dict(padding="same", stride=(1, 2)), ValueError, "same"),
    (dict(dilation=3), ValueError, "[Kk]ernel"),
    (dict(stride=2**64), ValueError, r"stride must be less than 2\*\*63"),
    (dict(stride=(1, 2**63)), ValueError, r"stride must be less than 2\*\*63"),
    (dict(dilation=2**63), ValueError, r"dilation must be less than 2\*\*63"),
    (dict(padding=(2**70, 0)), ValueError, r"padding must be less than 2\*\*63"),
]

BAD_INPUTS = [(name, kwargs, exc, match) for name in DEFAULTS for kwargs, exc, match in BAD_OPTIONS] + [
    ("conv2d", dict(x=np.ones((4, 6, 6))), ValueError, "x must be 4-D"),
    ("conv2d", dict(x=np.ones((1, 1, 4, 6, 6))), ValueError, "x must be 4-D"),
    ("conv2d", dict(x=None), TypeError, "x must"),
    ("conv2d", dict(x=np.full((1, 4, 6, 6), "a")), TypeError, "x must"),
    ("conv2d", dict(weight=np.ones((2, 4, 3))), ValueError, "weight must be 4-D"),
    ("conv2d", dict(weight=None), TypeError, "weight must"),
    ("conv2d", dict(x=np.ones((1, 3, 6, 6))), ValueError, "channels"),
    ("conv2d", dict(weight=np.ones((2, 2, 3, 3))), ValueError, "channels"),
    ("conv2d", dict(weight=np.ones((3, 2, 3, 3)), groups=2), ValueError, "groups"),
    ("conv2d", dict(x=np.ones((1, 3, 6, 6)), weight=np.ones((2, 1, 3, 3)), groups=2), ValueError, "groups"),
    ("conv2d", dict(x=np.ones((1, 4, 2, 6))), ValueError, "[Kk]ernel"),
    ("conv2d", dict(weight=np.ones((2, 4, 1, 7))), ValueError, "[Kk]ernel"),
    ("conv2d", dict(bias=np.ones(3)), ValueError, "bias"),
    ("conv2d", dict(bias=np.ones((2, 1))), ValueError, "bias"),
    ("conv2d", dict(bias=np.ones(0)), ValueError, "bias"),
    ("conv2d", dict(bias=np.ones(2, np.complex64)), TypeError, "bias must be real"),
    ("conv2d", dict(weight=np.ones((0, 4, 3, 3))), ValueError, r"weight of shape \(0, 4, 3, 3\) is empty"),
    ("conv2d_input_grad", dict(weight=np.ones((0, 4, 3, 3)), grad_output=np.ones((1, 0, 4, 4))), ValueError,
     r"weight of shape \(0, 4, 3, 3\) is empty"),
    ("conv2d_weight_grad", dict(weight_shape=(0, 4, 3, 3), grad_output=np.ones((1, 0, 4, 4))), ValueError,
     r"weight of shape \(0, 4, 3, 3\) is empty"),
    ("conv2d_input_grad", dict(input_shape=(1, 4, 6.9, 6)), TypeError, "input_shape must be a sequence of 4 ints"),
    ("conv2d_input_grad", dict(input_shape=(1, 4, "6", 6)), TypeError, "input_shape must be a sequence of 4 ints"),
    ("conv2d_input_grad", dict(input_shape=(1, True, 6, 6)), TypeError, "input_shape must be a sequence of 4 ints"),
    ("conv2d_input_grad", dict(input_shape=1.7), TypeError, "input_shape must be a sequence of 4 ints"),
    ("conv2d_weight_grad", dict(weight_shape=(2, 4, 3.9, 3)), TypeError, "weight_shape must be a sequence of 4 ints"),
    ("conv2d_weight_grad", dict(weight_shape="5"), TypeError, "weight_shape must be a sequence of 4 ints"),
    ("conv2d_input_grad", dict(input_shape=(4, 6, 6)), ValueError, "input_shape"),
    ("conv2d_input_grad", dict(input_shape=(1, 4, 6, 6, 1)), ValueError, "input_shape"),
    ("conv2d_input_grad", dict(input_shape=(1, 4, -6, 6)), ValueError, "input_shape"),
    ("conv2d_input_grad", dict(input_shape=(1, 4, 7, 6)), ValueError, "grad_output"),
    ("conv2d_input_grad", dict(input_shape=(1, 3, 6, 6)), ValueError, "channels"),
    ("conv2d_input_grad", dict(input_shape=(1, 4, 2, 6)), ValueError, "[Kk]ernel"),
    ("conv2d_input_grad", dict(weight=np.ones((2, 4, 3))), ValueError, "weight must be 4-D"),
    ("conv2d_input_grad", dict(grad_output=np.ones((1, 3, 4, 4))), ValueError, "grad_output"),
    ("conv2d_input_grad", dict(grad_output=np.ones((2, 2, 4, 4))), ValueError, "grad_output"),
    ("conv2d_input_grad", dict(grad_output=np.ones((2, 4, 4))), ValueError, "grad_output"),
    ("conv2d_input_grad", dict(stride=2), ValueError, "grad_output"),
    ("conv2d_input_grad", dict(grad_output=None), TypeError, "grad_output"),
    ("conv2d_weight_grad", dict(input=np.ones((4, 6, 6))), ValueError, "input must be 4-D"),
    ("conv2d_weight_grad", dict(input=None), TypeError, "input must"),
    ("conv2d_weight_grad", dict(weight_shape=(2, 4, 3)), ValueError, "weight_shape"),
    ("conv2d_weight_grad", dict(weight_shape=(2, 4, 3, 3, 1)), ValueError, "weight_shape"),
    ("conv2d_weight_grad", dict(weight_shape=(2, 3, 3, 3)), ValueError, "channels"),
    ("conv2d_weight_grad", dict(weight_shape=(3, 2, 3, 3), groups=2), ValueError, "groups"),
    ("conv2d_weight_grad", dict(weight_shape=(2, 4, 7, 3)), ValueError, "[Kk]ernel"),
    ("conv2d_weight_grad", dict(grad_output=np.ones((1, 2, 3, 4))), ValueError, "grad_output"),
    ("conv2d_weight_grad", dict(grad_output=np.ones((1, 3, 4, 4))), ValueError, "grad_output"),
]


def describe(value):
    return f"shape {value.shape}" if isinstance(value, np.ndarray) else repr(value)


@pytest.mark.parametrize(
    "name, kwargs, exception, match",
    BAD_INPUTS,
    ids=[f"{name}: " + ", ".join(f"{k}={describe(v)}" for k, v in kwargs.items()) for name, kwargs, _, _ in BAD_INPUTS],
)
def test_bad_input(name, kwargs, exception, match):
    with pytest.raises(exception, match=match):
        getattr(fc, name)(**(DEFAULTS[name] | kwargs))


@pytest.mark.parametrize("dtype", DTYPES)
def test_blocked_and_plain_gradient_loops_differ_by_rounding_only(dtype, rng):
    """An inf or NaN sends a stride-1 gradient from the blocked loops to the plain ones."""
    from fastcorr import conv
    from fastcorr._kernels import conv as kernels

    x, w, _, dy = operands(rng, (2, 3, 9, 10, 4, 3, 3), dict(padding=1), dtype)
    geo = conv._geometry("test", w.shape, 1, 1, 1, 1)
    eps, terms = np.finfo(dtype).eps, x.shape[0] * dy.shape[2] * dy.shape[3]
    blocked = conv._weight_grad(x, dy, np.empty(w.shape, dtype), geo)
    plain = np.empty(w.shape, dtype)
    kernels.weight_grad.serial(x, dy, plain, *geo.kernel_args())
    scale = naive.conv2d_weight_grad(np.abs(x), w.shape, np.abs(dy), padding=1)
    assert (np.abs(blocked - plain) <= 2 * terms * eps * scale).all()
    blocked = conv._input_grad(dy, w, np.empty(x.shape, dtype), geo)
    plain = np.empty(x.shape, dtype)
    kernels.input_grad.serial(dy, w, plain, *geo.kernel_args())
    scale = naive.conv2d_input_grad(x.shape, np.abs(w), np.abs(dy), padding=1)
    assert (np.abs(blocked - plain) <= 2 * w[0].size * w.shape[0] * eps * scale).all()
