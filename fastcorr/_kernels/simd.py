"""The machine's whole vector unit for the kernels' loops: a width for LLVM, and a register tile.

LLVM tunes some CPUs that have 512-bit vectors (Intel's AVX-512 server parts) to prefer
256-bit ones, so Numba's loop vectoriser emits ymm code there and runs at half width.
:func:`full_width`, called at the top of a compiled function (and inside a ``prange`` body
that holds loops of its own), sets LLVM's ``"prefer-vector-width"`` attribute of that one
function to :data:`VECTOR_BITS`, the width of the machine Numba compiles for. It changes
nothing else: not the user's Numba code, not the process's target options. A function
compiled on its own (a :func:`fastcorr._kernels.shared` helper) needs its own call; an
inlined helper takes its caller's width. The on-disk cache is keyed on the CPU name and
features, so cached code never runs on a machine of another width.

The hot loops that LLVM's vectoriser would not keep in registers are written out in vectors:
:func:`tile`, a register-blocked multiply-accumulate whose accumulators never leave the
registers (the convolution passes and tall correlation kernels are written in terms of it);
:func:`dots`, blocks of dot products; :func:`band`, a correlation with a small kernel whose
taps stay in registers, several output rows sharing each loaded vector; :func:`channel_band`,
the same summed over channels, its taps loaded from memory; and :func:`nine_taps`, a 3x3
kernel's taps added to four rows at once.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array


def _vector_bits() -> int:
    """512 with AVX-512, 256 with AVX, else 128: for the CPU Numba compiles for."""
    features = config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    return 512 if "avx512f" in enabled else 256 if "avx" in enabled else 128


VECTOR_BITS = _vector_bits()


@intrinsic
def full_width(typingctx):
    """Let LLVM vectorise the calling function at :data:`VECTOR_BITS` (no code of its own)."""

    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes is a set that prints its members verbatim but whose
        # add() accepts only the names it knows; set.add stores LLVM's quoted string attribute.
        attributes = builder.function.attributes
        for old in [a for a in attributes if a.startswith('"prefer-vector-width"=')]:
            set.discard(attributes, old)
        set.add(attributes, f'"prefer-vector-width"="{VECTOR_BITS}"')
        return context.get_dummy_value()

    return types.none(), codegen


def lanes(itemsize: int) -> int:
    """Elements of ``itemsize`` bytes in one vector register."""
    return VECTOR_BITS // (8 * itemsize)


#: The register tile of :func:`tile`: ``TILE_ROWS`` rows by ``TILE_VECTORS`` vectors of
#: accumulators, plus the loaded vectors and one broadcast, fill the register file without
#: spilling: 24 + 3 + 1 of 32 zmm on AVX-512, 12 + 2 + 1 of 16 ymm on AVX2.
TILE_ROWS, TILE_VECTORS = (8, 3) if VECTOR_BITS >= 512 else (6, 2)


#: Bytes of a cache line.
LINE = 64


def odd_lines(elements: int, itemsize: int) -> int:
    """``elements`` rounded up to an odd number of cache lines (in elements): rows at that
    pitch fall on distinct L1 sets, each a line apart from the last in the set order, however
    many rows there are up to the number of sets."""
    lines = -(-elements * itemsize // LINE)
    return (lines + 1 - lines % 2) * LINE // itemsize


def _pointer(context, builder, array_type, array, index, index_type):
    """The address of element ``index`` of the flat C-contiguous ``array``."""
    data = context.make_array(array_type)(context, builder, value=array).data
    return builder.gep(data, [context.cast(builder, index, index_type, types.intp)])


def _splat(builder, scalar, vector_type):
    undefined = ir.Constant(vector_type, ir.Undefined)
    first = builder.insert_element(undefined, scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, undefined, ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count),
                                                                [0] * vector_type.count))


def _vectors(context, builder, dtype, count):
    """The vector type of ``count`` elements of ``dtype``, its ``llvm.fma``, and unaligned vector
    load and store at an element pointer."""
    vector = ir.VectorType(context.get_value_type(dtype), count)
    align = dtype.bitwidth // 8
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{count}f{dtype.bitwidth}")

    def load(pointer):
        return builder.load(builder.bitcast(pointer, vector.as_pointer()), align=align)

    def store(value, pointer):
        builder.store(value, builder.bitcast(pointer, vector.as_pointer()), align=align)

    return vector, fma, load, store


def _masked(builder, vector, kind):
    """``llvm.masked.load`` (``kind`` 'load': pointer, alignment, mask, the value of lanes
    masked off) or ``llvm.masked.store`` (value, pointer, alignment, mask) of ``vector``."""
    i32, mask = ir.IntType(32), ir.VectorType(ir.IntType(1), vector.count)
    bits = 32 if isinstance(vector.element, ir.FloatType) else 64
    if kind == "load":
        signature = ir.FunctionType(vector, [vector.as_pointer(), i32, mask, vector])
    else:
        signature = ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), i32, mask])
    return cgutils.get_or_insert_function(builder.module, signature, f"llvm.masked.{kind}.v{vector.count}f{bits}.p0")


def _counted_loop(builder, name, trips):
    """Blocks ``name.loop`` and ``name.exit`` after the current one, entered when ``trips`` (an
    i64) is positive; the builder at the top of the loop. Returns the entry block, the loop and
    exit blocks, and the loop's counter (a phi from 0; the caller adds its next value)."""
    i64 = ir.IntType(64)
    function, entry = builder.function, builder.block
    loop_block = function.append_basic_block(f"{name}.loop")
    exit_block = function.append_basic_block(f"{name}.exit")
    builder.cbranch(builder.icmp_signed(">", trips, ir.Constant(i64, 0)), loop_block, exit_block)
    builder.position_at_end(loop_block)
    counter = builder.phi(i64)
    counter.add_incoming(ir.Constant(i64, 0), entry)
    return entry, loop_block, exit_block, counter


