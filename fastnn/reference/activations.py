"""Elementwise activations, pure NumPy. NaN propagates as it does through the NumPy expressions."""

import numpy as np

__all__ = [
    "relu_forward", "relu_backward",
    "leaky_relu_forward", "leaky_relu_backward",
    "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward",
]


def relu_forward(x):
    """out = max(0, x), NaN propagating as np.maximum does. Returns out, cache x."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0."""
    x = cache
    return np.where(x > 0, dout, 0).astype(dout.dtype, copy=False)


def leaky_relu_forward(x, alpha=0.01):
    """out = x where x > 0, else alpha * x. Returns out, cache (x, alpha)."""
    out = np.where(x > 0, x, x * x.dtype.type(alpha)).astype(x.dtype, copy=False)
    return out, (x, alpha)


def leaky_relu_backward(dout, cache):
    """dx = dout where x > 0, else alpha * dout."""
    x, alpha = cache
    return np.where(x > 0, dout, dout * dout.dtype.type(alpha)).astype(dout.dtype, copy=False)


def sigmoid_forward(x):
    """out = 1 / (1 + exp(-x)), computed without overflow. Returns out, cache out."""
    z = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout, cache):
    """dx = dout * out * (1 - out)."""
    out = cache
    return dout * out * (1 - out)


def tanh_forward(x):
    """out = tanh(x). Returns out, cache out."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """dx = dout * (1 - out**2)."""
    out = cache
    return dout * (1 - out * out)
