"""Elementwise activation kernels over flat views. Mirror fastnn.reference.activations; NaN propagates as in
the NumPy expressions there (relu keeps NaN, its backward lets no gradient through a NaN)."""

import numpy as np
from numba import prange

from ._jit import kernel


@kernel(parallel=True)
def relu_forward(x, out):
    for i in prange(x.size):
        v = x[i]
        out[i] = 0 if v <= 0 else v  # NaN <= 0 is False: NaN passes through, as in np.maximum


@kernel(parallel=True)
def relu_backward(dout, x, dx):
    for i in prange(x.size):
        dx[i] = dout[i] if x[i] > 0 else 0


@kernel(parallel=True)
def leaky_relu_forward(x, alpha, out):
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > 0 else alpha * v


@kernel(parallel=True)
def leaky_relu_backward(dout, x, alpha, dx):
    for i in prange(x.size):
        dx[i] = dout[i] if x[i] > 0 else alpha * dout[i]


@kernel(parallel=True)
def sigmoid_forward(x, out):
    for i in prange(x.size):
        v = x[i]
        z = np.exp(-abs(v))
        out[i] = 1 / (1 + z) if v >= 0 else z / (1 + z)


@kernel(parallel=True)
def sigmoid_backward(dout, out, dx):
    for i in prange(out.size):
        dx[i] = dout[i] * out[i] * (1 - out[i])


@kernel(parallel=True)
def tanh_forward(x, out):
    for i in prange(x.size):
        out[i] = np.tanh(x[i])


@kernel(parallel=True)
def tanh_backward(dout, out, dx):
    for i in prange(out.size):
        dx[i] = dout[i] * (1 - out[i] * out[i])