def check_flat(intrinsic, array, name, dtype):
    """Typing check of an intrinsic's array argument: 1-D, C-contiguous, of ``dtype``."""
    if not (isinstance(array, types.Array) and array.layout == "C" and array.ndim == 1 and array.dtype == dtype):
        raise TypingError(f"{intrinsic}: {name} must be a 1-D C-contiguous array of {dtype}, got {array}")


def float_operands(intrinsic, arrays, tables=()):
    """Typing check of an intrinsic's operands: the first of ``arrays`` (``(array, name)`` pairs)
    holds float32 or float64, and each of them is a 1-D C-contiguous array of that dtype, each
    of ``tables`` one of int64. Returns the dtype."""
    first, name = arrays[0]
    dtype = getattr(first, "dtype", None)
    if dtype not in (types.float32, types.float64):
        raise TypingError(f"{intrinsic}: {name} must hold float32 or float64, got {first}")
    for array, name in arrays:
        check_flat(intrinsic, array, name, dtype)
    for table, name in tables:
        check_flat(intrinsic, table, name, types.int64)
    return dtype


def _scalar_fma(context, builder, dtype):
    """``llvm.fma`` of single ``dtype`` values."""
    element = context.get_value_type(dtype)
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(element, [element] * 3),
                                          f"llvm.fma.f{dtype.bitwidth}")


@intrinsic
def flat(typingctx, a):
    """``a.ravel()`` for a C-contiguous array: a 1-D view of its elements, made inline (Numba's
    ravel compiles its generic reshape, 0.1 s of a first call)."""
    if not (isinstance(a, types.Array) and a.layout == "C"):
        raise TypingError(f"flat: a must be a C-contiguous array, got {a}")
    signature = a.copy(ndim=1)(a)

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, value=args[0])
        size = ir.Constant(ir.IntType(64), 1)
        for extent in cgutils.unpack_tuple(builder, src.shape):
            size = builder.mul(size, extent)
        view = context.make_array(sig.return_type)(context, builder)
        populate_array(view, data=src.data, shape=[size], strides=[src.itemsize], itemsize=src.itemsize,
                       meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, sig.return_type, view._getvalue())

    return signature, codegen


def _tile(nv: int):
    """:func:`tile` with ``nv`` vectors of columns."""

    def tile(typingctx, c, c_off, ldc, a, a_off, b, b_base, b_offsets, k_count, rows, accumulate):
        return _tile_typed(nv, c, c_off, ldc, a, a_off, b, b_base, b_offsets, k_count, rows, accumulate)

    tile.__name__ = tile.__qualname__ = f"tile_{nv}"
    return intrinsic(tile)


