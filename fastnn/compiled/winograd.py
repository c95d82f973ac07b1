"""3x3, stride-1 convolution by Winograd F(2x2, 3x3) on the compiled path: tile transforms in
fastnn.kernels.winograd, 16 GEMMs per direction in BLAS, the small filter transforms in NumPy.

Its cache keeps WinogradTiles (the transformed input and filters) where the reference keeps x_cols; a NumPy
reference backward given such a cache rebuilds the columns from x. Results equal the direct convolution up to
rounding (the transforms add and halve; measured relative error ~1e-7 in float32, ~1e-16 in float64).
"""

import numpy as np

from .._conv_cache import WinogradTiles
from .._options import current, input_gradient_wanted
from ..kernels import winograd as K
from ..kernels._jit import variant
from ._memory import recycled, scratch

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])  # filter transform: U = G g G^T


MIN_CHANNELS = 8  # below this many input channels im2col's one GEMM (K = 9 C) beats 16 GEMMs with K = C:
# measured here, float32, x (64, C, 32, 32), F = C: Winograd 0.70x im2col's time at C = 8, 2.5x at C = 3


def applies(w, conv_param):
    return w.shape[2] == 3 and w.shape[3] == 3 and conv_param["stride"] == 1 and w.shape[1] >= MIN_CHANNELS


def _k(kernel_fn):
    return variant(kernel_fn, current().parallel)


def _transform_filters(w):
    g = G.astype(w.dtype)
    U = np.tensordot(np.tensordot(g, w, axes=([1], [2])), g, axes=([3], [1]))  # (4, F, C, 4)
    return np.ascontiguousarray(U.transpose(0, 3, 1, 2)).reshape(16, w.shape[0], w.shape[1])


def _g_transposed_times(M):
    """G^T @ M along M's first axis (4 -> 3), written out so that G's zeros multiply nothing: as a product, a NaN
    in one entry of a gradient tile spread (NaN * 0) to every tap of the filter gradient."""
    return np.stack([M[0] + 0.5 * (M[1] + M[2]), 0.5 * (M[1] - M[2]), 0.5 * (M[1] + M[2]) + M[3]])


def _filter_gradient(dU, w_shape):
    """dw (F, C, 3, 3) = G^T dU G for each filter and channel, from dU (16, F, C)."""
    F, C = w_shape[:2]
    rows = _g_transposed_times(dU.reshape(4, 4, F, C))  # (3, 4, F, C)
    dw = _g_transposed_times(rows.transpose(1, 0, 2, 3))  # (3 columns, 3 rows, F, C)
    return np.ascontiguousarray(dw.transpose(2, 3, 1, 0))


def _geometry(x, pad):
    N, C, H, W = x.shape
    H_out, W_out = H + 2 * pad - 2, W + 2 * pad - 2
    return N, C, H_out, W_out, (H_out + 1) // 2, (W_out + 1) // 2


def tiles(x, w, pad):
    """The WinogradTiles of x and w: what forward multiplies and backward needs (the naive cache rebuilds them)."""
    N, C, _, _, tiles_h, tiles_w = _geometry(x, pad)
    V = recycled((16, C, N * tiles_h * tiles_w), x.dtype)
    _k(K.input_tiles)(x, pad, tiles_h, tiles_w, V)
    return WinogradTiles(V, _transform_filters(w), tiles_h, tiles_w)


def forward(x, w, b, pad):
    """out (N, F, H + 2*pad - 2, W + 2*pad - 2) and the WinogradTiles for the backward."""
    N, _, H_out, W_out, _, _ = _geometry(x, pad)
    t = tiles(x, w, pad)
    M = scratch("wg_m", (16, w.shape[0], t.V.shape[2]), x.dtype)
    np.matmul(t.U, t.V, out=M)
    out = np.empty((N, w.shape[0], H_out, W_out), dtype=x.dtype)
    _k(K.output_tiles)(M, b, t.tiles_h, t.tiles_w, out)
    return out, t


def backward(dout, x, w, pad, tiles):
    """dx (None when the input gradient is not wanted), dw, db."""
    V, U = tiles.V, tiles.U
    dM = scratch("wg_m", (16, w.shape[0], V.shape[2]), dout.dtype)
    db = np.empty(w.shape[0])
    _k(K.dout_tiles)(dout, tiles.tiles_h, tiles.tiles_w, dM, db)
    dw = _filter_gradient(np.matmul(dM, V.transpose(0, 2, 1)), w.shape)
    if not input_gradient_wanted():
        return None, dw, db.astype(dout.dtype)
    dV = scratch("wg_dv", V.shape, dout.dtype)
    np.matmul(U.transpose(0, 2, 1), dM, out=dV)
    dx = np.empty(x.shape, dtype=x.dtype)
    _k(K.dinput_tiles)(dV, pad, tiles.tiles_h, tiles.tiles_w, dx)
    return dx, dw, db.astype(dout.dtype)
