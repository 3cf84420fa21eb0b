"""conv2d and its two gradients on NCHW arrays, with torch's arguments and results."""

from __future__ import annotations

import functools
from typing import Callable, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastcorr import _validate
from fastcorr._kernels import conv as _conv
from fastcorr._kernels import corr as _corr
from fastcorr._kernels import winograd as _winograd
from fastcorr._kernels.scan import all_finite


IntPair = int | tuple[int, int]
Padding = IntPair | Literal["valid", "same"]
Method = Literal["auto", "direct", "winograd"]

_METHODS = {"auto": "auto", "direct": "direct", "winograd": "winograd"}


class _Geometry(NamedTuple):
    """Validated stride, dilation, padding and groups for one call."""

    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    groups: int

    def output_size(self, h: int, w: int, kh: int, kw: int) -> tuple[int, int]:
        return (
            (h + self.pt + self.pb - self.dh * (kh - 1) - 1) // self.sh + 1,
            (w + self.pl + self.pr - self.dw * (kw - 1) - 1) // self.sw + 1,
        )

    def kernel_args(self) -> tuple[int, ...]:
        return self.sh, self.sw, self.dh, self.dw, self.pt, self.pl, self.groups


def _geometry(func, weight_shape, stride, padding, dilation, groups) -> _Geometry:
    sh, sw = _validate.pair(stride, "stride", 1)
    dh, dw = _validate.pair(dilation, "dilation", 1)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{func}: groups must be a positive int, got {groups!r}")
    kh, kw = weight_shape[2], weight_shape[3]
    if isinstance(padding, str):
        if padding == "valid":
            pt = pb = pl = pr = 0
        elif padding == "same":
            if sh != 1 or sw != 1:
                raise ValueError(f"{func}: padding='same' is not supported for strided convolutions (stride={stride!r}); "
                                 "pass explicit padding")
            th, tw = dh * (kh - 1), dw * (kw - 1)
            pt, pl = th // 2, tw // 2
            pb, pr = th - pt, tw - pl
        else:
            raise ValueError(f"{func}: padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
    else:
        pt, pl = _validate.pair(padding, "padding", 0)
        pb, pr = pt, pl
    return _Geometry(sh, sw, dh, dw, pt, pb, pl, pr, int(groups))


def _real(value, name, func):
    arr = _validate.array(value, name)
    if arr.dtype.kind == "c":
        raise TypeError(f"{func}: {name} must be real, got dtype {arr.dtype}")
    return arr


def _array4(value, name, func):
    arr = _real(value, name, func)
    if arr.ndim != 4:
        raise ValueError(f"{func}: {name} must be 4-D (N, C, H, W layout), got shape {arr.shape}")
    return arr


def _shape4(value, name, func) -> tuple[int, int, int, int]:
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if shape is None or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape):
        raise TypeError(f"{func}: {name} must be a sequence of 4 ints, got {value!r}")
    shape = tuple(int(v) for v in shape)
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(f"{func}: {name} must be 4 non-negative ints, got {value!r}")
    return shape  # type: ignore[return-value]


def _check(func, x_shape, w_shape, geo: _Geometry) -> tuple[int, int, int, int]:
    """Channel, group and size rules shared by the forward and both gradients; the output shape."""
    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    if c != cg * geo.groups:
        raise ValueError(f"{func}: input has {c} channels but weight expects in_channels = "
                         f"weight.shape[1] * groups = {cg} * {geo.groups} = {cg * geo.groups}")
    if o % geo.groups:
        raise ValueError(f"{func}: out_channels = weight.shape[0] = {o} is not divisible by groups = {geo.groups}")
    if o == 0 or kh == 0 or kw == 0 or cg == 0:
        raise ValueError(f"{func}: weight of shape {tuple(w_shape)} is empty")
    oh, ow = geo.output_size(h, w, kh, kw)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{func}: the (dilated) kernel {(geo.dh * (kh - 1) + 1, geo.dw * (kw - 1) + 1)} is larger than the "
            f"padded input {(h + geo.pt + geo.pb, w + geo.pl + geo.pr)}; pad more or use a smaller kernel"
        )
    return n, o, oh, ow


