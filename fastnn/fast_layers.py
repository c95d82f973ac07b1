"""The cs231n.fast_layers API: `from fastnn.fast_layers import *` replaces `from cs231n.fast_layers import *`.

No Cython build: every name runs on fastnn's compiled kernels or its NumPy reference (fastnn.options()).
All fast convolutions share one implementation and cache (x, w, b, conv_param, x_cols); the compiled path keeps
no columns there (ColumnsFromInput: its backward gathers them again a block of images at a time), and runs a
3x3 stride-1 convolution as Winograd F(4x4, 3x3) where it pays, keeping WinogradTiles. The reference backward
rebuilds the columns from x in both cases. All fast max pools share one implementation and cache
('argmax', (x, pool_param, argmax)). Differences from the starter, on purpose:
- a geometry whose output size is not a whole number is a ValueError (conv_forward_strides floored it);
- max_pool_backward_reshape routes a tied window's gradient to its first maximum, like every other path
  (the starter's split it equally among the tied elements);
- max_pool_forward_im2col works for every geometry (the starter's raised on Python 3).
"""

import numpy as np

from . import _checks as _check
from ._conv_cache import ColumnsFromInput, WinogradTiles
from ._dispatch import run as _run
from .layers import *  # noqa: F401,F403
from .layers import _conv_dout, _conv_inputs, _pool_inputs


def _conv_forward(fn, x, w, b, conv_param):
    return _run("conv_forward_fast", *_conv_inputs(fn, x, w, b, conv_param))


def _conv_backward(fn, dout, cache):
    dout, cache = _conv_dout(fn, dout, cache, 5, "conv_forward_fast")
    if isinstance(cache[4], (ColumnsFromInput, WinogradTiles)):  # what the compiled path keeps
        x_cols = cache[4]
    else:
        x_cols = _check.array(fn, "cache x_cols", cache[4], ndim=2)
        (N, C), (HH, WW) = cache[0].shape[:2], cache[1].shape[2:]
        columns = (C * HH * WW, N * dout.shape[2] * dout.shape[3])
        if x_cols.shape != columns:  # the reference's GEMM would fail on it, and the compiled path not read it
            _check.fail(fn, f"cache x_cols has shape {x_cols.shape}; x {cache[0].shape}, w {cache[1].shape} and "
                            f"dout {dout.shape} make it (C*HH*WW, N*H'*W') = {columns}")
    if x_cols.dtype != dout.dtype:
        _check.fail(fn, f"cache x_cols has dtype {x_cols.dtype}, the layer ran in {dout.dtype}", TypeError)
    if isinstance(x_cols, np.ndarray):
        _check_column_order(fn, cache, x_cols, dout.shape[2:])
    return _run("conv_backward_fast", dout, cache[:4] + (x_cols,))


def _check_column_order(fn, cache, x_cols, out_size):
    """Refuse columns of x in another order than the forward's (N, H', W'): the starter's im2col_cython orders
    them (H', W', N), same shape, and the reference's dw from such a hand-built cache was silently wrong. Three
    columns, which the two orders put in different places, are compared with x's receptive fields."""
    x, w, _, conv_param = cache[:4]
    (N, C, H, W), (HH, WW), (H_out, W_out) = x.shape, w.shape[2:], out_size
    stride, pad = conv_param["stride"], conv_param["pad"]
    for column in dict.fromkeys(c for c in (1, W_out, H_out * W_out) if c < N * H_out * W_out):
        n, i, j = np.unravel_index(column, (N, H_out, W_out))
        top, left = i * stride - pad, j * stride - pad  # the field's corner in x; the padding around x is 0
        field = np.zeros((C, HH, WW), x.dtype)
        r0, r1, c0, c1 = max(top, 0), min(top + HH, H), max(left, 0), min(left + WW, W)
        if r0 < r1 and c0 < c1:
            field[:, r0 - top:r1 - top, c0 - left:c1 - left] = x[n, :, r0:r1, c0:c1]
        if not np.array_equal(x_cols[:, column], field.ravel(), equal_nan=True):
            _check.fail(fn, f"cache x_cols column {column} is not x's receptive field (n, i, j) = "
                            f"{(int(n), int(i), int(j))}: the columns must be conv_forward_fast's of this x, ordered "
                            "(N, H', W') (im2col_cython orders them (H', W', N); or was x changed after the forward?)")


