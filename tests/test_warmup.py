"""warmup compiles every kernel the public functions can pick, so that nothing compiles later."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcorr as fc
import fastcorr.ndimage as fnd

ROOT = Path(__file__).resolve().parent.parent

RUN_CALLS = """
import json, sys
import numpy as np
from numba.core import event
import fastcorr as fc
import fastcorr.ndimage as fnd
if sys.argv[1] == "warmup":
    fc.warmup(["float64"])
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
sys.path.insert(0, "tests")
from test_warmup import calls
np.savez(sys.argv[2], *calls(np.float64))
from numba import types
from twins import dispatchers
literal = sorted(d.py_func.__qualname__ for d in dispatchers() for sig in d.signatures
                 if any(isinstance(t, types.Literal) for t in sig))
print(json.dumps([compiled, literal]))
"""


def calls(dtype):
    """Public calls of every kind, small and large, serial and parallel, with inf and NaN: their results."""
    rng = np.random.default_rng(1)
    results = []
    for shape in [(6, 8), (70, 90), (400, 700)]:
        x = rng.standard_normal(shape).astype(dtype)
        for kernel in [(1, 2), (3, 3), (5, 5), (4, 6), (8, 3)][: 4 if shape[0] < 8 else 5]:
            k = rng.standard_normal(kernel).astype(dtype)
            results.append(fc.corr2d(x, k))
            for mode in ("full", "same", "valid"):
                for boundary in ("fill", "wrap", "symm"):
                    results.append(fc.correlate2d(x, k, mode, boundary, 1.5))
                    results.append(fc.convolve2d(x, k, mode, boundary))
            dy = rng.standard_normal((shape[0] - kernel[0] + 1, shape[1] - kernel[1] + 1)).astype(dtype)
            results.extend(fc.corr2d_grad(x, k, dy))
            results.extend(fc.corr2d_grad(x, np.where(k > 0, np.inf, k), dy))
    for n, c, hw, o, kernel, geometry in [
        (1, 1, 6, 1, 2, {}), (2, 3, 9, 4, 3, dict(padding=1)), (8, 16, 32, 16, 3, dict(padding="same")),
        (4, 4, 20, 8, 5, dict(stride=2, dilation=2, padding=2)), (2, 8, 30, 8, 3, dict(groups=8, padding=1)),
        (64, 1, 28, 6, 5, {}),
    ]:
        x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
        w = rng.standard_normal((o, c // geometry.get("groups", 1), kernel, kernel)).astype(dtype)
        y = fc.conv2d(x, w, rng.standard_normal(o).astype(dtype), **geometry)
        results += [y, fc.conv2d_input_grad(x.shape, w, y, **geometry), fc.conv2d_weight_grad(x, w.shape, y, **geometry)]
        x[0, 0, 0, 0] = np.nan
        results.append(fc.conv2d_input_grad(x.shape, np.where(w > 1, np.inf, w), y, **geometry))
        results.append(fc.conv2d_weight_grad(x, w.shape, y, **geometry))
    for shape, kernel, axes in [((6, 7, 8), (3, 3, 3), None), ((40, 50, 60), (3, 3, 3), None),
                                ((30, 40, 3), (3, 3), (0, 1)), ((300, 400, 3), (5, 5), (0, 1)), ((50,), (4,), None),
                                ((5, 6, 7, 8), (2, 3, 3, 2), None), ((300, 400), (3, 3), None)]:
        x = rng.standard_normal(shape).astype(dtype)
        k = rng.standard_normal(kernel)
        for mode in ("reflect", "constant", "nearest", "mirror", "wrap"):
            results += [fnd.correlate(x, k, mode=mode, cval=1.5, axes=axes), fnd.convolve(x, k, mode=mode, axes=axes)]
        results.append(fnd.correlate((x * 10).astype(np.int16), k, axes=axes))
    layer = fc.Conv2D(3, in_channels=2, out_channels=4, padding=1, dtype=dtype, rng=0)
    fc.fit(layer, rng.standard_normal((4, 2, 8, 8)).astype(dtype), rng.standard_normal((4, 4, 8, 8)).astype(dtype),
           lr=0.01, epochs=2)
    return results + [layer.weight.data]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_after_warmup_nothing_compiles_and_cached_kernels_give_the_same_results(tmp_path):
    """Warm up and call everything in one process, then call everything again in a new one that
    loads every kernel from the disk cache: nothing compiles in either, and the results match."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def run(*args):
        result = subprocess.run([sys.executable, "-c", RUN_CALLS, *args], capture_output=True, text=True, cwd=ROOT,
                                env=env, timeout=850)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    # and no kernel is compiled a second time for a constant argument (Numba types a literal apart)
    assert run("warmup", str(tmp_path / "compiled.npz")) == [[], []]
    assert run("cached", str(tmp_path / "cached.npz")) == [[], []]
    compiled, cached = np.load(tmp_path / "compiled.npz"), np.load(tmp_path / "cached.npz")
    assert len(compiled.files) == len(cached.files) > 200
    for name in compiled.files:
        np.testing.assert_array_equal(compiled[name], cached[name])


def test_warmup_refuses_dtypes_the_kernels_do_not_run_in():
    with pytest.raises(ValueError, match="warmup: the kernels do not run in float16; choose from"):
        fc.warmup([np.float16])


def test_the_command_reports_progress_and_what_it_compiled(capsys):
    from fastcorr.__main__ import main

    assert main(["warmup", "--dtypes", "float64"]) == 0
    captured = capsys.readouterr()
    assert "compiled and cached every kernel for float64" in captured.out
    from fastcorr._warmup import _steps

    total = 2 * len(_steps(np.dtype(np.float64)))  # each step on both twins
    assert f"] {total}/{total}" in captured.err and "done" in captured.err
