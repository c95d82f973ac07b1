"""Loss kernels. Mirror fastnn.reference.losses (softmax_loss, svm_loss). Serial: a score matrix is small (N x C),
so threads do not pay for their compile time (~0.5 s each at a cold start); per-row losses are summed afterwards.

Compiled without fast-math: with reassociation LLVM rewrote x - top - log_total as x - (top + log_total), which
loses log_total against a large row maximum (logits of 1e8 gave dx off by 3.6e-9, two tied maxima of 1.5e19 a
loss of 0 instead of log 2); the rows are short, so the strict order costs nothing measurable."""

import numpy as np

from ._jit import kernel


@kernel
def softmax_loss(x, y, row_loss, dx):
    """row_loss[i] = -log softmax(x[i])[y[i]] (row-max shifted); dx = (softmax - onehot) / N."""
    N, C = x.shape
    for i in range(N):
        top = x[i, 0]
        for c in range(1, C):
            if x[i, c] > top:
                top = x[i, c]
        total = 0.0
        for c in range(C):
            total += np.exp(np.float64(x[i, c]) - top)
        log_total = np.log(total)
        row_loss[i] = log_total - (np.float64(x[i, y[i]]) - top)
        for c in range(C):
            dx[i, c] = np.exp(np.float64(x[i, c]) - top - log_total) / N
        # p - 1 as expm1, rounded once into dx: p / N rounded to float32 and then less 1 / N left that rounding
        # as the gradient of a certain prediction (1e-8 where the truth is -3e-14, the wrong sign)
        dx[i, y[i]] = np.expm1(np.float64(x[i, y[i]]) - top - log_total) / N


@kernel
def svm_loss(x, y, row_loss, dx):
    """row_loss[i] = sum over c != y[i] of max(0, x[i, c] - x[i, y[i]] + 1); dx the hinge gradient / N."""
    N, C = x.shape
    for i in range(N):
        correct = np.float64(x[i, y[i]])
        total = 0.0
        positive = 0
        for c in range(C):
            margin = np.float64(x[i, c]) - correct + 1.0
            if c != y[i] and margin > 0:
                total += margin
                positive += 1
                dx[i, c] = 1.0 / N
            else:
                if c != y[i] and margin != margin:  # a NaN score makes the loss NaN, as np.maximum's
                    total += margin
                dx[i, c] = 0
        dx[i, y[i]] = -positive / N
        row_loss[i] = total
