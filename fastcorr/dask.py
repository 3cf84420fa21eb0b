"""corr2d, correlate2d, convolve2d, conv2d and ndimage_correlate / ndimage_convolve on dask
arrays: lazy in, lazy out.

Each function validates eagerly (same errors as the in-memory function), extends the
image by its boundary rule, shares a halo of ``kernel size - 1`` between neighbouring
chunks and runs the in-memory kernel on every chunk. The results equal the in-memory
functions' in shape and dtype for any chunking, and in value: integers exactly, floats
to rounding (the taps of some pixels may be summed in another order). The kernel is
small: it is held in memory (a dask array kernel is computed first) and sent to the
workers once.

Requires dask: ``pip install "fastcorr[dask]"``. ``import fastcorr`` never imports it.
"""

from __future__ import annotations

import math

try:
    import dask
    import dask.array as da
except ImportError as exc:
    raise ImportError(
        'fastcorr.dask needs dask[array]; install it with: pip install "fastcorr[dask]"'
    ) from exc

import numpy as np
from numpy.typing import ArrayLike

from fastcorr import _validate
from fastcorr import conv as _conv
from fastcorr import ndimage as _ndimage
from fastcorr import signal as _signal
from fastcorr._kernels import corr as _corr

__all__ = ["corr2d", "correlate2d", "convolve2d", "conv2d", "ndimage_correlate", "ndimage_convolve"]


def corr2d(X: da.Array | ArrayLike, K: ArrayLike) -> da.Array:
    """Lazy 'valid' cross-correlation of a dask image with a small kernel.

    :func:`fastcorr.corr2d` chunk by chunk: the same shape and dtype, and the same
    values to rounding.

    Parameters
    ----------
    X : dask.array.Array, shape (H, W)
        The image, chunked any way (other array-likes are wrapped with ``da.asarray``).
    K : array_like, shape (h, w)
        The kernel, in memory; a dask array is computed first.

    Returns
    -------
    Y : dask.array.Array, shape (H - h + 1, W - w + 1)
        Lazy; dtype as :func:`fastcorr.corr2d` (float32, float64 or complex).

    Raises
    ------
    TypeError
        An input is not numeric.
    ValueError
        An input is not 2-D, ``K`` is larger than ``X``, or ``X`` has unknown chunk sizes.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import fastcorr.dask as fcd
    >>> X = da.from_array(np.arange(16.0).reshape(4, 4), chunks=2)
    >>> Y = fcd.corr2d(X, [[0, 1], [2, 3]])
    >>> Y.shape, Y.chunks, Y.dtype
    ((3, 3), ((2, 1), (2, 1)), dtype('float64'))
    >>> Y.compute()
    array([[24., 30., 36.],
           [48., 54., 60.],
           [72., 78., 84.]])
    """
    X = _image(X, "X", "corr2d")
    if X.dtype.kind not in "biufc":
        raise TypeError(f"X must hold numbers (bool, int, float or complex), got dtype {X.dtype}")
    K = _validate.array(_in_memory(K), "K")
    _signal._two_d(X, "X", "corr2d")
    _signal._two_d(K, "K", "corr2d")
    shape = _signal._valid_shape(X, K, "corr2d")
    dtype = _validate.float_dtype(X.dtype, K.dtype)
    k = _validate.contiguous(K, dtype)
    if X.size == 0:
        return da.from_array(_signal.corr2d(np.zeros(X.shape, X.dtype), k))
    if k.size == 0:
        return _zeros(X, shape, dtype)
    if X.numblocks == (1, 1):
        return _whole(X, _signal.corr2d, (k,), {}, shape, dtype, "corr2d")
    return _correlate("corr2d", X.astype(dtype), k, shape, (0, 0), _corr.FILL, dtype.type(0), "direct")


