"""The one correlation loop every public function runs on.

``correlate(x, k, out, p0, p1, boundary, fill)`` computes, for every ``(i, j)`` of ``out``::

    out[i, j] = sum over (a, b) of k[a, b] * ext(x)[i + a - p0, j + b - p1]

where ``ext`` extends ``x`` beyond its edges by ``boundary``: ``FILL`` (the value
``fill``), ``WRAP`` (periodic) or ``SYMM`` (mirrored, edge sample repeated). The
'valid', 'same' and 'full' modes, convolution (a flipped ``k``) and the input gradient
are all choices of ``p0, p1`` and ``k`` made by the callers.

Each output row belongs to one ``prange`` iteration. Inside a row the output is the
accumulator: for every tap ``k[a, b]`` one pass adds ``k[a, b] * x[r, j + b - p1]`` over a
block of columns that stays in L1, a loop LLVM vectorises. Columns whose taps reach
past the left or right edge take the slow path through ``_source``; rows that fall
wholly in the fill region add one constant. ``k`` must not be empty.
"""

from __future__ import annotations

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
    for i in prange(oh):
        orow = out[i]
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
                for j in range(j0, min(j1, lo)):
                    orow[j] += _edge_dot(xrow, krow, j - p1, boundary, fill)
                for j in range(max(j0, hi), j1):
                    orow[j] += _edge_dot(xrow, krow, j - p1, boundary, fill)
                c0 = max(j0, lo)
                n = min(j1, hi) - c0
                if n <= 0:
                    continue
                # Zero-based loops over slices: no negative-index wraparound, so LLVM vectorises.
                dst = orow[c0 : c0 + n]
                for b in range(kw):
                    tap = krow[b]
                    src = xrow[c0 + b - p1 : c0 + b - p1 + n]
                    for j in range(n):
                        dst[j] += tap * src[j]


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
