"""Convolution on the compiled path: im2col/col2im kernels around BLAS GEMMs, a block of images at a time.

Same names, signatures and caches as fastnn.reference.conv, except that the cache keeps ColumnsFromInput (or
WinogradTiles, for a 3x3 stride-1 filter bank that runs as Winograd: see compiled/winograd.py, which hands a result
that is not finite back to im2col) where the reference keeps x_cols. The columns of all N images (38 MB for
the CS231n first layer) would go to memory and back three times per step; a block of images' columns (about
BLOCK_BYTES) stays in cache from im2col to GEMM, and the backward gathers them again from x, which costs less
than reading them back (0.73-0.76x the forward+backward time of whole-batch columns for conv (a), measured here). Each
block's forward GEMM is w (F, CKK) @ cols (CKK, n*P), one GEMM for the block rather than one skinny GEMM per
image; a kernel moves its result to NCHW with the bias (a one-image block's GEMM writes its output in place).
Scratch buffers are reused per thread (see _memory).
"""

import numpy as np

from .._conv_cache import ColumnsFromInput
from .._options import current, input_gradient, input_gradient_wanted
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

BLOCK_BYTES = 1 << 21  # columns per block: 2-4 MB ran fastest here (0.5-1 MB and 8 MB up to 1.24x slower)
ONE_IMAGE_PIXELS = 512  # from this many output pixels, a block is one image (see _blocks)


def _k(kernel_fn):
    return variant(kernel_fn, current().parallel)


