"""Winograd F(4x4, 3x3) kernels for 3x3, stride-1 convolution (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016): each 4x4 output tile is A^T [(G g G^T) * (B^T d B)] A for its 6x6 input tile d, so the
convolution becomes 36 GEMMs of (F, C) @ (C, tiles), 4x fewer multiplications than im2col's one GEMM.

The tile transforms live here; the GEMMs stay in BLAS and the small filter transforms in NumPy
(fastnn.compiled.winograd). Layouts: transformed tiles V (36, C, T) and products M (36, F, T), k = 6*row + column
of the 6x6 transform, tile t = (i * tiles_w + j) * N + n. Images are the innermost index, and images are held
channel-major as (C, H, W*N) rows, so every transform step is a loop over contiguous values with one store and
at most five loads: numba vectorises it (a loop touching 16 arrays at once it would not, measured 5-10x slower).
The backward kernels are the exact adjoints: dM = A dY A^T, dx += B dV B^T (overlapping tiles add up).
"""

import numpy as np
from numba import prange

from ._jit import i64, kernel

# ------------------------------------------------------------------------------------------------ 1-D transforms
# Each applies one small matrix along one axis of the tiles, elementwise over vectors (whole rows of tiles, or the
# images of one tile). Constants take the arrays' dtype: a float literal would turn float32 arithmetic into float64.


@kernel
def _bt(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5):
    """(o0..o5) = B^T (d0..d5): the input transform along one axis (interpolation points 0, +-1, +-2, inf)."""
    two, four, five = o0.dtype.type(2), o0.dtype.type(4), o0.dtype.type(5)
    for k in range(o0.shape[0]):
        o0[k] = four * d0[k] - five * d2[k] + d4[k]
    for k in range(o0.shape[0]):
        o1[k] = (d3[k] + d4[k]) - four * (d1[k] + d2[k])
    for k in range(o0.shape[0]):
        o2[k] = (d4[k] - d3[k]) + four * (d1[k] - d2[k])
    for k in range(o0.shape[0]):
        o3[k] = (d4[k] - d2[k]) + two * (d3[k] - d1[k])
    for k in range(o0.shape[0]):
        o4[k] = (d4[k] - d2[k]) + two * (d1[k] - d3[k])
    for k in range(o0.shape[0]):
        o5[k] = four * d1[k] - five * d3[k] + d5[k]


@kernel
def _b(v0, v1, v2, v3, v4, v5, o0, o1, o2, o3, o4, o5):
    """(o0..o5) = B (v0..v5): the adjoint of _bt."""
    two, four, five = o0.dtype.type(2), o0.dtype.type(4), o0.dtype.type(5)
    for k in range(o0.shape[0]):
        o0[k] = four * v0[k]
    for k in range(o0.shape[0]):
        o1[k] = four * (v2[k] - v1[k] + v5[k]) + two * (v4[k] - v3[k])
    for k in range(o0.shape[0]):
        o2[k] = -(five * v0[k] + four * (v1[k] + v2[k]) + (v3[k] + v4[k]))
    for k in range(o0.shape[0]):
        o3[k] = (v1[k] - v2[k]) + two * (v3[k] - v4[k]) - five * v5[k]
    for k in range(o0.shape[0]):
        o4[k] = v0[k] + (v1[k] + v2[k]) + (v3[k] + v4[k])
    for k in range(o0.shape[0]):
        o5[k] = v5[k]


@kernel
def _at(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3):
    """(o0..o3) = A^T (m0..m5): the output transform along one axis."""
    two, four, eight = o0.dtype.type(2), o0.dtype.type(4), o0.dtype.type(8)
    for k in range(o0.shape[0]):
        o0[k] = m0[k] + (m1[k] + m2[k]) + (m3[k] + m4[k])
    for k in range(o0.shape[0]):
        o1[k] = (m1[k] - m2[k]) + two * (m3[k] - m4[k])
    for k in range(o0.shape[0]):
        o2[k] = (m1[k] + m2[k]) + four * (m3[k] + m4[k])
    for k in range(o0.shape[0]):
        o3[k] = (m1[k] - m2[k]) + eight * (m3[k] - m4[k]) + m5[k]