def conv2d(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    out: NDArray | None = None,
    method: Method = "auto",
) -> NDArray:
    """2-D convolution (cross-correlation) of a batch, as ``torch.nn.functional.conv2d``.

    ``out[n, o, i, j] = bias[o] + sum over c, a, b of
    weight[o, c, a, b] * x[n, g * C/groups + c, i * sh + a * dh - pt, j * sw + b * dw - pl]``,
    with ``g`` the group of output channel ``o`` and zeros outside the image.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    weight : array_like, shape (O, C // groups, kh, kw)
    bias : array_like, shape (O,), optional
    stride, dilation : int or (int, int)
        At least 1.
    padding : int, (int, int), 'valid' or 'same'
        Zeros added on each side; 'same' pads ``dilation * (k - 1)`` in total per
        dimension, the odd one at the bottom/right, and needs stride 1.
    groups : int
        Splits the input and output channels into ``groups`` independent convolutions
        (``groups == C == O`` is depthwise).
    out : ndarray, optional
        A C-contiguous buffer of the output's shape and dtype, reused across calls.
    method : {'auto', 'direct', 'winograd'}
        'direct' sums the products as the formula reads. 'winograd' computes each 4x4 block of
        output from a 6x6 block of input with 36 multiplies per channel pair where direct takes
        144 (Winograd F(4x4, 3x3)); it needs a 3x3 kernel, stride 1, dilation 1 and one group
        (a ``ValueError`` says which is missing). 'auto' takes Winograd where it measured faster
        (16 to 128 input channels, at least 32 output channels and 256 blocks of 4x4 output, or
        16 output channels and 1024 blocks)
        and every value of ``x`` and ``weight`` is finite, else direct.

    Returns
    -------
    ndarray, shape (N, O, H', W')
        float32 when every input is float32 (or a narrower float), float64 otherwise.

    Notes
    -----
    Accuracy contract: for finite inputs every method's result ``y`` is within ``2e-5 * S`` of
    the exact result ``y64`` in float32, and within ``1e-13 * S`` in float64, ``S`` the
    largest sum of absolute terms, ``max(|x| * |w| + |b|)`` (``*`` the same convolution): a
    small multiple of ``max|y64|`` where the outputs do not all nearly cancel. Measured against
    ``max|y64|``, with values spread over up to 12 orders of magnitude and up to 512 channels:
    direct 2e-7 to 3e-6 and Winograd 1e-6 to 1.3e-5 in float32; Winograd 6e-15 to 1.4e-14 in
    float64.
    With 'auto' an inf or NaN lands where direct convolution puts it; Winograd asked for
    explicitly spreads it over the 4x4 output blocks whose 6x6 input block holds it.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> fc.conv2d(x, np.ones((1, 1, 2, 2)), bias=[0.5], stride=2)
    array([[[[10.5, 18.5],
             [42.5, 50.5]]]])
    """
    x = _array4(x, "x", "conv2d")
    weight = _array4(weight, "weight", "conv2d")
    geo = _geometry("conv2d", weight.shape, stride, padding, dilation, groups)
    shape = _check("conv2d", x.shape, weight.shape, geo)
    arrays = [x.dtype, weight.dtype]
    if bias is not None:
        bias = _real(bias, "bias", "conv2d")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), one value per output channel, "
                             f"got {bias.shape}")
        arrays.append(bias.dtype)
    dtype = _validate.float_dtype(*arrays)
    b = np.zeros(weight.shape[0], dtype) if bias is None else _validate.contiguous(bias, dtype)
    out = _validate.output(out, shape, dtype, (x, weight) if bias is None else (x, weight, bias))
    method = _method("conv2d", method, geo, weight.shape)
    return _forward(_validate.contiguous(x, dtype), _validate.contiguous(weight, dtype), b, out, geo, method)


def _method(func: str, method: object, geo: _Geometry, weight_shape, role: str = "forward") -> str:
    """``method`` checked: 'winograd' only where it can run (else a ValueError that says why)."""
    method = _validate.choice(method, "method", _METHODS, f"{func}: method must be one of "
                              f"{', '.join(map(repr, _METHODS))}")
    if method == "winograd":
        reason = _winograd_refusal(geo, weight_shape, role)
        if reason:
            raise ValueError(f"{func}: method='winograd' {reason}; use method='direct' or 'auto'")
    return method


