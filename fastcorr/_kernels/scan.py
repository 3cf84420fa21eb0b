"""Whole-array checks that choose between kernels."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from fastcorr._kernels import kernel, shared
from fastcorr._kernels.simd import full_width


@shared(reassociate=True)
def finite_span(flat, lo, hi):
    """Whether ``flat[lo:hi]`` is all finite: ``sum(flat * 0)`` is zero, not NaN."""
    full_width()
    zero = flat.dtype.type(0)  # an int 0 would make the sum float64
    acc = zero
    # A zero-based loop over the slice: from a start known only at run time, Numba keeps its
    # negative-index wraparound in the loop, which LLVM vectorises into gathers.
    span = flat[lo:hi]
    for i in range(span.shape[0]):
        acc += span[i] * zero
    return acc == zero


@kernel
def finite_spans(flat, flags, step):
    """``flags[t]``: whether span ``t`` of ``step`` elements of ``flat`` is all finite. Each task
    writes its own flag (a parallel reduction would compile several times longer)."""
    for t in prange(flags.shape[0]):
        lo = np.int64(t) * step
        flags[t] = finite_span(flat, lo, min(lo + step, flat.shape[0]))


def all_finite(a) -> bool:
    """Whether the C-contiguous ``a`` holds no inf or NaN (always, for integers)."""
    if a.dtype.kind not in "fc":
        return True
    flat = a.reshape(-1)
    if finite_spans.pick(flat.size) is finite_spans.serial:
        return bool(finite_span(flat, 0, flat.size))  # the body itself: one span, no flags to allocate
    flags = np.empty(4 * numba.get_num_threads(), np.bool_)
    finite_spans.parallel(flat, flags, -(-flat.size // flags.size))
    return bool(flags.all())
