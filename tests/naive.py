"""Slow, obviously right loops: the oracles for every test."""

from __future__ import annotations

import itertools

import numpy as np


def corr2d(X, K):
    """The chapter's two loops, verbatim apart from numpy for torch."""
    X, K = np.asarray(X), np.asarray(K)
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=np.result_type(X, K, np.float64))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def source(t, n, boundary):
    """The index that position ``t`` of an axis of length ``n`` reads when the axis is extended by
    ``boundary`` ('fill', 'wrap', 'symm', 'nearest' or 'mirror'); None for the fill value."""
    if 0 <= t < n:
        return t
    if boundary == "fill":
        return None
    if boundary == "wrap":
        return t % n
    if boundary == "nearest":
        return 0 if t < 0 else n - 1
    if boundary == "mirror":
        if n == 1:
            return 0
        t %= 2 * n - 2
        return t if t < n else 2 * n - 2 - t
    t %= 2 * n
    return t if t < n else 2 * n - 1 - t


def extended(x, t, u, boundary, fill):
    """x[t, u] with x extended beyond its edges by ``boundary`` (:func:`source`)."""
    r, c = source(t, x.shape[0], boundary), source(u, x.shape[1], boundary)
    return fill if r is None or c is None else x[r, c]


#: scipy.ndimage's mode names as :func:`source`'s.
NDIMAGE_MODES = {"reflect": "symm", "grid-mirror": "symm", "constant": "fill", "grid-constant": "fill",
                 "nearest": "nearest", "mirror": "mirror", "wrap": "wrap", "grid-wrap": "wrap"}


