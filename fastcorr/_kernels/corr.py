"""The correlation loops every signal function runs on, and the plan that picks them.

:func:`correlate` computes, for every ``(i, j)`` of ``out``::

    out[i, j] = sum over (a, b) of k[a, b] * ext(x)[i + a - p0, j + b - p1]

where ``ext`` extends ``x`` beyond its edges by ``boundary``: ``FILL`` (the value
``fill``), ``WRAP`` (periodic), ``SYMM`` (mirrored, edge sample repeated), ``NEAREST`` (the
edge sample repeated) or ``MIRROR`` (mirrored about the edge sample, which is not repeated),
each as often as a long kernel needs. The 'valid',
'same' and 'full' modes, convolution (a flipped ``k``) and the input gradient are all
choices of ``p0, p1`` and ``k`` made by the callers.

The outputs whose taps all fall inside ``x`` form a rectangle, the interior; the others
form the border. Python splits every call into the two (:func:`plan`), so that a call
compiles only the loops it runs and no loop carries code it does not need:

- The interior runs on a loop that knows nothing of boundaries: in float32 and float64,
  :func:`band3x3` and :func:`tile5x5` run blocks of rows (:data:`BAND3_ROWS`,
  :data:`BAND_ROWS`) on :func:`fastcorr._kernels.simd.band`, the 9 or 25 taps in registers;
  in other dtypes :func:`tile3x3` takes all nine taps in one pass over each output row (two
  neighbouring rows at once from four source rows when integer rows are long: complex rows
  in pairs took 2-5x the time of one by one); and
  :func:`rows` takes any kernel, three taps of a kernel row per pass over a block of
  columns that stays in L1, and :func:`dots` interiors narrower than the kernel (a
  gradient's weights), a dot product per output. Their inner loops run over zero-based
  slices, so LLVM vectorises them. Float kernels of :data:`WIDE_ROWS` rows or more, and
  with 512-bit vectors most others of two rows or more, take :func:`wide` instead: the
  register tile of :mod:`fastcorr._kernels.simd` for correlation kernels, ``TILE_ROWS``
  output rows at a time.
- The border runs on :func:`border`: per output row, each source row it needs is extended
  once into a scratch row (fill rows add a constant), then each kernel row adds its taps
  along it; the strips left and right of the interior look up the columns their taps read
  (:func:`strip_columns`, the same for every row). Small calls run wholly on its body, through
  :func:`small`, and so do small convolutions, many planes in one call, through
  :func:`correlate_planes`; those that meet no boundary run on :func:`valid` alone.
- Sums of correlations over stacks of planes (N-D correlation, one 2-D kernel slice per
  leading kernel offset), and images of interleaved channels, run on :func:`stack`: a task is
  a run of output rows of one plane, each row taking every product in turn from source rows
  extended once each into a ring of scratch rows. 3x3 kernels on one or three channels take
  :func:`stack3x3`, which on long rows reads the source rows in place where all three are
  inside and extends only the few positions at their ends.

A task is a run of output rows (whole row pairs for the 3x3 tile): all of them in the
serial twin, a share of them per thread in the parallel one, which run the same compiled
body per task. ``k`` must not be empty. A loop reads only kernels of
its own size: Numba hoists loop-invariant loads out of a parallel loop, branches or not.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import prange

from fastcorr._kernels import helper, kernel, scalar, shared
from fastcorr._kernels.scan import finite_span
from fastcorr._kernels.simd import TILE_ROWS, TILE_VECTORS, VECTOR_BITS, band, flat, full_width, lanes, tall_tile

FILL, SYMM, WRAP, NEAREST, MIRROR = 0, 1, 2, 3, 4
_BLOCK = 2048
_PAIR_COLUMNS = 384
#: The 3x3 tile's rows go in blocks of this many outputs (two float32 vectors), the last
#: block overlapping the one before it (outputs are assigned, not added): LLVM's own vector
#: loop takes four vectors per step and leaves shorter rows to a scalar loop. Shorter rows
#: run on :func:`rows`.
ROW_BLOCK = 2 * lanes(4)
#: Output rows per block of the 5x5 register tile: its 25 taps, the block's accumulators and a
#: loaded vector in the 32 vector registers of AVX-512 (AVX2's 16 reload some taps).
BAND_ROWS = 4
_band5x5, _band5x5_row = band(5, 5, BAND_ROWS), band(5, 5, 1)
#: Output rows per block of the 3x3 register tile. One thread, against :func:`tile3x3`: two
#: rows and four both 0.58-0.73x its time up to 384 columns; from 1026 to 4098 columns (rows
#: streamed from memory, its row pairs against) two 0.96-1.03x, four 1.05-1.21x.
BAND3_ROWS = 2
_band3x3, _band3x3_row = band(3, 3, BAND3_ROWS), band(3, 3, 1)
_BAND_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Calls of fewer multiply-adds run wholly on :func:`valid` or :func:`small`: the call costs more than any loop.
SMALL = 4096


def correlate(x, k, out, p0, p1, boundary, fill):
    """``out`` as the module docstring defines it: the interior, then the border."""
    work = out.size * k.size
    if work < SMALL:
        if inside(x.shape, k.shape, out.shape, p0, p1):
            valid(x, k, out, False)
        else:
            small(x, k, out, p0, p1, boundary, fill, 0)
        return
    (r0, r1, c0, c1), interior = plan(x.dtype, x.shape, k.shape, out.shape, p0, p1)
    if interior is rows and _wide_fits(x.dtype, k.shape, r1 - r0, c1 - c0):
        packed, offsets = _wide_operands(k, x.shape[1])
        twin = wide.pick(work)
        blocks = (r1 - r0) // TILE_ROWS
        twin(x, packed, offsets, out, r0, r1, c0, c1, -p0, -p1, _wide_columns(x.dtype), _wide_rows(k.shape[0]),
             _rows_per_task(twin, wide, blocks))
    elif interior is not None:
        twin = interior.pick(work)
        twin(x, k, out, r0, r1, c0, c1, -p0, -p1, _rows_per_task(twin, interior, r1 - r0))
    edge = out.size - (r1 - r0) * (c1 - c0)
    if edge:
        columns = strip_columns(x.shape[1], out.shape[1], k.shape[1], p1, c0, c1, boundary)
        twin = border.pick(edge * k.size)
        twin(x, k, out, p0, p1, boundary, fill, r0, r1, c0, c1, columns, False, _rows_per_task(twin, border, out.shape[0]))


def _rows_per_task(twin, loop, rows):
    """All rows in one task for a serial twin; else enough tasks to balance the threads (an even
    number of rows each, so that row pairs stay whole)."""
    if twin is loop.serial:
        return max(rows, 1)
    step = -(-rows // (4 * numba.get_num_threads()))
    return max(2, step + step % 2)


def plan(dtype, shape, kernel_shape, out_shape, p0, p1):
    """The interior rectangle ``(r0, r1, c0, c1)`` of the output and the loop that computes it
    (None: the whole output is border)."""
    key = (dtype, shape, kernel_shape, out_shape, p0, p1)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    if len(_PLANS) > 1024:
        _PLANS.clear()
    _PLANS[key] = result = _plan(dtype, shape, kernel_shape, out_shape, p0, p1)
    return result


_PLANS: dict = {}


def _plan(dtype, shape, kernel_shape, out_shape, p0, p1):
    (h, w), (kh, kw), (oh, ow) = shape, kernel_shape, out_shape
    r0, r1 = _inside(h, kh, oh, p0)
    c0, c1 = _inside(w, kw, ow, p1)
    if r0 == r1 or c0 == c1:
        return (0, 0, 0, 0), None
    return (r0, r1, c0, c1), _tile_for(dtype, kernel_shape) or (dots if c1 - c0 < kw else rows)


def _tile_for(dtype, kernel_shape):
    """The register tile for the interior of a ``kernel_shape`` correlation in ``dtype``, or None."""
    if kernel_shape == (3, 3):
        return band3x3 if dtype in _BAND_DTYPES else tile3x3
    if kernel_shape == (5, 5) and dtype in _BAND_DTYPES:
        return tile5x5
    return None


def valid_tiled(x, k, out, work):
    """:func:`correlate` for 'valid' calls (every output's taps inside ``x``) of ``work`` >=
    :data:`SMALL` multiply-adds: a 3x3 or 5x5 kernel goes straight to its tile, without a plan."""
    tile = _tile_for(x.dtype, k.shape)
    if tile is None:
        correlate(x, k, out, 0, 0, FILL, out.dtype.type(0))
        return
    twin = tile.pick(work)
    twin(x, k, out, 0, out.shape[0], 0, out.shape[1], 0, 0, _rows_per_task(twin, tile, out.shape[0]))


def _inside(n, kn, on, p):
    """The outputs ``[lo, hi)`` along one axis whose ``kn`` taps all fall inside ``[0, n)``."""
    lo = min(max(p, 0), on)
    return lo, max(min(n - kn + 1 + p, on), lo)


# Interior loops: out[i, j] = sum k[a, b] * x[i + dr + a, j + dc + b] for i in [r0, r1),
# j in [c0, c1), every index inside x.

@kernel
def rows(x, k, out, r0, r1, c0, c1, dr, dc, step):
    for t in prange((r1 - r0 + step - 1) // step):
        start = r0 + np.int64(t) * step
        _rows_task(start, min(start + step, r1), x, k, out, c0, c1, dr, dc)


@kernel
def dots(x, k, out, r0, r1, c0, c1, dr, dc, step):
    """:func:`rows` for interiors narrower than the kernel (a gradient's few weights): one dot
    product per output and kernel row."""
    for t in prange((r1 - r0 + step - 1) // step):
        start = r0 + np.int64(t) * step
        _dots_task(start, min(start + step, r1), x, k, out, c0, c1, dr, dc)


@kernel
def tile3x3(x, k, out, r0, r1, c0, c1, dr, dc, step):
    for t in prange((r1 - r0 + step - 1) // step):
        start = r0 + np.int64(t) * step
        _tile3x3_task(start, min(start + step, r1), x, k, out, c0, c1, dr, dc)


@kernel
def band3x3(x, k, out, r0, r1, c0, c1, dr, dc, step):
    for t in prange((r1 - r0 + step - 1) // step):
        start = r0 + np.int64(t) * step
        _band3x3_task(start, min(start + step, r1), x, k, out, c0, c1, dr, dc)


@kernel
def tile5x5(x, k, out, r0, r1, c0, c1, dr, dc, step):
    for t in prange((r1 - r0 + step - 1) // step):
        start = r0 + np.int64(t) * step
        _tile5x5_task(start, min(start + step, r1), x, k, out, c0, c1, dr, dc)


@shared
def _rows_task(i0, i1, x, k, out, c0, c1, dr, dc):
    full_width()
    kh, kw = k.shape
    for i in range(i0, i1):
        for j0 in range(c0, c1, _BLOCK):
            j1 = min(j0 + _BLOCK, c1)
            dst = out[i, j0:j1]
            _zero(dst)
            for a in range(kh):
                s = j0 + dc
                _accumulate(dst, k[a], x[i + dr + a, s : s + j1 - j0 + kw - 1])


@shared
def _dots_task(i0, i1, x, k, out, c0, c1, dr, dc):
    full_width()
    kh, kw = k.shape
    for i in range(i0, i1):
        dst = out[i, c0:c1]
        _zero(dst)
        for a in range(kh):
            src = x[i + dr + a]
            for j in range(c1 - c0):
                s = c0 + j + dc
                dst[j] += _dot(k[a], src[s : s + kw])


@shared
def _tile3x3_task(i0, i1, x, k, out, c0, c1, dr, dc):
    full_width()
    n = c1 - c0
    s, e = c0 + dc, c1 + dc + 2
    for i in range(i0, i1, 2):
        r = i + dr
        if i + 1 < i1 and n >= _PAIR_COLUMNS and not np.iscomplexobj(x):
            _tile3x3x2(out[i, c0:c1], out[i + 1, c0:c1], k, x[r, s:e], x[r + 1, s:e], x[r + 2, s:e], x[r + 3, s:e])
            continue
        for row in range(i, min(i + 2, i1)):
            r = row + dr
            _tile3x3(out[row, c0:c1], k, x[r, s:e], x[r + 1, s:e], x[r + 2, s:e])


@shared
def _band3x3_task(i0, i1, x, k, out, c0, c1, dr, dc):
    """Blocks of :data:`BAND3_ROWS` rows on the register tile, the last one overlapping the one
    before it; a task of fewer rows row by row, with the same sums."""
    full_width()
    ldo, ldx = out.shape[1], x.shape[1]
    flat_out, flat_x, taps = flat(out), flat(x), flat(k)
    if i1 - i0 < BAND3_ROWS:
        for i in range(i0, i1):
            _band3x3_row(flat_out, i * ldo + c0, ldo, flat_x, (i + dr) * ldx + c0 + dc, ldx, taps, c1 - c0)
        return
    for start in range(i0, i1, BAND3_ROWS):
        i = min(start, i1 - BAND3_ROWS)
        _band3x3(flat_out, i * ldo + c0, ldo, flat_x, (i + dr) * ldx + c0 + dc, ldx, taps, c1 - c0)


@shared
def _tile5x5_task(i0, i1, x, k, out, c0, c1, dr, dc):
    """Blocks of :data:`BAND_ROWS` rows on the register tile, the last one overlapping the one
    before it; a task of fewer rows row by row, with the same sums."""
    full_width()
    ldo, ldx = out.shape[1], x.shape[1]
    flat_out, flat_x, taps = flat(out), flat(x), flat(k)
    if i1 - i0 < BAND_ROWS:
        for i in range(i0, i1):
            _band5x5_row(flat_out, i * ldo + c0, ldo, flat_x, (i + dr) * ldx + c0 + dc, ldx, taps, c1 - c0)
        return
    for start in range(i0, i1, BAND_ROWS):
        i = min(start, i1 - BAND_ROWS)
        _band5x5(flat_out, i * ldo + c0, ldo, flat_x, (i + dr) * ldx + c0 + dc, ldx, taps, c1 - c0)


def _whole_interior(task):
    """The serial twin of an interior loop: its body ``task`` over all the rows at once."""
    def serial(x, k, out, r0, r1, c0, c1, dr, dc, step):
        task(r0, r1, x, k, out, c0, c1, dr, dc)
    serial.__qualname__ = task.__name__ + "_whole"
    return serial


for _loop, _task in [(rows, _rows_task), (dots, _dots_task), (tile3x3, _tile3x3_task), (band3x3, _band3x3_task), (tile5x5, _tile5x5_task)]:
    _loop.serially(_whole_interior(_task))
del _loop, _task


# Kernels of two rows or more (3x3 and 5x5 have tiles of their own): the interior on the register tile.

#: Float kernels of this many rows or more run their interior on :func:`wide`, and with 512-bit
#: vectors so do those of two rows or more with :data:`WIDE_TAPS` taps or more (besides 3x3 and
#: 5x5: their own tiles). Measured against :func:`rows`, 1024² on Zen 4: 2x8 0.8x, 3x4 0.75x,
#: 4x2 0.82-0.93x, 5x7 0.6x, 3x15 0.6-0.7x; 2x4 1.0x, 2x3 1.2-1.3x, and kernels of one row
#: 1.1-1.3x. On a 256-bit build (half the registers: a tile of six rows by two vectors) short
#: kernels took 1.1-1.7x the rows loop's time on the tile, tall ones 0.8-0.9x.
WIDE_ROWS = 7
WIDE_TAPS = 8


def _wide_columns(dtype) -> int:
    return TILE_VECTORS * lanes(dtype.itemsize)


def _wide_fits(dtype, kernel_shape, rows, columns) -> bool:
    kh, kw = kernel_shape
    short = VECTOR_BITS >= 512 and kh >= 2 and kh * kw >= WIDE_TAPS
    return (dtype.kind == "f" and dtype.itemsize in (4, 8) and (kh >= WIDE_ROWS or short)
            and rows >= TILE_ROWS and columns >= _wide_columns(dtype))


def _wide_rows(kh: int):
    """The kernel's rows as :func:`simd.tall_tile` takes them: an int, or a tuple of that many
    Nones for kernels shorter than ``TILE_ROWS - 1`` (each height compiles its own tile)."""
    return kh if kh >= TILE_ROWS - 1 else (None,) * kh


def _wide_operands(k, width):
    """``k`` packed for :func:`simd.tall_tile`, shape ``(kh + TILE_ROWS - 1, kw, TILE_ROWS)``:
    the tile's row ``i`` (output row ``i`` of a block) takes ``k[s - i, b]`` from source row
    ``s`` of the block, tap ``b`` (zero where ``s - i`` is outside the kernel: never read); and
    each tap's offset in ``x`` of ``width`` columns."""
    (kh, kw), mr = k.shape, TILE_ROWS
    packed = np.zeros((kh + mr - 1, kw, mr), k.dtype)
    for i in range(mr):
        packed[i : i + kh, :, i] = k
    offsets = np.add.outer(np.arange(kh + mr - 1) * width, np.arange(kw)).astype(np.int64)
    return packed, offsets.ravel()


@kernel
def wide(x, packed, offsets, out, r0, r1, c0, c1, dr, dc, columns, kh, step):
    """The interior ``[r0, r1) x [c0, c1)`` by blocks of ``TILE_ROWS`` output rows and
    ``columns`` outputs, each one call of :func:`simd.tall_tile` on ``x``'s flat rows (see
    :func:`_wide_operands`; ``kh`` from :func:`_wide_rows`); a task is ``step`` blocks of rows."""
    blocks = (r1 - r0) // TILE_ROWS
    for t in prange((blocks + step - 1) // step):
        start = np.int64(t) * step
        _wide_task(start, min(start + step, blocks), x, packed, offsets, out, r0, r1, c0, c1, dr, dc, columns, kh)


@shared
def _wide_task(b0, b1, x, packed, offsets, out, r0, r1, c0, c1, dr, dc, columns, kh):
    """Blocks ``[b0, b1)`` of rows; the task with the last block also takes the rows that
    follow it, as a block that overlaps it (outputs are assigned, so twice is harmless)."""
    full_width()
    mr, kw = TILE_ROWS, packed.shape[1]
    last = (r1 - r0) // mr
    for b in range(b0, b1 + (1 if b1 == last and (r1 - r0) % mr else 0)):
        i = min(r0 + b * mr, r1 - mr)
        for j0 in range(c0, c1, columns):
            j = min(j0, c1 - columns)  # the last tile overlaps the one before it
            tall_tile(flat(out), i * out.shape[1] + j, out.shape[1], flat(packed), flat(x),
                      (i + dr) * x.shape[1] + j + dc, offsets, kh, kw)


@wide.serially
def _wide_whole(x, packed, offsets, out, r0, r1, c0, c1, dr, dc, columns, kh, step):
    blocks = (r1 - r0) // TILE_ROWS
    if blocks:  # as the loop: no task without a whole block of rows
        _wide_task(0, blocks, x, packed, offsets, out, r0, r1, c0, c1, dr, dc, columns, kh)


# The border: every output outside the interior rectangle [r0, r1) x [c0, c1).

@kernel
def border(x, k, out, p0, p1, boundary, fill, r0, r1, c0, c1, columns, accumulate, step):
    """Every output outside the interior ``[r0, r1) x [c0, c1)``; the strips of the middle rows
    read the columns :func:`strip_columns` gives."""
    oh = out.shape[0]
    for t in prange((oh + step - 1) // step):
        start = np.int64(t) * step
        end = min(start + step, oh)
        _border_task(start, end, x, k, out, p0, p1, boundary, fill, r0, r1, c0, c1, accumulate)
        if max(start, r0) < min(end, r1):
            _strips(max(start, r0), min(end, r1), x, k, out, p0, c0, c1, columns, fill, accumulate)


@border.serially
def _border_whole(x, k, out, p0, p1, boundary, fill, r0, r1, c0, c1, columns, accumulate, step):
    """The serial twin of :func:`border`: its two bodies, each over all its rows."""
    _border_task(0, out.shape[0], x, k, out, p0, p1, boundary, fill, r0, r1, c0, c1, accumulate)
    if r0 < r1:
        _strips(r0, r1, x, k, out, p0, c0, c1, columns, fill, accumulate)


@functools.lru_cache(maxsize=256)
def strip_columns(w, ow, kw, p1, c0, c1, boundary) -> np.ndarray:
    """The columns of ``x`` (``w`` wide; -1: the fill value) that the taps of a middle row's
    strips read: from output column 0 on for the left strip, then from ``c1`` on for the right one.
    Kept per geometry (the kernels only read it): making it costs more than a small call."""
    left = np.arange(c0 + kw - 1)
    right = np.arange(c1, ow + kw - 1)
    return edge_index(np.concatenate([left, right]) - p1, w, boundary)


def edge_index(t: np.ndarray, n: int, boundary: int) -> np.ndarray:
    """:func:`_source` over an array: the index of an axis of length ``n`` that extended
    position ``t`` reads (-1: the fill value)."""
    inside = (t >= 0) & (t < n)
    if boundary == FILL:
        src = np.full(t.shape, -1, np.int64)
    elif boundary == WRAP:
        src = t % n
    elif boundary == NEAREST:
        src = np.clip(t, 0, n - 1)
    elif boundary == MIRROR:
        period = max(2 * n - 2, 1)
        m = t % period
        src = np.where(m < n, m, period - m) if n > 1 else np.zeros_like(t)
    else:
        m = t % (2 * n)
        src = np.where(m < n, m, 2 * n - 1 - m)
    return np.where(inside, t, src).astype(np.int64)


@shared
def valid(x, k, out, accumulate):
    """``out`` (``+=`` when ``accumulate``) at positions whose taps all fall inside ``x``:
    ``out[i, j] = sum k[a, b] * x[i + a, j + b]``. Small calls that meet no boundary ('valid'
    correlations, unpadded layers) compile this loop alone; its sums run in :func:`_extended`'s
    order, so the bits are the border loop's."""
    full_width()
    kh, kw = k.shape
    n = out.shape[1]
    for i in range(out.shape[0]):
        dst = out[i]
        if not accumulate:
            _zero(dst)
        for a in range(kh):
            xrow = x[i + a]
            for b in range(kw):
                tap = k[a, b]
                src = xrow[b : b + n]
                for j in range(n):
                    dst[j] += tap * src[j]


@shared
def valid_planes(planes, none, x, k, out, start):
    """:func:`correlate_planes` where every plane's taps fall inside its input, ``k`` as given
    (the input gradient flips it first: no padding is met, so an inf or NaN in it is taken)."""
    _start(out, start)
    for t in range(planes.shape[0]):
        valid(x[planes[t, 0], planes[t, 1]], k[planes[t, 2], planes[t, 3]], out[planes[t, 4], planes[t, 5]], none == 0)
    return True


def inside(x_shape, k_shape, out_shape, p0, p1) -> bool:
    """Whether every tap of every output falls inside the input (no boundary to extend)."""
    return p0 == p1 == 0 and out_shape[-2] + k_shape[-2] <= x_shape[-2] + 1 and out_shape[-1] + k_shape[-1] <= x_shape[-1] + 1


@shared
def small(x, k, out, p0, p1, boundary, fill, none):
    """A whole call on the border loop's body, in one step from Python: small calls. ``none``
    is 0, as for :func:`correlate_planes`."""
    _border_task(none, out.shape[0], x, k, out, p0, p1, boundary, fill, none, none, none, none, none != 0)


@shared
def correlate_planes(planes, p0, p1, flip, none, x, k, out, start):
    """The small stride-1 passes of NCHW layers in one call: ``out[e, f]`` is ``start[f]`` (or
    its own value, for an empty ``start``) plus, for each row ``(a, b, c, d, e, f)`` of
    ``planes`` in turn, the correlation of ``x[a, b]`` with ``k[c, d]`` (flipped both ways when
    ``flip``), zero-padded by ``p0, p1`` as :func:`correlate` defines it. All on one compiled
    loop, the one small corr2d calls run. ``flip`` is the input gradient, a 'full' correlation
    whose padding is not part of the maths: an inf or NaN in ``k`` must not meet it, so that
    call returns False and writes nothing; others return True. ``none`` is 0 (a variable: a
    constant, even the True it makes, would compile a second copy of the body that small
    corr2d calls compile: Numba types a literal argument apart). The arrays come last, so that
    a pass's other arguments can be bound once (:func:`fastcorr.conv.small_passes`)."""
    if flip and not finite_span(k.reshape(-1), np.int64(0), k.size):
        return False
    k = _flipped(k, flip)
    _start(out, start)
    fill = out.dtype.type(0)
    for t in range(planes.shape[0]):
        o = out[planes[t, 4], planes[t, 5]]
        _border_task(none, o.shape[0], x[planes[t, 0], planes[t, 1]], k[planes[t, 2], planes[t, 3]], o, p0, p1,
                     np.int64(FILL), fill, none, none, none, none, none == 0)
    return True


@helper
def _flipped(k, flip):
    """``k`` (N-D, C-contiguous), or a C-contiguous copy of it reversed along its last two axes
    (each kernel's taps in reverse order)."""
    if not flip:
        return k
    taps = k.shape[-2] * k.shape[-1]
    out = np.empty_like(k)
    src, dst = k.reshape((k.size // taps, taps)), out.reshape((k.size // taps, taps))
    for p in range(src.shape[0]):
        for t in range(taps):
            dst[p, t] = src[p, taps - 1 - t]
    return out


@helper
def _start(out, start):
    """Every plane ``out[e, f]`` set to ``start[f]``; none when ``start`` is empty (the sums
    are then added to ``out``)."""
    if start.shape[0] == 0:
        return
    for e in range(out.shape[0]):
        for f in range(out.shape[1]):
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    out[e, f, i, j] = start[f]


@shared
def _border_task(i0, i1, x, k, out, p0, p1, boundary, fill, r0, r1, c0, c1, accumulate):
    full_width()
    ow = out.shape[1]
    ext = np.empty(min(ow, _BLOCK) + k.shape[1] - 1, x.dtype)
    for i in range(i0, i1):
        if not r0 <= i < r1:  # the middle rows' strips are :func:`_strips`'
            for j0 in range(0, ow, _BLOCK):
                _extended(x, k, out[i, j0 : min(j0 + _BLOCK, ow)], ext, i, j0, p0, p1, boundary, fill, accumulate)


@shared
def _strips(i0, i1, x, k, out, p0, c0, c1, columns, fill, accumulate):
    """Rows ``[i0, i1)``, all middle rows, left of the interior and right of it. Their taps read
    the same columns in every row: looked up in ``columns`` (see :func:`strip_columns`), not
    extended row by row."""
    full_width()
    left = c0 + k.shape[1] - 1
    for i in range(i0, i1):
        _strip(x, k, out, i, 0, c0, columns[:left], p0, fill, accumulate)
        _strip(x, k, out, i, c1, out.shape[1], columns[left:], p0, fill, accumulate)


@helper
def _strip(x, k, out, i, lo, hi, columns, p0, fill, accumulate):
    """``out[i, lo:hi]`` (``+=`` when ``accumulate``) of a middle row, whose source rows are all
    inside ``x``; tap ``b`` of output ``j`` reads column ``columns[j - lo + b]`` (-1: ``fill``).
    The sums run in :func:`_extended`'s order, so the bits do not depend on the path."""
    kh, kw = k.shape
    for j in range(lo, hi):
        total = out[i, j] if accumulate else out.dtype.type(0)
        for a in range(kh):
            r = i + a - p0
            for b in range(kw):
                c = columns[j - lo + b]
                total += k[a, b] * (fill if c < 0 else x[r, c])
        out[i, j] = total


@helper
def _extended(x, k, dst, ext, i, j0, p0, p1, boundary, fill, accumulate):
    """``dst`` (``+=`` when ``accumulate``), output row ``i`` from column ``j0`` on: each source
    row extended into the scratch row ``ext`` once, then one pass per tap along it."""
    n = dst.shape[0]
    if n == 0:
        return
    h, w = x.shape
    kh, kw = k.shape
    if not accumulate:
        _zero(dst)
    for a in range(kh):
        krow = k[a]
        r = _source(i + a - p0, h, boundary)
        if r < 0:
            const = krow[0] * fill
            for b in range(1, kw):
                const += krow[b] * fill
            for j in range(n):
                dst[j] += const
            continue
        xrow = x[r]
        for u in range(n + kw - 1):
            c = _source(j0 + u - p1, w, boundary)
            ext[u] = fill if c < 0 else xrow[c]
        for b in range(kw):
            tap = krow[b]
            src = ext[b : b + n]
            for j in range(n):
                dst[j] += tap * src[j]


# Stacks of planes: out[q] = sum over t of the correlation of x[sources[q, t]] with k[t].

@kernel
def stack(x, k, out, sources, p0, p1, boundary, fill, channels, rows):
    """``out[q]`` is the sum over ``t`` of the correlation (as :func:`correlate` defines it) of
    ``x[sources[q, t]]`` with ``k[t]``; a source of -1 is a plane of ``fill`` values. Rows hold
    ``channels`` interleaved planes (an H x W x C image is ``x[0]`` of shape (H, W * C)), each
    correlated on its own; ``channels`` None: one plane, whose loops alone are then compiled.
    A task is ``rows`` output rows of one plane."""
    parts = (out.shape[1] + rows - 1) // rows
    for t in prange(out.shape[0] * parts):
        q, i0, i1 = _stack_rows(np.int64(t), parts, rows, out.shape[1])
        _stack_task(q, i0, i1, x, k, out, sources, p0, p1, boundary, fill, channels)


@kernel
def stack3x3(x, k, out, sources, p0, p1, boundary, fill, rgb, in_place, rows):
    """:func:`stack` for 3x3 kernels on planes of one channel (``rgb`` None) or of three
    interleaved ones (``rgb`` True). When ``in_place`` is True, a row whose three source rows are
    inside reads them in place, the few positions at the row's ends apart; when None, every row
    reads them from the ring. Numba drops the branches on an argument's being None before it
    types a function, so each of the four choices compiles only its own code."""
    parts = (out.shape[1] + rows - 1) // rows
    for t in prange(out.shape[0] * parts):
        q, i0, i1 = _stack_rows(np.int64(t), parts, rows, out.shape[1])
        _stack3x3_task(q, i0, i1, x, k, out, sources, p0, p1, boundary, fill, rgb, in_place)


def stack_loop(kernel_shape, channels, width):
    """The stack loop for kernels of ``kernel_shape`` (products, kh, kw) on rows of ``channels``
    interleaved planes ``width`` positions wide, and the arguments that follow ``fill`` in its
    call (``rows`` apart): ``(channels,)`` for :func:`stack` (None for one), ``(rgb, in_place)``
    for :func:`stack3x3`, so that a call compiles only its own code."""
    if kernel_shape[1:] != (3, 3) or channels not in (1, 3):
        return stack, (None if channels == 1 else channels,)
    # Reading in place costs more at the row's ends than the ring's copy saves on short rows.
    return stack3x3, (None if channels == 1 else True, True if width * channels >= _IN_PLACE_ROW else None)


@scalar
def _stack_rows(t, parts, rows, oh):
    """Task ``t``'s plane and its output rows ``[i0, i1)``."""
    i0 = (t % parts) * rows
    return t // parts, i0, min(i0 + rows, oh)


@shared
def _stack_task(q, i0, i1, x, k, out, sources, p0, p1, boundary, fill, channels):
    """Output row by output row, every product in turn while the row is in L1. Each product
    keeps its last ``kh`` source rows extended by the edge rule in a ring of scratch rows, so
    that a source row is extended once per task and the taps run over whole rows (all
    channels at once: a tap's neighbour is ``channels`` elements on; None: one channel)."""
    full_width()
    c = 1 if channels is None else channels
    products, kh, kw = k.shape
    n = out.shape[2]
    ring = np.empty((products, kh, n + (kw - 1) * c), x.dtype)
    for i in range(i0, i1):
        dst = out[q, i]
        _zero(dst)
        for t in range(products):
            kt = k[t]
            _fill_ring(ring[t], x, sources[q, t], i, p0, p1, boundary, fill, c, i == i0)
            if channels is None:  # one channel: Numba drops the other branches before typing
                for a in range(kh):
                    _accumulate(dst, kt[a], ring[t, (i + a) % kh])
            elif kh == 3 and kw == 3:
                _tile3x3_channels(dst, kt, ring[t, i % 3], ring[t, (i + 1) % 3], ring[t, (i + 2) % 3], channels, True)
            else:
                for a in range(kh):
                    src = ring[t, (i + a) % kh]
                    for b in range(kw):
                        tap = kt[a, b]
                        part = src[b * channels : b * channels + n]
                        for j in range(n):
                            dst[j] += tap * part[j]


@shared
def _stack3x3_task(q, i0, i1, x, k, out, sources, p0, p1, boundary, fill, rgb, in_place):
    """:func:`_stack_task` for :func:`stack3x3`, whose ``rgb`` makes the tap distance a constant
    (see :func:`_channels3x3`)."""
    full_width()
    channels = 1 if rgb is None else 3
    products = k.shape[0]
    h, w = x.shape[1], x.shape[2] // channels
    n = out.shape[2]
    ring = np.empty((products, 3, n + 2 * channels), x.dtype)
    refill = True
    for i in range(i0, i1):
        dst = out[q, i]
        direct = in_place is not None and w >= 3 and i - p0 >= 0 and i + 2 - p0 < h
        for t in range(products):
            s = sources[q, t]
            kt = k[t]
            if in_place is not None:  # a branch Numba drops when None: no in-place code to compile
                if direct and s >= 0:
                    _in_place3x3(dst, kt, x[s], i - p0, p1, w, boundary, fill, rgb, t > 0)
                    continue
            # Every slot is filled on a task's first row and after rows read in place.
            _fill_ring(ring[t], x, s, i, p0, p1, boundary, fill, channels, refill or direct)
            _channels3x3(dst, kt, ring[t, i % 3], ring[t, (i + 1) % 3], ring[t, (i + 2) % 3], rgb, t > 0)
        refill = direct


@helper
def _fill_ring(ring, x, s, i, p0, p1, boundary, fill, channels, whole):
    """The ring's slots for output row ``i`` (source row ``i + a - p0`` in slot ``(i + a) % kh``):
    all ``kh`` of them when ``whole``, else the one new row. Plane ``s`` of ``x`` (-1: ``fill``)."""
    kh = ring.shape[0]
    h, w = x.shape[1], x.shape[2] // channels
    for a in range(kh - 1 if whole else 0, -1, -1):
        r = _source(i + kh - 1 - a - p0, h, boundary)
        slot = ring[(i + kh - 1 - a) % kh]
        if s < 0 or r < 0:
            for u in range(slot.shape[0]):
                slot[u] = fill
        else:
            _extend_row(slot, x[s, r], p1, w, boundary, fill, channels)


#: Rows of at least this many elements (all channels) read their source rows in place in
#: :func:`_stack3x3_task` (measured: 1.4x the ring's time at 256, 0.9x at 2048 and 4096).
_IN_PLACE_ROW = 2048


@shared
def _channels3x3(dst, kt, s0, s1, s2, rgb, add):
    """:func:`_tile3x3_channels` with a literal tap distance, 1 (``rgb`` None) or 3 (a distance
    known only at run time makes the loop four times slower). ``add`` stays a run-time flag: LLVM
    makes a loop for each value (the same machine code as two literal calls, which took Numba
    0.2 s more to compile)."""
    full_width()
    if rgb is None:
        _tile3x3_channels(dst, kt, s0, s1, s2, 1, add)
    else:
        _tile3x3_channels(dst, kt, s0, s1, s2, 3, add)


@helper
def _in_place3x3(dst, kt, plane, r, p1, w, boundary, fill, rgb, add):
    """:func:`_channels3x3` of source rows ``r .. r + 2`` of ``plane`` (all inside), read in
    place; the ``p1`` positions on the left and ``2 - p1`` on the right, whose taps leave the
    row, on :func:`_ends3x3`."""
    channels = 1 if rgb is None else 3
    _ends3x3(dst, kt, plane, r, p1, w, boundary, fill, rgb, add)
    # Output position p1 on (up to w - 2 + p1) reads source positions 0 on.
    _channels3x3(dst[p1 * channels : (w - 2 + p1) * channels], kt, plane[r], plane[r + 1], plane[r + 2], rgb, add)


@shared
def _ends3x3(dst, kt, plane, r, p1, w, boundary, fill, rgb, add):
    """The positions of :func:`_in_place3x3` whose taps leave the row, each tap's column by the
    edge rule, the sum in :func:`_tile3x3_channels`' order."""
    channels = 1 if rgb is None else 3
    s0, s1, s2 = plane[r], plane[r + 1], plane[r + 2]
    for m in range(2):
        u = m if m < p1 else w - 2 + m  # positions [0, p1) and [w - 2 + p1, w)
        t0, t1, t2 = _source(u - p1, w, boundary), _source(u + 1 - p1, w, boundary), _source(u + 2 - p1, w, boundary)
        for v in range(channels):
            a0 = fill if t0 < 0 else s0[t0 * channels + v]
            a1 = fill if t1 < 0 else s0[t1 * channels + v]
            a2 = fill if t2 < 0 else s0[t2 * channels + v]
            b0 = fill if t0 < 0 else s1[t0 * channels + v]
            b1 = fill if t1 < 0 else s1[t1 * channels + v]
            b2 = fill if t2 < 0 else s1[t2 * channels + v]
            c0 = fill if t0 < 0 else s2[t0 * channels + v]
            c1 = fill if t1 < 0 else s2[t1 * channels + v]
            c2 = fill if t2 < 0 else s2[t2 * channels + v]
            total = ((kt[0, 0] * a0 + kt[0, 1] * a1 + kt[0, 2] * a2)
                     + (kt[1, 0] * b0 + kt[1, 1] * b1 + kt[1, 2] * b2)
                     + (kt[2, 0] * c0 + kt[2, 1] * c1 + kt[2, 2] * c2))
            j = u * channels + v
            dst[j] = dst[j] + total if add else total


@helper
def _extend_row(ext, row, p, n, boundary, fill, channels):
    """``ext`` = ``row`` (``n`` positions of ``channels`` interleaved values) from position
    ``-p`` on, positions past ``[0, n)`` by the edge rule."""
    m = ext.shape[0] // channels
    lo = min(max(p, 0), m)
    hi = min(max(p + n, lo), m)
    inside = ext[lo * channels : hi * channels]
    part = row[(lo - p) * channels : (hi - p) * channels]
    for u in range(inside.shape[0]):
        inside[u] = part[u]
    for u in range(lo):
        _extend_position(ext, row, u, u - p, n, boundary, fill, channels)
    for u in range(hi, m):
        _extend_position(ext, row, u, u - p, n, boundary, fill, channels)


@helper
def _extend_position(ext, row, u, position, n, boundary, fill, channels):
    """Every channel of ``ext`` at ``u`` from ``row`` at ``position``, by the edge rule."""
    c = _source(position, n, boundary)
    for v in range(channels):
        ext[u * channels + v] = fill if c < 0 else row[c * channels + v]


# Row helpers, inlined into the bodies that call them.

@helper
def _accumulate(dst, krow, src):
    """``dst[j] += sum_b krow[b] * src[j + b]``: a 1-D 'valid' correlation added into ``dst``,
    for any width (interiors narrower than the kernel run faster on :func:`dots`)."""
    n, kw = dst.shape[0], krow.shape[0]
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
def _tile3x3(dst, k, s0, s1, s2):
    """``dst[j] = sum over a, b < 3 of k[a, b] * s_a[j + b]``, all nine taps in registers, by
    blocks of :data:`ROW_BLOCK` outputs (a row narrower than a block in one loop: the same sums)."""
    a0, a1, a2 = k[0, 0], k[0, 1], k[0, 2]
    b0, b1, b2 = k[1, 0], k[1, 1], k[1, 2]
    c0, c1, c2 = k[2, 0], k[2, 1], k[2, 2]
    n = dst.shape[0]
    if n < ROW_BLOCK:
        for j in range(n):
            dst[j] = ((a0 * s0[j] + a1 * s0[j + 1] + a2 * s0[j + 2])
                      + (b0 * s1[j] + b1 * s1[j + 1] + b2 * s1[j + 2])
                      + (c0 * s2[j] + c1 * s2[j + 1] + c2 * s2[j + 2]))
        return
    for start in range(0, n, ROW_BLOCK):
        j0 = max(min(start, n - ROW_BLOCK), 0)  # never negative: no wraparound checks in the loop
        for j in range(j0, j0 + ROW_BLOCK):
            dst[j] = ((a0 * s0[j] + a1 * s0[j + 1] + a2 * s0[j + 2])
                      + (b0 * s1[j] + b1 * s1[j + 1] + b2 * s1[j + 2])
                      + (c0 * s2[j] + c1 * s2[j + 1] + c2 * s2[j + 2]))


@helper
def _tile3x3_channels(dst, k, s0, s1, s2, d, add):
    """:func:`_tile3x3`'s sum with taps ``d`` elements apart (interleaved channels), written
    into ``dst`` or, when ``add``, added to it."""
    a0, a1, a2 = k[0, 0], k[0, 1], k[0, 2]
    b0, b1, b2 = k[1, 0], k[1, 1], k[1, 2]
    c0, c1, c2 = k[2, 0], k[2, 1], k[2, 2]
    e = 2 * d
    for j in range(dst.shape[0]):
        total = ((a0 * s0[j] + a1 * s0[j + d] + a2 * s0[j + e])
                 + (b0 * s1[j] + b1 * s1[j + d] + b2 * s1[j + e])
                 + (c0 * s2[j] + c1 * s2[j + d] + c2 * s2[j + e]))
        dst[j] = dst[j] + total if add else total


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


# Per-element helpers, inlined.

@scalar
def _source(t, n, boundary):
    """Index of ``x`` that extended position ``t`` reads, or -1 for the fill value."""
    if 0 <= t < n:
        return t
    if boundary == FILL:
        return -1
    if boundary == WRAP:
        return t % n
    if boundary == NEAREST:
        return 0 if t < 0 else n - 1
    if boundary == MIRROR:
        if n == 1:
            return 0
        t = t % (2 * n - 2)
        return t if t < n else 2 * n - 2 - t
    t = t % (2 * n)
    return t if t < n else 2 * n - 1 - t


@helper
def _zero(a):
    for j in range(a.shape[0]):
        a[j] = 0


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
