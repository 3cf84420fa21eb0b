"""pytest-benchmark suite: ``python -m pytest bench --benchmark-only``.

One ``benchmark.group`` per case, parametrised over implementations; peers that are not
installed are skipped. ``python -m fastcorr bench`` prints the same comparisons as one
interleaved table of ratios. The test run runs this suite once with ``--benchmark-disable
--bench-small`` (every benchmark called once, on small inputs).
"""

import numpy as np
import pytest

from fastcorr import _bench

SIZES = [((6, 8), (1, 2)), ((64, 64), (3, 3)), ((512, 512), (3, 3)), ((512, 512), (5, 5)),
         ((2048, 2048), (3, 3)), ((1024, 1024), (15, 15))]
#: --bench-small: the chapter's image, the largest image the chapter's loops get, the smallest that np.copyto gets.
SMALL_SIZES = [((6, 8), (1, 2)), ((64, 64), (3, 3)), ((1024, 1024), (3, 3))]
#: --bench-small: one layer (N, C, H, W, O, k, padding) in place of _bench.BATCHED.
SMALL_LAYERS = [(4, 3, 16, 16, 5, 3, 1)]
IMPLS = ["fastcorr", "fastcorr serial", "chapter loops", "scipy", "scipy.ndimage", "scipy fftconvolve", "cv2",
         "torch", "np.copyto"]
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])


def pytest_generate_tests(metafunc):
    small = metafunc.config.getoption("bench_small", default=False)
    if "size" in metafunc.fixturenames:
        sizes = SMALL_SIZES if small else SIZES
        metafunc.parametrize("size", sizes, ids=[f"{h}x{w}-{kh}x{kw}" for (h, w), (kh, kw) in sizes])
    if "layer" in metafunc.fixturenames:
        layers = SMALL_LAYERS if small else _bench.BATCHED
        metafunc.parametrize("layer", layers, ids=[f"N{n}-C{c}-{h}x{w}-O{o}-{k}x{k}" for n, c, h, w, o, k, _ in layers])


@pytest.mark.parametrize("impl", IMPLS)
@DTYPES
def test_single_image(benchmark, size, dtype, impl):
    (h, w), (kh, kw) = size
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((h, w)).astype(dtype), rng.standard_normal((kh, kw)).astype(dtype)
    impls = _bench.single_impls(x, k, more=True)
    if impl not in impls:
        pytest.skip(f"{impl} not installed or not run at this size")
    benchmark.group = f"{h}x{w} {kh}x{kw} {np.dtype(dtype).name}"
    benchmark(impls[impl])


@pytest.mark.parametrize("impl", ["fastcorr", "torch"])
@DTYPES
@pytest.mark.parametrize("part", ["forward", "fwd+grads"])
def test_layer(benchmark, layer, part, dtype, impl):
    pytest.importorskip("torch")
    forward, both = _bench.batched_cases(dtype, [layer])
    case = forward if part == "forward" else both
    benchmark.group = case.label
    benchmark(case.impls[impl])


@pytest.mark.parametrize("impl", ["fastcorr", "torch"])
def test_training_step(benchmark, impl):
    pytest.importorskip("torch")
    (case,) = _bench.training_step_case()
    benchmark.group = case.label
    benchmark(case.impls[impl])


#: --bench-small: fastcorr.ndimage's cases on small arrays.
SMALL_NDIMAGE = dict(NDIMAGE=[((64, 64), (3, 3)), ((64, 64), (5, 5)), ((16, 16, 16), (3, 3, 3))],
                     COLOUR=((32, 32, 3), (3, 3)), DASK_IMAGE=((64, 64), (16, 16), (5, 5)))
NDIMAGE_KINDS = {"3x3": lambda label: label.endswith(" 3x3 " + label.split()[-1]) and "colour" not in label,
                 "5x5": lambda label: " 5x5 " in label and not label.startswith("dask"),
                 "volume": lambda label: "3x3x3" in label, "colour": lambda label: "colour" in label,
                 "dask": lambda label: label.startswith("dask")}


@pytest.mark.parametrize("impl", ["fastcorr", "scipy.ndimage", "cv2", "dask_image"])
@DTYPES
@pytest.mark.parametrize("kind", list(NDIMAGE_KINDS))
def test_ndimage(benchmark, kind, dtype, impl, request, monkeypatch):
    if request.config.getoption("bench_small", default=False):
        for name, value in SMALL_NDIMAGE.items():
            monkeypatch.setattr(_bench, name, value)
    cases = [case for case in _bench.ndimage_cases(dtype) if NDIMAGE_KINDS[kind](case.label)]
    if not cases or impl not in cases[0].impls:
        pytest.skip(f"{impl} not installed or not run for {kind} {np.dtype(dtype).name}")
    (case,) = cases
    benchmark.group = case.label
    benchmark(case.impls[impl])
