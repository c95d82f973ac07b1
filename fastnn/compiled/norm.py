"""Batch, layer and group normalisation on the compiled path: same names, signatures, caches and running-stat
updates as fastnn.reference.norm."""

import numpy as np

from .._options import current
from ..kernels import norm as K
from ..kernels._jit import variant
from ._memory import recycled

__all__ = [
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
]


def _k(kernel_fn):
    return variant(kernel_fn, current().parallel)


def batch_statistics(x2, bn_param, moments_kernel, n_features):
    """(mean, invstd, eps, mode) in x's dtype, updating bn_param's running statistics as the reference does.

    x2 is the input laid out for `moments_kernel` ((N, C, P) for channel_moments); test mode reads no moments.
    """
    mode = bn_param["mode"]
    eps = float(bn_param.get("eps", 1e-5))
    dtype = x2.dtype
    if mode == "train":
        mean64, var64 = np.empty(n_features), np.empty(n_features)
        _k(moments_kernel)(x2, mean64, var64)
        mean = mean64.astype(dtype)
        invstd = (1 / np.sqrt(var64 + eps)).astype(dtype)
        update_running_statistics(bn_param, mean, var64.astype(dtype), dtype)
    elif mode == "test":
        mean, invstd = running_statistics(bn_param, n_features, dtype)
    else:
        raise ValueError('Invalid forward batchnorm mode "%s"' % mode)
    return mean, invstd, eps, mode


def update_running_statistics(bn_param, mean, var, dtype):
    """running = momentum * running + (1 - momentum) * batch, written back into bn_param in `dtype`."""
    momentum = float(bn_param.get("momentum", 0.9))
    n_features = mean.shape[0]
    running_mean = bn_param.get("running_mean", np.zeros(n_features, dtype=dtype))
    running_var = bn_param.get("running_var", np.zeros(n_features, dtype=dtype))
    bn_param["running_mean"] = (momentum * running_mean + (1 - momentum) * mean).astype(dtype, copy=False)
    bn_param["running_var"] = (momentum * running_var + (1 - momentum) * var).astype(dtype, copy=False)


def running_statistics(bn_param, n_features, dtype):
    """(mean, invstd) in `dtype` from bn_param's running statistics (zeros and eps alone where absent); writes the
    running statistics back in `dtype`, as the reference does."""
    eps = float(bn_param.get("eps", 1e-5))
    running_mean = bn_param.get("running_mean", np.zeros(n_features, dtype=dtype))
    running_var = bn_param.get("running_var", np.zeros(n_features, dtype=dtype))
    mean = running_mean.astype(dtype, copy=True)
    invstd = (1 / np.sqrt(running_var + eps)).astype(dtype)
    bn_param["running_mean"] = running_mean.astype(dtype, copy=False)
    bn_param["running_var"] = running_var.astype(dtype, copy=False)
    return mean, invstd


def batchnorm_forward(x, gamma, beta, bn_param):
    """See fastnn.reference.norm.batchnorm_forward. Returns out, cache (x, None, gamma, beta, mean, invstd, eps,
    mode): xhat is not stored, the backward recomputes it from x, mean and invstd."""
    mode, eps, D = bn_param["mode"], float(bn_param.get("eps", 1e-5)), x.shape[1]
    out = recycled(x.shape, x.dtype)
    if mode == "train":
        mean64, var64 = np.empty(D), np.empty(D)
        mean, invstd = np.empty(D, dtype=x.dtype), np.empty(D, dtype=x.dtype)
        _k(K.batchnorm_train_forward)(x, gamma, beta, eps, mean64, var64, mean, invstd, out)
        update_running_statistics(bn_param, mean, var64.astype(x.dtype), x.dtype)
    else:
        mean, invstd, eps, mode = batch_statistics(x, bn_param, None, D)
        _k(K.normalise_rows)(x, mean, invstd, gamma, beta, out)
    return out, (x, None, gamma, beta, mean, invstd, eps, mode)


def standardised(x, xhat, mean, invstd):
    """(source, shift, scale) from which kernels recompute xhat = (source - shift) * scale: x with the cached
    statistics where xhat was not stored, else the stored xhat (a reference-path cache) with 0 and 1 in the
    statistics' shape (per feature for batchnorm, per row for layernorm, per sample and group for groupnorm)."""
    if xhat is None:
        return x, mean, invstd
    return xhat, np.zeros(mean.shape, dtype=xhat.dtype), np.ones(mean.shape, dtype=xhat.dtype)


