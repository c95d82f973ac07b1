"""Convolution on the compiled path: im2col/col2im kernels around BLAS GEMMs, a block of images at a time.

Same names, signatures and caches as fastnn.reference.conv, except that the cache keeps ColumnsFromInput (or
WinogradTiles, for a 3x3 stride-1 filter bank that runs as Winograd: see compiled/winograd.py, which hands a result
that is not finite back to im2col) where the reference keeps x_cols. The columns of all N images (38 MB for
the CS231n first layer) would go to memory and back three times per step; a block of images' columns (about
BLOCK_BYTES) stays in cache from im2col to GEMM, and the backward gathers them again from x, which costs less
than reading them back (0.73-0.76x the forward+backward time of whole-batch columns for conv (a), measured here).
Where the blocks hold several images (few output pixels each), a block's forward GEMM is w (F, CKK) @ cols
(CKK, n*P), one GEMM for the block rather than one skinny GEMM per image, and a kernel moves its result to NCHW
with the bias; where every block is one image (see _blocks), each GEMM writes its image's output in place and
the backward reads its dout in place. Scratch buffers are reused per thread, and out and dx come from recycled
memory when large (see _memory).
"""

import math

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


def _block_ranges(x, w, P):
    """(start, stop) image ranges whose columns take about BLOCK_BYTES (at least one image each), or one image
    each from ONE_IMAGE_PIXELS output pixels, where one image's GEMMs are wide enough (see _forward for what
    one-image blocks save). The ranges depend on the shapes alone, so dw and db sum in the same order at any
    thread count."""
    N = x.shape[0]
    if P >= ONE_IMAGE_PIXELS:
        return [(start, start + 1) for start in range(N)]
    per_image = w[0].size * P * x.itemsize
    n = max(1, min(N, BLOCK_BYTES // per_image))
    return [(start, min(N, start + n)) for start in range(0, N, n)]


def _front(flat, shape):
    """The front of a flat scratch as an array of `shape` (a block's view of a buffer sized for the largest)."""
    return flat[:math.prod(shape)].reshape(shape)


class _Blocks:
    """The image blocks of one call (_block_ranges) with their im2col and col2im, the kernels and the per-thread
    scratch looked up once per call, not once per block (that took 8-9 us a block: 0.6-1 ms of a 64-image conv (a)
    forward, measured here). Each scratch is sized for the largest block."""

    def __init__(self, x, w, stride, pad, H_out, W_out, with_input_gradient=False):
        self.x, self.stride, self.pad, self.H_out, self.W_out = x, stride, pad, H_out, W_out
        self.HH, self.WW = w.shape[2:]
        self.P = H_out * W_out
        self.patch = w[0].size  # C*HH*WW, the columns' height
        self.padded_image = (x.shape[1], x.shape[2] + 2 * pad, x.shape[3] + 2 * pad)
        self.ranges = _block_ranges(x, w, self.P)
        self.largest = max(stop - start for start, stop in self.ranges)
        self._cols = scratch("cols", (self.patch * self.largest * self.P,), x.dtype)
        self._xpad = self._padded_scratch("xpad")
        self._pad_planes, self._im2col = _k(K.pad_planes), _k(K.im2col)
        if with_input_gradient:
            self._dcols = scratch("dcols", self._cols.shape, x.dtype)
            self._dxpad = self._padded_scratch("dxpad")
            self._col2im = _k(K.col2im)

    def _padded_scratch(self, name):
        return scratch(name, (self.largest * math.prod(self.padded_image),), self.x.dtype) if self.pad else None

    def columns(self, start, stop):
        """The columns (C*HH*WW, n*P) of images start..stop-1."""
        images = self.x[start:stop]
        if self.pad:
            padded = _front(self._xpad, (stop - start,) + self.padded_image)
            self._pad_planes(images, self.pad, padded)
            images = padded
        cols = _front(self._cols, (self.patch, (stop - start) * self.P))
        self._im2col(images, self.HH, self.WW, self.stride, self.H_out, self.W_out, cols)
        return cols

    def column_gradient(self, start, stop):
        """A scratch for the column gradient of images start..stop-1, in the columns' shape."""
        return _front(self._dcols, (self.patch, (stop - start) * self.P))

    def col2im_into(self, dcols, dx_block):
        """dx_block = col2im of dcols (from column_gradient): overwritten, summed through the padded scratch."""
        padded = _front(self._dxpad, dx_block.shape[:1] + self.padded_image) if self.pad else dx_block
        self._col2im(dcols, self.HH, self.WW, self.stride, self.pad, self.H_out, self.W_out, padded, dx_block)


def _forward(x, w, b, conv_param):
    """out and what the backward needs: WinogradTiles where Winograd applies and its output is finite, else
    ColumnsFromInput. Where every block is one image, its GEMM writes the image's (F, P) output in place and the
    bias is added while it is in cache; the backward reads its dout in place too. No regrouping pass: forward +
    backward 0.76-0.90x the time of multi-image blocks at P = 784-1024, measured here (0.92-1.015x at P = 256,
    1.15-1.2x at P = 64: hence ONE_IMAGE_PIXELS)."""
    if winograd.applies(w, conv_param):
        result = winograd.forward(x, w, b, conv_param["pad"])
        if result is not None:  # None: an output not finite, which im2col confines to the windows that hold it
            return result
    stride, pad, H_out, W_out = _geometry(x, w, conv_param)
    blocks = _Blocks(x, w, stride, pad, H_out, W_out)
    N, F, P = x.shape[0], w.shape[0], blocks.P
    w2 = w.reshape(F, -1)
    out = recycled((N, F, P), x.dtype)
    if blocks.largest == 1:
        add_filter_bias = _k(K.add_filter_bias)
        for start, _ in blocks.ranges:
            np.dot(w2, blocks.columns(start, start + 1), out=out[start])
            add_filter_bias(out[start], b)
    else:
        bias_to_nchw, res = _k(K.bias_to_nchw), scratch("res", (F * blocks.largest * P,), x.dtype)
        for start, stop in blocks.ranges:
            block_res = _front(res, (F, (stop - start) * P))
            np.dot(w2, blocks.columns(start, stop), out=block_res)
            bias_to_nchw(block_res, b, stop - start, out[start:stop])
    return out.reshape(N, F, H_out, W_out), ColumnsFromInput(x.dtype)


def _weight_gradient(rows, cols, channels):
    """rows (F, M) @ cols.T (M, K). OpenBLAS (SkylakeX kernels, measured here) runs the float32 product faster
    as (cols @ rows.T).T for the CS231n conv shapes, 0.67-0.87x the time from K = 147 (though 1.10-1.15x slower
    at K = 27-64 with thousands of columns); the float64 one too for an input of 1 or 3 channels (a first layer
    on images: whole step 0.70-0.95x), but not for 32-128 channels (1.01-1.04x slower); between those it was not
    measured, and the rule takes the transposed product up to 4 channels."""
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
    wanted = input_gradient_wanted()
    blocks = _Blocks(x, w, stride, pad, H_out, W_out, with_input_gradient=wanted)
    N, F, P = x.shape[0], dout.shape[1], blocks.P
    w2 = w.reshape(F, -1)
    dout3 = dout.reshape(N, F, P)
    dx = recycled(x.shape, x.dtype) if wanted else None
    dw = np.zeros(w2.shape, dtype=dout.dtype)
    db, db_block = np.zeros(F), np.empty(F)
    if blocks.largest == 1:  # one image's dout (F, P) is its rows already
        row_sums, regroup, rows_scratch = _k(K.row_sums), None, None
    else:
        row_sums, regroup = None, _k(K.nchw_to_rows)
        rows_scratch = scratch("rows", (F * blocks.largest * P,), dout.dtype)
    for start, stop in blocks.ranges:
        if regroup is None:
            rows = dout3[start]
            row_sums(rows, db_block)
        else:
            rows = _front(rows_scratch, (F, (stop - start) * P))
            regroup(dout3[start:stop], rows, db_block)
        db += db_block
        cols = blocks.columns(start, stop)
        dw += _weight_gradient(rows, cols, x.shape[1])
        if wanted:
            dcols = blocks.column_gradient(start, stop)
            np.dot(w2.T, rows, out=dcols)
            blocks.col2im_into(dcols, dx[start:stop])
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
