"""scipy's own tests of scipy.ndimage.correlate and convolve, run against fastcorr.ndimage.

scipy's test module calls ``ndimage.correlate`` and ``ndimage.convolve`` through the
``scipy.ndimage`` module, so patching those two names runs its tests on fastcorr. Tests of
other filters (which reach scipy's C code directly) are left out; parametrized cases bound
to scipy's functions at import time are mapped to fastcorr's, or skipped when they name
another filter.
"""

import functools

import numpy as np
import pytest
import scipy.ndimage
from scipy.ndimage.tests import test_filters as sp_tests

import fastcorr.ndimage as fnd

PATCHED = ("correlate", "convolve")
ORIGINAL = {name: getattr(scipy.ndimage, name) for name in PATCHED}

#: The tests of TestNdimageFilters that call correlate or convolve (and no other filter of ours).
SELECTED = {
    *(f"test_correlate{i:02d}" for i in range(1, 27)),
    "test_correlate01_overlap", "test_correlate_mode_sequence",
    "test_correlate_complex_kernel", "test_correlate_complex_kernel_cval",
    "test_correlate_complex_kernel_invalid_cval", "test_correlate_complex_input",
    "test_correlate_complex_input_and_kernel", "test_correlate_complex_input_and_kernel_cval",
    "test_correlate_convolve_axes", "test_filter_weights_subset_axes_origins",
    "test_filter_invalid_axes", "test_filter_invalid_footprint_ndim", "test_filter_tuple_length_mismatch",
}
#: Of those, the ones whose parameters hold scipy's functions.
FUNCTION_PARAMETERS = {"test_correlate_convolve_axes": "func", "test_filter_weights_subset_axes_origins": "filter_func",
                       "test_filter_invalid_axes": "filter_func", "test_filter_invalid_footprint_ndim": "filter_func"}


@pytest.fixture
def xp():
    return np


@pytest.fixture
def num_parallel_threads():
    """scipy's fixture, as its conftest defines it without pytest-run-parallel."""
    return 1


@pytest.fixture(autouse=True)
def fastcorr_in_scipy(monkeypatch):
    for name in PATCHED:
        monkeypatch.setattr(scipy.ndimage, name, getattr(fnd, name))


def ours(func):
    """fastcorr's function for scipy's correlate or convolve; a skip for any other filter."""
    for name, original in ORIGINAL.items():
        if func is original:
            return getattr(fnd, name)
    pytest.skip(f"{getattr(func, '__name__', func)} is not correlate or convolve")


def mapped(name, parameter):
    method = getattr(sp_tests.TestNdimageFilters, name)

    @functools.wraps(method)
    def test(self, **kwargs):
        kwargs[parameter] = ours(kwargs[parameter])
        return method(self, **kwargs)

    return test


class TestScipyNdimageFilters(sp_tests.TestNdimageFilters):
    def test_patch_in_effect(self, xp):
        assert sp_tests.ndimage is scipy.ndimage
        for name in PATCHED:
            assert getattr(scipy.ndimage, name) is getattr(fnd, name)

    # scipy parametrizes this one with a generator, which pytest no longer takes: its
    # correlate and convolve cases, as a list.
    @pytest.mark.parametrize("n_mismatch", [1, 3])
    @pytest.mark.parametrize("filter_func, kwargs, key, val", [
        (func, kwargs, key, val) for func, kwargs, key, val in sp_tests._cases_axes_tuple_length_mismatch()
        if func in ORIGINAL.values()])
    def test_filter_tuple_length_mismatch(self, n_mismatch, filter_func, kwargs, key, val, xp):
        scipy_test = sp_tests.TestNdimageFilters.test_filter_tuple_length_mismatch
        scipy_test(self, n_mismatch, ours(filter_func), kwargs, key, val, xp)


for _name in dir(sp_tests.TestNdimageFilters):
    if _name.startswith("test_") and _name != "test_filter_tuple_length_mismatch":
        if _name not in SELECTED:
            setattr(TestScipyNdimageFilters, _name, None)
        elif _name in FUNCTION_PARAMETERS:
            setattr(TestScipyNdimageFilters, _name, mapped(_name, FUNCTION_PARAMETERS[_name]))


class TestScipyThreading(sp_tests.TestThreading):
    test_correlate1d = None
    test_median_filter = None
    test_median_filter1d = None
    test_uniform_filter1d = None
    test_minimum_filter = None
    test_minimum_filter1d = None


for _name in dir(sp_tests.TestThreading):
    if _name.startswith("test_") and _name != "test_correlate":
        setattr(TestScipyThreading, _name, None)


def test_bad_convolve_and_correlate_origins(xp):
    sp_tests.test_bad_convolve_and_correlate_origins(xp)


def test_every_selected_scipy_test_exists():
    assert SELECTED <= set(vars(sp_tests.TestNdimageFilters))
    assert "test_correlate" in vars(sp_tests.TestThreading)
