"""Fused affine-norm-ReLU kernels: everything around the GEMMs in as few passes over memory as possible.
Mirror fastnn.reference.sandwich (affine_bn_relu_*, affine_ln_relu_*).

Forward, batchnorm: [GEMM] -> one pass adding the bias in place and summing moments -> one pass writing xhat and
out = relu(gamma * xhat + beta). Backward: one pass for the masked column sums (dbeta, dgamma) -> one pass for
da and db -> [GEMMs]. The ReLU mask is read from the forward output (out > 0 exactly where its input > 0).
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


@kernel(parallel=True)
def normalise_relu(a, mean, invstd, gamma, beta, xhat, out):
    """xhat = (a - mean[d]) * invstd[d]; out = relu(gamma[d] * xhat + beta[d]), NaN kept."""
    N, D = a.shape
    for i in prange(N):
        for d in range(D):
            h = (a[i, d] - mean[d]) * invstd[d]
            xhat[i, d] = h
            y = gamma[d] * h + beta[d]
            out[i, d] = 0 if y <= 0 else y


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
            h = (a[i, d] - m) * r
            xhat[i, d] = h
            y = gamma[d] * h + beta[d]
            out[i, d] = 0 if y <= 0 else y


@kernel(parallel=True)
def relu_column_sums(dout, out, xhat, dbeta, dgamma):
    """With dy = dout where out > 0 (else 0): dbeta[d] = sum of dy, dgamma[d] = sum of dy * xhat."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 2, D))
    for t in prange(chunks):
        s = partial[t, 0]
        q = partial[t, 1]
        for i in range(t * N // chunks, (t + 1) * N // chunks):
            for d in range(D):
                g = np.float64(dout[i, d]) if out[i, d] > 0 else 0.0  # a select, not a branch: it vectorises
                s[d] += g
                q[d] += g * xhat[i, d]
    sum_chunks(partial, 0, dbeta)
    sum_chunks(partial, 1, dgamma)


@kernel(parallel=True)
def batchnorm_relu_da(dout, out, xhat, gamma, invstd, dbeta, dgamma, train, da, db):
    """da = the batchnorm backward of dy = dout * (out > 0); db[d] = sum over rows of da (float64)."""
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
                dy = np.float64(dout[i, d]) if out[i, d] > 0 else 0.0
                v = scale[d] * (dy - xhat[i, d] * dgamma[d] / N) - shift[d] if train else scale[d] * dy
                da[i, d] = v
                acc[d] += v
    sum_chunks(partial, 0, db)


@kernel(parallel=True, fast_sums=True)
def layernorm_relu_da(dout, out, xhat, gamma, invstd, da, db):
    """da = the layernorm backward of dy = dout * (out > 0), per row; db[d] = sum over rows of da (float64)."""
    N, D = dout.shape
    chunks = min(CHUNKS, N)
    partial = np.zeros((chunks, 1, D))
    for t in prange(chunks):
        acc = partial[t, 0]
        for i in range(t * N // chunks, (t + 1) * N // chunks):
            s = 0.0
            q = 0.0
            for d in range(D):
                if out[i, d] > 0:
                    g = np.float64(dout[i, d]) * gamma[d]
                    s += g
                    q += g * xhat[i, d]
            s /= D
            q /= D
            for d in range(D):
                g = np.float64(dout[i, d]) * gamma[d] if out[i, d] > 0 else 0.0
                v = invstd[i] * (g - s - xhat[i, d] * q)
                da[i, d] = v
                acc[d] += v
    sum_chunks(partial, 0, db)
