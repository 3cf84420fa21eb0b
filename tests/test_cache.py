"""The compiled-kernel cache: where it can be written it is used, where it cannot the kernels
compile in memory with one warning, a damaged file is recompiled, and an interactive user is
told once that compiling starts. Each case runs in fresh processes with their own cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CALL = """
import json, warnings
import numpy as np
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import fastcorr as fc
    from fastcorr._kernels import corr
    y = fc.corr2d(np.arange(48.0, dtype=np.float32).reshape(6, 8), np.array([[1.0, -1.0]], np.float32))
stats = corr.valid.stats
print(json.dumps({"right": bool((y == -1).all()), "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()),
                  "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
"""

NO_WRITABLE_PLACE = """
from numba.core import caching
for locator in (caching.InTreeCacheLocator, caching.UserWideCacheLocator):
    locator.from_function = classmethod(lambda cls, py_func, py_file: None)  # as when not writable
"""


def run(code: str, cache_dir: Path | None, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "FASTCORR_QUIET")}
    environ["PYTHONPATH"] = str(ROOT)
    if cache_dir is not None:
        environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**environ, **env}, timeout=240, stdin=subprocess.DEVNULL)


def report(code: str, cache_dir: Path | None) -> dict:
    result = run(code, cache_dir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_no_writable_cache_directory_compiles_in_memory_with_one_warning():
    first = report(NO_WRITABLE_PLACE + CALL, None)
    assert first["right"] and first["hits"] == 0
    assert len(first["warnings"]) == 1
    assert first["warnings"][0].startswith("CacheWarning: fastcorr: no writable directory")
    assert "NUMBA_CACHE_DIR" in first["warnings"][0]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage index", "empty index", "garbage data", "flipped bytes in the data"])
def test_a_damaged_cache_file_is_recompiled_and_overwritten(tmp_path, damage):
    first = report(CALL, tmp_path)
    assert first == {"right": True, "hits": 0, "misses": 1, "warnings": []}
    index = next(tmp_path.rglob("corr.valid-*.nbi"))
    data = next(tmp_path.rglob("corr.valid-*.nbc"))
    if damage == "garbage index":
        index.write_bytes(b"not a pickle at all" * 10)
    elif damage == "empty index":
        index.write_bytes(b"")
    elif damage == "garbage data":
        data.write_bytes(os.urandom(data.stat().st_size))
    else:
        blob = bytearray(data.read_bytes())
        for at in range(len(blob) // 2, len(blob) // 2 + 64):
            blob[at] ^= 0xFF
        data.write_bytes(bytes(blob))
    second = report(CALL, tmp_path)
    assert second["right"] and second["hits"] == 0
    assert len(second["warnings"]) == 1 and "damaged kernel cache" in second["warnings"][0]
    third = report(CALL, tmp_path)
    assert third == {"right": True, "hits": 1, "misses": 0, "warnings": []}


@pytest.mark.slow
@pytest.mark.parametrize("interactive, quiet, told", [(True, None, True), (True, "1", False), (False, None, False)])
def test_an_interactive_user_is_told_once_that_compiling_starts(tmp_path, interactive, quiet, told):
    code = CALL + "fc.correlate2d(np.ones((9, 9), np.float32), np.ones((3, 3), np.float32), 'same')\n"
    result = run(code, tmp_path, *(["-i"] if interactive else []), **({"FASTCORR_QUIET": quiet} if quiet else {}))
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("fastcorr: compiling")]
    assert notes == (["fastcorr: compiling kernels for float32, a few seconds (first use; FASTCORR_QUIET=1 hides this)"]
                     if told else [])
    again = run(code, tmp_path, *(["-i"] if interactive else []))
    assert "fastcorr: compiling" not in again.stderr  # cached: nothing to announce


@pytest.mark.slow
def test_an_edit_to_any_kernel_module_makes_every_cached_kernel_stale(tmp_path):
    """A kernel's compiled code holds the helpers and intrinsics it calls from other modules."""
    import shutil

    shutil.copytree(ROOT / "fastcorr", tmp_path / "copy" / "fastcorr", ignore=shutil.ignore_patterns("__pycache__"))
    code = CALL.replace("import fastcorr as fc", "import sys; sys.path.insert(0, {!r}); import fastcorr as fc".format(
        str(tmp_path / "copy")))
    assert report(code, tmp_path / "cache")["misses"] == 1
    assert report(code, tmp_path / "cache")["hits"] == 1
    with open(tmp_path / "copy" / "fastcorr" / "_kernels" / "simd.py", "a") as f:
        f.write("\n# edited\n")
    assert report(code, tmp_path / "cache")["misses"] == 1


@pytest.mark.slow
def test_a_cached_loop_loads_the_bodies_it_calls_first(tmp_path):
    """valid_planes (a small unpadded conv2d) calls valid by symbol: its cached code needs that
    body loaded, also when the body's own entry is gone and the body compiles anew."""
    call = CALL.replace("fc.corr2d(", "fc.conv2d(*(a[None, None] for a in (").replace("np.float32))", "np.float32))))")
    call = call.replace("corr.valid.stats", "corr.valid_planes.stats")
    assert report(call, tmp_path)["misses"] == 1
    for body in tmp_path.rglob("corr.valid-*"):
        body.unlink()
    code = call + "print(json.dumps({'body misses': sum(corr.valid.stats.cache_misses.values())}))\n"
    result = run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    loop, body = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert loop["right"] and loop["warnings"] == [] and body["body misses"] == 1
    assert report(call, tmp_path) == {"right": True, "hits": 1, "misses": 0, "warnings": []}


def test_a_body_is_called_by_symbol_not_compiled_into_its_callers():
    import numba
    import numpy as np

    from fastcorr._kernels import _link, corr

    x, k, out = np.ones((1, 5, 6)), np.ones((1, 2, 2)), np.zeros((1, 4, 5))
    args = (x, k, out, np.zeros((1, 1), np.int64), 0, 0, corr.FILL, 0.0, 1, 4)
    corr.stack.serial(*args)
    assert (out == 4).all()
    caller = corr.stack.serial.overloads[tuple(numba.typeof(a) for a in args)]
    linked = {f.name: f.is_declaration for f in caller.library._get_module_for_linking().functions}
    (body,) = (b for b in corr._stack_task.overloads.values() if b.fndesc.mangled_name in linked)
    symbol = body.fndesc.mangled_name
    assert linked[symbol]  # declared, not defined: its code is the body's own
    callee = (corr.__name__, "_stack_task", tuple(body.signature.args), symbol)
    codegen = caller.library.codegen
    assert _link.load([callee], codegen)
    assert not _link.load([(*callee[:3], symbol + "_gone")], codegen)  # its caller is then recompiled
