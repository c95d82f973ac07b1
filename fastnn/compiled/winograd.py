"""3x3, stride-1 convolution by Winograd F(4x4, 3x3) on the compiled path: tile transforms in
fastnn.kernels.winograd, 36 GEMMs per direction in BLAS, the small filter transforms in NumPy.

Its cache keeps WinogradTiles (the transformed input and filters) where the reference keeps x_cols; a NumPy
reference backward given such a cache rebuilds the columns from x. Results equal the direct convolution up to
rounding: measured here, relative to the largest entry, 3e-6 to 1.2e-5 in float32 and 5e-15 to 3e-14 in float64
for outputs and gradients of 16-1024 channels. An output's rounding error scales with the largest entry of its 6x6
input tile, not of its own window; fastnn.options(winograd=False) runs im2col instead.

A NaN or Inf spreads over a whole tile here, where the direct convolution keeps it to the windows that hold it;
and the transforms' sums (100x an entry of x at most, 225x one of dout, 361x one of the products in the output
transform) can overflow where the direct sum does not. So forward and backward return None when a result is not
finite, and the caller runs the convolution by im2col instead.
"""

import numpy as np

from .._conv_cache import WinogradTiles
from .._options import current, input_gradient_wanted
from ..kernels import winograd as K
from ..kernels._jit import variant
from ._memory import recycled, scratch

# filter transform: U = G g G^T (interpolation points 0, +-1, +-2, inf)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


# Winograd's forward GEMMs have K = C input channels, im2col's one GEMM K = 9 C, and BLAS runs small K slowly; the
# transforms cost C + F passes to the GEMMs' C * F. Measured here, float32, forward + backward, x (64, C, 32 or 16,
# ...), Winograd / im2col time: 0.57-0.79 at F = C (C = 2-16), 0.62-0.82 at F = 2 C (C = 2-64), 0.91-0.95 at C = 1,
# 0.94-1.46 at F = 2.7-10 C for C = 3-16, but 0.72-0.94 at F = 4-6 C once C >= 24 (float64 0.51-0.99 where this rule
# picks Winograd).
MIN_CHANNELS = 2
ANY_FILTERS_CHANNELS = 24


def pays(channels, filters):
    """Whether Winograd beats im2col for a 3x3 stride-1 filter bank of this many input channels and filters."""
    return channels >= ANY_FILTERS_CHANNELS or (channels >= MIN_CHANNELS and filters <= 2 * channels)


def applies(w, conv_param):
    """Whether the compiled path runs this convolution as Winograd: a 3x3 stride-1 bank where it pays, unless
    options(winograd=False)."""
    return (w.shape[2] == 3 and w.shape[3] == 3 and conv_param["stride"] == 1 and pays(w.shape[1], w.shape[0])
            and current().winograd)


def _k(kernel_fn):
    return variant(kernel_fn, current().parallel)


def _transform_filters(w):
    g = G.astype(w.dtype)
    U = np.tensordot(np.tensordot(g, w, axes=([1], [2])), g, axes=([3], [1]))  # (6, F, C, 6)
    return np.ascontiguousarray(U.transpose(0, 3, 1, 2)).reshape(36, w.shape[0], w.shape[1])


def _g_transposed_times(M):
    """G^T @ M along M's first axis (6 -> 3), written out so that G's zeros multiply nothing: as a product, a NaN
    in one entry of a gradient tile spread (NaN * 0) to every tap of the filter gradient."""
    sum12, sum34 = M[1] + M[2], M[3] + M[4]
    return np.stack([M[0] / 4 - sum12 / 6 + sum34 / 24, (M[2] - M[1]) / 6 + (M[3] - M[4]) / 12,
                     (sum34 - sum12) / 6 + M[5]])


def _filter_gradient(dU, w_shape):
    """dw (F, C, 3, 3) = G^T dU G for each filter and channel, from dU (36, F, C)."""
    F, C = w_shape[:2]
    rows = _g_transposed_times(dU.reshape(6, 6, F, C))  # (3, 6, F, C)
    dw = _g_transposed_times(rows.transpose(1, 0, 2, 3))  # (3 columns, 3 rows, F, C)
    return np.ascontiguousarray(dw.transpose(2, 3, 1, 0))


def _geometry(x, pad):
    N, C, H, W = x.shape
    H_out, W_out = H + 2 * pad - 2, W + 2 * pad - 2
    return N, C, H_out, W_out, (H_out + 3) // 4, (W_out + 3) // 4


def tiles(x, w, pad):
    """The WinogradTiles of x and w: what forward multiplies and backward needs (the naive cache rebuilds them)."""
    N, C, _, _, tiles_h, tiles_w = _geometry(x, pad)
    V = recycled((36, C, N * tiles_h * tiles_w), x.dtype)
    _k(K.input_tiles)(x, pad, tiles_h, tiles_w, V)
    return WinogradTiles(V, _transform_filters(w), tiles_h, tiles_w)


def _finite(sums):
    """Whether the kernels' tile sums (or a small result) are all finite: else the result goes to im2col."""
    return bool(np.isfinite(sums).all())


@np.errstate(over="ignore", invalid="ignore")  # an overflow here is no result: im2col computes it again
def forward(x, w, b, pad):
    """out (N, F, H + 2*pad - 2, W + 2*pad - 2) and the WinogradTiles for the backward; None when out is not
    finite (see above)."""
    N, _, H_out, W_out, _, _ = _geometry(x, pad)
    t = tiles(x, w, pad)
    M = scratch("wg_m", (36, w.shape[0], t.V.shape[2]), x.dtype)
    np.matmul(t.U, t.V, out=M)
    out = recycled((N, w.shape[0], H_out, W_out), x.dtype)
    sums = np.empty(w.shape[0])
    _k(K.output_tiles)(M, b, t.tiles_h, t.tiles_w, out, sums)
    return (out, t) if _finite(sums) else None


@np.errstate(over="ignore", invalid="ignore")
def backward(dout, x, w, pad, cached):
    """dx (None when the input gradient is not wanted), dw, db from the forward's WinogradTiles; None when one of
    them is not finite (see above)."""
    V, U = cached.V, cached.U
    dM = scratch("wg_m", (36, w.shape[0], V.shape[2]), dout.dtype)
    db = np.empty(w.shape[0])
    _k(K.dout_tiles)(dout, cached.tiles_h, cached.tiles_w, dM, db)
    if not _finite(db):
        return None
    dw = _filter_gradient(np.matmul(dM, V.transpose(0, 2, 1)), w.shape)
    if not _finite(dw):
        return None
    if not input_gradient_wanted():
        return None, dw, db.astype(dout.dtype)
    dV = scratch("wg_dv", V.shape, dout.dtype)
    np.matmul(U.transpose(0, 2, 1), dM, out=dV)
    dx = recycled(x.shape, x.dtype)
    sums = np.empty(x.shape[1])
    _k(K.dinput_tiles)(dV, pad, cached.tiles_h, cached.tiles_w, dx, sums)
    return (dx, dw, db.astype(dout.dtype)) if _finite(sums) else None
