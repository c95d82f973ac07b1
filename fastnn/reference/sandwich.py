"""Sandwich layers composed of the reference layers. The compiled path may fuse them; caches keep this shape."""

from .activations import relu_backward, relu_forward
from .conv import conv_backward_fast, conv_forward_fast
from .linear import affine_backward, affine_forward
from .norm import (
    _cached_xhat,
    batchnorm_backward,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from .pool import max_pool_backward_fast, max_pool_forward_fast

__all__ = [
    "affine_relu_forward", "affine_relu_backward",
    "affine_bn_relu_forward", "affine_bn_relu_backward",
    "affine_ln_relu_forward", "affine_ln_relu_backward",
    "conv_relu_forward", "conv_relu_backward",
    "conv_bn_relu_forward", "conv_bn_relu_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward", "max_pool_relu_backward",
]


def affine_relu_forward(x, w, b):
    """affine -> relu. Returns out, cache (fc_cache, relu_cache)."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Returns dx, dw, db."""
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """affine -> batchnorm -> relu. Returns out, cache (fc_cache, bn_cache, relu_cache)."""
    a, fc_cache = affine_forward(x, w, b)
    y, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(y)
    return out, (fc_cache, bn_cache, relu_cache)


def _relu_input(norm_cache, relu_cache, shape):
    """The ReLU's input for its backward: relu_cache, or, from a compiled norm cache (no xhat), gamma * xhat + beta
    recomputed with the forward's own float operations. The compiled fused layers cache their returned `out`
    there, which the caller may change in place; the compiled backward never reads it."""
    if norm_cache[1] is not None:
        return relu_cache
    gamma, beta = norm_cache[2], norm_cache[3]
    return gamma * _cached_xhat(norm_cache, shape) + beta


def affine_bn_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, bn_cache, relu_cache = cache
    dy, dgamma, dbeta = batchnorm_backward(relu_backward(dout, _relu_input(bn_cache, relu_cache, (1, -1))),
                                           bn_cache)
    dx, dw, db = affine_backward(dy, fc_cache)
    return dx, dw, db, dgamma, dbeta


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """affine -> layernorm -> relu. Returns out, cache (fc_cache, ln_cache, relu_cache)."""
    a, fc_cache = affine_forward(x, w, b)
    y, ln_cache = layernorm_forward(a, gamma, beta, ln_param)
    out, relu_cache = relu_forward(y)
    return out, (fc_cache, ln_cache, relu_cache)


def affine_ln_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, ln_cache, relu_cache = cache
    dy, dgamma, dbeta = layernorm_backward(relu_backward(dout, _relu_input(ln_cache, relu_cache, (-1, 1))),
                                           ln_cache)
    dx, dw, db = affine_backward(dy, fc_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x, w, b, conv_param):
    """conv -> relu. Returns out, cache (conv_cache, relu_cache)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Returns dx, dw, db."""
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """conv -> spatial batchnorm -> relu. Returns out, cache (conv_cache, bn_cache, relu_cache)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    y, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(y)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    conv_cache, bn_cache, relu_cache = cache
    dy, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = conv_backward_fast(dy, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """conv -> relu -> max pool. Returns out, cache (conv_cache, relu_cache, pool_cache)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache):
    """Returns dx, dw, db."""
    conv_cache, relu_cache, pool_cache = cache
    return conv_backward_fast(max_pool_relu_backward(dout, pool_cache, relu_cache), conv_cache)


def max_pool_relu_backward(dout, pool_cache, relu_cache):
    """The gradient of the ReLU's input in relu -> max pool (fast): dx = unpooled dout where the input > 0."""
    return relu_backward(max_pool_backward_fast(dout, pool_cache), relu_cache)
