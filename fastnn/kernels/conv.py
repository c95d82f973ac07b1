"""Convolution kernels around the GEMMs: im2col, col2im, and the (F, N*P) <-> (N, F, P) transposes with the
bias add and db reduction folded in. Mirrors fastnn.reference.conv (im2col, col2im, conv_forward_fast).

Each parallel loop hands its task to a serial function (numba optimises a prange body poorly, measured 2-4x).
"""

from numba import prange

from ._jit import i64, kernel
from .winograd import _plane_sum


@kernel
def _zero_plane(plane):
    """plane[:, :] = 0, spelled as loops (the slice form compiles slower)."""
    for h in range(plane.shape[0]):
        line = plane[h]
        for j in range(line.shape[0]):
            line[j] = 0


@kernel
def _copy_window(src, sh, sw, dst, dh, dw, H, W):
    """dst[dh:dh+H, dw:dw+W] = src[sh:sh+H, sw:sw+W], row by row between views (so it vectorises)."""
    for h in range(H):
        a = src[sh + h, sw:sw + W]
        b = dst[dh + h, dw:dw + W]
        for j in range(W):
            b[j] = a[j]


@kernel
def pad_planes(x, pad, xp):
    """xp (N, C, H + 2*pad, W + 2*pad) = x with `pad` zeros around each (n, c) plane. Serial: a plain copy
    (0.3 ms for conv (b)) gains little from threads and a parallel build costs about a second to compile."""
    N, C, H, W = x.shape
    for nc in range(N * C):
        n, c = nc // C, nc % C
        _zero_plane(xp[n, c])
        _copy_window(x[n, c], i64(0), i64(0), xp[n, c], pad, pad, H, W)


@kernel
def _im2col_row(xp, c, kh, kw, stride, H_out, W_out, row):
    k = 0
    for n in range(xp.shape[0]):
        plane = xp[n, c]
        for i in range(H_out):
            dst = row[k:k + W_out]
            if stride == 1:  # copied between views starting at 0, so it vectorises (slice assignment would
                # also compile numba's shape-error formatting: seconds, cold)
                run = plane[i + kh, kw:kw + W_out]
                for j in range(W_out):
                    dst[j] = run[j]
            else:
                line = plane[i * stride + kh]
                for j in range(W_out):
                    dst[j] = line[kw + j * stride]
            k += W_out


@kernel(parallel=True)
def im2col(xp, HH, WW, stride, H_out, W_out, cols):
    """Mirrors reference.conv.im2col on the zero-padded input xp (pad_planes): cols (C*HH*WW, N*H_out*W_out),
    row (c*HH + kh)*WW + kw, column (n*H_out + i)*W_out + j. Every entry is written. Gathering from a padded
    copy leaves no edge cases in the copy loop: 0.3-0.55x the time of clipping each run at the border."""
    C = xp.shape[1]
    for r in prange(C * HH * WW):
        _im2col_row(xp, r // (HH * WW), (r // WW) % HH, r % WW, stride, H_out, W_out, cols[r])


@kernel
def _col2im_plane(row, kh, kw, stride, H_out, W_out, plane):
    """Add one image's segment of a column-gradient row (kernel offset kh, kw) into its padded plane."""
    for i in range(H_out):
        src = row[i * W_out:(i + 1) * W_out]
        if stride == 1:  # views from 0, so the sum vectorises
            run = plane[i + kh, kw:kw + W_out]
            for j in range(W_out):
                run[j] += src[j]
        else:
            line = plane[i * stride + kh]
            for j in range(W_out):
                line[kw + j * stride] += src[j]


@kernel(parallel=True)
def col2im(cols, HH, WW, stride, pad, H_out, W_out, dxp, dx):
    """Mirrors reference.conv.col2im: dx (N, C, H, W) = the sum of each column entry into the input position
    it was gathered from, accumulated in dxp (N, C, H + 2*pad, W + 2*pad; dx itself when pad is 0) and cropped.
    A task is one (channel, image) plane, so writes are disjoint and the plane stays in L1 while all HH*WW
    rows add into it (0.65-0.8x the time of sweeping each row over all images). Every dx entry sums its terms
    in (kh, kw) order, at any thread count."""
    N, C, H, W = dx.shape
    P = H_out * W_out
    for t in prange(C * N):
        c, n = t // N, t % N
        plane = dxp[n, c]
        _zero_plane(plane)
        for kh in range(HH):
            for kw in range(WW):
                _col2im_plane(cols[(c * HH + kh) * WW + kw, n * P:(n + 1) * P], kh, kw, stride, H_out, W_out, plane)
        if pad > 0:
            _copy_window(plane, pad, pad, dx[n, c], i64(0), i64(0), H, W)


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
def add_filter_bias(out, b):
    """out (F, P) += b[f] on row f: the `+ b` of reference.conv.conv_forward_fast for one image whose GEMM
    wrote its output in place."""
    for f in range(out.shape[0]):
        _shift_add(out[f], b[f], out[f])


@kernel
def row_sums(rows, db):
    """db[f] = the sum of rows[f] in float64: the db of reference.conv.conv_backward_fast for one image, its dout
    (F, P) read in place."""
    for f in range(rows.shape[0]):
        db[f] = _plane_sum(rows[f:f + 1])


@kernel(fast_sums=True)  # lets LLVM vectorise the float64 sum: 2-3x faster than one add after another
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
