"""Batch, layer and group normalisation, pure NumPy.

Every norm caches xhat (the normalised input) and invstd = 1 / sqrt(var + eps), with the biased variance
(np.var), so every backward is the same three-term formula over the axes the statistics were taken on:
    dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = dout * gamma.
"""

import numpy as np

__all__ = [
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
]


def _normalise(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    invstd = 1 / np.sqrt(var + eps)
    return (x - mean) * invstd, mean, var, invstd


def _normalise_backward(dxhat, xhat, invstd, axes):
    mean_dxhat = dxhat.mean(axis=axes, keepdims=True)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes, keepdims=True)
    return invstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _batch_statistics_forward(x, gamma, beta, bn_param, axes, shape):
    """Shared by batchnorm (axes (0,), per feature) and spatial batchnorm (axes (0, 2, 3), per channel)."""
    mode = bn_param["mode"]
    eps = float(bn_param.get("eps", 1e-5))
    momentum = float(bn_param.get("momentum", 0.9))
    n_features = gamma.shape[0]
    running_mean = bn_param.get("running_mean", np.zeros(n_features, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(n_features, dtype=x.dtype))
    if mode == "train":
        xhat, mean, var, invstd = _normalise(x, axes, eps)
        mean, var, invstd = mean.reshape(-1), var.reshape(-1), invstd.reshape(-1)
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * var
    elif mode == "test":
        mean = running_mean.astype(x.dtype, copy=True)
        invstd = (1 / np.sqrt(running_var + eps)).astype(x.dtype)
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    else:
        raise ValueError('Invalid forward batchnorm mode "%s"' % mode)
    bn_param["running_mean"] = running_mean.astype(x.dtype, copy=False)
    bn_param["running_var"] = running_var.astype(x.dtype, copy=False)
    out = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return out, (x, xhat, gamma, beta, mean, invstd, eps, mode)


def _cached_xhat(cache, shape):
    """The cache's xhat, or (x - mean) * invstd where it is None (the compiled batchnorm and layernorm do not store
    it; the same float operations give the same values)."""
    x, xhat, mean, invstd = cache[0], cache[1], cache[4], cache[5]
    return xhat if xhat is not None else (x - mean.reshape(shape)) * invstd.reshape(shape)


def _batch_statistics_backward(dout, cache, axes, shape):
    x, _, gamma, beta, mean, invstd, eps, mode = cache
    xhat = _cached_xhat(cache, shape)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dxhat = dout * gamma.reshape(shape)
    if mode == "train":
        dx = _normalise_backward(dxhat, xhat, invstd.reshape(shape), axes)
    else:  # the running statistics are constants
        dx = dxhat * invstd.reshape(shape)
    return dx, dgamma, dbeta


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation over the batch axis.

    Inputs:
    - x: (N, D); gamma, beta: (D,)
    - bn_param: dict with 'mode' ('train' or 'test'), optional 'eps' (1e-5), 'momentum' (0.9),
      'running_mean', 'running_var' (zeros of x.dtype). The updated running statistics are written back
      into bn_param as new arrays: running = momentum * running + (1 - momentum) * batch statistic.

    Returns a tuple of: out (N, D), cache (x, xhat, gamma, beta, mean, invstd, eps, mode).
    """
    return _batch_statistics_forward(x, gamma, beta, bn_param, (0,), (1, -1))


def batchnorm_backward(dout, cache):
    """Inputs: dout (N, D), cache from batchnorm_forward. Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    return _batch_statistics_backward(dout, cache, (0,), (1, -1))


def batchnorm_backward_alt(dout, cache):
    """The simplified closed form, written out for the batch axis; same cache and results as batchnorm_backward."""
    x, _, gamma, beta, mean, invstd, eps, mode = cache
    if mode != "train" or not np.isfinite(gamma).all():  # Inf * (a finite bracket) would not be the NaN of Inf - Inf
        return batchnorm_backward(dout, cache)
    xhat = _cached_xhat(cache, (1, -1))
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = (gamma * invstd / N) * (N * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation per channel over (N, H, W).

    Inputs: x (N, C, H, W); gamma, beta (C,); bn_param as for batchnorm_forward (running statistics (C,)).
    Returns a tuple of: out (N, C, H, W), cache (x, xhat, gamma, beta, mean, invstd, eps, mode).
    """
    return _batch_statistics_forward(x, gamma, beta, bn_param, (0, 2, 3), (1, -1, 1, 1))


def spatial_batchnorm_backward(dout, cache):
    """Inputs: dout (N, C, H, W), cache. Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    return _batch_statistics_backward(dout, cache, (0, 2, 3), (1, -1, 1, 1))


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer normalisation: statistics per sample over its D features, the same in train and test.

    Inputs: x (N, D); gamma, beta (D,); ln_param: optional 'eps' (1e-5), other keys ignored.
    Returns a tuple of: out (N, D), cache (x, xhat, gamma, beta, mean, invstd, eps); mean, invstd (N,).
    """
    eps = ln_param.get("eps", 1e-5)
    xhat, mean, _, invstd = _normalise(x, (1,), eps)
    out = gamma * xhat + beta
    return out, (x, xhat, gamma, beta, mean.reshape(-1), invstd.reshape(-1), eps)


def layernorm_backward(dout, cache):
    """Inputs: dout (N, D), cache. Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    x, _, gamma, beta, mean, invstd, eps = cache
    xhat = _cached_xhat(cache, (-1, 1))
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = _normalise_backward(dout * gamma, xhat, invstd[:, None], (1,))
    return dx, dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group normalisation: statistics per (sample, group of C/G contiguous channels) over (C/G, H, W).

    Inputs: x (N, C, H, W); gamma, beta of shape (C,) or (1, C, 1, 1); G groups dividing C;
    gn_param: optional 'eps' (1e-5).
    Returns a tuple of: out (N, C, H, W), cache (x, xhat, gamma, beta, mean, invstd, eps, G); mean, invstd (N, G).
    """
    eps = gn_param.get("eps", 1e-5)
    N, C, H, W = x.shape
    grouped = x.reshape(N, G, -1)
    xhat, mean, _, invstd = _normalise(grouped, (2,), eps)
    xhat = xhat.reshape(x.shape)
    out = gamma.reshape(1, C, 1, 1) * xhat + beta.reshape(1, C, 1, 1)
    return out, (x, xhat, gamma, beta, mean.reshape(N, G), invstd.reshape(N, G), eps, G)


def spatial_groupnorm_backward(dout, cache):
    """Inputs: dout (N, C, H, W), cache. Returns dx (N, C, H, W), dgamma and dbeta in gamma's shape."""
    x, xhat, gamma, beta, mean, invstd, eps, G = cache
    N, C, H, W = dout.shape
    if xhat is None:  # the compiled groupnorm does not store it: the same float operations give the same values
        xhat = ((x.reshape(N, G, -1) - mean[:, :, None]) * invstd[:, :, None]).reshape(x.shape)
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    dxhat = (dout * gamma.reshape(1, C, 1, 1)).reshape(N, G, -1)
    dx = _normalise_backward(dxhat, xhat.reshape(N, G, -1), invstd[:, :, None], (2,)).reshape(dout.shape)
    return dx, dgamma.reshape(gamma.shape), dbeta.reshape(beta.shape)
