"""The one correlation loop every public function runs on.

``correlate(x, k, out, p0, p1, boundary, fill)`` computes, for every ``(i, j)`` of ``out``::

    out[i, j] = sum over (a, b) of k[a, b] * ext(x)[i + a - p0, j + b - p1]

where ``ext`` extends ``x`` beyond its edges by ``boundary``: ``FILL`` (the value
``fill``), ``WRAP`` (periodic) or ``SYMM`` (mirrored, edge sample repeated). The
'valid', 'same' and 'full' modes, convolution (a flipped ``k``) and the input gradient
are all choices of ``p0, p1`` and ``k`` made by the callers.

Each output row belongs to one ``prange`` iteration. Inside a row, a block of columns
that stays in L1 is the accumulator: the first pass assigns the products of the 3x3
tile ``k[:3, :3]`` with three source rows (of a 5x5 kernel: all 25 taps, from five
rows), and each further pass adds three taps of one kernel row (a kernel row wider than
the block takes a dot product per column instead). These loops run over zero-based
slices, so LLVM vectorises them. Columns whose taps reach past the left or right edge
go through ``_source`` one by one, or, when they are most of the row, through a
once-extended copy of the source row; rows that fall wholly in the
fill region add one constant. ``k`` must not be empty.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastcorr._kernels import helper, kernel

FILL, SYMM, WRAP = 0, 1, 2
_BLOCK = 2048
_PAIR_COLUMNS = 384


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
    # A 3x3 tile of two neighbouring output rows reads four source rows, not six; it pays
    # for rows of a few hundred columns and more (measured).
    paired = not extend and kh >= 3 and kw >= 3 and not (kh == 5 and kw == 5)
    unused = np.empty(0, x.dtype)
    for pair in prange((oh + 1) // 2):
        i0 = 2 * pair
        rows = min(2, oh - i0)
        ext = np.empty(min(ow, _BLOCK) + kw - 1, x.dtype) if extend else unused
        t0 = _source(i0 - p0, h, boundary)
        t3 = _source(i0 + 3 - p0, h, boundary)
        for j0 in range(0, ow, _BLOCK):
            j1 = min(j0 + _BLOCK, ow)
            c0 = min(max(j0, lo), j1)
            n = max(min(j1, hi) - c0, 0)
            start = c0 - p1
            for i in range(i0, i0 + rows):
                orow = out[i]
                dst = orow[c0 : c0 + n]
                r0 = _source(i - p0, h, boundary)
                r1 = _source(i + 1 - p0, h, boundary)
                r2 = _source(i + 2 - p0, h, boundary)
                # The first pass assigns the 3x3 tile of taps instead of adding to zeros; a 5x5
                # kernel whose five source rows exist takes all 25 taps in that one pass.
                tiled = not extend and kh >= 3 and kw >= 3 and n >= 3 and r0 >= 0 and r1 >= 0 and r2 >= 0
                r3 = _source(i + 3 - p0, h, boundary) if kh == 5 else -1
                r4 = _source(i + 4 - p0, h, boundary) if kh == 5 else -1
                whole = tiled and kh == 5 and kw == 5 and r3 >= 0 and r4 >= 0
                # Long rows: the pair's first row assigns both rows' tiles in one pass.
                joint = paired and rows == 2 and n >= _PAIR_COLUMNS and t0 >= 0 and t3 >= 0 and tiled
                if tiled:
                    _zero(orow[j0:c0])
                    _zero(orow[c0 + n : j1])
                else:
                    _zero(orow[j0:j1])
                if whole:
                    m = n + 4
                    _tile5x5(dst, k, x[r0][start : start + m], x[r1][start : start + m], x[r2][start : start + m],
                             x[r3][start : start + m], x[r4][start : start + m])
                elif joint and i == i0:
                    _tile3x3x2(dst, out[i0 + 1, c0 : c0 + n], k, x[r0][start : start + n + 2],
                               x[r1][start : start + n + 2], x[r2][start : start + n + 2], x[t3][start : start + n + 2])
                elif tiled and not joint:
                    _tile3x3(dst, k, x[r0][start : start + n + 2], x[r1][start : start + n + 2], x[r2][start : start + n + 2])
                if (whole or (tiled and kh == 3 and kw == 3)) and n == j1 - j0:
                    continue  # the first pass was everything: no edge columns, no further taps
                for a in range(kh):
                    krow = k[a]
                    r = _source(i + a - p0, h, boundary)
                    if r < 0:
                        const = krow[0] * fill
                        for b in range(1, kw):
                            const += krow[b] * fill
                        block = orow[j0:j1]
                        for j in range(j1 - j0):
                            block[j] += const
                        continue
                    xrow = x[r]
                    if extend:
                        m = j1 - j0 + kw - 1
                        for u in range(m):
                            c = _source(j0 + u - p1, w, boundary)
                            ext[u] = fill if c < 0 else xrow[c]
                        target, taps, source = orow[j0:j1], krow, ext[:m]
                    else:
                        _edges(orow, xrow, krow, j0, j1, lo, hi, p1, boundary, fill)
                        if n == 0 or whole:
                            continue
                        skip = 3 if tiled and a < 3 else 0
                        target, taps, source = dst, krow[skip:], xrow[start + skip : start + n + kw - 1]
                    _accumulate(target, taps, source)


@helper
def _zero(a):
    for j in range(a.shape[0]):
        a[j] = 0


@helper
def _tile3x3(dst, k, s0, s1, s2):
    """``dst[j] = sum over a, b < 3 of k[a, b] * s_a[j + b]``, all nine taps in registers."""
    a0, a1, a2 = k[0, 0], k[0, 1], k[0, 2]
    b0, b1, b2 = k[1, 0], k[1, 1], k[1, 2]
    c0, c1, c2 = k[2, 0], k[2, 1], k[2, 2]
    for j in range(dst.shape[0]):
        dst[j] = ((a0 * s0[j] + a1 * s0[j + 1] + a2 * s0[j + 2])
                  + (b0 * s1[j] + b1 * s1[j + 1] + b2 * s1[j + 2])
                  + (c0 * s2[j] + c1 * s2[j + 1] + c2 * s2[j + 2]))


@helper
def _tile3x3x2(d0, d1, k, s0, s1, s2, s3):
    """:func:`_tile3x3` for two neighbouring rows at once: ``d0`` from ``s0..s2``, ``d1`` from ``s1..s3``."""
    a0, a1, a2 = k[0, 0], k[0, 1], k[0, 2]
    b0, b1, b2 = k[1, 0], k[1, 1], k[1, 2]
    c0, c1, c2 = k[2, 0], k[2, 1], k[2, 2]
    for j in range(d0.shape[0]):
        u0, u1, u2 = s1[j], s1[j + 1], s1[j + 2]
        v0, v1, v2 = s2[j], s2[j + 1], s2[j + 2]
        d0[j] = ((a0 * s0[j] + a1 * s0[j + 1] + a2 * s0[j + 2])
                 + (b0 * u0 + b1 * u1 + b2 * u2)
                 + (c0 * v0 + c1 * v1 + c2 * v2))
        d1[j] = ((a0 * u0 + a1 * u1 + a2 * u2)
                 + (b0 * v0 + b1 * v1 + b2 * v2)
                 + (c0 * s3[j] + c1 * s3[j + 1] + c2 * s3[j + 2]))


@helper
def _tile5x5(dst, k, s0, s1, s2, s3, s4):
    """``dst[j] = sum over a, b < 5 of k[a, b] * s_a[j + b]``, in that order, in one pass."""
    a0, a1, a2, a3, a4 = k[0, 0], k[0, 1], k[0, 2], k[0, 3], k[0, 4]
    b0, b1, b2, b3, b4 = k[1, 0], k[1, 1], k[1, 2], k[1, 3], k[1, 4]
    c0, c1, c2, c3, c4 = k[2, 0], k[2, 1], k[2, 2], k[2, 3], k[2, 4]
    d0, d1, d2, d3, d4 = k[3, 0], k[3, 1], k[3, 2], k[3, 3], k[3, 4]
    e0, e1, e2, e3, e4 = k[4, 0], k[4, 1], k[4, 2], k[4, 3], k[4, 4]
    for j in range(dst.shape[0]):
        dst[j] = (a0 * s0[j] + a1 * s0[j + 1] + a2 * s0[j + 2] + a3 * s0[j + 3] + a4 * s0[j + 4]
                  + b0 * s1[j] + b1 * s1[j + 1] + b2 * s1[j + 2] + b3 * s1[j + 3] + b4 * s1[j + 4]
                  + c0 * s2[j] + c1 * s2[j + 1] + c2 * s2[j + 2] + c3 * s2[j + 3] + c4 * s2[j + 4]
                  + d0 * s3[j] + d1 * s3[j + 1] + d2 * s3[j + 2] + d3 * s3[j + 3] + d4 * s3[j + 4]
                  + e0 * s4[j] + e1 * s4[j + 1] + e2 * s4[j + 2] + e3 * s4[j + 3] + e4 * s4[j + 4])


@helper
def _edges(orow, xrow, krow, j0, j1, lo, hi, p1, boundary, fill):
    """Add one kernel row's share to the edge columns of the block [j0, j1)."""
    for j in range(j0, min(j1, lo)):
        orow[j] += _edge_dot(xrow, krow, j - p1, boundary, fill)
    for j in range(max(j0, hi), j1):
        orow[j] += _edge_dot(xrow, krow, j - p1, boundary, fill)


@helper
def _accumulate(dst, krow, src):
    """``dst[j] += sum_b krow[b] * src[j + b]``: a 1-D 'valid' correlation added into ``dst``."""
    n, kw = dst.shape[0], krow.shape[0]
    if n < kw:
        # Few outputs for a wide kernel: one dot product each.
        for j in range(n):
            dst[j] += _dot(krow, src[j : j + kw])
        return
    # One pass per three taps, then one for the last one or two. Zero-based loops over
    # slices have no negative-index wraparound checks in their way.
    m = kw - kw % 3
    for b in range(0, m, 3):
        t0, t1, t2 = krow[b], krow[b + 1], krow[b + 2]
        s = src[b : b + n + 2]
        for j in range(n):
            dst[j] += t0 * s[j] + t1 * s[j + 1] + t2 * s[j + 2]
    if kw - m == 2:
        t0, t1 = krow[m], krow[m + 1]
        s = src[m : m + n + 1]
        for j in range(n):
            dst[j] += t0 * s[j] + t1 * s[j + 1]
    elif kw - m == 1:
        tap = krow[m]
        s = src[m : m + n]
        for j in range(n):
            dst[j] += tap * s[j]


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
