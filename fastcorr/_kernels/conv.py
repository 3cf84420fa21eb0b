"""NCHW convolution loops (cross-correlation, as torch): forward and both gradients.

Arguments are validated, C-contiguous arrays of one float dtype; ``sh, sw`` are the
strides, ``dh, dw`` the dilations, ``pt, pl`` the top and left zero padding (bottom and
right padding only show in the output's size). ``groups`` splits the channels as torch
does. Each ``prange`` task owns one output plane (or one weight slice) outright.

Inside, every loop walks output rows and, per tap, the span of output columns whose
input column ``j * sw + b * dw - pl`` is inside the image (:func:`_span`), so padding
costs nothing and no padded copy exists; only an inf or NaN meeting the zero padding
is carried to the output (``0 * inf`` is NaN), as a padded copy would.
"""

from __future__ import annotations

from numba import prange

from fastcorr._kernels import helper, kernel
from fastcorr._kernels.corr import _dot


@helper
def _span(offset, stride, width, count):
    """Output columns ``[lo, hi)`` with ``0 <= j * stride + offset < width``, ``j < count``."""
    lo = max(0, -(offset // stride))
    if offset + lo * stride < 0:
        lo += 1
    hi = min(count, (width - 1 - offset) // stride + 1) if width - 1 - offset >= 0 else 0
    return lo, max(lo, hi)


@helper
def _padding_products(row):
    """``sum(row * 0)``: zero, or NaN where ``row`` meets the zero padding with an inf or NaN."""
    acc = row.dtype.type(0)
    for j in range(row.shape[0]):
        acc += row[j] * 0
    return acc


@helper
def _add_padding_product(dst, tap):
    """Add ``tap * 0`` (the tap on the zero padding) to ``dst`` when it is NaN, as IEEE says."""
    product = tap * 0
    if product != product:
        for j in range(dst.shape[0]):
            dst[j] += product


@kernel
def forward(x, w, bias, out, sh, sw, dh, dw, pt, pl, groups):
    n_batch, _, h, width = x.shape
    o_count, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    og = o_count // groups
    for task in prange(n_batch * o_count):
        n, o = task // o_count, task % o_count
        first = (o // og) * cg
        plane = out[n, o]
        for i in range(oh):
            orow = plane[i]
            for j in range(ow):
                orow[j] = bias[o]
            for c in range(cg):
                xc = x[n, first + c]
                wc = w[o, c]
                for a in range(kh):
                    y = i * sh + a * dh - pt
                    if y < 0 or y >= h:
                        for b in range(kw):
                            _add_padding_product(orow, wc[a, b])
                        continue
                    xrow = xc[y]
                    for b in range(kw):
                        offset = b * dw - pl
                        lo, hi = _span(offset, sw, width, ow)
                        tap = wc[a, b]
                        _add_padding_product(orow[:lo], tap)
                        _add_padding_product(orow[hi:], tap)
                        dst = orow[lo:hi]
                        src = xrow[lo * sw + offset : (hi - 1) * sw + offset + 1 : sw]
                        for j in range(hi - lo):
                            dst[j] += tap * src[j]


@kernel
def input_grad(dy, w, dx, sh, sw, dh, dw, pt, pl, groups):
    n_batch, c_count, h, width = dx.shape
    o_count, cg, kh, kw = w.shape
    oh, ow = dy.shape[2], dy.shape[3]
    og = o_count // groups
    for task in prange(n_batch * c_count):
        n, c = task // c_count, task % c_count
        g, cc = c // cg, c % cg
        plane = dx[n, c]
        for y in range(h):
            prow = plane[y]
            for j in range(width):
                prow[j] = 0
        for o in range(g * og, (g + 1) * og):
            wc = w[o, cc]
            for i in range(oh):
                dyrow = dy[n, o, i]
                for a in range(kh):
                    y = i * sh + a * dh - pt
                    if y < 0 or y >= h:
                        continue
                    prow = plane[y]
                    for b in range(kw):
                        offset = b * dw - pl
                        lo, hi = _span(offset, sw, width, ow)
                        tap = wc[a, b]
                        dst = prow[lo * sw + offset : (hi - 1) * sw + offset + 1 : sw]
                        src = dyrow[lo:hi]
                        for j in range(hi - lo):
                            dst[j] += tap * src[j]


@kernel
def weight_grad(x, dy, dwt, sh, sw, dh, dw, pt, pl, groups):
    n_batch, _, h, width = x.shape
    o_count, cg, kh, kw = dwt.shape
    oh, ow = dy.shape[2], dy.shape[3]
    og = o_count // groups
    for task in prange(o_count * cg):
        o, cc = task // cg, task % cg
        c = (o // og) * cg + cc
        for a in range(kh):
            for b in range(kw):
                offset = b * dw - pl
                lo, hi = _span(offset, sw, width, ow)
                acc = dwt.dtype.type(0)
                for n in range(n_batch):
                    for i in range(oh):
                        y = i * sh + a * dh - pt
                        dyrow = dy[n, o, i]
                        if y < 0 or y >= h:
                            acc += _padding_products(dyrow)
                            continue
                        acc += _padding_products(dyrow[:lo]) + _padding_products(dyrow[hi:])
                        if hi > lo:
                            acc += _dot(dyrow[lo:hi], x[n, c, y, lo * sw + offset : (hi - 1) * sw + offset + 1 : sw])
                dwt[o, cc, a, b] = acc