def _winograd_refusal(geo: _Geometry, weight_shape, role: str) -> str:
    """Why Winograd cannot run a pass ('forward', 'input' or 'weight'), or ''."""
    kh, kw = weight_shape[2], weight_shape[3]
    if (kh, kw) != (3, 3):
        return f"needs a 3x3 kernel, got {kh}x{kw}"
    if (geo.sh, geo.sw) != (1, 1):
        return f"needs stride 1, got {(geo.sh, geo.sw)}"
    if (geo.dh, geo.dw) != (1, 1):
        return f"needs dilation 1, got {(geo.dh, geo.dw)}"
    if geo.groups != 1:
        return f"needs groups=1, got {geo.groups}"
    if role == "input" and max(geo.pt, geo.pl) > 2:
        # The input gradient is the forward pass padded by 2 - padding.
        return f"needs a padding of at most 2 at the top and left for the input gradient, got {(geo.pt, geo.pl)}"
    return ""


def _runs_winograd(method: str, geo: _Geometry, weight_shape, out_shape, operands, role: str = "forward") -> bool:
    """Whether a pass runs Winograd: asked for, or 'auto' where it can run, pays, and every one of
    ``operands`` is finite (so that an inf or NaN lands where direct convolution puts it; the
    inputs Winograd copies are checked while it copies them)."""
    if method != "auto":
        return method == "winograd"
    # The cheap test first: small and tiny calls, on the hot path, never format a refusal.
    return (_winograd_pays(weight_shape, out_shape, role) and not _winograd_refusal(geo, weight_shape, role)
            and all(all_finite(a) for a in operands))


def _winograd_pays(weight_shape, out_shape, role: str = "forward") -> bool:
    """Winograd is faster than direct convolution here: measured on an Intel Xeon (Emerald Rapids,
    AVX-512), 2 threads, float32 and float64, over 256 to 2048 4x4 tiles of output, the forward
    pass (and the input gradient, a forward pass) took 0.40-1.02x direct's time from 16 to 128
    input and 16 or more output channels, and lost or tied with 8 output channels (0.64-2.1x, its
    transforms cost more than the multiplies they save), with 8 input channels (0.44-2.1x), and
    below a few hundred tiles (a task's chunk of tiles half empty, its fixed costs unshared).
    With 16 output channels it saves least (0.73-1.02x), so there it waits for 1024 tiles: a
    small layer's first call would compile Winograd's kernels (2-3 s) to save microseconds."""
    o_count, c_count = weight_shape[:2]
    n_batch, _, oh, ow = out_shape
    tiles = n_batch * -(-oh // 4) * -(-ow // 4)
    if role == "weight":
        # F(3x3, 4x4), same machine, 1568 and 2048 tiles: 0.51-0.93x the direct matrix product's
        # time with 16 or more channels one way and 32 or more the other (a few float64 layers
        # of 128 output channels 1.04-1.06x), 0.71-1.29x with 16 by 16, 0.54-1.44x with 8
        # channels one way; 0.78-2.1x over 256 tiles (each part's sums of every channel pair
        # and point are read and written for every run of tiles).
        return tiles >= 1024 and min(o_count, c_count) >= 16 and max(o_count, c_count) >= 32
    return 16 <= c_count <= 128 and tiles >= 256 and (o_count >= 32 or o_count >= 16 and tiles >= 1024)


def _tiny(geo: _Geometry, work: int, method: str) -> bool:
    """Few multiply-adds, stride and dilation 1, Winograd not asked for: the pass runs as a
    :data:`SmallPass`, on the correlation loop that small corr2d calls compile anyway (one
    compiled loop for everything small). Winograd never pays this small."""
    return work < _TINY_WORK and geo.sh == geo.sw == geo.dh == geo.dw == 1 and method != "winograd"


_TINY_WORK = 1 << 15


#: A small pass bound to its planes: ``run(x, k, out, start)`` sets ``out[e, f] = start[f] +`` its
#: sums (adds them to ``out`` for an empty ``start``) and returns True; or returns False, ``out``
#: unwritten, for an input gradient whose padding an inf or NaN in ``k`` would meet (the caller
#: then takes another loop).
SmallPass = Callable[[NDArray, NDArray, NDArray, NDArray], bool]


def _flipped_valid(planes, none, x, k, out, start):
    """An input gradient on the unpadded small loop (a kernel one wider than the padding: rare),
    the kernel flipped here."""
    return _corr.valid_planes(planes, none, x, np.ascontiguousarray(k[..., ::-1, ::-1]), out, start)


@functools.lru_cache(maxsize=256)
def small_passes(x_shape, w_shape, geo: _Geometry, method: str) -> tuple[SmallPass | None, ...]:
    """The forward pass, weight gradient and input gradient of a conv2d of ``x_shape`` by ``w_shape``
    (checked) as a :data:`SmallPass` where they are small, else None (its function picks a loop);
    the three do the same number of multiply-adds. The input gradient is the 'full' correlation
    of dY with the flipped kernel (None when the padding is wider than ``k - 1``); the weight
    gradient, the correlation of the padded input with dY summed over the batch."""
    n_batch, c_count, h, w = x_shape
    o_count, cg, kh, kw = w_shape
    oh, ow = geo.output_size(h, w, kh, kw)
    if not _tiny(geo, n_batch * o_count * oh * ow * cg * kh * kw, method):
        return None, None, None
    y_shape = (n_batch, o_count, oh, ow)
    og = o_count // geo.groups
    n, o, c = (a.ravel() for a in np.meshgrid(np.arange(n_batch), np.arange(o_count), np.arange(cg), indexing="ij"))
    channel = o // og * cg + c  # the input channel that output channel o meets

    def small(in_shape, k_shape, out_shape, columns, p0, p1, flip=False):
        # Rows of (a, b, c, d, e, f): out[e, f] takes in[a, b] correlated with k[c, d].
        planes = np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.int64)
        if not _corr.inside(in_shape, k_shape, out_shape, p0, p1):
            return functools.partial(_corr.correlate_planes, planes, p0, p1, flip, 0)
        return functools.partial(_flipped_valid if flip else _corr.valid_planes, planes, 0)

    top, left = kh - 1 - geo.pt, kw - 1 - geo.pl
    return (small(x_shape, w_shape, y_shape, (n, channel, o, c, n, o), geo.pt, geo.pl),
            small(x_shape, y_shape, w_shape, (n, channel, n, o, o, c), geo.pt, geo.pl),
            small(y_shape, w_shape, x_shape, (n, o, o, c, n, channel), top, left, True) if top >= 0 and left >= 0 else None)


