"""Affine layer, pure NumPy."""

from .._options import input_gradient_wanted

__all__ = ["affine_forward", "affine_backward"]


def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b.

    Inputs: x (N, d_1, ..., d_k), w (D, M), b (M,).
    Returns: out (N, M), cache (x, w, b).
    """
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Inputs: dout (N, M), cache (x, w, b). Returns dx (shape of x), dw (D, M), db (M,)."""
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape) if input_gradient_wanted() else None
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db
