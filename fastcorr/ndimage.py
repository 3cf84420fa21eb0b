"""scipy.ndimage-style correlate and convolve: N-D arrays as sums of 2-D kernel calls.

An N-D correlation is a sum of 2-D correlations of the input's last two filtered axes, one
for each offset of the kernel along the leading filtered axes; the edge rule of each leading
axis picks the source plane of each term (a plane of ``cval`` under 'constant'). Axes that the
kernel does not span (size 1, as ``axes=`` leaves them) are planes of a stack.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Iterable, Sequence
from typing import Literal

import numba
import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastcorr import _kernels
from fastcorr._kernels import corr as _corr

__all__ = ["correlate", "convolve"]

Mode = Literal["reflect", "constant", "nearest", "mirror", "wrap", "grid-mirror", "grid-constant", "grid-wrap"]

#: ndimage's modes as the kernels' edge rules; the 'grid-' names are aliases in a filter.
MODES = {
    "reflect": _corr.SYMM, "grid-mirror": _corr.SYMM,
    "constant": _corr.FILL, "grid-constant": _corr.FILL,
    "nearest": _corr.NEAREST,
    "mirror": _corr.MIRROR,
    "wrap": _corr.WRAP, "grid-wrap": _corr.WRAP,
}

#: Input and output dtypes scipy.ndimage's filters take (complex ones through their real parts).
_REAL_KINDS = "biuf"
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def correlate(
    input: ArrayLike,
    weights: ArrayLike,
    output: NDArray | DTypeLike | None = None,
    mode: Mode = "reflect",
    cval: float = 0.0,
    origin: int | Sequence[int] = 0,
    *,
    axes: int | Sequence[int] | None = None,
) -> NDArray:
    """Multidimensional correlation, exactly as ``scipy.ndimage.correlate``.

    ``out[i] = sum over a of weights[a] * ext(input)[i + a - (weights.shape // 2 + origin)]``
    per axis, ``ext`` extending the input beyond its edges by ``mode``.

    Parameters
    ----------
    input : array_like
        Any number of dimensions; bool, integer, float32, float64 or complex.
    weights : array_like
        The kernel: as many dimensions as ``input`` (or as ``axes``), none empty. Complex
        weights are conjugated, as scipy does.
    output : ndarray or dtype, optional
        The array to write into (input's shape), or the dtype of a new one. By default the
        input's dtype, or complex when either argument is complex. Float sums are converted
        to an integer output as scipy's C code converts them: truncated towards zero,
        wrapping around on overflow.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'}
        The edge rule: 'reflect' (``d c b a | a b c d | d c b a``; alias 'grid-mirror'),
        'constant' (``cval`` beyond the edges; alias 'grid-constant'), 'nearest'
        (``a a a a | a b c d | d d d d``), 'mirror' (``d c b | a b c d | c b a``), 'wrap'
        (``a b c d | a b c d | a b c d``; alias 'grid-wrap'); repeated as often as a kernel
        larger than the input needs. One mode for all axes: a sequence is a RuntimeError,
        as in scipy.
    cval : float
        The value beyond the edges for 'constant'; complex for complex inputs.
    origin : int or sequence of int
        Shifts the kernel's centre, per axis: ``-(w // 2) <= origin <= (w - 1) // 2``.
    axes : int or sequence of int, optional
        The axes to filter (default all); the others are planes of a stack, filtered one by
        one (an H x W x C colour image with ``axes=(0, 1)``). ``weights``, ``origin``
        sequences follow ``axes``.

    Returns
    -------
    ndarray
        ``output`` itself when it is an array, else a new array.

    Raises
    ------
    RuntimeError, ValueError, TypeError
        scipy's classes and messages: weights with the wrong number of dimensions or an
        empty one, an unknown or per-axis mode, an origin outside the kernel, repeated or
        out-of-range axes, an output of the wrong shape or dtype, unsupported dtypes
        (float16, longdouble, object).

    Notes
    -----
    1-D, 2-D and 3-D inputs run on the compiled, multi-threaded 2-D kernels. Sums are
    float64 (scipy's) except for float32 input written to a float32 output, which is
    summed in float32: its results differ from scipy's by float32 rounding. Integer
    results are exact wherever the float64 sum is (integer weights, for instance).
    With mode='reflect' and a kernel reaching more than four times the input's length
    past its start, scipy reads outside the input array; this function keeps reflecting.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr.ndimage as fnd
    >>> a = np.arange(16).reshape(4, 4)
    >>> fnd.correlate(a, [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    array([[ 5,  9, 14, 18],
           [21, 25, 30, 34],
           [41, 45, 50, 54],
           [57, 61, 66, 70]])
    >>> fnd.correlate([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], mode="constant", cval=10.0)
    array([13.,  6., 15.])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, False, axes)


def convolve(
    input: ArrayLike,
    weights: ArrayLike,
    output: NDArray | DTypeLike | None = None,
    mode: Mode = "reflect",
    cval: float = 0.0,
    origin: int | Sequence[int] = 0,
    *,
    axes: int | Sequence[int] | None = None,
) -> NDArray:
    """Multidimensional convolution, exactly as ``scipy.ndimage.convolve``.

    ``out[i] = sum over a of weights[a] * ext(input)[i - a + (weights.shape // 2 + origin)]``
    per axis: :func:`correlate` with ``weights`` flipped along every axis (not conjugated)
    and each origin negated, minus one more along axes of even length, so that
    ``weights[w // 2]`` meets ``input[i]`` for even lengths too, and a positive origin
    shifts the other way than in :func:`correlate`. Parameters, dtypes and errors as
    :func:`correlate`.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr.ndimage as fnd
    >>> fnd.convolve([1, 2, 3, 4], [1, 0, -1])
    array([1, 2, 2, 1])
    >>> fnd.convolve(np.eye(3), np.ones((2, 2)), mode="constant")
    array([[2., 1., 0.],
           [1., 2., 1.],
           [0., 1., 1.]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, True, axes)


def _correlate_or_convolve(input, weights, output, mode, cval, origin, convolution, axes):
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c" and not convolution:
            weights = weights.conj()
        output, dtype = _get_output(output, input, complex_output=True)
        if output is None:
            output = np.zeros(input.shape, dtype)
        return _complex(input, weights, output, cval, mode, origin, convolution, axes)
    axes = check_axes(axes, input.ndim)
    weights, origins = expand(input.ndim, np.asarray(weights, dtype=np.float64), origin, axes, convolution)
    output, dtype = _get_output(output, input)
    boundary = check_mode(mode)
    origins = [_origin_int(o) for o in origins]
    cval = _real_cval(cval)
    for kind in (input.dtype, dtype):
        if kind.kind not in _REAL_KINDS or kind.itemsize > 8 or kind == np.float16:
            raise RuntimeError("array type not supported")
    if input.size == 0:
        return np.zeros(input.shape, dtype) if output is None else output
    if weights.size == 0:
        # Only with more dimensions than the input, all the extra ones empty (scipy's zeros).
        return store(np.zeros(input.shape), np.empty(input.shape, dtype) if output is None else output)
    pads = [n // 2 + o for n, o in zip(weights.shape, origins)]
    direct = (output is not None and output.dtype == compute_dtype(input.dtype, dtype) and output.flags.c_contiguous
              and output.flags.writeable and not np.may_share_memory(output, input))
    result = filtered(input, weights, pads, boundary, cval, dtype, output if direct else None)
    if direct:
        return output
    if output is None and result.dtype == dtype:
        return result if result.flags.c_contiguous else result.copy()
    return store(result, np.empty(input.shape, dtype) if output is None else output)


def check_mode(mode) -> int:
    """ndimage's mode name as the kernels' edge rule; scipy's RuntimeErrors otherwise."""
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise RuntimeError("A sequence of modes is not supported")
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise RuntimeError("boundary mode not supported") from None


def check_axes(axes, ndim: int) -> tuple[int, ...]:
    """``axes`` as a tuple of distinct non-negative ints, by scipy.ndimage's rules and errors."""
    if axes is None:
        return tuple(range(ndim))
    if np.isscalar(axes):
        axes = (operator.index(axes),)
    elif isinstance(axes, Iterable):
        axes = tuple(axes)
        for ax in axes:
            operator.index(ax)
            if ax < -ndim or ax > ndim - 1:
                raise ValueError(f"specified axis: {ax} is out of range")
        axes = tuple(operator.index(ax) % ndim for ax in axes)
    else:
        raise ValueError("axes must be an integer, iterable of integers, or None")
    if len(set(axes)) != len(axes):
        raise ValueError("axes must be unique")
    return axes


def expand(ndim: int, weights: np.ndarray, origin, axes: tuple[int, ...], convolution: bool):
    """``weights`` and ``origin`` over every axis of an ``ndim``-dimensional input (size 1 and
    origin 0 off ``axes``), flipped and shifted for a convolution: then the correlation's.
    scipy's errors for weights of the wrong number of dimensions and origins outside them."""
    weights = _expand_weights(ndim, axes, weights)
    origins = _expand_origin(ndim, axes, origin)
    wshape = [n for n in weights.shape if n > 0]
    if len(wshape) != ndim:
        raise RuntimeError(f"weights.ndim ({len(wshape)}) must match len(axes) ({len(axes)})")
    if convolution:
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        origins = [-o - (1 - n % 2) for o, n in zip(origins, weights.shape)]
    for o, n in zip(origins, wshape):
        if o < -(n // 2) or o > (n - 1) // 2:
            raise ValueError("Invalid origin; origin must satisfy -(weights.shape[k] // 2) <= origin[k] <= "
                             "(weights.shape[k]-1) // 2")
    return weights, origins


def _expand_weights(ndim, axes, weights):
    if len(axes) < ndim:
        if weights.ndim != len(axes):
            raise RuntimeError(f"weights.ndim ({weights.ndim}) must match len(axes) ({len(axes)})")
        weights = np.expand_dims(weights, tuple(ax for ax in range(ndim) if ax not in axes))
    return weights


def _expand_origin(ndim, axes, origin):
    if not isinstance(origin, str) and np.iterable(origin):
        origins = list(origin)
        if len(origins) != len(axes):
            raise RuntimeError("sequence argument must have length equal to input rank")
    else:
        origins = [origin] * len(axes)
    if len(axes) < ndim:
        full = [0] * ndim
        for o, ax in zip(origins, axes):
            full[ax] = o
        origins = full
    return origins


def _origin_int(origin) -> int:
    """An origin as scipy's C code takes it: an int, not a bool or a float."""
    if isinstance(origin, (bool, np.bool_)):
        raise TypeError("an integer is required")
    return operator.index(origin)


def _real_cval(cval) -> float:
    """``cval`` as scipy's C code takes it for a real filter: a real number (a numpy complex
    scalar loses its imaginary part with numpy's warning)."""
    if isinstance(cval, complex) and not isinstance(cval, np.generic):
        raise TypeError(f"must be real number, not {type(cval).__name__}")
    if isinstance(cval, np.complexfloating):
        warnings.warn("Casting complex values to real discards the imaginary part", np.exceptions.ComplexWarning,
                      stacklevel=4)
        return float(cval.real)
    if isinstance(cval, (str, bytes)) or cval is None:
        raise TypeError(f"must be real number, not {type(cval).__name__}")
    return float(cval)


def _get_output(output, input, complex_output=False):
    """scipy.ndimage's output rules: None (input's dtype), a dtype, a dtype name, or an array.
    Returns ``(array, dtype)``: the caller's array, or None and the dtype of a new one."""
    if output is None:
        if not complex_output:
            return None, input.dtype if input.dtype.isnative else input.dtype.newbyteorder("=")
        return None, np.promote_types(input.dtype, np.complex64)
    if isinstance(output, (type, np.dtype)):
        if complex_output and np.dtype(output).kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=4)
            output = np.promote_types(output, np.complex64)
        return None, np.dtype(output)
    if isinstance(output, str):
        dtype = np.dtype(output)
        if complex_output and dtype.kind != "c":
            raise RuntimeError("output must have complex dtype")
        if not issubclass(dtype.type, np.number):
            raise RuntimeError("output must have numeric dtype")
        return None, dtype
    output = np.asarray(output)
    if output.shape != input.shape:
        raise RuntimeError("output shape not correct")
    if complex_output and output.dtype.kind != "c":
        raise RuntimeError("output must have complex dtype")
    return output, output.dtype


def _complex(input, weights, output, cval, mode, origin, convolution, axes):
    """scipy's complex filter: real correlations of the real and imaginary parts, combined."""

    def part(x, w, out, c):
        return _correlate_or_convolve(x, w, out, mode, c, origin, convolution, axes)

    if input.dtype.kind == "c" and weights.dtype.kind == "c":
        part(input.real, weights.real, output.real, np.real(cval))
        output.real -= part(input.imag, weights.imag, None, np.imag(cval))
        part(input.real, weights.imag, output.imag, np.real(cval))
        output.imag += part(input.imag, weights.real, None, np.imag(cval))
    elif input.dtype.kind == "c":
        part(input.real, weights, output.real, np.real(cval))
        part(input.imag, weights, output.imag, np.imag(cval))
    else:
        if np.iscomplexobj(cval):
            raise ValueError("Cannot provide a complex-valued cval when the input is real.")
        part(input, weights.real, output.real, cval)
        part(input, weights.imag, output.imag, cval)
    return output


def compute_dtype(input_dtype: np.dtype, output_dtype: np.dtype) -> np.dtype:
    """float32 sums for float32 in and out (the rounding of the output anyway), float64 otherwise."""
    return _F32 if input_dtype == _F32 and output_dtype == _F32 else _F64


def filtered(x: np.ndarray, w: np.ndarray, pads: Sequence[int], boundary: int, cval: float,
             output_dtype: np.dtype, into: np.ndarray | None = None) -> np.ndarray:
    """``out[i] = sum_a w[a] * ext(x)[i + a - pads]`` over every axis, in the compute dtype,
    written into ``into`` (C-contiguous, of the compute dtype, apart from ``x``) when given.

    Axes the kernel spans (size > 1) are filtered, the others are planes of a stack: those
    before the filtered axes index the planes, a few elements after the last one are
    channels interleaved in its rows (an H x W x C image), and any other layout is
    transposed (copied) to put the free axes first. One filtered axis runs as rows of one
    plane, two as planes, more as sums over the leading kernel offsets.
    """
    dtype = compute_dtype(x.dtype, output_dtype)
    fill = dtype.type(cval)
    spanned = [ax for ax in range(x.ndim) if w.shape[ax] > 1]
    if not spanned:
        with np.errstate(all="ignore"):
            result = (np.asarray(x, np.float64) * w.reshape(())).astype(dtype, copy=False)
        if into is not None:
            into[...] = result
        return result
    last = spanned[-1]
    channels = math.prod(x.shape[last + 1:])
    kernel = [w.shape[ax] for ax in spanned]
    inner = [pads[ax] for ax in spanned]
    if len(spanned) == 1 and channels >= _LONG_ROW:
        # One filtered axis with long rows after it: planes of (that axis, the rest), no copy.
        planes = np.ascontiguousarray(x, dtype).reshape(-1, x.shape[last], channels)
        out = np.empty(planes.shape, dtype) if into is None else into.reshape(planes.shape)
        sources = _sources(planes.shape[0], [], [], [], boundary)  # each plane its own source
        _planes(planes, w.astype(dtype).reshape(1, -1, 1), out, sources, inner[0], 0, boundary, fill, 1)
        return out.reshape(x.shape)
    if channels < _LONG_ROW and all(w.shape[ax] > 1 for ax in range(spanned[0], last)):
        order = list(range(x.ndim))
    else:
        order = [ax for ax in range(x.ndim) if w.shape[ax] == 1] + spanned
        channels = 1
    xp = np.ascontiguousarray(x.transpose(order), dtype)
    k = np.ascontiguousarray(w.reshape(kernel), dtype)
    if len(spanned) == 1:
        # Rows of one plane, a kernel of one row: everything before the filtered axis is rows.
        kernel, inner = [1, *kernel], [0, *inner]
        planes = xp.reshape(1, -1, x.shape[last] * channels)
    else:
        planes = xp.reshape(-1, x.shape[spanned[-2]], x.shape[last] * channels)
    lead = [x.shape[ax] for ax in spanned[:-2]]
    transposed = order != sorted(order)
    out = np.empty(planes.shape, dtype) if into is None or transposed else into.reshape(planes.shape)
    sources = _sources(planes.shape[0], lead, kernel[:-2], inner[:-2], boundary)
    _planes(planes, k.reshape(-1, *kernel[-2:]), out, sources, inner[-2], inner[-1], boundary, fill, channels)
    out = out.reshape(xp.shape)
    if transposed:
        out = out.transpose(np.argsort(order))
        if into is not None:
            into[...] = out
    return out


#: A filtered axis followed by at least this many elements per index runs without a transpose,
#: its rows holding whole planes; fewer are channels interleaved in the rows.
_LONG_ROW = 64


def _planes(x, k, out, sources, p0, p1, boundary, fill, channels):
    """``out[q] = sum_t corr(x[sources[q, t]], k[t])``: planes one at a time on the 2-D kernels
    when each is large enough to share among the threads, else all in one stack call."""
    q, t = sources.shape
    plane_work = out[0].size * k[0].size
    if channels == 1 and t == 1 and (q == 1 or plane_work >= _kernels.SERIAL_WORK):
        for i in range(q):
            _corr.correlate(x[sources[i, 0]], k[0], out[i], p0, p1, boundary, fill)
        return
    loop, switches = _corr.stack_loop(k.shape, channels, x.shape[2] // channels)
    twin = loop.pick(out.size * k[0].size * t)
    height = out.shape[1]
    # Parallel: about four tasks per thread, of 16 rows at least (each refills its ring of rows).
    share = -(-q * height // (4 * numba.get_num_threads()))
    rows = height if twin is loop.serial else min(height, max(16, share))
    twin(x, k, out, sources, p0, p1, boundary, fill, *switches, rows)


def _sources(planes: int, lead: Sequence[int], kernel: Sequence[int], pads: Sequence[int], boundary: int) -> np.ndarray:
    """For every output plane (batch index, then the leading axes' indices) and every leading
    kernel offset, the input plane it reads, or -1 for a plane of the fill value."""
    if not lead:
        return np.arange(planes, dtype=np.int64).reshape(planes, 1)
    index = np.zeros((1, 1), np.int64)
    for n, kn, pad in zip(lead, kernel, pads):
        src = _corr.edge_index(np.arange(n)[:, None] + np.arange(kn)[None, :] - pad, n, boundary)
        combined = index[:, None, :, None] * n + src[None, :, None, :]
        combined[(index[:, None, :, None] < 0) | (src[None, :, None, :] < 0)] = -1
        index = combined.reshape(index.shape[0] * n, index.shape[1] * kn)
    per_batch = index.shape[0]
    batch = np.arange(planes // per_batch, dtype=np.int64)[:, None, None] * per_batch
    sources = np.where(index[None] < 0, -1, index[None] + batch)
    return np.ascontiguousarray(sources.reshape(planes, -1), dtype=np.int64)


def store(result: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``result`` (float) written into ``output`` as scipy's C code converts a double."""
    if output.dtype.kind in "iub":
        result = c_cast(result, output.dtype)
    np.copyto(output, result, casting="unsafe")
    return output


def c_cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float to ``dtype`` as x86-64 C code converts a double: truncation towards zero; narrow
    types (and bool, then tested for zero) through a 32-bit int, uint32 through a 64-bit one,
    wrapping around; a NaN or a value out of the wide int's range gives its minimum."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        t = np.trunc(np.asarray(values, np.float64))
        if dtype == np.uint64:
            low = _wide(t, 63)
            high = _wide(t - 2.0**63, 63).view(np.uint64) ^ np.uint64(1 << 63)
            below = _wide(t + 2.0**64, 63)
            out = np.where(t >= 2.0**63, high, np.where(t < -(2.0**63), below.view(np.uint64), low.view(np.uint64)))
            out[(np.abs(t) >= 2.0**64)] = 0
            out[np.isnan(t)] = np.uint64(1 << 63)
            return out
        bits = 63 if dtype.itemsize == 8 or dtype == np.uint32 else 31
        wide = _wide(t, bits)
        if dtype.kind == "b":
            return wide.astype(np.uint8) != 0
        return wide.astype(dtype)


def _wide(t: np.ndarray, bits: int) -> np.ndarray:
    """``t`` (whole numbers) as a signed int of ``bits + 1`` bits, minimum for NaN and out of range."""
    dtype = np.int64 if bits == 63 else np.int32
    bad = ~((t >= -(2.0**bits)) & (t < 2.0**bits))
    return np.where(bad, np.iinfo(dtype).min, np.where(bad, 0, t).astype(dtype)).astype(dtype)