def ndimage_correlate(x, w, mode="reflect", cval=0.0, origin=0):
    """scipy.ndimage.correlate of real arrays as loops, in float64: every output, every tap,
    ``out[i] = sum_a w[a] * ext(x)[i + a - (w.shape // 2 + origin)]``."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    origins = [origin] * x.ndim if np.ndim(origin) == 0 else list(origin)
    pads = [n // 2 + o for n, o in zip(w.shape, origins)]
    boundary = NDIMAGE_MODES[mode]
    out = np.zeros(x.shape)
    for i in itertools.product(*map(range, x.shape)):
        acc = 0.0
        for a in itertools.product(*map(range, w.shape)):
            t = [source(ii + aa - p, n, boundary) for ii, aa, p, n in zip(i, a, pads, x.shape)]
            acc += w[a] * (cval if None in t else x[tuple(t)])
        out[i] = acc
    return out


def shifted_correlation(x, k, shape, p0, p1, boundary, fill):
    """out[i, j] = sum_ab k[a, b] * ext(x)[i + a - p0, j + b - p1] for an output of ``shape``:
    the extended image built from the rows and columns each of its rows and columns reads
    (:func:`source`; the fill value where either is outside), then one window per output."""
    kh, kw = k.shape
    rows = [source(t - p0, x.shape[0], boundary) for t in range(shape[0] + kh - 1)]
    cols = [source(u - p1, x.shape[1], boundary) for u in range(shape[1] + kw - 1)]
    ext = np.full((len(rows), len(cols)), fill, dtype=np.result_type(x, k))
    inside_rows = [t for t, r in enumerate(rows) if r is not None]
    inside_cols = [u for u, c in enumerate(cols) if c is not None]
    ext[np.ix_(inside_rows, inside_cols)] = x[np.ix_([rows[t] for t in inside_rows], [cols[u] for u in inside_cols])]
    windows = np.lib.stride_tricks.sliding_window_view(ext, (kh, kw))
    return np.einsum("ijab,ab->ij", windows, k)


def _loops(in1, kernel, mode, boundary, fillvalue, same_pad):
    """out[i, j] = sum_ab ext(in1)[i + a - p0, j + b - p1] * kernel[a, b], one term at a time."""
    h, w = in1.shape
    kh, kw = kernel.shape
    dtype = np.result_type(in1, kernel)
    fill = np.array(fillvalue).astype(dtype)[()]
    if mode == "full":
        shape, (p0, p1) = (h + kh - 1, w + kw - 1), (kh - 1, kw - 1)
    elif mode == "same":
        shape, (p0, p1) = (h, w), same_pad(kh, kw)
    else:
        shape, (p0, p1) = (h - kh + 1, w - kw + 1), (0, 0)
    out = np.zeros(shape, dtype)
    for i in range(shape[0]):
        for j in range(shape[1]):
            acc = dtype.type(0)
            for a in range(kh):
                for b in range(kw):
                    acc += extended(in1, i + a - p0, j + b - p1, boundary, fill) * kernel[a, b]
            out[i, j] = acc
    return out


def _smaller(in1, in2):
    return not (in1.shape[0] >= in2.shape[0] and in1.shape[1] >= in2.shape[1])


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """scipy.signal.correlate2d as loops, with a correct swapped complex 'valid' result."""
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if mode == "valid" and _smaller(in1, in2):
        # corr(a, b)[k] = conj(corr(b, a)[-k])
        return np.conj(correlate2d(in2, in1, mode, boundary, fillvalue)[::-1, ::-1])
    return _loops(in1, np.conj(in2), mode, boundary, fillvalue, lambda kh, kw: ((kh - 1) // 2, (kw - 1) // 2))


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """scipy.signal.convolve2d as loops: correlation with the kernel flipped (convolution commutes)."""
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if mode == "valid" and _smaller(in1, in2):
        in1, in2 = in2, in1
    return _loops(in1, in2[::-1, ::-1], mode, boundary, fillvalue, lambda kh, kw: (kh // 2, kw // 2))


def corr2d_grad(X, K, dY):
    """Gradients of sum(corr2d(X, K) * dY) by the chain rule, one term at a time."""
    X, K, dY = np.asarray(X), np.asarray(K), np.asarray(dY)
    dtype = np.result_type(X, K, dY, np.float64)
    dX = np.zeros(X.shape, dtype)
    dK = np.zeros(K.shape, dtype)
    h, w = K.shape
    for i in range(dY.shape[0]):
        for j in range(dY.shape[1]):
            dX[i : i + h, j : j + w] += dY[i, j] * K
            dK += dY[i, j] * X[i : i + h, j : j + w]
    return dX, dK


def _pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _conv_terms(x_shape, w_shape, stride, padding, dilation, groups):
    """conv2d's geometry: the zero padding per side, the output shape, and every tap of the weight.

    Each tap is (an index into weight, the input channel it reads, and the rows and columns of
    the padded input that it multiplies, one per output row and column): the tap (o, c, a, b)
    adds xpad[n, channel, i*s + a*d, j*s + b*d] * weight[o, c, a, b] to every output y[n, o, i, j].
    """
    N, C, H, W = x_shape
    O, Cg, kh, kw = w_shape
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    if isinstance(padding, str) and padding == "valid":
        pads = ((0, 0), (0, 0))
    elif isinstance(padding, str) and padding == "same":
        if (sh, sw) != (1, 1):
            raise ValueError("padding='same' is not supported for strided convolutions")
        pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for d, k in ((dh, kh), (dw, kw)))
    else:
        pads = tuple((p, p) for p in _pair(padding))
    (top, bottom), (left, right) = pads
    Ho = (H + top + bottom - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + left + right - dw * (kw - 1) - 1) // sw + 1
    assert C == Cg * groups and O % groups == 0 and Ho > 0 and Wo > 0
    taps = (
        ((o, c, a, b), o // (O // groups) * Cg + c,
         slice(a * dh, a * dh + (Ho - 1) * sh + 1, sh), slice(b * dw, b * dw + (Wo - 1) * sw + 1, sw))
        for o, c, a, b in itertools.product(range(O), range(Cg), range(kh), range(kw))
    )
    return ((0, 0), (0, 0)) + pads, (N, O, Ho, Wo), taps


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d as loops: y[n, o, i, j] = bias[o] + sum of xpad[n, c, i*s + a*d, j*s + b*d] * weight[o, c, a, b]."""
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    pads, shape, taps = _conv_terms(x.shape, weight.shape, stride, padding, dilation, groups)
    xpad = np.pad(x, pads)
    y = np.zeros(shape)
    for wi, channel, rows, cols in taps:
        y[:, wi[0]] += xpad[:, channel, rows, cols] * weight[wi]
    if bias is not None:
        y += np.asarray(bias, np.float64)[:, None, None]
    return y


def conv2d_input_grad(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """d sum(conv2d(x, weight) * grad_output) / dx by the chain rule, one tap at a time."""
    weight, dy = np.asarray(weight, np.float64), np.asarray(grad_output, np.float64)
    pads, shape, taps = _conv_terms(tuple(input_shape), weight.shape, stride, padding, dilation, groups)
    assert dy.shape == shape
    dxpad = np.zeros([n + lo + hi for n, (lo, hi) in zip(input_shape, pads)])
    for wi, channel, rows, cols in taps:
        dxpad[:, channel, rows, cols] += dy[:, wi[0]] * weight[wi]
    (top, _), (left, _) = pads[2:]
    return dxpad[:, :, top : top + input_shape[2], left : left + input_shape[3]]


def conv2d_weight_grad(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """d sum(conv2d(input, weight) * grad_output) / dweight by the chain rule, one tap at a time."""
    x, dy = np.asarray(input, np.float64), np.asarray(grad_output, np.float64)
    pads, shape, taps = _conv_terms(x.shape, tuple(weight_shape), stride, padding, dilation, groups)
    assert dy.shape == shape
    xpad = np.pad(x, pads)
    dw = np.zeros(weight_shape)
    for wi, channel, rows, cols in taps:
        dw[wi] = (xpad[:, channel, rows, cols] * dy[:, wi[0]]).sum()
    return dw
