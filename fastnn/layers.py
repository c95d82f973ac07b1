"""The cs231n.layers API: `from fastnn.layers import *` replaces `from cs231n.layers import *`.

Every function checks its arguments (fastnn._checks), then runs on the path fastnn.options().backend selects:
the compiled kernels or the NumPy reference (fastnn._dispatch). Both build the same cache.
The fast_layers and layer_utils names are bound here too, so this one namespace holds every layer.
"""

import numpy as np  # noqa: F401  (cs231n.layers exports np through star imports)

from . import _checks as check
from ._dispatch import run


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
    x, w, b = check.floats(fn, x=x, w=(w, 2), b=(b, 1))
    check.batch(fn, "x", x)
    D = int(np.prod(x.shape[1:]))
    if w.shape[0] != D:
        check.fail(fn, f"x of shape {x.shape} flattens to {D} features but w has shape {w.shape}")
    if b.shape != (w.shape[1],):
        check.fail(fn, f"b must have shape ({w.shape[1]},) to match w {w.shape}, got {b.shape}")
    return run(fn, x, w, b)


def affine_backward(dout, cache):
    """Affine layer backward.

    Inputs: dout (N, M) upstream gradient; cache (x, w, b) from affine_forward.
    Returns dx (shape of x), dw (D, M), db (M,).
    """
    fn = "affine_backward"
    x, w, b = check.cache_tuple(fn, cache, 3, "affine_forward")
    x, w, b = check.floats(fn, x=x, w=(w, 2), b=(b, 1))
    dout = check.dout_like(fn, dout, (x.shape[0], w.shape[1]), x.dtype)
    return run(fn, dout, (x, w, b))


def relu_forward(x):
    """ReLU forward: out = max(0, x) (NaN propagates). Returns out (shape of x), cache x."""
    fn = "relu_forward"
    x = check.array(fn, "x", x, min_ndim=1)
    return run(fn, x)


def relu_backward(dout, cache):
    """ReLU backward: dx = dout where x > 0, else 0. cache is x from relu_forward."""
    fn = "relu_backward"
    x = check.array(fn, "cache (the ReLU input x)", cache, min_ndim=1)
    dout = check.dout_like(fn, dout, x.shape, x.dtype)
    return run(fn, dout, x)
