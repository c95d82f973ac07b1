"""Max pooling on the compiled path. Same names, signatures and caches as fastnn.reference.pool; every max-pool
name shares the one kernel pair, whose cache keeps a compact argmax instead of an im2col buffer."""

import numpy as np

from .._options import current
from ..kernels import pool as K
from ..kernels._jit import variant
from ._memory import recycled

__all__ = [
    "max_pool_forward_naive", "max_pool_backward_naive",
    "max_pool_forward_fast", "max_pool_backward_fast",
    "max_pool_forward_reshape", "max_pool_backward_reshape",
    "max_pool_forward_im2col", "max_pool_backward_im2col",
]


def tiles_two_by_two(shape, pool_param):
    """Whether the windows are 2x2 with stride 2 and tile the input exactly (the unrolled kernels' case)."""
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    return ph == pw == stride == 2 and shape[2] % 2 == 0 and shape[3] % 2 == 0


def _forward(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    shape = x.shape[:2] + (1 + (x.shape[2] - ph) // stride, 1 + (x.shape[3] - pw) // stride)
    out = recycled(shape, x.dtype)
    argmax = recycled(shape, np.min_scalar_type(ph * pw - 1))
    parallel = current().parallel
    if tiles_two_by_two(x.shape, pool_param):
        variant(K.max_pool_forward_2x2, parallel)(x, out, argmax)
    else:
        variant(K.max_pool_forward, parallel)(x, ph, pw, stride, out, argmax)
    return out, argmax


def _backward(dout, x, pool_param, argmax):
    pw, stride = pool_param["pool_width"], pool_param["stride"]
    dx = recycled(x.shape, x.dtype)
    if tiles_two_by_two(x.shape, pool_param):
        variant(K.max_pool_backward_2x2, current().parallel)(dout, argmax, dx)
    else:
        variant(K.max_pool_backward, current().parallel)(dout, argmax, pw, stride, dx)
    return dx


def max_pool_forward_fast(x, pool_param):
    """See fastnn.reference.pool.max_pool_forward_fast. Returns out, cache ('argmax', (x, pool_param, argmax))."""
    out, argmax = _forward(x, pool_param)
    return out, ("argmax", (x, pool_param, argmax))


def max_pool_backward_fast(dout, cache):
    """See fastnn.reference.pool.max_pool_backward_fast. Returns dx."""
    method, (x, pool_param, argmax) = cache
    if method != "argmax":
        raise ValueError("Unrecognized method %s" % method)
    return _backward(dout, x, pool_param, argmax)


def max_pool_forward_naive(x, pool_param):
    """See fastnn.reference.pool.max_pool_forward_naive. Returns out, cache (x, pool_param)."""
    out, _ = _forward(x, pool_param)
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """See fastnn.reference.pool.max_pool_backward_naive: recomputes the argmax the naive cache does not keep."""
    x, pool_param = cache
    _, argmax = _forward(x, pool_param)
    return _backward(dout, x, pool_param, argmax)


max_pool_forward_reshape = max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_reshape = max_pool_backward_im2col = max_pool_backward_fast
