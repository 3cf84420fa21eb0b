"""scipy's own TestConvolve2d and TestCorrelate2d, run against fastcorr."""

import functools

import numpy as np
import pytest
import scipy.signal
from scipy.signal.tests import test_signaltools as sp_tests

import fastcorr

PATCHED = ("convolve2d", "correlate2d")


@pytest.fixture
def xp():
    return np


@pytest.fixture(autouse=True)
def fastcorr_in_scipy(monkeypatch):
    for name in PATCHED:
        monkeypatch.setattr(sp_tests, name, getattr(fastcorr, name))
        monkeypatch.setattr(scipy.signal, name, getattr(fastcorr, name))


def assert_patched():
    assert sp_tests.signal is scipy.signal
    for name in PATCHED:
        assert getattr(sp_tests, name) is getattr(fastcorr, name)
        assert getattr(scipy.signal, name) is getattr(fastcorr, name)
    assert scipy.signal.convolve.__module__ == scipy.signal.correlate.__module__ == "scipy.signal._signaltools"


class TestScipyConvolve2d(sp_tests.TestConvolve2d):
    def test_patch_in_effect(self, xp):
        assert_patched()

    @functools.wraps(sp_tests.TestConvolve2d.test_same_with_boundary)
    def test_same_with_boundary(self, func, **kwargs):
        # scipy's parametrize binds `func` to scipy's own functions at import time.
        super().test_same_with_boundary(getattr(fastcorr, func.__name__), **kwargs)

    @pytest.mark.skip(
        reason="builds ~2 GB input + 2 GB copy + 2 GB output: 6.5 GB peak RSS, 3 s warm and "
        "~20 s with a cold Numba cache; too heavy for the default suite on a shared machine"
    )
    def test_large_array(self, xp):
        super().test_large_array(xp)


class TestScipyCorrelate2d(sp_tests.TestCorrelate2d):
    def test_patch_in_effect(self, xp):
        assert_patched()


@pytest.mark.parametrize("cls, minimum", [(TestScipyConvolve2d, 17), (TestScipyCorrelate2d, 4)])
def test_scipy_tests_inherited(cls, minimum):
    scipy_class = cls.__bases__[0]
    assert scipy_class.__module__ == sp_tests.__name__
    assert len([name for name in vars(scipy_class) if name.startswith("test_")]) >= minimum
