"""Winograd F(4x4, 3x3) convolution (Lavin & Gray, 2016): stride 1, dilation 1, one group; and
F(3x3, 4x4) for its weight gradient (below :func:`weight_grad`).

Each 4x4 block of output (a *tile*) of output channel ``o`` is ``A^T [sum_c U[o, c] . V[c]] A``
with ``V[c] = B^T d B`` the transform of the tile's 6x6 input patch ``d`` of channel ``c`` and
``U[o, c] = G w[o, c] G^T`` the transform of the 3x3 kernel: 36 multiplies per tile and channel
pair instead of 144. For the 36 transform points ``xi`` the sums over channels are a batch of
products ``M[xi] = U[xi] @ V[xi]`` (output channels by input channels, by tiles): GEMMs on the
register tile :func:`fastcorr._kernels.simd.tile`.

A task takes a chunk of ``TILE_VECTORS * lanes`` consecutive tiles (numbered over images,
tile rows and tile columns) and keeps everything it makes in its thread's scratch: the
transformed patches of every channel (:func:`transform_input`, a vector of tiles at a time,
loaded from the zero-padded input a :func:`group` of neighbouring tiles at a time), the
products, and then the output transform (:func:`transform_output`), which adds the bias and
writes each tile's part inside the output, the rest of a tile at the bottom and right edges
masked off. A row of tiles is a whole number of groups: the tiles past the right edge that
this adds read zeros and are not stored.

The transforms mix every value of a patch into every output of its tile, so an inf or NaN
spreads over whole tiles (inf - inf is NaN): callers that want direct convolution's placement
of non-finite values take direct convolution for them.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from fastcorr._kernels import kernel, scratch, shared, simd
from fastcorr._kernels.conv import add_parts, kept, laid_channels_last, padded_planes
from fastcorr._kernels.simd import flat, full_width, narrow_tile, tile

#: Outputs per tile side, and the side of the input patch a tile reads.
M = 4
PATCH = M + 2
POINTS = PATCH * PATCH

#: ``U = G w G^T``: the kernel transform.
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def input_1d(ops, d):
    """``B^T d`` for the six values ``d``, in ``ops``' arithmetic (shared terms computed once)."""
    a, b = ops.fma(-4, d[2], d[4]), ops.fma(-4, d[1], d[3])
    c, e = ops.sub(d[4], d[2]), ops.scale(2, ops.sub(d[3], d[1]))
    return [ops.fma(4, d[0], ops.fma(-5, d[2], d[4])), ops.add(a, b), ops.sub(a, b),
            ops.add(c, e), ops.sub(c, e), ops.fma(4, d[1], ops.fma(-5, d[3], d[5]))]


def output_1d(ops, m):
    """``A^T m`` for the six values ``m``: four outputs."""
    s, d = ops.add(m[1], m[2]), ops.sub(m[1], m[2])
    t, e = ops.add(m[3], m[4]), ops.sub(m[3], m[4])
    return [ops.add(ops.add(m[0], s), t), ops.fma(2, e, d), ops.fma(4, t, s), ops.add(ops.fma(8, e, d), m[5])]


def gradient_1d(ops, a):
    """``A a`` for the four values ``a`` (``A`` the transpose of :func:`output_1d`'s ``A^T``): six values."""
    s, t = ops.add(a[0], a[2]), ops.add(a[1], a[3])
    u, v = ops.fma(4, a[2], a[0]), ops.fma(8, a[3], ops.scale(2, a[1]))
    return [a[0], ops.add(s, t), ops.sub(s, t), ops.add(u, v), ops.sub(u, v), a[3]]


def _two_d(one_d, grid):
    """``one_d`` down the columns of ``grid`` (a list of rows), then along the rows."""
    columns = [one_d([row[j] for row in grid]) for j in range(len(grid[0]))]
    return [one_d([column[i] for column in columns]) for i in range(len(columns[0]))]


