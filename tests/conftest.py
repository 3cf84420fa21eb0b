import os
import sys

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("fastcorr", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("fastcorr")


def pytest_collection_modifyitems(items):
    """The slow tests first: handed out to the workers from the start, they no longer end the run on one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20261126)


@pytest.fixture(params=["serial", "parallel"])
def twin(request):
    """Run every kernel of the test as its serial twin, then as its parallel twin, whatever the size."""
    from twins import run_as

    with run_as(request.param):
        yield request.param


@pytest.fixture(scope="module")
def torch():
    """torch on one thread (skips when not installed): its thread pool's wake-up costs far more
    than these tiny convolutions."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)
