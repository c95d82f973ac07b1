"""The cs231n.layers API: `from fastnn.layers import *` replaces `from cs231n.layers import *`.

Every function checks its arguments (fastnn._checks), then runs on the path fastnn.options().backend selects:
the compiled kernels or the NumPy reference (fastnn._dispatch). Both build the same cache.
The fast_layers and layer_utils names are bound here too, so this one namespace holds every layer.
"""

from math import prod as _prod  # underscored: star imports of this module stay as cs231n's

import numpy as np  # noqa: F401  (cs231n.layers exports np through star imports)

from . import _checks as _check
from ._dispatch import run as _run


def affine_forward(x, w, b):
    """Affine (fully connected) layer forward.

    Inputs:
    - x: (N, d_1, ..., d_k), flattened to (N, D) with D = d_1 * ... * d_k
    - w: (D, M) weights
    - b: (M,) biases

    Returns a tuple of:
    - out: (N, M)
    - cache: (x, w, b)
    """
    fn = "affine_forward"
    x, w, b = _check.floats(fn, cast_integers=True, x=x, w=_check.of_ndim(w, 2), b=_check.of_ndim(b, 1))
    _check.batch(fn, "x", x)
    _affine_shapes(fn, "", x, w, b)
    return _run(fn, x, w, b)


def affine_backward(dout, cache):
    """Affine layer backward.

    Inputs: dout (N, M) upstream gradient; cache (x, w, b) from affine_forward.
    Returns dx (shape of x), dw (D, M), db (M,).
    """
    fn = "affine_backward"
    x, w, b = _check.cache_tuple(fn, cache, 3, "affine_forward")
    x, w, b = _check.floats(fn, cast_integers=True, x=x, w=_check.of_ndim(w, 2), b=_check.of_ndim(b, 1))
    _check.batch(fn, "cache x", x)
    _affine_shapes(fn, "cache ", x, w, b)
    dout = _check.dout_like(fn, dout, (x.shape[0], w.shape[1]), x.dtype)
    return _run(fn, dout, (x, w, b))


def _affine_shapes(fn, where, x, w, b):
    """x (N, d_1, ..., d_k) flattens to w's D rows and b has w's M entries; `where` prefixes the names."""
    D = _prod(x.shape[1:])
    if w.shape[0] != D:
        _check.fail(fn, f"{where}x of shape {x.shape} flattens to {D} features but {where}w has shape {w.shape}")
    if b.shape != (w.shape[1],):
        _check.fail(fn, f"{where}b must have shape ({w.shape[1]},) to match {where}w {w.shape}, got {b.shape}")


def relu_forward(x):
    """ReLU forward: out = max(0, x) (NaN propagates). Returns out (shape of x), cache x."""
    fn = "relu_forward"
    x = _check.array(fn, "x", x, min_ndim=1)
    return _run(fn, x)


def relu_backward(dout, cache):
    """ReLU backward: dx = dout where x > 0, else 0. cache is x from relu_forward."""
    fn = "relu_backward"
    x = _check.array(fn, "cache (the ReLU input x)", cache, min_ndim=1)
    dout = _check.dout_like(fn, dout, x.shape, x.dtype)
    return _run(fn, dout, x)


def _elementwise_backward_args(fn, dout, saved, name):
    saved = _check.array(fn, name, saved, min_ndim=1)
    dout = _check.dout_like(fn, dout, saved.shape, saved.dtype)
    return dout, saved


