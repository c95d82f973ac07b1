"""Update-rule kernels: one pass over memory per parameter instead of NumPy's dozen temporaries.
Mirrors fastnn.optim.adam (the NumPy formula there is the reference)."""

import numpy as np
from numba import prange

from ._jit import kernel


@kernel(parallel=True)
def adam(w, dw, m, v, beta1, beta2, lr, eps, t, next_w, next_m, next_v):
    """next_m = beta1*m + (1-beta1)*dw; next_v = beta2*v + (1-beta2)*dw**2;
    next_w = w - lr * (next_m / (1 - beta1**t)) / (sqrt(next_v / (1 - beta2**t)) + eps). Inputs are not written."""
    c1 = 1.0 - beta1**t
    c2 = 1.0 - beta2**t
    for i in prange(w.size):
        g = dw[i]
        mi = beta1 * m[i] + (1.0 - beta1) * g
        vi = beta2 * v[i] + (1.0 - beta2) * g * g
        next_m[i] = mi
        next_v[i] = vi
        next_w[i] = w[i] - lr * (mi / c1) / (np.sqrt(vi / c2) + eps)
