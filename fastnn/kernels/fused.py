"""Fused affine-norm-ReLU kernels: everything around the GEMMs in as few passes over memory as possible.
Mirror fastnn.reference.sandwich (affine_bn_relu_*, affine_ln_relu_*).

Batchnorm. Forward, one kernel: [GEMM] -> one pass adding the bias in place and summing moments -> one pass
writing out = relu(gamma * xhat + beta); xhat = (a - mean) * invstd is not stored. Backward: relu_column_sums
(dbeta, dgamma) -> batchnorm_relu_da (da and db) -> [GEMMs]. The backward recomputes xhat from a and
the ReLU mask from xhat, gamma, beta (gamma * xhat + beta > 0) with the forward's own float operations, so the
same bits, and reads two arrays per pass instead of three.
Layernorm, as norm.py's: forward, one kernel per row (bias, statistics, out), xhat not stored; backward, one pass
over dout and a (layernorm_relu_backward) for da, db, dgamma and dbeta (0.96x the time of the layer with a stored
xhat and two passes in float32, 0.99x in float64, N=D=H=1024 with its GEMMs, measured in one process).
Reductions split rows into CHUNKS fixed chunks (as in norm.py), so results do not depend on the thread count.
"""

import numpy as np
from numba import prange

from ._jit import kernel
from .norm import (
    CHUNKS,
    _row_dx,
    _xhat,
    backward_scale,
    batch_moments,
    block_statistics,
    finite_or_zero,
    remeasure_far_columns,
    rounded_statistics,
    sum_chunks,
)


@kernel
def _biased_shifted(row, b, shift, d):
    """row[d] += b[d] (in place); returns the result, and less shift[d] in float64."""
    v = row[d] + b[d]
    row[d] = v
    return np.float64(v) - shift[d]


@kernel
def bias_shifted_sums(a, b, lo, hi, shift, s, q):
    """a += b (in place) over rows lo..hi-1, with s[d] += (a[i, d] - shift[d]) and q[d] += its square (float64).
    Four rows at a time, as norm.shifted_sums (0.86-0.89x the time of one row at a time, measured here)."""
    i = lo
    while i + 4 <= hi:
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        for d in range(a.shape[1]):
            v0 = _biased_shifted(a0, b, shift, d)
            v1 = _biased_shifted(a1, b, shift, d)
            v2 = _biased_shifted(a2, b, shift, d)
            v3 = _biased_shifted(a3, b, shift, d)
            s[d] += (v0 + v1) + (v2 + v3)
            q[d] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)
        i += 4
    for r in range(i, hi):  # the last rows, one at a time
        row = a[r]
        for d in range(a.shape[1]):
            v = _biased_shifted(row, b, shift, d)
            s[d] += v
            q[d] += v * v


@kernel
def _scale_shift_relu(h, gamma, beta):
    """relu(gamma * h + beta), NaN kept. Compiled without fast-math (no FMA contraction) wherever it is
    inlined, so _relu_open recomputes the same y bit for bit."""
    y = gamma * h + beta
    return 0 if y <= 0 else y


@kernel
def _relu_open(h, gamma, beta):
    """Whether _scale_shift_relu(h, gamma, beta) let the gradient through: gamma * h + beta > 0."""
    return gamma * h + beta > 0


@kernel
def _gated(v, opened):
    """v where opened, else 0 (np.where's select, NaN and Inf included; a negative v closed gives -0.0, which
    only the sign of an exact zero can show), as float64. Written as v * opened with
    a fix-up for a NaN result because LLVM turns `v if opened else 0` into a load of v masked by `opened`, which
    waits for the mask: from memory that pass took 1.3x the time (measured here)."""
    g = np.float64(v) * opened
    if g != g:  # v NaN, or infinite where closed
        g = np.float64(v) if opened else 0.0
    return g


