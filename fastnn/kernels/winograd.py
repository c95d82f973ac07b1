"""Winograd F(2x2, 3x3) kernels for 3x3, stride-1 convolution (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016): each 2x2 output tile is A^T [(G g G^T) * (B^T d B)] A for its 4x4 input tile d, so the
convolution becomes 16 GEMMs of (F, C) @ (C, tiles), 2.25x fewer multiplications than im2col's one GEMM.

The tile transforms live here; the GEMMs stay in BLAS and the small filter transforms in NumPy
(fastnn.compiled.winograd). Layouts: transformed tiles V (16, C, T) and products M (16, F, T), k = 4*row + column
of the 4x4 transform, tile t = (i * tiles_w + j) * N + n. Images are the innermost index, and images are held
channel-major as (C, H, W*N) rows, so every transform step is a loop over contiguous values with one store and
at most three loads: numba vectorises it (a loop touching 16 arrays at once it would not, measured 5-10x slower).
The backward kernels are the exact adjoints: dM = A dY A^T, dx += B dV B^T (overlapping tiles add up).
"""

import numpy as np
from numba import prange

from ._jit import i64, kernel


@kernel
def _sub(a, b, out):
    for k in range(out.shape[0]):
        out[k] = a[k] - b[k]


@kernel
def _add(a, b, out):
    for k in range(out.shape[0]):
        out[k] = a[k] + b[k]


@kernel
def _neg(a, out):
    for k in range(out.shape[0]):
        out[k] = -a[k]


@kernel
def _copy(a, out):
    for k in range(out.shape[0]):
        out[k] = a[k]


@kernel
def _add3(a, b, c, out):
    for k in range(out.shape[0]):
        out[k] = a[k] + b[k] + c[k]


@kernel
def _sub3(a, b, c, out):
    """a - b - c"""
    for k in range(out.shape[0]):
        out[k] = a[k] - b[k] - c[k]


@kernel
def _sub_add(a, b, c, out):
    """a - b + c"""
    for k in range(out.shape[0]):
        out[k] = a[k] - b[k] + c[k]


@kernel
def _bt(d0, d1, d2, d3, o0, o1, o2, o3):
    """(o0, o1, o2, o3) = B^T (d0, d1, d2, d3) elementwise over vectors: the input transform along one axis."""
    _sub(d0, d2, o0)
    _add(d1, d2, o1)
    _sub(d2, d1, o2)
    _sub(d1, d3, o3)


@kernel
def _b(v0, v1, v2, v3, o0, o1, o2, o3):
    """(o0, o1, o2, o3) = B (v0, v1, v2, v3): the adjoint of _bt."""
    _copy(v0, o0)
    _sub_add(v1, v2, v3, o1)
    _sub_add(v1, v0, v2, o2)
    _neg(v3, o3)


@kernel
def _at(m0, m1, m2, m3, o0, o1):
    """(o0, o1) = A^T (m0, m1, m2, m3): the output transform along one axis."""
    _add3(m0, m1, m2, o0)
    _sub3(m1, m2, m3, o1)


@kernel
def _a(y0, y1, o0, o1, o2, o3):
    """(o0, o1, o2, o3) = A (y0, y1): the adjoint of _at."""
    _copy(y0, o0)
    _add(y0, y1, o1)
    _sub(y0, y1, o2)
    _neg(y1, o3)


# ------------------------------------------------------------------------------------------------ layouts


@kernel
def _to_rows_channel(x, c, pad, xt_c):
    """xt_c (Hp, Wp * N) = channel c of x (N, C, H, W) at offset pad, images innermost, zero elsewhere."""
    N, _, H, W = x.shape
    for h in range(xt_c.shape[0]):
        line = xt_c[h]
        for k in range(line.shape[0]):
            line[k] = 0
    for n in range(N):
        plane = x[n, c]
        for h in range(H):
            line = xt_c[h + pad]
            src = plane[h]
            for w in range(W):
                line[(w + pad) * N + n] = src[w]


@kernel
def _from_rows_channel(xt_c, c, pad, bias, out):
    """Channel c of out (N, C, H, W) = xt_c (Hp, Wp * N) cropped at offset pad, plus bias."""
    N, _, H, W = out.shape
    for n in range(N):
        for h in range(H):
            line = xt_c[h + pad]
            dst = out[n, c, h]
            for w in range(W):
                dst[w] = line[(w + pad) * N + n] + bias


@kernel(fast_sums=True)
def _plane_sum(a):
    total = 0.0
    for h in range(a.shape[0]):
        line = a[h]
        for k in range(line.shape[0]):
            total += line[k]
    return total


# ------------------------------------------------------------------------------------------------ transforms


