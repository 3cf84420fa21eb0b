import importlib
import itertools
import pickle
import re
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastcorr as fc
import fastcorr.ndimage as fnd

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
fcd = importlib.import_module("fastcorr.dask")
from dask.array.utils import assert_eq  # noqa: E402

MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "wrap", "symm"]
FUNCS = ["correlate2d", "convolve2d"]


def sample(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-100 if dtype.kind == "i" else 0, 100, shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def assert_lazy_equal(lazy, expected, scheduler="sync"):
    """Lazy metadata first (shape, dtype, chunks), then every block and the values."""
    assert isinstance(lazy, da.Array)
    assert lazy.shape == expected.shape
    assert lazy.dtype == expected.dtype
    assert tuple(sum(c) for c in lazy.chunks) == lazy.shape
    if expected.dtype.kind in "iub":
        rtol = atol = 0
    else:
        rtol = 2e-5 if expected.dtype in (np.float32, np.complex64) else 1e-12
        atol = rtol * max(1.0, np.abs(expected).max(initial=0))
    assert_eq(lazy, expected, scheduler=scheduler, rtol=rtol, atol=atol)


def same_error(exception, call_in_memory, call_lazy):
    with pytest.raises(exception) as expected:
        call_in_memory()
    with pytest.raises(exception, match=re.escape(str(expected.value))):
        call_lazy()


def same_result(call_in_memory, call_lazy, scheduler="sync"):
    """The in-memory result, lazily; or the in-memory ValueError, at the call."""
    try:
        expected = call_in_memory()
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            call_lazy()
        return
    assert_lazy_equal(call_lazy(), expected, scheduler)


# correlate2d and convolve2d against the in-memory functions

CASES = [  # image shape, chunks, kernel shape
    ((7, 9), 2, (3, 3)),
    ((7, 9), 1, (4, 2)),
    ((10, 12), (3, 5), (5, 5)),
    ((6, 5), 3, (1, 1)),
    ((4, 3), 2, (7, 6)),
    ((9, 8), (4, 8), (2, 9)),
    ((11, 13), ((2, 1, 5, 3), (1, 1, 6, 3, 2)), (4, 3)),
]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("mode, boundary", list(itertools.product(MODES, BOUNDARIES)))
@pytest.mark.parametrize("shape, chunks, kshape", CASES)
def test_matches_in_memory(func, mode, boundary, shape, chunks, kshape, rng):
    x, k = rng.standard_normal(shape), rng.standard_normal(kshape)
    X = da.from_array(x, chunks=chunks)
    same_result(lambda: getattr(fc, func)(x, k, mode, boundary, 1.5), lambda: getattr(fcd, func)(X, k, mode, boundary, 1.5))


FILLS = {np.float32: -2.5, np.float64: 1.5, np.int32: 7, np.complex128: 1.5 - 0.5j}


@pytest.mark.parametrize("dtype", list(FILLS))
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("mode, boundary", list(itertools.product(MODES, BOUNDARIES)))
def test_dtypes(dtype, func, mode, boundary, rng):
    x, k = sample(rng, (10, 9), dtype), sample(rng, (4, 3), dtype)
    expected = getattr(fc, func)(x, k, mode, boundary, FILLS[dtype])
    lazy = getattr(fcd, func)(da.from_array(x, chunks=(3, 2)), k, mode, boundary, FILLS[dtype])
    assert_lazy_equal(lazy, expected)


@pytest.mark.parametrize(
    "dtypes", [(np.int32, np.float32), (np.uint8, np.int8), (np.float32, np.complex64), (np.int16, np.complex128)]
)
def test_mixed_dtypes_follow_result_type(dtypes, rng):
    x, k = sample(rng, (8, 7), dtypes[0]), sample(rng, (3, 2), dtypes[1])
    lazy = fcd.correlate2d(da.from_array(x, chunks=3), k, "same", "symm")
    assert lazy.dtype == np.result_type(*dtypes)
    assert_lazy_equal(lazy, fc.correlate2d(x, k, "same", "symm"))


@st.composite
def chunking(draw, n):
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1))) if n > 1 else []
    return tuple(np.diff([0, *cuts, n]).tolist())