def _tile_typed(nv, c, c_off, ldc, a, a_off, b, b_base, b_offsets, k_count, rows, accumulate):
    """A register-blocked multiply-accumulate, ``TILE_ROWS x (nv * lanes)``::

        for k in range(k_count):
            v = b[b_base + b_offsets[k] :][: nv * lanes]
            c[c_off + i * ldc :][: nv * lanes] += a[a_off + k * TILE_ROWS + i] * v

    for ``i < TILE_ROWS``, with the accumulators in registers throughout (each a chain of fused
    multiply-adds in ``k`` order), starting from ``c`` when ``accumulate`` else from zero; rows
    ``i >= rows`` are computed and not stored. With ``b_offsets[k] = k * ldb`` it is a GEMM on
    a packed ``a``; with ``b_offsets`` the taps of a kernel over padded flat planes it is a
    direct convolution. Indices are not checked: the caller keeps every access in bounds.
    """
    dtype = float_operands("tile", ((c, "c"), (a, "a"), (b, "b")), ((b_offsets, "b_offsets"),))
    signature = types.none(c, c_off, ldc, a, a_off, b, b_base, b_offsets, k_count, rows, accumulate)
    mr, count = TILE_ROWS, lanes(dtype.bitwidth // 8)

    def codegen(context, builder, sig, args):
        t = sig.args
        i64 = ir.IntType(64)
        vector, fma, load, store = _vectors(context, builder, dtype, count)

        def intp(i):
            return context.cast(builder, args[i], t[i], types.intp)

        c_base = _pointer(context, builder, t[0], args[0], args[1], t[1])
        a_base = _pointer(context, builder, t[3], args[3], args[4], t[4])
        b_data = context.make_array(t[5])(context, builder, value=args[5]).data
        offsets = context.make_array(t[7])(context, builder, value=args[7]).data
        ldc_, b_base_, k_count_, rows_ = intp(2), intp(6), intp(8), intp(9)
        accumulate_ = context.cast(builder, args[10], t[10], types.boolean)

        def c_at(i, v):
            return builder.gep(builder.gep(c_base, [builder.mul(ldc_, ir.Constant(i64, i))]),
                               [ir.Constant(i64, v * count)])

        zero = ir.Constant(vector, [ir.Constant(vector.element, 0.0)] * count)
        function = builder.function
        entry = builder.block
        load_block = function.append_basic_block("tile.load")
        start_block = function.append_basic_block("tile.start")
        loop_block = function.append_basic_block("tile.loop")
        exit_block = function.append_basic_block("tile.exit")
        builder.cbranch(accumulate_, load_block, start_block)

        builder.position_at_end(load_block)
        loaded = [[load(c_at(i, v)) for v in range(nv)] for i in range(mr)]
        builder.branch(start_block)

        builder.position_at_end(start_block)
        start = []
        for i in range(mr):
            row = []
            for v in range(nv):
                phi = builder.phi(vector)
                phi.add_incoming(loaded[i][v], load_block)
                phi.add_incoming(zero, entry)
                row.append(phi)
            start.append(row)
        builder.cbranch(builder.icmp_signed(">", k_count_, ir.Constant(i64, 0)), loop_block, exit_block)

        builder.position_at_end(loop_block)
        k = builder.phi(i64)
        k.add_incoming(ir.Constant(i64, 0), start_block)
        acc = [[builder.phi(vector) for _ in range(nv)] for _ in range(mr)]
        for i in range(mr):
            for v in range(nv):
                acc[i][v].add_incoming(start[i][v], start_block)
        offset = builder.add(builder.load(builder.gep(offsets, [k])), b_base_)
        b_row = builder.gep(b_data, [offset])
        b_vectors = [load(builder.gep(b_row, [ir.Constant(i64, v * count)])) for v in range(nv)]
        a_row = builder.gep(a_base, [builder.mul(k, ir.Constant(i64, mr))])
        new = []
        for i in range(mr):
            weight = _splat(builder, builder.load(builder.gep(a_row, [ir.Constant(i64, i)])), vector)
            new.append([builder.call(fma, [weight, b_vectors[v], acc[i][v]]) for v in range(nv)])
        k_next = builder.add(k, ir.Constant(i64, 1))
        k.add_incoming(k_next, loop_block)
        for i in range(mr):
            for v in range(nv):
                acc[i][v].add_incoming(new[i][v], loop_block)
        builder.cbranch(builder.icmp_signed("<", k_next, k_count_), loop_block, exit_block)

        builder.position_at_end(exit_block)
        final = []
        for i in range(mr):
            row = []
            for v in range(nv):
                phi = builder.phi(vector)
                phi.add_incoming(start[i][v], start_block)
                phi.add_incoming(new[i][v], loop_block)
                row.append(phi)
            final.append(row)
        for v in range(nv):
            store(final[0][v], c_at(0, v))
        for i in range(1, mr):
            with builder.if_then(builder.icmp_signed(">", rows_, ir.Constant(i64, i)), likely=True):
                for v in range(nv):
                    store(final[i][v], c_at(i, v))
        return context.get_dummy_value()

    return signature, codegen


#: The register tile, ``TILE_ROWS x TILE_VECTORS`` vectors (see :func:`_tile_typed`).
tile = _tile(TILE_VECTORS)
#: One vector of columns fewer, for the last columns of a product that leaves the full tile a third or more empty.
narrow_tile = _tile(TILE_VECTORS - 1)


@intrinsic
def tall_tile(typingctx, c, c_off, ldc, a, b, b_base, b_offsets, kh, kw):
    """``TILE_ROWS`` output rows of a correlation with a kernel of ``kh`` rows and ``kw``
    columns, ``TILE_VECTORS`` vectors wide, written to ``c``: :func:`tile` over the ``(kh +
    TILE_ROWS - 1) * kw`` steps of the block's source rows (step ``s * kw + b`` is tap ``b`` of
    source row ``s``; ``a`` holds ``k[s - i, b]`` for row ``i`` at ``(s * kw + b) * TILE_ROWS +
    i``) from zero, less the steps where ``s - i`` falls outside the kernel: row ``i`` takes
    source rows ``i`` to ``i + kh - 1`` only. So no multiply-add is spent on a zero weight, and an
    inf or NaN of ``b`` meets the kernel's own taps only.

    ``kh`` is an int of at least ``TILE_ROWS - 1``: the source rows run in three phases, the
    first ``TILE_ROWS - 1`` reaching a growing run of rows from the first, the middle ones every
    row, the last ``TILE_ROWS - 1`` a shrinking run ending at the last. Or, for any kernel, a
    tuple of ``kh`` Nones, a count known when compiling: each source row reaches its own run of
    rows (a loop over the taps each)."""
    dtype = float_operands("tall_tile", ((c, "c"), (a, "a"), (b, "b")), ((b_offsets, "b_offsets"),))
    signature = types.none(c, c_off, ldc, a, b, b_base, b_offsets, kh, kw)
    mr, nv, count = TILE_ROWS, TILE_VECTORS, lanes(dtype.bitwidth // 8)
    rows = kh.count if isinstance(kh, types.BaseTuple) else None

    def codegen(context, builder, sig, args):
        t = sig.args
        i64 = ir.IntType(64)
        vector, fma, load, store = _vectors(context, builder, dtype, count)

        def intp(i):
            return context.cast(builder, args[i], t[i], types.intp)

        c_base = _pointer(context, builder, t[0], args[0], args[1], t[1])
        a_data = context.make_array(t[3])(context, builder, value=args[3]).data
        b_data = context.make_array(t[4])(context, builder, value=args[4]).data
        offsets = context.make_array(t[6])(context, builder, value=args[6]).data
        ldc_, b_base_, kw_ = intp(2), intp(5), intp(8)
        zero = ir.Constant(vector, [ir.Constant(vector.element, 0.0)] * count)
        acc = [[zero] * nv for _ in range(mr)]

        def steps(s0, s1, lo, hi):
            """Source rows ``[s0, s1)`` into the accumulators of rows ``[lo, hi)``."""
            k0, k1 = builder.mul(s0, kw_), builder.mul(s1, kw_)
            before = builder.block
            loop_block = builder.function.append_basic_block("tall.loop")
            exit_block = builder.function.append_basic_block("tall.exit")
            builder.cbranch(builder.icmp_signed("<", k0, k1), loop_block, exit_block)
            builder.position_at_end(loop_block)
            k = builder.phi(i64)
            k.add_incoming(k0, before)
            running = {}
            for i in range(lo, hi):
                for v in range(nv):
                    running[i, v] = builder.phi(vector)
                    running[i, v].add_incoming(acc[i][v], before)
            b_row = builder.gep(b_data, [builder.add(builder.load(builder.gep(offsets, [k])), b_base_)])
            b_vectors = [load(builder.gep(b_row, [ir.Constant(i64, v * count)])) for v in range(nv)]
            a_row = builder.gep(a_data, [builder.mul(k, ir.Constant(i64, mr))])
            new = {}
            for i in range(lo, hi):
                weight = _splat(builder, builder.load(builder.gep(a_row, [ir.Constant(i64, i)])), vector)
                for v in range(nv):
                    new[i, v] = builder.call(fma, [weight, b_vectors[v], running[i, v]])
                    running[i, v].add_incoming(new[i, v], loop_block)
            k_next = builder.add(k, ir.Constant(i64, 1))
            k.add_incoming(k_next, loop_block)
            builder.cbranch(builder.icmp_signed("<", k_next, k1), loop_block, exit_block)
            builder.position_at_end(exit_block)
            for (i, v), value in new.items():
                merged = builder.phi(vector)
                merged.add_incoming(acc[i][v], before)
                merged.add_incoming(value, loop_block)
                acc[i][v] = merged

        def row(s):
            return ir.Constant(i64, s)

        if rows is not None:
            for s in range(rows + mr - 1):
                steps(row(s), row(s + 1), max(0, s - rows + 1), min(mr, s + 1))
        else:
            kh_ = intp(7)
            for m in range(mr - 1):
                steps(row(m), row(m + 1), 0, m + 1)
            steps(row(mr - 1), kh_, 0, mr)
            for m in range(mr - 1):
                steps(builder.add(kh_, row(m)), builder.add(kh_, row(m + 1)), m + 1, mr)
        for i in range(mr):
            for v in range(nv):
                store(acc[i][v], builder.gep(builder.gep(c_base, [builder.mul(ldc_, ir.Constant(i64, i))]),
                                             [ir.Constant(i64, v * count)]))
        return context.get_dummy_value()

    return signature, codegen


#: The register block of :func:`dots`: ``DOT_ROWS x DOT_TAPS`` accumulators plus one vector
#: per row and per tap: 20 + 9 of 32 zmm on AVX-512, 8 + 6 of 16 ymm on AVX2.
DOT_ROWS, DOT_TAPS = (4, 5) if VECTOR_BITS >= 512 else (2, 4)


def _lane_sum(builder, value):
    """The sum of a vector's lanes, by halves."""
    while value.type.count > 1:
        half = value.type.count // 2
        low = builder.shuffle_vector(value, value, ir.Constant(ir.VectorType(ir.IntType(32), half), list(range(half))))
        high = builder.shuffle_vector(value, value, ir.Constant(ir.VectorType(ir.IntType(32), half),
                                                                list(range(half, 2 * half))))
        value = builder.fadd(low, high)
    return builder.extract_element(value, ir.Constant(ir.IntType(32), 0))


def _dots(rows: int):
    """:func:`dots` with ``rows`` rows."""

    def dots(typingctx, sums, s_base, lds, a, a_base, lda, b, b_base, b_offsets, length):
        return _dots_typed(rows, sums, s_base, lds, a, a_base, lda, b, b_base, b_offsets, length)

    dots.__name__ = dots.__qualname__ = f"dots_{rows}"
    return intrinsic(dots)


def _dots_typed(rows, sums, s_base, lds, a, a_base, lda, b, b_base, b_offsets, length):
    """``rows x DOT_TAPS`` dot products at once, with the accumulators in registers::

        sums[s_base + q * lds + p] += sum over t < length of a[a_base + q * lda + t] * b[b_base + b_offsets[p] + t]

    for ``q < rows``. ``length`` must be a multiple of the vector's lanes. Each product is one
    lane's chain of fused multiply-adds, the lanes summed at the end: the order of the additions
    is not the sequential one. Indices are not checked: the caller keeps every access in bounds.
    """
    dtype = float_operands("dots", ((sums, "sums"), (a, "a"), (b, "b")), ((b_offsets, "b_offsets"),))
    signature = types.none(sums, s_base, lds, a, a_base, lda, b, b_base, b_offsets, length)
    taps, count = DOT_TAPS, lanes(dtype.bitwidth // 8)

    def codegen(context, builder, sig, args):
        t = sig.args
        i64 = ir.IntType(64)
        vector, fma, load, _ = _vectors(context, builder, dtype, count)

        def intp(i):
            return context.cast(builder, args[i], t[i], types.intp)

        s_data = _pointer(context, builder, t[0], args[0], args[1], t[1])
        a_data = _pointer(context, builder, t[3], args[3], args[4], t[4])
        b_data = _pointer(context, builder, t[6], args[6], args[7], t[7])
        offsets = context.make_array(t[8])(context, builder, value=args[8]).data
        lds_, lda_, length_ = intp(2), intp(5), intp(9)
        a_rows = [builder.gep(a_data, [builder.mul(lda_, ir.Constant(i64, q))]) for q in range(rows)]
        b_taps = [builder.gep(b_data, [builder.load(builder.gep(offsets, [ir.Constant(i64, p)]))]) for p in range(taps)]

        zero = ir.Constant(vector, [ir.Constant(vector.element, 0.0)] * count)
        entry, loop_block, exit_block, position = _counted_loop(builder, "dots", length_)
        acc = [[builder.phi(vector) for _ in range(taps)] for _ in range(rows)]
        for q in range(rows):
            for p in range(taps):
                acc[q][p].add_incoming(zero, entry)
        a_vectors = [load(builder.gep(a_rows[q], [position])) for q in range(rows)]
        b_vectors = [load(builder.gep(b_taps[p], [position])) for p in range(taps)]
        new = [[builder.call(fma, [a_vectors[q], b_vectors[p], acc[q][p]]) for p in range(taps)] for q in range(rows)]
        following = builder.add(position, ir.Constant(i64, count))
        position.add_incoming(following, loop_block)
        for q in range(rows):
            for p in range(taps):
                acc[q][p].add_incoming(new[q][p], loop_block)
        builder.cbranch(builder.icmp_signed("<", following, length_), loop_block, exit_block)

        builder.position_at_end(exit_block)
        final = []
        for q in range(rows):
            row = []
            for p in range(taps):
                phi = builder.phi(vector)
                phi.add_incoming(zero, entry)
                phi.add_incoming(new[q][p], loop_block)
                row.append(phi)
            final.append(row)
        for q in range(rows):
            for p in range(taps):
                target = builder.gep(s_data, [builder.add(builder.mul(lds_, ir.Constant(i64, q)), ir.Constant(i64, p))])
                builder.store(builder.fadd(builder.load(target), _lane_sum(builder, final[q][p])), target)
        return context.get_dummy_value()

    return signature, codegen


#: The register block of dot products (:func:`_dots_typed`), ``DOT_ROWS`` rows.
dots = _dots(DOT_ROWS)
#: One row fewer, for blocks of output channels that would leave the full block's last rows idle.
narrow_dots = _dots(DOT_ROWS - 1)


def dot_rows(count: int) -> int:
    """Rows of the dot-product block for ``count`` rows in all: the narrow block where its blocks
    load fewer vectors a step (each block loads a vector per row and per tap), as for six rows
    on AVX-512, two blocks of three rather than two of four, one idle (LeNet's weight gradient:
    0.75-0.8x the time)."""
    def loads(rows):
        return -(-count // rows) * (rows + DOT_TAPS)

    return DOT_ROWS - 1 if loads(DOT_ROWS - 1) < loads(DOT_ROWS) else DOT_ROWS


def band(kh: int, kw: int, rows: int):
    """A register tile for correlation with a ``kh x kw`` kernel (the taps held in registers),
    ``rows`` output rows at a time: an intrinsic ``(out, o_base, ldo, x, x_base, ldx, k, n)``::

        out[o_base + i * ldo + j] = sum over a < kh, b < kw of k[a * kw + b] * x[x_base + (i + a) * ldx + j + b]

    for ``i < rows`` and ``j < n``. Each sum is ``k[0] * x`` then fused multiply-adds in ``(a, b)``
    order, whatever ``rows`` and ``n``: tiles of any height give the same bits. Each vector of ``x``
    is loaded once per block and feeds every output row that reads it; the last vector of a row
    overlaps the one before it, and rows narrower than a vector run one element at a time.
    Indices are not checked: the caller keeps every access in bounds.
    """

    @intrinsic
    def band_tile(typingctx, out, o_base, ldo, x, x_base, ldx, k, n):
        dtype = float_operands("band", ((out, "out"), (x, "x"), (k, "k")))
        signature = types.none(out, o_base, ldo, x, x_base, ldx, k, n)

        def codegen(context, builder, sig, args):
            t = sig.args
            i64 = ir.IntType(64)

            def intp(i):
                return context.cast(builder, args[i], t[i], types.intp)

            o_data = _pointer(context, builder, t[0], args[0], args[1], t[1])
            x_data = _pointer(context, builder, t[3], args[3], args[4], t[4])
            k_data = context.make_array(t[6])(context, builder, value=args[6]).data
            ldo_, ldx_, n_ = intp(2), intp(5), intp(7)
            x_rows = [builder.gep(x_data, [builder.mul(ldx_, ir.Constant(i64, s))]) for s in range(rows + kh - 1)]
            o_rows = [builder.gep(o_data, [builder.mul(ldo_, ir.Constant(i64, i))]) for i in range(rows)]
            weights = [builder.load(builder.gep(k_data, [ir.Constant(i64, tap)])) for tap in range(kh * kw)]
            count = lanes(dtype.bitwidth // 8)
            vector, vector_fma, vector_load, vector_store = _vectors(context, builder, dtype, count)
            splats = [_splat(builder, w, vector) for w in weights]
            scalar_fma = _scalar_fma(context, builder, dtype)

            function = builder.function
            entry = builder.block
            vector_block = function.append_basic_block("band.vectors")
            narrow_block = function.append_basic_block("band.narrow")
            scalar_block = function.append_basic_block("band.scalars")
            exit_block = function.append_basic_block("band.exit")
            builder.cbranch(builder.icmp_signed(">=", n_, ir.Constant(i64, count)), vector_block, narrow_block)
            builder.position_at_end(narrow_block)
            builder.cbranch(builder.icmp_signed(">", n_, ir.Constant(i64, 0)), scalar_block, exit_block)

            def loop(block, first, width, taps, fma, load, store):
                """Columns ``width`` at a time from 0 while below ``n``, the last step at ``n - width``."""
                builder.position_at_end(block)
                step = builder.phi(i64)
                step.add_incoming(ir.Constant(i64, 0), first)
                last = builder.sub(n_, ir.Constant(i64, width))
                j = builder.select(builder.icmp_signed("<", step, last), step, last)
                acc = [None] * rows
                for s in range(rows + kh - 1):
                    for b in range(kw):
                        v = load(builder.gep(x_rows[s], [builder.add(j, ir.Constant(i64, b))]))
                        for i in range(max(0, s - kh + 1), min(rows, s + 1)):
                            tap = taps[(s - i) * kw + b]
                            acc[i] = builder.fmul(tap, v) if acc[i] is None else builder.call(fma, [tap, v, acc[i]])
                for i in range(rows):
                    store(acc[i], builder.gep(o_rows[i], [j]))
                following = builder.add(step, ir.Constant(i64, width))
                step.add_incoming(following, block)
                builder.cbranch(builder.icmp_signed("<", following, n_), block, exit_block)

            loop(vector_block, entry, count, splats, vector_fma, vector_load, vector_store)
            loop(scalar_block, narrow_block, 1, weights, scalar_fma, builder.load, builder.store)
            builder.position_at_end(exit_block)
            return context.get_dummy_value()

        return signature, codegen

    return band_tile


#: Vectors of each row of :func:`nine_taps` per step: eight chains of fused multiply-adds.
UNROLL = 2


@intrinsic
def nine_taps(typingctx, acc, lda, x, x_base, pitch, dw, w, w_base, w_step, m):
    """Four rows of ``acc``, ``lda`` apart, each take a 3x3 kernel's nine taps along ``x``::

        acc[q * lda + t] += sum over a, b < 3 of
            w[w_base + q * w_step + 3 * a + b] * x[x_base + a * pitch + b * dw + t]

    for ``q < 4`` and ``t < m``, each sum a chain of fused multiply-adds from ``acc`` in ``(a, b)``
    order. Nine loaded vectors of ``x`` feed all 36 products, :data:`UNROLL` vectors of each row
    at a time, then one, then the last ``m`` modulo the lanes one element at a time (the taps are
    loaded where they are used: AVX-512 broadcasts them from memory into the multiply-adds).
    Indices are not checked: the caller keeps every access in bounds."""
    dtype = float_operands("nine_taps", ((acc, "acc"), (x, "x"), (w, "w")))
    signature = types.none(acc, lda, x, x_base, pitch, dw, w, w_base, w_step, m)

    def codegen(context, builder, sig, args):
        t = sig.args
        i64 = ir.IntType(64)

        def intp(i):
            return context.cast(builder, args[i], t[i], types.intp)

        def const(value):
            return ir.Constant(i64, value)

        count = lanes(dtype.bitwidth // 8)
        vector, vector_fma, vector_load, vector_store = _vectors(context, builder, dtype, count)
        scalar_fma = _scalar_fma(context, builder, dtype)
        acc_data = context.make_array(t[0])(context, builder, value=args[0]).data
        x_data = _pointer(context, builder, t[2], args[2], args[3], t[3])
        w_data = _pointer(context, builder, t[6], args[6], args[7], t[7])
        lda_, pitch_, dw_, w_step_, m_ = intp(1), intp(4), intp(5), intp(8), intp(9)
        rows = [builder.gep(acc_data, [builder.mul(lda_, const(q))]) for q in range(4)]
        sources = [builder.gep(x_data, [builder.add(builder.mul(pitch_, const(a)), builder.mul(dw_, const(b)))])
                   for a in range(3) for b in range(3)]
        taps = [[builder.gep(w_data, [builder.add(builder.mul(w_step_, const(q)), const(tap))]) for tap in range(9)]
                for q in range(4)]

        def multiple(width):
            return builder.mul(builder.sdiv(m_, const(width)), const(width))

        def loop(name, start, end, width, fma, load, store, weight):
            """``t`` from ``start`` while below ``end``, ``width`` at a time (``end - start`` a multiple)."""
            function, before = builder.function, builder.block
            body = function.append_basic_block(f"{name}.loop")
            after = function.append_basic_block(f"{name}.exit")
            builder.cbranch(builder.icmp_signed("<", start, end), body, after)
            builder.position_at_end(body)
            at = builder.phi(i64)
            at.add_incoming(start, before)
            places = [builder.add(at, const(part * count)) for part in range(max(width // count, 1))]
            loaded = [[load(builder.gep(source, [place])) for source in sources] for place in places]
            for q in range(4):
                targets = [builder.gep(rows[q], [place]) for place in places]
                totals = [load(target) for target in targets]
                for tap in range(9):
                    tap_value = weight(builder.load(taps[q][tap]))
                    totals = [builder.call(fma, [tap_value, loaded[i][tap], totals[i]]) for i in range(len(places))]
                for target, total in zip(targets, totals):
                    store(total, target)
            following = builder.add(at, const(width))
            at.add_incoming(following, body)
            builder.cbranch(builder.icmp_signed("<", following, end), body, after)
            builder.position_at_end(after)

        def splat(value):
            return _splat(builder, value, vector)

        pairs, whole = multiple(UNROLL * count), multiple(count)
        loop("nine_taps.pairs", const(0), pairs, UNROLL * count, vector_fma, vector_load, vector_store, splat)
        loop("nine_taps.vectors", pairs, whole, count, vector_fma, vector_load, vector_store, splat)
        loop("nine_taps.scalars", whole, m_, 1, scalar_fma, builder.load, builder.store, lambda value: value)
        return context.get_dummy_value()

    return signature, codegen


#: Output rows of :func:`channel_band`'s block: eight chains of fused multiply-adds keep both
#: FMA units busy through their latency, with few registers (a kernel column's taps at a time).
CHANNEL_ROWS = 8


def channel_band(kh: int, kw: int, rows: int = CHANNEL_ROWS):
    """A block of ``rows`` output rows by one vector of a correlation with a ``kh x kw`` kernel,
    summed over channels: an intrinsic ``(out, o_base, ldo, x, x_base, ldx, plane, channels, k,
    bias)``::

        out[o_base + i * ldo + l] = bias + sum over c < channels, a < kh, b < kw of
            k[(c * kh + a) * kw + b] * x[x_base + c * plane + (i + a) * ldx + b + l]

    for ``i < rows`` and ``l`` below the vector's lanes. Each sum is a chain of fused
    multiply-adds from zero in ``(c, b, a)`` order, whatever the block's place: overlapping
    blocks give the same bits (the other direct loops add in ``(c, a, b)`` order: their sums
    differ from these by rounding). Each loaded vector of ``x`` feeds every row that reads it.
    The taps of one kernel column at a time are held in registers (holding all of a 5x5
    kernel's beside the accumulators spilled them to the stack at every channel: 1.25-1.4x
    slower). Indices are not checked: the caller keeps every access in bounds.
    """

    @intrinsic
    def channel_block(typingctx, out, o_base, ldo, x, x_base, ldx, plane, channels, k, bias):
        dtype = float_operands("channel_band", ((out, "out"), (x, "x"), (k, "k")))
        signature = types.none(out, o_base, ldo, x, x_base, ldx, plane, channels, k, bias)

        def codegen(context, builder, sig, args):
            t = sig.args
            i64 = ir.IntType(64)

            def intp(i):
                return context.cast(builder, args[i], t[i], types.intp)

            count = lanes(dtype.bitwidth // 8)
            vector, fma, load, store = _vectors(context, builder, dtype, count)
            o_data = _pointer(context, builder, t[0], args[0], args[1], t[1])
            x_data = _pointer(context, builder, t[3], args[3], args[4], t[4])
            k_data = context.make_array(t[8])(context, builder, value=args[8]).data
            ldo_, ldx_, plane_, channels_ = intp(2), intp(5), intp(6), intp(7)
            bias_ = _splat(builder, context.cast(builder, args[9], t[9], dtype), vector)

            zero = ir.Constant(vector, [ir.Constant(vector.element, 0.0)] * count)
            entry, loop_block, exit_block, c = _counted_loop(builder, "channel_band", channels_)
            acc = [builder.phi(vector) for _ in range(rows)]
            for phi in acc:
                phi.add_incoming(zero, entry)
            x_c = builder.gep(x_data, [builder.mul(c, plane_)])
            k_c = builder.gep(k_data, [builder.mul(c, ir.Constant(i64, kh * kw))])
            new = list(acc)
            x_rows = [builder.gep(x_c, [builder.mul(ldx_, ir.Constant(i64, s))]) for s in range(rows + kh - 1)]
            for b in range(kw):
                taps = [_splat(builder, builder.load(builder.gep(k_c, [ir.Constant(i64, a * kw + b)])), vector)
                        for a in range(kh)]
                for s in range(rows + kh - 1):
                    v = load(builder.gep(x_rows[s], [ir.Constant(i64, b)]))
                    for i in range(max(0, s - kh + 1), min(rows, s + 1)):
                        new[i] = builder.call(fma, [taps[s - i], v, new[i]])
            c_next = builder.add(c, ir.Constant(i64, 1))
            c.add_incoming(c_next, loop_block)
            for phi, value in zip(acc, new):
                phi.add_incoming(value, loop_block)
            builder.cbranch(builder.icmp_signed("<", c_next, channels_), loop_block, exit_block)

            builder.position_at_end(exit_block)
            totals = [builder.phi(vector) for _ in range(rows)]
            for i, total in enumerate(totals):
                total.add_incoming(zero, entry)
                total.add_incoming(new[i], loop_block)
            for i, total in enumerate(totals):
                store(builder.fadd(total, bias_), builder.gep(o_data, [builder.mul(ldo_, ir.Constant(i64, i))]))
            return context.get_dummy_value()

        return signature, codegen

    return channel_block


@intrinsic
def transpose(typingctx, dst, d_off, d_pitch, src, s_off, s_pitch, rows, columns):
    """``dst[d_off + k * d_pitch + i] = src[s_off + i * s_pitch + k]`` for ``i < rows`` and
    ``k < columns``, both at most ``lanes``: a block of rows loaded as vectors (masked past
    ``columns``), transposed in registers by ``log2(lanes)`` rounds of shuffles, and stored as
    vectors (masked past ``rows``). Nothing outside the block is read or written."""
    dtype = float_operands("transpose", ((dst, "dst"), (src, "src")))
    count = lanes(dtype.bitwidth // 8)

    def codegen(context, builder, sig, args):
        t = sig.args
        i64, i32, i1 = ir.IntType(64), ir.IntType(32), ir.IntType(1)
        vector = ir.VectorType(context.get_value_type(dtype), count)
        mask_type = ir.VectorType(i1, count)
        align = ir.Constant(i32, dtype.bitwidth // 8)
        load, store = _masked(builder, vector, "load"), _masked(builder, vector, "store")

        def intp(i):
            return context.cast(builder, args[i], t[i], types.intp)

        source = _pointer(context, builder, t[3], args[3], args[4], t[4])
        target = _pointer(context, builder, t[0], args[0], args[1], t[1])
        rows_, columns_ = intp(6), intp(7)
        positions = ir.Constant(ir.VectorType(i64, count), list(range(count)))
        zero = ir.Constant(vector, [ir.Constant(vector.element, 0.0)] * count)
        # Rows past ``rows`` are not loaded: their mask is all false (their lanes are zeros).
        within = builder.icmp_signed("<", positions, _splat(builder, columns_, positions.type))

        def lanes_if(condition, mask):
            return builder.and_(mask, _splat(builder, condition, mask_type))

        block = []
        for i in range(count):
            mask = lanes_if(builder.icmp_signed(">", rows_, ir.Constant(i64, i)), within)
            at = builder.gep(source, [builder.mul(intp(5), ir.Constant(i64, i))])
            block.append(builder.call(load, [builder.bitcast(at, vector.as_pointer()), align, mask, zero]))
        # Round with half-width b: rows r and r + b (r % 2b < b) swap their off-diagonal b x b blocks.
        b = count // 2
        while b:
            swapped = list(block)
            indices = ir.VectorType(i32, count)
            low = ir.Constant(indices, [p if p % (2 * b) < b else count + p - b for p in range(count)])
            high = ir.Constant(indices, [p + b if p % (2 * b) < b else count + p for p in range(count)])
            for r in (r for r in range(count) if r % (2 * b) < b):
                swapped[r] = builder.shuffle_vector(block[r], block[r + b], low)
                swapped[r + b] = builder.shuffle_vector(block[r], block[r + b], high)
            block, b = swapped, b // 2
        inside = builder.icmp_signed("<", positions, _splat(builder, rows_, positions.type))
        for k in range(count):
            mask = lanes_if(builder.icmp_signed(">", columns_, ir.Constant(i64, k)), inside)
            at = builder.gep(target, [builder.mul(intp(2), ir.Constant(i64, k))])
            builder.call(store, [block[k], builder.bitcast(at, vector.as_pointer()), align, mask])
        return context.get_dummy_value()

    return types.none(dst, d_off, d_pitch, src, s_off, s_pitch, rows, columns), codegen
