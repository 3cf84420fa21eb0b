"""Run every kernel as one of its twins, whatever the size of the work."""

from __future__ import annotations

import contextlib

from fastcorr import _kernels


@contextlib.contextmanager
def run_as(twin: str):
    """Inside, every kernel picks its ``twin`` ('serial' or 'parallel')."""
    saved = _kernels.SERIAL_WORK
    _kernels.SERIAL_WORK = 2**62 if twin == "serial" else 0
    try:
        yield
    finally:
        _kernels.SERIAL_WORK = saved