#: ``GG[p * 6 + q, a * 3 + b] = G[p, a] * G[q, b]``: one product by it transforms a flattened 3x3 kernel.
_GG = np.kron(G, G)
#: Columns per product by :data:`_GG`: 36 x 9 x 512 multiply-adds stay below OpenBLAS's threshold
#: for threads (262144). A larger product ran on its threads, whose spinning after it slowed the
#: parallel pass that follows (N8 C64 56² float32 forward 5.5-6.0 -> 8.0-11.9 ms).
_PRODUCT_COLUMNS = 512


def transformed_weights(weight, blocks):
    """``U[xi][o, c] = (G w[o, c] G^T)[xi]``, computed in float64 and packed for
    :func:`fastcorr._kernels.simd.tile`: point ``xi``, block ``ob`` of ``TILE_ROWS`` output
    channels, input channel ``c``, row ``i`` of the block (zeros past O). Products by
    :data:`_GG` of the kernels' taps laid out in that order: as fast as a compiled loop, and a
    first Winograd call has that loop's 0.4-0.7 s less to compile."""
    mr = simd.TILE_ROWS
    o_count, c_count = weight.shape[:2]
    whole = o_count // mr
    taps = np.zeros((9, blocks, c_count, mr))
    by_rows = taps.transpose(0, 1, 3, 2)  # a view: tap, block, row of the block, input channel
    weights = weight.reshape(o_count, c_count, 9).transpose(2, 0, 1)
    by_rows[:, :whole] = weights[:, : whole * mr].reshape(9, whole, mr, c_count)
    if whole < blocks:
        by_rows[:, whole, : o_count - whole * mr] = weights[:, whole * mr :]
    taps = taps.reshape(9, -1)
    packed = np.empty((POINTS, taps.shape[1]), weight.dtype)
    for first in range(0, taps.shape[1], _PRODUCT_COLUMNS):
        packed[:, first : first + _PRODUCT_COLUMNS] = _GG @ taps[:, first : first + _PRODUCT_COLUMNS]
    return packed.ravel()


class _VectorOps:
    """:func:`input_1d` and :func:`output_1d` on LLVM vectors."""

    def __init__(self, builder, vector, fma):
        self.builder, self.vector, self.fma_ = builder, vector, fma

    def constant(self, k):
        return ir.Constant(self.vector, [ir.Constant(self.vector.element, float(k))] * self.vector.count)

    def add(self, a, b):
        return self.builder.fadd(a, b)

    def sub(self, a, b):
        return self.builder.fsub(a, b)

    def scale(self, k, a):
        return self.builder.fmul(self.constant(k), a)

    def fma(self, k, a, b):
        return self.builder.call(self.fma_, [self.constant(k), a, b])


def group(count: int) -> int:
    """Tiles per group: the tiles whose patch rows one vector load covers (four values each)."""
    return max(1, count // M)


def _picked(builder, sources, lane_of, count):
    """A vector of ``count`` lanes, lane ``l`` taken from ``sources[l // size]`` (equal vectors)
    at ``lane_of(l % size)``, where ``size = count // len(sources)``: shuffles of two sources at
    a time, then of the halves so made (lanes a shuffle does not fill take lane 0, then are replaced)."""
    i32 = ir.IntType(32)
    width, size = sources[0].type.count, count // len(sources)
    parts = []
    for j in range(0, len(sources), 2):
        pair = sources[j : j + 2]
        mask = [None] * count
        for g in range(len(pair)):
            for k in range(size):
                mask[(j + g) * size + k] = g * width + lane_of(k)
        parts.append((builder.shuffle_vector(pair[0], pair[-1], ir.Constant(
            ir.VectorType(i32, count), [m or 0 for m in mask])), set(range(j, j + len(pair)))))
    while len(parts) > 1:
        merged = []
        for (a, left), (b, right) in zip(parts[0::2], parts[1::2]):
            mask = [l if l // size in left else count + l if l // size in right else None for l in range(count)]
            merged.append((builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, count),
                                                                    [m or 0 for m in mask])), left | right))
        parts = merged + parts[len(merged) * 2 :]
    return parts[0][0]


