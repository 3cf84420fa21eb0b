"""Argument checking and normalisation shared by the public functions."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

#: dtypes the kernels compute in (native byte order).
KERNEL_DTYPES = frozenset(
    np.dtype(t)
    for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
              np.float32, np.float64, np.complex64, np.complex128)
)


def choice(value: object, name: str, options: Mapping[str, int], message: str | None = None) -> int:
    """Map an option string through ``options``; a clear ValueError lists the choices."""
    try:
        return options[value]  # type: ignore[index]
    except (KeyError, TypeError):
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{message or f'{name} must be one of {listed}'}; got {name}={value!r}") from None


def array(value: object, name: str) -> np.ndarray:
    """``np.asarray(value)`` for a numeric array-like; TypeError naming ``name`` otherwise."""
    if value is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array-like of numbers: {exc}") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{name} must hold numbers (bool, int, float or complex), got dtype {arr.dtype}; "
            f"convert it first, e.g. np.asarray({name}, dtype=float)"
        )
    return arr


#: A zero of each kernel dtype, to pass as a fill value.
ZEROS = {dt: dt.type(0) for dt in KERNEL_DTYPES}

_F32, _F64, _C64, _C128 = (np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128))


def float_dtype(*dtypes: np.dtype) -> np.dtype:
    """float32 when every input is float32 or a narrower float, complex when any is complex,
    else float64: bools and integers count as float64, so integer data never overflows."""
    try:
        return _FLOAT_DTYPES[dtypes]
    except KeyError:
        pass
    kinds = {dt.kind for dt in dtypes}
    wide = any(dt.kind in "biu" or dt.itemsize > (8 if dt.kind == "c" else 4) for dt in dtypes)
    if "c" in kinds:
        result = _C128 if wide or any(dt.kind == "f" and dt.itemsize > 4 for dt in dtypes) else _C64
    else:
        result = _F64 if wide else _F32
    if len(_FLOAT_DTYPES) < 1024:
        _FLOAT_DTYPES[dtypes] = result
    return result


_FLOAT_DTYPES: dict[tuple[np.dtype, ...], np.dtype] = {}


def pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum``, as a pair."""
    if type(value) is int and minimum <= value < _INDEX_LIMIT:
        return value, value
    items = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        first, second = items  # type: ignore[misc]
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (first, second)):
            raise TypeError
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if first < minimum or second < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    if first >= _INDEX_LIMIT or second >= _INDEX_LIMIT:
        raise ValueError(f"{name} must be less than 2**63, got {value!r}")
    return int(first), int(second)


#: The kernels index with 64-bit signed integers.
_INDEX_LIMIT = 2**63


def native(dtype: np.dtype) -> np.dtype:
    """``dtype`` in the machine's byte order."""
    return dtype.newbyteorder("=")


def contiguous(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous, native-order array of ``dtype``: ``arr`` itself when it already is one."""
    return np.ascontiguousarray(arr, dtype=dtype)


def fill_scalar(fillvalue: object, dtype: np.dtype) -> np.generic:
    """``fillvalue`` as a scalar of ``dtype``, by scipy.signal.convolve2d's rules."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fill = np.array(fillvalue, dtype=dtype)
    except (TypeError, ValueError, OverflowError, Warning) as exc:
        if np.asarray(fillvalue).dtype.kind == "O":
            raise TypeError(f"`fillvalue` must be a number, got {type(fillvalue).__name__}") from None
        raise ValueError(
            f"could not cast `fillvalue` directly to the output type {dtype} "
            f"(fillvalue={fillvalue!r}: {exc}); pass a fill value that {dtype} can hold"
        ) from None
    if fill.size != 1:
        if fill.size == 0:
            raise ValueError("`fillvalue` cannot be an empty array; pass a scalar")
        raise ValueError(f"`fillvalue` must be scalar or an array with one element, got shape {fill.shape}")
    return fill.reshape(())[()]


def output(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """The caller's ``out`` buffer checked against ``shape`` and ``dtype``, or a new array."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {shape} and dtype {dtype}, got shape {out.shape} and dtype {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be a writeable C-contiguous array; allocate it with np.empty(shape, dtype)")
    if any(np.may_share_memory(out, a) for a in inputs):
        raise ValueError("out must not share memory with the inputs; pass a separate buffer")
    return out
