"""Fused affine-norm-ReLU kernels: everything around the GEMMs in as few passes over memory as possible.
Mirror fastnn.reference.sandwich (affine_bn_relu_*, affine_ln_relu_*).

Forward, batchnorm: [GEMM] -> one pass adding the bias in place and summing moments -> one pass writing xhat and
out = relu(gamma * xhat + beta). Backward: one pass for the masked column sums (dbeta, dgamma) -> one pass for
da and db -> [GEMMs]. The ReLU mask is recomputed from xhat (gamma * xhat + beta > 0, the same float operations
as the forward, so the same bits) rather than read from the output: two streams per pass instead of three.
Reductions split rows into CHUNKS fixed chunks (as in norm.py), so results do not depend on the thread count.
"""

import numpy as np
from numba import prange

from ._jit import kernel
from .norm import CHUNKS, moments_from_sums, sum_chunks


@kernel(parallel=True)
def add_bias_column_moments(a, b, mean, var):
    """a += b (in place); mean[d], var[d] (float64, biased) of the result over its rows."""
    N, D = a.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    shift = np.empty(D)  # the first row after the bias add, read before any task writes it
    for d in range(D):
        shift[d] = a[0, d] + b[d]
    for t in prange(chunks):
        s = partial[t, 0]
        q = partial[t, 1]
        for i in range(t * N // chunks, (t + 1) * N // chunks):
            for d in range(D):
                v = a[i, d] + b[d]
                a[i, d] = v
                shifted = np.float64(v) - shift[d]
                s[d] += shifted
                q[d] += shifted * shifted
    sum_chunks(partial, 0, mean)
    sum_chunks(partial, 1, var)
    moments_from_sums(shift, N, mean, var)


@kernel(parallel=True)
def add_bias(a, b):
    """a += b (in place), per row."""
    N, D = a.shape
    for i in prange(N):
        for d in range(D):
            a[i, d] += b[d]


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


@kernel(parallel=True)
def normalise_relu(a, mean, invstd, gamma, beta, xhat, out):
    """xhat = (a - mean[d]) * invstd[d]; out = relu(gamma[d] * xhat + beta[d]), NaN kept."""
    N, D = a.shape
    for i in prange(N):
        for d in range(D):
            h = (a[i, d] - mean[d]) * invstd[d]
            xhat[i, d] = h
            out[i, d] = _scale_shift_relu(xhat[i, d], gamma[d], beta[d])


@kernel(parallel=True, fast_sums=True)
def bias_row_normalise_relu(a, b, gamma, beta, eps, xhat, out, mean, invstd):
    """Layernorm variant: a += b in place, then per-row statistics, xhat and out = relu(gamma * xhat + beta)."""
    N, D = a.shape
    for i in prange(N):
        s = 0.0
        for d in range(D):
            v = a[i, d] + b[d]
            a[i, d] = v
            s += v
        m = s / D
        q = 0.0
        for d in range(D):
            v = a[i, d] - m
            q += v * v
        r = 1.0 / np.sqrt(q / D + eps)
        mean[i] = m
        invstd[i] = r
        for d in range(D):
            xhat[i, d] = (a[i, d] - m) * r
            out[i, d] = _scale_shift_relu(xhat[i, d], gamma[d], beta[d])  # from the stored xhat, as backward


@kernel(parallel=True)
def relu_column_sums(dout, xhat, gamma, beta, dbeta, dgamma):
    """With dy = dout where gamma * xhat + beta > 0 (else 0): dbeta[d] = sum of dy, dgamma[d] = sum of dy * xhat."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    for t in prange(chunks):
        s = partial[t, 0]
        q = partial[t, 1]
        for i in range(t * N // chunks, (t + 1) * N // chunks):
            for d in range(D):
                h = xhat[i, d]
                g = np.float64(dout[i, d]) if _relu_open(h, gamma[d], beta[d]) else 0.0  # a select: it vectorises
                s[d] += g
                q[d] += g * h
    sum_chunks(partial, 0, dbeta)
    sum_chunks(partial, 1, dgamma)


@kernel(parallel=True)
def batchnorm_relu_da(dout, xhat, gamma, beta, invstd, dbeta, dgamma, train, da, db):
    """da = the batchnorm backward of dy = dout * (gamma * xhat + beta > 0); db[d] = sum over rows of da
    (float64)."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 1, D))
    scale = np.empty(D)  # d(out)/d(xhat) per feature, and the batch terms of the train formula
    shift = np.zeros(D)
    for d in range(D):
        scale[d] = np.float64(gamma[d]) * invstd[d]
        if train:
            shift[d] = scale[d] * dbeta[d] / N
    for t in prange(chunks):
        acc = partial[t, 0]
        for i in range(t * N // chunks, (t + 1) * N // chunks):
            for d in range(D):
                h = xhat[i, d]
                dy = np.float64(dout[i, d]) if _relu_open(h, gamma[d], beta[d]) else 0.0
                v = scale[d] * (dy - h * dgamma[d] / N) - shift[d] if train else scale[d] * dy
                da[i, d] = v
                acc[d] += v
    sum_chunks(partial, 0, db)


@kernel(parallel=True, fast_sums=True)
def layernorm_relu_da(dout, xhat, gamma, beta, invstd, da, db):
    """da = the layernorm backward of dy = dout * (gamma * xhat + beta > 0), per row; db[d] = sum over rows of
    da (float64)."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 1, D))
    for t in prange(chunks):
        acc = partial[t, 0]
        for i in range(t * N // chunks, (t + 1) * N // chunks):
            s = 0.0
            q = 0.0
            for d in range(D):
                h = xhat[i, d]
                if _relu_open(h, gamma[d], beta[d]):
                    g = np.float64(dout[i, d]) * gamma[d]
                    s += g
                    q += g * h
            s /= D
            q /= D
            for d in range(D):
                h = xhat[i, d]
                g = np.float64(dout[i, d]) * gamma[d] if _relu_open(h, gamma[d], beta[d]) else 0.0
                v = invstd[i] * (g - s - h * q)
                da[i, d] = v
                acc[d] += v
    sum_chunks(partial, 0, db)
