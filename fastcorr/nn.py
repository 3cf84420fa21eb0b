"""A trainable 2-D convolution layer on top of :mod:`fastcorr.conv`: Parameter and Conv2D."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastcorr import _validate, conv

IntPair = int | tuple[int, int]
Padding = IntPair | Literal["valid", "same"]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

_LAYER_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: torch's padding modes, as ``np.pad`` modes (None: the convolution's own zero padding).
_PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class _Plan(NamedTuple):
    """A layer's call on one input shape: that shape, the input and output as (N, C, H, W), the
    output's shape as returned, and the small passes (:func:`fastcorr.conv.small_passes`; None
    where a pass is not small)."""

    x: tuple[int, ...]
    x4: tuple[int, int, int, int]
    y4: tuple[int, int, int, int]
    y: tuple[int, ...]
    forward: conv.SmallPass | None
    weight: conv.SmallPass | None
    input: conv.SmallPass | None


class Parameter:
    """A trainable array and the gradient accumulated for it.

    Parameters
    ----------
    data : array_like of floats
        Copied into the parameter's own C-contiguous array; its dtype is kept.

    Attributes
    ----------
    data : ndarray
        The values. Assigning to ``data`` copies the new values into the existing
        array: the shape must match, and they are cast to the parameter's dtype.
    grad : ndarray
        Same shape and dtype as ``data``, zero at first. ``backward`` calls add to it;
        ``SGD.zero_grad`` (or the layer's ``zero_grad``) resets it. Assigning copies, as for ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> p = fc.Parameter(np.array([1.0, -1.0], np.float32))
    >>> p
    Parameter(shape=(2,), dtype=float32)
    >>> p.grad
    array([0., 0.], dtype=float32)
    """

    __slots__ = ("_data", "_grad")

    def __init__(self, data: ArrayLike):
        arr = _validate.array(data, "data")
        if arr.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be a real floating-point array, got dtype {arr.dtype}; "
                            "convert it first, e.g. np.asarray(data, dtype=np.float32)")
        self._data = np.array(arr, dtype=_validate.native(arr.dtype), order="C", copy=True)
        self._grad = np.zeros_like(self._data)

    @property
    def data(self) -> NDArray:
        return self._data

    @data.setter
    def data(self, value: ArrayLike) -> None:
        self._assign(self._data, value, "data")

    @property
    def grad(self) -> NDArray:
        return self._grad

    @grad.setter
    def grad(self, value: ArrayLike) -> None:
        self._assign(self._grad, value, "grad")

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def _assign(self, target: NDArray, value: ArrayLike, name: str) -> None:
        if value is target:
            return
        arr = _validate.array(value, name)
        if arr.shape != target.shape:
            raise ValueError(f"Parameter.{name} must keep its shape {target.shape}, got {arr.shape}; "
                             f"to change the shape, create a new Parameter")
        if arr.dtype.kind == "c":
            raise TypeError(f"Parameter.{name} must be real, got dtype {arr.dtype}")
        np.copyto(target, arr, casting="unsafe")

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Conv2D:
    """A 2-D convolution layer (cross-correlation, NCHW), as ``torch.nn.Conv2d``.

    ``layer(x)`` computes :func:`fastcorr.conv2d` of ``x`` with ``weight`` and ``bias``;
    ``layer.backward(dy)`` adds the gradients of ``sum(layer(x) * dy)`` to ``weight.grad``
    and ``bias.grad`` and returns the gradient with respect to ``x``.

    Parameters
    ----------
    kernel_size : int or (int, int)
        ``(kh, kw)``, each at least 1.
    in_channels, out_channels : int
        Positive, and both divisible by ``groups``.
    stride, padding, dilation, groups
        As :func:`fastcorr.conv2d`: stride and dilation at least 1; padding an int,
        a pair, ``'valid'`` or ``'same'`` (stride 1 only).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        What the padding holds, as torch's: zeros; the input mirrored about its edge
        sample (``'reflect'``, padding narrower than the input); the edge sample repeated
        (``'replicate'``); the input repeated periodically (``'circular'``, padding at
        most the input's size). The gradients flow back to the samples the padding copies.
    bias : bool
        Whether the layer adds a learnable bias per output channel.
    dtype : float32 or float64
        The dtype of the parameters, of the outputs and of the gradients.
    rng : None, int or numpy.random.Generator
        Source of the initial values, through ``np.random.default_rng(rng)``.
    method : {'auto', 'direct', 'winograd'}
        How the forward pass and both gradients are computed, as :func:`fastcorr.conv2d`'s
        ``method`` (and its accuracy contract): 'direct' forces the direct sums; 'winograd'
        needs a 3x3 kernel, stride 1, dilation 1, one group and, for the input gradient, a
        padding of at most 2 (a ``ValueError`` says which is missing).

    Attributes
    ----------
    weight : Parameter
        Shape ``(out_channels, in_channels // groups, kh, kw)``.
    bias : Parameter or None
        Shape ``(out_channels,)``.

    Notes
    -----
    Initialisation is torch's default for ``nn.Conv2d``: weight, then bias, drawn
    uniformly from ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, with
    ``fan_in = in_channels // groups * kh * kw``.

    The input is either ``(N, C, H, W)``, giving ``(N, out_channels, H', W')``, or, when
    ``in_channels == 1``, a single image ``(H, W)``, giving ``(H', W')`` when
    ``out_channels == 1`` and ``(out_channels, H', W')`` otherwise. It is cast to the
    layer's dtype. The layer keeps that copy of the input, and of the weight, for
    ``backward`` until the next call, so changing ``x`` or stepping the weight before
    ``backward`` does not change the gradients: they are those of the forward call.
    ``backward`` may be called more than once per forward call; each call adds to the
    gradients.

    Examples
    --------
    The chapter's edge detector, ``K = [[1, -1]]``, as a layer:

    >>> import numpy as np
    >>> import fastcorr as fc
    >>> layer = fc.Conv2D((1, 2), bias=False, rng=0)
    >>> layer
    Conv2D((1, 2), in_channels=1, out_channels=1, bias=False)
    >>> layer.weight.data[:] = [1.0, -1.0]
    >>> layer(np.array([[1.0, 1.0, 0.0, 0.0, 1.0]]))
    array([[ 0.,  1.,  0., -1.]], dtype=float32)
    >>> layer.backward(np.ones((1, 4)))
    array([[ 1.,  0.,  0.,  0., -1.]], dtype=float32)
    >>> layer.weight.grad
    array([[[[2., 2.]]]], dtype=float32)
    """

    def __init__(
        self,
        kernel_size: IntPair,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        stride: IntPair = 1,
        padding: Padding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        dtype: DTypeLike = np.float32,
        rng: int | np.random.Generator | None = None,
        method: conv.Method = "auto",
    ):
        kh, kw = _validate.pair(kernel_size, "kernel_size", 1)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Conv2D: {name} must be a positive int, got {value!r}")
        try:
            dt = np.dtype(dtype) if dtype is not None else None
        except TypeError:
            dt = None
        if dt is None or dt not in _LAYER_DTYPES:
            raise ValueError(f"Conv2D: dtype must be np.float32 or np.float64, got {dtype!r}")
        geometry = conv._geometry("Conv2D", (out_channels, 1, kh, kw), stride, padding, dilation, groups)
        self._pad_mode = _validate.choice(padding_mode, "padding_mode", _PADDING_MODES,
                                          "Conv2D: padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular'")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(f"Conv2D: {name}={value} must be divisible by groups={groups}")

        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = (kh, kw)
        self.stride = (geometry.sh, geometry.sw)
        self.padding: tuple[int, int] | str = padding if isinstance(padding, str) else _validate.pair(padding, "padding", 0)
        self.dilation = (geometry.dh, geometry.dw)
        self.groups = geometry.groups
        self.padding_mode = padding_mode
        self.dtype = dt
        self._geometry = geometry
        # Other modes pad the input explicitly, then convolve without padding.
        self._pads = ((0, 0), (0, 0), (geometry.pt, geometry.pb), (geometry.pl, geometry.pr))
        if not any(geometry[4:8]):
            self._pad_mode = None  # nothing to pad
        self._conv_geometry = geometry if self._pad_mode is None else geometry._replace(pt=0, pb=0, pl=0, pr=0)
        # Checked for all three passes, so that 'winograd' that cannot run fails here, not in backward.
        self.method = conv._method("Conv2D", method, self._conv_geometry, (out_channels, 1, kh, kw))
        for role in ("input", "weight"):
            conv._method("Conv2D", method, self._conv_geometry, (out_channels, 1, kh, kw), role)

        gen = np.random.default_rng(rng)
        fan_in = self.in_channels // self.groups * kh * kw
        bound = 1.0 / np.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        self.weight = Parameter(gen.uniform(-bound, bound, shape).astype(dt))
        self.bias = Parameter(gen.uniform(-bound, bound, self.out_channels).astype(dt)) if bias else None
        self._no_bias = np.zeros(self.out_channels, dt)
        self._no_input_bias, self._added = np.zeros(self.in_channels, dt), np.zeros(0, dt)  # small passes' starts
        self._plans: dict[tuple[int, ...], _Plan] = {}
        self._saved: tuple[NDArray, NDArray, _Plan] | None = None

    def _input4(self, shape: tuple[int, ...], name: str = "x") -> tuple[int, int, int, int]:
        if len(shape) == 2:
            if self.in_channels != 1:
                raise ValueError(f"Conv2D: a 2-D {name} (H, W) needs in_channels == 1, but the layer has "
                                 f"in_channels={self.in_channels}; pass {name} as (N, C, H, W)")
            return (1, 1, *shape)  # type: ignore[return-value]
        if len(shape) != 4:
            raise ValueError(f"Conv2D: {name} must be 2-D (H, W) or 4-D (N, C, H, W), got shape {shape}"
                             + ("; for one (C, H, W) image pass x[None]" if len(shape) == 3 else ""))
        if shape[1] != self.in_channels:
            raise ValueError(f"Conv2D: {name} has {shape[1]} channels (shape {shape}) but the layer has "
                             f"in_channels={self.in_channels}")
        return shape  # type: ignore[return-value]

    def _output_shape(self, x_shape: tuple[int, ...], name: str = "x") -> tuple[int, ...]:
        """The shape ``layer(x)`` returns for an ``x`` of ``x_shape``."""
        return self._plan(tuple(x_shape), name).y

    def _plan(self, shape: tuple[int, ...], name: str = "x") -> _Plan:
        """What a call on an input of ``shape`` needs, checked once per shape."""
        plan = self._plans.get(shape)
        if plan is None:
            x4 = self._input4(shape, name)
            y4 = conv._check("Conv2D", x4, self.weight.shape, self._geometry)
            y = tuple(y4) if len(shape) == 4 else tuple(y4[2:]) if self.out_channels == 1 else tuple(y4[1:])
            padded = tuple(n + a + b for n, (a, b) in zip(x4, self._pads)) if self._pad_mode else x4
            small = conv.small_passes(padded, self.weight.shape, self._conv_geometry, self.method)
            plan = _Plan(shape, x4, y4, y, *small)
            if len(self._plans) >= 64:
                self._plans.clear()
            self._plans[shape] = plan
        return plan

    def forward(self, x: ArrayLike) -> NDArray:
        """The layer's output for ``x``; see the class Notes for the shapes."""
        arr = _validate.array(x, "x")
        if arr.dtype.kind == "c":
            raise TypeError(f"Conv2D: x must be real, got dtype {arr.dtype}")
        plan = self._plan(arr.shape)
        x4 = arr.astype(self.dtype, order="C").reshape(plan.x4)  # a copy, kept for backward
        if self._pad_mode is not None:
            x4 = self._padded(x4)
        weight = self.weight.data.copy()
        bias = self._no_bias if self.bias is None else self.bias.data
        y4 = np.empty(plan.y4, self.dtype)
        if plan.forward is None:
            conv._forward(x4, weight, bias, y4, self._conv_geometry, self.method)
        else:
            plan.forward(x4, weight, y4, bias)
        self._saved = (x4, weight, plan)
        return y4.reshape(plan.y)

    def __call__(self, x: ArrayLike) -> NDArray:
        return self.forward(x)

    def backward(self, dy: ArrayLike) -> NDArray:
        """Add the gradients for ``dy`` to ``weight.grad`` and ``bias.grad``; return dL/dx.

        Parameters
        ----------
        dy : array_like
            The gradient of the loss with respect to the last output, in its shape.

        Returns
        -------
        ndarray
            The gradient with respect to the last input, in that input's shape, in the
            layer's dtype.
        """
        if self._saved is None:
            raise RuntimeError("Conv2D.backward: call the layer on an input first (y = layer(x)); "
                               "backward needs that input")
        x4, weight, plan = self._saved
        arr = _validate.array(dy, "dy")
        if arr.dtype.kind == "c":
            raise TypeError(f"Conv2D.backward: dy must be real, got dtype {arr.dtype}")
        if arr.shape != plan.y:
            raise ValueError(f"Conv2D.backward: dy must have the shape of the last output, {plan.y}, got {arr.shape}")
        dy4 = np.ascontiguousarray(arr, dtype=self.dtype).reshape(plan.y4)
        if np.may_share_memory(dy4, self.weight.grad) or (self.bias is not None and np.may_share_memory(dy4, self.bias.grad)):
            dy4 = dy4.copy()  # dy is (a view of) a gradient, added to before dy is done with
        geo = self._conv_geometry
        if plan.weight is None:
            self.weight.grad += conv._weight_grad(x4, dy4, np.empty(self.weight.shape, self.dtype), geo, self.method)
        else:
            plan.weight(x4, dy4, self.weight.grad, self._added)  # added in place
        if self.bias is not None:
            self.bias.grad += dy4.sum(axis=(0, 2, 3))
        dx = np.empty(x4.shape, self.dtype)
        if plan.input is None or not plan.input(dy4, weight, dx, self._no_input_bias):
            conv._input_grad(dy4, weight, dx, geo, self.method)
        if self._pad_mode is not None:
            dx = self._unpadded(dx)
        return dx.reshape(plan.x)

    def _padded(self, x4: NDArray) -> NDArray:
        """``x4`` padded by ``padding_mode``; torch's limits on the padding's width."""
        for axis in (2, 3):
            n, (before, after) = x4.shape[axis], self._pads[axis]
            if self.padding_mode == "reflect" and max(before, after) >= n:
                raise ValueError(f"Conv2D: padding_mode='reflect' needs padding narrower than the input: padding "
                                 f"{(before, after)} along axis {axis} of an input of shape {x4.shape}")
            if self.padding_mode == "circular" and max(before, after) > n:
                raise ValueError(f"Conv2D: padding_mode='circular' wraps around more than once: padding "
                                 f"{(before, after)} along axis {axis} of an input of shape {x4.shape}")
            if n == 0 and before + after:
                raise ValueError(f"Conv2D: padding_mode={self.padding_mode!r} cannot pad an empty axis: "
                                 f"input of shape {x4.shape}")
        return np.pad(x4, self._pads, mode=self._pad_mode)

    def _unpadded(self, dx: NDArray) -> NDArray:
        """The adjoint of :meth:`_padded`: each padded sample's gradient added to the sample it copies."""
        for axis in (2, 3):
            before, after = self._pads[axis]
            n = dx.shape[axis] - before - after
            source = np.arange(-before, n + after)
            if self._pad_mode == "reflect":
                source = np.abs(source)
                source = np.where(source < n, source, 2 * (n - 1) - source)
            elif self._pad_mode == "edge":
                source = np.clip(source, 0, n - 1)
            else:
                source = source % n
            moved = np.moveaxis(dx, axis, 0)
            folded = moved[before : before + n].copy()
            for t in (*range(before), *range(before + n, before + n + after)):
                folded[source[t]] += moved[t]
            dx = np.moveaxis(folded, 0, axis)
        return np.ascontiguousarray(dx)

    def parameters(self) -> list[Parameter]:
        """``[weight, bias]``, or ``[weight]`` without a bias."""
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def zero_grad(self) -> None:
        """Set the gradients of every parameter to zero, in place."""
        for p in self.parameters():
            p.grad[...] = 0

    def __repr__(self) -> str:
        parts = [f"{self.kernel_size}", f"in_channels={self.in_channels}", f"out_channels={self.out_channels}"]
        if self.stride != (1, 1):
            parts.append(f"stride={self.stride}")
        if self.padding != (0, 0):
            parts.append(f"padding={self.padding!r}")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        if self.dilation != (1, 1):
            parts.append(f"dilation={self.dilation}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.dtype != np.float32:
            parts.append(f"dtype=np.{self.dtype}")
        if self.method != "auto":
            parts.append(f"method={self.method!r}")
        return f"Conv2D({', '.join(parts)})"