def _forward(x: NDArray, weight: NDArray, bias: NDArray, out: NDArray, geo: _Geometry, method: str = "auto") -> NDArray:
    """conv2d on validated, C-contiguous arrays of one dtype, into ``out``."""
    work = out.size * weight[0].size
    small = small_passes(x.shape, weight.shape, geo, method)[0]
    if small is not None:
        small(x, weight, out, bias)
        return out
    # Winograd checks x for inf and NaN while it pads it: 'auto' then runs direct.
    if (_runs_winograd(method, geo, weight.shape, out.shape, (weight,))
            and _winograd.forward(x, weight, bias, out, geo.pt, geo.pl, work, method == "auto") is not None):
        return out
    if geo.sh == geo.sw == 1:
        _forward_flat(x, weight, bias, out, geo.dh, geo.dw, geo.pt, geo.pl, geo.groups, work)
    else:
        _conv.forward.pick(work)(x, weight, bias, out, *geo.kernel_args())
    return out


def conv2d_input_grad(
    input_shape,
    weight: ArrayLike,
    grad_output: ArrayLike,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    method: Method = "auto",
) -> NDArray:
    """Gradient of :func:`conv2d` with respect to its input, as ``torch.nn.grad.conv2d_input``.

    Parameters
    ----------
    input_shape : sequence of 4 ints
        (N, C, H, W) of the forward input.
    weight : array_like, shape (O, C // groups, kh, kw)
    grad_output : array_like, shape (N, O, H', W')
        The gradient of the loss with respect to the forward output.
    stride, padding, dilation, groups
        As the forward call.
    method : {'auto', 'direct', 'winograd'}
        As :func:`conv2d`'s, for the forward convolution of ``grad_output`` with the flipped
        kernel that this gradient is: 'winograd' also needs a padding of at most 2 at the top
        and left; 'auto' takes it where ``weight`` and ``grad_output`` are finite.

    Returns
    -------
    ndarray, shape ``input_shape``
        In the dtype rule of :func:`conv2d` for ``weight`` and ``grad_output``.

    Notes
    -----
    With stride 1 and a finite ``weight`` the sums run in blocks over flat padded planes; an
    inf or NaN in ``weight`` (or a stride above 1) takes a plain loop that adds the same
    products in another order. The finite results of the two differ by rounding only.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> fc.conv2d_input_grad((1, 1, 3, 3), np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]])
    """
    func = "conv2d_input_grad"
    input_shape = _shape4(input_shape, "input_shape", func)
    weight = _array4(weight, "weight", func)
    grad_output = _array4(grad_output, "grad_output", func)
    geo = _geometry(func, weight.shape, stride, padding, dilation, groups)
    _expect_grad_output(func, _check(func, input_shape, weight.shape, geo), grad_output)
    dtype = _validate.float_dtype(weight.dtype, grad_output.dtype)
    dy, weight = _validate.contiguous(grad_output, dtype), _validate.contiguous(weight, dtype)
    method = _method(func, method, geo, weight.shape, "input")
    return _input_grad(dy, weight, np.empty(input_shape, dtype), geo, method)


