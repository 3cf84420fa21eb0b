"""bench/ runs: its extra installs what its pytest run needs, and every benchmark runs once with every peer."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PEERS = {"scipy", "opencv-python-headless", "matplotlib"}


def names(requirements):
    return {re.match(r"[A-Za-z0-9._-]+", r).group().lower() for r in requirements}


def test_bench_and_test_extras_install_the_peers_and_the_plugins_the_pytest_config_names():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    config = project["tool"]["pytest"]["ini_options"]
    plugins = {"pytest", "pytest-benchmark"} | ({"pytest-timeout"} if "timeout" in config else set())
    for extra in ("bench", "test"):
        assert plugins | PEERS <= names(extras[extra]), extra
    assert config["filterwarnings"] == ["error"] and "--strict-markers" in config["addopts"]
    assert "torch" not in names(project["project"]["dependencies"]).union(*map(names, extras.values()))


def installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_benchmark_runs_once_with_every_installed_peer():
    pytest.importorskip("pytest_benchmark")
    command = [sys.executable, "-m", "pytest", "bench", "--benchmark-disable", "--bench-small", "-q", "-rA"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=850)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    passed = re.findall(r"^PASSED bench/test_bench\.py::(\w+)\[(.+)\]$", result.stdout, re.MULTILINE)
    ran = {(test, params.rsplit("-", 1)[-1]) for test, params in passed}
    expected = {("test_single_image", impl) for impl in ["fastcorr", "fastcorr serial", "chapter loops", "np.copyto"]}
    expected.add(("test_ndimage", "fastcorr"))
    if installed("scipy"):
        expected |= {("test_single_image", impl) for impl in ["scipy", "scipy.ndimage", "scipy fftconvolve"]}
        expected.add(("test_ndimage", "scipy.ndimage"))
    if installed("cv2"):
        expected |= {("test_single_image", "cv2"), ("test_ndimage", "cv2")}
    if installed("dask_image"):
        expected.add(("test_ndimage", "dask_image"))
    if installed("torch"):
        expected |= {(test, impl) for test in ["test_single_image", "test_layer"] for impl in ["fastcorr", "torch"]}
        expected |= {("test_training_step", "fastcorr"), ("test_training_step", "torch")}
    assert expected <= ran, f"did not run: {sorted(expected - ran)}\n{result.stdout[-8000:]}"


def test_the_readme_shows_both_bench_commands_with_options_that_exist():
    pytest.importorskip("pytest_benchmark")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    assert "python -m fastcorr bench --plot docs/bench.png" in section
    assert "python -m pytest bench --benchmark-only" in section
    assert "](docs/bench.png)" in readme
    options = set(re.findall(r"--bench(?:mark)?-[a-z-]*[a-z]", section))
    assert {"--benchmark-save", "--benchmark-compare", "--benchmark-histogram", "--benchmark-disable"} <= options
    shown = subprocess.run([sys.executable, "-m", "pytest", "bench", "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert {option for option in options if not re.search(re.escape(option) + r"(?![a-z-])", shown.stdout)} == set()
