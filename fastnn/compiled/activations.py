"""Activations on the compiled path: same names, signatures and caches as fastnn.reference.activations."""

import numpy as np

from .._options import current
from ..kernels import elementwise as K
from ..kernels._jit import variant
from ._memory import recycled

__all__ = [
    "relu_forward", "relu_backward",
    "leaky_relu_forward", "leaky_relu_backward",
    "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward",
]


def _apply(kernel_fn, like, *args):
    """Run an elementwise kernel over flat views; the result has `like`'s shape and dtype."""
    result = recycled(like.shape, like.dtype)
    flat = [a.reshape(-1) if isinstance(a, np.ndarray) else a for a in args]
    variant(kernel_fn, current().parallel)(*flat, result.reshape(-1))
    return result


def relu_forward(x):
    """See fastnn.reference.activations.relu_forward. Returns out, cache x."""
    return _apply(K.relu_forward, x, x), x


def relu_backward(dout, cache):
    """See fastnn.reference.activations.relu_backward."""
    return _apply(K.relu_backward, dout, dout, cache)


def leaky_relu_forward(x, alpha=0.01):
    """See fastnn.reference.activations.leaky_relu_forward. Returns out, cache (x, alpha)."""
    return _apply(K.leaky_relu_forward, x, x, x.dtype.type(alpha)), (x, alpha)


def leaky_relu_backward(dout, cache):
    """See fastnn.reference.activations.leaky_relu_backward."""
    x, alpha = cache
    return _apply(K.leaky_relu_backward, dout, dout, x, dout.dtype.type(alpha))


def sigmoid_forward(x):
    """See fastnn.reference.activations.sigmoid_forward. Returns out, cache out."""
    out = _apply(K.sigmoid_forward, x, x)
    return out, out


def sigmoid_backward(dout, cache):
    """See fastnn.reference.activations.sigmoid_backward."""
    return _apply(K.sigmoid_backward, dout, dout, cache)


def tanh_forward(x):
    """See fastnn.reference.activations.tanh_forward. Returns out, cache out."""
    out = _apply(K.tanh_forward, x, x)
    return out, out


def tanh_backward(dout, cache):
    """See fastnn.reference.activations.tanh_backward."""
    return _apply(K.tanh_backward, dout, dout, cache)