def correlate2d(
    in1: da.Array | ArrayLike,
    in2: ArrayLike,
    mode: _signal.Mode = "full",
    boundary: _signal.Boundary = "fill",
    fillvalue: object = 0,
    *,
    method: _signal.Method = "auto",
) -> da.Array:
    """Lazy cross-correlation of a dask image with a small kernel, as ``scipy.signal.correlate2d``.

    :func:`fastcorr.correlate2d` chunk by chunk: the same shape and dtype for every
    mode, boundary and fill value, whatever the chunking, and the same values (integers
    exactly, floats to rounding).

    Parameters
    ----------
    in1 : dask.array.Array, 2-D
        The image, chunked any way (other array-likes are wrapped with ``da.asarray``).
        Chunks narrower than the kernel's halo are merged with a neighbour.
    in2 : array_like, 2-D
        The kernel, in memory; a dask array is computed first.
    mode, boundary, fillvalue, method
        As :func:`fastcorr.correlate2d`. ``method='fft'`` transforms each chunk with
        its halo.

    Returns
    -------
    out : dask.array.Array
        Lazy, dtype ``np.result_type(in1, in2)``. Its chunks follow ``in1``'s: 'same'
        keeps them (when each is at least the halo), 'full' grows the last chunk of
        each axis by ``kernel size - 1``, 'valid' shrinks it.

    Raises
    ------
    ValueError
        Every error of :func:`fastcorr.correlate2d`, raised at the call, and for ``in1``
        with unknown chunk sizes.

    Notes
    -----
    When 'valid' mode swaps the inputs (``in2`` is at least as large as ``in1`` in
    every dimension and larger in one), ``in1`` is the small one: the result is a
    single chunk computed by the in-memory function from the whole of ``in1``.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import fastcorr.dask as fcd
    >>> x = da.from_array(np.eye(4), chunks=2)
    >>> y = fcd.correlate2d(x, np.ones((2, 2)), mode="same", boundary="wrap")
    >>> y.chunks
    ((2, 2), (2, 2))
    >>> y.compute()
    array([[2., 1., 0., 1.],
           [1., 2., 1., 0.],
           [0., 1., 2., 1.],
           [1., 0., 1., 2.]])
    """
    return _scipy_style("correlate2d", in1, in2, mode, boundary, fillvalue, method, convolve=False)


def convolve2d(
    in1: da.Array | ArrayLike,
    in2: ArrayLike,
    mode: _signal.Mode = "full",
    boundary: _signal.Boundary = "fill",
    fillvalue: object = 0,
    *,
    method: _signal.Method = "auto",
) -> da.Array:
    """Lazy convolution of a dask image with a small kernel, as ``scipy.signal.convolve2d``.

    :func:`fastcorr.convolve2d` chunk by chunk. Parameters, chunks, dtypes and errors
    as :func:`correlate2d`.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import fastcorr.dask as fcd
    >>> x = da.from_array(np.array([[1, 2, 3], [3, 4, 5]]), chunks=(1, 2))
    >>> y = fcd.convolve2d(x, [[2, 3, 4], [4, 5, 6]])
    >>> y.shape, y.chunks
    ((3, 5), ((1, 2), (2, 3)))
    >>> y.compute()
    array([[ 2,  7, 16, 17, 12],
           [10, 30, 62, 58, 38],
           [12, 31, 58, 49, 30]])
    """
    return _scipy_style("convolve2d", in1, in2, mode, boundary, fillvalue, method, convolve=True)