@kernel
def _a(y0, y1, y2, y3, o0, o1, o2, o3, o4, o5):
    """(o0..o5) = A (y0..y3): the adjoint of _at."""
    two, four = o0.dtype.type(2), o0.dtype.type(4)
    for k in range(o0.shape[0]):
        o0[k] = y0[k]
    for k in range(o0.shape[0]):
        o1[k] = (y0[k] + y2[k]) + (y1[k] + y3[k])
    for k in range(o0.shape[0]):
        o2[k] = (y0[k] + y2[k]) - (y1[k] + y3[k])
    for k in range(o0.shape[0]):
        o3[k] = (y0[k] + four * y2[k]) + two * (y1[k] + four * y3[k])
    for k in range(o0.shape[0]):
        o4[k] = (y0[k] + four * y2[k]) - two * (y1[k] + four * y3[k])
    for k in range(o0.shape[0]):
        o5[k] = y3[k]


# ------------------------------------------------------------------------------------------------ layouts


@kernel
def _to_rows_channel(x, c, pad, xt_c):
    """xt_c (Hp, Wp * N) = channel c of x (N, C, H, W) at offset pad, images innermost, zero elsewhere."""
    N, _, H, W = x.shape
    for h in range(xt_c.shape[0]):  # zero what the rows of x leave: the padding and whole tiles' edges
        line = xt_c[h]
        first, stop = (pad * N, (pad + W) * N) if pad <= h < pad + H else (line.shape[0], line.shape[0])
        for k in range(first):
            line[k] = 0
        for k in range(stop, line.shape[0]):
            line[k] = 0
    for h in range(H):  # one row of every image at a time: the row written stays in L1
        line = xt_c[h + pad]
        for n in range(N):
            src = x[n, c, h]
            for w in range(W):
                line[(w + pad) * N + n] = src[w]


@kernel
def _from_rows_channel(xt_c, c, pad, bias, out):
    """Channel c of out (N, C, H, W) = xt_c (Hp, Wp * N) cropped at offset pad, plus bias."""
    N, _, H, W = out.shape
    for h in range(H):  # one row of every image at a time: the row read stays in L1
        line = xt_c[h + pad]
        for n in range(N):
            dst = out[n, c, h]
            for w in range(W):
                dst[w] = line[(w + pad) * N + n] + bias


@kernel(fast_sums=True)
def _plane_sum(a):
    """The float64 sum of a 2-D array: a filter's bias gradient, and the check that a plane of tiles is finite."""
    total = 0.0
    for h in range(a.shape[0]):
        line = a[h]
        for k in range(line.shape[0]):
            total += line[k]
    return total


@kernel
def _gather(line, tiles_w, N, column, out):
    """out[j*N + n] = line[(4j + column)*N + n] for every tile j: one column of every tile, contiguous."""
    for j in range(tiles_w):
        a = line[(4 * j + column) * N:(4 * j + column + 1) * N]
        o = out[j * N:(j + 1) * N]
        for n in range(N):
            o[n] = a[n]


@kernel
def _spread(src, tiles_w, N, column, add, line):
    """line[(4j + column)*N + n] (+)= src[j*N + n] for every tile j: a transformed column back in place."""
    for j in range(tiles_w):
        a = src[j * N:(j + 1) * N]
        o = line[(4 * j + column) * N:(4 * j + column + 1) * N]
        if add:
            for n in range(N):
                o[n] += a[n]
        else:
            for n in range(N):
                o[n] = a[n]


# ------------------------------------------------------------------------------------------------ transforms


@kernel
def _input_tile_row(xt_c, i, tiles_w, c, N, rows, cols, V):
    """V[:, c, tiles of row i] from the padded rows 4i..4i+5 of one channel. rows (6, Wp * N), cols (6, tiles_w * N):
    scratch."""
    r0 = 4 * i
    _bt(xt_c[r0], xt_c[r0 + 1], xt_c[r0 + 2], xt_c[r0 + 3], xt_c[r0 + 4], xt_c[r0 + 5],
        rows[0], rows[1], rows[2], rows[3], rows[4], rows[5])
    t0, span = i * tiles_w * N, tiles_w * N
    for r in range(6):  # then d B along each row: gather the tiles' six columns, transform them
        for s in range(6):
            _gather(rows[r], tiles_w, N, s, cols[s])
        k = 6 * r
        _bt(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5],
            V[k, c, t0:t0 + span], V[k + 1, c, t0:t0 + span], V[k + 2, c, t0:t0 + span],
            V[k + 3, c, t0:t0 + span], V[k + 4, c, t0:t0 + span], V[k + 5, c, t0:t0 + span])


