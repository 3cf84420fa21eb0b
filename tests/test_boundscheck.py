"""Every kernel path once more with Numba's bounds checks on, in a fresh process with its own
compile cache: an index past an array's end raises there instead of reading other memory.

The checks are put in where Numba lowers each index, before LLVM optimises, so the process
compiles without optimising (NUMBA_OPT=0: 22 s instead of 36); such code cannot be cached."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PATHS = """
import itertools
import warnings
from numba.core.errors import NumbaWarning
warnings.simplefilter("ignore", NumbaWarning)  # "cannot cache": unoptimised code keeps its globals
import numpy as np
import scipy.ndimage
import scipy.signal
import fastcorr as fc
import fastcorr.ndimage as fnd
from fastcorr import _kernels

rng = np.random.default_rng(0)
for twin in ("serial", "parallel"):
    with _kernels.forced(twin):
        for shape, kshape in [((7, 9), (3, 3)), ((9, 400), (3, 3)), ((8, 9), (5, 5)), ((6, 30), (2, 7)),
                              ((3, 2), (4, 5)), ((2, 2100), (1, 3)), ((4, 5), (1, 1)),
                              ((64, 35), (3, 3)),  # tile rows of one block and a bit
                              ((13, 41), (5, 5))]:  # 5x5 register tile blocks, the last overlapping
            x, k = rng.standard_normal(shape), rng.standard_normal(kshape)
            for mode, boundary in itertools.product(["full", "same", "valid"], ["fill", "wrap", "symm"]):
                if mode == "valid" and not (shape[0] >= kshape[0] and shape[1] >= kshape[1]):
                    continue
                for func in ("correlate2d", "convolve2d"):
                    got = getattr(fc, func)(x, k, mode, boundary, 0.5, method="direct")
                    np.testing.assert_allclose(got, getattr(scipy.signal, func)(x, k, mode, boundary, 0.5), atol=1e-12)
            if shape[0] >= kshape[0] and shape[1] >= kshape[1]:
                fc.corr2d(x, k)
                dy = rng.standard_normal((shape[0] - kshape[0] + 1, shape[1] - kshape[1] + 1))
                fc.corr2d_grad(x, k, dy)
                k[0, 0] = np.inf
                fc.corr2d_grad(x, k, dy)
        for (n, c, h, w, o, kh, kw), kwargs in [
            ((2, 3, 9, 11, 6, 3, 3), dict(padding=1)),
            ((1, 2, 70, 70, 1, 2, 3), dict(padding=(0, 2))),
            ((2, 4, 8, 12, 6, 2, 5), dict(padding="same", dilation=(2, 1), groups=2)),
            ((2, 3, 9, 10, 5, 3, 2), dict(stride=(2, 3), padding=1, dilation=(1, 2))),
        ]:
            x = rng.standard_normal((n, c, h, w))
            weight = rng.standard_normal((o, c // kwargs.get("groups", 1), kh, kw))
            y = fc.conv2d(x, weight, rng.standard_normal(o), **kwargs)
            dy = rng.standard_normal(y.shape)
            fc.conv2d_input_grad(x.shape, weight, dy, **kwargs)
            fc.conv2d_weight_grad(x, weight.shape, dy, **kwargs)
            x[0, 0, 0, 0], weight[0, 0, 0, 0] = np.inf, np.nan
            fc.conv2d_input_grad(x.shape, weight, dy, **kwargs)
            fc.conv2d_weight_grad(x, weight.shape, dy, **kwargs)
        for shape, kshape, axes in [((5, 6, 7), (3, 3, 3), None), ((3, 4, 2), (7, 2, 5), None), ((40,), (4,), None),
                                    ((9, 11, 3), (3, 3), (0, 1)), ((6, 5, 2), (4, 6), (0, 1)), ((7, 8, 4), (3, 3), (0, 1)),
                                    ((5, 7, 5), (2, 3), (0, 1)), ((2, 3, 4, 5), (2, 3, 2, 3), None),
                                    ((5, 700, 3), (3, 3), (0, 1)), ((3, 4, 2100), (3, 3, 3), None)]:  # rows read in place
            x, k = rng.standard_normal(shape), rng.standard_normal(kshape)
            for mode in ["reflect", "constant", "nearest", "mirror", "wrap"]:
                for func in ("correlate", "convolve"):
                    got = getattr(fnd, func)(x, k, mode=mode, cval=0.5, axes=axes)
                    expected = getattr(scipy.ndimage, func)(x, k, mode=mode, cval=0.5, axes=axes)
                    np.testing.assert_allclose(got, expected, atol=1e-12)
print("within bounds")
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_kernel_path_stays_within_bounds(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "NUMBA_BOUNDSCHECK": "1", "NUMBA_OPT": "0", "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", PATHS], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["within", "bounds"]
