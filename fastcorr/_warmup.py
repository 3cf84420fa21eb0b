"""``fastcorr.warmup()`` and ``python -m fastcorr warmup``: compile every kernel ahead of time.

Each step runs small calls that reach one family of loops, once on the serial twins and
once on the parallel ones, so that every kernel a later call can pick is compiled and
written to the disk cache. Later processes on the same machine (same CPU, same Numba)
then load them in milliseconds instead of compiling for seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike

from fastcorr import _kernels, _validate, conv, ndimage, signal


def _steps(dtype: np.dtype) -> list[tuple[str, Callable[[], object]]]:
    """(name, calls) pairs that together reach every loop for ``dtype``."""
    rng = np.random.default_rng(0)

    def sample(*shape):
        values = rng.standard_normal(shape) * 4
        return (values + 1j * values if dtype.kind == "c" else values).astype(dtype)

    image = sample(40, 40)
    steps = [
        ("correlation, small calls and borders",
         lambda: (signal.correlate2d(image, sample(3, 4), "same", "symm"), signal.correlate2d(sample(6, 8), sample(1, 2)),
                 signal.correlate2d(sample(6, 8), sample(1, 2), "valid"))),
        ("correlation, 3x3 interior", lambda: signal.correlate2d(image, sample(3, 3), "valid")),
        ("correlation, 5x5 interior", lambda: signal.correlate2d(image, sample(5, 5), "valid")),
        ("correlation, any kernel", lambda: (signal.correlate2d(image, sample(1, 7), "valid"),
                                             signal.correlate2d(image, sample(30, 32), "valid"))),  # narrower than k
    ]
    if dtype.kind == "f":
        # The tile compiles apart for each kernel height below TILE_ROWS - 1 (corr._wide_rows).
        steps.append(("correlation, kernels on the register tile",
                      lambda: [signal.correlate2d(sample(16, 60), sample(kh, 4 if kh < 7 else 3), "valid")
                               for kh in (2, 3, 4, 5, 6, 7)]))
    if dtype.kind in "fc":
        steps += [
            ("method='auto' checks for inf and NaN", lambda: signal.correlate2d(sample(64, 64), sample(31, 31))),
            ("corr2d_grad with inf or NaN in K",
             lambda: signal.corr2d_grad(image, np.full((3, 3), np.inf, dtype), sample(38, 38))),
        ]
    if dtype.kind == "f":
        steps.append(("ndimage, volumes and colour images (stacks of planes)",
                      lambda: [ndimage.correlate(sample(6, 12, 12), sample(3, 3, 3)),
                               ndimage.correlate(sample(3, 4, 2048), sample(3, 3, 3)),  # rows read in place
                               ndimage.correlate(sample(12, 12, 3), sample(3, 3), axes=(0, 1)),
                               ndimage.correlate(sample(4, 683, 3), sample(3, 3), axes=(0, 1)),
                               ndimage.correlate(sample(6, 12, 12), sample(2, 3, 4), mode="mirror"),
                               ndimage.correlate(sample(12, 12, 3), sample(2, 3), axes=(0, 1))]))  # channels, any kernel
        x = sample(2, 4, 12, 12)

        def layer(weight, x=x, method="auto", **geometry):
            y = conv.conv2d(x, weight, sample(weight.shape[0]), **geometry, method=method)
            conv.conv2d_input_grad(x.shape, weight, y, **geometry, method=method)
            conv.conv2d_weight_grad(x, weight.shape, y, **geometry, method=method)

        spoiled = x.copy()
        spoiled[0, 0, 0, 0] = np.inf
        steps += [
            ("conv2d and gradients, 3x3", lambda: (layer(sample(6, 4, 3, 3), padding=1), layer(sample(6, 4, 3, 3)))),
            ("conv2d and gradients, register tiles", lambda: layer(sample(16, 4, 3, 3), padding=1)),
            ("conv2d weight gradient, a matrix product", lambda: layer(sample(16, 16, 3, 3), sample(2, 16, 12, 12),
                                                                      padding=1)),
            ("conv2d and gradients, any kernel", lambda: layer(sample(6, 4, 2, 3), dilation=(1, 2))),
            ("conv2d and gradients, dilated 3x3", lambda: (layer(sample(8, 4, 3, 3), padding=2, dilation=2),
                                                           layer(sample(4, 1, 3, 3), padding=1, dilation=(2, 1),
                                                                 groups=4))),
            ("conv2d and gradients, one output channel per group", lambda: layer(sample(4, 1, 2, 2), groups=4)),
            ("conv2d, one output channel per group on the channel band",
             lambda: layer(sample(4, 1, 3, 3), sample(2, 4, 16, 40), padding=1, groups=4)),
            ("conv2d and gradients, strided", lambda: layer(sample(6, 4, 3, 3), stride=2, padding=1)),
            ("conv2d and gradients by Winograd", lambda: layer(sample(6, 4, 3, 3), padding=1, method="winograd")),
            ("conv2d gradients with inf or NaN", lambda: layer(np.full((6, 4, 3, 3), np.nan, dtype), spoiled)),
        ]
    return steps


def warmup(dtypes: Sequence[DTypeLike] = (np.float32, np.float64), progress: bool = False) -> int:
    """Compile (or load from the disk cache) every kernel for ``dtypes``, serial and parallel.

    Parameters
    ----------
    dtypes : sequence of dtypes
        The dtypes the kernels run in: float32 and float64 by default; complex64,
        complex128 and integer dtypes (``correlate2d``'s) on request.
    progress : bool
        Draw a progress bar on stderr.

    Returns
    -------
    int
        The number of steps run.

    Examples
    --------
    >>> import fastcorr as fc
    >>> fc.warmup(["float64"])  # doctest: +SKIP
    26
    """
    chosen = [np.dtype(t) for t in dtypes]
    for dtype in chosen:
        if dtype not in _validate.KERNEL_DTYPES:
            raise ValueError(f"warmup: the kernels do not run in {dtype}; choose from "
                             f"{', '.join(sorted(map(str, _validate.KERNEL_DTYPES)))}")
    plan = [(dtype, name, call) for dtype in chosen for name, call in _steps(dtype)]
    start = time.perf_counter()
    done = 0
    with np.errstate(all="ignore"):
        for twin in ("serial", "parallel"):
            with _kernels.forced(twin):
                for dtype, name, call in plan:
                    if progress:
                        _bar(done, 2 * len(plan), f"{name}, {dtype}, {twin}", time.perf_counter() - start)
                    call()
                    done += 1
    if progress:
        _bar(done, done, "done", time.perf_counter() - start)
        print(file=sys.stderr)
    return done


def _bar(done: int, total: int, label: str, seconds: float, width: int = 30) -> None:
    filled = width * done // max(total, 1)
    line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {seconds:5.0f} s  {label}"
    print(f"{line:<100.100}", end="", file=sys.stderr, flush=True)