@kernel
def _input_channel(x, c, pad, tiles_h, tiles_w, V):
    N = x.shape[0]
    xt_c = np.empty((4 * tiles_h + 2, (4 * tiles_w + 2) * N), dtype=V.dtype)
    _to_rows_channel(x, c, pad, xt_c)
    rows = np.empty((6, xt_c.shape[1]), dtype=V.dtype)
    cols = np.empty((6, tiles_w * N), dtype=V.dtype)
    for i in range(tiles_h):
        _input_tile_row(xt_c, i, tiles_w, c, N, rows, cols, V)


@kernel(parallel=True)
def input_tiles(x, pad, tiles_h, tiles_w, V):
    """V (36, C, T) = B^T d B for every 6x6 tile d of x (N, C, H, W) zero-padded by pad (and beyond, to whole
    tiles). One channel per task, laid out images-innermost in an L2-sized scratch first."""
    for c in prange(x.shape[1]):
        _input_channel(x, i64(c), pad, tiles_h, tiles_w, V)


@kernel
def _output_tile_row(M, f, i, tiles_w, N, cols, rows, yt_f):
    """Rows 4i..4i+3 of yt_f (4*tiles_h, 4*tiles_w * N) = A^T m A of the tiles of row i of filter f.
    cols (24, tiles_w * N), rows (4, tiles_w * N): scratch."""
    span = tiles_w * N
    t0 = i * span
    for b in range(6):  # A^T m down each column b of the 6x6 tiles
        _at(M[b, f, t0:t0 + span], M[6 + b, f, t0:t0 + span], M[12 + b, f, t0:t0 + span],
            M[18 + b, f, t0:t0 + span], M[24 + b, f, t0:t0 + span], M[30 + b, f, t0:t0 + span],
            cols[b], cols[6 + b], cols[12 + b], cols[18 + b])
    for a in range(4):  # then (A^T m) A along each of its four rows
        k = 6 * a
        _at(cols[k], cols[k + 1], cols[k + 2], cols[k + 3], cols[k + 4], cols[k + 5],
            rows[0], rows[1], rows[2], rows[3])
        for s in range(4):
            _spread(rows[s], tiles_w, N, i64(s), False, yt_f[4 * i + a])


@kernel
def _output_filter(M, f, bias, tiles_h, tiles_w, out):
    N = out.shape[0]
    yt_f = np.empty((4 * tiles_h, 4 * tiles_w * N), dtype=out.dtype)
    cols = np.empty((24, tiles_w * N), dtype=out.dtype)
    rows = np.empty((4, tiles_w * N), dtype=out.dtype)
    for i in range(tiles_h):
        _output_tile_row(M, f, i, tiles_w, N, cols, rows, yt_f)
    _from_rows_channel(yt_f, f, i64(0), bias, out)
    return _plane_sum(yt_f)


@kernel(parallel=True)
def output_tiles(M, b, tiles_h, tiles_w, out, sums):
    """out (N, F, H_out, W_out) = A^T m A + b[f] for every tile of M (36, F, T); edges past a whole tile are
    cropped. One filter per task, assembled images-innermost in an L2-sized scratch, then written out.
    sums[f] (float64) = the sum of filter f's whole tiles before the bias: finite when they all are."""
    for f in prange(out.shape[1]):
        sums[f] = _output_filter(M, i64(f), b[f], tiles_h, tiles_w, out)