@kernel
def _pairs(X, tiles_w, N, first, second, sign, out):
    """out[j*N + n] = X[(2j + first)*N + n] + sign * X[(2j + second)*N + n] for every tile j: one step of a
    transform along a row, for all tiles and images in one vectorising loop (sign is +1 or -1)."""
    for j in range(tiles_w):
        a = X[(2 * j + first) * N:(2 * j + first + 1) * N]
        b = X[(2 * j + second) * N:(2 * j + second + 1) * N]
        o = out[j * N:(j + 1) * N]
        if sign > 0:
            for n in range(N):
                o[n] = a[n] + b[n]
        else:
            for n in range(N):
                o[n] = a[n] - b[n]


@kernel
def _spread(src, tiles_w, N, column, add, line):
    """line[(2j + column)*N + n] (+)= src[j*N + n] for every tile j: a transformed column back in place."""
    for j in range(tiles_w):
        a = src[j * N:(j + 1) * N]
        o = line[(2 * j + column) * N:(2 * j + column + 1) * N]
        if add:
            for n in range(N):
                o[n] += a[n]
        else:
            for n in range(N):
                o[n] = a[n]


@kernel
def _input_tile_row(xt_c, i, tiles_w, c, N, rows, V):
    """V[:, c, tiles of row i] from the padded rows 2i..2i+3 of one channel; rows: (4, Wp * N) scratch."""
    _bt(xt_c[2 * i], xt_c[2 * i + 1], xt_c[2 * i + 2], xt_c[2 * i + 3], rows[0], rows[1], rows[2], rows[3])
    t0, span = i * tiles_w * N, tiles_w * N
    for r in range(4):  # then d B along each row: columns 0 - 2, 1 + 2, 2 - 1, 1 - 3 of every tile
        X = rows[r]
        _pairs(X, tiles_w, N, i64(0), i64(2), i64(-1), V[4 * r, c, t0:t0 + span])
        _pairs(X, tiles_w, N, i64(1), i64(2), i64(1), V[4 * r + 1, c, t0:t0 + span])
        _pairs(X, tiles_w, N, i64(2), i64(1), i64(-1), V[4 * r + 2, c, t0:t0 + span])
        _pairs(X, tiles_w, N, i64(1), i64(3), i64(-1), V[4 * r + 3, c, t0:t0 + span])


@kernel
def _input_channel(x, c, pad, tiles_h, tiles_w, V):
    N = x.shape[0]
    xt_c = np.empty((2 * tiles_h + 2, (2 * tiles_w + 2) * N), dtype=V.dtype)
    _to_rows_channel(x, c, pad, xt_c)
    rows = np.empty((4, xt_c.shape[1]), dtype=V.dtype)
    for i in range(tiles_h):
        _input_tile_row(xt_c, i, tiles_w, c, N, rows, V)


@kernel(parallel=True)
def input_tiles(x, pad, tiles_h, tiles_w, V):
    """V (16, C, T) = B^T d B for every 4x4 tile d of x (N, C, H, W) zero-padded by pad (and beyond, to whole
    tiles). One channel per task, laid out images-innermost in an L2-sized scratch first."""
    for c in prange(x.shape[1]):
        _input_channel(x, i64(c), pad, tiles_h, tiles_w, V)


@kernel
def _output_tile_row(M, f, i, tiles_w, N, cols, rows, yt_f):
    """Rows 2i, 2i+1 of yt_f (2*tiles_h, 2*tiles_w * N) = A^T m A of the tiles of row i of filter f.
    cols (8, tiles_w * N), rows (2, tiles_w * N): scratch."""
    span = tiles_w * N
    t0 = i * span
    for b in range(4):  # A^T m down each column b of the 4x4 tiles
        _at(M[b, f, t0:t0 + span], M[4 + b, f, t0:t0 + span], M[8 + b, f, t0:t0 + span],
            M[12 + b, f, t0:t0 + span], cols[b], cols[4 + b])
    for a in range(2):  # then (A^T m) A along each of its two rows
        _at(cols[4 * a], cols[4 * a + 1], cols[4 * a + 2], cols[4 * a + 3], rows[0], rows[1])
        _spread(rows[0], tiles_w, N, i64(0), False, yt_f[2 * i + a])
        _spread(rows[1], tiles_w, N, i64(1), False, yt_f[2 * i + a])


@kernel
def _output_filter(M, f, bias, tiles_h, tiles_w, out):
    N = out.shape[0]
    yt_f = np.empty((2 * tiles_h, 2 * tiles_w * N), dtype=out.dtype)
    cols = np.empty((8, tiles_w * N), dtype=out.dtype)
    rows = np.empty((2, tiles_w * N), dtype=out.dtype)
    for i in range(tiles_h):
        _output_tile_row(M, f, i, tiles_w, N, cols, rows, yt_f)
    _from_rows_channel(yt_f, f, i64(0), bias, out)


