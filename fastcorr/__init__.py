"""fastcorr: fast, exact 2-D cross-correlation and convolution."""

from fastcorr.signal import convolve2d, corr2d, corr2d_grad, correlate2d

__all__ = ["corr2d", "corr2d_grad", "correlate2d", "convolve2d"]
__version__ = "0.1.0"
