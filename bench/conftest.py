"""The benchmark suite's option; the scripts beside it are run with ``python``, not collected."""

collect_ignore = ["startup.py", "dask_scale.py"]


def pytest_addoption(parser):
    parser.addoption("--bench-small", action="store_true",
                     help="small images and layers, every implementation still in: with --benchmark-disable, "
                          "a check in seconds that each benchmark runs")
