"""Classification losses, pure NumPy (the CS231n starter's given code)."""

import numpy as np

__all__ = ["svm_loss", "softmax_loss"]


def svm_loss(x, y):
    """Multiclass SVM (hinge) loss with margin 1, averaged over the batch.

    Inputs: x (N, C) scores; y (N,) integer labels in [0, C).
    Returns a tuple of: loss (float), dx (N, C) gradient of the loss with respect to x.
    """
    N = x.shape[0]
    rows = np.arange(N)
    correct = x[rows, y][:, None]
    margins = np.maximum(0, x - correct + 1.0)
    margins[rows, y] = 0
    loss = float(margins.sum() / N)
    positive = (margins > 0).astype(x.dtype)
    dx = positive
    dx[rows, y] -= positive.sum(axis=1)
    dx /= N
    return loss, dx


def softmax_loss(x, y):
    """Softmax (cross-entropy) loss, averaged over the batch; scores are shifted by their row max.

    Inputs: x (N, C) scores; y (N,) integer labels in [0, C).
    Returns a tuple of: loss (float), dx (N, C) gradient of the loss with respect to x.
    """
    N = x.shape[0]
    rows = np.arange(N)
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[rows, y].sum() / N)
    dx = np.exp(log_probs)
    dx[rows, y] -= 1
    dx /= N
    return loss, dx
