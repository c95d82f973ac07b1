"""The fused sandwiches on the compiled path: affine-batchnorm-ReLU and affine-layernorm-ReLU, with the GEMMs in
BLAS and the rest in fastnn.kernels.fused. Same signatures and caches as fastnn.reference.sandwich: the ReLU part
of the cache holds the layer's output (same sign as the ReLU input, so either path's backward accepts it); the
backward here recomputes the ReLU mask from the norm's xhat, gamma and beta instead of reading it. Neither
sandwich stores xhat (recomputed from a, mean and invstd, bit for bit), as the compiled batchnorm and layernorm.
conv-ReLU-pool's backward unpools and gates by the ReLU in one pass (max_pool_relu_backward) where the pool is
2x2 with stride 2. The other sandwiches compose the public layers (fastnn.layer_utils) and need no entry here."""

import numpy as np

from .._options import current, input_gradient_wanted
from ..kernels import fused as K
from ..kernels import pool as P
from ..kernels._jit import variant
from ._memory import recycled
from .activations import relu_backward
from .norm import batch_statistics, standardised, update_running_statistics
from .pool import max_pool_backward_fast, tiles_two_by_two

__all__ = [
    "affine_bn_relu_forward", "affine_bn_relu_backward", "affine_ln_relu_forward", "affine_ln_relu_backward",
    "max_pool_relu_backward",
]


def _k(kernel_fn):
    return variant(kernel_fn, current().parallel)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """See fastnn.reference.sandwich.affine_bn_relu_forward. Returns out, cache (fc_cache, bn_cache, relu_cache);
    the bn_cache holds no xhat (None), as the compiled batchnorm's."""
    a = x.reshape(x.shape[0], -1) @ w
    D = a.shape[1]
    out = recycled(a.shape, a.dtype)
    if bn_param["mode"] == "train":
        eps, mode = float(bn_param.get("eps", 1e-5)), "train"
        mean64, var64 = np.empty(D), np.empty(D)
        mean, invstd = np.empty(D, dtype=a.dtype), np.empty(D, dtype=a.dtype)
        _k(K.bias_batchnorm_relu_train_forward)(a, b, gamma, beta, eps, mean64, var64, mean, invstd, out)
        update_running_statistics(bn_param, mean, var64.astype(a.dtype), a.dtype)
    else:
        _k(K.add_bias)(a, b)
        mean, invstd, eps, mode = batch_statistics(a, bn_param, None, D)
        _k(K.normalise_relu)(a, mean, invstd, gamma, beta, out)
    return out, ((x, w, b), (a, None, gamma, beta, mean, invstd, eps, mode), out)


def _affine_backward(da, db64, fc_cache):
    x, w, b = fc_cache
    dx = (da @ w.T).reshape(x.shape) if input_gradient_wanted() else None
    dw = x.reshape(x.shape[0], -1).T @ da
    return dx, dw, db64.astype(da.dtype)


def affine_bn_relu_backward(dout, cache):
    """See fastnn.reference.sandwich.affine_bn_relu_backward. Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, (a, xhat, gamma, beta, mean, invstd, eps, mode), _ = cache
    D = dout.shape[1]
    dbeta, dgamma, da, db = np.empty(D), np.empty(D), recycled(dout.shape, dout.dtype), np.empty(D)
    source = standardised(a, xhat, mean, invstd)
    _k(K.relu_column_sums)(dout, *source, gamma, beta, dbeta, dgamma)
    _k(K.batchnorm_relu_da)(dout, *source, gamma, beta, invstd, mode == "train", dbeta, dgamma, da, db)
    return _affine_backward(da, db, fc_cache) + (dgamma.astype(dout.dtype), dbeta.astype(dout.dtype))


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """See fastnn.reference.sandwich.affine_ln_relu_forward. Returns out, cache (fc_cache, ln_cache, relu_cache);
    the ln_cache holds no xhat (None), as the compiled layernorm's."""
    eps = ln_param.get("eps", 1e-5)
    a = x.reshape(x.shape[0], -1) @ w
    N = a.shape[0]
    out = recycled(a.shape, a.dtype)
    mean, invstd = np.empty(N, dtype=a.dtype), np.empty(N, dtype=a.dtype)
    _k(K.bias_row_normalise_relu)(a, b, gamma, beta, eps, out, mean, invstd)
    return out, ((x, w, b), (a, None, gamma, beta, mean, invstd, eps), out)


def affine_ln_relu_backward(dout, cache):
    """See fastnn.reference.sandwich.affine_ln_relu_backward. Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, (a, xhat, gamma, beta, mean, invstd, eps), _ = cache
    D = dout.shape[1]
    dbeta, dgamma, da, db = np.empty(D), np.empty(D), recycled(dout.shape, dout.dtype), np.empty(D)
    _k(K.layernorm_relu_backward)(dout, *standardised(a, xhat, mean, invstd), gamma, beta, invstd, da, db,
                                  dbeta, dgamma)
    return _affine_backward(da, db, fc_cache) + (dgamma.astype(dout.dtype), dbeta.astype(dout.dtype))


def max_pool_relu_backward(dout, pool_cache, relu_cache):
    """See fastnn.reference.sandwich.max_pool_relu_backward: one pass for a 2x2 stride-2 pool, no unpooled array
    in between (0.67-0.91x the time of the two backwards in float32; 0.3x in float64, where the two backwards'
    arrays page-faulted; (64, 32, 32, 32), measured here)."""
    _, (x, pool_param, argmax) = pool_cache
    if not tiles_two_by_two(x.shape, pool_param):
        return relu_backward(max_pool_backward_fast(dout, pool_cache), relu_cache)
    da = recycled(x.shape, x.dtype)
    _k(P.max_pool_relu_backward_2x2)(dout, argmax, relu_cache, da)
    return da
