"""Training: stochastic gradient descent (SGD) and the chapter's loop (fit)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from typing import Literal, TextIO

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastcorr import _validate
from fastcorr.nn import Conv2D, Parameter

_LOSSES = {"sse": 0, "mse": 1}
_AUTO_PROGRESS_STEPS = 200


def _hyper(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"SGD: {name} must be a real number, got {value!r}")
    if not value >= 0:
        raise ValueError(f"SGD: invalid {name}={value!r}; it must be a number >= 0")
    return float(value)


class SGD:
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    The update of ``torch.optim.SGD`` (with ``dampening=0``), for each parameter ``p``::

        g = p.grad + weight_decay * p.data
        if momentum:
            buf = g                      # first step
            buf = momentum * buf + g     # later steps
            g = g + momentum * buf if nesterov else buf
        p.data -= lr * g

    done in place, in the parameter's dtype.

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update, e.g. ``layer.parameters()``; at least one, no repeats.
    lr : float
        Learning rate, >= 0.
    momentum, weight_decay : float
        >= 0.
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastcorr as fc
    >>> p = fc.Parameter(np.array([1.0, 2.0]))
    >>> opt = fc.SGD([p], lr=0.1, momentum=0.9)
    >>> p.grad[:] = [1.0, -1.0]
    >>> opt.step(); p.data
    array([0.9, 2.1])
    >>> opt.step(); p.data
    array([0.71, 2.29])
    >>> opt.zero_grad(); p.grad
    array([0., 0.])
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        *,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        if isinstance(params, Parameter):
            raise TypeError("SGD: params must be an iterable of Parameters, e.g. layer.parameters(), "
                            "not a single Parameter; pass [param]")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"SGD: params must be an iterable of Parameters, got {type(params).__name__}") from None
        if not params:
            raise ValueError("SGD: params is empty; pass the parameters to train, e.g. layer.parameters()")
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"SGD: params must hold fastcorr.Parameter objects, got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("SGD: params holds the same Parameter more than once")
        self.lr = _hyper(lr, "lr")
        self.momentum = _hyper(momentum, "momentum")
        self.weight_decay = _hyper(weight_decay, "weight_decay")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.params: list[Parameter] = params
        self._buffers: list[NDArray | None] = [None] * len(params)

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to zero, in place."""
        for p in self.params:
            p.grad.fill(0)

    def step(self) -> None:
        """Update every parameter from its ``grad``, in place."""
        for k, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buf = self._buffers[k]
                if buf is None:
                    buf = self._buffers[k] = np.array(g, dtype=p.dtype, copy=True)
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            np.subtract(p.data, (self.lr * g).astype(p.dtype, copy=False), out=p.data)

    def __repr__(self) -> str:
        return (f"SGD({len(self.params)} parameters, lr={self.lr}, momentum={self.momentum}, "
                f"weight_decay={self.weight_decay}, nesterov={self.nesterov})")


class _ProgressBar:
    """A one-line text progress bar, redrawn in place with a carriage return."""

    def __init__(self, total: int, stream: TextIO, width: int = 30):
        self.total, self.stream, self.width = total, stream, width
        self.start = time.perf_counter()
        self._last = -1.0

    def update(self, done: int, text: str) -> None:
        now = time.perf_counter()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.width * done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {100 * done // self.total:3d}% "
                          f"{now - self.start:.1f}s {text}\x1b[K")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()
        self._last = -1.0

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"fit: {name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"fit: {name} must be at least 1, got {value!r}")
    return int(value)


