"""The kernels' twins: run every kernel as one of them, whatever the size of the work; list them."""

from __future__ import annotations

import sys

from numba.core.registry import CPUDispatcher

from fastcorr._kernels import Kernel
from fastcorr._kernels import forced as run_as  # noqa: F401


def dispatchers() -> list[CPUDispatcher]:
    """Every compiled function of the loaded kernel modules: each body and helper, and each loop's
    twins (a serial twin that is its body called from Python is not one)."""
    modules = [m for name, m in list(sys.modules.items()) if name.startswith("fastcorr._kernels")]
    values = [v for m in modules for v in vars(m).values()]
    found = [v for v in values if isinstance(v, CPUDispatcher)]
    return found + [twin for v in values if isinstance(v, Kernel) for twin in (v.serial, v.parallel)
                    if isinstance(twin, CPUDispatcher)]