def _forward_flat(x, weight, bias, out, dh, dw, pt, pl, groups, work):
    """Stride 1: 3x3 and 5x5 kernels over few channels on the channel band; else on the register
    tile when each group fills most of a tile's rows with output channels; else on the flat
    loops over padded planes."""
    og, cg, kh = weight.shape[0] // groups, weight.shape[1], weight.shape[2]
    wp, size = _conv.flat_geometry(x.shape, weight.shape, out.shape, dh, dw, pl)
    if _conv.band_fits(weight.shape, out.shape, dh, dw, x.itemsize) and _conv.band_pays(og, cg, kh):
        _conv.channel_band.pick(work)(x, weight, bias, out, groups, pt, pl, wp, size)
    elif _conv.tile_pays(og):
        _conv.tiled(x, weight, bias, out, dh, dw, pt, pl, groups, work)
    else:
        _conv.forward_flat.pick(work)(x, weight, bias, out, dh, dw, groups, pt, pl, wp, size,
                                      *_conv.flat_switches(weight.shape, groups, dw))


def _input_grad(dy: NDArray, weight: NDArray, dx: NDArray, geo: _Geometry, method: str = "auto") -> NDArray:
    """conv2d_input_grad on validated, C-contiguous arrays of one dtype, into ``dx``."""
    work = dy.size * weight[0].size
    o, cg, kh, kw = weight.shape
    top, left = geo.dh * (kh - 1) - geo.pt, geo.dw * (kw - 1) - geo.pl
    small = small_passes(dx.shape, weight.shape, geo, method)[2]
    if small is not None and small(dy, weight, dx, np.zeros(dx.shape[1], dx.dtype)):
        return dx
    if (_runs_winograd(method, geo, (cg, o, kh, kw), dx.shape, (weight,), "input")
            and _winograd.forward(dy, _swapped(weight, geo.groups), np.zeros(cg, dx.dtype), dx, top, left, work,
                                  method == "auto") is not None):
        return dx
    flat = geo.sh == geo.sw == 1 and top >= 0 and left >= 0 and all_finite(weight)
    if flat:
        # Stride 1: the input gradient is the forward convolution of dY, padded by
        # dilation * (k - 1) - padding, with the kernel flipped and its channel axes swapped.
        # (That padding is not part of the maths: an inf weight must not meet it.)
        g = geo.groups
        _forward_flat(dy, _swapped(weight, g), np.zeros(g * cg, dx.dtype), dx, geo.dh, geo.dw, top, left, g, work)
    else:
        _conv.input_grad.pick(work)(dy, weight, dx, *geo.kernel_args())
    return dx


