"""Numba kernels: loops on validated, C-contiguous arrays, nothing else.

Every kernel is compiled twice by :func:`kernel`, once parallel and once
serial, and :func:`pick` is the one place that decides which one runs.
"""

from __future__ import annotations

import types

import numba

from fastcorr._kernels import _threading

_threading.load_tbb()

#: Below this many multiply-adds a parallel launch costs more than it saves: waking
#: TBB's workers after an idle spell costs 50-250 us on a 2-core VM (measured).
SERIAL_WORK = 1 << 20

_OPTIONS = dict(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")


class Kernel:
    """A loop compiled twice: ``parallel`` (prange spread over threads) and ``serial``.

    ``reassociate=True`` lets LLVM reorder the additions of a sum (fast-math 'reassoc',
    nothing that assumes finite values), so that long dot products vectorise; results
    then differ from the sequential sum by rounding only.
    """

    def __init__(self, fn: types.FunctionType, reassociate: bool = False):
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        options = dict(_OPTIONS, fastmath={"contract", "reassoc"} if reassociate else {"contract"})
        self.parallel = numba.njit(parallel=True, **options)(fn)
        # A distinct function object (and qualname) gives the serial twin its own cache file.
        serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"
        serial.__module__ = fn.__module__
        self.serial = numba.njit(**options)(serial)

    def pick(self, work: int):
        """The twin to run for ``work`` multiply-adds."""
        return self.serial if work < SERIAL_WORK else self.parallel


def kernel(fn: types.FunctionType | None = None, *, reassociate: bool = False):
    """Decorator: compile ``fn`` as a parallel and a serial :class:`Kernel`."""
    if fn is None:
        return lambda f: Kernel(f, reassociate)
    return Kernel(fn, reassociate)


helper = numba.njit(inline="always", **_OPTIONS)
"""Decorator for small per-element helpers: inlined into every loop that calls them."""

shared = numba.njit(**_OPTIONS)
"""Decorator for row-sized helpers: compiled once per signature and called by every loop
that needs them, so that several loops do not each compile their own copy."""
