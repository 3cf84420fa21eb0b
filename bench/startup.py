"""Start-up costs, each in new processes: cold (empty kernel cache) and warm (cached), beside Numba's floor.

    python bench/startup.py [--runs 3]

- floor: a trivial ``@njit(cache=True)`` loop's first call, the least any Numba library pays;
- first ``corr2d`` (6x8, float32) after ``import fastcorr``, then the first ``conv2d``
  (1x1x6x8) in the same process;
- the first call of each of several public functions on larger inputs, each in its own
  process (the slowest of them is the worst first call a user meets), and for layers their
  forward pass, then each gradient, in one process;
- ``python -m fastcorr demo``, the whole command.

'cold' runs with an empty ``NUMBA_CACHE_DIR`` (every kernel compiles), 'warm' in a second
process on the cache the cold one wrote. Medians over ``--runs`` rounds of fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FLOOR = r"""
import time
t0 = time.perf_counter()
import numba, numpy as np
t1 = time.perf_counter()
@numba.njit(cache=True)
def total(a):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s
total(np.ones(3))
print({"floor": time.perf_counter() - t1})
"""

CHAPTER = r"""
import time
t0 = time.perf_counter()
import numpy as np
import fastcorr
t1 = time.perf_counter()
fastcorr.corr2d(np.ones((6, 8), np.float32), np.array([[1.0, -1.0]], np.float32))
t2 = time.perf_counter()
fastcorr.conv2d(np.ones((1, 1, 6, 8), np.float32), np.ones((1, 1, 1, 2), np.float32))
t3 = time.perf_counter()
print({"import fastcorr": t1 - t0, "corr2d 6x8": t2 - t1, "then conv2d 1x1x6x8": t3 - t2})
"""

#: First calls of public functions beyond the chapter's sizes, each case in a process of its own;
#: a case of several calls times each (a layer's gradients after its forward pass: each
#: compiles only what the calls before it have not).
FIRST_CALLS = {
    "corr2d 512² 3x3": "fc.corr2d(r(512, 512), r(3, 3))",
    "correlate2d 512² 5x5 same symm": "fc.correlate2d(r(512, 512), r(5, 5), 'same', 'symm')",
    "convolve2d 256² 7x7 full": "fc.convolve2d(r(256, 256), r(7, 7))",
    "corr2d_grad 256² 3x3": "fc.corr2d_grad(r(256, 256), r(3, 3), r(254, 254))",
    "corr2d 1024² 15x15": "fc.corr2d(r(1024, 1024), r(15, 15))",
    "ndimage.correlate 64³ 3x3x3": "import fastcorr.ndimage as fnd; fnd.correlate(r(64, 64, 64), r(3, 3, 3))",
}
#: (name, shapes and keywords) of layers whose forward pass and then both gradients are timed.
LAYERS = [
    ("conv2d N8 C16 32² O16 3x3", "(8, 16, 32, 32), (16, 16, 3, 3)", "padding=1"),
    ("conv2d N4 C32 32² O32 3x3 (Winograd)", "(4, 32, 32, 32), (32, 32, 3, 3)", "padding=1"),
    ("conv2d N8 C16 32² O16 stride 2", "(8, 16, 32, 32), (16, 16, 3, 3)", "stride=2, padding=1"),
    ("conv2d N4 C8 32² O8 3x3 dilation 2, 2 groups", "(4, 8, 32, 32), (8, 4, 3, 3)", "padding=2, dilation=2, groups=2"),
]
for _name, _shapes, _keywords in LAYERS:
    FIRST_CALLS[_name] = f"x, w = (r(*s) for s in ({_shapes})); y = fc.conv2d(x, w, {_keywords})"
    FIRST_CALLS[f"{_name}, then conv2d_input_grad"] = f"fc.conv2d_input_grad(x.shape, w, y, {_keywords})"
    FIRST_CALLS[f"{_name}, then conv2d_weight_grad"] = f"fc.conv2d_weight_grad(x, w.shape, y, {_keywords})"
FIRST_CALL = r"""
import time
import numpy as np
import fastcorr as fc
rng = np.random.default_rng(0)
r = lambda *shape: rng.standard_normal(shape).astype(np.float32)
times = {{}}
{calls}
print(times)
"""
TIMED = """t0 = time.perf_counter()
{call}
times[{name!r}] = time.perf_counter() - t0"""


def _first_call_probes():
    """One probe per case: a call, or a layer's forward pass with the gradients after it."""
    probes, current = [], []
    for name, call in FIRST_CALLS.items():
        if ", then " not in name and current:
            probes.append(current)
            current = []
        current.append(TIMED.format(name=name, call=call))
    probes.append(current)
    return [FIRST_CALL.format(calls="\n".join(timed)) for timed in probes]


def _run(args, cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "FASTCORR_QUIET": "1"}
    start = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return out.stdout, time.perf_counter() - start


def _probe(code, cache_dir):
    script = os.path.join(cache_dir, "probe.py")  # a file: Numba caches functions defined in files only
    with open(script, "w") as f:
        f.write(code)
    stdout, _ = _run([sys.executable, script], cache_dir)
    return eval(stdout.strip().splitlines()[-1])  # a dict literal printed by the probe


def measure(runs: int):
    """{case: (cold median, warm median)} in seconds."""
    samples: dict[str, list[tuple[float, float]]] = {}
    probes = [FLOOR, CHAPTER] + _first_call_probes()
    for _ in range(runs):
        for code in probes:
            with tempfile.TemporaryDirectory() as cache:
                cold, warm = _probe(code, cache), _probe(code, cache)
            for key in cold:
                samples.setdefault(key, []).append((cold[key], warm[key]))
        with tempfile.TemporaryDirectory() as cache:
            cold = _run([sys.executable, "-m", "fastcorr", "demo"], cache)[1]
            warm = _run([sys.executable, "-m", "fastcorr", "demo"], cache)[1]
        samples.setdefault("python -m fastcorr demo", []).append((cold, warm))
    return {key: (statistics.median(c for c, _ in pairs), statistics.median(w for _, w in pairs))
            for key, pairs in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the medians as JSON")
    args = parser.parse_args()
    results = measure(args.runs)
    floor_cold, floor_warm = results["floor"]
    width = max(map(len, results))
    print(f"{'first call in a new process':<{width}}  {'cold s':>7}  {'warm s':>7}  (medians of {args.runs} runs)")
    for key, (cold, warm) in results.items():
        print(f"{key:<{width}}  {cold:7.2f}  {warm:7.3f}")
    chapter = results["corr2d 6x8"]
    print(f"\nfirst corr2d above the floor: cold +{chapter[0] - floor_cold:.2f} s, warm +{chapter[1] - floor_warm:.3f} s; "
          f"warm corr2d + conv2d above the floor: +{chapter[1] + results['then conv2d 1x1x6x8'][1] - floor_warm:.3f} s")
    worst = max(FIRST_CALLS, key=lambda key: results[key][0])
    print(f"slowest cold first call of a public function: {worst}, {results[worst][0]:.2f} s")
    for name, _, _ in LAYERS:
        steps = [key for key in FIRST_CALLS if key.startswith(name)]
        print(f"{name}, forward and both gradients: cold {sum(results[key][0] for key in steps):.2f} s in all")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
