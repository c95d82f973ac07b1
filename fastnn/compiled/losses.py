"""Losses on the compiled path: same names, signatures and results as fastnn.reference.losses."""

import numpy as np

from .._options import current
from ..kernels import losses as K
from ..kernels._jit import variant
from ._memory import recycled

__all__ = ["svm_loss", "softmax_loss"]


def _loss(kernel_fn, x, y):
    row_loss = np.empty(x.shape[0], dtype=np.float64)
    dx = recycled(x.shape, x.dtype)
    variant(kernel_fn, current().parallel)(x, y, row_loss, dx)
    return float(row_loss.sum() / x.shape[0]), dx


def svm_loss(x, y):
    """See fastnn.reference.losses.svm_loss. Returns loss (float), dx."""
    return _loss(K.svm_loss, x, y)


def softmax_loss(x, y):
    """See fastnn.reference.losses.softmax_loss. Returns loss (float), dx."""
    return _loss(K.softmax_loss, x, y)