def conv_forward_fast(x, w, b, conv_param):
    """Convolution forward via im2col and one GEMM.

    Inputs: x (N, C, H, W), w (F, C, HH, WW), b (F,), conv_param {'stride', 'pad'} (whole output size required).
    Returns a tuple of: out (N, F, H', W'), cache (x, w, b, conv_param, x_cols) with x_cols (C*HH*WW, N*H'*W')
    on the reference path (the compiled path keeps ColumnsFromInput or WinogradTiles there).
    """
    return _conv_forward("conv_forward_fast", x, w, b, conv_param)


def conv_backward_fast(dout, cache):
    """Convolution backward. Inputs: dout (N, F, H', W'), cache from conv_forward_fast. Returns dx, dw, db."""
    return _conv_backward("conv_backward_fast", dout, cache)


def conv_forward_im2col(x, w, b, conv_param):
    """Same as conv_forward_fast (the starter's im2col variant)."""
    return _conv_forward("conv_forward_im2col", x, w, b, conv_param)


def conv_backward_im2col(dout, cache):
    """Same as conv_backward_fast."""
    return _conv_backward("conv_backward_im2col", dout, cache)


def conv_forward_strides(x, w, b, conv_param):
    """Same as conv_forward_fast (the starter's stride-tricks variant, without its silent floor)."""
    return _conv_forward("conv_forward_strides", x, w, b, conv_param)


def conv_backward_strides(dout, cache):
    """Same as conv_backward_fast."""
    return _conv_backward("conv_backward_strides", dout, cache)


def max_pool_forward_fast(x, pool_param):
    """Max pooling forward for every geometry, with a compact argmax cache.

    Inputs: x (N, C, H, W); pool_param {'pool_height', 'pool_width', 'stride'}.
    Returns a tuple of: out (N, C, H', W'), cache ('argmax', (x, pool_param, argmax)).
    """
    fn = "max_pool_forward_fast"
    return _run(fn, *_pool_inputs(fn, x, pool_param))


def max_pool_backward_fast(dout, cache):
    """Max pooling backward: each window's gradient goes to its first maximum; overlapping windows accumulate."""
    return _pool_backward("max_pool_backward_fast", dout, cache)


def _pool_backward(fn, dout, cache):
    return _run("max_pool_backward_fast", *_pool_backward_args(fn, dout, cache))


def _pool_backward_args(fn, dout, cache):
    """(dout, cache) checked against each other, the cache's argmax made contiguous and native-endian."""
    if not isinstance(cache, tuple) or len(cache) != 2 or not isinstance(cache[0], str):
        _check.fail(fn, "cache must be the ('argmax', ...) tuple returned by max_pool_forward_fast (a naive pool's "
                    "(x, pool_param) goes to max_pool_backward_naive)", TypeError)
    if cache[0] != "argmax":
        _check.fail(fn, f"Unrecognized method {cache[0]!r} in the cache (expected 'argmax')")
    x, pool_param, argmax = _check.cache_tuple(fn, cache[1], 3, "max_pool_forward_fast")
    x, pool_param = _pool_inputs(fn, x, pool_param)
    ph, pw, _, H_out, W_out = _check.pool_param(fn, pool_param, x.shape)
    expected = x.shape[:2] + (H_out, W_out)
    if not isinstance(argmax, np.ndarray) or argmax.shape != expected or argmax.dtype.kind != "u":
        _check.fail(fn, f"cache argmax must be an unsigned integer array of shape {expected}", TypeError)
    argmax = np.asarray(argmax)  # a masked array's max skips masked entries, which the kernels would store at
    if argmax.size and int(argmax.max()) >= ph * pw:  # the kernels store at the address it gives, unchecked
        _check.fail(fn, f"cache argmax holds {int(argmax.max())}: a {ph}x{pw} window has positions 0..{ph * pw - 1}")
    dout = _check.dout_like(fn, dout, expected, x.dtype)
    native = argmax.dtype.newbyteorder("=")  # numba compiles native byte order only
    return dout, ("argmax", (x, pool_param, np.ascontiguousarray(argmax, dtype=native)))


