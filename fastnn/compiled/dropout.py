"""Inverted dropout on the compiled path: same names, signatures, caches and masks as fastnn.reference.dropout
(the key is drawn by the reference's dropout_key, so both paths use numpy's RNG identically)."""

import math

import numpy as np

from .._options import current
from ..kernels import dropout as K
from ..kernels._jit import variant
from ..reference.dropout import dropout_key
from ._memory import recycled

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, dropout_param):
    """See fastnn.reference.dropout.dropout_forward. Returns out, cache (dropout_param, mask)."""
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "test":
        return x, (dropout_param, None)
    if mode != "train":
        raise ValueError('Invalid forward dropout mode "%s"' % mode)
    key = dropout_key(dropout_param)
    out = recycled(x.shape, x.dtype)
    mask = recycled(x.shape, np.bool_)
    variant(K.dropout_forward, current().parallel)(
        x.reshape(-1), np.uint64(key), np.uint64(math.ceil(p * 2**53)), x.dtype.type(p), out.reshape(-1),
        mask.reshape(-1),
    )
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    """See fastnn.reference.dropout.dropout_backward."""
    dropout_param, mask = cache
    if dropout_param["mode"] != "train":
        return dout
    dx = recycled(dout.shape, dout.dtype)
    variant(K.dropout_backward, current().parallel)(
        dout.reshape(-1), mask.reshape(-1), dout.dtype.type(dropout_param["p"]), dx.reshape(-1)
    )
    return dx