def _swapped(weight: NDArray, groups: int) -> NDArray:
    """The kernel of the input gradient as a forward convolution: flipped, with the channel axes
    swapped within each group."""
    o, cg, kh, kw = weight.shape
    swapped = weight.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return np.ascontiguousarray(swapped.reshape(groups * cg, o // groups, kh, kw))


def conv2d_weight_grad(
    input: ArrayLike,
    weight_shape,
    grad_output: ArrayLike,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    method: Method = "auto",
) -> NDArray:
    """Gradient of :func:`conv2d` with respect to its weight, as ``torch.nn.grad.conv2d_weight``.

    Parameters
    ----------
    input : array_like, shape (N, C, H, W)
        The forward input.
    weight_shape : sequence of 4 ints
        (O, C // groups, kh, kw).
    grad_output : array_like, shape (N, O, H', W')
    stride, padding, dilation, groups
        As the forward call.
    method : {'auto', 'direct', 'winograd'}
        'winograd' sums the products of each 4x4 tile of ``grad_output`` and the 6x6 patch
        of ``input`` it meets as F(3x3, 4x4) (4x fewer multiplies, 3x3 kernels of one group,
        stride and dilation 1 only; else a ``ValueError``), under the accuracy contract of
        :func:`conv2d`. 'auto' takes it for finite operands where it is faster.

    Returns
    -------
    ndarray, shape ``weight_shape``
        In the dtype rule of :func:`conv2d` for ``input`` and ``grad_output``.

    Notes
    -----
    Direct sums: with stride and dilation 1, one group and enough channels, a matrix product
    on the register tile (the input laid out channels last); else, with stride 1 and a finite
    ``input``, blocked dot products; else (an inf or NaN in ``input``, a stride above 1) a
    plain loop. They add the same products in different orders: finite results differ by
    rounding only. Winograd keeps the accuracy contract of :func:`conv2d` (measured, with
    values spread over up to 12 orders of magnitude and up to 512 channels: 2e-6 to 5.4e-6
    in float32, 2e-15 to 1.6e-14 in float64); asked for explicitly, an inf or NaN spreads
    over every kernel entry of the channel pairs whose tiles meet it.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> fc.conv2d_weight_grad(x, (1, 1, 2, 2), np.ones((1, 1, 2, 2)))
    array([[[[ 8., 12.],
             [20., 24.]]]])
    """
    func = "conv2d_weight_grad"
    x = _array4(input, "input", func)
    weight_shape = _shape4(weight_shape, "weight_shape", func)
    grad_output = _array4(grad_output, "grad_output", func)
    geo = _geometry(func, weight_shape, stride, padding, dilation, groups)
    _expect_grad_output(func, _check(func, x.shape, weight_shape, geo), grad_output)
    dtype = _validate.float_dtype(x.dtype, grad_output.dtype)
    x, dy = _validate.contiguous(x, dtype), _validate.contiguous(grad_output, dtype)
    method = _method(func, method, geo, weight_shape, "weight")
    return _weight_grad(x, dy, np.empty(weight_shape, dtype), geo, method)


def _weight_grad(x: NDArray, dy: NDArray, dw: NDArray, geo: _Geometry, method: str = "auto") -> NDArray:
    """conv2d_weight_grad on validated, C-contiguous arrays of one dtype, into ``dw``."""
    work = dy.size * dw[0].size
    small = small_passes(x.shape, dw.shape, geo, method)[1]
    if small is not None:
        small(x, dy, dw, np.zeros(dw.shape[1], dw.dtype))
        return dw
    if (_runs_winograd(method, geo, dw.shape, dy.shape, (), "weight")
            and _winograd.weight_grad(x, dy, dw, geo.pt, geo.pl, work, method == "auto") is not None):
        return dw
    unit = geo.sh == geo.sw == geo.dh == geo.dw == geo.groups == 1
    if unit and _conv.gemm_pays(x.shape[1], dw.shape[0], dw.shape[3], dw.dtype.itemsize):
        _conv.weight_grad_gemm(x, dy, dw, geo.pt, geo.pl, work)
    elif geo.sh == geo.sw == 1 and all_finite(x):
        _conv.weight_grad_dots(x, dy, dw, geo.dh, geo.dw, geo.pt, geo.pl, geo.groups, work)
    else:
        _conv.weight_grad.pick(work)(x, dy, dw, *geo.kernel_args())
    return dw


def _expect_grad_output(func, shape, grad_output):
    if grad_output.shape != shape:
        raise ValueError(f"{func}: grad_output must have the forward output's shape {shape}, got {grad_output.shape}")