def conv2d(
    x: da.Array | ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: _conv.IntPair = 1,
    padding: _conv.Padding = 0,
    dilation: _conv.IntPair = 1,
    groups: int = 1,
    *,
    method: _conv.Method = "auto",
) -> da.Array:
    """Lazy NCHW convolution of a dask batch, as ``torch.nn.functional.conv2d``.

    :func:`fastcorr.conv2d` chunk by chunk: the same shape and dtype, and the same
    values to rounding.

    Parameters
    ----------
    x : dask.array.Array, shape (N, C, H, W)
        Chunk it along the batch axis N. The channel axis is rechunked to a single
        chunk. With stride 1, H and W may be chunked too: chunks share a halo of
        ``dilation * (k - 1)`` and the padding is zeros around the whole image. With a
        larger stride, H and W are rechunked to single chunks.
    weight : array_like, shape (O, C // groups, kh, kw)
        In memory; a dask array is computed first.
    bias : array_like, shape (O,), optional
    stride, padding, dilation, groups, method
        As :func:`fastcorr.conv2d` ('auto' decides chunk by chunk).

    Returns
    -------
    dask.array.Array, shape (N, O, H', W')
        Lazy; dtype as :func:`fastcorr.conv2d`. Chunks: ``x``'s along N, one along O,
        and along H and W the output rows and columns of ``x``'s chunks (stride 1).

    Raises
    ------
    TypeError, ValueError
        Every error of :func:`fastcorr.conv2d`, raised at the call.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import fastcorr.dask as fcd
    >>> x = da.from_array(np.arange(32.0).reshape(2, 1, 4, 4), chunks=(1, 1, 2, 2))
    >>> y = fcd.conv2d(x, np.ones((1, 1, 2, 2)), bias=[0.5], padding=1)
    >>> y.shape, y.chunks
    ((2, 1, 5, 5), ((1, 1), (1,), (2, 3), (2, 3)))
    >>> y[0, 0].compute()
    array([[ 0.5,  1.5,  3.5,  5.5,  3.5],
           [ 4.5, 10.5, 14.5, 18.5, 10.5],
           [12.5, 26.5, 30.5, 34.5, 18.5],
           [20.5, 42.5, 46.5, 50.5, 26.5],
           [12.5, 25.5, 27.5, 29.5, 15.5]])
    """
    func = "conv2d"
    x = _image(x, "x", func)
    if x.dtype.kind not in "biufc":
        raise TypeError(f"{func}: x must hold numbers (bool, int, float or complex), got dtype {x.dtype}")
    if x.dtype.kind == "c":
        raise TypeError(f"{func}: x must be real, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{func}: x must be 4-D (N, C, H, W layout), got shape {x.shape}")
    weight = _conv._array4(_in_memory(weight), "weight", func)
    geo = _conv._geometry(func, weight.shape, stride, padding, dilation, groups)
    _, o, oh, ow = _conv._check(func, x.shape, weight.shape, geo)
    method = _conv._method(func, method, geo, weight.shape)
    dtypes = [x.dtype, weight.dtype]
    if bias is not None:
        bias = _validate.array(_in_memory(bias), "bias")
        if bias.shape != (o,):
            raise ValueError(f"{func}: bias must have shape ({o},), one value per output channel, got {bias.shape}")
        dtypes.append(bias.dtype)
    dtype = _validate.float_dtype(*dtypes)
    w = _validate.contiguous(weight, dtype)
    b = np.zeros(o, dtype) if bias is None else _validate.contiguous(bias, dtype)
    if x.size == 0:
        return da.from_array(_conv.conv2d(np.zeros(x.shape, x.dtype), w, b, stride, padding, dilation, groups,
                                          method=method))
    x = x.rechunk({1: -1})
    wd, bd = dask.delayed(w, pure=True), dask.delayed(b, pure=True)
    if (geo.sh, geo.sw) != (1, 1) or x.numblocks[2] == x.numblocks[3] == 1:
        x = x.rechunk({2: -1, 3: -1})
        return _blocks(func, _conv_block, x, wd, bd, stride, padding, dilation, groups, method,
                       chunks=(x.chunks[0], (o,), (oh,), (ow,)), dtype=dtype)
    rows = _plan(x.chunks[2], x.shape[2], oh, geo.dh * (weight.shape[2] - 1) + 1, geo.pt)
    cols = _plan(x.chunks[3], x.shape[3], ow, geo.dw * (weight.shape[3] - 1) + 1, geo.pl)
    halo = _halo(x.astype(dtype), {2: rows, 3: cols}, _corr.FILL, dtype.type(0))
    return _blocks(func, _conv_block, halo, wd, bd, 1, 0, (geo.dh, geo.dw), groups, method,
                   chunks=(x.chunks[0], (o,), rows.out, cols.out), dtype=dtype)


