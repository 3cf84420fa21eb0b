"""Numba kernels: loops on validated, C-contiguous arrays, nothing else.

Every loop has two twins made by :func:`kernel`, parallel and serial, and :meth:`Kernel.pick`
is the one place that decides which one runs (and when a parallel twin is worth compiling:
:data:`EAGER_WORK`). A loop's body (one task: an output row, a plane) is a :func:`shared`
function, compiled once per signature and called by both twins, so that a twin costs
little more to compile than its loop; where one call of the body can do every task, the
serial twin is that call, made from Python (:meth:`Kernel.serially`). Compiled code is
cached on disk by :mod:`fastcorr._kernels._cache`.

A loop that serves several cases, each with code of its own, can take a switch that is None
or not (``rgb``, ``in_place`` of :func:`fastcorr._kernels.corr.stack3x3`): Numba drops the
branches on ``x is None`` before it types a function, so each choice compiles only its own
branch and the plan in Python picks the choice.
"""

from __future__ import annotations

import contextlib
import types

import numba

from fastcorr._kernels import _cache, _link, _threading

_threading.load_tbb()

#: Below this many multiply-adds a parallel launch costs more than it saves: waking
#: TBB's workers after an idle spell costs 50-250 us on a 2-core VM (measured).
SERIAL_WORK = 1 << 20
#: A parallel twin costs 0.3-0.7 s to compile on top of the loop's body (parfor lowering),
#: more than the serial twin takes for a call of fewer multiply-adds than this (10-30 ms on
#: one core). So in a process where a kernel's parallel twin is neither compiled nor cached,
#: its first call of ``SERIAL_WORK`` or more (but fewer than this) runs serial, and the
#: parallel twin is compiled by the next one: a one-off call never pays for it.
EAGER_WORK = 1 << 27

#: No C callback wrapper: nothing calls the loops through one, and each cost 15-30 ms to compile.
_OPTIONS = dict(nogil=True, error_model="numpy", no_cfunc_wrapper=True)


def _fastmath(reassociate: bool) -> set[str]:
    """Fused multiply-adds always; 'reassoc' lets LLVM reorder a sum's additions so that long
    dot products vectorise (results then differ from the sequential sum by rounding only).
    Nothing that assumes finite values."""
    return {"contract", "reassoc"} if reassociate else {"contract"}


def _compiled(fn: types.FunctionType, reassociate: bool = False, **options):
    dispatcher = numba.njit(fastmath=_fastmath(reassociate), **_OPTIONS, **options)(fn)
    _cache.attach(dispatcher)
    return dispatcher


class Kernel:
    """A loop and its twins: ``parallel`` (prange spread over threads) and ``serial`` (the loop
    compiled without threads, or what :meth:`serially` gives)."""

    def __init__(self, fn: types.FunctionType, reassociate: bool = False):
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.parallel = _compiled(fn, reassociate, parallel=True)
        # A distinct function object (and qualname) gives the serial twin its own cache file.
        serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"
        serial.__module__ = fn.__module__
        self.serial = _compiled(serial, reassociate)
        self._parallel_due = False

    def serially(self, whole):
        """Decorator: ``whole``, a Python function of the loop's arguments that calls the loop's
        body once for all its tasks, becomes the serial twin (a twin compiled for one call of the
        body would cost 0.15-0.2 s to compile, and run no faster)."""
        self.serial = whole
        return whole

    def pick(self, work: int):
        """The twin to run for ``work`` multiply-adds (see :data:`EAGER_WORK`)."""
        if work < SERIAL_WORK:
            return self.serial
        ready = self._parallel_due or work >= EAGER_WORK or self.parallel.overloads or _cache.saved(self.parallel)
        self._parallel_due = True
        return self.parallel if ready else self.serial


@contextlib.contextmanager
def forced(twin: str):
    """Inside, every kernel runs as its ``twin`` ('serial' or 'parallel'), whatever the work."""
    global SERIAL_WORK, EAGER_WORK
    saved = SERIAL_WORK, EAGER_WORK
    SERIAL_WORK, EAGER_WORK = (2**62, 2**62) if twin == "serial" else (0, 0)
    try:
        yield
    finally:
        SERIAL_WORK, EAGER_WORK = saved


def kernel(fn: types.FunctionType | None = None, *, reassociate: bool = False):
    """Decorator: compile ``fn`` as a parallel and a serial :class:`Kernel`."""
    if fn is None:
        return lambda f: Kernel(f, reassociate)
    return Kernel(fn, reassociate)


def shared(fn: types.FunctionType | None = None, *, reassociate: bool = False):
    """Decorator for a loop's body and row-sized helpers: compiled once per signature and
    called by every loop that needs it, so that loops do not each compile their own copy."""
    if fn is None:
        return lambda f: shared(f, reassociate=reassociate)
    dispatcher = _compiled(fn, reassociate)
    _link.by_symbol(dispatcher)
    return dispatcher


helper = numba.njit(inline="always", fastmath=_fastmath(False), **_OPTIONS)
"""Decorator for row helpers with loops: inlined into every function that calls them (at
Numba's IR level: never compiled or cached on their own), so that their loops are vectorised
at the caller's width."""

scalar = numba.njit(forceinline=True, fastmath=_fastmath(False), no_cpython_wrapper=True, **_OPTIONS)
"""Decorator for small helpers without loops: typed and compiled once per signature, then
inlined by LLVM into every caller (inlining them at Numba's IR level instead costs a fresh
translation at every call site: 1.7 of the 5.1 s that the 3x3 stack loop took to compile).
Called from compiled code only: no wrapper for calls from Python is compiled."""