@kernel
def _dout_tile_row(dyt_f, f, i, tiles_w, N, rows, cols, dM):
    """dM[:, f, tiles of row i] = A dY A^T from rows 4i..4i+3 of dyt_f. rows (6, 4*tiles_w * N),
    cols (4, tiles_w * N): scratch."""
    r0 = 4 * i
    _a(dyt_f[r0], dyt_f[r0 + 1], dyt_f[r0 + 2], dyt_f[r0 + 3], rows[0], rows[1], rows[2], rows[3], rows[4], rows[5])
    t0, span = i * tiles_w * N, tiles_w * N
    for r in range(6):  # then (A dY) A^T along each row
        for s in range(4):
            _gather(rows[r], tiles_w, N, s, cols[s])
        k = 6 * r
        _a(cols[0], cols[1], cols[2], cols[3],
           dM[k, f, t0:t0 + span], dM[k + 1, f, t0:t0 + span], dM[k + 2, f, t0:t0 + span],
           dM[k + 3, f, t0:t0 + span], dM[k + 4, f, t0:t0 + span], dM[k + 5, f, t0:t0 + span])


@kernel
def _dout_filter(dout, f, tiles_h, tiles_w, dM):
    N = dout.shape[0]
    dyt_f = np.empty((4 * tiles_h, 4 * tiles_w * N), dtype=dM.dtype)
    _to_rows_channel(dout, f, i64(0), dyt_f)
    rows = np.empty((6, dyt_f.shape[1]), dtype=dM.dtype)
    cols = np.empty((4, tiles_w * N), dtype=dM.dtype)
    for i in range(tiles_h):
        _dout_tile_row(dyt_f, f, i, tiles_w, N, rows, cols, dM)
    return _plane_sum(dyt_f)


@kernel(parallel=True)
def dout_tiles(dout, tiles_h, tiles_w, dM, db):
    """dM (36, F, T) = A dY A^T for every 4x4 tile dY of dout (N, F, H_out, W_out), zero beyond its edge;
    db[f] = the sum of dout[:, f] (float64). One filter per task."""
    for f in prange(dout.shape[1]):
        db[f] = _dout_filter(dout, i64(f), tiles_h, tiles_w, dM)


@kernel
def _dinput_tile_row(dV, c, i, tiles_w, N, cols, rows, dxt_c):
    """Add B dv B^T of the tiles of row i into rows 4i..4i+5 of dxt_c. cols (36, tiles_w * N),
    rows (6, tiles_w * N): scratch."""
    span = tiles_w * N
    t0 = i * span
    for b in range(6):  # B dv down each column b
        _b(dV[b, c, t0:t0 + span], dV[6 + b, c, t0:t0 + span], dV[12 + b, c, t0:t0 + span],
           dV[18 + b, c, t0:t0 + span], dV[24 + b, c, t0:t0 + span], dV[30 + b, c, t0:t0 + span],
           cols[b], cols[6 + b], cols[12 + b], cols[18 + b], cols[24 + b], cols[30 + b])
    for r in range(6):  # then (B dv) B^T along each row, added at the tile's place
        k = 6 * r
        _b(cols[k], cols[k + 1], cols[k + 2], cols[k + 3], cols[k + 4], cols[k + 5],
           rows[0], rows[1], rows[2], rows[3], rows[4], rows[5])
        for s in range(6):
            _spread(rows[s], tiles_w, N, i64(s), True, dxt_c[4 * i + r])


@kernel
def _dinput_channel(dV, c, pad, tiles_h, tiles_w, dx):
    N = dx.shape[0]
    dxt_c = np.zeros((4 * tiles_h + 2, (4 * tiles_w + 2) * N), dtype=dx.dtype)
    cols = np.empty((36, tiles_w * N), dtype=dx.dtype)
    rows = np.empty((6, tiles_w * N), dtype=dx.dtype)
    for i in range(tiles_h):
        _dinput_tile_row(dV, c, i, tiles_w, N, cols, rows, dxt_c)
    _from_rows_channel(dxt_c, c, pad, dx.dtype.type(0), dx)
    return _plane_sum(dxt_c)


@kernel(parallel=True)
def dinput_tiles(dV, pad, tiles_h, tiles_w, dx, sums):
    """dx (N, C, H, W) = the sum of B dV B^T over every tile, cropped by pad. One channel per task (its tiles
    overlap, so they add up in one task), accumulated images-innermost in an L2-sized scratch.
    sums[c] (float64) = the sum of channel c's whole tiles: finite when they all are."""
    for c in prange(dx.shape[1]):
        sums[c] = _dinput_channel(dV, i64(c), pad, tiles_h, tiles_w, dx)
