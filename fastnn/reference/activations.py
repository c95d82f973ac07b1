"""Elementwise activations, pure NumPy."""

import numpy as np

__all__ = [
    "relu_forward", "relu_backward",
]


def relu_forward(x):
    """out = max(0, x), NaN propagating as np.maximum does. Returns out, cache x."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0."""
    x = cache
    return np.where(x > 0, dout, 0).astype(dout.dtype, copy=False)