def fit(
    layer: Conv2D,
    X: ArrayLike,
    Y: ArrayLike,
    *,
    loss: Literal["sse", "mse"] = "sse",
    lr: float | None = None,
    optimizer: SGD | None = None,
    epochs: int = 10,
    batch_size: int | None = None,
    shuffle: bool = False,
    rng: int | np.random.Generator | None = None,
    verbose: bool | int = False,
    progress: bool | None = None,
) -> list[float]:
    """Train ``layer`` so that ``layer(X)`` approaches ``Y``, as the chapter's loop does.

    Every step takes one mini-batch: zero the gradients, run the layer forward, compute
    the loss, run it backward, and step the optimizer.

    Parameters
    ----------
    layer : Conv2D
    X : array_like
        The inputs: ``(N, C, H, W)``, or one ``(H, W)`` image when ``in_channels == 1``;
        cast to the layer's dtype.
    Y : array_like
        The targets, in the shape ``layer(X)`` returns; cast to the layer's dtype.
    loss : {'sse', 'mse'}
        ``'sse'``: the sum of squared errors ``sum((layer(X) - Y) ** 2)``, the chapter's
        ``l.sum()``. ``'mse'``: their mean, as ``torch.nn.MSELoss``, per mini-batch.
    lr : float, optional
        Learning rate of a plain ``SGD(layer.parameters(), lr)``.
    optimizer : SGD, optional
        An optimizer to step instead; pass exactly one of ``lr`` and ``optimizer``.
    epochs : int
        Passes over the data, at least 1.
    batch_size : int, optional
        Samples (along N) per step; ``None`` takes all of ``X`` at once. The last batch
        of an epoch may be smaller.
    shuffle : bool
        Visit the samples in a new random order every epoch, drawn from ``rng``.
    rng : None, int or numpy.random.Generator
        Through ``np.random.default_rng(rng)``; used only with ``shuffle``.
    verbose : bool or int
        ``True`` prints ``epoch N, loss L`` to stdout after every epoch, an int ``k``
        after every ``k``-th epoch (the chapter prints every 2nd).
    progress : bool, optional
        A text progress bar on stderr. ``None`` shows it only when stderr is a
        terminal and training takes more than 200 steps.

    Returns
    -------
    list of float
        The loss of every epoch, measured during the pass, each batch before its
        update (what the chapter prints). ``'sse'``: the sum over the epoch's batches of
        their squared errors. ``'mse'``: that sum divided by the number of elements of
        ``Y``, i.e. the mean squared error over all of the epoch's samples.

    Examples
    --------
    The chapter's experiment: learn the edge detector ``[[1, -1]]`` back from an image
    and its edges.

    >>> import numpy as np
    >>> import fastcorr as fc
    >>> X = np.ones((6, 8), np.float32)
    >>> X[:, 2:6] = 0
    >>> Y = fc.corr2d(X, np.array([[1.0, -1.0]], np.float32))
    >>> layer = fc.Conv2D((1, 2), bias=False)
    >>> layer.weight.data[:] = [0.05, -0.03]
    >>> history = fc.fit(layer, X.reshape(1, 1, 6, 8), Y.reshape(1, 1, 6, 7), lr=3e-2, verbose=2)
    epoch 2, loss 4.534
    epoch 4, loss 0.762
    epoch 6, loss 0.128
    epoch 8, loss 0.022
    epoch 10, loss 0.004
    >>> np.round(layer.weight.data.reshape(2), 2)
    array([ 0.99, -0.99], dtype=float32)
    """
    if not isinstance(layer, Conv2D):
        raise TypeError(f"fit: layer must be a fastcorr.Conv2D, got {type(layer).__name__}")
    mean = _validate.choice(loss, "loss", _LOSSES)
    if (lr is None) == (optimizer is None):
        raise ValueError("fit: pass exactly one of lr= (to train with SGD(layer.parameters(), lr)) or optimizer=")
    if optimizer is None:
        optimizer = SGD(layer.parameters(), lr)  # type: ignore[arg-type]
    elif not (callable(getattr(optimizer, "zero_grad", None)) and callable(getattr(optimizer, "step", None))):
        raise TypeError(f"fit: optimizer must have zero_grad() and step(), like fastcorr.SGD; "
                        f"got {type(optimizer).__name__}")
    epochs = _positive_int(epochs, "epochs")
    if batch_size is not None:
        batch_size = _positive_int(batch_size, "batch_size")
    if not isinstance(verbose, (bool, np.bool_, int, np.integer)) or verbose < 0:
        raise ValueError(f"fit: verbose must be True, False or a positive int (print every k epochs), got {verbose!r}")
    every = int(verbose)

    X = _validate.array(X, "X")
    Y = _validate.array(Y, "Y")
    for name, arr in (("X", X), ("Y", Y)):
        if arr.dtype.kind == "c":
            raise TypeError(f"fit: {name} must be real, got dtype {arr.dtype}")
    expected = layer._output_shape(X.shape, "X")
    if Y.shape != expected:
        raise ValueError(f"fit: Y must have the shape of layer(X), {expected}, got {Y.shape}")
    X = np.asarray(X, dtype=layer.dtype)
    Y = np.asarray(Y, dtype=layer.dtype)

    n = X.shape[0] if X.ndim == 4 else 1
    if n == 0:
        raise ValueError(f"fit: X holds no samples (shape {X.shape})")
    size = n if batch_size is None else min(batch_size, n)
    batches = math.ceil(n / size)
    gen = np.random.default_rng(rng) if shuffle and X.ndim == 4 else None
    if progress is None:
        progress = epochs * batches > _AUTO_PROGRESS_STEPS and sys.stderr.isatty()
    bar = _ProgressBar(epochs * batches, sys.stderr) if progress else None

    history: list[float] = []
    try:
        for epoch in range(epochs):
            order = gen.permutation(n) if gen is not None else None
            total = 0.0
            for b in range(batches):
                if X.ndim != 4:
                    xb, yb = X, Y
                elif order is None:
                    xb, yb = X[b * size : (b + 1) * size], Y[b * size : (b + 1) * size]
                else:
                    idx = order[b * size : (b + 1) * size]
                    xb, yb = X[idx], Y[idx]
                optimizer.zero_grad()
                diff = layer(xb) - yb
                total += float(np.sum(np.square(diff, dtype=np.float64)))
                grad = 2 * diff
                if mean:
                    grad /= diff.size
                layer.backward(grad)
                optimizer.step()
                if bar is not None:
                    bar.update(epoch * batches + b + 1, f"epoch {epoch + 1}/{epochs}")
            value = total / Y.size if mean else total
            history.append(value)
            if every and (epoch + 1) % every == 0:
                if bar is not None:
                    bar.clear()
                print(f"epoch {epoch + 1}, loss {value:.3f}")
                if bar is not None:
                    bar.update(epoch * batches + batches, f"epoch {epoch + 1}/{epochs}")
    finally:
        if bar is not None:
            bar.close()
    return history
