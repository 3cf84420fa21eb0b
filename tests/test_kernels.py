import itertools

import numba
import numpy as np
import pytest

import naive
from fastcorr import _kernels
from fastcorr._kernels import conv, corr, scratch, simd
from twins import run_as

BOUNDARIES = [corr.FILL, corr.WRAP, corr.SYMM, corr.NEAREST, corr.MIRROR]


INTERIOR_LOOPS = [corr.rows, corr.dots, corr.tile3x3, corr.band3x3, corr.tile5x5]
BLOCK_EDGES = (corr.ROW_BLOCK - 1, corr.ROW_BLOCK, corr.ROW_BLOCK + 1, 2 * corr.ROW_BLOCK - 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int32])
@pytest.mark.parametrize("shapes", [((40, 3000), (3, 3)), ((9, 2500), (5, 5)), ((90, 70), (7, 12)), ((5, 4), (9, 9)),
                                    ((8, 7), (3, 3)), ((7, 6), (5, 5)), ((30, 20), (1, 1)), ((20, 12), (4, 10)),
                                    # 'valid' rows of one tile block less one, one, one more, and two less one
                                    *(((6, n + 2), (3, 3)) for n in BLOCK_EDGES)])
def test_every_loop_and_twin_matches_the_loops(dtype, shapes, rng):
    """The interior loops that can run a kernel shape and the border loop, serial and parallel,
    against naive.py, the twins bit for bit, at every boundary and past the block and pairing edges."""
    x = (rng.standard_normal(shapes[0]) * 8).astype(dtype)
    k = (rng.standard_normal(shapes[1]) * 8).astype(dtype)
    (h, w), (kh, kw) = shapes
    names = {corr.FILL: "fill", corr.SYMM: "symm", corr.WRAP: "wrap", corr.NEAREST: "nearest", corr.MIRROR: "mirror"}
    band = np.dtype(dtype) in corr._BAND_DTYPES
    loops = [loop for loop in INTERIOR_LOOPS if loop in (corr.rows, corr.dots) or (kh, kw) == (3, 3) and loop is corr.tile3x3
             or (kh, kw) == (3, 3) and loop is corr.band3x3 and band or (kh, kw) == (5, 5) and loop is corr.tile5x5 and band]
    for boundary, (p0, p1) in itertools.product(BOUNDARIES, [(0, 0), (kh - 1, kw - 1), (kh // 2, 1)]):
        shape = (h + kh - 1 - p0 if p0 else max(h - kh + 1, 1), w + kw - 1 - p1 if p1 else max(w - kw + 1, 1))
        expected = naive.shifted_correlation(x, k, shape, p0, p1, names[boundary], dtype(3))
        (r0, r1), (c0, c1) = corr._inside(h, kh, shape[0], p0), corr._inside(w, kw, shape[1], p1)
        tolerance = dict(rtol=1e-4, atol=1e-2) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
        results = []
        for interior, (twin, step) in itertools.product(loops, [("serial", shape[0]), ("parallel", 2), ("parallel", 4)]):
            out = np.full(shape, 7, dtype)
            if r0 < r1 and c0 < c1:
                getattr(interior, twin)(x, k, out, r0, r1, c0, c1, -p0, -p1, step)
            columns = corr.strip_columns(w, shape[1], kw, p1, c0, c1, boundary)
            getattr(corr.border, twin)(x, k, out, p0, p1, boundary, dtype(3), r0, r1, c0, c1, columns, False, step)
            results.append(out)
        whole = np.full(shape, 7, dtype)
        columns = corr.strip_columns(w, shape[1], kw, p1, 0, 0, boundary)
        corr.border.serial(x, k, whole, p0, p1, boundary, dtype(3), 0, 0, 0, 0, columns, False, 3)
        twice = whole.copy()
        corr.border.parallel(x, k, twice, p0, p1, boundary, dtype(3), 0, 0, 0, 0, columns, True, 2)
        if r0 < r1 and c0 < c1:
            # The middle rows' strips add into the output too: the border doubles, the interior stays.
            added = results[0].copy()
            columns = corr.strip_columns(w, shape[1], kw, p1, c0, c1, boundary)
            corr.border.serial(x, k, added, p0, p1, boundary, dtype(3), r0, r1, c0, c1, columns, True, shape[0])
            inside = np.zeros(shape, bool)
            inside[r0:r1, c0:c1] = True
            np.testing.assert_array_equal(added[inside], results[0][inside])
            np.testing.assert_allclose(added[~inside], expected[~inside] * 2, **tolerance)
        for serial, *parallel in zip(results[::3], results[1::3], results[2::3]):
            for other in parallel:
                np.testing.assert_array_equal(serial, other)
        for result in results + [whole, twice / 2 if dtype != np.int32 else twice // 2]:
            np.testing.assert_allclose(result, expected, **tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
@pytest.mark.parametrize("shapes", [((6, 8), (1, 2)), ((1, 1), (1, 1)), ((5, 4), (5, 4)), ((3, 40), (2, 3)),
                                    ((12, 35), (4, 1)), ((7, 70), (3, 9))])
def test_the_valid_loop_is_the_border_loop_where_no_tap_leaves_the_input(dtype, shapes, rng):
    """Small calls that meet no boundary run on ``valid`` (and its planes), not on the border loop:
    the same bits, assigned or added, against naive.py."""
    x = (rng.standard_normal(shapes[0]) * 8).astype(dtype)
    k = (rng.standard_normal(shapes[1]) * 8).astype(dtype)
    shape = (x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1)
    expected = naive.shifted_correlation(x, k, shape, 0, 0, "fill", dtype(0))
    border, ours = np.full(shape, 7, dtype), np.full(shape, 7, dtype)
    corr.small(x, k, border, 0, 0, corr.FILL, dtype(0), 0)
    corr.valid(x, k, ours, False)
    np.testing.assert_array_equal(ours, border)
    tolerance = dict(rtol=1e-5, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(ours, expected, **tolerance)
    corr.valid(x, k, ours, True)
    np.testing.assert_allclose(ours, 2 * expected, **tolerance)
    # Planes of NCHW stacks: out[e, f] += x[a, b] correlated with k[c, d], each row in turn.
    xs, ks = np.stack([x, 2 * x])[:, None], np.stack([k, -k])[None]
    planes = np.array([[0, 0, 0, 0, 0, 0], [1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 1]], np.int64)
    out = np.zeros((1, 2) + shape, dtype)
    assert corr.valid_planes(planes, 0, xs, ks, out, np.array([1, 3], dtype))
    np.testing.assert_allclose(out[0, 0], 1 - expected, **tolerance)
    np.testing.assert_allclose(out[0, 1], 3 + 2 * expected, **tolerance)


@pytest.mark.parametrize("x_shape, k_shape, out_shape, p0, p1, inside", [
    ((6, 8), (1, 2), (6, 7), 0, 0, True), ((6, 8), (1, 2), (5, 3), 0, 0, True), ((6, 8), (1, 2), (6, 8), 0, 0, False),
    ((6, 8), (1, 2), (7, 7), 0, 0, False), ((6, 8), (1, 2), (6, 7), 1, 0, False), ((6, 8), (1, 2), (6, 7), 0, 1, False),
    ((2, 3, 6, 8), (4, 3, 3, 3), (2, 4, 4, 6), 0, 0, True), ((2, 3, 6, 8), (4, 3, 3, 3), (2, 4, 4, 7), 0, 0, False)])
def test_inside_means_no_tap_leaves_the_input(x_shape, k_shape, out_shape, p0, p1, inside):
    assert corr.inside(x_shape, k_shape, out_shape, p0, p1) is inside


def test_small_calls_without_a_boundary_run_on_the_valid_loop(monkeypatch, rng):
    """corr2d, a small 'valid' correlate2d and an unpadded small layer never reach the border loop's body."""
    import fastcorr as fc

    def refuse(*args):
        raise AssertionError("the border loop ran")

    monkeypatch.setattr(corr, "small", refuse)
    x, k = rng.standard_normal((6, 8)), rng.standard_normal((2, 3))
    expected = naive.corr2d(x, k)
    np.testing.assert_allclose(fc.corr2d(x, k), expected, rtol=1e-12)
    np.testing.assert_allclose(fc.correlate2d(x, k, "valid"), expected, rtol=1e-12)
    np.testing.assert_allclose(fc.conv2d(x[None, None], k[None, None])[0, 0], expected, rtol=1e-12)
    with pytest.raises(AssertionError, match="the border loop ran"):
        fc.correlate2d(x, k, "same")


@pytest.mark.parametrize("padding, loops", [(0, ("valid", "valid", "border")), ((0, 1), ("border", "border", "border")),
                                            ((0, 2), ("border", "border", "flipped valid"))])
def test_small_passes_take_the_valid_loop_where_no_tap_meets_the_padding(padding, loops, rng):
    """A small layer's forward pass, weight gradient and input gradient (the 'full' correlation of
    dY with the flipped kernel, padded by k - 1 - padding): each bound to its loop, and each
    against naive.py."""
    import fastcorr as fc
    from fastcorr import conv as fconv

    x, w = rng.standard_normal((2, 3, 6, 8)), rng.standard_normal((4, 3, 1, 3))
    geo = fconv._geometry("t", w.shape, 1, padding, 1, 1)
    passes = fconv.small_passes(x.shape, w.shape, geo, "auto")
    kernels = {"valid": corr.valid_planes, "border": corr.correlate_planes, "flipped valid": fconv._flipped_valid}
    assert tuple(p.func for p in passes) == tuple(kernels[loop] for loop in loops)
    dy = rng.standard_normal(fc.conv2d(x, w, padding=padding).shape)
    for ours, expected in [(fc.conv2d(x, w, padding=padding), naive.conv2d(x, w, padding=padding)),
                           (fc.conv2d_weight_grad(x, w.shape, dy, padding=padding),
                            naive.conv2d_weight_grad(x, w.shape, dy, padding=padding)),
                           (fc.conv2d_input_grad(x.shape, w, dy, padding=padding),
                            naive.conv2d_input_grad(x.shape, w, dy, padding=padding))]:
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_pass_kernels_start_flip_add_and_refuse(dtype, rng):
    """The small passes' loops: out[e, f] = start[f] + the sums (an empty start adds to out); the
    padded loop flips k when asked, and refuses a flipped k holding inf or NaN (out untouched);
    the unpadded loop takes k as given, inf and NaN too (no padding is met)."""
    x, k = rng.standard_normal((1, 1, 5, 6)).astype(dtype), rng.standard_normal((1, 1, 2, 3)).astype(dtype)
    planes = np.zeros((1, 6), np.int64)
    flipped = k[..., ::-1, ::-1]
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    for flip, taps in [(False, k), (True, np.ascontiguousarray(flipped))]:
        valid = naive.shifted_correlation(x[0, 0], taps[0, 0], (4, 4), 0, 0, "fill", dtype(0))
        padded = naive.shifted_correlation(x[0, 0], taps[0, 0], (6, 8), 1, 2, "fill", dtype(0))
        out = np.full((1, 1, 4, 4), 7, dtype)
        assert corr.valid_planes(planes, 0, x, taps, out, np.array([0.5], dtype))
        np.testing.assert_allclose(out[0, 0], 0.5 + valid, **tolerance)
        assert corr.valid_planes(planes, 0, x, taps, out, np.zeros(0, dtype))
        np.testing.assert_allclose(out[0, 0], 0.5 + 2 * valid, **tolerance)
        out = np.full((1, 1, 6, 8), 7, dtype)
        assert corr.correlate_planes(planes, 1, 2, flip, 0, x, k, out, np.array([-1], dtype))
        np.testing.assert_allclose(out[0, 0], padded - 1, **tolerance)
    for bad in (np.inf, np.nan):
        spoiled = k.copy()
        spoiled[0, 0, 1, 2] = bad
        out = np.full((1, 1, 6, 8), 7, dtype)
        assert not corr.correlate_planes(planes, 1, 2, True, 0, x, spoiled, out, np.zeros(1, dtype))
        assert (out == 7).all()
        assert corr.correlate_planes(planes, 1, 2, False, 0, x, spoiled, out, np.zeros(1, dtype))
        assert np.isnan(out).any() if bad != bad else np.isinf(out).any()
        out = np.full((1, 1, 4, 4), 7, dtype)
        assert corr.valid_planes(planes, 0, x, np.ascontiguousarray(spoiled[..., ::-1, ::-1]), out, np.zeros(1, dtype))
        expected = naive.shifted_correlation(x[0, 0], spoiled[0, 0, ::-1, ::-1], (4, 4), 0, 0, "fill", dtype(0))
        np.testing.assert_array_equal(np.isnan(out[0, 0]), np.isnan(expected))


@pytest.mark.parametrize("twin", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
@pytest.mark.parametrize("kernel", [(3, 3), (5, 5), (4, 6), (8, 3)])
def test_corr2d_past_the_small_calls_runs_the_planned_loop_without_the_plan(monkeypatch, twin, dtype, kernel, rng):
    """corr2d of SMALL or more multiply-adds: a 3x3 or 5x5 kernel (float32/64) goes straight to
    its tile without asking for a plan, every other call through the planned path; the bits are
    those of correlate2d's 'valid' (the planned path), and naive.py's sums."""
    import fastcorr as fc

    x = (rng.standard_normal((40, 60)) * 8).astype(dtype)
    k = (rng.standard_normal(kernel) * 8).astype(dtype)
    assert (40 - kernel[0] + 1) * (60 - kernel[1] + 1) * k.size >= corr.SMALL
    with run_as(twin):
        planned = fc.correlate2d(x, k, "valid")
        plans = []
        monkeypatch.setattr(corr, "plan", lambda *args: plans.append(args) or corr._plan(*args))
        result = fc.corr2d(x, k)
    np.testing.assert_array_equal(result, planned)
    np.testing.assert_allclose(result, naive.corr2d(x, k), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-3)
    tiled = kernel in [(3, 3), (5, 5)] and dtype in (np.float32, np.float64)
    assert len(plans) == (0 if tiled else 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", [(2, 4), (4, 2), (5, 3), (6, 6), (7, 3), (8, 9), (15, 15)])
def test_the_wide_tile_matches_the_loops_at_every_block_edge(dtype, kernel, rng):
    """Kernels on the register tile, their height known when compiling (short ones) or not:
    blocks of rows and columns, whole, one past, one short, with the overlapping last block in
    the same task as the block before it; twins bit for bit."""
    kh, kw = kernel
    mr, nr = simd.TILE_ROWS, corr._wide_columns(np.dtype(dtype))
    for rows, columns in [(mr, nr), (mr + 1, nr + 1), (2 * mr - 1, 2 * nr - 1), (3 * mr + 2, 2 * nr + 1)]:
        x = (rng.standard_normal((rows + kh + 1, columns + kw + 2)) * 8).astype(dtype)
        k = (rng.standard_normal(kernel) * 8).astype(dtype)
        shape = (rows + 2, columns + 3)  # one row and column of border around the interior on each side
        r0, r1, c0, c1, dr, dc = 1, rows + 1, 1, columns + 1, 0, 0
        expected = naive.shifted_correlation(x, k, shape, 1, 1, "fill", dtype(0))
        assert corr._wide_fits(np.dtype(dtype), kernel, r1 - r0, c1 - c0) or simd.VECTOR_BITS < 512 and kh < 7
        packed, offsets = corr._wide_operands(k, x.shape[1])
        interior = _interior_of_twins(
            lambda twin, out, step: getattr(corr.wide, twin)(x, packed, offsets, out, r0, r1, c0, c1, dr - 1, dc - 1,
                                                             nr, corr._wide_rows(kh), step), shape, dtype, [1, 2])
        tolerance = dict(rtol=1e-4, atol=1e-2) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(interior, expected[r0:r1, c0:c1], **tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", [(3, 4), (6, 2), (7, 4), (9, 5)])
def test_the_wide_tile_puts_inf_and_nan_where_the_loops_do(dtype, kernel, rng):
    """An inf or NaN in ``x`` reaches only the outputs whose taps read it, with the loops' sign,
    at a block's first and last rows and columns too: the tile multiplies no value of ``x`` by a
    weight from outside the kernel."""
    (kh, kw), mr, nr = kernel, simd.TILE_ROWS, corr._wide_columns(np.dtype(dtype))
    x = (rng.standard_normal((2 * mr + kh + 2, 2 * nr + kw + 1)) * 8).astype(dtype)
    for value, (i, j) in [(np.inf, (0, 0)), (-np.inf, (kh + 2, nr)), (np.nan, (mr + 3, 5)), (np.inf, (mr + 5, 7)),
                          (-np.inf, (-1, -1))]:
        x[i, j] = value
    k = (rng.standard_normal(kernel) * 8).astype(dtype)
    with np.errstate(invalid="ignore"):  # an inf and a -inf in one output's taps
        expected = naive.corr2d(x, k)
    oh, ow = expected.shape
    packed, offsets = corr._wide_operands(k, x.shape[1])
    for twin, step in [("serial", 10**6), ("parallel", 1)]:
        out = np.full(expected.shape, 7, dtype)
        getattr(corr.wide, twin)(x, packed, offsets, out, 0, oh, 0, ow, 0, 0, nr, corr._wide_rows(kh), step)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
        np.testing.assert_array_equal(np.isposinf(out), np.isposinf(expected))
        np.testing.assert_array_equal(np.isneginf(out), np.isneginf(expected))
        assert np.isinf(expected).any() and np.isnan(expected).any() and np.isfinite(expected).any()
        finite = np.isfinite(expected)
        np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-2)


def _interior_of_twins(run, shape, dtype, parallel_steps):
    """``run(twin, out, step)`` on an output of ``shape`` with one row and column of border
    before its interior and one row and two columns after it: the serial twin and the parallel
    one at each step must write the interior alone, the same bits each; that interior."""
    results = []
    for twin, step in [("serial", 10**6)] + [("parallel", step) for step in parallel_steps]:
        out = np.full(shape, 7, dtype)
        run(twin, out, step)
        np.testing.assert_array_equal(out[[0, -1]], 7)  # nothing outside the interior is written
        np.testing.assert_array_equal(out[:, [0, -2, -1]], 7)
        results.append(out[1:-1, 1:-2])
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)
    return results[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size, loop, mr", [(5, corr.tile5x5, corr.BAND_ROWS), (3, corr.band3x3, corr.BAND3_ROWS)],
                         ids=["5x5", "3x3"])
def test_the_band_tiles_match_the_loops_at_every_block_edge(dtype, size, loop, mr, rng):
    """Blocks of BAND_ROWS (5x5) or BAND3_ROWS (3x3) rows, the last overlapping, tasks shorter
    than a block, rows of a vector and around it, narrower rows one element at a time; twins
    bit for bit."""
    lanes = simd.lanes(np.dtype(dtype).itemsize)
    for rows, columns in itertools.product([1, mr - 1, mr, mr + 1, 2 * mr - 1, 3 * mr + 2],
                                           [1, lanes - 1, lanes, lanes + 1, 2 * lanes - 1, 3 * lanes + 5]):
        x = (rng.standard_normal((rows + size + 1, columns + size + 2)) * 8).astype(dtype)
        k = (rng.standard_normal((size, size)) * 8).astype(dtype)
        shape = (rows + 2, columns + 3)  # border rows and columns around the interior
        r0, r1, c0, c1 = 1, rows + 1, 1, columns + 1
        expected = naive.shifted_correlation(x, k, shape, 1, 1, "fill", dtype(0))
        interior = _interior_of_twins(
            lambda twin, out, step: getattr(loop, twin)(x, k, out, r0, r1, c0, c1, -1, -1, step),
            shape, dtype, [1, mr, mr + 1])
        tolerance = dict(rtol=1e-4, atol=1e-2) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(interior, expected[r0:r1, c0:c1], **tolerance)


def windows_weight_grad(x, dy, kernel, pads):
    """conv2d's weight gradient for stride 1 as one einsum over the padded input's windows, in float64."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))
    return np.einsum("noij,ncijab->ocab", np.asarray(dy, np.float64), windows)


def test_the_window_reference_is_the_loops(rng):
    x, dy = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((2, 4, 5, 6))
    np.testing.assert_allclose(windows_weight_grad(x, dy, (3, 4), ((1, 1), (1, 2))),
                               naive.conv2d_weight_grad(x, (4, 3, 3, 4), dy, padding="same"), rtol=1e-12)


def weight_grad_gemm_cases():
    """Columns ``kw * C`` of one tile width less one, one, one more and two and a part; output
    channels around the tile's rows; positions around a chunk, and past all the parts."""
    mr, chunk, parts = simd.TILE_ROWS, conv._GEMM_CHUNK, conv._GEMM_PARTS
    for dtype in (np.float32, np.float64):
        width = simd.TILE_VECTORS * simd.lanes(np.dtype(dtype).itemsize)
        for columns, o in [(width - 1, mr), (width, 1), (width + 1, mr - 1), (2 * width + 5, mr + 1), (width, 2 * mr + 1)]:
            for kw in (1, 3):
                if columns % kw == 0:
                    yield dtype, (1, columns // kw, 3, 5, o, 3, kw), 1
        c = -(-width // 3)
        for n, h, w in [(1, 1, 1), (1, 3, chunk // 3 - 1), (1, 1, chunk), (1, 1, chunk + 1), (2, 5, chunk // 4 + 3),
                        (1, 2 * parts + 1, chunk // 2 + 1)]:
            yield dtype, (n, c, h, w, mr + 3, 3, 3), 1
        yield dtype, (2, c, 6, 9, mr, 2, 4), "same"


@pytest.mark.parametrize("dtype, shapes, padding", list(weight_grad_gemm_cases()))
def test_the_weight_gradient_on_the_tile_matches_the_loops_at_every_edge(dtype, shapes, padding, rng):
    """Serial and parallel, bit for bit, against the window sums (and the loops where they are quick),
    with an inf and a NaN in the input and an inf in dY next to the padding."""
    n, c, h, w, o, kh, kw = shapes
    x, w_shape = rng.standard_normal((n, c, h, w)).astype(dtype), (o, c, kh, kw)
    if padding == "same":
        pads = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    else:
        pads = ((padding, padding), (padding, padding))
    oh, ow = h + sum(pads[0]) - kh + 1, w + sum(pads[1]) - kw + 1
    dy = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    x[0, c - 1, h // 2, w - 1], x[-1, 0, 0, 0], dy[-1, o - 1, 0, ow - 1] = np.inf, np.nan, -np.inf
    results = []
    for work in (1, 2**62):
        dw = np.full(w_shape, 7, dtype)
        conv.weight_grad_gemm(x, dy, dw, pads[0][0], pads[1][0], work)
        results.append(dw)
    np.testing.assert_array_equal(results[0], results[1])
    with np.errstate(invalid="ignore"):
        expected = windows_weight_grad(x, dy, (kh, kw), pads)
        if n * o * oh * ow * c * kh * kw < 20000:
            loops = naive.conv2d_weight_grad(x, w_shape, dy, padding=padding)
            np.testing.assert_array_equal(np.isnan(expected), np.isnan(loops))
    assert np.isnan(expected).any()
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    atol = rtol * np.abs(expected[np.isfinite(expected)]).max(initial=1.0)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol)


def test_dot_blocks_load_the_fewest_vectors():
    full, narrow, taps = simd.DOT_ROWS, simd.DOT_ROWS - 1, simd.DOT_TAPS
    for count in range(1, 4 * full + 1):
        loads = {rows: -(-count // rows) * (rows + taps) for rows in (full, narrow)}
        assert simd.dot_rows(count) == (narrow if loads[narrow] < loads[full] else full)
    assert simd.dot_rows(4 * full) == full
    if (full, taps) == (4, 5):  # AVX-512: LeNet's six output channels as two blocks of three
        assert simd.dot_rows(6) == 3 and simd.dot_rows(7) == 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("twin", ["serial", "parallel"])
def test_the_weight_gradient_dots_match_the_loops_for_any_count_of_output_channels(dtype, twin, rng):
    """Full and narrow blocks of output channels (one to three blocks, and groups), against the loops."""
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    for o, c, groups, k, padding in [(1, 1, 1, 5, 0), (2, 3, 1, 3, 1), (3, 2, 1, 3, 0), (5, 1, 1, 5, 2),
                                     (6, 1, 1, 5, 0), (7, 2, 1, 3, 1), (9, 1, 1, 3, 1), (6, 4, 2, 3, 1)]:
        x = rng.standard_normal((2, c, 9, 11)).astype(dtype)
        w_shape = (o, c // groups, k, k)
        dy = rng.standard_normal((2, o, 9 + 2 * padding - k + 1, 11 + 2 * padding - k + 1)).astype(dtype)
        dw = np.full(w_shape, np.nan, dtype)
        with run_as(twin):
            conv.weight_grad_dots(x, dy, dw, 1, 1, padding, padding, groups, 0)
        expected = naive.conv2d_weight_grad(x, w_shape, dy, padding=padding, groups=groups)
        np.testing.assert_allclose(dw, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_the_weight_gradient_takes_the_tile_where_half_of_it_is_kept():
    mr, width = simd.TILE_ROWS, simd.TILE_VECTORS * simd.lanes(4)
    assert conv.gemm_pays(width // 3, mr, 3, 4) and conv.gemm_pays(64, 64, 3, 4)
    assert not conv.gemm_pays(width // 3, mr // 2 - 1, 3, 4)  # few output channels
    assert not conv.gemm_pays(1, 64, 5, 4) and not conv.gemm_pays(width // 8, 2 * mr, 3, 4)  # few columns
    assert conv.gemm_pays(width // 2, mr, 1, 4) and not conv.gemm_pays(width // 2 - 1, mr, 1, 4)


def test_the_forward_tile_is_taken_from_three_quarters_of_its_rows():
    rows = simd.TILE_ROWS
    assert conv.tile_pays(rows) and conv.tile_pays(2 * rows + 1) and conv.tile_pays(-(-3 * rows // 4))
    assert not conv.tile_pays(-(-3 * rows // 4) - 1) and not conv.tile_pays(1)


def test_the_wide_tile_is_taken_only_where_it_fits():
    f32, f64, c128 = (np.dtype(t) for t in (np.float32, np.float64, np.complex128))
    assert corr._wide_fits(f32, (7, 1), simd.TILE_ROWS, corr._wide_columns(f32))
    full = simd.VECTOR_BITS >= 512  # short kernels take the tile with 512-bit vectors only
    assert corr._wide_fits(f32, (6, 9), 100, 100) == full and corr._wide_fits(f32, (2, 4), 100, 100) == full
    assert corr._wide_fits(f32, (4, 2), 100, 100) == full and corr._wide_fits(f32, (7, 1), 100, 100)
    assert not corr._wide_fits(f32, (2, 3), 100, 100)  # few taps: the rows loop is faster
    assert not corr._wide_fits(f32, (1, 31), 100, 100)  # one kernel row: so is it
    assert not corr._wide_fits(f32, (9, 9), simd.TILE_ROWS - 1, 100)
    assert not corr._wide_fits(f64, (9, 9), 100, corr._wide_columns(f64) - 1)
    assert not corr._wide_fits(c128, (9, 9), 100, 100)


@pytest.mark.parametrize(
    "shape, kernel, out, pad, interior, loop",
    [((64, 64), (3, 3), (62, 62), (0, 0), (0, 62, 0, 62), "band3x3"),
     ((64, 64), (5, 5), (64, 64), (2, 2), (2, 62, 2, 62), "tile5x5"),
     ((64, 64), (3, 4), (66, 67), (2, 3), (2, 64, 3, 64), "rows"),
     ((64, 4), (3, 9), (64, 4), (1, 4), (0, 0, 0, 0), None),
     ((1024, 1024), (15, 15), (1010, 1010), (0, 0), (0, 1010, 0, 1010), "rows"),
     # interiors narrower than the kernel (a gradient's weights) and one as wide
     ((256, 256), (254, 254), (3, 3), (0, 0), (0, 3, 0, 3), "dots"),
     ((64, 64), (40, 9), (25, 56), (0, 0), (0, 25, 0, 56), "rows"),
     ((64, 64), (40, 9), (25, 8), (0, 0), (0, 25, 0, 8), "dots"),
     ((64, 64), (40, 9), (25, 9), (0, 0), (0, 25, 0, 9), "rows"),
     # an interior one output narrower than a tile block (the 3x3 tile runs it in one loop)
     ((64, 64), (3, 3), (64, 64), (1, 65 - corr.ROW_BLOCK), (1, 63, 65 - corr.ROW_BLOCK, 64), "band3x3"),
     ((64, 64), (5, 5), (64, 64), (2, 65 - corr.ROW_BLOCK), (2, 62, 65 - corr.ROW_BLOCK, 64), "tile5x5")],
)
def test_plan_splits_interior_and_border(shape, kernel, out, pad, interior, loop):
    assert corr.plan(np.dtype(np.float64), shape, kernel, out, *pad) == (interior, loop and getattr(corr, loop))


def test_the_band_tiles_are_planned_for_float32_and_float64_only():
    for dtype, loop in [(np.float32, corr.tile5x5), (np.float64, corr.tile5x5), (np.complex128, corr.rows), (np.int64, corr.rows)]:
        assert corr.plan(np.dtype(dtype), (64, 64), (5, 5), (60, 60), 0, 0) == ((0, 60, 0, 60), loop)
    for dtype, loop in [(np.float32, corr.band3x3), (np.float64, corr.band3x3), (np.complex128, corr.tile3x3),
                        (np.int64, corr.tile3x3)]:
        assert corr.plan(np.dtype(dtype), (64, 64), (3, 3), (62, 62), 0, 0) == ((0, 62, 0, 62), loop)


def _doubled(a):
    for i in numba.prange(a.shape[0]):
        a[i] *= 2


def test_pick_runs_small_work_serially_and_compiles_a_parallel_twin_on_its_second_call(monkeypatch, tmp_path):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "first"))
    loop = _kernels.Kernel(_doubled)
    assert loop.pick(_kernels.SERIAL_WORK - 1) is loop.serial
    assert loop.pick(_kernels.SERIAL_WORK) is loop.serial  # neither compiled nor cached: a one-off call runs serial
    assert loop.pick(_kernels.SERIAL_WORK) is loop.parallel
    assert loop.pick(_kernels.SERIAL_WORK - 1) is loop.serial
    eager = _kernels.Kernel(_doubled)
    assert eager.pick(_kernels.EAGER_WORK) is eager.parallel
    a = np.arange(5.0)
    loop.parallel(a)  # compiled, and saved in the cache
    np.testing.assert_array_equal(a, 2 * np.arange(5.0))
    cached = _kernels.Kernel(_doubled)
    assert cached.pick(_kernels.SERIAL_WORK) is cached.parallel
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "second"))
    compiled = _kernels.Kernel(_doubled)
    compiled.parallel(a)  # compiled in this process (and saved in a cache no other kernel reads)
    assert compiled.pick(_kernels.SERIAL_WORK) is compiled.parallel
    with _kernels.forced("serial"):
        assert compiled.pick(1 << 40) is compiled.serial
    with _kernels.forced("parallel"):
        fresh = _kernels.Kernel(_doubled)
        assert fresh.pick(0) is fresh.parallel
    assert fresh.pick(_kernels.SERIAL_WORK - 1) is fresh.serial


def test_twins_have_their_own_cache_entries():
    assert corr.stack.serial.py_func.__qualname__ != corr.stack.parallel.py_func.__qualname__


def test_an_interior_loops_serial_twin_is_its_body_over_every_row():
    x, k = np.arange(42.0).reshape(6, 7), np.array([[1.0, -2.0], [0.5, 3.0]])
    for loop in INTERIOR_LOOPS:
        assert not isinstance(loop.serial, numba.core.registry.CPUDispatcher)
    out = np.full((5, 6), np.nan)
    corr.rows.serial(x, k, out, 1, 4, 2, 5, 0, 0, 1)
    expected = np.full((5, 6), np.nan)
    expected[1:4, 2:5] = naive.corr2d(x, k)[1:4, 2:5]
    np.testing.assert_allclose(out, expected, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_finite_check_reads_its_span_with_plain_vector_loads(dtype):
    """A loop from a run-time start keeps Numba's negative-index wraparound, which x86 LLVM
    vectorises into a gather per vector of elements (several times slower)."""
    from fastcorr._kernels import scan

    fresh = numba.njit(fastmath=_kernels._fastmath(True), **_kernels._OPTIONS)(scan.finite_span.py_func)  # uncached
    a = np.ones(100, dtype)
    assert fresh(a, 3, 97) and not fresh(np.r_[a, np.inf], 3, 101)
    asm = fresh.inspect_asm(fresh.signatures[0]).lower()
    assert "gather" not in asm


@pytest.mark.parametrize("twin", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, None])
def test_finite_finds_any_inf_or_nan(twin, dtype, bad, rng):
    from fastcorr._kernels import scan

    with run_as(twin):
        for shape in [(1,), (0, 3), (2, 3, 4, 5), (3, 1000)]:
            a = (rng.uniform(-1, 1, shape) * np.finfo(dtype).max).astype(dtype)  # large, but finite
            if bad is not None and a.size:
                a.reshape(-1)[rng.integers(a.size)] = bad
            assert scan.all_finite(a) == (bad is None or not a.size)
            flags = np.empty(7, bool)  # spans of every length, the last one short or empty
            scan.finite_spans.serial(a.reshape(-1), flags, -(-a.size // 7))
            assert flags.all() == (bad is None or not a.size)


# (id, kernel, N, C, H, W, O, kh, kw, geometry): every block edge of the conv loops: four output
# channels per block with a partial last block, row chunks of 4096 elements, padding, dilation, groups.
CONV_TWINS = [
    ("3x3 tiles, three row chunks", 2, 3, 70, 130, 6, 3, 3, (1, 1, 1, 1, 1, 1, 1)),
    ("one channel per block", 1, 2, 64, 70, 1, 2, 3, (1, 1, 1, 1, 0, 2, 1)),
    ("taps, dilation, groups", 2, 4, 40, 90, 6, 2, 5, (1, 1, 2, 1, 1, 0, 2)),
    ("strided", 2, 3, 41, 45, 5, 3, 2, (2, 3, 1, 2, 1, 1, 1)),
]


def conv_operands(dtype, n, c, h, w, o, kh, kw, geometry, seed=3):
    rng = np.random.default_rng(seed)
    sh, sw, dh, dw, pt, pl, groups = geometry
    oh = (h + 2 * pt - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pl - dw * (kw - 1) - 1) // sw + 1
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c // groups, kh, kw)).astype(dtype)
    dy = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, weight, rng.standard_normal(o).astype(dtype), dy


ROWS, LANES32, LANES64 = simd.CHANNEL_ROWS, simd.lanes(4), simd.lanes(8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, c, o, groups, pad, extra_rows, extra_columns", [
    (3, 1, 1, 1, 1, 0, 0),  # one block of rows by one vector, exactly
    (3, 2, 2, 2, 1, 1, 1),  # the last block overlaps in both directions
    (5, 4, 2, 2, 2, 3, 5),
    (5, 1, 1, 1, 0, ROWS + 1, 0),  # no padding, three blocks of rows
    (5, 6, 1, 1, 4, 1, 3),  # a one-channel layer's input gradient: padding kernel - 1
    (3, 3, 5, 1, 1, 2, 1),  # several output channels
    (3, 4, 6, 2, 0, 0, 2),  # several output channels a group
    (3, 2, 1, 1, 1, ROWS // 2 + 1, 0),  # more than half a block over: a whole block overlapping
    (5, 2, 3, 1, 2, ROWS + ROWS // 2, 1),  # exactly half a block over: a half block
])
def test_channel_band_against_the_loops_with_inf_and_nan(dtype, k, c, o, groups, pad, extra_rows, extra_columns):
    """The channel band: naive.py's sums for every block edge, padding, channel count and group,
    inf and NaN where they land (inf weights meet the padding's zeros: NaN), twins bit for bit."""
    lanes = LANES32 if dtype == np.float32 else LANES64
    oh, ow = ROWS + extra_rows, lanes + extra_columns
    h, w = oh + k - 1 - 2 * pad, ow + k - 1 - 2 * pad
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c // groups, k, k)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    x[0, 0, h // 2, w - 1], x[1, c - 1, 0, 0] = np.inf, np.nan
    weight[-1, 0, 0, k - 1] = -np.inf
    assert conv.band_fits(weight.shape, (2, o, oh, ow), 1, 1, x.itemsize)
    wp, size = conv.flat_geometry(x.shape, weight.shape, (2, o, oh, ow), 1, 1, pad)
    results = []
    for twin in ("serial", "parallel"):
        results.append(np.full((2, o, oh, ow), 7, dtype))
        getattr(conv.channel_band, twin)(x, weight, bias, results[-1], groups, pad, pad, wp, size)
    np.testing.assert_array_equal(results[0], results[1])
    with np.errstate(invalid="ignore"):
        expected = naive.conv2d(x, weight, bias, padding=pad, groups=groups)
    assert np.isnan(expected).any() and np.isinf(expected).any()
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[0], expected, rtol=tolerance, atol=tolerance * 10 * k * k * c)


def test_layers_over_few_channels_run_on_the_channel_band(monkeypatch, rng):
    """Depthwise layers, a one-channel layer's input gradient, 3x3 over up to eight channels and 5x5
    over one run on the band; 5x5 over six channels with 16 outputs on the tile."""
    import fastcorr as fc

    runs = []
    band = conv.channel_band

    class Spy:
        def pick(self, work):
            twin = band.pick(work)
            return lambda *args: runs.append(args[3].shape) or twin(*args)

    monkeypatch.setattr(conv, "channel_band", Spy())
    for x_shape, w_shape, geometry, banded in [
        ((2, 8, 20, 24), (8, 1, 3, 3), dict(padding=1, groups=8), True),
        ((2, 8, 20, 24), (16, 8, 3, 3), dict(padding=1), True),
        ((2, 9, 20, 24), (16, 9, 3, 3), dict(padding=1), False),
        ((2, 1, 20, 24), (16, 1, 5, 5), {}, True),
        ((2, 6, 20, 24), (16, 6, 5, 5), dict(padding=2), False),
    ]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        runs.clear()
        y = fc.conv2d(x, w, **geometry, method="direct")
        np.testing.assert_allclose(y, naive.conv2d(x, w, **geometry), rtol=1e-12, atol=1e-12)
        assert runs == ([y.shape] if banded else [])
    w5, dy = rng.standard_normal((6, 1, 5, 5)), rng.standard_normal((3, 6, 12, 20))
    runs.clear()
    np.testing.assert_allclose(fc.conv2d_input_grad((3, 1, 16, 24), w5, dy), naive.conv2d_input_grad((3, 1, 16, 24), w5, dy),
                               rtol=1e-12, atol=1e-12)
    assert runs == [(3, 1, 16, 24)]


@pytest.mark.parametrize("shapes, fits", [
    (((6, 1, 5, 5), (2, 6, ROWS, LANES64), 1, 1, 8), True),
    (((6, 1, 5, 5), (2, 6, ROWS - 1, LANES64), 1, 1, 8), False),  # too few rows
    (((6, 1, 5, 5), (2, 6, ROWS, LANES64 - 1), 1, 1, 8), False),  # narrower than a vector
    (((6, 1, 4, 4), (2, 6, ROWS, LANES64), 1, 1, 8), False),  # no band for 4x4
    (((6, 1, 3, 3), (2, 6, ROWS, LANES64), 2, 1, 8), False),  # dilated
    (((1, 6, 3, 3), (2, 1, ROWS, LANES32), 1, 1, 4), True),
])
def test_band_fits_3x3_or_5x5_undilated_outputs_of_a_block_of_rows_and_a_vector(shapes, fits):
    assert conv.band_fits(*shapes) is fits


@pytest.mark.parametrize("rows", [1, 4, 5, 6, 8, 64])
def test_band_pays_where_the_tile_does_not_and_for_3x3_on_up_to_8_or_5x5_on_1_channel(rows):
    for channels, kh in [(1, 3), (8, 3), (9, 3), (1, 5), (2, 5), (64, 5)]:
        expected = not conv.tile_pays(rows) or channels <= (8 if kh == 3 else 1)
        assert conv.band_pays(rows, channels, kh) is expected
    assert conv.band_pays(rows, 9, 3) is conv.band_pays(rows, 2, 5) is not conv.tile_pays(rows)


def twins_agree(kernel, make_out, args):
    results = []
    for twin in (kernel.serial, kernel.parallel):
        out = make_out()
        twin(*args(out))
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_TWINS, ids=[case[0] for case in CONV_TWINS])
def test_conv_twins_agree_bit_for_bit(case, dtype):
    _, n, c, h, w, o, kh, kw, geometry = case
    x, weight, bias, dy = conv_operands(dtype, n, c, h, w, o, kh, kw, geometry)
    sh, sw, dh, dw, pt, pl, groups = geometry
    new = lambda shape: lambda: np.full(shape, np.nan, dtype)  # noqa: E731
    twins_agree(conv.forward, new(dy.shape), lambda out: (x, weight, bias, out, *geometry))
    twins_agree(conv.input_grad, new(x.shape), lambda out: (dy, weight, out, *geometry))
    twins_agree(conv.weight_grad, new(weight.shape), lambda out: (x, dy, out, *geometry))
    if sh == sw == 1:
        for run, shape in [(lambda out: conv.tiled(x, weight, bias, out, dh, dw, pt, pl, groups, 0), dy.shape),
                           (lambda out: conv.weight_grad_dots(x, dy, out, dh, dw, pt, pl, groups, 0), weight.shape)]:
            results = []
            for twin in ("serial", "parallel"):
                results.append(new(shape)())
                with run_as(twin):
                    run(results[-1])
            np.testing.assert_array_equal(results[0], results[1])
        wp, size = conv.flat_geometry(x.shape, weight.shape, dy.shape, dh, dw, pl)
        twins_agree(conv.pad_planes, new((n, c, size)), lambda xp: (x, xp, pt, pl, wp, np.empty(n * c, bool)))
        switches = conv.flat_switches(weight.shape, groups, dw)
        twins_agree(conv.forward_flat, new(dy.shape),
                    lambda out: (x, weight, bias, out, dh, dw, groups, pt, pl, wp, size, *switches))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, o, groups, dilation", [((3, 3), 5, 1, 1), ((3, 3), 4, 2, 2), ((3, 3), 2, 2, 1),
                                                         ((2, 3), 5, 1, 1), ((2, 3), 6, 2, (1, 2)), ((1, 1), 1, 1, 1)])
def test_the_flat_forward_matches_the_loops_under_every_switch(dtype, kernel, o, groups, dilation, rng):
    """Each choice of forward_flat's switches (the plan's and every other, which runs the general
    loops) against naive.py, output-channel blocks of four and of one, with inf and NaN."""
    kh, kw = kernel
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    x = rng.standard_normal((2, 4, 9, 11)).astype(dtype)
    x[0, 1, 4, 5], x[1, 3, 0, 0] = np.inf, np.nan
    weight = rng.standard_normal((o, 4 // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    pt, pl = dh * (kh // 2), dw * (kw // 2)
    expected = naive.conv2d(x, weight, bias, padding=(pt, pl), dilation=(dh, dw), groups=groups)
    out = np.empty(expected.shape, dtype)
    wp, size = conv.flat_geometry(x.shape, weight.shape, out.shape, dh, dw, pl)
    planned = conv.flat_switches(weight.shape, groups, dw)
    assert planned == (True if kernel == (3, 3) else None, True if dw == 1 and (o // groups) % 4 == 1 else None)
    for twin, switches in itertools.product(("serial", "parallel"), itertools.product((None, True), repeat=2)):
        if switches[0] and kernel != (3, 3):
            continue  # three: a 3x3 kernel's loop
        out[...] = 7
        getattr(conv.forward_flat, twin)(x, weight, bias, out, dh, dw, groups, pt, pl, wp, size, *switches)
        tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out, expected, **tolerance, err_msg=f"{twin} {switches}")


@pytest.mark.parametrize("twin", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padded_planes_find_any_inf_or_nan_they_copy(twin, dtype, rng):
    """The planes' copy for Winograd also says whether they are finite: a single inf or NaN
    anywhere (first and last plane, row ends) is found; the copy is the same either way."""
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    wp, size = 9, 8 * 9 + 2
    with run_as(twin):
        clean, finite = conv.padded_planes(x, size, 1, 1, wp, x.size, check=True)
        assert finite and conv.padded_planes(x, size, 1, 1, wp, x.size)[1] is None
        for at, bad in itertools.product([(0, 0, 0, 0), (1, 2, 4, 6), (1, 0, 2, 0), (0, 2, 0, 6)],
                                         [np.inf, -np.inf, np.nan]):
            spoiled = x.copy()
            spoiled[at] = bad
            copy, finite = conv.padded_planes(spoiled, size, 1, 1, wp, x.size, check=True)
            assert not finite
            expected = clean.copy()
            expected[at[0], at[1], (at[2] + 1) * wp + at[3] + 1] = bad
            np.testing.assert_array_equal(copy, expected)
            np.testing.assert_array_equal(conv.padded_planes(spoiled, size, 1, 1, wp, x.size)[0], expected)


@pytest.mark.parametrize("twin", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_channels_last_copy_finds_any_inf_or_nan(twin, dtype, rng):
    """The NHWC copy of the weight gradient's Winograd says whether its input is finite too."""
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    hp, wp = 8, 10
    with run_as(twin):
        clean, finite = conv.laid_channels_last(x, hp, wp, 1, 2, 4, x.size, check=True)
        assert finite and conv.laid_channels_last(x, hp, wp, 1, 2, 4, x.size)[1] is None
        np.testing.assert_array_equal(clean[:-4].reshape(2, hp, wp, 3)[:, 1:6, 2:9], x.transpose(0, 2, 3, 1))
        for at, bad in itertools.product([(0, 0, 0, 0), (1, 2, 4, 6), (0, 2, 0, 6)], [np.inf, np.nan]):
            spoiled = x.copy()
            spoiled[at] = bad
            copy, finite = conv.laid_channels_last(spoiled, hp, wp, 1, 2, 4, x.size, check=True)
            expected = clean.copy()
            expected[((at[0] * hp + at[2] + 1) * wp + at[3] + 2) * 3 + at[1]] = bad
            assert not finite
            np.testing.assert_array_equal(copy, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8])
@pytest.mark.parametrize("shape", [(1,), (100,), (3, 5000), (257, 1024), (0, 3)])
def test_scratch_arrays_start_on_a_cache_line(shape, dtype):
    a = scratch.empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % simd.LINE == 0 or a.size == 0


def _block_of(a):
    return a.base.ctypes.data


def test_scratch_memory_is_reused_only_once_nothing_refers_to_it():
    """Two live scratch arrays never share memory, nor does a live view of one with a new one; a
    block is reused once every array made from it is gone, by a request of any dtype that fits."""
    a = scratch.empty((1000,), np.float64)
    b = scratch.empty((1000,), np.float64)
    assert _block_of(a) != _block_of(b)
    view, first = a[10:].reshape(2, -1), _block_of(a)
    del a
    c = scratch.empty((1000,), np.float64)
    assert _block_of(c) not in (first, _block_of(b))
    c[...], view[...] = 2.0, 1.0
    assert (c == 2.0).all()
    blocks, kept = {first, _block_of(b), _block_of(c)}, scratch.kept_bytes()
    del view, b, c
    d = scratch.empty((3, 500), np.float32)  # the smallest free blocks that fit are those three
    assert _block_of(d) in blocks and scratch.kept_bytes() == kept


def test_scratch_keeps_memory_per_thread_up_to_keep_bytes(monkeypatch):
    import threading

    monkeypatch.setattr(scratch, "KEEP_BYTES", 1 << 20)
    monkeypatch.setattr(scratch, "_local", threading.local())  # nothing kept yet
    big = scratch.empty((2 << 20,), np.uint8)  # above KEEP_BYTES: not kept
    assert scratch.kept_bytes() == 0 and big.ctypes.data % simd.LINE == 0
    mine = scratch.empty((100,), np.float64)
    other = {}

    def run():
        other["array"] = scratch.empty((100,), np.float64)
        other["kept"] = scratch.kept_bytes()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert _block_of(other["array"]) != _block_of(mine) and other["kept"] > 0
    held = [scratch.empty((300 << 10,), np.uint8) for _ in range(5)]  # 1.5 MiB alive: the last ones not kept
    assert scratch.kept_bytes() <= 1 << 20
    assert len({_block_of(a) for a in held}) == 5


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("elements", [1, 15, 16, 17, 31, 32, 33, 100, 784])
def test_odd_lines_round_up_to_an_odd_number_of_cache_lines(elements, itemsize):
    padded = simd.odd_lines(elements, itemsize)
    lines, rest = divmod(padded * itemsize, simd.LINE)
    assert rest == 0 and lines % 2 == 1 and elements <= padded < elements + 2 * simd.LINE // itemsize


@numba.njit
def _transposed(dst, d_off, d_pitch, src, s_off, s_pitch, rows, columns):
    simd.transpose(dst, d_off, d_pitch, src, s_off, s_pitch, rows, columns)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_transpose_writes_its_block_and_nothing_else(dtype):
    """Every block size up to a vector by a vector; the rest of ``dst`` untouched."""
    n = simd.lanes(np.dtype(dtype).itemsize)
    src = np.arange(1, 1 + 50 * (n + 1), dtype=dtype)
    for rows, columns in itertools.product(range(n + 1), repeat=2):
        dst = np.full(45 * (n + 1), -1, dtype)
        _transposed(dst, 7, 45, src, 3, 50, rows, columns)
        expected = np.full_like(dst, -1)
        expected[7 : 7 + 45 * n].reshape(n, 45)[:columns, :rows] = src[3 : 3 + 50 * n].reshape(n, 50)[:rows, :columns].T
        np.testing.assert_array_equal(dst, expected, err_msg=f"{rows} rows, {columns} columns")


@numba.njit
def _nine_taps(acc, lda, x, x_base, pitch, dw, w, w_base, w_step, m):
    simd.nine_taps(acc, lda, x, x_base, pitch, dw, w, w_base, w_step, m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nine_taps_add_a_3x3_kernel_to_four_rows_at_every_length(dtype, rng):
    """Lengths around one and two vectors (the pair, single-vector and one-element loops), taps
    ``dw`` apart, inf and NaN in x; what lies past ``m`` and between the rows is not touched."""
    lanes = simd.lanes(np.dtype(dtype).itemsize)
    lda, pitch, dw, x_base, w_base, w_step = 5 * lanes + 3, 3 * lanes + 1, 2, 3, 2, 11
    x = rng.standard_normal(x_base + 2 * pitch + 2 * dw + 5 * lanes).astype(dtype)
    x[x_base + pitch + dw + 1], x[x_base + 2 * pitch + 4 * dw] = np.inf, np.nan
    w = rng.standard_normal(w_base + 3 * w_step + 9).astype(dtype)
    for m in sorted({0, 1, lanes - 1, lanes, lanes + 1, 2 * lanes - 1, 2 * lanes, 2 * lanes + 1, 5 * lanes - 1}):
        acc = rng.standard_normal(4 * lda).astype(dtype)
        expected = acc.astype(np.float64)
        for q, a, b in itertools.product(range(4), range(3), range(3)):
            tap = np.float64(w[w_base + q * w_step + 3 * a + b])
            start = x_base + a * pitch + b * dw
            expected[q * lda : q * lda + m] += tap * x[start : start + m]
        _nine_taps(acc, lda, x, x_base, pitch, dw, w, w_base, w_step, m)
        tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(acc, expected.astype(dtype), **tolerance, err_msg=f"m={m}")


def test_nine_taps_refuse_arrays_that_are_not_flat():
    acc = np.zeros((4, 8))
    with pytest.raises(numba.core.errors.TypingError, match="nine_taps: acc must be a 1-D C-contiguous array of float64"):
        _nine_taps(acc, 8, np.zeros(40), 0, 8, 1, np.zeros(36), 0, 9, 8)
    with pytest.raises(numba.core.errors.TypingError, match="nine_taps: acc must hold float32 or float64, got array"):
        _nine_taps(np.zeros(32, np.int64), 8, np.zeros(40, np.int64), 0, 8, 1, np.zeros(36, np.int64), 0, 9, 8)


def test_intrinsic_operands_share_one_check():
    """float_operands: the first array's float dtype, every array 1-D and C-contiguous in it,
    every table of int64; each failure names the intrinsic and the operand."""
    f32, f64, i64 = numba.types.float32[::1], numba.types.float64[::1], numba.types.int64[::1]
    assert simd.float_operands("t", ((f32, "c"), (f32, "a")), ((i64, "o"),)) == numba.types.float32
    for arrays, tables, message in [
        (((numba.types.int64, "c"),), (), "t: c must hold float32 or float64, got int64"),
        (((i64, "c"),), (), r"t: c must hold float32 or float64, got array\(int64"),
        (((f32, "c"), (f64, "a")), (), r"t: a must be a 1-D C-contiguous array of float32, got array\(float64"),
        (((f64, "c"), (numba.types.float64[:, ::1], "a")), (), "t: a must be a 1-D C-contiguous array of float64"),
        (((f32, "c"),), ((numba.types.int32[::1], "o"),), "t: o must be a 1-D C-contiguous array of int64"),
    ]:
        with pytest.raises(numba.core.errors.TypingError, match=message):
            simd.float_operands("t", arrays, tables)


@numba.njit
def _flat_numbered(a):
    """``simd.flat(a)``, its elements numbered in order through the view."""
    view = simd.flat(a)
    for j in range(view.shape[0]):
        view[j] = j
    return view


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (0, 3), (3, 0, 2)])
def test_flat_is_a_view_of_every_element_in_c_order(shape):
    a = np.full(shape, -1.0)
    view = _flat_numbered(a)
    assert view.shape == (a.size,) and (np.shares_memory(view, a) or a.size == 0)
    np.testing.assert_array_equal(a.ravel(), np.arange(a.size))  # written through the view
    del a  # the view keeps the memory alive
    np.testing.assert_array_equal(view, np.arange(view.size))


def test_flat_refuses_arrays_that_are_not_c_contiguous():
    with pytest.raises(numba.core.errors.TypingError, match="flat: a must be a C-contiguous array, got array"):
        _flat_numbered(np.ones((4, 6))[:, ::2])
    with pytest.raises(numba.core.errors.TypingError, match="flat: a must be a C-contiguous array, got array"):
        _flat_numbered(np.ones((4, 6)).T)


@pytest.mark.parametrize("twin", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_channels_last_copy_past_a_block_of_channels_and_pixels(twin, dtype, rng):
    """Channels and pixels one past a whole block, and a whole block of each: every value in
    place, zeros around and in the slack."""
    n = simd.lanes(np.dtype(dtype).itemsize)
    for c, w in [(n + 1, 2 * n + 1), (n, n), (2 * n + 3, n - 1)]:
        x = rng.standard_normal((2, c, 3, w)).astype(dtype)
        with run_as(twin):
            copy, _ = conv.laid_channels_last(x, 6, w + 3, 2, 1, 5, x.size)
        expected = np.zeros((2, 6, w + 3, c), dtype)
        expected[:, 2:5, 1 : w + 1] = x.transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(copy, np.concatenate([expected.ravel(), np.zeros(5, dtype)]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loops_ask_llvm_for_the_whole_vector_unit(dtype):
    """LLVM prefers 256-bit vectors on some AVX-512 CPUs; each loop sets its own width."""
    import numba

    from fastcorr._kernels import simd

    fresh = numba.njit(corr._rows_task.py_func)  # compiled here, not loaded from the cache
    x, k, out = np.ones((4, 1002), dtype), np.ones((3, 3), dtype), np.zeros((2, 1000), dtype)
    fresh(0, 2, x, k, out, 0, 1000, 0, 0)
    signature = fresh.signatures[0]
    assert f'"prefer-vector-width"="{simd.VECTOR_BITS}"' in fresh.inspect_llvm(signature)
    if simd.VECTOR_BITS == 512:
        assert "zmm" in fresh.inspect_asm(signature)
    np.testing.assert_array_equal(out, 9)


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("width, kernel, out_hw, dilation, pl", [
    (56, (3, 3), (56, 56), (1, 1), 1), (7, (5, 5), (3, 3), (1, 1), 0), (1, (1, 1), (1, 1), (1, 1), 0),
    (33, (2, 7), (40, 27), (3, 1), 0), (100, (3, 3), (5, 104), (2, 2), 4), (3, (1, 2), (200, 2), (1, 1), 0),
])
@pytest.mark.parametrize("channels, per_image", [(1, 1), (64, 1), (3, 8)])
def test_every_tile_reads_inside_its_band(itemsize, width, kernel, out_hw, dilation, pl, channels, per_image):
    """The tile does not check its indices: each band's padded rows must hold the last vector
    of the last tile at the farthest tap, and the band's rows of output."""
    from fastcorr._kernels import simd

    wp, rows, tiles, plane = conv.bands(width, kernel, out_hw, *dilation, pl, itemsize, channels, per_image)
    nr = simd.TILE_VECTORS * simd.lanes(itemsize)
    farthest = dilation[0] * (kernel[0] - 1) * wp + dilation[1] * (kernel[1] - 1)
    assert (tiles - 1) * nr + farthest + nr <= plane
    assert tiles * nr >= rows * wp and plane % wp == 0 and wp >= width + pl
    assert wp >= out_hw[1] + dilation[1] * (kernel[1] - 1)
    assert 1 <= rows <= out_hw[0]


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("channels, out_h, per_image, rows", [
    (16, 32, 1, (32, 32)), (8, 56, 1, (56, 56)), (64, 56, 1, (32, 16)), (64, 56, 4, (16, 16)), (1, 28, 1, (28, 28)),
    (1, 512, 8, (64, 64)), (1, 10, 1, (10, 10)), (512, 56, 1, (16, 16))])
def test_bands_grow_while_they_fit_and_every_thread_has_some(itemsize, channels, out_h, per_image, rows):
    """Bands of 16 rows, doubled while a band's padded input and sums fit in _BAND_BYTES and each
    image still makes ``per_image`` bands (a 58-column, 3x3 layer; ``rows`` for float32, float64)."""
    got = conv.bands(56, (3, 3), (out_h, 56), 1, 1, 1, itemsize, channels, per_image)[1]
    assert got == rows[itemsize // 8]


@pytest.mark.parametrize("channels", [1, 3])
def test_stack_reads_long_rows_in_place(channels, rng):
    """Rows of _IN_PLACE_ROW elements or more: 3x3 kernels read the source rows in place, the
    positions at the row's ends extended by each rule, against scipy.ndimage channel by channel;
    twins bit for bit, rows near the top and bottom on the ring in the same task."""
    import scipy.ndimage as snd

    h, w = 6, corr._IN_PLACE_ROW // channels + 3
    x = rng.standard_normal((3, h, w * channels)) * 8
    k = rng.standard_normal((2, 3, 3)) * 8
    sources = np.array([[0, 1], [2, -1], [-1, 1]], np.int64)
    modes = {corr.FILL: "constant", corr.SYMM: "reflect", corr.WRAP: "wrap", corr.NEAREST: "nearest",
             corr.MIRROR: "mirror"}
    for boundary, p0, p1 in itertools.product(BOUNDARIES, range(3), range(3)):
        expected = np.zeros((3, h, w * channels))
        for q, t in itertools.product(range(3), range(2)):
            plane = np.full(x.shape[1:], 3.0) if sources[q, t] < 0 else x[sources[q, t]]
            for c in range(channels):
                expected[q, :, c::channels] += snd.correlate(plane[:, c::channels], k[t], mode=modes[boundary],
                                                              cval=3.0, origin=(p0 - 1, p1 - 1))
        loop, switches = corr.stack_loop(k.shape, channels, w)
        assert loop is corr.stack3x3 and switches[1] is True
        results = []
        for twin, step in [("serial", h), ("parallel", 1), ("parallel", 4)]:
            out = np.full(expected.shape, 7.0)
            getattr(loop, twin)(x, k, out, sources, p0, p1, boundary, 3.0, *switches, step)
            results.append(out)
        for other in results[1:]:
            np.testing.assert_array_equal(results[0], other)
        np.testing.assert_allclose(results[0], expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shapes", [((9, 40), (3, 3)), ((4, 3), (3, 3)), ((6, 2), (3, 3)), ((6, 7), (5, 2)),
                                    ((3, 4), (6, 7)), ((5, 9), (1, 4))])
def test_stack_sums_plane_correlations_at_every_boundary(dtype, shapes, rng):
    """out[q] = sum_t corr(x[sources[q, t]], k[t]), a source of -1 being a plane of the fill value,
    against naive.py, both twins bit for bit, kernels smaller and larger than the planes; 3x3
    kernels on rows read in place and on the ring of extended rows in one task, and planes too
    narrow to read in place."""
    (h, w), (kh, kw) = shapes
    x = (rng.standard_normal((4, h, w)) * 8).astype(dtype)
    k = (rng.standard_normal((3, kh, kw)) * 8).astype(dtype)
    sources = np.array([[0, 1, 2], [3, -1, 0], [-1, -1, 2], [2, 2, 2], [1, 3, -1]], np.int64)
    names = {corr.FILL: "fill", corr.SYMM: "symm", corr.WRAP: "wrap", corr.NEAREST: "nearest", corr.MIRROR: "mirror"}
    for boundary, (p0, p1) in itertools.product(BOUNDARIES, [(kh // 2, kw // 2), (0, kw - 1), (kh - 1, 0)]):
        fill = dtype(3)
        expected = np.zeros((5, h, w), dtype)
        for q, t in itertools.product(range(5), range(3)):
            plane = np.full((h, w), fill) if sources[q, t] < 0 else x[sources[q, t]]
            expected[q] += naive.shifted_correlation(plane, k[t], (h, w), p0, p1, names[boundary], fill)
        tolerance = dict(rtol=1e-4, atol=1e-2) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
        for loop, switches in _stack_loops(k.shape, 1, w):
            results = []
            for twin, step in [("serial", 5), ("parallel", 1), ("parallel", 2)]:
                out = np.full((5, h, w), 7, dtype)
                getattr(loop, twin)(x, k, out, sources, p0, p1, boundary, fill, *switches, step)
                results.append(out)
            for other in results[1:]:
                np.testing.assert_array_equal(results[0], other)
            np.testing.assert_allclose(results[0], expected, **tolerance)
        # The same planes as the channels of interleaved rows (two, and RGB's three), each
        # channel its own order of the planes.
        for orders in ([0, 1, 2, 3], [3, 2, 1, 0]), ([0, 1, 2, 3], [3, 2, 1, 0], [1, 2, 3, 0]):
            interleaved = np.ascontiguousarray(np.stack([x[order] for order in orders], axis=-1)).reshape(4, h, -1)
            for loop, switches in _stack_loops(k.shape, len(orders), w):
                out = np.full((5, h, w * len(orders)), 7, dtype)
                loop.parallel(interleaved, k, out, sources, p0, p1, boundary, fill, *switches, 1)
                for c, order in enumerate(orders):
                    channel = np.zeros((5, h, w), dtype)
                    for q, t in itertools.product(range(5), range(3)):
                        plane = np.full((h, w), fill) if sources[q, t] < 0 else x[order[sources[q, t]]]
                        channel[q] += naive.shifted_correlation(plane, k[t], (h, w), p0, p1, names[boundary], fill)
                    np.testing.assert_allclose(out[:, :, c :: len(orders)], channel, **tolerance)


@pytest.mark.parametrize("kernel_shape, channels, loop", [
    ((2, 3, 3), 1, "stack3x3"), ((1, 3, 3), 3, "stack3x3"), ((2, 3, 3), 2, "stack"), ((2, 3, 3), 4, "stack"),
    ((2, 3, 4), 1, "stack"), ((2, 5, 5), 3, "stack"), ((2, 1, 3), 1, "stack")])
def test_only_3x3_kernels_on_one_or_three_channels_take_the_3x3_stack(kernel_shape, channels, loop):
    assert corr.stack_loop(kernel_shape, channels, 8)[0] is getattr(corr, loop)


@pytest.mark.parametrize("channels, width, switches", [
    (1, 8, (None, None)), (1, corr._IN_PLACE_ROW - 1, (None, None)), (1, corr._IN_PLACE_ROW, (None, True)),
    (3, corr._IN_PLACE_ROW // 3, (True, None)), (3, corr._IN_PLACE_ROW // 3 + 1, (True, True))])
def test_the_3x3_stack_reads_rows_in_place_from_in_place_row_elements(channels, width, switches):
    assert corr.stack_loop((2, 3, 3), channels, width) == (corr.stack3x3, switches)


def _stack_loops(kernel_shape, channels, width):
    """The stack loops for these planes, each with the arguments that select its code: the
    general loop, the plan's choice and, for 3x3 kernels, rows read in place however short."""
    loops = {(corr.stack, (None if channels == 1 else channels,)), corr.stack_loop(kernel_shape, channels, width)}
    if kernel_shape[1:] == (3, 3) and channels in (1, 3):
        loops.add((corr.stack3x3, (None if channels == 1 else True, True)))
    return loops
