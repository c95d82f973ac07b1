"""Max-pool kernels. Mirror fastnn.reference.pool (max_pool_forward_fast, max_pool_backward_fast): no im2col
buffer, one (n, c) plane per task, the first maximum of each window (np.argmax rules: the first NaN wins)."""

import numpy as np
from numba import prange

from ._jit import kernel


@kernel(parallel=True)
def max_pool_forward(x, ph, pw, stride, out, argmax):
    """out[n, c, i, j] = the window's maximum; argmax[n, c, i, j] = kh*pw + kw of its first occurrence."""
    N, C, H_out, W_out = out.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = x[n, c]
        for i in range(H_out):
            h0 = i * stride
            for j in range(W_out):
                w0 = j * stride
                best = plane[h0, w0]
                where = 0
                if not np.isnan(best):
                    for a in range(ph):
                        for b in range(pw):
                            v = plane[h0 + a, w0 + b]
                            if v > best:
                                best = v
                                where = a * pw + b
                            elif np.isnan(v):
                                best = v
                                where = a * pw + b
                                break
                        if np.isnan(best):
                            break
                out[n, c, i, j] = best
                argmax[n, c, i, j] = where


@kernel(parallel=True)
def max_pool_backward(dout, argmax, pw, stride, dx):
    """dx = each window's gradient added at its argmax; overlapping windows accumulate within one plane."""
    N, C, H_out, W_out = dout.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = dx[n, c]
        plane[:, :] = 0
        for i in range(H_out):
            for j in range(W_out):
                a = argmax[n, c, i, j]
                plane[i * stride + a // pw, j * stride + a % pw] += dout[n, c, i, j]
