"""Start-up costs, each in a new process: import, then the first small corr2d and conv2d, cold and warm.

    python bench/startup.py [--runs 5]

'cold' runs with an empty Numba cache directory (every kernel compiles), 'warm' in a
second process on the cache the cold one wrote. Medians over --runs fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PROBE = r"""
import json, time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
import fastcorr
import numpy as np
t2 = time.perf_counter()
fastcorr.corr2d(np.ones((6, 8), np.float32), np.array([[1.0, -1.0]], np.float32))
t3 = time.perf_counter()
fastcorr.conv2d(np.ones((1, 1, 6, 8), np.float32), np.ones((1, 1, 1, 2), np.float32))
t4 = time.perf_counter()
print(json.dumps({"numba": t1 - t0, "fastcorr": t2 - t1, "corr2d": t3 - t2, "conv2d": t4 - t3}))
"""


def probe(cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(probe(cache))
            warm.append(probe(cache))
    for name, runs in (("cold", cold), ("warm", warm)):
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(f"{name}: import numba {med['numba']:.3f} s, import fastcorr +{med['fastcorr']:.3f} s, "
              f"first corr2d (6x8 float32) {med['corr2d']:.3f} s, then first conv2d (1x1x6x8) {med['conv2d']:.3f} s")


if __name__ == "__main__":
    main()