@given(
    data=st.data(),
    h=st.integers(1, 14), w=st.integers(1, 14), kh=st.integers(1, 8), kw=st.integers(1, 8),
    func=st.sampled_from(FUNCS), mode=st.sampled_from(MODES), boundary=st.sampled_from(BOUNDARIES),
    dtype=st.sampled_from([np.float64, np.int32, np.complex128]), fill=st.sampled_from([0, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_chunking_matches_in_memory(data, h, w, kh, kw, func, mode, boundary, dtype, fill, seed):
    rng = np.random.default_rng(seed)
    x, k = sample(rng, (h, w), dtype), sample(rng, (kh, kw), dtype)
    chunks = (data.draw(chunking(h)), data.draw(chunking(w)))
    X = da.from_array(x, chunks=chunks)
    same_result(
        lambda: getattr(fc, func)(x, k, mode, boundary, fill),
        lambda: getattr(fcd, func)(X, k, mode, boundary, fill),
        scheduler="threads",
    )


# Chunks

def test_output_chunks_follow_the_input():
    x = da.zeros((20, 30), chunks=(5, (10, 10, 10)))
    k = np.ones((3, 4))
    assert fcd.correlate2d(x, k, "same").chunks == x.chunks
    assert fcd.convolve2d(x, k, "same", "wrap").chunks == x.chunks
    assert fcd.correlate2d(x, k, "full").chunks == ((5, 5, 5, 7), (10, 10, 13))
    assert fcd.correlate2d(x, k, "valid").chunks == ((5, 5, 5, 3), (10, 10, 7))


@pytest.mark.parametrize("mode", MODES)
def test_chunks_narrower_than_the_halo_are_merged(mode, rng):
    x, k = rng.standard_normal((17, 15)), rng.standard_normal((7, 6))
    lazy = fcd.correlate2d(da.from_array(x, chunks=1), k, mode, "symm")
    assert min(lazy.chunks[0]) >= 3 and min(lazy.chunks[1]) >= 3
    assert_lazy_equal(lazy, fc.correlate2d(x, k, mode, "symm"))


calls = []
lock = threading.Lock()


def counted(block):
    with lock:
        calls.append(block.shape)
    return block


@pytest.mark.parametrize(
    "make",
    [
        lambda X: fcd.correlate2d(X, np.ones((3, 3)), "full", "wrap"),
        lambda X: fcd.convolve2d(X, np.ones((2, 4)), "same", "symm"),
        lambda X: fcd.correlate2d(X, np.ones((20, 20)), "valid"),
        lambda X: fcd.corr2d(X, np.ones((2, 2))),
        lambda X: fcd.conv2d(X[None, None], np.ones((1, 1, 3, 3)), padding=1),
        lambda X: fcd.conv2d(X[None, None], np.ones((1, 1, 3, 3)), stride=2),
        lambda X: fcd.ndimage_correlate(X, np.ones((3, 3)), mode="mirror"),
        lambda X: fcd.ndimage_convolve(X[None], np.ones((2, 3, 3)), mode="nearest"),
    ],
)
def test_calls_are_lazy(make):
    X = da.from_array(np.ones((8, 8)), chunks=3).map_blocks(counted, meta=np.empty((0, 0)))
    del calls[:]
    lazy = make(X)
    assert calls == []
    lazy.compute(scheduler="threads")
    assert calls


# The 'valid' swap, kernels, empties

@pytest.mark.parametrize("func", FUNCS)
def test_valid_swap_is_one_chunk_from_the_in_memory_function(func, rng):
    x, k = sample(rng, (3, 4), np.complex128), sample(rng, (6, 4), np.complex128)
    lazy = getattr(fcd, func)(da.from_array(x, chunks=2), k, "valid")
    assert lazy.chunks == ((4,), (1,))
    assert_lazy_equal(lazy, getattr(fc, func)(x, k, "valid"))


@pytest.mark.parametrize("func", FUNCS)
def test_one_chunk_runs_the_in_memory_function(func, rng):
    x, k = rng.standard_normal((40, 30)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    lazy = getattr(fcd, func)(da.from_array(x, chunks=-1), k, "same", "fill", 0.25)
    assert lazy.chunks == ((40,), (30,))
    np.testing.assert_array_equal(lazy.compute(), getattr(fc, func)(x, k, "same", "fill", 0.25))


def test_kernel_may_be_a_dask_array(rng):
    x, k = rng.standard_normal((9, 9)), rng.standard_normal((3, 2))
    X = da.from_array(x, chunks=4)
    assert_lazy_equal(fcd.convolve2d(X, da.from_array(k, chunks=1), "same"), fc.convolve2d(x, k, "same"))
    assert_lazy_equal(fcd.corr2d(X, da.from_array(k, chunks=1)), fc.corr2d(x, k))


def test_kernel_is_in_the_graph_once(rng):
    k = rng.standard_normal((5, 5))
    lazy = fcd.correlate2d(da.zeros((40, 40), chunks=8), k, "same", "symm")
    copies = sum(pickle.dumps(task).count(k.tobytes()) for task in dict(lazy.__dask_graph__()).values())
    assert lazy.npartitions == 25
    assert copies == 1


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("mode, boundary", list(itertools.product(MODES, BOUNDARIES)))
def test_empty_inputs(func, mode, boundary):
    for x_shape, k_shape in [((0, 4), (2, 2)), ((5, 4), (0, 2)), ((5, 4), (2, 0)), ((1, 4), (0, 2))]:
        x, k = np.ones(x_shape, np.float32), np.ones(k_shape, np.float32)
        X = da.from_array(x, chunks=2)
        same_result(lambda: getattr(fc, func)(x, k, mode, boundary, 2), lambda: getattr(fcd, func)(X, k, mode, boundary, 2))


def test_method_fft_chunk_by_chunk(rng):
    x, k = rng.standard_normal((30, 25)), rng.standard_normal((6, 5))
    X = da.from_array(x, chunks=7)
    for mode in MODES:
        lazy = fcd.correlate2d(X, k, mode, fillvalue=0.5, method="fft")
        expected = fc.correlate2d(x, k, mode, fillvalue=0.5)
        assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-10, atol=1e-10)


def test_numpy_input_is_wrapped(rng):
    x, k = rng.standard_normal((6, 7)), rng.standard_normal((2, 2))
    assert_lazy_equal(fcd.correlate2d(x, k, "same"), fc.correlate2d(x, k, "same"))


# corr2d

def test_corr2d_finds_the_chapters_edges():
    X = np.ones((6, 8), np.float32)
    X[:, 2:6] = 0
    K = np.array([[1.0, -1.0]], np.float32)
    Y = fcd.corr2d(da.from_array(X, chunks=(2, 3)), K)
    assert Y.dtype == np.float32
    assert_lazy_equal(Y, fc.corr2d(X, K))


@pytest.mark.parametrize(
    "dtypes",
    [(np.float32, np.float32), (np.int32, np.int32), (np.float32, np.float64), (np.complex64, np.float32), (np.uint8, np.float32)],
)
def test_corr2d_dtype_rule(dtypes, rng):
    X, K = sample(rng, (9, 7), dtypes[0]), sample(rng, (3, 3), dtypes[1])
    assert_lazy_equal(fcd.corr2d(da.from_array(X, chunks=2), K), fc.corr2d(X, K))


# Bad input: the in-memory function's exception and message

BAD_SCIPY_STYLE = [
    (dict(mode="middle"), ValueError),
    (dict(boundary="reflect"), ValueError),
    (dict(in2=np.ones(3)), ValueError),
    (dict(in2=np.ones((1, 1, 1))), ValueError),
    (dict(in2=np.ones((2, 9)), mode="valid"), ValueError),
    (dict(in1=np.ones((5, 5), bool), in2=np.ones((2, 2), bool)), ValueError),
    (dict(in1=np.ones((5, 5), np.float16), in2=np.ones((2, 2), np.float16)), ValueError),
    (dict(fillvalue=[1, 2]), ValueError),
    (dict(fillvalue=1 + 2j), ValueError),
    (dict(method="fft", boundary="wrap"), ValueError),
    (dict(in1=np.ones((5, 5), np.int32), in2=np.ones((2, 2), np.int64), method="fft"), ValueError),
    (dict(method="winograd"), ValueError),
]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("kwargs, exception", BAD_SCIPY_STYLE)
def test_bad_input_raises_as_in_memory(func, kwargs, exception):
    kwargs = {"in1": np.ones((5, 5), np.float32), "in2": np.ones((2, 2), np.float32), **kwargs}
    lazy_kwargs = {**kwargs, "in1": da.from_array(kwargs["in1"], chunks=2)}
    same_error(exception, lambda: getattr(fc, func)(**kwargs), lambda: getattr(fcd, func)(**lazy_kwargs))


@pytest.mark.parametrize(
    "X, K, exception",
    [
        (np.ones((3, 3)), np.ones((4, 1)), ValueError),
        (np.ones((3, 3)), np.ones(3), ValueError),
        (np.ones(3), np.ones((1, 1)), ValueError),
        (np.ones((3, 3)), np.array([["a"]]), TypeError),
    ],
)
def test_corr2d_bad_input(X, K, exception):
    same_error(exception, lambda: fc.corr2d(X, K), lambda: fcd.corr2d(da.from_array(X), K))


def test_unknown_chunk_sizes_are_refused():
    x = da.from_array(np.arange(16.0).reshape(4, 4), chunks=2)
    x = x[x[:, 0] > 4]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        fcd.correlate2d(x, np.ones((2, 2)))


# conv2d

CONV_OPTIONS = [
    dict(),
    dict(padding=1),
    dict(padding=(2, 0), dilation=(2, 1)),
    dict(padding="same", dilation=2),
    dict(padding="valid"),
    dict(padding=4),
    dict(groups=2, padding=1),
    dict(groups=4, padding="same"),
    dict(stride=2, padding=1),
    dict(stride=(1, 3), dilation=2),
]
CONV_CHUNKS = [(1, -1, -1, -1), (2, 2, 3, 4), (1, 1, 1, 2)]


@pytest.mark.parametrize("options", CONV_OPTIONS)
@pytest.mark.parametrize("chunks", CONV_CHUNKS)
def test_conv2d_matches_in_memory(options, chunks, rng):
    groups = options.get("groups", 1)
    x = rng.standard_normal((3, 4, 10, 11)).astype(np.float32)
    w = rng.standard_normal((4, 4 // groups, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32) if chunks[0] == 1 else None
    lazy = fcd.conv2d(da.from_array(x, chunks=chunks), w, b, **options)
    expected = fc.conv2d(x, w, b, **options)
    assert lazy.chunks[0] == ((1, 1, 1) if chunks[0] == 1 else (2, 1))
    assert lazy.chunks[1] == (4,)
    if options.get("stride", 1) != 1:
        assert lazy.numblocks[2:] == (1, 1)
    assert_lazy_equal(lazy, expected)


def test_conv2d_spatial_chunks_follow_the_input(rng):
    x = da.zeros((4, 3, 20, 30), chunks=(2, 1, 5, 10))
    lazy = fcd.conv2d(x, np.ones((6, 3, 3, 3)), padding=1)
    assert lazy.chunks == ((2, 2), (6,), (5, 5, 5, 5), (10, 10, 10))
    assert fcd.conv2d(x, np.ones((6, 3, 3, 3))).chunks == ((2, 2), (6,), (5, 5, 5, 3), (10, 10, 8))


def test_conv2d_dtypes_and_dask_weight(rng):
    x = rng.standard_normal((2, 2, 7, 6))
    w = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    b = np.arange(3, dtype=np.float32)
    lazy = fcd.conv2d(da.from_array(x, chunks=(1, 1, 3, 3)), da.from_array(w), da.from_array(b), padding=1)
    assert lazy.dtype == np.float64
    assert_lazy_equal(lazy, fc.conv2d(x, w, b, padding=1))
    X = np.arange(40, dtype=np.int32).reshape(1, 1, 5, 8)
    assert_lazy_equal(fcd.conv2d(da.from_array(X, chunks=2), np.ones((1, 1, 2, 2), np.float32)),
                      fc.conv2d(X, np.ones((1, 1, 2, 2), np.float32)))


@pytest.mark.parametrize(
    "kwargs, exception",
    [
        (dict(weight=np.ones((2, 3, 3, 3))), ValueError),
        (dict(weight=np.ones((3, 2, 3, 3)), groups=2), ValueError),
        (dict(weight=np.ones((2, 2, 9, 9))), ValueError),
        (dict(weight=np.ones((2, 2, 3))), ValueError),
        (dict(bias=np.ones(3)), ValueError),
        (dict(stride=0), ValueError),
        (dict(padding="same", stride=2), ValueError),
        (dict(padding="full"), ValueError),
        (dict(dilation=(1, 2, 3)), TypeError),
        (dict(groups=0), ValueError),
        (dict(x=np.ones((2, 2, 5, 5), np.complex64)), TypeError),
        (dict(x=np.ones((2, 5, 5))), ValueError),
        (dict(method="fast"), ValueError),
        (dict(weight=np.ones((2, 2, 2, 2)), method="winograd"), ValueError),
    ],
)
def test_conv2d_bad_input_raises_as_in_memory(kwargs, exception):
    kwargs = {"x": np.ones((2, 2, 5, 5)), "weight": np.ones((2, 2, 3, 3)), **kwargs}
    lazy_kwargs = {**kwargs, "x": da.from_array(kwargs["x"], chunks=1)}
    same_error(exception, lambda: fc.conv2d(**kwargs), lambda: fcd.conv2d(**lazy_kwargs))


@pytest.mark.parametrize("method", ["direct", "winograd"])
def test_conv2d_method_reaches_every_chunk(method, rng):
    """Winograd forced or refused chunk by chunk gives the in-memory call's bits for that method
    (each image is work enough to run on the batch's loop, not the small-call path, whose sums
    run in another order)."""
    x = rng.standard_normal((4, 3, 16, 24)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    for chunks in [(1, -1, -1, -1), (2, 3, 6, 8)]:
        lazy = fcd.conv2d(da.from_array(x, chunks=chunks), w, padding=1, method=method)
        whole = fc.conv2d(x, w, padding=1, method=method)
        if chunks[2] == -1:
            np.testing.assert_array_equal(lazy.compute(), whole)
        else:
            assert_lazy_equal(lazy, whole)
    assert not np.array_equal(fc.conv2d(x, w, padding=1, method="winograd"), fc.conv2d(x, w, padding=1, method="direct"))


def test_conv2d_empty_batch():
    x = np.ones((0, 2, 5, 5))
    assert_lazy_equal(fcd.conv2d(da.from_array(x), np.ones((3, 2, 2, 2))), fc.conv2d(x, np.ones((3, 2, 2, 2))))


# Schedulers

def workload(rng):
    x = rng.standard_normal((120, 96)).astype(np.float32)
    k = rng.standard_normal((5, 4)).astype(np.float32)
    batch = rng.standard_normal((4, 3, 24, 20))
    w = rng.standard_normal((2, 3, 3, 3))
    lazy = [
        fcd.correlate2d(da.from_array(x, chunks=32), k, "same", "symm"),
        fcd.convolve2d(da.from_array(x, chunks=(17, 40)), k, "full", "wrap"),
        fcd.conv2d(da.from_array(batch, chunks=(1, 3, 12, 7)), w, padding=1),
        fcd.conv2d(da.from_array(batch, chunks=(2, 1, 24, 20)), w, stride=2),
    ]
    expected = [
        fc.correlate2d(x, k, "same", "symm"),
        fc.convolve2d(x, k, "full", "wrap"),
        fc.conv2d(batch, w, padding=1),
        fc.conv2d(batch, w, stride=2),
    ]
    return lazy, expected


def assert_all_close(results, expected):
    for result, wanted in zip(results, expected):
        assert result.dtype == wanted.dtype
        np.testing.assert_allclose(result, wanted, rtol=2e-5, atol=2e-5 * np.abs(wanted).max())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_schedulers(scheduler, rng):
    lazy, expected = workload(rng)
    assert_all_close(dask.compute(*lazy, scheduler=scheduler), expected)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as cluster, distributed.Client(cluster, timeout="60s") as client:
        yield client


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_distributed_cluster(client, rng):
    lazy, expected = workload(rng)
    futures = client.compute(lazy)
    assert_all_close(client.gather(futures), expected)
    assert_all_close(dask.compute(*lazy), expected)


def test_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    monkeypatch.delitem(sys.modules, "fastcorr.dask")
    with pytest.raises(ImportError, match=re.escape('pip install "fastcorr[dask]"')):
        importlib.import_module("fastcorr.dask")


NDIMAGE_MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-mirror", "grid-constant", "grid-wrap"]


@st.composite
def ndimage_problems(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    wshape = tuple(draw(st.integers(1, n + 2)) for n in shape)
    origin = [draw(st.integers(-(n // 2), (n - 1) // 2)) for n in wshape]
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    return shape, wshape, origin, chunks


@given(problem=ndimage_problems(), func=st.sampled_from(["correlate", "convolve"]),
       mode=st.sampled_from(NDIMAGE_MODES), dtype=st.sampled_from([np.float64, np.int16, np.float32]),
       seed=st.integers(0, 2**16))
def test_ndimage_any_chunking_matches_in_memory(problem, func, mode, dtype, seed):
    """Chunks down to one element (smaller than the kernel), kernels larger than the array, every
    mode and origin, 1-D to 3-D: the in-memory function's shape, dtype and values."""
    shape, wshape, origin, chunks = problem
    rng = np.random.default_rng(seed)
    x = sample(rng, shape, dtype)
    w = rng.integers(-3, 4, wshape).astype(np.float64)
    expected = getattr(fnd, func)(x, w, mode=mode, cval=2.0, origin=origin)
    lazy = getattr(fcd, f"ndimage_{func}")(da.from_array(x, chunks=chunks), w, mode=mode, cval=2.0, origin=origin)
    assert_lazy_equal(lazy, expected)


@pytest.mark.parametrize("func", ["correlate", "convolve"])
def test_ndimage_stacks_colour_and_complex(func, rng):
    image = sample(rng, (20, 30, 3), np.uint8)
    w = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    lazy = getattr(fcd, f"ndimage_{func}")(da.from_array(image, chunks=(7, 8, 1)), w, mode="mirror", axes=(0, 1))
    assert_lazy_equal(lazy, getattr(fnd, func)(image, w, mode="mirror", axes=(0, 1)))
    z = sample(rng, (12, 10), np.complex128)
    wz = sample(rng, (3, 2), np.complex128)
    lazy = getattr(fcd, f"ndimage_{func}")(da.from_array(z, chunks=4), wz, mode="constant", cval=1 - 2j, origin=(1, 0))
    assert_lazy_equal(lazy, getattr(fnd, func)(z, wz, mode="constant", cval=1 - 2j, origin=(1, 0)))


@pytest.mark.parametrize("kwargs, exception", [
    (dict(mode="foo"), RuntimeError), (dict(mode=["reflect", "wrap"]), RuntimeError), (dict(origin=3), ValueError),
    (dict(axes=(0, 0)), ValueError), (dict(axes=(2,)), ValueError), (dict(weights=np.ones(3)), RuntimeError),
    (dict(cval="a"), TypeError)])
def test_ndimage_bad_input_raises_at_the_call(kwargs, exception):
    arguments = dict(input=da.ones((6, 6), chunks=3), weights=np.ones((3, 3)))
    arguments.update(kwargs)
    with pytest.raises(exception):
        fnd.correlate(**{**arguments, "input": np.ones((6, 6))})
    with pytest.raises(exception):
        fcd.ndimage_correlate(**arguments)


def test_ndimage_takes_dask_weights(rng):
    x = sample(rng, (16, 16), np.float64)
    lazy = fcd.ndimage_correlate(da.from_array(x, chunks=5), da.from_array(np.ones((3, 3))))
    assert_lazy_equal(lazy, fnd.correlate(x, np.ones((3, 3))))
