"""Max-pool kernels. Mirror fastnn.reference.pool (max_pool_forward_fast, max_pool_backward_fast): no im2col
buffer, one (n, c) plane per task (a block of planes for the 2x2 forward), the first maximum of each window
(np.argmax rules: the first NaN wins).

Each parallel loop hands its task to a serial function: numba optimises a prange body poorly (measured 3-5x
slower here), a plain function called from it well.
"""

import numpy as np
from numba import prange

from ._jit import kernel


@kernel
def _pool_plane(plane, ph, pw, stride, out, argmax):
    H_out, W_out = out.shape
    for i in range(H_out):
        for j in range(W_out):
            h0 = i * stride
            w0 = j * stride
            best = plane[h0, w0]
            where = 0
            nan = False
            for a in range(ph):
                for b in range(pw):
                    v = plane[h0 + a, w0 + b]
                    nan |= v != v
                    if v > best:
                        best = v
                        where = a * pw + b
            if nan:  # rare: the first NaN is the maximum, as for np.argmax
                for k in range(ph * pw - 1, -1, -1):
                    v = plane[h0 + k // pw, w0 + k % pw]
                    if v != v:
                        best = v
                        where = k
            out[i, j] = best
            argmax[i, j] = where


@kernel(parallel=True)
def max_pool_forward(x, ph, pw, stride, out, argmax):
    """out[n, c, i, j] = the window's maximum; argmax[n, c, i, j] = kh*pw + kw of its first occurrence."""
    N, C = out.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _pool_plane(x[n, c], ph, pw, stride, out[n, c], argmax[n, c])


@kernel
def _pool_plane_2x2(plane, out, argmax, rows, row_of):
    """out, argmax: the plane's windows, flat. rows, row_of: scratch of H/2 * W entries.

    Two passes that LLVM vectorises: the larger of each column's two entries, with the row it came from; then the
    larger of each column pair. Ties go to the smaller position and a NaN beats a number, so the winner is
    np.argmax's first maximum. The former kernel took one window at a time through a chain of scalar compares:
    this one takes 0.47-0.62x its time in float32 and 0.73-1.09x in float64, which the memory bounds (A/B in one
    process, two shapes, machine B).
    """
    H, W = plane.shape
    for i in range(H // 2):
        top = plane[2 * i]
        bottom = plane[2 * i + 1]
        base = i * W
        for j in range(W):
            a = top[j]
            b = bottom[j]
            lower = (b > a) | ((b != b) & (a == a))
            rows[base + j] = b if lower else a
            row_of[base + j] = lower
    for t in range(out.shape[0]):
        a = rows[2 * t]
        b = rows[2 * t + 1]
        row_a = row_of[2 * t]
        row_b = row_of[2 * t + 1]
        a_nan = a != a
        b_nan = b != b
        tie = (b == a) | (b_nan & a_nan)
        right = (b > a) | (b_nan & ~a_nan) | (tie & (row_b < row_a))
        out[t] = b if right else a
        argmax[t] = 2 * (row_b if right else row_a) + right


TASKS_2X2 = 64  # planes are handed out in this many blocks, each allocating its scratch once


@kernel(parallel=True)
def max_pool_forward_2x2(x, out, argmax):
    """The 2x2, stride-2 case of max_pool_forward, for even H and W; out and argmax C-contiguous."""
    N, C, H, W = x.shape
    planes = N * C
    out_flat = out.reshape(planes, out.shape[2] * out.shape[3])
    argmax_flat = argmax.reshape(planes, out.shape[2] * out.shape[3])
    tasks = min(planes, TASKS_2X2)
    for task in prange(tasks):
        rows = np.empty((H // 2) * W, x.dtype)
        row_of = np.empty((H // 2) * W, np.uint8)
        for nc in range(task * planes // tasks, (task + 1) * planes // tasks):
            _pool_plane_2x2(x[nc // C, nc % C], out_flat[nc], argmax_flat[nc], rows, row_of)


@kernel
def _unpool_plane(dout, argmax, pw, stride, plane):
    plane[:, :] = 0
    H_out, W_out = dout.shape
    for i in range(H_out):
        for j in range(W_out):
            a = argmax[i, j]
            plane[i * stride + a // pw, j * stride + a % pw] += dout[i, j]


@kernel(parallel=True)
def max_pool_backward(dout, argmax, pw, stride, dx):
    """dx = each window's gradient added at its argmax; overlapping windows accumulate within one plane."""
    N, C = dout.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _unpool_plane(dout[n, c], argmax[n, c], pw, stride, dx[n, c])


@kernel
def _zero_rows(plane, i):
    """Zero plane rows 2i and 2i+1 (window row i's)."""
    top, bottom = plane[2 * i], plane[2 * i + 1]
    for q in range(top.shape[0]):
        top[q] = 0.0
        bottom[q] = 0.0


@kernel
def _unpool_plane_2x2(dout, argmax, plane):
    """Per window row: zero its two plane rows (while in cache), then store 0.0 + each gradient at the address its
    window's argmax gives (+ 0.0: a -0.0 gradient becomes the reference's 0.0 + dout). Nothing compares the
    argmax: choosing each entry by `k == 0` (as this kernel did before), LLVM branched on the argmax, which a
    random argmax mispredicts (the fused ReLU variant took 5.9 ms on (64, 32, 32, 32) float32 against 1.5 ms
    with every argmax 0, measured here)."""
    for i in range(dout.shape[0]):
        _zero_rows(plane, i)
        for j in range(dout.shape[1]):
            k = np.int32(argmax[i, j])
            plane[2 * i + (k >> 1), 2 * j + (k & 1)] = dout[i, j] + 0.0


@kernel(parallel=True)
def max_pool_backward_2x2(dout, argmax, dx):
    """The 2x2, stride-2 tiling case of max_pool_backward, a window row at a time (no zeroing pass over dx first):
    0.40-0.60x the time of choosing each entry by compares on (64, 32, 32, 32), 0.14-0.18x on (64, 64, 16, 16),
    float32 and float64 (A/B in one process, measured here)."""
    N, C = dout.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _unpool_plane_2x2(dout[n, c], argmax[n, c], dx[n, c])


@kernel
def _unpool_relu_plane_2x2(dout, argmax, relu_input, plane):
    """_unpool_plane_2x2, then, while the plane is in cache, ReLU's backward over it: kept where relu_input > 0,
    else 0.0 (np.where's answer, NaN included). 0.2-0.4x the time of gating each entry by a select as it was
    written (float32; 0.3-0.6x float64), and 0.6-0.8x the time of gating each window by the relu input at its
    argmax (float32; 0.8-1.2x in float64), A/B in one process, measured here."""
    _unpool_plane_2x2(dout, argmax, plane)
    for h in range(plane.shape[0]):
        line, opened = plane[h], relu_input[h]
        for q in range(line.shape[0]):
            line[q] = line[q] if opened[q] > 0 else 0.0


@kernel(parallel=True)
def max_pool_relu_backward_2x2(dout, argmax, relu_input, da):
    """max_pool_backward_2x2 and then ReLU's backward in one pass: da = the unpooled gradient where relu_input
    > 0, else 0 (np.where's answer, NaN included), with no unpooled array in between."""
    N, C = dout.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _unpool_relu_plane_2x2(dout[n, c], argmax[n, c], relu_input[n, c], da[n, c])
