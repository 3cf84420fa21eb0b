"""The same values in nasty memory layouts."""

from __future__ import annotations

import numpy as np


def layouts(a: np.ndarray):
    """Yield (name, array) pairs that all hold the values of ``a``."""
    a = np.asarray(a)
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    flipped = np.ascontiguousarray(a[::-1, ::-1])
    yield "negative strides", flipped[::-1, ::-1]
    gapped = np.zeros((a.shape[0] * 2, a.shape[1] * 3), a.dtype)
    gapped[::2, ::3] = a
    yield "gapped", gapped[::2, ::3]
    yield "transposed", np.ascontiguousarray(a.T).T
    yield "byte-swapped", a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder in "=<" else "<"))
    readonly = a.copy()
    readonly.flags.writeable = False
    yield "read-only", readonly
