"""pytest-benchmark suite: ``pytest bench --benchmark-only`` (not part of the test run).

One ``benchmark.group`` per case, parametrised over implementations; peers that are not
installed are skipped. ``python -m fastcorr bench`` prints the same comparisons as one
interleaved table of ratios.
"""

import numpy as np
import pytest

from fastcorr import _bench

SIZES = [((6, 8), (1, 2)), ((64, 64), (3, 3)), ((512, 512), (3, 3)), ((512, 512), (5, 5)),
         ((2048, 2048), (3, 3)), ((1024, 1024), (15, 15))]
IMPLS = ["fastcorr", "fastcorr serial", "chapter loops", "scipy", "scipy.ndimage", "scipy fftconvolve", "cv2",
         "torch", "np.copyto"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}-{kh}x{kw}" for (h, w), (kh, kw) in SIZES])
def test_single_image(benchmark, size, dtype, impl):
    (h, w), (kh, kw) = size
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((h, w)).astype(dtype), rng.standard_normal((kh, kw)).astype(dtype)
    impls = _bench.single_impls(x, k, more=True)
    if impl not in impls:
        pytest.skip(f"{impl} not installed or not run at this size")
    benchmark.group = f"{h}x{w} {kh}x{kw} {np.dtype(dtype).name}"
    benchmark(impls[impl])


def _cases(dtype):
    return {case.label: case for case in _bench.batched_cases(dtype) + _bench.training_step_case()}


@pytest.mark.parametrize("impl", ["fastcorr", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("which", range(2 * len(_bench.BATCHED) + 1))
def test_batched(benchmark, which, dtype, impl):
    pytest.importorskip("torch")
    cases = list(_cases(dtype).values())
    if which >= len(cases) or (cases[which].label.startswith("training") and dtype != np.float32):
        pytest.skip("the training step runs in float32 only")
    case = cases[which]
    benchmark.group = case.label
    benchmark(case.impls[impl])
