"""Make Numba's TBB threading layer loadable: the one that is both thread- and fork-safe.

Numba picks its threading layer itself, the first time any parallel function runs: by
default the first of ``NUMBA_THREADING_LAYER_PRIORITY`` ('tbb omp workqueue') that loads.
TBB loads only when ``libtbb.so.12`` can be found, and the ``tbb`` wheel installs it into
``<prefix>/lib``, where the dynamic loader does not look. Loading that file once, with
``RTLD_GLOBAL``, lets Numba's own TBB pool find it. Nothing else is changed: the layer stays
Numba's choice and the user's (``NUMBA_THREADING_LAYER``, the priority list), for
fastcorr's kernels and for the user's own parallel code alike.

Only the ``tbb`` distribution's own library is loaded, and only a release that Numba
accepts (2021.6 or later), so that an older libtbb elsewhere on the system is never pulled
into the process.
"""

from __future__ import annotations

import ctypes
import sys
from importlib import metadata

_LIB_NAMES = {"linux": "libtbb.so.12", "win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}
_OLDEST = (2021, 6)


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def tbb_library() -> str | None:
    """The path of the installed ``tbb`` wheel's library, if Numba can use that release."""
    name = _LIB_NAMES.get(sys.platform)
    if name is None:
        return None
    try:
        dist = metadata.distribution("tbb")
    except metadata.PackageNotFoundError:
        return None
    if _release(dist.version) < _OLDEST:
        return None
    for file in dist.files or []:
        if file.name == name:
            return str(file.locate())
    return None


def load_tbb() -> bool:
    """Load the ``tbb`` wheel's library with ``RTLD_GLOBAL``; whether it loaded."""
    path = tbb_library()
    if path is None:
        return False
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return False
    return True
