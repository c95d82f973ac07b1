"""Max pooling, pure NumPy: the naive loops and one vectorised implementation with a compact argmax cache.

Each window's gradient goes to its FIRST maximum (np.argmax rules: NaN counts as the maximum) and gradients
of overlapping windows accumulate. (The starter's reshape backward splits a gradient among tied maxima; fastnn
routes it to one element on every path, so all paths agree.)
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "max_pool_forward_naive", "max_pool_backward_naive",
    "max_pool_forward_fast", "max_pool_backward_fast",
    "max_pool_forward_reshape", "max_pool_backward_reshape",
    "max_pool_forward_im2col", "max_pool_backward_im2col",
]


def _geometry(x_shape, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    return ph, pw, stride, 1 + (x_shape[2] - ph) // stride, 1 + (x_shape[3] - pw) // stride


def max_pool_forward_naive(x, pool_param):
    """Max pooling by explicit loops.

    Inputs: x (N, C, H, W); pool_param: 'pool_height', 'pool_width', 'stride' (no padding).
    Returns a tuple of: out (N, C, H', W') with H' = 1 + (H - pool_height) / stride, cache (x, pool_param).
    """
    ph, pw, stride, H_out, W_out = _geometry(x.shape, pool_param)
    out = np.empty(x.shape[:2] + (H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Inputs: dout (N, C, H', W'), cache (x, pool_param). Returns dx (N, C, H, W)."""
    x, pool_param = cache
    ph, pw, stride, H_out, W_out = _geometry(x.shape, pool_param)
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    a, b = divmod(int(np.argmax(window)), pw)
                    dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]
    return dx


def max_pool_forward_fast(x, pool_param):
    """Vectorised max pooling for every geometry.

    Returns a tuple of: out (N, C, H', W'), cache ('argmax', (x, pool_param, argmax)), argmax (N, C, H', W')
    of dtype np.min_scalar_type(ph*pw - 1) holding kh*pw + kw of each window's first maximum.
    """
    ph, pw, stride, H_out, W_out = _geometry(x.shape, pool_param)
    windows = sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride]
    windows = windows.reshape(x.shape[:2] + (H_out, W_out, ph * pw))
    argmax = np.argmax(windows, axis=-1)
    out = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    return np.ascontiguousarray(out), ("argmax", (x, pool_param, argmax.astype(np.min_scalar_type(ph * pw - 1))))


def max_pool_backward_fast(dout, cache):
    """Inputs: dout (N, C, H', W'), cache from max_pool_forward_fast. Returns dx (N, C, H, W)."""
    method, inner = cache
    if method != "argmax":
        raise ValueError("Unrecognized method %s" % method)
    x, pool_param, argmax = inner
    ph, pw, stride, H_out, W_out = _geometry(x.shape, pool_param)
    N, C = x.shape[:2]
    a, b = np.divmod(argmax.astype(np.intp), pw)
    rows = np.arange(H_out)[:, None] * stride + a
    cols = np.arange(W_out)[None, :] * stride + b
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, :, None, None]
    dx = np.zeros_like(x)
    np.add.at(dx, (n, c, rows, cols), dout)
    return dx


max_pool_forward_reshape = max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_reshape = max_pool_backward_im2col = max_pool_backward_fast
