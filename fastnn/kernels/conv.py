"""Convolution kernels around the GEMMs: im2col, col2im, and the (F, N*P) <-> (N, F, P) transposes with the
bias add and db reduction folded in. Mirrors fastnn.reference.conv (im2col, col2im, conv_forward_fast).

Each parallel loop hands its task to a serial function (numba optimises a prange body poorly, measured 2-4x).
"""

from numba import get_num_threads, prange

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
def _col2im_row(row, n0, n1, kh, kw, stride, pad, H_out, W_out, dxc):
    """Add row (one kernel offset kh, kw) of the column gradient into images n0..n1-1 of dxc (N, H, W)."""
    H, W = dxc.shape[1], dxc.shape[2]
    lo, hi = _valid_columns(kw, stride, pad, W, W_out)
    offset = kw - pad
    for n in range(n0, n1):
        for i in range(H_out):
            h = i * stride + kh - pad
            if h < 0 or h >= H:
                continue
            dst = dxc[n, h]
            src = row[(n * H_out + i) * W_out:(n * H_out + i + 1) * W_out]
            if stride == 1:  # views from 0, so the sum vectorises
                run = dst[lo + offset:hi + offset]
                part = src[lo:hi]
                for j in range(run.shape[0]):
                    run[j] += part[j]
            else:
                for j in range(lo, hi):
                    dst[j * stride + offset] += src[j]


@kernel(parallel=True)
def col2im(cols, HH, WW, stride, pad, H_out, W_out, dx):
    """Mirrors reference.conv.col2im: dx (N, C, H, W) = the sum of each column entry into the input position
    it was gathered from. A task is one channel c of a block of images, so writes are disjoint; it reads each of
    its rows of cols in order (measured 0.5-0.8x the time of one task per (n, c) plane). Every dx entry sums its
    terms in (kh, kw) order, so the block size, chosen from the thread count, does not change the result."""
    N, C = dx.shape[:2]
    blocks = min(N, max(1, (4 * get_num_threads() + C - 1) // C))
    per_block = (N + blocks - 1) // blocks
    for t in prange(C * blocks):
        c, n0 = t // blocks, (t % blocks) * per_block
        n1 = min(N, n0 + per_block)
        dxc = dx[:, c]
        for n in range(n0, n1):
            dxc[n, :, :] = 0
        for kh in range(HH):
            for kw in range(WW):
                _col2im_row(cols[(c * HH + kh) * WW + kw], n0, n1, kh, kw, stride, pad, H_out, W_out, dxc)


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