def max_pool_forward_reshape(x, pool_param):
    """Max pooling for square, non-overlapping windows that tile the input (pool_height == pool_width == stride)."""
    fn = "max_pool_forward_reshape"
    x, pool_param = _pool_inputs(fn, x, pool_param)
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    if not (ph == pw == stride and x.shape[2] % ph == 0 and x.shape[3] % pw == 0):
        _check.fail(fn, f"needs pool_height == pool_width == stride tiling x {x.shape}, got {ph}x{pw} stride {stride}")
    return _run("max_pool_forward_fast", x, pool_param)


def max_pool_backward_reshape(dout, cache):
    """Backward of max_pool_forward_reshape (first maximum of each window gets the gradient)."""
    return _pool_backward("max_pool_backward_reshape", dout, cache)


def max_pool_forward_im2col(x, pool_param):
    """Max pooling forward for every geometry (same implementation as max_pool_forward_fast)."""
    fn = "max_pool_forward_im2col"
    return _run("max_pool_forward_fast", *_pool_inputs(fn, x, pool_param))


def max_pool_backward_im2col(dout, cache):
    """Backward of max_pool_forward_im2col."""
    return _pool_backward("max_pool_backward_im2col", dout, cache)


# ------------------------------------------------------------------ the starter's im2col helpers (cs231n.im2col)


def _field(fn, x_shape, field_height, field_width, padding, stride, dims=None):
    """The checked geometry of the im2col helpers: (N, C, H, W, fh, fw, padding, stride, H_out, W_out).
    dims: the names of x_shape's entries where the caller took them as four arguments."""
    if isinstance(x_shape, (str, bytes)) or not hasattr(x_shape, "__len__") or len(x_shape) != 4:
        _check.fail(fn, f"x_shape must be (N, C, H, W), got {x_shape!r}", TypeError)
    dims = dims or [f"x_shape[{k}]" for k in range(4)]
    N, C, H, W = (_check.integer(fn, name, v, 0) for name, v in zip(dims, x_shape))
    fh = _check.integer(fn, "field_height", field_height, 1)
    fw = _check.integer(fn, "field_width", field_width, 1)
    padding = _check.geometry(fn, "padding", padding, 0)
    stride = _check.geometry(fn, "stride", stride, 1)
    H_out = _check.output_size(fn, "height", H, fh, stride, padding, True)
    W_out = _check.output_size(fn, "width", W, fw, stride, padding, True)
    _check.addressable(fn, f"padding {padding} and stride {stride} with x_shape {tuple(x_shape)}", {
        "a padded input": (N, C, H + 2 * padding, W + 2 * padding),
        "columns": (C * fh * fw, N * H_out * W_out),
    })
    return N, C, H, W, fh, fw, padding, stride, H_out, W_out


def _indices(C, fh, fw, stride, H_out, W_out):
    i0 = np.tile(np.repeat(np.arange(fh), fw), C)
    i1 = stride * np.repeat(np.arange(H_out), W_out)
    j0 = np.tile(np.arange(fw), fh * C)
    j1 = stride * np.tile(np.arange(W_out), H_out)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), fh * fw).reshape(-1, 1)
    return k, i, j


def get_im2col_indices(x_shape, field_height, field_width, padding=1, stride=1):
    """Index arrays (k, i, j) such that x_padded[:, k, i, j] gathers every receptive field (cs231n.im2col)."""
    _, C, _, _, fh, fw, _, stride, H_out, W_out = _field(
        "get_im2col_indices", x_shape, field_height, field_width, padding, stride)
    return _indices(C, fh, fw, stride, H_out, W_out)