@kernel(parallel=True)
def output_tiles(M, b, tiles_h, tiles_w, out):
    """out (N, F, H_out, W_out) = A^T m A + b[f] for every tile of M (16, F, T); odd edges are cropped.
    One filter per task, assembled images-innermost in an L2-sized scratch, then written out."""
    for f in prange(out.shape[1]):
        _output_filter(M, i64(f), b[f], tiles_h, tiles_w, out)


@kernel
def _dout_tile_row(dyt_f, f, i, tiles_w, N, rows, dM):
    """dM[:, f, tiles of row i] = A dY A^T from rows 2i, 2i+1 of dyt_f; rows: (4, 2*tiles_w * N) scratch."""
    _a(dyt_f[2 * i], dyt_f[2 * i + 1], rows[0], rows[1], rows[2], rows[3])
    t0, span = i * tiles_w * N, tiles_w * N
    for r in range(4):  # then (A dY) A^T along each row: p, p + q, p - q, -q of every tile's (p, q)
        X = rows[r]
        o0, o1, o2, o3 = (dM[4 * r, f, t0:t0 + span], dM[4 * r + 1, f, t0:t0 + span],
                          dM[4 * r + 2, f, t0:t0 + span], dM[4 * r + 3, f, t0:t0 + span])
        _pairs(X, tiles_w, N, i64(0), i64(1), i64(1), o1)
        _pairs(X, tiles_w, N, i64(0), i64(1), i64(-1), o2)
        for j in range(tiles_w):
            p = X[2 * j * N:(2 * j + 1) * N]
            q = X[(2 * j + 1) * N:(2 * j + 2) * N]
            a, d = o0[j * N:(j + 1) * N], o3[j * N:(j + 1) * N]
            for n in range(N):
                a[n] = p[n]
            for n in range(N):
                d[n] = -q[n]


@kernel
def _dout_filter(dout, f, tiles_h, tiles_w, dM):
    N = dout.shape[0]
    dyt_f = np.empty((2 * tiles_h, 2 * tiles_w * N), dtype=dM.dtype)
    _to_rows_channel(dout, f, i64(0), dyt_f)
    rows = np.empty((4, dyt_f.shape[1]), dtype=dM.dtype)
    for i in range(tiles_h):
        _dout_tile_row(dyt_f, f, i, tiles_w, N, rows, dM)
    return _plane_sum(dyt_f)


@kernel(parallel=True)
def dout_tiles(dout, tiles_h, tiles_w, dM, db):
    """dM (16, F, T) = A dY A^T for every 2x2 tile dY of dout (N, F, H_out, W_out), zero beyond its edge;
    db[f] = the sum of dout[:, f] (float64). One filter per task."""
    for f in prange(dout.shape[1]):
        db[f] = _dout_filter(dout, i64(f), tiles_h, tiles_w, dM)


@kernel
def _dinput_tile_row(dV, c, i, tiles_w, N, cols, rows, dxt_c):
    """Add B dv B^T of the tiles of row i into rows 2i..2i+3 of dxt_c. cols (16, tiles_w * N),
    rows (4, tiles_w * N): scratch."""
    span = tiles_w * N
    t0 = i * span
    for b in range(4):  # B dv down each column b
        _b(dV[b, c, t0:t0 + span], dV[4 + b, c, t0:t0 + span], dV[8 + b, c, t0:t0 + span],
           dV[12 + b, c, t0:t0 + span], cols[b], cols[4 + b], cols[8 + b], cols[12 + b])
    for r in range(4):  # then (B dv) B^T along each row, added at the tile's place
        _b(cols[4 * r], cols[4 * r + 1], cols[4 * r + 2], cols[4 * r + 3], rows[0], rows[1], rows[2], rows[3])
        for s in range(4):
            _spread(rows[s], tiles_w, N, s, True, dxt_c[2 * i + r])


@kernel
def _dinput_channel(dV, c, pad, tiles_h, tiles_w, dx):
    N = dx.shape[0]
    dxt_c = np.zeros((2 * tiles_h + 2, (2 * tiles_w + 2) * N), dtype=dx.dtype)
    cols = np.empty((16, tiles_w * N), dtype=dx.dtype)
    rows = np.empty((4, tiles_w * N), dtype=dx.dtype)
    for i in range(tiles_h):
        _dinput_tile_row(dV, c, i, tiles_w, N, cols, rows, dxt_c)
    _from_rows_channel(dxt_c, c, pad, dx.dtype.type(0), dx)


@kernel(parallel=True)
def dinput_tiles(dV, pad, tiles_h, tiles_w, dx):
    """dx (N, C, H, W) = the sum of B dV B^T over every tile, cropped by pad. One channel per task (its tiles
    overlap, so they add up in one task), accumulated images-innermost in an L2-sized scratch."""
    for c in prange(dx.shape[1]):
        _dinput_channel(dV, i64(c), pad, tiles_h, tiles_w, dx)
