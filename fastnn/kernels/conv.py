"""Convolution kernels around the GEMMs: im2col, col2im, and the (F, N*P) <-> (N, F, P) transposes with the
bias add and db reduction folded in. Mirrors fastnn.reference.conv (im2col, col2im, conv_forward_fast)."""

from numba import prange

from ._jit import kernel


@kernel(parallel=True)
def im2col(x, HH, WW, stride, pad, H_out, W_out, cols):
    """Mirrors reference.conv.im2col: cols (C*HH*WW, N*H_out*W_out), row (c*HH + kh)*WW + kw,
    column (n*H_out + i)*W_out + j; zeros where the window overlaps the padding. Every entry is written."""
    N, C, H, W = x.shape
    for r in prange(C * HH * WW):
        c = r // (HH * WW)
        kh = (r // WW) % HH
        kw = r % WW
        row = cols[r]
        for n in range(N):
            for i in range(H_out):
                h = i * stride + kh - pad
                base = (n * H_out + i) * W_out
                if h < 0 or h >= H:
                    for j in range(W_out):
                        row[base + j] = 0
                    continue
                # the valid j range, so the inner loop has no branch
                j_lo = 0
                while j_lo < W_out and j_lo * stride + kw - pad < 0:
                    row[base + j_lo] = 0
                    j_lo += 1
                j_hi = W_out
                while j_hi > j_lo and (j_hi - 1) * stride + kw - pad >= W:
                    j_hi -= 1
                    row[base + j_hi] = 0
                for j in range(j_lo, j_hi):
                    row[base + j] = x[n, c, h, j * stride + kw - pad]


@kernel(parallel=True)
def col2im(cols, HH, WW, stride, pad, H_out, W_out, dx):
    """Mirrors reference.conv.col2im: dx (N, C, H, W) = the sum of each column entry into the input position
    it was gathered from. One (n, c) plane per task, so writes are disjoint."""
    N, C, H, W = dx.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = dx[n, c]
        plane[:, :] = 0
        for kh in range(HH):
            for kw in range(WW):
                row = cols[(c * HH + kh) * WW + kw]
                j_lo = 0
                while j_lo < W_out and j_lo * stride + kw - pad < 0:
                    j_lo += 1
                j_hi = W_out
                while j_hi > j_lo and (j_hi - 1) * stride + kw - pad >= W:
                    j_hi -= 1
                for i in range(H_out):
                    h = i * stride + kh - pad
                    if h < 0 or h >= H:
                        continue
                    base = (n * H_out + i) * W_out
                    for j in range(j_lo, j_hi):
                        plane[h, j * stride + kw - pad] += row[base + j]


@kernel(parallel=True)
def bias_to_nchw(res, b, N, out):
    """out (N, F, P) = res (F, N*P) regrouped per sample, plus b[f]: the forward GEMM's result in NCHW."""
    F = res.shape[0]
    P = res.shape[1] // N
    for nf in prange(N * F):
        n = nf // F
        f = nf % F
        bias = b[f]
        for k in range(P):
            out[n, f, k] = res[f, n * P + k] + bias


@kernel(parallel=True)
def nchw_to_rows(dout, rows, db):
    """rows (F, N*P) = dout (N, F, P) regrouped per filter; db[f] = the sum of row f (float64 accumulation,
    one filter per task, so the sum is the same at any thread count)."""
    N, F, P = dout.shape
    for f in prange(F):
        total = 0.0
        for n in range(N):
            for k in range(P):
                v = dout[n, f, k]
                rows[f, n * P + k] = v
                total += v
        db[f] = total