def _geometry(x, w, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_out = 1 + (x.shape[2] + 2 * pad - w.shape[2]) // stride
    W_out = 1 + (x.shape[3] + 2 * pad - w.shape[3]) // stride
    return stride, pad, H_out, W_out


def _blocks(x, w, P):
    """(start, stop) image ranges whose columns take about BLOCK_BYTES (at least one image each), or one image
    each from ONE_IMAGE_PIXELS output pixels: its GEMMs are then wide enough, and they read dout and write out
    in place, with no regrouping pass (forward + backward 0.76-0.90x the time of multi-image blocks at
    P = 784-1024, measured here; 1.0-1.015x at P = 256 and 1.15-1.2x at P = 64). The blocks depend on the
    shapes alone, so dw and db sum in the same order at any thread count."""
    N = x.shape[0]
    if P >= ONE_IMAGE_PIXELS:
        return [(start, start + 1) for start in range(N)]
    per_image = w[0].size * P * x.itemsize
    n = max(1, min(N, BLOCK_BYTES // per_image))
    return [(start, min(N, start + n)) for start in range(0, N, n)]


def _padded(name, a, pad):
    """A per-thread scratch of a's shape plus `pad` on each side of every plane (a itself when pad is 0)."""
    if pad == 0:
        return a
    N, C, H, W = a.shape
    return scratch(name, (N, C, H + 2 * pad, W + 2 * pad), a.dtype)


def _block_columns(x_block, w, stride, pad, H_out, W_out):
    """The columns (C*HH*WW, n*P) of a block of images, in a per-thread scratch."""
    C, HH, WW = w.shape[1:]
    cols = scratch("cols", (C * HH * WW, x_block.shape[0] * H_out * W_out), x_block.dtype)
    xp = _padded("xpad", x_block, pad)
    if pad:
        _k(K.pad_planes)(x_block, pad, xp)
    _k(K.im2col)(xp, HH, WW, stride, H_out, W_out, cols)
    return cols


def _forward(x, w, b, conv_param):
    """out and what the backward needs: WinogradTiles where Winograd applies and its output is finite, else
    ColumnsFromInput."""
    if winograd.applies(w, conv_param):
        result = winograd.forward(x, w, b, conv_param["pad"])
        if result is not None:  # None: an output not finite, which im2col confines to the windows that hold it
            return result
    stride, pad, H_out, W_out = _geometry(x, w, conv_param)
    N, F, P = x.shape[0], w.shape[0], H_out * W_out
    w2 = w.reshape(F, -1)
    out = recycled((N, F, P), x.dtype)
    for start, stop in _blocks(x, w, P):
        cols = _block_columns(x[start:stop], w, stride, pad, H_out, W_out)
        if stop - start == 1:  # one image's (F, P) result is its NCHW output already
            np.dot(w2, cols, out=out[start])
            _k(K.add_bias)(out[start], b)
        else:
            res = scratch("res", (F, cols.shape[1]), x.dtype)
            np.dot(w2, cols, out=res)
            _k(K.bias_to_nchw)(res, b, stop - start, out[start:stop])
    return out.reshape(N, F, H_out, W_out), ColumnsFromInput(x.dtype)


def _weight_gradient(rows, cols, channels):
    """rows (F, M) @ cols.T (M, K). OpenBLAS (SkylakeX kernels, measured here) runs the float32 product faster
    as (cols @ rows.T).T, 0.67-0.87x the time for the CS231n conv shapes, and the float64 one too where the input
    has few channels (a first layer on images: whole step 0.70-0.95x), but not from 32 (1.01-1.04x)."""
    if rows.dtype == np.float32 or channels <= 4:
        return (cols @ rows.T).T
    return rows @ cols.T


def _backward(dout, x, w, conv_param, cached):
    """dx (None when the input gradient is not wanted), dw, db: per block of images, the columns gathered again,
    dw and db summed over blocks in order, and dx from that block's column gradient."""
    if isinstance(cached, winograd.WinogradTiles) and current().winograd:  # options(winograd=False) holds here too
        result = winograd.backward(dout, x, w, conv_param["pad"], cached)
        if result is not None:  # None: a gradient not finite, which im2col confines as the direct one does
            return result
    stride, pad, H_out, W_out = _geometry(x, w, conv_param)
    N, F = dout.shape[:2]
    P = H_out * W_out
    w2 = w.reshape(F, -1)
    dout3 = dout.reshape(N, F, P)
    wanted = input_gradient_wanted()
    dx = recycled(x.shape, x.dtype) if wanted else None
    dw = np.zeros(w2.shape, dtype=dout.dtype)
    db, db_block = np.zeros(F), np.empty(F)
    for start, stop in _blocks(x, w, P):
        if stop - start == 1:  # one image's dout (F, P) is the rows already
            rows = dout3[start]
            _k(K.row_sums)(rows, db_block)
        else:
            rows = scratch("rows", (F, (stop - start) * P), dout.dtype)
            _k(K.nchw_to_rows)(dout3[start:stop], rows, db_block)
        db += db_block
        cols = _block_columns(x[start:stop], w, stride, pad, H_out, W_out)
        dw += _weight_gradient(rows, cols, x.shape[1])
        if wanted:
            dcols = scratch("dcols", cols.shape, dout.dtype)
            np.dot(w2.T, rows, out=dcols)
            dx_block = dx[start:stop]
            _k(K.col2im)(dcols, w.shape[2], w.shape[3], stride, pad, H_out, W_out, _padded("dxpad", dx_block, pad),
                         dx_block)
    return dx, dw.reshape(w.shape), db.astype(dout.dtype)


def conv_forward_fast(x, w, b, conv_param):
    """See fastnn.reference.conv.conv_forward_fast. Returns out, cache (x, w, b, conv_param, x_cols), with
    ColumnsFromInput or WinogradTiles as x_cols."""
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
    """See fastnn.reference.conv.conv_backward_naive: rebuilds the columns the naive cache does not keep.
    Always computes dx, as the reference's naive backward does (input_gradient(False) is for the fast ones)."""
    x, w, b, conv_param = cache
    with input_gradient(True):
        if winograd.applies(w, conv_param):  # the tiles only: no product, no output transform
            return _backward(dout, x, w, conv_param, winograd.tiles(x, w, conv_param["pad"]))
        return _backward(dout, x, w, conv_param, ColumnsFromInput(x.dtype))


conv_forward_im2col = conv_forward_strides = conv_forward_fast
conv_backward_im2col = conv_backward_strides = conv_backward_fast