@kernel(parallel=True)
def bias_batchnorm_relu_train_forward(a, b, gamma, beta, eps, mean64, var64, mean, invstd, out):
    """a += b (in place); the column moments of the result (mean64, var64), mean and invstd in a's dtype (as
    norm.batchnorm_train_forward); out = relu(gamma * xhat + beta), xhat = (a - mean) * invstd (not stored)."""
    N, D = a.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    shift = np.empty(D)  # the first row after the bias add, read before any task writes it
    for d in range(D):
        shift[d] = finite_or_zero(a[0, d] + b[d])
    for t in prange(chunks):
        bias_shifted_sums(a, b, t * N // chunks, (t + 1) * N // chunks, shift, partial[t, 0], partial[t, 1])
    batch_moments(partial, shift, N, mean64, var64)
    remeasure_far_columns(a, shift, partial, mean64, var64)
    rounded_statistics(mean64, var64, eps, mean, invstd)
    for i in prange(N):
        for d in range(D):
            out[i, d] = _scale_shift_relu((a[i, d] - mean[d]) * invstd[d], gamma[d], beta[d])


@kernel(parallel=True)
def add_bias(a, b):
    """a += b (in place), per row."""
    N, D = a.shape
    for i in prange(N):
        for d in range(D):
            a[i, d] += b[d]


@kernel(parallel=True)
def normalise_relu(a, mean, invstd, gamma, beta, out):
    """out = relu(gamma[d] * xhat + beta[d]), xhat = (a - mean[d]) * invstd[d] (not stored), NaN kept."""
    N, D = a.shape
    for i in prange(N):
        for d in range(D):
            out[i, d] = _scale_shift_relu((a[i, d] - mean[d]) * invstd[d], gamma[d], beta[d])


@kernel(parallel=True, fast_sums=True)
def bias_row_normalise_relu(a, b, gamma, beta, eps, out, mean, invstd):
    """Layernorm variant: a += b in place, per-row statistics rounded to a's dtype into mean and invstd, and
    out = relu(gamma * xhat + beta) with xhat = norm._xhat(a, mean[i], invstd[i]) (not stored: recomputed so by
    the backward, bit for bit)."""
    N, D = a.shape
    for i in prange(N):
        for d in range(D):
            a[i, d] += b[d]
        mean[i], invstd[i] = block_statistics(a[i:i + 1], eps)
        m, r = mean[i], invstd[i]
        for d in range(D):
            out[i, d] = _scale_shift_relu(_xhat(a[i, d], m, r), gamma[d], beta[d])


@kernel
def _relu_input(x, mean, scale, gamma, beta, d):
    """(opened, xhat) at feature d of one row: xhat = (x[d] - mean[d]) * scale[d], opened = gamma * xhat + beta > 0
    (the ReLU let dout through)."""
    h = (x[d] - mean[d]) * scale[d]
    return _relu_open(h, gamma[d], beta[d]), h


@kernel
def relu_gradient_sums(dout, x, mean, scale, gamma, beta, lo, hi, s, q):
    """Over rows lo..hi-1, with xhat and the gate as _relu_input and dy = dout where opened, else 0 (float64):
    s[d] += dy, q[d] += dy * xhat. Four rows at a time, as norm.gradient_sums. Here the gate is a select (unlike
    _gated): 0.74-0.93x the time of the multiply in float32, 0.92-0.97x in float64 (A/B runs, measured here)."""
    i = lo
    while i + 4 <= hi:
        g0, g1, g2, g3 = dout[i], dout[i + 1], dout[i + 2], dout[i + 3]
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        for d in range(dout.shape[1]):
            o0, h0 = _relu_input(x0, mean, scale, gamma, beta, d)
            o1, h1 = _relu_input(x1, mean, scale, gamma, beta, d)
            o2, h2 = _relu_input(x2, mean, scale, gamma, beta, d)
            o3, h3 = _relu_input(x3, mean, scale, gamma, beta, d)
            y0 = np.float64(g0[d]) if o0 else 0.0
            y1 = np.float64(g1[d]) if o1 else 0.0
            y2 = np.float64(g2[d]) if o2 else 0.0
            y3 = np.float64(g3[d]) if o3 else 0.0
            s[d] += (y0 + y1) + (y2 + y3)
            q[d] += (y0 * h0 + y1 * h1) + (y2 * h2 + y3 * h3)
        i += 4
    for r in range(i, hi):
        for d in range(dout.shape[1]):
            opened, h = _relu_input(x[r], mean, scale, gamma, beta, d)
            y = np.float64(dout[r, d]) if opened else 0.0
            s[d] += y
            q[d] += y * h


@kernel(parallel=True)
def relu_column_sums(dout, x, mean, scale, gamma, beta, dbeta, dgamma):
    """dbeta[d] = sum of dy, dgamma[d] = sum of dy * xhat, as relu_gradient_sums over all rows. A stored xhat
    comes in as x with mean 0 and scale 1 (exact)."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    for t in prange(chunks):
        lo, hi = t * N // chunks, (t + 1) * N // chunks
        relu_gradient_sums(dout, x, mean, scale, gamma, beta, lo, hi, partial[t, 0], partial[t, 1])
    sum_chunks(partial[:, 0], dbeta)
    sum_chunks(partial[:, 1], dgamma)


@kernel
def _batchnorm_relu_da_rows(dout, x, mean, scale, gamma, beta, k, shift, slope, train, lo, hi, da, acc):
    """Rows lo..hi-1 of da = dy * k[d] - shift[d] - xhat * slope[d] (train) or dy * k[d] (test), with xhat as in
    _relu_input and dy = _gated(dout, opened). One row at a time: four ran 1.1-1.3x slower here; acc[d] += da."""
    for i in range(lo, hi):
        for d in range(da.shape[1]):
            opened, h = _relu_input(x[i], mean, scale, gamma, beta, d)
            dy = _gated(dout[i, d], opened)
            v = dy * k[d] - shift[d] - h * slope[d] if train else dy * k[d]
            da[i, d] = v
            acc[d] += v


@kernel(parallel=True)
def batchnorm_relu_da(dout, x, mean, scale, gamma, beta, invstd, train, dbeta, dgamma, da, db):
    """From relu_column_sums' dbeta, dgamma: da = the batchnorm backward of dy = dout * (gamma * xhat + beta > 0)
    with xhat = (x - mean) * scale, and db[d] = sum over rows of da (float64)."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 1, D))
    k, shift, slope = np.empty(D), np.empty(D), np.empty(D)  # per feature, so no division per element
    for d in range(D):
        k[d] = backward_scale(np.float64(gamma[d]), invstd[d], train)
        shift[d] = k[d] * dbeta[d] / N
        slope[d] = k[d] * dgamma[d] / N
    for t in prange(chunks):
        lo, hi = t * N // chunks, (t + 1) * N // chunks
        _batchnorm_relu_da_rows(dout, x, mean, scale, gamma, beta, k, shift, slope, train, lo, hi, da,
                                partial[t, 0])
    sum_chunks(partial[:, 0], db)


@kernel(fast_sums=True)
def _relu_row_sums(dout, a, shift, scale, gamma, beta, column_dy, column_dy_xhat):
    """For one row, with xhat = (a - shift) * scale and dy = dout where the ReLU was open: (sum of dy * gamma,
    sum of dy * gamma * xhat) in float64, adding dy and dy * xhat into the column sums. A helper outside the prange
    loop, so both builds vectorise it alike (norm._channel_gradient_sums)."""
    s = 0.0
    q = 0.0
    for d in range(dout.shape[0]):
        h = _xhat(a[d], shift, scale)
        dy = _gated(dout[d], _relu_open(h, gamma[d], beta[d]))
        column_dy[d] += dy
        column_dy_xhat[d] += dy * h
        g = dy * gamma[d]
        s += g
        q += g * h
    return s, q


@kernel(parallel=True)
def layernorm_relu_backward(dout, a, shift, scale, gamma, beta, invstd, da, db, dbeta, dgamma):
    """In one pass over dout and a: dy = dout * (gamma * xhat + beta > 0) with xhat = (a - shift[i]) * scale[i];
    per row, da = the layernorm backward of dy; over rows, dbeta = sum of dy, dgamma = sum of dy * xhat and
    db = sum of da (float64, in CHUNKS fixed chunks). A stored xhat comes in as a with shift 0 and scale 1."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 3, D))
    for t in prange(chunks):
        column_dy, column_dy_xhat, column_da = partial[t, 0], partial[t, 1], partial[t, 2]
        for i in range(t * N // chunks, (t + 1) * N // chunks):
            m, c = shift[i], scale[i]
            s, q = _relu_row_sums(dout[i], a[i], m, c, gamma, beta, column_dy, column_dy_xhat)
            s /= D
            q /= D
            for d in range(D):
                h = _xhat(a[i, d], m, c)
                dy = _gated(dout[i, d], _relu_open(h, gamma[d], beta[d]))
                v = _row_dx(dy, gamma[d], h, invstd[i], s, q)
                da[i, d] = v
                column_da[d] += v
    sum_chunks(partial[:, 0], dbeta)
    sum_chunks(partial[:, 1], dgamma)
    sum_chunks(partial[:, 2], db)
