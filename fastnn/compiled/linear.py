"""The affine layer on the compiled path: its work is the GEMMs, which stay in BLAS; the bias is added in place
into the GEMM result, so no temporary is allocated. Same names, signatures and caches as fastnn.reference."""

from .._options import input_gradient_wanted

__all__ = ["affine_forward", "affine_backward"]


def affine_forward(x, w, b):
    """See fastnn.reference.linear.affine_forward. Returns out, cache (x, w, b)."""
    out = x.reshape(x.shape[0], -1) @ w
    out += b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """See fastnn.reference.linear.affine_backward. Returns dx, dw, db."""
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape) if input_gradient_wanted() else None
    dw = x.reshape(x.shape[0], -1).T @ dout
    return dx, dw, dout.sum(axis=0)
