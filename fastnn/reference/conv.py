"""Convolution, pure NumPy: the naive loops of the assignment and one vectorised im2col implementation that
serves conv_forward_im2col, conv_forward_strides and conv_forward_fast alike (and their backwards)."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._options import input_gradient_wanted

__all__ = [
    "conv_forward_naive", "conv_backward_naive",
    "conv_forward_im2col", "conv_backward_im2col",
    "conv_forward_strides", "conv_backward_strides",
    "conv_forward_fast", "conv_backward_fast",
    "im2col", "col2im",
]


def _geometry(x_shape, w_shape, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_out = 1 + (x_shape[2] + 2 * pad - w_shape[2]) // stride
    W_out = 1 + (x_shape[3] + 2 * pad - w_shape[3]) // stride
    return stride, pad, H_out, W_out


def conv_forward_naive(x, w, b, conv_param):
    """Convolution by explicit loops over (sample, filter, output row, output column).

    Inputs:
    - x: (N, C, H, W); w: (F, C, HH, WW); b: (F,)
    - conv_param: 'stride' and 'pad' (zero padding on both sides of H and W)

    Returns a tuple of: out (N, F, H', W') with H' = 1 + (H + 2 * pad - HH) / stride (likewise W'),
    cache (x, w, b, conv_param).
    """
    stride, pad, H_out, W_out = _geometry(x.shape, w.shape, conv_param)
    N, F, HH, WW = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((N, F, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Inputs: dout (N, F, H', W'), cache (x, w, b, conv_param). Returns dx, dw, db."""
    x, w, b, conv_param = cache
    stride, pad, H_out, W_out = _geometry(x.shape, w.shape, conv_param)
    N, F, HH, WW = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    rows = slice(i * stride, i * stride + HH)
                    cols = slice(j * stride, j * stride + WW)
                    dw[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f]
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return np.ascontiguousarray(dx), dw, dout.sum(axis=(0, 2, 3))


def im2col(x, HH, WW, stride, pad):
    """Columns of every receptive field: (C*HH*WW, N*H'*W'), row (c*HH + kh)*WW + kw, column (n*H' + i)*W' + j."""
    N, C = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]  # (N, C, H', W', HH, WW)
    H_out, W_out = windows.shape[2:4]
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * HH * WW, N * H_out * W_out)


def col2im(cols, x_shape, HH, WW, stride, pad):
    """Adjoint of im2col: sum each column entry back into the (unpadded) input position it came from."""
    N, C, H, W = x_shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    cols = cols.reshape(C, HH, WW, N, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for kh in range(HH):
        for kw in range(WW):
            dxp[:, :, kh:kh + stride * H_out:stride, kw:kw + stride * W_out:stride] += cols[:, kh, kw].transpose(
                1, 0, 2, 3
            )
    return np.ascontiguousarray(dxp[:, :, pad:pad + H, pad:pad + W])


def conv_forward_fast(x, w, b, conv_param):
    """Convolution as one GEMM over im2col columns.

    Inputs and out as conv_forward_naive. Returns a tuple of: out (N, F, H', W'),
    cache (x, w, b, conv_param, x_cols), x_cols as im2col lays it out.
    """
    stride, pad, H_out, W_out = _geometry(x.shape, w.shape, conv_param)
    F = w.shape[0]
    x_cols = im2col(x, w.shape[2], w.shape[3], stride, pad)
    res = w.reshape(F, -1) @ x_cols + b[:, None]
    out = np.ascontiguousarray(res.reshape(F, x.shape[0], H_out, W_out).transpose(1, 0, 2, 3))
    return out, (x, w, b, conv_param, x_cols)


def conv_backward_fast(dout, cache):
    """Inputs: dout (N, F, H', W'), cache (x, w, b, conv_param, x_cols). Returns dx, dw, db."""
    x, w, b, conv_param, x_cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    if not isinstance(x_cols, np.ndarray):  # a compiled forward's ColumnsFromInput or WinogradTiles
        x_cols = im2col(x, w.shape[2], w.shape[3], stride, pad)
    F = w.shape[0]
    dout2 = dout.transpose(1, 0, 2, 3).reshape(F, -1)
    db = dout.sum(axis=(0, 2, 3))
    dw = (dout2 @ x_cols.T).reshape(w.shape)
    if not input_gradient_wanted():
        return None, dw, db
    dcols = w.reshape(F, -1).T @ dout2
    dx = col2im(dcols, x.shape, w.shape[2], w.shape[3], stride, pad)
    return dx, dw, db


conv_forward_im2col = conv_forward_strides = conv_forward_fast
conv_backward_im2col = conv_backward_strides = conv_backward_fast
