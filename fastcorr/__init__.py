"""fastcorr: fast, exact 2-D cross-correlation and convolution."""

from fastcorr._warmup import warmup
from fastcorr.conv import conv2d, conv2d_input_grad, conv2d_weight_grad
from fastcorr.nn import Conv2D, Parameter
from fastcorr.optim import SGD, fit
from fastcorr.signal import convolve2d, corr2d, corr2d_grad, correlate2d

__all__ = [
    "corr2d", "corr2d_grad", "correlate2d", "convolve2d",
    "conv2d", "conv2d_input_grad", "conv2d_weight_grad",
    "Parameter", "Conv2D", "SGD", "fit", "warmup",
]
__version__ = "0.1.0"
