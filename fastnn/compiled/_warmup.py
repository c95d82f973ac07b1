"""fastnn.warmup(): compile the kernels on tiny inputs so the first real call does not pay the compile time."""

import time

import numpy as np

from .. import _checks

FAMILIES = ("affine", "activations", "conv", "pool", "norm", "dropout", "losses", "fused", "optim")


def _run_family(family, dtype):
    from .. import layer_utils as L
    from .. import optim
    from .winograd import MIN_CHANNELS

    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    if family == "affine":
        out, cache = L.affine_forward(r(2, 3), r(3, 4), r(4))
        L.affine_backward(out, cache)
    elif family == "activations":
        for forward, backward in [(L.relu_forward, L.relu_backward), (L.sigmoid_forward, L.sigmoid_backward),
                                  (L.tanh_forward, L.tanh_backward), (L.leaky_relu_forward, L.leaky_relu_backward)]:
            out, cache = forward(r(2, 3))
            backward(out, cache)
    elif family == "conv":
        # Winograd (a 3x3 stride-1 filter bank where it pays: MIN_CHANNELS inputs, 2 filters), then im2col on
        # one image (its GEMMs in place) and on a block of two (regrouped)
        channels = MIN_CHANNELS
        for N, w_shape, stride in ((1, (2, channels, 3, 3), 1), (1, (2, channels, 2, 2), 2),
                                   (2, (2, channels, 2, 2), 2)):
            out, cache = L.conv_forward_fast(r(N, channels, 4, 4), r(*w_shape), r(2), {"stride": stride, "pad": 1})
            L.conv_backward_fast(out, cache)
    elif family == "pool":
        for size, stride in ((2, 2), (3, 1)):  # the 2x2/2 kernels, then those of every other geometry
            out, cache = L.max_pool_forward_fast(r(1, 2, 4, 4), {"pool_height": size, "pool_width": size,
                                                                 "stride": stride})
            L.max_pool_backward_fast(out, cache)
    elif family == "norm":
        bn_param = {"mode": "train"}
        out, cache = L.batchnorm_forward(r(4, 3), r(3), r(3), bn_param)
        L.batchnorm_backward(out, cache)
        L.batchnorm_forward(r(4, 3), r(3), r(3), {**bn_param, "mode": "test"})
        bn_param = {"mode": "train"}
        out, cache = L.spatial_batchnorm_forward(r(2, 3, 2, 2), r(3), r(3), bn_param)
        L.spatial_batchnorm_backward(out, cache)
        L.spatial_batchnorm_forward(r(2, 3, 2, 2), r(3), r(3), {**bn_param, "mode": "test"})
        out, cache = L.layernorm_forward(r(4, 3), r(3), r(3), {})
        L.layernorm_backward(out, cache)
        out, cache = L.spatial_groupnorm_forward(r(2, 4, 2, 2), r(4), r(4), 2, {})
        L.spatial_groupnorm_backward(out, cache)
    elif family == "dropout":
        out, cache = L.dropout_forward(r(2, 3), {"mode": "train", "p": 0.5, "seed": 0})
        L.dropout_backward(out, cache)
    elif family == "losses":
        L.softmax_loss(r(3, 4), np.array([0, 1, 2]))
        L.svm_loss(r(3, 4), np.array([0, 1, 2]))
    elif family == "fused":
        bn_param = {"mode": "train"}
        for forward, backward, param in [(L.affine_bn_relu_forward, L.affine_bn_relu_backward, bn_param),
                                         (L.affine_ln_relu_forward, L.affine_ln_relu_backward, {})]:
            out, cache = forward(r(4, 3), r(3, 5), r(5), r(5), r(5), param)
            backward(out, cache)
        L.affine_bn_relu_forward(r(4, 3), r(3, 5), r(5), r(5), r(5), {**bn_param, "mode": "test"})
        out, cache = L.conv_relu_pool_forward(r(1, 2, 5, 5), r(2, 2, 2, 2), r(2), {"stride": 1, "pad": 0},
                                              {"pool_height": 2, "pool_width": 2, "stride": 2})
        L.conv_relu_pool_backward(out, cache)  # the one-pass unpool + ReLU gate
    elif family == "optim":
        w, config = r(2, 3), None
        for _ in range(2):  # adam's first step and a later one
            w, config = optim.adam(w, r(2, 3), config)


def _several(name, values):
    """values as a tuple; what is no collection of them (None, 5) is named."""
    try:
        return tuple(values)
    except TypeError:
        raise TypeError(f"fastnn.warmup: {name} must be a name or a list of names, got {values!r}") from None


def _name(dtype):
    """The dtype's name, or its type string where the byte order is not native ('>f8': 'float64' hid why)."""
    if dtype is None:
        return "None"
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):
        return str(dtype)
    return dtype.name if dtype.isnative else dtype.str


def _is_float(dtype):
    return _checks.compiled_float_dtype(dtype) is not None


def warmup(dtypes=("float32", "float64"), ops=None):
    """Compile the kernels of `ops` (a family name or several, default all: see FAMILIES) for each of `dtypes`
    (one or several).

    Returns the seconds it took. Unknown families or dtypes raise ValueError.
    """
    from .. import _options

    families = FAMILIES if ops is None else (ops,) if isinstance(ops, str) else _several("ops", ops)
    unknown = sorted(set(map(str, families)) - set(FAMILIES))
    if unknown:
        raise ValueError(f"fastnn.warmup: unknown op families {unknown}; choose from {list(FAMILIES)}")
    one = isinstance(dtypes, (str, type, np.dtype))  # "float32", np.float32 or np.dtype("float32")
    dtypes = (dtypes,) if one else _several("dtypes", dtypes)
    bad = [d for d in dtypes if not _is_float(d)]
    if bad:
        raise ValueError(f"fastnn.warmup: dtypes must be float32 or float64, got {[_name(d) for d in bad]}")
    dtypes = tuple(np.dtype(d) for d in dtypes)
    start = time.perf_counter()
    with _options.backend_here("jit"):
        for dtype in dtypes:
            for family in families:
                _run_family(family, dtype)
    return time.perf_counter() - start
