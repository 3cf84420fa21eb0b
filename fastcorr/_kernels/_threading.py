"""Choose Numba's threading layer: TBB, the one that is both thread- and fork-safe.

Numba's default on Linux is GNU OpenMP, which kills forked children of a process that
has used it (multiprocessing's fork start method, Dask process workers); its fallback,
the workqueue layer, aborts when two Python threads launch parallel work at once.
TBB is safe under both, but the ``tbb`` wheel installs ``libtbb.so.12`` into
``<prefix>/lib``, where the dynamic loader does not look. Loading it once with
``RTLD_GLOBAL`` lets Numba's TBB pool find it.

The library is loaded in every case, so that a user's own ``NUMBA_THREADING_LAYER`` of
'tbb', 'safe' or 'threadsafe' finds it too; the choice is left to the user when they set
that variable, and to Numba when its threads are already running (the layer is fixed for
the life of the process then).
"""

from __future__ import annotations

import ctypes
import os
import sys
from importlib import metadata

import numba
from numba.np.ufunc import parallel

_LIB_NAMES = {"linux": "libtbb.so.12", "win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}


def _tbb_library() -> str | None:
    name = _LIB_NAMES.get(sys.platform)
    if name is None:
        return None
    for prefix in (sys.prefix, sys.base_prefix):
        for folder in ("lib", "Library/bin"):
            path = os.path.join(prefix, folder, name)
            if os.path.exists(path):
                return path
    try:
        files = metadata.files("tbb") or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == name:
            return str(file.locate())
    return None


def configure() -> str:
    """Make libtbb loadable and select TBB unless the layer is already chosen; return the layer."""
    path = _tbb_library()
    try:
        loaded = path is not None and bool(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
    except OSError:
        loaded = False
    if loaded and numba.config.THREADING_LAYER == "default" and not parallel._is_initialized:
        numba.config.THREADING_LAYER = "tbb"
    return numba.config.THREADING_LAYER
