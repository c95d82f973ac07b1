"""The cs231n.layer_utils API: sandwich layers, plus affine_bn_relu and affine_ln_relu.

affine_bn_relu and affine_ln_relu run as one fused layer on the compiled path, and conv_relu_pool's backward
unpools and applies the ReLU gate in one pass; the others compose the public layers. Every sandwich validates
its own arguments and dout first, so an error in them names the sandwich; a part of a cache that does not fit
its layer is reported by that layer. Backward of a sandwich with a norm returns
(dx, dw, db, dgamma, dbeta).
"""

from . import _checks as _check
from ._dispatch import run as _run
from .fast_layers import *  # noqa: F401,F403
from .fast_layers import _pool_backward_args, conv_backward_fast, conv_forward_fast, max_pool_forward_fast
from .layers import *  # noqa: F401,F403
from .layers import (
    _affine_shapes,
    _bn_param,
    _conv_inputs,
    _eps_param,
    _norm_cache,
    _per_feature,
    _per_row,
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


def _cache(fn, cache, length, forward):
    return _check.cache_tuple(fn, cache, length, forward)


def affine_relu_forward(x, w, b):
    """affine -> ReLU. Returns out (N, M), cache (fc_cache, relu_cache)."""
    x, w, b = _affine_inputs("affine_relu_forward", x, w, b)
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward of affine_relu_forward. Returns dx, dw, db."""
    fn = "affine_relu_backward"
    fc_cache, relu_cache = _cache(fn, cache, 2, "affine_relu_forward")
    return affine_backward(relu_backward(_relu_dout(fn, dout, relu_cache, 2), relu_cache), fc_cache)


def _relu_dout(fn, dout, relu_cache, ndim):
    """dout checked against the sandwich's ReLU cache (its input), so that a wrong dout names the sandwich."""
    relu_cache = _check.array(fn, "cache (ReLU part)", relu_cache, ndim=ndim)
    return _check.dout_like(fn, dout, relu_cache.shape, relu_cache.dtype)


def _gamma_beta(fn, x, gamma, beta, w):
    """gamma and beta of x's dtype, one per output unit of the layer before the norm (w.shape[0] for a conv
    filter bank (F, C, HH, WW), w.shape[1] for an affine weight (D, M))."""
    n = w.shape[0] if w.ndim == 4 else w.shape[1]
    _, gamma, beta = _check.floats(fn, cast_integers=True, x=x, gamma=gamma, beta=beta)
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v.shape != (n,):
            _check.fail(fn, f"{name} must have shape ({n},) to match w {w.shape}, got {v.shape}")
    return gamma, beta


def _affine_inputs(fn, x, w, b):
    x, w, b = _check.floats(fn, cast_integers=True, x=x, w=_check.of_ndim(w, 2), b=_check.of_ndim(b, 1))
    _check.batch(fn, "x", x)
    _affine_shapes(fn, "", x, w, b)
    return x, w, b


def _affine_norm_inputs(fn, x, w, b, gamma, beta):
    x, w, b = _affine_inputs(fn, x, w, b)
    gamma, beta = _gamma_beta(fn, x, gamma, beta, w)
    return x, w, b, gamma, beta


def _affine_norm_cache(fn, cache, forward, norm_length, statistics):
    """The three parts of a fused layer's cache, each checked as its own layer's backward checks it, and against
    each other: the affine output (N, M) is the norm's input, of one dtype throughout."""
    fc_cache, norm_cache, relu_cache = _cache(fn, cache, 3, forward)
    norm_cache = _norm_cache(fn, norm_cache, norm_length, forward + " (its norm cache)", 2, statistics,
                             xhat_optional=True)
    relu_cache = _check.array(fn, "cache (ReLU part)", relu_cache, ndim=2)
    if norm_cache[0].shape != relu_cache.shape:
        _check.fail(fn, f"cache is not from {forward}: its norm input {norm_cache[0].shape} and output "
                        f"{relu_cache.shape} differ", TypeError)
    x, w, b = _check.cache_tuple(fn, fc_cache, 3, forward + " (its affine cache)")
    x, w, b = _check.floats(fn, cast_integers=True, **{"cache x": x, "cache w": _check.of_ndim(w, 2),
                                                       "cache b": _check.of_ndim(b, 1)})
    _check.same_dtype(fn, {"cache w": w, "cache (norm part)": norm_cache[0]})
    _affine_shapes(fn, "cache ", x, w, b)
    if (x.shape[0], w.shape[1]) != norm_cache[0].shape:
        _check.fail(fn, f"cache is not from {forward}: its affine part maps x {x.shape} through w {w.shape}, "
                        f"its norm part takes {norm_cache[0].shape}")
    return (x, w, b), norm_cache, relu_cache


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """affine -> batchnorm -> ReLU, fused on the compiled path.

    Inputs: x (N, d_1, ..., d_k), w (D, M), b (M,), gamma and beta (M,), bn_param as for batchnorm_forward.
    Returns a tuple of: out (N, M), cache (fc_cache, bn_cache, relu_cache).
    """
    fn = "affine_bn_relu_forward"
    x, w, b, gamma, beta = _affine_norm_inputs(fn, x, w, b, gamma, beta)
    return _run(fn, x, w, b, gamma, beta, _bn_param(fn, bn_param, x, w.shape[1], f"w {w.shape}"))


def affine_bn_relu_backward(dout, cache):
    """Backward of affine_bn_relu_forward. Returns dx, dw, db, dgamma, dbeta."""
    fn = "affine_bn_relu_backward"
    cache = _affine_norm_cache(fn, cache, "affine_bn_relu_forward", 8, _per_feature)
    dout = _check.dout_like(fn, dout, cache[2].shape, cache[2].dtype)
    return _run(fn, dout, cache)


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """affine -> layernorm -> ReLU, fused on the compiled path.

    Inputs: x (N, d_1, ..., d_k), w (D, M), b (M,), gamma and beta (M,), ln_param as for layernorm_forward.
    Returns a tuple of: out (N, M), cache (fc_cache, ln_cache, relu_cache).
    """
    fn = "affine_ln_relu_forward"
    x, w, b, gamma, beta = _affine_norm_inputs(fn, x, w, b, gamma, beta)
    if w.shape[1] == 0:  # NaN statistics, as layernorm_forward's D = 0
        _check.fail(fn, f"w of shape {w.shape} has no outputs (M = 0) to take per-sample statistics over")
    return _run(fn, x, w, b, gamma, beta, _eps_param(fn, "ln_param", ln_param))


def affine_ln_relu_backward(dout, cache):
    """Backward of affine_ln_relu_forward. Returns dx, dw, db, dgamma, dbeta."""
    fn = "affine_ln_relu_backward"
    cache = _affine_norm_cache(fn, cache, "affine_ln_relu_forward", 7, _per_row)
    dout = _check.dout_like(fn, dout, cache[2].shape, cache[2].dtype)
    return _run(fn, dout, cache)


def conv_relu_forward(x, w, b, conv_param):
    """conv (fast) -> ReLU. Returns out, cache (conv_cache, relu_cache)."""
    x, w, b, conv_param = _conv_inputs("conv_relu_forward", x, w, b, conv_param)
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Backward of conv_relu_forward. Returns dx, dw, db."""
    fn = "conv_relu_backward"
    conv_cache, relu_cache = _cache(fn, cache, 2, "conv_relu_forward")
    return conv_backward_fast(relu_backward(_relu_dout(fn, dout, relu_cache, 4), relu_cache), conv_cache)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """conv (fast) -> spatial batchnorm -> ReLU. Returns out, cache (conv_cache, bn_cache, relu_cache)."""
    fn = "conv_bn_relu_forward"
    x, w, b, conv_param = _conv_inputs(fn, x, w, b, conv_param)
    gamma, beta = _gamma_beta(fn, x, gamma, beta, w)
    _bn_param(fn, bn_param, x, w.shape[0], f"w {w.shape}")
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    y, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(y)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Backward of conv_bn_relu_forward. Returns dx, dw, db, dgamma, dbeta."""
    fn = "conv_bn_relu_backward"
    conv_cache, bn_cache, relu_cache = _cache(fn, cache, 3, "conv_bn_relu_forward")
    dout = _relu_dout(fn, dout, relu_cache, 4)
    dy, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = conv_backward_fast(dy, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """conv (fast) -> ReLU -> max pool (fast). Returns out, cache (conv_cache, relu_cache, pool_cache)."""
    fn = "conv_relu_pool_forward"
    x, w, b, conv_param = _conv_inputs(fn, x, w, b, conv_param)
    _, _, H_out, W_out = _check.conv_param(fn, conv_param, x.shape, w.shape)
    _check.pool_param(fn, pool_param, (x.shape[0], w.shape[0], H_out, W_out), name="the conv output")
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache):
    """Backward of conv_relu_pool_forward. Returns dx, dw, db."""
    fn = "conv_relu_pool_backward"
    conv_cache, relu_cache, pool_cache = _cache(fn, cache, 3, "conv_relu_pool_forward")
    dout, pool_cache = _pool_backward_args(fn, dout, pool_cache)
    pooled = pool_cache[1][0]
    relu_cache = _check.array(fn, "cache (ReLU part)", relu_cache, ndim=4)
    _check.shape(fn, "cache (ReLU part)", relu_cache, pooled.shape)
    _check.same_dtype(fn, {"cache (ReLU part)": relu_cache, "cache (pool part)": pooled})
    return conv_backward_fast(_run("max_pool_relu_backward", dout, pool_cache, relu_cache), conv_cache)
