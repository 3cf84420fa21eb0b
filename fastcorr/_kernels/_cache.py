"""The compiled-kernel cache on disk, which never makes a call fail, and the compile notice.

Numba's ``cache=True`` picks a directory when a function is decorated (``NUMBA_CACHE_DIR``,
then the package's ``__pycache__``, then the user's cache directory) and raises
``RuntimeError: cannot cache function ...: no locator available`` at import when none is
writable; a damaged index or data file makes the first call raise whatever ``pickle``
raises, and a damaged object file inside a well-formed pickle can crash the process. Here:

* the directory is chosen on a kernel's first compile, not at import, in Numba's order; when
  none is writable the kernels compile in memory and one :class:`CacheWarning` says how to
  get a cache;
* each entry carries a SHA-256 of its payload, checked before Numba loads the object code;
  a damaged index or entry is recompiled and overwritten, with one warning;
* an entry loads the shared bodies its code calls first (:mod:`fastcorr._kernels._link`);
* an index is valid for the sources of every kernel module, not only its own (compiled code
  holds the helpers and intrinsics it calls from the others);
* a failed write (disk full, permissions changed) keeps the kernel in memory, with one
  warning, instead of failing the call after a successful compile;
* in an interactive session, the first compile for each dtype prints one line on stderr
  (``FASTCORR_QUIET=1`` hides it).

Built on ``numba.core.caching`` (Numba's internal API, tested with Numba 0.68): subclasses of
``FunctionCache``, ``CompileResultCacheImpl`` and ``IndexDataCacheFile``, set as a
dispatcher's ``_cache``. Numba's own locator list and the user's functions are untouched.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import threading
import warnings

from numba.core import caching
from numba.core.serialize import dumps

from fastcorr._kernels import _link

_FORMAT = b"fastcorr-cache-2"


class CacheWarning(UserWarning):
    """The on-disk kernel cache could not be used; the kernels still compile and run."""


_warned: set[str] = set()
_lock = threading.Lock()


def _once(key: str) -> bool:
    """True the first time ``key`` is seen in this process."""
    with _lock:
        if key in _warned:
            return False
        _warned.add(key)
        return True


def _warn_once(key: str, message: str) -> None:
    if _once(key):
        warnings.warn(message, CacheWarning, stacklevel=3)


def _damaged(what: str, path: str, exc: BaseException) -> None:
    _warn_once("damaged", f"fastcorr: damaged kernel cache {what} {path!r} ({type(exc).__name__}: {exc}); "
                          "recompiling and overwriting it")


NO_CACHE = ("fastcorr: no writable directory for the compiled-kernel cache (NUMBA_CACHE_DIR is unset, and "
            "neither the package's __pycache__ nor the user cache directory is writable), so kernels compile "
            "in memory in every new process. Set NUMBA_CACHE_DIR to a writable directory to keep them.")


class _Stale(Exception):
    """An entry in another format (written by plain Numba, or an older fastcorr): recompile quietly."""


class _Damaged(Exception):
    pass


class _Impl(caching.CompileResultCacheImpl):
    # Numba's order of places, without the IPython locator: fastcorr's kernels live in files.
    _locator_classes = [
        caching.UserProvidedCacheLocator,
        caching.InTreeCacheLocator,
        caching.UserWideCacheLocator,
        caching.ZipCacheLocator,
    ]

    def reduce(self, cres):
        blob = dumps((_link.callees(cres.library), super().reduce(cres)))
        return (_FORMAT, hashlib.sha256(blob).digest(), blob)

    def rebuild(self, target_context, data):
        if not (isinstance(data, tuple) and len(data) == 3 and data[0] == _FORMAT):
            raise _Stale
        _, digest, blob = data
        if not isinstance(blob, bytes) or hashlib.sha256(blob).digest() != digest:
            raise _Damaged("checksum mismatch")
        callees, reduced = pickle.loads(blob)
        if not _link.load(callees, target_context.codegen()):
            raise _Stale
        return super().rebuild(target_context, reduced)


class _IndexFile(caching.IndexDataCacheFile):
    def _load_index(self):
        try:
            return super()._load_index()
        except Exception as exc:  # whatever a garbled or short file makes pickle raise
            _damaged("index", self._index_path, exc)
            return {}  # the next save writes a fresh index over it

    def load(self, key):
        try:
            return super().load(key)
        except Exception as exc:
            _damaged("entry for", self._index_path, exc)
            return None  # recompiled; the save overwrites the same data file


def _kernel_sources() -> str:
    """A digest of every module in this folder: a kernel's compiled code holds the helpers and
    intrinsics it calls from the others, so an edit to any of them makes every entry stale."""
    global _SOURCES
    if _SOURCES is None:
        digest = hashlib.sha256()
        folder = os.path.dirname(os.path.abspath(__file__))
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + b"\0" + f.read())
        _SOURCES = digest.hexdigest()
    return _SOURCES


_SOURCES: str | None = None


class _RobustCache(caching.FunctionCache):
    _impl_class = _Impl

    def __init__(self, py_func):
        super().__init__(py_func)
        stamp = (self._impl.locator.get_source_stamp(), _kernel_sources())
        self._cache_file = _IndexFile(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                      source_stamp=stamp)

    def _load_overload(self, sig, target_context):
        try:
            return super()._load_overload(sig, target_context)
        except _Stale:
            return None
        except Exception as exc:
            _damaged("entry in", self._cache_path, exc)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as exc:
            self.disable()
            _warn_once("save", f"fastcorr: could not write the kernel cache in {self._cache_path!r} "
                               f"({type(exc).__name__}: {exc}); kernels are kept in memory for this process")


class LazyCache(caching._Cache):
    """A dispatcher's cache that finds its directory on the kernel's first compile, not at import."""

    def __init__(self, py_func):
        self._py_func = py_func
        self._real = None
        self._enabled = True

    def _get(self):
        if self._real is None:
            try:
                real = _RobustCache(self._py_func)
            except (RuntimeError, OSError) as exc:
                if isinstance(exc, RuntimeError) and "no locator available" not in str(exc):
                    raise
                _warn_once("no cache", NO_CACHE)
                real = caching.NullCache()
            if not self._enabled:
                real.disable()
            self._real = real
        return self._real

    @property
    def cache_path(self):
        return self._get().cache_path

    def load_overload(self, sig, target_context):
        real = self._get()
        cres = real.load_overload(sig, target_context)
        if cres is None:  # a miss: Numba compiles next
            _announce(sig)
        return cres

    def save_overload(self, sig, data):
        self._get().save_overload(sig, data)

    def enable(self):
        self._enabled = True
        if self._real is not None:
            self._real.enable()

    def disable(self):
        self._enabled = False
        if self._real is not None:
            self._real.disable()

    def flush(self):
        self._get().flush()


def attach(dispatcher) -> None:
    """Give a dispatcher made without ``cache=True`` fastcorr's cache."""
    dispatcher._cache = LazyCache(dispatcher.py_func)


def saved(dispatcher) -> bool:
    """Whether the disk cache holds an index of compiled code for ``dispatcher`` (whether it
    is valid for these sources is found out on loading)."""
    cache = dispatcher._cache
    real = cache._get() if isinstance(cache, LazyCache) else cache
    index = getattr(getattr(real, "_cache_file", None), "_index_path", None)
    return index is not None and os.path.exists(index)


def interactive() -> bool:
    """An interactive session (a prompt, ``python -i``, IPython or Jupyter), unless ``FASTCORR_QUIET`` is set."""
    if os.environ.get("FASTCORR_QUIET", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    try:
        return ipython is not None and ipython.get_ipython() is not None
    except Exception:  # an IPython too broken to ask is no shell to talk to
        return False


def _announce(sig) -> None:
    """Once per dtype, in interactive sessions: say that seconds of compiling start."""
    dtype = next((str(t.dtype) for t in sig if hasattr(t, "dtype")), "")
    if interactive() and _once(f"announce {dtype}"):
        print(f"fastcorr: compiling kernels{' for ' + dtype if dtype else ''}, a few seconds "
              "(first use; FASTCORR_QUIET=1 hides this)", file=sys.stderr, flush=True)