def _group_starts(context, builder, array_type, array, table_type, table, first, base, groups, size):
    """Element pointers ``array + table[first + g * size] + base`` for ``g < groups``."""
    data = context.make_array(array_type)(context, builder, value=array).data
    entries = context.make_array(table_type)(context, builder, value=table).data
    return [builder.gep(data, [builder.add(builder.load(builder.gep(entries, [
        builder.add(first, ir.Constant(ir.IntType(64), g * size))])), base)]) for g in range(groups)]


@intrinsic
def transform_input(typingctx, v, v_off, ldv, x, x_at, first, base, pitch):
    """``v[v_off + xi * ldv + l] = (B^T d B)[xi]`` for one vector of tiles ``l``, where ``d`` is
    the 6x6 patch ``x[x_at[first + l] + base + r * pitch + s]``, ``r, s < 6``. The tiles come in
    groups of :func:`group` side by side in a row (``x_at[first + l]`` is ``4 * (l % size)`` past
    the group's first, the only one read): each row of a group's patches is two vector loads,
    dealt out to the tiles' six columns by shuffles."""
    dtype = simd.float_operands("transform_input", ((v, "v"), (x, "x")), ((x_at, "x_at"),))
    count = simd.lanes(dtype.bitwidth // 8)
    size = group(count)

    def codegen(context, builder, sig, args):
        t = sig.args
        i64 = ir.IntType(64)
        vector, fma, _, store = simd._vectors(context, builder, dtype, count)
        _, _, load, _ = simd._vectors(context, builder, dtype, M * size)

        def intp(i):
            return context.cast(builder, args[i], t[i], types.intp)

        starts = _group_starts(context, builder, t[3], args[3], t[4], args[4], intp(5), intp(6), count // size, size)
        patch = []
        for r in range(PATCH):
            rows = [builder.gep(start, [builder.mul(intp(7), ir.Constant(i64, r))]) for start in starts]
            left = [load(row) for row in rows]  # values 0 .. 4 * size - 1 of the group's row
            right = [load(builder.gep(row, [ir.Constant(i64, 2)])) for row in rows]  # values 2 .. 4 * size + 1
            patch.append([_picked(builder, left, lambda k, s=s: M * k + s, count) if s < 2 else
                          _picked(builder, right, lambda k, s=s: M * k + s - 2, count) for s in range(PATCH)])
        values = _two_d(lambda d: input_1d(_VectorOps(builder, vector, fma), d), patch)
        target = simd._pointer(context, builder, t[0], args[0], args[1], t[1])
        ldv_ = intp(2)
        for i in range(PATCH):
            for j in range(PATCH):
                store(values[i][j], builder.gep(target, [builder.mul(ldv_, ir.Constant(i64, i * PATCH + j))]))
        return context.get_dummy_value()

    return types.none(v, v_off, ldv, x, x_at, first, base, pitch), codegen


@intrinsic
def transform_output(typingctx, out, base, m, m_off, ldm, bias, y_at, rows, columns, first, pitch):
    """``out[y_at[first + l] + base + p * pitch + q] = (A^T m A)[p, q] + bias`` for one vector of
    tiles ``l`` and ``p < rows[first + l]``, ``q < columns[first + l]``, where point ``xi`` of
    tile ``l`` is ``m[m_off + xi * ldm + l]``. The tiles come in groups as for
    :func:`transform_input` (only the first ``y_at`` of a group is read): a row of a group's
    outputs is one masked vector store."""
    dtype = simd.float_operands("transform_output", ((out, "out"), (m, "m")),
                                ((y_at, "y_at"), (rows, "rows"), (columns, "columns")))
    count = simd.lanes(dtype.bitwidth // 8)
    size = group(count)
    width = M * size

    def codegen(context, builder, sig, args):
        t = sig.args
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vector, fma, load, _ = simd._vectors(context, builder, dtype, count)

        def intp(i):
            return context.cast(builder, args[i], t[i], types.intp)

        source = simd._pointer(context, builder, t[2], args[2], args[3], t[3])
        ldm_ = intp(4)
        points = [[load(builder.gep(source, [builder.mul(ldm_, ir.Constant(i64, i * PATCH + j))]))
                   for j in range(PATCH)] for i in range(PATCH)]
        values = _two_d(lambda d: output_1d(_VectorOps(builder, vector, fma), d), points)
        shift = simd._splat(builder, context.cast(builder, args[5], t[5], dtype), vector)
        first = intp(9)
        starts = _group_starts(context, builder, t[0], args[0], t[6], args[6], first, intp(1), count // size, size)
        index = ir.VectorType(i64, count)

        def limit(i):
            table = context.make_array(t[i])(context, builder, value=args[i]).data
            return builder.load(builder.bitcast(builder.gep(table, [first]), index.as_pointer()), align=8)

        rows_, columns_ = limit(7), limit(8)
        segment = ir.VectorType(vector.element, width)
        store = simd._masked(builder, segment, "store")
        wide = ir.VectorType(i64, width)
        quarters = ir.Constant(wide, [j % M for j in range(width)])
        # Lane j = 4 k + q of group g's vectors: column q of tile g * size + k.
        spread = [ir.Constant(ir.VectorType(i32, width), [g * size + j // M for j in range(width)])
                  for g in range(count // size)]
        columns_in = [builder.icmp_signed("<", quarters, builder.shuffle_vector(columns_, columns_, lanes))
                      for lanes in spread]
        rows_of = [builder.shuffle_vector(rows_, rows_, lanes) for lanes in spread]
        both = ir.Constant(ir.VectorType(i32, 2 * count), list(range(2 * count)))
        pitch_, align = intp(10), ir.Constant(i32, dtype.bitwidth // 8)
        for p in range(M):
            row = [builder.fadd(values[p][q], shift) for q in range(M)]
            halves = builder.shuffle_vector(row[0], row[1], both), builder.shuffle_vector(row[2], row[3], both)
            for g, start in enumerate(starts):
                outputs = builder.shuffle_vector(*halves, ir.Constant(ir.VectorType(i32, width), [
                    j % M * count + g * size + j // M for j in range(width)]))
                mask = builder.and_(columns_in[g], builder.icmp_signed(">", rows_of[g], ir.Constant(wide, [p] * width)))
                at = builder.bitcast(builder.gep(start, [builder.mul(pitch_, ir.Constant(i64, p))]), segment.as_pointer())
                builder.call(store, [outputs, at, align, mask])
        return context.get_dummy_value()

    return types.none(out, base, m, m_off, ldm, bias, y_at, rows, columns, first, pitch), codegen


def chunk(itemsize: int) -> int:
    """Tiles per task: one register tile's width."""
    return simd.TILE_VECTORS * simd.lanes(itemsize)


#: Channels per pass over a chunk: the transformed patches of ``C_BLOCK`` input channels and the
#: products for about ``O_BLOCK`` output channels stay in L2 (with the weights they meet streaming
#: through); more output channels transform the patches again. Each block of input channels is a
#: fresh sum, added to the others: a float32 chain of FMAs over hundreds of channels would cost
#: the accuracy contract (its error, amplified by the output transform, grows with the length).
C_BLOCK, O_BLOCK = 64, 64


def forward(x, weight, bias, out, pt, pl, work, finite_only=False):
    """``out = conv2d(x, weight, bias)`` with top and left zero padding ``pt, pl`` (the bottom and
    right padding follow from ``out``'s size), for a 3x3 ``weight`` of one group; ``work``
    multiply-adds pick the twin. With ``finite_only``, None (and nothing computed) when ``x``
    holds an inf or NaN, found while it is padded."""
    (n_batch, c_count), (o_count, oh, ow) = x.shape[:2], out.shape[1:]
    mr = simd.TILE_ROWS
    # A row of tiles is a whole number of groups (those past the output are computed, not stored).
    size = group(simd.lanes(x.dtype.itemsize))
    tiles_y, tiles_x = -(-oh // M), -(-ow // (M * size)) * size
    pitch = tiles_x * M + 2
    plane = (tiles_y * M + 2) * pitch
    xp, finite = padded_planes(x, plane, pt, pl, pitch, work, check=finite_only)
    if finite_only and not finite:
        return None
    packed = transformed_weights(weight, -(-o_count // mr))
    t_count = chunk(x.dtype.itemsize)
    c_block = min(c_count, C_BLOCK)
    o_block = min(-(-o_count // mr), max(1, O_BLOCK // mr)) * mr
    ldv, ldm = (simd.odd_lines(n * t_count, x.dtype.itemsize) for n in (c_block, o_block))
    total = n_batch * tiles_y * tiles_x
    tasks = -(-total // t_count)
    twin = forward_chunks.pick(work)
    slots = min(tasks, numba.get_num_threads()) if twin is forward_chunks.parallel else 1
    space = scratch.empty((slots, POINTS * (ldv + (2 if c_count > c_block else 1) * ldm)), x.dtype)
    lanes = np.empty((slots, 4, t_count), np.int64)
    offsets = np.arange(c_block, dtype=np.int64) * t_count
    twin(xp.reshape(-1), packed, offsets, bias, out, space, lanes, tasks, total, pitch, plane, tiles_x,
         tiles_y * tiles_x, c_count, o_block, ldv, ldm, simd.lanes(x.dtype.itemsize))
    return out


@kernel
def forward_chunks(xp, packed, offsets, bias, out, work, lanes, tasks, total, pitch, plane, tiles_x, per_image, c_count,
                   o_block, ldv, ldm, count):
    """Slot ``s`` (its scratch ``work[s]``, ``lanes[s]``) runs tasks ``s, s + slots, ...``."""
    slots = work.shape[0]
    for slot in prange(slots):
        for task in range(np.int64(slot), tasks, slots):
            _chunk(task, xp, packed, offsets, bias, out, work[slot], lanes[slot], total, pitch, plane, tiles_x,
                   per_image, c_count, o_block, ldv, ldm, count)


@shared
def _chunk(task, xp, packed, offsets, bias, out, work, lanes, total, pitch, plane, tiles_x, per_image, c_count, o_block,
           ldv, ldm, count):
    """Tiles ``task * t_count ...`` of ``total``, in blocks of ``offsets.shape[0]`` input channels
    and ``o_block`` output channels; ``count`` is the vector's lanes."""
    full_width()
    mr = simd.TILE_ROWS
    c_block = offsets.shape[0]
    o_count, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    t_count = lanes.shape[1]
    blocks = (o_count + mr - 1) // mr
    x_at, y_at, rows, columns = lanes[0], lanes[1], lanes[2], lanes[3]
    for lane in range(t_count):
        t = task * t_count + lane
        if t < total:
            n, rest = t // per_image, t % per_image
            y0, x0 = M * (rest // tiles_x), M * (rest % tiles_x)
            x_at[lane] = n * c_count * plane + y0 * pitch + x0
            y_at[lane] = n * o_count * oh * ow + y0 * ow + x0
            rows[lane], columns[lane] = min(M, oh - y0), min(M, ow - x0)
        else:  # a whole group past the last tile (the tiles are whole groups): group 0's patches again, not stored
            x_at[lane], y_at[lane], rows[lane], columns[lane] = x_at[0], 0, 0, 0
    v = work[: POINTS * ldv]
    products = work[POINTS * ldv : POINTS * (ldv + ldm)]
    partial = work[POINTS * (ldv + ldm) :]
    flat_out = flat(out)
    for o0 in range(0, o_count, o_block):
        o1 = min(o_count, o0 + o_block)
        for c0 in range(0, c_count, c_block):
            cn = min(c_block, c_count - c0)
            for c in range(cn):
                for first in range(0, t_count, count):
                    transform_input(v, c * t_count + first, ldv, xp, x_at, first, (c0 + c) * plane, pitch)
            sums = products if c0 == 0 else partial
            for xi in range(POINTS):
                for ob in range(o0 // mr, (o1 + mr - 1) // mr):
                    tile(sums, xi * ldm + (ob * mr - o0) * t_count, t_count, packed,
                         ((xi * blocks + ob) * c_count + c0) * mr, v, xi * ldv, offsets, cn, min(mr, o_count - ob * mr),
                         False)
            if c0 > 0:
                for xi in range(POINTS):
                    start, length = xi * ldm, (o1 - o0) * t_count
                    dst, src = products[start : start + length], partial[start : start + length]
                    for j in range(length):  # zero-based, as the other accumulation loops
                        dst[j] += src[j]
        for o in range(o0, o1):
            for first in range(0, t_count, count):
                transform_output(flat_out, o * oh * ow, products, (o - o0) * t_count + first, ldm, bias[o], y_at, rows,
                                 columns, first, ow)


# The weight gradient, F(3x3, 4x4): the same bilinear form as the forward pass with the roles of
# the kernel and the output swapped. Over 4x4 tiles of dY (``D``) and the 6x6 patches of the
# input they meet (``X``), ``dW[o, c] = G^T [sum over tiles of (A D[o] A^T) . (B^T X[c] B)] G``:
# 36 multiplies per tile and channel pair instead of 144. The sums over tiles are a batch of 36
# products (output channels by input channels, depth the tiles) on the register tile; the
# transforms run on both operands laid out channels last, ``TILE_ROWS`` channels per vector, and
# write each point's values straight into the layout the tile reads: its left operand packed by
# blocks of rows, its right one a row of channels per tile. The tile's rows are the operand whose
# channels keep more of it. The last transform, ``G^T . G``, is done in float64 by the caller.


def _pixels_transform(side, one_d, name):
    """An intrinsic ``(dst, d_off, ld, src, s_off, pitch, channels)``::

        dst[d_off + xi * ld + i] = (T p T^T)[xi]   for i < TILE_ROWS

    where ``p[r, s] = src[s_off + (r * pitch + s) * channels + i]`` is a ``side x side`` patch of
    pixels of ``channels`` values and ``T`` is ``one_d``'s matrix (six rows)."""

    @intrinsic
    def transform(typingctx, dst, d_off, ld, src, s_off, pitch, channels):
        dtype = simd.float_operands(name, ((dst, "dst"), (src, "src")))

        def codegen(context, builder, sig, args):
            t = sig.args
            i64 = ir.IntType(64)
            vector, fma, load, store = simd._vectors(context, builder, dtype, simd.TILE_ROWS)

            def intp(i):
                return context.cast(builder, args[i], t[i], types.intp)

            source = simd._pointer(context, builder, t[3], args[3], args[4], t[4])
            step, pixel = builder.mul(intp(5), intp(6)), intp(6)
            patch = [[load(builder.gep(source, [builder.add(builder.mul(step, ir.Constant(i64, r)),
                                                            builder.mul(pixel, ir.Constant(i64, q)))]))
                      for q in range(side)] for r in range(side)]
            values = _two_d(lambda d: one_d(_VectorOps(builder, vector, fma), d), patch)
            target = simd._pointer(context, builder, t[0], args[0], args[1], t[1])
            ld_ = intp(2)
            for i in range(PATCH):
                for j in range(PATCH):
                    store(values[i][j], builder.gep(target, [builder.mul(ld_, ir.Constant(i64, i * PATCH + j))]))
            return context.get_dummy_value()

        return types.none(dst, d_off, ld, src, s_off, pitch, channels), codegen

    return transform


input_patch = _pixels_transform(PATCH, input_1d, "input_patch")
gradient_tile = _pixels_transform(M, gradient_1d, "gradient_tile")

#: Bytes of the transformed operands of one chunk of tiles (both in a thread's L2).
_CHUNK_BYTES = 1 << 19
#: Parts of the tiles, each summed on its own and then added in order: the same bits on any number of threads.
#: Fewer (two at least) where their sums of every point and channel pair would pass ``_SUMS_BYTES``.
_PARTS, _SUMS_BYTES = 4, 1 << 26
#: Tiles per run of fused multiply-adds: each point's products are summed over at most this many
#: tiles and then added to the part's sums (one float32 chain over a part's thousands of tiles
#: would cost the accuracy contract: 5e-5 of the largest value over 1568 tiles, measured).
_RUN = 128


def weight_grad(x, dy, dw, pt, pl, work, finite_only=False):
    """``dw = conv2d_weight_grad(x, dy)`` for a 3x3 kernel of one group, stride 1, with top and
    left zero padding ``pt, pl``; ``work`` multiply-adds pick the twin. With ``finite_only``, None
    (and nothing computed) when ``x`` or ``dy`` holds an inf or NaN, found while they are laid out."""
    (n_batch, c_count), (o_count, oh, ow) = x.shape[:2], dy.shape[1:]
    mr, width = simd.TILE_ROWS, simd.TILE_VECTORS * simd.lanes(x.dtype.itemsize)
    tiles_y, tiles_x = -(-oh // M), -(-ow // M)
    xh, finite = laid_channels_last(x, M * tiles_y + 2, M * tiles_x + 2, pt, pl, mr, work, finite_only)
    if finite_only and not finite:
        return None
    dyh, finite = laid_channels_last(dy, M * tiles_y, M * tiles_x, 0, 0, mr, work, finite_only)
    if finite_only and not finite:
        return None
    by_input = kept(c_count, o_count, x.dtype.itemsize) > kept(o_count, c_count, x.dtype.itemsize)
    rows, columns = (c_count, o_count) if by_input else (o_count, c_count)
    rows_pad, stride, wide = -(-rows // mr) * mr, -(-columns // mr) * mr, -(-columns // width) * width
    if wide - columns >= simd.lanes(x.dtype.itemsize):
        wide -= simd.lanes(x.dtype.itemsize)  # the last columns on the narrow tile
    size = max(16, min(_RUN, _CHUNK_BYTES // (POINTS * (rows_pad + stride) * x.dtype.itemsize)))
    total = n_batch * tiles_y * tiles_x
    chunks = -(-total // size)
    parts = min(chunks, _PARTS, max(2, _SUMS_BYTES // (POINTS * rows_pad * wide * x.dtype.itemsize)))
    twin = weight_grad_chunks.pick(work)
    slots = min(parts, numba.get_num_threads()) if twin is weight_grad_chunks.parallel else 1
    totals = scratch.empty((parts, POINTS, rows_pad, wide), x.dtype)
    left_ld, right_ld = (simd.odd_lines(n, x.dtype.itemsize) for n in (rows_pad * size, size * stride + width))
    space = scratch.empty((slots, POINTS * (left_ld + right_ld + rows_pad * wide)), x.dtype)
    at = np.empty((slots, 2, size), np.int64)
    offsets = np.arange(size, dtype=np.int64) * stride
    twin(xh, dyh, totals, space, at, offsets, chunks, total, c_count, o_count, tiles_y, tiles_x, by_input, left_ld,
         right_ld, max(1, _RUN // size), width)
    sums = totals[0, :, :rows, :columns].astype(np.float64).reshape(PATCH, PATCH, rows, columns)
    grad = np.tensordot(np.tensordot(G, sums, axes=(0, 0)), G, axes=(1, 0))  # (a, rows, columns, b)
    dw[...] = grad.transpose((2, 1, 0, 3) if by_input else (1, 2, 0, 3))
    return dw


@kernel
def weight_grad_chunks(xh, dyh, totals, work, at, offsets, chunks, total, c_count, o_count, tiles_y, tiles_x, by_input,
                       left_ld, right_ld, run, width):
    """Slot ``s`` (scratch ``work[s]``, ``at[s]``) runs parts ``s, s + slots, ...``; then the parts'
    sums are added, in order, into ``totals[0]``."""
    slots, parts = work.shape[0], totals.shape[0]
    for slot in prange(slots):
        for part in range(np.int64(slot), parts, slots):
            first, last = part * chunks // parts, (part + 1) * chunks // parts
            _weight_grad_tiles(first, last, xh, dyh, totals[part], work[slot], at[slot], offsets, total, c_count,
                              o_count, tiles_y, tiles_x, by_input, left_ld, right_ld, run, width)
    add_parts(totals)


@shared
def _weight_grad_tiles(first, last, xh, dyh, sums, work, at, offsets, total, c_count, o_count, tiles_y, tiles_x,
                      by_input, left_ld, right_ld, run, width):
    """``sums[xi, r, c]``: the products of point ``xi`` summed over chunks ``first .. last - 1`` of
    tiles, ``run`` chunks at a time. ``work`` holds the left operand (``left_ld`` per point: blocks
    of ``TILE_ROWS`` rows by tiles), the right one (``right_ld`` per point: a row of channels per
    tile, and room for the tile's last ``width`` columns) and the run's sums."""
    full_width()
    mr = simd.TILE_ROWS
    size = at.shape[1]
    rows_pad, wide = sums.shape[1], sums.shape[2]
    rows = c_count if by_input else o_count
    stride = offsets[1]
    left = work[: POINTS * left_ld]
    right = work[POINTS * left_ld : POINTS * (left_ld + right_ld)]
    block = work[POINTS * (left_ld + right_ld) :]
    # Where channel block b of tile p goes: in the left operand by blocks of rows, in the right a row per tile.
    x_out, x_block, x_tile, x_ld = (left, size * mr, mr, left_ld) if by_input else (right, mr, stride, right_ld)
    d_out, d_block, d_tile, d_ld = (right, mr, stride, right_ld) if by_input else (left, size * mr, mr, left_ld)
    hx, wx, hd, wd = M * tiles_y + 2, M * tiles_x + 2, M * tiles_y, M * tiles_x
    per_image = tiles_y * tiles_x
    flat_sums = flat(sums)
    flat_sums[:] = 0
    # Values the tile reads and drops (rows past the last of a block, columns past the last
    # tile's channels) must not be subnormal: they would slow every multiply they meet.
    block[:] = 0
    for xi in range(POINTS):
        right[xi * right_ld + size * stride : (xi + 1) * right_ld] = 0
    x_at, d_at = at[0], at[1]
    for chunk in range(first, last):
        t0 = chunk * size
        count = min(size, total - t0)
        for p in range(count):
            n, rest = (t0 + p) // per_image, (t0 + p) % per_image
            y0, x0 = M * (rest // tiles_x), M * (rest % tiles_x)
            x_at[p] = ((n * hx + y0) * wx + x0) * c_count
            d_at[p] = ((n * hd + y0) * wd + x0) * o_count
        for p in range(count):
            for b in range((c_count + mr - 1) // mr):
                input_patch(x_out, b * x_block + p * x_tile, x_ld, xh, x_at[p] + b * mr, wx, c_count)
            for b in range((o_count + mr - 1) // mr):
                gradient_tile(d_out, b * d_block + p * d_tile, d_ld, dyh, d_at[p] + b * mr, wd, o_count)
        fresh = (chunk - first) % run == 0
        for xi in range(POINTS):
            for rb in range(rows_pad // mr):
                valid = min(mr, rows - rb * mr)
                for c0 in range(0, wide, width):
                    if c0 + width <= wide:
                        tile(block, (xi * rows_pad + rb * mr) * wide + c0, wide, left, xi * left_ld + rb * size * mr,
                             right, xi * right_ld + c0, offsets, count, valid, not fresh)
                    else:
                        narrow_tile(block, (xi * rows_pad + rb * mr) * wide + c0, wide, left,
                                    xi * left_ld + rb * size * mr, right, xi * right_ld + c0, offsets, count, valid,
                                    not fresh)
        if (chunk - first) % run == run - 1 or chunk == last - 1:
            for j in range(flat_sums.shape[0]):
                flat_sums[j] += block[j]