def im2col_indices(x, field_height, field_width, padding=1, stride=1):
    """Columns (C*fh*fw, H'*W'*N) of x's receptive fields, in cs231n.im2col's layout."""
    return _im2col("im2col_indices", x, field_height, field_width, padding, stride)


def _im2col(fn, x, field_height, field_width, padding, stride):
    if not isinstance(x, np.ndarray) or x.dtype == object:
        _check.fail(fn, f"x must be a numeric numpy.ndarray, got {type(x).__name__}", TypeError)
    if x.ndim != 4:
        _check.fail(fn, f"x must be 4-D (N, C, H, W), got shape {x.shape}")
    _, C, _, _, fh, fw, p, stride, H_out, W_out = _field(fn, x.shape, field_height, field_width, padding, stride)
    x_padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="constant")
    k, i, j = _indices(C, fh, fw, stride, H_out, W_out)
    cols = x_padded[:, k, i, j]
    return cols.transpose(1, 2, 0).reshape(fh * fw * C, H_out * W_out * x.shape[0])


def col2im_indices(cols, x_shape, field_height=3, field_width=3, padding=1, stride=1):
    """Adjoint of im2col_indices: sums columns back into an array of x_shape (cs231n.im2col)."""
    return _col2im("col2im_indices", cols, x_shape, field_height, field_width, padding, stride)


def _col2im(fn, cols, x_shape, field_height, field_width, padding, stride, dims=None):
    N, C, H, W, fh, fw, p, stride, H_out, W_out = _field(fn, x_shape, field_height, field_width, padding, stride,
                                                         dims)
    if not isinstance(cols, np.ndarray) or cols.dtype == object:
        _check.fail(fn, f"cols must be a numeric numpy.ndarray, got {type(cols).__name__}", TypeError)
    _check.shape(fn, "cols", cols, (C * fh * fw, H_out * W_out * N))
    x_padded = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=cols.dtype)
    k, i, j = _indices(C, fh, fw, stride, H_out, W_out)
    cols_reshaped = cols.reshape(C * fh * fw, H_out * W_out, N).transpose(2, 0, 1)  # (no -1: N or C may be 0)
    np.add.at(x_padded, (slice(None), k, i, j), cols_reshaped)
    if p == 0:
        return x_padded
    return x_padded[:, :, p:-p, p:-p]


def im2col_cython(x, field_height, field_width, padding, stride):
    """Stand-in for the starter's compiled im2col_cython (same layout as im2col_indices)."""
    return _im2col("im2col_cython", x, field_height, field_width, padding, stride)


def col2im_cython(cols, N, C, H, W, field_height, field_width, padding, stride):
    """Stand-in for the starter's compiled col2im_cython."""
    return _col2im("col2im_cython", cols, (N, C, H, W), field_height, field_width, padding, stride,
                   dims=("N", "C", "H", "W"))


def col2im_6d_cython(cols, N, C, H, W, HH, WW, pad, stride):
    """Stand-in for the starter's compiled col2im_6d_cython: sums cols (C, HH, WW, N, H', W') (conv_backward_strides'
    dx columns) back into x (N, C, H, W), dropping the padding. A geometry whose output size is not a whole number
    is a ValueError, as in every fastnn convolution (the starter's floored it)."""
    fn = "col2im_6d_cython"
    N, C, H, W, fh, fw, p, stride, H_out, W_out = _field(fn, (N, C, H, W), HH, WW, pad, stride,
                                                         dims=("N", "C", "H", "W"))
    if not isinstance(cols, np.ndarray) or cols.dtype == object:
        _check.fail(fn, f"cols must be a numeric numpy.ndarray, got {type(cols).__name__}", TypeError)
    _check.shape(fn, "cols", cols, (C, fh, fw, N, H_out, W_out))
    x_padded = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=cols.dtype)
    for a in range(fh):  # one (a, b) offset's windows never overlap each other
        for b in range(fw):
            window = x_padded[:, :, a:a + stride * H_out:stride, b:b + stride * W_out:stride]
            window += cols[:, a, b].transpose(1, 0, 2, 3)
    return x_padded[:, :, p:H + p, p:W + p]
