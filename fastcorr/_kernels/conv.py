"""NCHW convolution loops (cross-correlation, as torch): forward and both gradients.

Arguments are validated, C-contiguous arrays of one float dtype; ``sh, sw`` are the
strides, ``dh, dw`` the dilations, ``pt, pl`` the top and left zero padding (bottom and
right padding only show in the output's size). ``groups`` splits the channels as torch
does. Each ``prange`` task owns one output plane (or one weight slice) outright; its body
is a :func:`fastcorr._kernels.shared` function that both twins call.

Inside, every loop walks output rows and, per tap, the span of output columns whose
input column ``j * sw + b * dw - pl`` is inside the image (:func:`_span`), so padding
costs nothing and no padded copy exists; only an inf or NaN meeting the zero padding
is carried to the output (``0 * inf`` is NaN), as a padded copy would.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import prange

from fastcorr._kernels import helper, kernel, scalar, scratch, shared, simd
from fastcorr._kernels.corr import _accumulate, _dot
from fastcorr._kernels.scan import finite_span
from fastcorr._kernels.simd import dots, flat, full_width, narrow_dots, nine_taps, tile


@scalar
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
    for task in prange(out.shape[0] * out.shape[1]):
        _forward_task(np.int64(task), x, w, bias, out, sh, sw, dh, dw, pt, pl, groups)


@shared
def _forward_task(task, x, w, bias, out, sh, sw, dh, dw, pt, pl, groups):
    full_width()
    h, width = x.shape[2], x.shape[3]
    o_count, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    og = o_count // groups
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
    for task in prange(dx.shape[0] * dx.shape[1]):
        _input_grad_task(np.int64(task), dy, w, dx, sh, sw, dh, dw, pt, pl, groups)


@shared
def _input_grad_task(task, dy, w, dx, sh, sw, dh, dw, pt, pl, groups):
    full_width()
    c_count, h, width = dx.shape[1], dx.shape[2], dx.shape[3]
    o_count, cg, kh, kw = w.shape
    oh, ow = dy.shape[2], dy.shape[3]
    og = o_count // groups
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
    for task in prange(dwt.shape[0] * dwt.shape[1]):
        _weight_grad_task(np.int64(task), x, dy, dwt, sh, sw, dh, dw, pt, pl, groups)


@shared
def _weight_grad_task(task, x, dy, dwt, sh, sw, dh, dw, pt, pl, groups):
    full_width()
    n_batch, h, width = x.shape[0], x.shape[2], x.shape[3]
    o_count, cg, kh, kw = dwt.shape
    oh, ow = dy.shape[2], dy.shape[3]
    og = o_count // groups
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


# Stride 1: flat planes.
#
# With the input copied into a zero-padded plane of row pitch ``wp``, output element
# ``(i, j)`` of a stride-1 convolution reads ``xp[i * wp + j + a * dh * wp + b * dw]``:
# every tap is one shift of the flat plane. Computing ``t = i * wp + j`` for all ``j < wp``
# (and dropping ``j >= ow``) turns each tap into a single long axpy over contiguous memory,
# and the explicit zeros make ``0 * inf`` NaN exactly where a padded copy puts it.
# The forward pads the planes each task reads into a buffer of its own. Four output
# channels share each pass: a whole 3x3 kernel at a time, or else three taps of one kernel
# row, added to the accumulator in tap order. The weight gradient takes dot products of the
# same shifted planes with dY laid out at the same pitch, zeros in the dropped columns.

_OB = 4
_CHUNK = 4096


def padded_planes(x, size, pt, pl, wp, work, check=False):
    """``(xp, finite)``: the planes of ``x`` zero-padded into ``size`` elements each, flat, at row
    pitch ``wp``; with ``check``, whether every value copied is finite (checked plane by plane
    while each is in cache: a pass that needs finite values checks its input at little cost),
    else None. ``work``, the multiply-adds of the pass that reads the copy, picks the twin: the
    copy runs on as many threads as its pass."""
    xp = scratch.empty((x.shape[0], x.shape[1], size), x.dtype)
    finite = np.empty(x.shape[0] * x.shape[1] if check else 0, np.bool_)
    pad_planes.pick(work)(x, xp, pt, pl, wp, finite)
    return xp, bool(finite.all()) if check else None


@kernel
def pad_planes(x, xp, pt, pl, wp, finite):
    """``xp[n, c]``: the plane ``x[n, c]`` zero-padded, flat, at row pitch ``wp``; unless ``finite``
    is empty, ``finite[n * C + c]``: whether that plane is all finite."""
    for task in prange(x.shape[0] * x.shape[1]):
        n, c = np.int64(task) // x.shape[1], np.int64(task) % x.shape[1]
        _padded(x[n, c], xp[n, c], pt, pl, wp)
        if finite.shape[0]:
            finite[task] = finite_span(xp[n, c], np.int64(0), xp.shape[2])  # while the plane is in cache


@helper
def _group_planes(x, n, g, cg, pt, pl, wp, size):
    """A new ``(cg, size)`` array: the ``cg`` planes of group ``g`` of image ``n``, each padded by
    :func:`_padded` (a task's own copy of what it reads)."""
    xg = np.empty((cg, size), x.dtype)
    for c in range(cg):
        _padded(x[n, g * cg + c], xg[c], pt, pl, wp)
    return xg


@shared
def _padded(plane, dst, pt, pl, wp):
    """Fill the flat ``dst``: ``plane`` at row ``pt``, column ``pl``, row pitch ``wp``, zeros elsewhere."""
    full_width()
    h, w = plane.shape
    n = min(w, wp - pl)
    done = 0  # dst[:done] is written
    for y in range(max(0, -pt), h):
        start = (y + pt) * wp + pl
        if start + n > dst.shape[0]:
            break
        for t in range(done, start):
            dst[t] = 0
        row = dst[start : start + n]
        src = plane[y]
        for j in range(n):
            row[j] = src[j]
        done = start + n
    for t in range(done, dst.shape[0]):
        dst[t] = 0


def flat_geometry(x_shape, w_shape, out_shape, dh, dw, pl):
    """Row pitch and flat plane size of the padded planes for a stride-1 pass."""
    width, (kh, kw), (oh, ow) = x_shape[3], w_shape[2:], out_shape[2:]
    wp = max(width + pl, ow + dw * (kw - 1))
    return wp, (oh + dh * (kh - 1)) * wp + dw * (kw - 1)


@kernel
def forward_flat(x, w, bias, out, dh, dw, groups, pt, pl, wp, size, three, single):
    """A task is a block of up to four output channels of one image and group: it pads the
    group's input planes (``size`` elements each, at pitch ``wp``) into a buffer of its own (one
    padded copy of the whole input would be a large fresh buffer, whose first touch alone cost
    a third of LeNet's input gradient). ``three`` and ``single`` (None or True, from
    :func:`flat_switches`) say which of its loops a call can need: each compiles only those
    (``three`` True: the kernel is 3x3)."""
    blocks = (w.shape[0] // groups + _OB - 1) // _OB
    for task in prange(out.shape[0] * groups * blocks):
        _forward_flat_task(np.int64(task), x, w, bias, out, dh, dw, groups, pt, pl, wp, size, three, single)


def flat_switches(w_shape, groups, dw):
    """The last arguments of :func:`forward_flat`: ``three`` True for 3x3 kernels (all nine taps
    at once), ``single`` True where a block can hold one output channel and the taps are
    adjacent (that channel alone on the one-plane loop); None otherwise."""
    three = True if tuple(w_shape[2:]) == (3, 3) else None
    single = True if dw == 1 and (w_shape[0] // groups) % _OB == 1 else None
    return three, single


@shared
def _forward_flat_task(task, x, w, bias, out, dh, dw, groups, pt, pl, wp, size, three, single):
    full_width()
    o_count, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    og = o_count // groups
    blocks = (og + _OB - 1) // _OB
    rows = max(1, min(oh, _CHUNK // wp))
    n, rest = task // (groups * blocks), task % (groups * blocks)
    g = rest // blocks
    o0 = g * og + (rest % blocks) * _OB
    nq = min(_OB, (g + 1) * og - o0)
    xg = _group_planes(x, n, g, cg, pt, pl, wp, size)
    wq = np.zeros((_OB, cg, kh, kw), w.dtype)
    for q in range(nq):
        _copy(wq[q], w[o0 + q])
    acc = np.empty((_OB, rows * wp), out.dtype)
    for i0 in range(0, oh, rows):
        m = min(rows, oh - i0) * wp
        t0 = i0 * wp
        a0, a1, a2, a3 = acc[0, :m], acc[1, :m], acc[2, :m], acc[3, :m]
        for t in range(m):
            a0[t] = 0
            a1[t] = 0
            a2[t] = 0
            a3[t] = 0
        for c in range(cg):
            # Numba drops the branches on a switch that is None before typing.
            if single is not None and nq == 1 and dw == 1:
                # One output channel: the single-image loop, without three idle lanes.
                for a in range(kh):
                    base = t0 + a * dh * wp
                    _accumulate(a0, wq[0, c, a], xg[c][base : base + m + kw - 1])
            elif three is not None:
                # All nine taps at once: nine loads feed 36 multiply-adds.
                nine_taps(flat(acc), acc.shape[1], flat(xg), c * xg.shape[1] + t0, dh * wp, dw, flat(wq), c * 9,
                          cg * 9, m)
            else:
                for a in range(kh):
                    _taps4(a0, a1, a2, a3, wq[:, c, a], xg[c], t0 + a * dh * wp, dw, m)
        for q in range(nq):
            b_q = bias[o0 + q]
            for r in range(min(rows, oh - i0)):
                orow = out[n, o0 + q, i0 + r]
                src = acc[q, r * wp : r * wp + ow]
                for j in range(ow):
                    orow[j] = src[j] + b_q


# A 3x3 or 5x5 kernel, stride and dilation 1, few channels: for each output channel, blocks of
# output rows by one vector, summed over the group's channels in registers
# (:func:`simd.channel_band`), straight into the output. The flat loops load and store their
# accumulators at every kernel row, and their shifted vector loads each cross a cache line (one
# output channel a group ran at about a quarter of the FMA units' peak); the register tile's
# products over few channels are short.

_band3x3, _band5x5 = simd.channel_band(3, 3), simd.channel_band(5, 5)
#: Half blocks, for the last rows of an output whose height leaves at most half a block over
#: (a whole block there would compute up to half its rows twice: 28 rows took four blocks).
_half3x3, _half5x5 = simd.channel_band(3, 3, simd.CHANNEL_ROWS // 2), simd.channel_band(5, 5, simd.CHANNEL_ROWS // 2)


def band_fits(w_shape, out_shape, dh: int, dw: int, itemsize: int) -> bool:
    """Whether :func:`channel_band` can run this stride-1 pass: a 3x3 or 5x5 kernel, no dilation,
    and an output of at least a block of rows and a vector of columns."""
    kh, kw = w_shape[2:]
    return ((kh, kw) in ((3, 3), (5, 5)) and dh == dw == 1
            and out_shape[2] >= simd.CHANNEL_ROWS and out_shape[3] >= simd.lanes(itemsize))


def band_pays(rows: int, channels: int, kh: int) -> bool:
    """Whether :func:`channel_band` beats the register tile (or, where the tile does not pay,
    the flat loops) for ``rows`` output and ``channels`` input channels a group and a ``kh``-row
    kernel. Measured on AVX-512 (band / tile time): 3x3 kernels on 2 to 8 channels 0.41-0.82
    (6 to 64 outputs), 5x5 on one channel 0.56-0.81, 5x5 on 3 to 6 channels 0.96-2.15, 16 or
    more channels 0.96-1.72; against the flat loops (2 to 5 outputs) 0.47-0.83, one output
    channel a group 0.26-0.53."""
    return not tile_pays(rows) or channels <= (8 if kh == 3 else 1)


@kernel
def channel_band(x, w, bias, out, groups, pt, pl, wp, size):
    """:func:`forward_flat` where :func:`band_fits`: a task is one image and group; it pads the
    group's planes into a buffer of its own, as :func:`forward_flat` does, and sums them for
    each output channel of the group in turn."""
    for task in prange(out.shape[0] * groups):
        _channel_band_task(np.int64(task), x, w, bias, out, groups, pt, pl, wp, size)


@shared
def _channel_band_task(task, x, w, bias, out, groups, pt, pl, wp, size):
    full_width()
    cg, kh = w.shape[1], w.shape[2]
    oh, ow = out.shape[2], out.shape[3]
    og = w.shape[0] // groups
    n, g = task // groups, task % groups
    xg = flat(_group_planes(x, n, g, cg, pt, pl, wp, size))
    count = simd.VECTOR_BITS // (8 * out.itemsize)
    rows = simd.CHANNEL_ROWS
    half = rows // 2
    for o in range(g * og, (g + 1) * og):
        taps, plane, b = flat(w[o]), flat(out[n, o]), bias[o]
        for i0 in range(0, oh, rows):
            short = oh - i0 <= half
            # The last block overlaps the one before it: outputs are assigned.
            i = oh - half if short else min(i0, oh - rows)
            for j0 in range(0, ow, count):
                j = min(j0, ow - count)
                if kh == 3 and short:
                    _half3x3(plane, i * ow + j, ow, xg, i * wp + j, wp, size, cg, taps, b)
                elif kh == 3:
                    _band3x3(plane, i * ow + j, ow, xg, i * wp + j, wp, size, cg, taps, b)
                elif short:
                    _half5x5(plane, i * ow + j, ow, xg, i * wp + j, wp, size, cg, taps, b)
                else:
                    _band5x5(plane, i * ow + j, ow, xg, i * wp + j, wp, size, cg, taps, b)


@helper
def _copy(dst, src):
    """``dst[...] = src`` for C-contiguous arrays of one shape (an array assignment would
    compile Numba's shape-mismatch message, seconds of string code)."""
    d, s = flat(dst), flat(src)
    for t in range(d.shape[0]):
        d[t] = s[t]


@helper
def _taps4(a0, a1, a2, a3, wrow, xc, base, dw, m):
    """``a_q[t] += sum_b wrow[q, b] * xc[base + b * dw + t]`` for the four rows ``a_q``:
    three taps per pass, then one pass for the last one or two."""
    kw = wrow.shape[1]
    k3 = kw - kw % 3
    for b in range(0, k3, 3):
        s0 = xc[base + b * dw : base + b * dw + m]
        s1 = xc[base + (b + 1) * dw : base + (b + 1) * dw + m]
        s2 = xc[base + (b + 2) * dw : base + (b + 2) * dw + m]
        u0, u1, u2 = wrow[0, b], wrow[0, b + 1], wrow[0, b + 2]
        v0, v1, v2 = wrow[1, b], wrow[1, b + 1], wrow[1, b + 2]
        p0, p1, p2 = wrow[2, b], wrow[2, b + 1], wrow[2, b + 2]
        q0, q1, q2 = wrow[3, b], wrow[3, b + 1], wrow[3, b + 2]
        for t in range(m):
            e0, e1, e2 = s0[t], s1[t], s2[t]
            a0[t] = a0[t] + u0 * e0 + u1 * e1 + u2 * e2
            a1[t] = a1[t] + v0 * e0 + v1 * e1 + v2 * e2
            a2[t] = a2[t] + p0 * e0 + p1 * e1 + p2 * e2
            a3[t] = a3[t] + q0 * e0 + q1 * e1 + q2 * e2
    if kw - k3 == 2:
        s0 = xc[base + k3 * dw : base + k3 * dw + m]
        s1 = xc[base + (k3 + 1) * dw : base + (k3 + 1) * dw + m]
        u0, u1 = wrow[0, k3], wrow[0, k3 + 1]
        v0, v1 = wrow[1, k3], wrow[1, k3 + 1]
        p0, p1 = wrow[2, k3], wrow[2, k3 + 1]
        q0, q1 = wrow[3, k3], wrow[3, k3 + 1]
        for t in range(m):
            e0, e1 = s0[t], s1[t]
            a0[t] = a0[t] + u0 * e0 + u1 * e1
            a1[t] = a1[t] + v0 * e0 + v1 * e1
            a2[t] = a2[t] + p0 * e0 + p1 * e1
            a3[t] = a3[t] + q0 * e0 + q1 * e1
    elif kw - k3 == 1:
        s0 = xc[base + k3 * dw : base + k3 * dw + m]
        u0, v0, p0, q0 = wrow[0, k3], wrow[1, k3], wrow[2, k3], wrow[3, k3]
        for t in range(m):
            e0 = s0[t]
            a0[t] += u0 * e0
            a1[t] += v0 * e0
            a2[t] += p0 * e0
            a3[t] += q0 * e0


@functools.lru_cache(maxsize=256)
def tap_offsets(channels, kh, kw, plane, pitch, step, multiple=1):
    """The offsets ``c * plane + a * pitch + b * step`` of the taps ``(c, a, b)`` in flat padded
    planes, in that order, the last repeated up to a multiple of ``multiple`` (computed once per
    layer: building them took a tenth of LeNet's weight gradient). Callers must not write to it."""
    c, a, b = np.arange(channels)[:, None, None], np.arange(kh)[:, None], np.arange(kw)
    offsets = (c * plane + a * pitch + b * step).ravel()
    return np.concatenate([offsets, np.full(-offsets.size % multiple, offsets[-1])]).astype(np.int64)


#: Positions per run of :func:`_weight_grad_flat_task`: a multiple of every vector's lanes.
_DOT_RUN = 512


def weight_grad_dots(x, dy, dwt, dh, dw, pt, pl, groups, work):
    """Run :func:`weight_grad_flat` on a finite ``x`` (the dropped columns pair its padded planes
    with zeros, and ``0 * inf`` is NaN): lay out the taps, and share the input channels out so
    that every thread is busy (``work`` multiply-adds pick the twin)."""
    (n_batch, c_count, _, width), (o_count, cg, kh, kw), oh = x.shape, dwt.shape, dy.shape[2]
    rows = simd.dot_rows(o_count // groups)
    wp, size = flat_geometry(x.shape, dwt.shape, dy.shape, dh, dw, pl)
    count = simd.lanes(x.dtype.itemsize)
    length = -(-oh * wp // count) * count
    offsets = tap_offsets(1, kh, kw, 0, dh * wp, dw, simd.DOT_TAPS)
    blocks = -(-(o_count // groups) // rows)
    wanted = min(cg, max(1, 4 * numba.get_num_threads() // (groups * blocks)))
    weight_grad_flat.pick(work)(x, dy, dwt, groups, pt, pl, wp, max(size, int(offsets[-1]) + length),
                                -(-cg // wanted), offsets, length, rows)


@kernel
def weight_grad_flat(x, dy, dwt, groups, pt, pl, wp, size, per, offsets, length, rows):
    """A task is a block of ``rows`` output channels (:func:`simd.dot_rows`) and ``per`` of the
    input channels; image by image, it pads its input planes (``size`` elements each, at pitch
    ``wp``) and lays its rows of dY out at that pitch, in scratch of its own (a padded copy of
    the whole input, made by a pass of its own, cost small layers 4-18% more and compiled a
    parallel loop of its own)."""
    blocks = (dwt.shape[0] // groups + rows - 1) // rows
    parts = (dwt.shape[1] + per - 1) // per
    for task in prange(groups * blocks * parts):
        _weight_grad_flat_task(np.int64(task), x, dy, dwt, groups, pt, pl, wp, size, per, offsets, length, rows)


@shared
def _weight_grad_flat_task(task, x, dy, dwt, groups, pt, pl, wp, size, per, offsets, length, rows):
    full_width()
    taps = simd.DOT_TAPS
    n_batch = x.shape[0]
    o_count, cg, kh, kw = dwt.shape
    og = o_count // groups
    blocks = (og + rows - 1) // rows
    parts = (cg + per - 1) // per
    padded = offsets.shape[0]
    block, part = task // parts, task % parts
    g = block // blocks
    o0 = g * og + (block % blocks) * rows
    nq = min(rows, (g + 1) * og - o0)
    c0, c1 = part * per, min(cg, (part + 1) * per)
    lanes = np.zeros(rows * length, dy.dtype)
    sums = np.zeros((c1 - c0) * rows * padded, dwt.dtype)
    planes = np.empty((c1 - c0, size), x.dtype)
    for n in range(n_batch):
        for q in range(nq):
            _padded(dy[n, o0 + q], lanes[q * length : (q + 1) * length], np.int64(0), np.int64(0), wp)
        for cc in range(c0, c1):
            _padded(x[n, g * cg + cc], planes[cc - c0], pt, pl, wp)
        # Runs of positions short enough that the rows of dY stay in L1 across channels and taps.
        for t0 in range(0, length, _DOT_RUN):
            run = min(_DOT_RUN, length - t0)
            for cc in range(c0, c1):
                plane = planes[cc - c0]
                for k0 in range(0, padded, taps):
                    if rows == simd.DOT_ROWS:
                        dots(sums, (cc - c0) * rows * padded + k0, padded, lanes, t0, length, plane, t0,
                             offsets[k0 : k0 + taps], run)
                    else:
                        narrow_dots(sums, (cc - c0) * rows * padded + k0, padded, lanes, t0, length, plane, t0,
                                    offsets[k0 : k0 + taps], run)
    for cc in range(c0, c1):
        for q in range(nq):
            target = flat(dwt[o0 + q, cc])
            first = ((cc - c0) * rows + q) * padded
            for k in range(kh * kw):
                target[k] = sums[first + k]


# Stride 1 on the register tile (:func:`fastcorr._kernels.simd.tile`), for groups with at
# least a tile's worth of output channels. A task is a band of ``rows`` output rows of one
# image: it copies the input rows the band reads, of every channel, into zero-padded flat
# planes of row pitch ``wp`` in its thread's scratch, so that output position
# ``t = r * wp + j`` of channel ``o`` is ``sum_k packed[o, k] * planes[offsets[k] + t]`` over
# the taps ``k = (c, a, b)``, ``offsets[k] = c * plane + a * dh * wp + b * dw``: a product of
# the packed weights with rows of the planes, no im2col. The tile computes ``TILE_ROWS``
# output channels by a run of positions at a time, over blocks of taps whose packed weights
# stay in L1; the columns ``j >= ow`` it computes on the way are dropped when the band is
# copied out, bias added.

_BAND_ROWS, _BAND_BYTES = 16, 1 << 20
_PANEL_BYTES = 16384


def bands(width, kernel, out_hw, dh, dw, pl, itemsize, channels=1, per_image=1):
    """``(wp, rows, tiles, plane)``: row pitch, output rows per band, tiles per band, and the
    flat size of one channel's padded rows, large enough for every tile's last tap.

    A band is :data:`_BAND_ROWS` rows, doubled while its padded rows of all ``channels`` and a
    tile's rows of sums stay within :data:`_BAND_BYTES` and each image still makes ``per_image``
    bands (so that every thread has bands to run): fewer bands copy fewer halo rows and leave
    fewer partial tiles (measured, 3x3 and 5x5 layers of 1 to 64 channels: whole 28- to 56-row
    images in one band took 0.73-0.92x the time of 16-row bands)."""
    (kh, kw), (oh, ow) = kernel, out_hw
    nr = simd.TILE_VECTORS * simd.lanes(itemsize)
    wp = max(width + pl, ow + dw * (kw - 1))
    rows = _BAND_ROWS
    while (rows < oh and -(-oh // (2 * rows)) >= per_image
           and (channels * (2 * rows + dh * (kh - 1)) + simd.TILE_ROWS * 2 * rows) * wp * itemsize <= _BAND_BYTES):
        rows *= 2
    rows = min(rows, oh)
    tiles = -(-rows * wp // nr)
    plane = max((rows + dh * (kh - 1)) * wp, tiles * nr + dh * (kh - 1) * wp + dw * (kw - 1))
    return wp, rows, tiles, -(-plane // wp) * wp


def tile_pays(rows: int) -> bool:
    """Whether :func:`tiled` beats :func:`forward_flat` for ``rows`` output channels a group: from
    three quarters of a tile's rows on (measured on AVX-512, 8 rows a tile: 6 or 7 output
    channels 0.66-0.91x the flat loops' time, 4 or 5 0.8-1.1x, 1 or 2 1.1-1.8x)."""
    return 4 * rows >= 3 * simd.TILE_ROWS


def tiled(x, weight, bias, out, dh, dw, pt, pl, groups, work):
    """Run :func:`forward_tiled`: pack the weights, lay out the taps and the bands, give each
    thread its scratch (``work`` multiply-adds pick the twin)."""
    (n_batch, c_count, _, width), (o_count, cg, kh, kw), oh = x.shape, weight.shape, out.shape[2]
    mr = simd.TILE_ROWS
    nr = simd.TILE_VECTORS * simd.lanes(weight.dtype.itemsize)
    twin = forward_tiled.pick(work)
    threads = numba.get_num_threads() if twin is forward_tiled.parallel else 1
    wp, rows, tiles, plane = bands(width, (kh, kw), out.shape[2:], dh, dw, pl, weight.dtype.itemsize, c_count,
                                   -(-4 * threads // n_batch))
    k_count, og = cg * kh * kw, o_count // groups
    most = max(1, _PANEL_BYTES // (mr * weight.dtype.itemsize))
    block = -(-k_count // -(-k_count // most))
    blocks = -(-og // mr)
    packed = np.zeros((groups, blocks * mr, k_count), weight.dtype)
    packed[:, :og] = weight.reshape(groups, og, k_count)
    packed = np.ascontiguousarray(packed.reshape(groups, blocks, mr, k_count).transpose(0, 1, 3, 2)).ravel()
    offsets = tap_offsets(cg, kh, kw, plane, dh * wp, dw)
    space = scratch.empty((threads, c_count * plane + mr * tiles * nr), weight.dtype)
    twin(x, packed, offsets, bias, out, space, n_batch * -(-oh // rows), rows, pt, pl, wp, plane, nr, block, groups)


@kernel
def forward_tiled(x, packed, offsets, bias, out, work, tasks, rows, pt, pl, wp, plane, nr, block, groups):
    """``work[s]`` is the scratch of slot ``s``: slot ``s`` runs tasks ``s, s + slots, ...``."""
    slots = work.shape[0]
    for slot in prange(slots):
        for task in range(np.int64(slot), tasks, slots):
            _band_task(task, x, packed, offsets, bias, out, work[slot], rows, pt, pl, wp, plane, nr, block, groups)


@shared
def _band_task(task, x, packed, offsets, bias, out, work, rows, pt, pl, wp, plane, nr, block, groups):
    full_width()
    mr = simd.TILE_ROWS
    c_count = x.shape[1]
    o_count, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    cg, og = c_count // groups, o_count // groups
    k_count = offsets.shape[0]
    blocks = (og + mr - 1) // mr
    bands = (oh + rows - 1) // rows
    n, r0 = task // bands, (task % bands) * rows
    count = min(rows, oh - r0)
    tiles = (count * wp + nr - 1) // nr
    ld = tiles * nr
    planes = work[: c_count * plane]
    acc = work[c_count * plane : c_count * plane + mr * ld]
    for c in range(c_count):
        _pad_band(x[n, c], planes[c * plane : (c + 1) * plane], r0 - pt, pl, wp)
    for g in range(groups):
        for ob in range(blocks):
            valid = min(mr, og - ob * mr)
            for k0 in range(0, k_count, block):
                k1 = min(k_count, k0 + block)
                for t in range(tiles):
                    tile(acc, t * nr, ld, packed, ((g * blocks + ob) * k_count + k0) * mr, planes,
                         g * cg * plane + t * nr, offsets[k0:k1], k1 - k0, valid, k0 > 0)
            for i in range(valid):
                o = g * og + ob * mr + i
                b_o = bias[o]
                for r in range(count):
                    dst = out[n, o, r0 + r]
                    src = acc[i * ld + r * wp : i * ld + r * wp + ow]
                    for j in range(ow):
                        dst[j] = src[j] + b_o


@helper
def _pad_band(image, dst, first, pl, wp):
    """``dst``, flat at pitch ``wp``: rows ``first, first + 1, ...`` of ``image`` from column ``pl``
    on (zeros where a row falls outside the image, and around each row)."""
    h, w = image.shape
    n = min(w, wp - pl)
    for rr in range(dst.shape[0] // wp):
        row = dst[rr * wp : (rr + 1) * wp]
        y = first + rr
        if 0 <= y < h:
            src = image[y]
            for j in range(pl):
                row[j] = 0
            for j in range(n):
                row[pl + j] = src[j]
            for j in range(pl + n, wp):
                row[j] = 0
        else:
            for j in range(wp):
                row[j] = 0


# The weight gradient as a GEMM on the register tile: dW[o, (a, b, c)] = sum over positions t
# of dY[o, t] * X[t + (a, b), c], with X laid out channels last (NHWC), zero-padded, flat. For a
# kernel row a, the taps (b, c) of position t are the ``kw * C`` consecutive elements from
# ``(t + (a, 0)) * C``: one row of an implicit im2col, so the tile's columns run along them
# (``width`` at a time; columns past ``kw * C`` read the next pixel and are dropped) and its
# depth along the positions, dY packed by ``TILE_ROWS`` output channels per position.
# The positions are split into ``parts`` fixed by the sizes alone; each part sums its chunks
# of ``_GEMM_CHUNK`` positions into its own totals (each chunk a fresh sum, then added), and
# the parts are added in order at the end: the same bits on any number of threads.

_GEMM_CHUNK, _GEMM_PARTS = 256, 8


def kept(rows: int, columns: int, itemsize: int) -> float:
    """The share of the register tile's work that is kept, for ``rows`` by ``columns`` products."""
    mr, width = simd.TILE_ROWS, simd.TILE_VECTORS * simd.lanes(itemsize)
    return rows / (-(-rows // mr) * mr) * columns / (-(-columns // width) * width)


def gemm_pays(c_count: int, o_count: int, kw: int, itemsize: int) -> bool:
    """Whether :func:`weight_grad_gemm` beats :func:`weight_grad_dots`: at least half of what the
    tile computes is kept (its rows are output channels, its columns ``kw * C`` taps; measured)."""
    return kept(o_count, kw * c_count, itemsize) >= 0.5


def weight_grad_gemm(x, dy, dwt, pt, pl, work):
    """Stride 1, dilation 1, one group: :func:`weight_grad_packed` (``work`` multiply-adds pick
    the twin). Any values: every product the sums keep is one of the definition's."""
    (n_batch, c_count), (o_count, _, kh, kw), (oh, ow) = x.shape[:2], dwt.shape, dy.shape[2:]
    mr = simd.TILE_ROWS
    width = simd.TILE_VECTORS * simd.lanes(x.dtype.itemsize)
    hp, wp = oh + kh - 1, ow + kw - 1
    cols = -(-kw * c_count // width) * width
    xh, _ = laid_channels_last(x, hp, wp, pt, pl, cols, work)
    positions = n_batch * oh * ow
    chunks = -(-positions // _GEMM_CHUNK)
    parts = min(chunks, _GEMM_PARTS)
    blocks = -(-o_count // mr)
    twin = weight_grad_packed.pick(work)
    slots = min(parts, numba.get_num_threads()) if twin is weight_grad_packed.parallel else 1
    totals = scratch.empty((parts, blocks * mr, kh, cols), x.dtype)
    space = scratch.empty((slots, blocks * _GEMM_CHUNK * mr + mr * width), x.dtype)
    at = np.empty((slots, 2, _GEMM_CHUNK), np.int64)
    twin(xh, dy, totals, space, at, chunks, c_count, hp, wp, width)
    dwt[...] = totals[0, :o_count, :, : kw * c_count].reshape(o_count, kh, kw, c_count).transpose(0, 3, 1, 2)


def laid_channels_last(x, hp, wp, pt, pl, slack, work, check=False):
    """``(xh, finite)``: ``x`` laid out by :func:`channels_last` (flat, ``slack`` zeros after) and,
    with ``check``, whether every value is finite (checked row by row in cache), else None.
    ``work`` picks the twin, as for :func:`padded_planes`."""
    xh = scratch.empty(x.shape[0] * hp * wp * x.shape[1] + slack, x.dtype)
    finite = np.empty(x.shape[0] * hp if check else 0, np.bool_)
    channels_last.pick(work)(x, xh, hp, wp, pt, pl, finite, simd.lanes(x.dtype.itemsize))
    return xh, bool(finite.all()) if check else None


@kernel
def channels_last(x, xh, hp, wp, pt, pl, finite, block):
    """``xh`` (flat, then slack): ``x`` as (N, hp, wp, C) at row ``pt`` and column ``pl``, zeros
    around, each row of an image transposed ``block`` channels by ``block`` pixels at a time;
    unless ``finite`` is empty, ``finite[n * hp + r]``: whether row ``r`` of image ``n`` is."""
    n_batch, c_count, h, w = x.shape
    xf = flat(x)
    for task in prange(n_batch * hp):
        n, r = np.int64(task) // hp, np.int64(task) % hp
        start = (n * hp + r) * wp * c_count
        row = xh[start : start + wp * c_count]
        y = r - pt
        if 0 <= y < h:
            for j in range(pl * c_count):
                row[j] = 0
            for j in range((pl + w) * c_count, row.shape[0]):
                row[j] = 0
            for c0 in range(0, c_count, block):
                source = ((n * c_count + c0) * h + y) * w  # row y of plane c0, then of the planes after it
                for j0 in range(0, w, block):
                    simd.transpose(xh, start + (pl + j0) * c_count + c0, c_count, xf, source + j0, h * w,
                                   min(block, c_count - c0), min(block, w - j0))
        else:
            for j in range(row.shape[0]):
                row[j] = 0
        if finite.shape[0]:
            finite[task] = finite_span(row, np.int64(0), row.shape[0])
    for j in range(n_batch * hp * wp * c_count, xh.shape[0]):
        xh[j] = 0


@kernel
def weight_grad_packed(xh, dy, totals, work, at, chunks, c_count, hp, wp, width):
    """Slot ``s`` (scratch ``work[s]``, ``at[s]``) runs parts ``s, s + slots, ...``; then the parts'
    totals are added, in order, into ``totals[0]``."""
    slots, parts = work.shape[0], totals.shape[0]
    for slot in prange(slots):
        for part in range(np.int64(slot), parts, slots):
            first, last = part * chunks // parts, (part + 1) * chunks // parts
            _weight_grad_part(first, last, xh, dy, totals[part], work[slot], at[slot], c_count, hp, wp, width)
    add_parts(totals)


@helper
def add_parts(totals):
    """``totals[0] += totals[1]``, then ``+= totals[2]``, and so on: the parts' sums in order."""
    sums = flat(totals)
    size = sums.shape[0] // totals.shape[0]
    for part in range(1, totals.shape[0]):
        for j in range(size):
            sums[j] += sums[part * size + j]


@shared
def _weight_grad_part(first, last, xh, dy, total, work, at, c_count, hp, wp, width):
    """``total[o, a, b * C + c]``: the sums over chunks ``first .. last - 1`` of positions."""
    full_width()
    mr = simd.TILE_ROWS
    n_batch, o_count, oh, ow = dy.shape
    blocks, kh, cols = total.shape[0] // mr, total.shape[1], total.shape[2]
    plane = oh * ow
    size = at.shape[1]
    sums = flat(total)
    sums[:] = 0
    dyf = flat(dy)
    packed = work[: blocks * size * mr]
    partial = work[blocks * size * mr :]
    offsets, sources = at[0], at[1]
    for chunk in range(first, last):
        t0 = chunk * size
        count = min(size, n_batch * plane - t0)
        n, rest = t0 // plane, t0 % plane
        i, j = rest // ow, rest % ow
        for p in range(count):
            offsets[p] = ((n * hp + i) * wp + j) * c_count
            sources[p] = n * o_count * plane + i * ow + j
            j += 1
            if j == ow:
                j, i = 0, i + 1
                if i == oh:
                    i, n = 0, n + 1
        for o in range(blocks * mr):
            column = packed[(o // mr) * size * mr + o % mr :]
            if o < o_count:
                for p in range(count):
                    column[p * mr] = dyf[sources[p] + o * plane]
            else:
                for p in range(count):
                    column[p * mr] = 0
        for ob in range(blocks):
            valid = min(mr, o_count - ob * mr)
            for a in range(kh):
                for c0 in range(0, cols, width):
                    tile(partial, 0, width, packed, ob * size * mr, xh, a * wp * c_count + c0, offsets, count, valid,
                         False)
                    for r in range(valid):
                        target = sums[((ob * mr + r) * kh + a) * cols + c0 :]
                        for q in range(width):
                            target[q] += partial[r * width + q]
