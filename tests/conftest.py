import os
import sys

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("fastcorr", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("fastcorr")


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20261126)
