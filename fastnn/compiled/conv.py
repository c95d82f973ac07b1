"""Convolution on the compiled path: im2col/col2im kernels around one BLAS GEMM per direction.

Same names, signatures and caches as fastnn.reference.conv. The forward GEMM is w (F, CKK) @ x_cols (CKK, N*P)
— one large GEMM rather than one skinny GEMM per image — and a kernel moves its result to NCHW with the bias.
Scratch buffers that never leave a call (the zero-padded input, the GEMM result, the column gradient, the padded
input gradient) are reused per thread, and so is the columns array once the caller has dropped the cache holding
it (see _memory).
"""

import numpy as np

from .._options import current, input_gradient_wanted
from ..kernels import conv as K
from ..kernels._jit import variant
from . import winograd
from ._memory import recycled, scratch

__all__ = [
    "conv_forward_naive", "conv_backward_naive",
    "conv_forward_im2col", "conv_backward_im2col",
    "conv_forward_strides", "conv_backward_strides",
    "conv_forward_fast", "conv_backward_fast",
]


def _k(kernel_fn):
    return variant(kernel_fn, current().parallel)


def _geometry(x, w, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_out = 1 + (x.shape[2] + 2 * pad - w.shape[2]) // stride
    W_out = 1 + (x.shape[3] + 2 * pad - w.shape[3]) // stride
    return stride, pad, H_out, W_out


def _padded(name, a, pad):
    """A per-thread scratch of a's shape plus `pad` on each side of every plane (a itself when pad is 0)."""
    if pad == 0:
        return a
    N, C, H, W = a.shape
    return scratch(name, (N, C, H + 2 * pad, W + 2 * pad), a.dtype)


def _columns(x, w, conv_param):
    stride, pad, H_out, W_out = _geometry(x, w, conv_param)
    C, HH, WW = w.shape[1:]
    cols = recycled((C * HH * WW, x.shape[0] * H_out * W_out), x.dtype)
    xp = _padded("xpad", x, pad)
    if pad:
        _k(K.pad_planes)(x, pad, xp)
    _k(K.im2col)(xp, HH, WW, stride, H_out, W_out, cols)
    return cols, H_out, W_out


def _forward(x, w, b, conv_param):
    """out and what the backward needs: x_cols, or WinogradTiles for 3x3 stride-1 filters."""
    if winograd.applies(w, conv_param):
        return winograd.forward(x, w, b, conv_param["pad"])
    cols, H_out, W_out = _columns(x, w, conv_param)
    F, N = w.shape[0], x.shape[0]
    res = scratch("res", (F, cols.shape[1]), x.dtype)
    np.dot(w.reshape(F, -1), cols, out=res)
    out = np.empty((N, F, H_out * W_out), dtype=x.dtype)
    _k(K.bias_to_nchw)(res, b, N, out)
    return out.reshape(N, F, H_out, W_out), cols


def _weight_gradient(rows, cols):
    """rows (F, M) @ cols.T (M, K). OpenBLAS (SkylakeX kernels, measured here) runs the float32 product faster
    as (cols @ rows.T).T, 0.66-0.83x the time for the CS231n conv shapes, and the float64 one slower (1.1-1.2x)."""
    if rows.dtype == np.float32:
        return np.ascontiguousarray((cols @ rows.T).T)
    return rows @ cols.T


def _backward(dout, x, w, conv_param, cols):
    if isinstance(cols, winograd.WinogradTiles):
        return winograd.backward(dout, x, w, conv_param["pad"], cols)
    stride, pad, H_out, W_out = _geometry(x, w, conv_param)
    N, F = dout.shape[:2]
    rows = scratch("rows", (F, N * H_out * W_out), dout.dtype)
    db = np.empty(F, dtype=dout.dtype)
    _k(K.nchw_to_rows)(dout.reshape(N, F, -1), rows, db)
    dw = _weight_gradient(rows, cols).reshape(w.shape)
    if not input_gradient_wanted():
        return None, dw, db
    dcols = scratch("dcols", cols.shape, dout.dtype)
    np.dot(w.reshape(F, -1).T, rows, out=dcols)
    dx = np.empty(x.shape, dtype=x.dtype)
    _k(K.col2im)(dcols, w.shape[2], w.shape[3], stride, pad, H_out, W_out, _padded("dxpad", dx, pad), dx)
    return dx, dw, db


def conv_forward_fast(x, w, b, conv_param):
    """See fastnn.reference.conv.conv_forward_fast. Returns out, cache (x, w, b, conv_param, x_cols)."""
    out, cols = _forward(x, w, b, conv_param)
    return out, (x, w, b, conv_param, cols)


def conv_backward_fast(dout, cache):
    """See fastnn.reference.conv.conv_backward_fast. Returns dx, dw, db."""
    x, w, b, conv_param, cols = cache
    return _backward(dout, x, w, conv_param, cols)


def conv_forward_naive(x, w, b, conv_param):
    """See fastnn.reference.conv.conv_forward_naive. Returns out, cache (x, w, b, conv_param)."""
    out, _ = _forward(x, w, b, conv_param)
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """See fastnn.reference.conv.conv_backward_naive: rebuilds the columns the naive cache does not keep."""
    x, w, b, conv_param = cache
    if winograd.applies(w, conv_param):  # the tiles only: no product, no output transform
        tiles = winograd.tiles(x, w, conv_param["pad"])
        return winograd.backward(dout, x, w, conv_param["pad"], tiles)
    cols, _, _ = _columns(x, w, conv_param)
    return _backward(dout, x, w, conv_param, cols)


conv_forward_im2col = conv_forward_strides = conv_forward_fast
conv_backward_im2col = conv_backward_strides = conv_backward_fast
