"""The chapter's own ``corr2d``: two Python loops, the reference that the demo and the bench time."""

from __future__ import annotations

import numpy as np


def chapter_corr2d(X, K):
    """The chapter's two Python loops.

    Examples
    --------
    >>> chapter_corr2d(np.arange(9.0).reshape(3, 3), np.array([[0.0, 1.0], [2.0, 3.0]]))
    array([[19., 25.],
           [37., 43.]])
    """
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=np.result_type(X, K))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y
