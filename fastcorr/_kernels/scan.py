"""Whole-array checks that choose between kernels."""

from __future__ import annotations

from numba import prange

from fastcorr._kernels import kernel


@kernel(reassociate=True)
def finite(a):
    """Whether every element of the C-contiguous ``a`` is finite (``sum(a * 0)`` is zero, not NaN)."""
    flat = a.ravel()
    acc = flat.dtype.type(0)
    for i in prange(flat.shape[0]):
        acc += flat[i] * 0
    return acc == 0


def all_finite(a) -> bool:
    """Whether the C-contiguous ``a`` holds no inf or NaN (always, for integers)."""
    return a.dtype.kind not in "fc" or bool(finite.pick(a.size)(a))