def ndimage_correlate(
    input: da.Array | ArrayLike,
    weights: ArrayLike,
    mode: _ndimage.Mode = "reflect",
    cval: float = 0.0,
    origin: int | tuple[int, ...] = 0,
    *,
    axes: int | tuple[int, ...] | None = None,
) -> da.Array:
    """Lazy N-D correlation of a dask array, as ``scipy.ndimage.correlate``.

    :func:`fastcorr.ndimage.correlate` chunk by chunk (``dask_image.ndfilters.correlate``'s
    job): the same shape, dtype and values (integers exactly, floats to rounding) for every
    mode, origin and ``axes``, whatever the chunking.

    Parameters
    ----------
    input : dask.array.Array
        Any number of dimensions, chunked any way (other array-likes are wrapped with
        ``da.asarray``). Along each filtered axis, chunks narrower than the kernel's reach
        are merged with a neighbour.
    weights : array_like
        The kernel, in memory; a dask array is computed first.
    mode, cval, origin, axes
        As :func:`fastcorr.ndimage.correlate`. There is no ``output``: the result is a new
        lazy array of the in-memory function's dtype.

    Returns
    -------
    dask.array.Array
        Lazy, ``input``'s shape and chunks (but where merged).

    Raises
    ------
    RuntimeError, ValueError, TypeError
        Every error of :func:`fastcorr.ndimage.correlate`, raised at the call.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import fastcorr.dask as fcd
    >>> x = da.from_array(np.arange(12.0).reshape(3, 4), chunks=2)
    >>> y = fcd.ndimage_correlate(x, [[1.0, 1.0]], mode="nearest")
    >>> y.chunks
    ((2, 1), (2, 2))
    >>> y.compute()
    array([[ 0.,  1.,  3.,  5.],
           [ 8.,  9., 11., 13.],
           [16., 17., 19., 21.]])
    """
    return _ndimage_style("ndimage_correlate", input, weights, mode, cval, origin, axes, convolution=False)


def ndimage_convolve(
    input: da.Array | ArrayLike,
    weights: ArrayLike,
    mode: _ndimage.Mode = "reflect",
    cval: float = 0.0,
    origin: int | tuple[int, ...] = 0,
    *,
    axes: int | tuple[int, ...] | None = None,
) -> da.Array:
    """Lazy N-D convolution of a dask array, as ``scipy.ndimage.convolve``.

    :func:`fastcorr.ndimage.convolve` chunk by chunk. Parameters, chunks, dtypes and errors
    as :func:`ndimage_correlate`.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import fastcorr.dask as fcd
    >>> x = da.from_array(np.array([1, 2, 3, 4, 5, 6]), chunks=2)
    >>> fcd.ndimage_convolve(x, [1, 0, -1], mode="wrap").compute()
    array([-4,  2,  2,  2,  2, -4])
    """
    return _ndimage_style("ndimage_convolve", input, weights, mode, cval, origin, axes, convolution=True)


