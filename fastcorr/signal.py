"""corr2d, correlate2d, convolve2d and corr2d_grad: validate, allocate, run a kernel."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastcorr import _validate
from fastcorr._kernels import conv as _conv
from fastcorr._kernels import corr as _corr
from fastcorr._kernels.scan import all_finite

Mode = Literal["full", "same", "valid"]
Boundary = Literal["fill", "pad", "wrap", "circular", "symm", "symmetric"]
Method = Literal["auto", "direct", "fft"]

_MODES = {"valid": "valid", "same": "same", "full": "full"}
_BOUNDARIES = {
    "fill": _corr.FILL, "pad": _corr.FILL,
    "wrap": _corr.WRAP, "circular": _corr.WRAP,
    "symm": _corr.SYMM, "symmetric": _corr.SYMM,
}
_METHODS = {"auto": "auto", "direct": "direct", "fft": "fft"}
_BOUNDARY_ERROR = "Acceptable boundary flags are 'fill', 'circular' (or 'wrap'), and 'symmetric' (or 'symm')"


_NATIVE_FLOATS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


def _run(x, k, out, p0=0, p1=0, boundary=_corr.FILL, fill=None):
    """out[i, j] = sum_ab k[a, b] * ext(x)[i + a - p0, j + b - p1] on contiguous arrays."""
    work = out.size * k.size
    if work:
        if fill is None:
            fill = _validate.ZEROS[out.dtype]
        _corr.correlate(x, k, out, p0, p1, boundary, fill)
    else:
        out[...] = 0
    return out



def _matrix(value: object, name: str, func: str) -> np.ndarray:
    arr = _validate.array(value, name)
    _two_d(arr, name, func)
    return arr


def _two_d(arr, name: str, func: str) -> None:
    if arr.ndim != 2:
        raise ValueError(f"{func}: {name} must be 2-D, got shape {arr.shape}; reshape it to (height, width)")


def _valid_shape(X, K, func: str) -> tuple[int, int]:
    """The shape of ``corr2d(X, K)`` for 2-D ``X`` and ``K``; a ValueError when ``K`` is larger."""
    (h, w), (kh, kw) = X.shape, K.shape
    if kh > h or kw > w:
        raise ValueError(
            f"{func}: kernel K of shape {K.shape} is larger than X of shape {X.shape}; "
            "corr2d keeps only the 'valid' part, use correlate2d(X, K, mode='full') for the rest"
        )
    return h - kh + 1, w - kw + 1


def corr2d(X: ArrayLike, K: ArrayLike, *, out: NDArray | None = None) -> NDArray:
    """2-D cross-correlation of ``X`` with ``K``, 'valid' part only.

    The textbook's ``corr2d``: ``Y[i, j] = (X[i:i + h, j:j + w] * K).sum()`` for a kernel
    of shape ``(h, w)``, computed by a compiled, multi-threaded loop.

    Parameters
    ----------
    X : array_like, shape (H, W)
        The image. Any numeric dtype and memory layout.
    K : array_like, shape (h, w)
        The kernel, no larger than ``X`` in either dimension.
    out : ndarray, optional
        A C-contiguous buffer of shape ``(H - h + 1, W - w + 1)`` and the result's dtype
        to write into, reused across calls.

    Returns
    -------
    Y : ndarray, shape (H - h + 1, W - w + 1)
        float32 when both inputs are float32 or narrower, complex when either is
        complex (complex64 or complex128), float64 otherwise. A new array unless
        ``out`` is given.

    Raises
    ------
    TypeError
        An input is None or not numeric.
    ValueError
        An input is not 2-D, or ``K`` is larger than ``X``.

    See Also
    --------
    correlate2d : every mode and boundary, scipy's dtype rules.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> X = np.arange(9.0).reshape(3, 3)
    >>> fc.corr2d(X, [[0, 1], [2, 3]])
    array([[19., 25.],
           [37., 43.]])
    """
    if (out is None and type(X) is np.ndarray and type(K) is np.ndarray and X.dtype is K.dtype
            and X.dtype in _NATIVE_FLOATS and X.ndim == K.ndim == 2 and X.flags.c_contiguous and K.flags.c_contiguous):
        # The common case in one step: what the checks below would conclude, without their calls.
        (h, w), (kh, kw) = X.shape, K.shape
        if kh <= h and kw <= w:
            out = np.empty((h - kh + 1, w - kw + 1), X.dtype)
            work = out.size * K.size
            if work >= _corr.SMALL:
                _corr.valid_tiled(X, K, out, work)
                return out
            if work:
                _corr.valid(X, K, out, False)
                return out
            return _run(X, K, out)
    X = _matrix(X, "X", "corr2d")
    K = _matrix(K, "K", "corr2d")
    shape = _valid_shape(X, K, "corr2d")
    dtype = _validate.float_dtype(X.dtype, K.dtype)
    x = _validate.contiguous(X, dtype)
    k = _validate.contiguous(K, dtype)
    out = _validate.output(out, shape, dtype, (X, K))
    return _run(x, k, out)


#: corr2d_grad pads dY into a copy of at most this many bytes, so that its 'full' correlation
#: runs on corr2d's loops and a first call does not compile the border loops too (256² float32,
#: 3x3, cold: 2.5 -> 1.4 s). A larger copy costs more than the border loops take (1024² float64
#: 3x3: 1.33x their time).
_PADDED_BYTES = 1 << 20


def corr2d_grad(X: ArrayLike, K: ArrayLike, dY: ArrayLike) -> tuple[NDArray, NDArray]:
    """Gradients of ``sum(corr2d(X, K) * dY)`` with respect to ``X`` and ``K``.

    ``dK`` is the 'valid' correlation of ``X`` with ``dY``; ``dX`` is the 'full'
    convolution of ``dY`` with ``K``. Both run on the same kernels as :func:`corr2d`.
    For complex inputs these are the complex derivatives of the (bilinear) sum,
    without conjugation.

    Parameters
    ----------
    X : array_like, shape (H, W)
    K : array_like, shape (h, w)
    dY : array_like, shape (H - h + 1, W - w + 1)
        The gradient of the loss with respect to ``corr2d(X, K)``.

    Returns
    -------
    dX : ndarray, shape (H, W)
    dK : ndarray, shape (h, w)
        Both in :func:`corr2d`'s output dtype for ``X``, ``K`` and ``dY`` together.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> X = np.arange(9.0).reshape(3, 3)
    >>> dX, dK = fc.corr2d_grad(X, [[1.0, -1.0]], np.ones((3, 2)))
    >>> dX
    array([[ 1.,  0., -1.],
           [ 1.,  0., -1.],
           [ 1.,  0., -1.]])
    >>> dK
    array([[21., 27.]])
    """
    X = _matrix(X, "X", "corr2d_grad")
    K = _matrix(K, "K", "corr2d_grad")
    dY = _matrix(dY, "dY", "corr2d_grad")
    (h, w), (kh, kw) = X.shape, K.shape
    if dY.shape != _valid_shape(X, K, "corr2d_grad"):
        raise ValueError(f"corr2d_grad: dY must have the shape of corr2d(X, K), {(h - kh + 1, w - kw + 1)}, got {dY.shape}")
    dtype = _validate.float_dtype(X.dtype, K.dtype, dY.dtype)
    x = _validate.contiguous(X, dtype)
    dy = _validate.contiguous(dY, dtype)
    k = _validate.contiguous(K, dtype)
    dX = np.empty((h, w), dtype)
    if all_finite(k):
        flipped = _validate.contiguous(k[::-1, ::-1], dtype)
        if (h + kh - 1) * (w + kw - 1) * dX.itemsize <= _PADDED_BYTES:
            # The 'full' correlation as a 'valid' one of dY zero-padded by the kernel's size less
            # one: the same products (an inf or NaN in dY meets finite taps only), on corr2d's loops.
            padded = np.zeros((h + kh - 1, w + kw - 1), dtype)
            padded[kh - 1 : h, kw - 1 : w] = dy
            _run(padded, flipped, dX)
        else:
            _run(dy, flipped, dX, kh - 1, kw - 1)
    elif dX.size:
        # The 'full' correlation's zero fill is not part of the maths: an inf or NaN in K
        # must not meet it, so each product of dY and K is added where it belongs instead.
        _conv.input_grad.pick(dy.size * k.size)(dy[None, None], k[None, None], dX[None, None], 1, 1, 1, 1, 0, 0, 1)
    dK = _run(x, dy, np.empty((kh, kw), dtype))
    return dX, dK


def correlate2d(
    in1: ArrayLike,
    in2: ArrayLike,
    mode: Mode = "full",
    boundary: Boundary = "fill",
    fillvalue: object = 0,
    *,
    method: Method = "auto",
) -> NDArray:
    """Cross-correlate two 2-D arrays, exactly as ``scipy.signal.correlate2d``.

    ``out[i, j] = sum over (a, b) of ext(in1)[i + a - p0, j + b - p1] * conj(in2[a, b])``,
    with ``ext`` the boundary extension and ``(p0, p1)`` set by ``mode``.

    Parameters
    ----------
    in1 : array_like, 2-D
    in2 : array_like, 2-D
        Any integer, float32/64 or complex64/128 dtypes and any memory layout.
    mode : {'full', 'valid', 'same'}
        'full': every overlap, shape ``(M1 + M2 - 1, N1 + N2 - 1)``; 'valid': no
        boundary values used, shape ``(M1 - M2 + 1, N1 - N2 + 1)`` (the inputs are
        swapped when ``in2`` is the larger in every dimension, an error when neither
        is); 'same': the shape of ``in1``, centred on the 'full' output with the
        first ``(M2 - 1) // 2`` rows and ``(N2 - 1) // 2`` columns dropped.
    boundary : {'fill', 'wrap', 'symm'}
        'fill' (alias 'pad') extends ``in1`` with ``fillvalue``; 'wrap' (alias
        'circular') periodically; 'symm' (alias 'symmetric') by mirroring with the
        edge sample repeated. Repeated as often as a long kernel needs.
    fillvalue : scalar
        The fill for ``boundary='fill'``, cast to the output dtype (ignored otherwise).
    method : {'auto', 'direct', 'fft'}
        'direct' runs the compiled loops, exact for every dtype; 'fft' correlates by FFT
        (float and complex inputs, 'fill' boundary), faster for large kernels but only
        accurate to rounding; 'auto' takes the FFT for float or complex inputs with the
        'fill' boundary when the kernel is large enough for it to pay (for a 1024x1024
        image, from about 31x31), and the direct loops otherwise.

    Returns
    -------
    out : ndarray
        dtype ``np.result_type(in1, in2)``: integer results wrap around as scipy's do.

    Raises
    ------
    ValueError
        As scipy: inputs not 2-D, no valid overlap in 'valid' mode, an unknown mode or
        boundary, an unsupported dtype (bool, float16, longdouble, object, ...), or a
        ``fillvalue`` that is not one element or cannot be cast to the output dtype.

    Notes
    -----
    When 'valid' mode swaps the inputs, scipy returns the conjugate of the
    correlation for complex inputs; this function returns the correlation itself,
    ``conj(correlate2d(in2, in1, 'valid'))[::-1, ::-1]``. Real results are identical.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> fc.correlate2d([[1, 2, 3], [4, 5, 6]], [[1, -1]], mode="same")
    array([[-1, -1,  3],
           [-1, -1,  6]])
    >>> fc.correlate2d(np.eye(3), np.ones((2, 2)), boundary="wrap", mode="same")
    array([[2., 1., 1.],
           [1., 2., 1.],
           [1., 1., 2.]])
    """
    return _scipy_style("correlate2d", in1, in2, mode, boundary, fillvalue, method, convolve=False)


def convolve2d(
    in1: ArrayLike,
    in2: ArrayLike,
    mode: Mode = "full",
    boundary: Boundary = "fill",
    fillvalue: object = 0,
    *,
    method: Method = "auto",
) -> NDArray:
    """Convolve two 2-D arrays, exactly as ``scipy.signal.convolve2d``.

    Correlation with ``in2`` flipped in both axes (and not conjugated); 'same' mode
    keeps the centre of the 'full' output, dropping the first ``M2 // 2`` rows and
    ``N2 // 2`` columns. Parameters, dtypes and errors as :func:`correlate2d`.

    Examples
    --------
    >>> import fastcorr as fc
    >>> fc.convolve2d([[1, 2, 3], [3, 4, 5]], [[2, 3, 4], [4, 5, 6]])
    array([[ 2,  7, 16, 17, 12],
           [10, 30, 62, 58, 38],
           [12, 31, 58, 49, 30]])
    """
    return _scipy_style("convolve2d", in1, in2, mode, boundary, fillvalue, method, convolve=True)


class _Call(NamedTuple):
    """A correlate2d/convolve2d call, checked: what the kernel needs to run it."""

    swapped: bool
    mode: str
    boundary: int
    method: str
    dtype: np.dtype
    fill: np.generic
    shape: tuple[int, int]
    pad: tuple[int, int]


def _prepare(func, in1, in2, mode, boundary, fillvalue, method, convolve) -> _Call:
    """scipy's checks and rules, in scipy's order, for arrays (numpy or dask) ``in1`` and ``in2``."""
    if not in1.ndim == in2.ndim == 2:
        raise ValueError(
            f"{func} inputs must both be 2-D arrays, got in1.ndim={in1.ndim} and in2.ndim={in2.ndim}; "
            "use np.atleast_2d for vectors"
        )
    swapped = mode == "valid" and _swap_needed(in1.shape, in2.shape)
    if swapped:
        in1, in2 = in2, in1
    mode = _validate.choice(mode, "mode", _MODES, "Acceptable mode flags are 'valid', 'same', or 'full'")
    boundary_name = boundary
    boundary = _validate.choice(boundary, "boundary", _BOUNDARIES, _BOUNDARY_ERROR)
    if method != "auto":
        method = _validate.choice(method, "method", _METHODS)
    dtype = np.result_type(in1.dtype, in2.dtype)
    if dtype not in _validate.KERNEL_DTYPES:
        dtype = _validate.native(dtype)
        if dtype not in _validate.KERNEL_DTYPES:
            raise ValueError(
                f"{func} not available for dtype {dtype}: it supports integers, float32, float64, "
                "complex64 and complex128; cast the inputs, e.g. in1.astype(np.float64)"
            )
    if method == "fft":
        if boundary != _corr.FILL:
            raise ValueError(f"{func}: method='fft' supports boundary='fill' only; use method='direct'")
        if dtype.kind not in "fc":
            raise ValueError(f"{func}: method='fft' needs float or complex inputs, got {dtype}; use method='direct'")
    if boundary != _corr.FILL or (type(fillvalue) is int and fillvalue == 0):
        fill = dtype.type(0)
    else:
        fill = _validate.fill_scalar(fillvalue, dtype)
    (h, w), (kh, kw) = in1.shape, in2.shape
    if mode == "full":
        shape, pad = (h + kh - 1, w + kw - 1), (kh - 1, kw - 1)
    elif mode == "same":
        shape = (h, w)
        pad = (kh // 2, kw // 2) if convolve else ((kh - 1) // 2, (kw - 1) // 2)
    else:
        shape, pad = (h - kh + 1, w - kw + 1), (0, 0)
    if min(shape) < 0:
        raise ValueError(f"{func}: in1 of shape {in1.shape} and in2 of shape {in2.shape} give no output in mode={mode!r}")
    if boundary != _corr.FILL and in1.size == 0 and in2.size > 0 and 0 not in shape:
        raise ValueError(f"{func}: boundary={boundary_name!r} cannot extend an empty in1 of shape {in1.shape}; "
                         "use 'fill'")
    return _Call(swapped, mode, boundary, method, dtype, fill, shape, pad)


def _kernel(in2: np.ndarray, dtype: np.dtype, convolve: bool) -> np.ndarray:
    """The correlation kernel: ``in2`` flipped for a convolution, conjugated for a correlation."""
    if convolve:
        return np.ascontiguousarray(in2[::-1, ::-1], dtype)
    return np.ascontiguousarray(np.conjugate(in2) if dtype.kind == "c" else in2, dtype)


def _scipy_style(func, in1, in2, mode, boundary, fillvalue, method, convolve):
    in1 = np.asarray(in1)
    in2 = np.asarray(in2)
    call = _prepare(func, in1, in2, mode, boundary, fillvalue, method, convolve)
    if call.swapped:
        in1, in2 = in2, in1
    x = np.ascontiguousarray(in1, call.dtype)
    k = _kernel(in2, call.dtype, convolve)
    out = np.empty(call.shape, call.dtype)
    if call.method == "fft" or (call.method == "auto" and _auto_fft(call, in1.dtype, in2.dtype, x, k)):
        _fft_correlate(x, k, out, call.pad, call.fill)
    else:
        _run(x, k, out, call.pad[0], call.pad[1], call.boundary, call.fill)
    if call.swapped and not convolve:
        # correlate(a, b)[k] == conj(correlate(b, a)[-k]); scipy omits the conj.
        return np.conjugate(out[::-1, ::-1])
    return out


def _auto_fft(call: _Call, dtype1: np.dtype, dtype2: np.dtype, x: np.ndarray, k: np.ndarray) -> bool:
    """method='auto': the FFT where it pays and its answer is the direct sum's to the documented
    rounding: float or complex inputs (never integers), no inf or NaN anywhere (the FFT would
    spread them over the whole output), and a fill value that the direct loops either never
    read or that is no larger than the image (so that it does not set the rounding's scale)."""
    if call.boundary != _corr.FILL or dtype1.kind not in "fc" or dtype2.kind not in "fc":
        return False
    if not _fft_pays(call.dtype, call.shape, k.shape) or not (all_finite(x) and all_finite(k)):
        return False
    fill = call.fill
    return fill == 0 or not _reads_fill(x.shape, k.shape, call.shape, call.pad) or (
        np.isfinite(fill) and abs(fill) <= np.abs(x).max()
    )


def _reads_fill(shape, kernel, out_shape, pad) -> bool:
    """Whether some output's taps reach past the edges of an image of ``shape``."""
    return any(p > 0 or o + kn - 2 - p >= n for n, kn, o, p in zip(shape, kernel, out_shape, pad))


def _swap_needed(shape1, shape2) -> bool:
    """scipy's 'valid' rule: in1 must be at least as large as in2 in every dimension, or vice versa."""
    (h1, w1), (h2, w2) = shape1, shape2
    if h1 >= h2 and w1 >= w2:
        return False
    if h2 >= h1 and w2 >= w1:
        return True
    raise ValueError(
        "For 'valid' mode, one must be at least as large as the other in every dimension; "
        f"got shapes {shape1} and {shape2}, use mode='same' or 'full'"
    )


def _fft_correlate(x, k, out, pad, fill):
    """The direct kernel's result with the 'fill' boundary, by FFT.

    A fill value that the outputs read is written around ``x`` first; then the result is the
    'valid' part of a linear correlation. A circular convolution of length ``L`` equals the
    linear one except at the first ``h + kh - 1 - L`` indices, so ``L`` only needs to keep
    the requested part clean. scipy.fft (multi-threaded, more sizes it handles fast) is used
    when installed.
    """
    if k.size == 0 or out.size == 0 or x.size == 0:
        _run(x, k, out, pad[0], pad[1], _corr.FILL, fill)
        return
    (kh, kw), (oh, ow) = k.shape, out.shape
    if fill != 0 and _reads_fill(x.shape, k.shape, out.shape, pad):
        extended = np.full((oh + kh - 1, ow + kw - 1), fill, x.dtype)
        extended[pad[0] : pad[0] + x.shape[0], pad[1] : pad[1] + x.shape[1]] = x
        x, pad = extended, (0, 0)
    fft, options, fast_len = _fft_backend()
    h, w = x.shape
    r0, c0 = kh - 1 - pad[0], kw - 1 - pad[1]
    shape = (fast_len(max(r0 + oh, h + kh - 1 - r0)), fast_len(max(c0 + ow, w + kw - 1 - c0)))
    flipped = k[::-1, ::-1]
    with np.errstate(all="ignore"):  # as the direct loops: an inf or NaN is a value, not a warning
        if out.dtype.kind == "c":
            full = fft.ifft2(fft.fft2(x, shape, **options) * fft.fft2(flipped, shape, **options), shape, **options)
        else:
            full = fft.irfft2(fft.rfft2(x, shape, **options) * fft.rfft2(flipped, shape, **options), shape, **options)
    np.copyto(out, full[r0 : r0 + oh, c0 : c0 + ow], casting="unsafe")


def _fft_backend():
    try:
        import scipy.fft
    except ImportError:
        return np.fft, {}, _fast_len
    import numba

    return scipy.fft, {"workers": numba.config.NUMBA_NUM_THREADS}, scipy.fft.next_fast_len


def _fft_pays(dtype: np.dtype, shape: tuple[int, int], kernel: tuple[int, int]) -> bool:
    """method='auto': FFT when the direct multiply-adds outweigh ~N log2 N FFT work.

    Measured on a 2-core Zen 4: the direct loops do about 25 (float32) or 15 (float64)
    multiply-adds in the time the FFT route spends per point and log2 of points; a complex
    multiply-add is four real ones. 1024x1024 with 15x15 stays direct, with 31x31 goes FFT.
    """
    macs = shape[0] * shape[1] * kernel[0] * kernel[1] * (4 if dtype.kind == "c" else 1)
    points = (shape[0] + kernel[0]) * (shape[1] + kernel[1])
    return macs > (25 if dtype.itemsize == 4 else 15) * points * np.log2(max(points, 2))


def _fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: a size numpy's FFT handles quickly."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best
