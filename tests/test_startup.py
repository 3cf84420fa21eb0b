import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(code, **env):
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


LAZY = """
import json, sys
import numba  # what numba itself imports is not fastcorr's doing
before = set(sys.modules)
import fastcorr
new = sorted(m for m in set(sys.modules) - before if not m.startswith("fastcorr"))
sys.path.insert(0, "tests")
from twins import dispatchers
dispatchers = dispatchers()
print(json.dumps({"new": new, "dispatchers": len(dispatchers), "compiled": sum(len(d.signatures) for d in dispatchers)}))
"""


def test_import_is_cheap_and_lazy():
    state = run(LAZY)
    assert state["dispatchers"] > 20 and state["compiled"] == 0
    assert not [m for m in state["new"] if m.split(".")[0] in ("scipy", "dask", "cv2", "torch", "matplotlib")]


@pytest.mark.slow
def test_second_process_loads_kernels_from_the_disk_cache(tmp_path):
    code = (
        "import json, fastcorr as fc; from fastcorr._kernels import corr; "
        "fc.corr2d([[1.0, 2.0], [3.0, 4.0]], [[1.0]]); "
        "s = corr.valid.stats; print(json.dumps([sum(s.cache_hits.values()), sum(s.cache_misses.values())]))"
    )
    hits, misses = run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert (hits, misses) == (0, 1)
    hits, misses = run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert (hits, misses) == (1, 0)
