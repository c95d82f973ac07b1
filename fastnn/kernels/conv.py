"""Convolution kernels around the GEMMs: im2col, col2im, and the (F, N*P) <-> (N, F, P) transposes with the
bias add and db reduction folded in. Mirrors fastnn.reference.conv (im2col, col2im, conv_forward_fast).

Each parallel loop hands its task to a serial function (numba optimises a prange body poorly, measured 2-4x).
"""

from numba import prange

from ._jit import kernel


@kernel
def _valid_columns(kw, stride, pad, W, W_out):
    """The range [lo, hi) of output columns j whose input column j*stride + kw - pad lies inside [0, W)."""
    lo = 0
    while lo < W_out and lo * stride + kw - pad < 0:
        lo += 1
    hi = W_out
    while hi > lo and (hi - 1) * stride + kw - pad >= W:
        hi -= 1
    return lo, hi


@kernel
def _im2col_row(x, c, kh, kw, stride, pad, H_out, W_out, row):
    N, _, H, W = x.shape
    lo, hi = _valid_columns(kw, stride, pad, W, W_out)
    offset = kw - pad
    for n in range(N):
        for i in range(H_out):
            h = i * stride + kh - pad
            base = (n * H_out + i) * W_out
            if h < 0 or h >= H:
                for j in range(W_out):
                    row[base + j] = 0
                continue
            src = x[n, c, h]
            for j in range(lo):
                row[base + j] = 0
            if stride == 1:  # a contiguous run; copied between views, so the loop index starts at 0 and it
                # vectorises (slice assignment would compile numba's shape-error formatting: seconds, cold)
                dst = row[base + lo:base + hi]
                run = src[lo + offset:hi + offset]
                for j in range(dst.shape[0]):
                    dst[j] = run[j]
            else:
                for j in range(lo, hi):
                    row[base + j] = src[j * stride + offset]
            for j in range(hi, W_out):
                row[base + j] = 0


@kernel(parallel=True)
def im2col(x, HH, WW, stride, pad, H_out, W_out, cols):
    """Mirrors reference.conv.im2col: cols (C*HH*WW, N*H_out*W_out), row (c*HH + kh)*WW + kw,
    column (n*H_out + i)*W_out + j; zeros where the window overlaps the padding. Every entry is written."""
    C = x.shape[1]
    for r in prange(C * HH * WW):
        _im2col_row(x, r // (HH * WW), (r // WW) % HH, r % WW, stride, pad, H_out, W_out, cols[r])


@kernel
def _col2im_plane(cols, n, c, HH, WW, stride, pad, H_out, W_out, plane):
    H, W = plane.shape
    plane[:, :] = 0
    for kh in range(HH):
        for kw in range(WW):
            row = cols[(c * HH + kh) * WW + kw]
            lo, hi = _valid_columns(kw, stride, pad, W, W_out)
            offset = kw - pad
            for i in range(H_out):
                h = i * stride + kh - pad
                if h < 0 or h >= H:
                    continue
                dst = plane[h]
                base = (n * H_out + i) * W_out
                if stride == 1:  # unit stride spelled out, so the compiler vectorises the sum
                    for j in range(lo, hi):
                        dst[j + offset] += row[base + j]
                else:
                    for j in range(lo, hi):
                        dst[j * stride + offset] += row[base + j]


@kernel(parallel=True)
def col2im(cols, HH, WW, stride, pad, H_out, W_out, dx):
    """Mirrors reference.conv.col2im: dx (N, C, H, W) = the sum of each column entry into the input position
    it was gathered from. One (n, c) plane per task, so writes are disjoint."""
    N, C = dx.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _col2im_plane(cols, n, c, HH, WW, stride, pad, H_out, W_out, dx[n, c])


@kernel
def _shift_add(src, bias, dst):
    for k in range(dst.size):
        dst[k] = src[k] + bias


@kernel(parallel=True)
def bias_to_nchw(res, b, N, out):
    """out (N, F, P) = res (F, N*P) regrouped per sample, plus b[f]: the forward GEMM's result in NCHW."""
    F = res.shape[0]
    P = res.shape[1] // N
    for nf in prange(N * F):
        n, f = nf // F, nf % F
        _shift_add(res[f, n * P:(n + 1) * P], b[f], out[n, f])


@kernel
def _copy_sum(src, dst):
    total = 0.0
    for k in range(src.size):
        v = src[k]
        dst[k] = v
        total += v
    return total


@kernel(parallel=True)
def nchw_to_rows(dout, rows, db):
    """rows (F, N*P) = dout (N, F, P) regrouped per filter; db[f] = the sum of row f (float64 accumulation,
    one filter per task, so the sum is the same at any thread count)."""
    N, F, P = dout.shape
    for f in prange(F):
        total = 0.0
        for n in range(N):
            total += _copy_sum(dout[n, f], rows[f, n * P:(n + 1) * P])
        db[f] = total