def _ndimage_style(func, input, weights, mode, cval, origin, axes, convolution):
    x = _image(input, "input", func)
    weights = np.asarray(_in_memory(weights))
    in_memory = _ndimage.convolve if convolution else _ndimage.correlate
    # The in-memory function on one element of the input's dtype: its errors, and the dtype.
    dtype = in_memory(np.zeros((1,) * x.ndim, x.dtype), weights, None, mode, cval, origin, axes=axes).dtype
    boundary = _ndimage.check_mode(mode)
    axes = _ndimage.check_axes(axes, x.ndim)
    if weights.dtype.kind != "c":
        weights = weights.astype(np.float64)
    w, origins = _ndimage.expand(x.ndim, weights, origin, axes, convolution)
    if x.size == 0 or w.size == 0:
        return da.from_array(in_memory(np.zeros(x.shape, x.dtype), weights, None, mode, cval, origin, axes=axes))
    # The correlation's kernel; correlate conjugates complex weights, so a convolution's
    # flipped weights are conjugated first.
    w = np.conj(w) if convolution and w.dtype.kind == "c" else w
    plans = {ax: _plan(x.chunks[ax], x.shape[ax], x.shape[ax], n, n // 2 + int(o))
             for ax, (n, o) in enumerate(zip(w.shape, origins)) if n > 1}
    fill = complex(cval) if x.dtype.kind == "c" else cval
    halo = _halo(x, plans, boundary, x.dtype.type(fill))
    chunks = tuple(plans[ax].out if ax in plans else x.chunks[ax] for ax in range(x.ndim))
    return _blocks(func, _ndimage_valid, halo, dask.delayed(w, pure=True), chunks=chunks, dtype=dtype)


def _ndimage_valid(block, w):
    """The outputs of ``block`` whose taps all fall inside it: ``out[i] = sum_a w[a] * block[i + a]``."""
    out = _ndimage.correlate(block, w, mode="constant", origin=[-(n // 2) for n in w.shape])
    return out[tuple(slice(0, s - n + 1) for s, n in zip(block.shape, w.shape))]


def _scipy_style(func, in1, in2, mode, boundary, fillvalue, method, convolve):
    in1 = _image(in1, "in1", func)
    in2 = np.asarray(_in_memory(in2))
    call = _signal._prepare(func, in1, in2, mode, boundary, fillvalue, method, convolve)
    in_memory = getattr(_signal, func)
    args = (mode, boundary, fillvalue)
    if call.swapped:
        result = dask.delayed(in_memory, pure=True)(in1, in2, *args, method=call.method)
        return da.from_delayed(result, call.shape, call.dtype, meta=np.empty((0, 0), call.dtype))
    if in1.size == 0:
        return da.from_array(in_memory(np.zeros(in1.shape, in1.dtype), in2, *args, method=call.method))
    if in1.numblocks == (1, 1):
        return _whole(in1, in_memory, (in2, *args), {"method": call.method}, call.shape, call.dtype, func)
    k = _signal._kernel(in2, call.dtype, convolve)
    if k.size == 0:
        return _zeros(in1, call.shape, call.dtype)
    return _correlate(func, in1.astype(call.dtype), k, call.shape, call.pad, call.boundary, call.fill, call.method)


def _whole(x, in_memory, args, kwargs, shape, dtype, func):
    """One chunk: the in-memory function itself."""
    delayed = [dask.delayed(a, pure=True) if isinstance(a, np.ndarray) else a for a in args]
    return _blocks(func, in_memory, x, *delayed, **kwargs, chunks=tuple((n,) for n in shape), dtype=dtype)


def _correlate(func, x, k, shape, pad, boundary, fill, method):
    """``out[i, j] = sum_ab k[a, b] * ext(x)[i + a - pad[0], j + b - pad[1]]`` chunk by chunk."""
    plans = {axis: _plan(x.chunks[axis], x.shape[axis], shape[axis], k.shape[axis], pad[axis]) for axis in (0, 1)}
    halo = _halo(x, plans, boundary, fill)
    block = _valid_fft if method == "fft" else _valid_direct
    return _blocks(func, block, halo, dask.delayed(k, pure=True), chunks=(plans[0].out, plans[1].out), dtype=x.dtype)


def _blocks(func, block, x, *args, chunks, dtype, **kwargs):
    """``x.map_blocks(block, *args, **kwargs)`` with the result's chunks and dtype, named after ``func``."""
    token = dask.base.tokenize(block, x, args, kwargs, chunks, dtype)
    return x.map_blocks(
        block, *args, **kwargs, chunks=chunks, dtype=dtype, meta=np.empty((0,) * len(chunks), dtype),
        name=f"{func}-{token}",
    )


class _Plan:
    """One axis: output chunks, chunks of the boundary-extended input, halo and extension.

    Output index ``i`` reads extended positions ``[i, i + size)``, extended position
    ``e`` being input position ``e - pad``. Output chunk ``c`` owns the extended
    positions of its indices shifted by ``depth[0]``; the first and last chunks also own
    the positions before and after, and each chunk borrows ``depth`` from its neighbours.
    """

    def __init__(self, out, depth, before, after):
        self.out = out
        self.depth = depth
        self.before = before
        self.after = after
        self.extended = (out[0] + depth[0], *out[1:-1], out[-1] + depth[1]) if len(out) > 1 else (sum(out) + sum(depth),)


def _plan(chunks, n_in, n_out, size, pad) -> _Plan:
    """Output chunks at the input's chunk edges, merged where narrower than the halo."""
    anchor = min(pad, size - 1)
    depth = (anchor, size - 1 - anchor)
    least = max(1, *depth)
    edges = [0]
    for edge in np.cumsum(chunks[:-1]) + (pad - anchor):
        if edge - edges[-1] >= least and n_out - edge >= least:
            edges.append(int(edge))
    edges.append(n_out)
    return _Plan(tuple(np.diff(edges).tolist()), depth, pad, n_out + size - 1 - pad - n_in)


def _halo(x, plans, boundary, fill):
    """``x`` extended by ``boundary``, in the plans' chunks, each chunk with its halo."""
    for axis, plan in plans.items():
        x = _extend(x, axis, plan.before, plan.after, boundary, fill)
    x = x.rechunk({axis: plan.extended for axis, plan in plans.items()})
    depth = {axis: plan.depth for axis, plan in plans.items() if any(plan.depth)}
    if depth:
        x = da.overlap.overlap(x, depth=depth, boundary="none", allow_rechunk=False)
    return x


def _extend(x, axis, before, after, boundary, fill):
    """Positions ``[-before, n + after)`` of ``x`` along ``axis``, extended by ``boundary``."""
    if before == after == 0:
        return x
    if boundary == _corr.FILL:
        pieces = [_constant(x, axis, before, fill), x, _constant(x, axis, after, fill)]
    elif boundary in (_corr.NEAREST, _corr.MIRROR):
        n = x.shape[axis]
        pieces = [da.take(x, _corr.edge_index(np.arange(start, stop), n, boundary), axis=axis) if stop > start else None
                  for start, stop in ((-before, 0), (n, n + after))]
        pieces.insert(1, x)
    else:
        n = x.shape[axis]
        pieces = []
        for start, stop, mirrored in _segments(-before, n + after, n, boundary == _corr.SYMM):
            index = [slice(None)] * x.ndim
            index[axis] = slice(start, stop)
            piece = x if (start, stop) == (0, n) else x[tuple(index)]
            if mirrored:
                index[axis] = slice(None, None, -1)
                piece = piece[tuple(index)]
            pieces.append(piece)
    return da.concatenate([p for p in pieces if p is not None], axis=axis)


def _constant(x, axis, length, fill):
    if length == 0:
        return None
    shape = list(x.shape)
    chunks = list(x.chunks)
    shape[axis], chunks[axis] = length, (length,)
    return da.full(tuple(shape), fill, dtype=x.dtype, chunks=tuple(chunks))


def _segments(start, stop, n, symmetric):
    """Runs ``(a, b, mirrored)`` of source positions ``x[a:b]`` covering ``[start, stop)``."""
    e = start
    while e < stop:
        period, m = divmod(e, n)
        length = min(stop - e, n - m)
        if symmetric and period % 2:
            yield n - m - length, n - m, True
        else:
            yield m, m + length, False
        e += length


def _zeros(x, shape, dtype):
    chunks = tuple(_plan(x.chunks[axis], x.shape[axis], shape[axis], 1, 0).out for axis in (0, 1))
    return da.zeros(shape, dtype=dtype, chunks=chunks)


def _valid_direct(block, k):
    x = np.ascontiguousarray(block)
    out = np.empty((x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1), x.dtype)
    return _signal._run(x, k, out)


def _valid_fft(block, k):
    x = np.ascontiguousarray(block)
    out = np.empty((x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1), x.dtype)
    _signal._fft_correlate(x, k, out, (0, 0), x.dtype.type(0))
    return out


def _conv_block(block, weight, bias, stride, padding, dilation, groups, method):
    return _conv.conv2d(block, weight, bias, stride, padding, dilation, groups, method=method)


def _image(value, name, func):
    arr = value if isinstance(value, da.Array) else da.asarray(value)
    if any(math.isnan(s) for s in arr.shape):
        raise ValueError(f"{func}: {name} has unknown chunk sizes {arr.chunks}; call {name}.compute_chunk_sizes() first")
    return arr


def _in_memory(value):
    return value.compute() if isinstance(value, da.Array) else value
