"""Scratch arrays whose memory the next call in the same thread reuses.

The C allocator gives a large block back to the system when it is freed (or trims the heap
above it), so a temporary of several megabytes made and dropped by every call is faulted in
again, page by page, by the next one: for a float64 layer of 8 x 64 x 56² the padded copy of
its input and the output together cost 1300-2600 page faults a pass, 1.3-2.7x the pass's time
(measured). :func:`empty` keeps the memory of the temporaries it hands out, per thread, up to
:data:`KEEP_BYTES`, and reuses a block only once nothing refers to it any more: no array made
from it is alive, so two temporaries of one call never share memory, nor do a call's and a
caller's. Arrays start on a cache line (numpy starts a large array 16 bytes past one, so a
full-width vector at every multiple of its width would straddle two lines).
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

from fastcorr._kernels.simd import LINE

#: Bytes of kept blocks per thread, at most; a larger temporary is a plain allocation.
KEEP_BYTES = 64 << 20

_local = threading.local()


def _references(blocks: list, i: int) -> int:
    return sys.getrefcount(blocks[i][0])


#: What :func:`_references` counts for a block that only its list holds.
_FREE = _references([(np.empty(0, np.uint8), 0)], 0)


def _free(blocks: list, i: int) -> bool:
    """Whether no array made from block ``i`` is alive (each holds a reference to it)."""
    return _references(blocks, i) <= _FREE


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, starting on a cache line, in memory kept for later calls."""
    dtype = np.dtype(dtype)
    size = (math.prod(shape) if isinstance(shape, tuple) else shape) * dtype.itemsize
    if size > KEEP_BYTES:
        return _view(_block(size), size, shape, dtype)
    try:
        blocks = _local.blocks
    except AttributeError:
        blocks = _local.blocks = []
    best = -1
    for i in range(len(blocks)):
        if blocks[i][0].size - blocks[i][1] >= size and _free(blocks, i) and (
                best < 0 or blocks[i][0].size < blocks[best][0].size):
            best = i
    if best >= 0:
        return _view(blocks[best], size, shape, dtype)
    # The free blocks are all too small for this one: it takes their place.
    blocks[:] = [blocks[i] for i in range(len(blocks)) if not _free(blocks, i)]
    block = _block(size)
    if sum(raw.size for raw, _ in blocks) + block[0].size <= KEEP_BYTES:
        blocks.append(block)
    return _view(block, size, shape, dtype)


def _block(size: int) -> tuple[np.ndarray, int]:
    """Raw bytes for ``size`` of them from a cache line on, and where that line starts."""
    raw = np.empty(size + LINE, np.uint8)
    return raw, -raw.ctypes.data % LINE


def _view(block, size, shape, dtype) -> np.ndarray:
    raw, skip = block
    return raw[skip : skip + size].view(dtype).reshape(shape)


def kept_bytes() -> int:
    """Bytes this thread keeps."""
    return sum(raw.size for raw, _ in getattr(_local, "blocks", ()))