def batchnorm_backward(dout, cache):
    """See fastnn.reference.norm.batchnorm_backward. Returns dx, dgamma, dbeta."""
    x, xhat, gamma, beta, mean, invstd, eps, mode = cache
    source = standardised(x, xhat, mean, invstd)
    dbeta, dgamma, dx = np.empty(x.shape[1]), np.empty(x.shape[1]), recycled(dout.shape, dout.dtype)
    _k(K.column_sums)(dout, *source, dbeta, dgamma)
    _k(K.batchnorm_dx)(dout, *source, gamma, invstd, mode == "train", dbeta, dgamma, dx)
    return dx, dgamma.astype(dout.dtype), dbeta.astype(dout.dtype)


batchnorm_backward_alt = batchnorm_backward  # the kernel already evaluates the simplified closed form


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """See fastnn.reference.norm.spatial_batchnorm_forward."""
    x3 = x.reshape(x.shape[0], x.shape[1], -1)
    mean, invstd, eps, mode = batch_statistics(x3, bn_param, K.channel_moments, x.shape[1])
    xhat, out = recycled(x.shape, x.dtype), recycled(x.shape, x.dtype)
    _k(K.channel_normalise)(x3, mean, invstd, gamma, beta, xhat.reshape(x3.shape), out.reshape(x3.shape))
    return out, (x, xhat, gamma, beta, mean, invstd, eps, mode)


def spatial_batchnorm_backward(dout, cache):
    """See fastnn.reference.norm.spatial_batchnorm_backward. Returns dx, dgamma (C,), dbeta (C,)."""
    x, xhat, gamma, beta, mean, invstd, eps, mode = cache
    shape3 = (x.shape[0], x.shape[1], -1)
    d3, h3 = dout.reshape(shape3), xhat.reshape(shape3)
    dbeta, dgamma = np.empty(x.shape[1]), np.empty(x.shape[1])
    _k(K.channel_sums)(d3, h3, dbeta, dgamma)
    dx = recycled(dout.shape, dout.dtype)
    _k(K.channel_dx)(d3, h3, gamma, invstd, dbeta, dgamma, mode == "train", dx.reshape(d3.shape))
    return dx, dgamma.astype(dout.dtype), dbeta.astype(dout.dtype)


def layernorm_forward(x, gamma, beta, ln_param):
    """See fastnn.reference.norm.layernorm_forward. Returns out, cache (x, None, gamma, beta, mean, invstd, eps):
    xhat is not stored, the backward recomputes it from x, mean and invstd (as the compiled batchnorm)."""
    eps = ln_param.get("eps", 1e-5)
    out = recycled(x.shape, x.dtype)
    mean, invstd = np.empty(x.shape[0], dtype=x.dtype), np.empty(x.shape[0], dtype=x.dtype)
    _k(K.row_normalise)(x, gamma, beta, eps, out, mean, invstd)
    return out, (x, None, gamma, beta, mean, invstd, eps)


def layernorm_backward(dout, cache):
    """See fastnn.reference.norm.layernorm_backward. Returns dx, dgamma, dbeta."""
    x, xhat, gamma, beta, mean, invstd, eps = cache
    dbeta, dgamma, dx = np.empty(x.shape[1]), np.empty(x.shape[1]), recycled(dout.shape, dout.dtype)
    _k(K.row_normalise_backward)(dout, *standardised(x, xhat, mean, invstd), gamma, invstd, dx, dbeta, dgamma)
    return dx, dgamma.astype(dout.dtype), dbeta.astype(dout.dtype)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """See fastnn.reference.norm.spatial_groupnorm_forward. Returns out, cache (x, None, gamma, beta, mean, invstd,
    eps, G): xhat is not stored, as layernorm's."""
    eps = gn_param.get("eps", 1e-5)
    N, C = x.shape[:2]
    x3 = x.reshape(N, C, -1)
    out = recycled(x.shape, x.dtype)
    mean, invstd = np.empty((N, G), dtype=x.dtype), np.empty((N, G), dtype=x.dtype)
    _k(K.group_normalise)(x3, G, gamma.reshape(C), beta.reshape(C), eps, out.reshape(x3.shape), mean, invstd)
    return out, (x, None, gamma, beta, mean, invstd, eps, G)


def spatial_groupnorm_backward(dout, cache):
    """See fastnn.reference.norm.spatial_groupnorm_backward. Returns dx, dgamma and dbeta in gamma's shape."""
    x, xhat, gamma, beta, mean, invstd, eps, G = cache
    N, C = x.shape[:2]
    source, shift, scale = standardised(x, xhat, mean, invstd)
    dbeta, dgamma, dx = np.empty(C), np.empty(C), recycled(dout.shape, dout.dtype)
    _k(K.group_backward)(dout.reshape(N, C, -1), source.reshape(N, C, -1), G, shift, scale, gamma.reshape(C), invstd,
                         dx.reshape(N, C, -1), dbeta, dgamma)
    return dx, dgamma.astype(dout.dtype).reshape(gamma.shape), dbeta.astype(dout.dtype).reshape(beta.shape)