def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU forward: out = x where x > 0, else alpha * x. Returns out, cache (x, alpha)."""
    fn = "leaky_relu_forward"
    x = _check.array(fn, "x", x, min_ndim=1)
    alpha = _check.number(fn, "alpha", alpha, low=0.0)
    return _run(fn, x, alpha)


def leaky_relu_backward(dout, cache):
    """Leaky ReLU backward: dx = dout where x > 0, else alpha * dout."""
    fn = "leaky_relu_backward"
    x, alpha = _check.cache_tuple(fn, cache, 2, "leaky_relu_forward")
    dout, x = _elementwise_backward_args(fn, dout, x, "cache x")
    return _run(fn, dout, (x, _check.number(fn, "cache alpha", alpha, low=0.0)))


def sigmoid_forward(x):
    """Sigmoid forward: out = 1 / (1 + exp(-x)). Returns out, cache out."""
    fn = "sigmoid_forward"
    return _run(fn, _check.array(fn, "x", x, min_ndim=1))


def sigmoid_backward(dout, cache):
    """Sigmoid backward: dx = dout * out * (1 - out); cache is the forward output."""
    fn = "sigmoid_backward"
    dout, out = _elementwise_backward_args(fn, dout, cache, "cache (the sigmoid output)")
    return _run(fn, dout, out)


def tanh_forward(x):
    """Tanh forward. Returns out, cache out."""
    fn = "tanh_forward"
    return _run(fn, _check.array(fn, "x", x, min_ndim=1))


def tanh_backward(dout, cache):
    """Tanh backward: dx = dout * (1 - out**2); cache is the forward output."""
    fn = "tanh_backward"
    dout, out = _elementwise_backward_args(fn, dout, cache, "cache (the tanh output)")
    return _run(fn, dout, out)


# ------------------------------------------------------------------------------------------------ normalisation


def _norm_inputs(fn, x, gamma, beta, ndim, channels):
    """x of `ndim` dims with a non-empty batch; gamma and beta of shape (channels(x),)."""
    x, gamma, beta = _check.floats(fn, cast_integers=True, x=_check.of_ndim(x, ndim), gamma=gamma, beta=beta)
    _check.batch(fn, "x", x)
    if ndim == 4 and x.shape[1] == 0:
        _check.fail(fn, f"x needs at least one channel, got shape {x.shape}")
    n = channels(x)
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v.shape != (n,):
            _check.fail(fn, f"{name} must have shape ({n},) to match x {x.shape}, got {v.shape}")
    return x, gamma, beta


def _bn_param(fn, bn_param, x, n, width_from=None):
    """bn_param checked; its running statistics must have shape (n,), the width of x (or of what width_from
    names, a sandwich's w)."""
    width_from = width_from or f"x {x.shape}"
    _check.param_dict(fn, "bn_param", bn_param, required=("mode",))
    mode = _check.mode_value(fn, "bn_param", bn_param["mode"])
    if mode not in ("train", "test"):
        _check.fail(fn, f'Invalid forward batchnorm mode "{mode}": bn_param[\'mode\'] must be "train" or "test"')
    _check.number(fn, "bn_param['eps']", bn_param.get("eps", 1e-5), low=0.0, low_open=True)
    _check.number(fn, "bn_param['momentum']", bn_param.get("momentum", 0.9), low=0.0, high=1.0)
    for key in ("running_mean", "running_var"):
        if key in bn_param:
            if isinstance(bn_param[key], np.ma.MaskedArray):  # which the kernels cannot take, nor the reference mean
                _check.fail(fn, f"bn_param[{key!r}] must be a plain numpy.ndarray, got a masked array", TypeError)
            value = _check.array(fn, f"bn_param[{key!r}]", bn_param[key])
            if value.shape != (n,):
                _check.fail(fn, f"bn_param[{key!r}] must have shape ({n},) to match {width_from}, got {value.shape}")
            if value.dtype != x.dtype:
                _check.fail(fn, f"bn_param[{key!r}] has dtype {value.dtype} but x has {x.dtype}", TypeError)
    return bn_param


def _eps_param(fn, name, param):
    """ln_param / gn_param with its eps as the Python float the check returned (see _check.plain). bn_param cannot
    be copied (the layer writes its running statistics into it), so the batchnorm paths read eps with float()."""
    _check.param_dict(fn, name, param)
    eps = _check.number(fn, f"{name}['eps']", param.get("eps", 1e-5), low=0.0, low_open=True)
    return _check.plain(param, eps=eps)


def _per_feature(x, cache):  # the shape of a norm cache's mean and invstd: batchnorm (D,), spatial (C,)
    return (x.shape[1],)


def _per_row(x, cache):  # layernorm (N,)
    return (x.shape[0],)


def _per_group(x, cache):  # groupnorm (N, G)
    return (x.shape[0], cache[7])


def _norm_cache(fn, cache, length, forward, ndim, statistics, xhat_optional=False):
    """A norm cache as its forward returned it: x, an xhat like x (or None where xhat_optional: the compiled
    batchnorm, layernorm and groupnorm do not store it, the backward recomputes it from mean and invstd), gamma
    and beta of shape (C,) for C = x.shape[1] (groupnorm's may be (1, C, 1, 1) too), and mean and invstd in the
    shape statistics(x, cache) gives, all of x's dtype; batchnorm's mode 'train' or 'test', groupnorm's G an
    integer that divides C. The kernels index them by x's shape, so a mismatch is refused here. Returns the
    cache with its arrays as the kernels take them (native byte order, C-contiguous)."""
    cache = _check.cache_tuple(fn, cache, length, forward)
    x = _check.array(fn, "cache x", cache[0], ndim=ndim)
    xhat = cache[1]
    if xhat is not None or not xhat_optional:
        xhat = _check.array(fn, "cache xhat", xhat, ndim=ndim)
        if xhat.shape != x.shape or xhat.dtype != x.dtype:
            _check.fail(fn, f"cache is not from {forward}: xhat {xhat.shape} does not match x {x.shape}", TypeError)
    scales = []
    for name, v in (("gamma", cache[2]), ("beta", cache[3])):
        v = _check.array(fn, f"cache {name}", v)
        shapes = ((x.shape[1],), (1, x.shape[1], 1, 1)) if statistics is _per_group else ((x.shape[1],),)
        if v.shape not in shapes or v.dtype != x.dtype:
            _check.fail(fn, f"cache is not from {forward}: {name} {v.shape} {v.dtype} does not match x {x.shape} "
                            f"{x.dtype}", TypeError)
        scales.append(v)
    rest = list(cache[6:])
    if statistics is _per_feature:
        rest[1] = _check.mode(fn, "cache", _check.mode_value(fn, "cache", rest[1]))
    if statistics is _per_group:
        rest[1] = G = _check.integer(fn, "cache G", rest[1], minimum=1)
        if x.shape[1] % G:
            _check.fail(fn, f"cache is not from {forward}: its G={G} groups do not divide the {x.shape[1]} channels "
                            f"of x {x.shape}", TypeError)
    expected = statistics(x, (*cache[:6], *rest))
    moments = []
    for name, v in (("mean", cache[4]), ("invstd", cache[5])):
        v = _check.array(fn, f"cache {name}", v)
        if v.shape != expected or v.dtype != x.dtype:
            _check.fail(fn, f"cache is not from {forward}: {name} {v.shape} {v.dtype} does not match x {x.shape} "
                            f"{x.dtype}", TypeError)
        moments.append(v)
    return (x, xhat, *scales, *moments, *rest)


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation forward.

    Inputs:
    - x: (N, D); gamma, beta: (D,)
    - bn_param: 'mode' ('train' or 'test', required), optional 'eps' (1e-5), 'momentum' (0.9), 'running_mean',
      'running_var' (zeros). Train mode normalises with the batch mean and biased variance and writes
      running = momentum * running + (1 - momentum) * batch back into bn_param (as new arrays); test mode
      normalises with the running statistics.

    Returns a tuple of: out (N, D), cache (x, xhat, gamma, beta, mean, invstd, eps, mode); xhat is None from
    the compiled kernels (the backward recomputes it).
    """
    fn = "batchnorm_forward"
    x, gamma, beta = _norm_inputs(fn, x, gamma, beta, 2, lambda x: x.shape[1])
    return _run(fn, x, gamma, beta, _bn_param(fn, bn_param, x, x.shape[1]))


def batchnorm_backward(dout, cache):
    """Batch normalisation backward. Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    fn = "batchnorm_backward"
    cache = _norm_cache(fn, cache, 8, "batchnorm_forward", 2, _per_feature, xhat_optional=True)
    dout = _check.dout_like(fn, dout, cache[0].shape, cache[0].dtype)
    return _run(fn, dout, cache)


def batchnorm_backward_alt(dout, cache):
    """Batch normalisation backward, simplified closed form. Same cache and results as batchnorm_backward."""
    fn = "batchnorm_backward_alt"
    cache = _norm_cache(fn, cache, 8, "batchnorm_forward", 2, _per_feature, xhat_optional=True)
    dout = _check.dout_like(fn, dout, cache[0].shape, cache[0].dtype)
    return _run(fn, dout, cache)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Spatial batch normalisation: per channel over (N, H, W).

    Inputs: x (N, C, H, W); gamma, beta (C,); bn_param as for batchnorm_forward (running statistics (C,)).
    Returns a tuple of: out (N, C, H, W), cache (x, xhat, gamma, beta, mean, invstd, eps, mode).
    """
    fn = "spatial_batchnorm_forward"
    x, gamma, beta = _norm_inputs(fn, x, gamma, beta, 4, lambda x: x.shape[1])
    bn_param = _bn_param(fn, bn_param, x, x.shape[1])
    if bn_param["mode"] == "train" and x.shape[2] * x.shape[3] == 0:  # NaN statistics, running ones too
        _check.fail(fn, f"x of shape {x.shape} has no positions (H * W = 0) to take train-mode statistics over")
    return _run(fn, x, gamma, beta, bn_param)


def spatial_batchnorm_backward(dout, cache):
    """Spatial batch normalisation backward. Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    fn = "spatial_batchnorm_backward"
    cache = _norm_cache(fn, cache, 8, "spatial_batchnorm_forward", 4, _per_feature)
    dout = _check.dout_like(fn, dout, cache[0].shape, cache[0].dtype)
    return _run(fn, dout, cache)


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer normalisation: per-sample statistics over the D features, identical in train and test.

    Inputs: x (N, D); gamma, beta (D,); ln_param: optional 'eps' (1e-5); other keys are ignored.
    Returns a tuple of: out (N, D), cache (x, xhat, gamma, beta, mean, invstd, eps); xhat is None from the
    compiled kernels (the backward recomputes it).
    """
    fn = "layernorm_forward"
    x, gamma, beta = _norm_inputs(fn, x, gamma, beta, 2, lambda x: x.shape[1])
    if x.shape[1] == 0:  # NaN statistics
        _check.fail(fn, f"x of shape {x.shape} has no features (D = 0) to take per-sample statistics over")
    return _run(fn, x, gamma, beta, _eps_param(fn, "ln_param", ln_param))


def layernorm_backward(dout, cache):
    """Layer normalisation backward. Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    fn = "layernorm_backward"
    cache = _norm_cache(fn, cache, 7, "layernorm_forward", 2, _per_row, xhat_optional=True)
    dout = _check.dout_like(fn, dout, cache[0].shape, cache[0].dtype)
    return _run(fn, dout, cache)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Spatial group normalisation: statistics per (sample, group of C/G channels) over (C/G, H, W).

    Inputs: x (N, C, H, W); gamma, beta (C,) or (1, C, 1, 1); G a positive divisor of C; gn_param: optional 'eps'.
    Returns a tuple of: out (N, C, H, W), cache (x, xhat, gamma, beta, mean, invstd, eps, G); xhat is None from
    the compiled kernels (the backward recomputes it).
    """
    fn = "spatial_groupnorm_forward"
    x, gamma, beta = _check.floats(fn, cast_integers=True, x=_check.of_ndim(x, 4), gamma=gamma, beta=beta)
    _check.batch(fn, "x", x)
    C = x.shape[1]
    if C == 0:
        _check.fail(fn, f"x needs at least one channel, got shape {x.shape}")
    if x.shape[2] * x.shape[3] == 0:  # NaN statistics
        _check.fail(fn, f"x of shape {x.shape} has no positions (H * W = 0) to take group statistics over")
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v.shape not in ((C,), (1, C, 1, 1)):
            _check.fail(fn, f"{name} must have shape ({C},) or (1, {C}, 1, 1) to match x {x.shape}, got {v.shape}")
    G = _check.integer(fn, "G", G, minimum=1)
    if C % G:
        _check.fail(fn, f"G={G} groups must divide the {C} channels of x {x.shape}")
    return _run(fn, x, gamma, beta, G, _eps_param(fn, "gn_param", gn_param))


def spatial_groupnorm_backward(dout, cache):
    """Spatial group normalisation backward. Returns dx (N, C, H, W), dgamma and dbeta in gamma's shape."""
    fn = "spatial_groupnorm_backward"
    cache = _norm_cache(fn, cache, 8, "spatial_groupnorm_forward", 4, _per_group, xhat_optional=True)
    dout = _check.dout_like(fn, dout, cache[0].shape, cache[0].dtype)
    return _run(fn, dout, cache)


# ------------------------------------------------------------------------------------------------------ dropout


def _dropout_param(fn, dropout_param):
    _check.param_dict(fn, "dropout_param", dropout_param, required=("p", "mode"))
    _check.mode(fn, "dropout_param", dropout_param["mode"])
    p = _check.number(fn, "dropout_param['p'] (the keep probability)", dropout_param["p"], low=0.0, high=1.0,
                     low_open=True)
    seed = dropout_param.get("seed")
    if seed is not None:
        seed = _check.integer(fn, "dropout_param['seed']", seed)
    return _check.plain(dropout_param, p=p, seed=seed)


def dropout_forward(x, dropout_param):
    """Inverted dropout forward.

    Inputs:
    - x: any shape
    - dropout_param: 'p' the KEEP probability in (0, 1], 'mode' ('train' or 'test'), optional 'seed' (the
      mask is then a pure function of seed and shape; numpy's global RNG is not touched).

    Returns a tuple of: out (x / p where kept, 0 elsewhere; x in test mode), cache (dropout_param, mask); the
    cache holds a copy of dropout_param, so changing the dict afterwards does not change this call's backward.
    """
    fn = "dropout_forward"
    x = _check.array(fn, "x", x, min_ndim=1)
    # The starter's cached mask held 1/p; this one is bool and the backward reads p (and mode) from the cache's dict.
    return _run(fn, x, _dropout_param(fn, dropout_param))  # a copy (_check.plain)


def dropout_backward(dout, cache):
    """Inverted dropout backward. Returns dx (dout / p where kept in train mode, dout in test mode)."""
    fn = "dropout_backward"
    dropout_param, mask = _check.cache_tuple(fn, cache, 2, "dropout_forward")
    dropout_param = _dropout_param(fn, dropout_param)
    dout = _check.array(fn, "dout", dout, min_ndim=1)
    if dropout_param["mode"] == "train":
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            _check.fail(fn, "cache mask must be the bool keep-mask from dropout_forward in train mode", TypeError)
        if mask.shape != dout.shape:
            _check.fail(fn, f"dout must have the forward input's shape {mask.shape}, got {dout.shape}")
    return _run(fn, dout, (dropout_param, mask))


# -------------------------------------------------------------------------------------------- convolution, pool


def _conv_inputs(fn, x, w, b, conv_param):
    x, w, b = _check.floats(fn, cast_integers=True, x=_check.of_ndim(x, 4), w=_check.of_ndim(w, 4),
                            b=_check.of_ndim(b, 1))
    _check.batch(fn, "x", x)
    if x.shape[1] == 0 or w.shape[0] == 0:  # refused on both paths alike (the kernels' reshapes need them)
        _check.fail(fn, f"x needs at least one channel and w at least one filter, got x {x.shape} and w {w.shape}")
    if b.shape != (w.shape[0],):
        _check.fail(fn, f"b must have shape ({w.shape[0]},) to match w {w.shape}, got {b.shape}")
    stride, pad, _, _ = _check.conv_param(fn, conv_param, x.shape, w.shape)
    return x, w, b, _check.plain(conv_param, stride=stride, pad=pad)


def _conv_dout(fn, dout, cache, length, forward):
    cache = _check.cache_tuple(fn, cache, length, forward)
    x, w, b, conv_param = _conv_inputs(fn, cache[0], cache[1], cache[2], cache[3])
    _, _, H_out, W_out = _check.conv_param(fn, conv_param, x.shape, w.shape)
    dout = _check.dout_like(fn, dout, (x.shape[0], w.shape[0], H_out, W_out), x.dtype)
    return dout, (x, w, b, conv_param) + tuple(cache[4:])


def conv_forward_naive(x, w, b, conv_param):
    """Convolution forward (the assignment's reference semantics).

    Inputs:
    - x: (N, C, H, W); w: (F, C, HH, WW); b: (F,)
    - conv_param: 'stride' (>= 1) and 'pad' (>= 0, zeros on both sides); the output size
      H' = 1 + (H + 2 * pad - HH) / stride (likewise W') must be a whole number >= 1.

    Returns a tuple of: out (N, F, H', W'), cache (x, w, b, conv_param).
    """
    fn = "conv_forward_naive"
    return _run(fn, *_conv_inputs(fn, x, w, b, conv_param))


def conv_backward_naive(dout, cache):
    """Convolution backward. Inputs: dout (N, F, H', W'), cache (x, w, b, conv_param). Returns dx, dw, db."""
    fn = "conv_backward_naive"
    dout, cache = _conv_dout(fn, dout, cache, 4, "conv_forward_naive")
    return _run(fn, dout, cache)


def _pool_inputs(fn, x, pool_param):
    x = _check.array(fn, "x", x, ndim=4)
    _check.batch(fn, "x", x)
    ph, pw, stride, _, _ = _check.pool_param(fn, pool_param, x.shape)
    return x, _check.plain(pool_param, pool_height=ph, pool_width=pw, stride=stride)


def max_pool_forward_naive(x, pool_param):
    """Max pooling forward.

    Inputs: x (N, C, H, W); pool_param: 'pool_height', 'pool_width', 'stride' (no padding; the output size
    1 + (H - pool_height) / stride must be a whole number).
    Returns a tuple of: out (N, C, H', W'), cache (x, pool_param).
    """
    fn = "max_pool_forward_naive"
    return _run(fn, *_pool_inputs(fn, x, pool_param))


def max_pool_backward_naive(dout, cache):
    """Max pooling backward: each window's gradient goes to its first maximum; overlapping windows accumulate."""
    fn = "max_pool_backward_naive"
    x, pool_param = _check.cache_tuple(fn, cache, 2, "max_pool_forward_naive")
    if isinstance(x, str):  # ('argmax', (x, pool_param, argmax)): a fast pool's cache is a 2-tuple too
        _check.fail(fn, f"cache must be the 2-tuple (x, pool_param) returned by max_pool_forward_naive, got a "
                        f"{x!r} cache of the fast pools: pass it to max_pool_backward_fast", TypeError)
    x, pool_param = _pool_inputs(fn, x, pool_param)
    _, _, _, H_out, W_out = _check.pool_param(fn, pool_param, x.shape)
    dout = _check.dout_like(fn, dout, x.shape[:2] + (H_out, W_out), x.dtype)
    return _run(fn, dout, (x, pool_param))


# -------------------------------------------------------------------------------------------------------- losses


def _loss_inputs(fn, x, y):
    x = _check.array(fn, "x", x, ndim=2)
    _check.batch(fn, "x", x)
    y = _check.labels(fn, y, x.shape[0], x.shape[1])
    return x, y


def svm_loss(x, y):
    """Multiclass SVM loss. Inputs: x (N, C) scores, y (N,) labels in [0, C). Returns loss (float), dx (N, C)."""
    fn = "svm_loss"
    return _run(fn, *_loss_inputs(fn, x, y))


def softmax_loss(x, y):
    """Softmax loss. Inputs: x (N, C) scores, y (N,) labels in [0, C). Returns loss (float), dx (N, C)."""
    fn = "softmax_loss"
    return _run(fn, *_loss_inputs(fn, x, y))


# The fast_layers and layer_utils names, bound here too (fastnn/__init__.py imports this module first, so the
# modules below find every name above already defined).
from .fast_layers import *  # noqa: E402,F401,F403
from .layer_utils import *  # noqa: E402,F401,F403
