"""The one correlation loop every public function runs on.

``correlate(x, k, out, p0, p1, boundary, fill)`` computes, for every ``(i, j)`` of ``out``::

    out[i, j] = sum over (a, b) of k[a, b] * ext(x)[i + a - p0, j + b - p1]

where ``ext`` extends ``x`` beyond its edges by ``boundary``: ``FILL`` (the value
``fill``), ``WRAP`` (periodic) or ``SYMM`` (mirrored, edge sample repeated). The
'valid', 'same' and 'full' modes, convolution (a flipped ``k``) and the input gradient
are all choices of ``p0, p1`` and ``k`` made by the callers.

Each output row belongs to one ``prange`` iteration. Inside a row the output is the
accumulator: for every tap ``k[a, b]`` one pass adds ``k[a, b] * x[r, j + b - p1]`` over a
block of columns that stays in L1, a loop LLVM vectorises (or, when the kernel row is
wider than the block, a dot product per column). Columns whose taps reach past the
left or right edge go through ``_source`` one by one, or, when they are most of the
row, through a once-extended copy of the source row; rows that fall wholly in the
fill region add one constant. ``k`` must not be empty.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastcorr._kernels import helper, kernel

FILL, SYMM, WRAP = 0, 1, 2
_BLOCK = 2048


@helper
def _source(t, n, boundary):
    """Index of ``x`` that extended position ``t`` reads, or -1 for the fill value."""
    if 0 <= t < n:
        return t
    if boundary == FILL:
        return -1
    if boundary == WRAP:
        return t % n
    t = t % (2 * n)
    return t if t < n else 2 * n - 1 - t


@kernel
def correlate(x, k, out, p0, p1, boundary, fill):
    h, w = x.shape
    kh, kw = k.shape
    oh, ow = out.shape
    # Output columns [lo, hi) have all kw taps inside x; the others are edge columns.
    lo = min(max(p1, 0), ow)
    hi = max(min(w - kw + 1 + p1, ow), lo)
    # When edge columns dominate, extend each source row once and treat all columns alike.
    extend = (ow - (hi - lo)) * kw > ow + kw
    for i in prange(oh):
        orow = out[i]
        ext = np.empty(min(ow, _BLOCK) + kw - 1 if extend else 0, x.dtype)
        for j0 in range(0, ow, _BLOCK):
            j1 = min(j0 + _BLOCK, ow)
            for j in range(j0, j1):
                orow[j] = 0
            for a in range(kh):
                krow = k[a]
                r = _source(i + a - p0, h, boundary)
                if r < 0:
                    const = krow[0] * fill
                    for b in range(1, kw):
                        const += krow[b] * fill
                    for j in range(j0, j1):
                        orow[j] += const
                    continue
                xrow = x[r]
                if extend:
                    m = j1 - j0 + kw - 1
                    for u in range(m):
                        c = _source(j0 + u - p1, w, boundary)
                        ext[u] = fill if c < 0 else xrow[c]
                    _accumulate(orow[j0:j1], krow, ext[:m])
                    continue
                for j in range(j0, min(j1, lo)):
                    orow[j] += _edge_dot(xrow, krow, j - p1, boundary, fill)
                for j in range(max(j0, hi), j1):
                    orow[j] += _edge_dot(xrow, krow, j - p1, boundary, fill)
                c0 = max(j0, lo)
                n = min(j1, hi) - c0
                if n > 0:
                    _accumulate(orow[c0 : c0 + n], krow, xrow[c0 - p1 : c0 - p1 + n + kw - 1])


@helper
def _accumulate(dst, krow, src):
    """``dst[j] += sum_b krow[b] * src[j + b]``: a 1-D 'valid' correlation added into ``dst``."""
    n, kw = dst.shape[0], krow.shape[0]
    if n < kw:
        # Few outputs for a wide kernel: one dot product each.
        for j in range(n):
            dst[j] += _dot(krow, src[j : j + kw])
        return
    # One pass per tap; zero-based loops over slices have no negative-index wraparound,
    # so LLVM vectorises them.
    for b in range(kw):
        tap = krow[b]
        shifted = src[b : b + n]
        for j in range(n):
            dst[j] += tap * shifted[j]


@helper
def _edge_dot(xrow, krow, start, boundary, fill):
    """``sum_b krow[b] * ext(xrow)[start + b]`` for a column whose taps cross an edge."""
    n = xrow.shape[0]
    c = _source(start, n, boundary)
    acc = krow[0] * (fill if c < 0 else xrow[c])
    for b in range(1, krow.shape[0]):
        c = _source(start + b, n, boundary)
        acc += krow[b] * (fill if c < 0 else xrow[c])
    return acc


@helper
def _dot(u, v):
    """``sum(u * v)`` over four independent partial sums, so consecutive multiply-adds overlap."""
    n = u.shape[0]
    s0 = s1 = s2 = s3 = u.dtype.type(0) * v.dtype.type(0)
    m = n - n % 4
    for b in range(0, m, 4):
        s0 += u[b] * v[b]
        s1 += u[b + 1] * v[b + 1]
        s2 += u[b + 2] * v[b + 2]
        s3 += u[b + 3] * v[b + 3]
    for b in range(m, n):
        s0 += u[b] * v[b]
    return (s0 + s1) + (s2 + s3)
