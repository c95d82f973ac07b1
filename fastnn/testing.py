"""The comparator and the seeded input builders shared by tests/, asv_bench/ and backend='verify'.

Relative error here is scaled by the expected array as a whole: max|actual - expected| / max|expected|.
An elementwise ratio would call an absolute error of 1e-9 on an entry of 1e-12 a failure, which says
nothing about a kernel; the scale of the tensor is what a float32 or float64 result can promise.
"""

import numpy as np

# Maximum relative error allowed between a compiled kernel and the reference, by dtype and direction.
# float32 results are measured against the float64 reference on the same inputs.
TOLERANCES = {
    ("float64", "forward"): 1e-10,
    ("float64", "backward"): 1e-9,
    ("float32", "forward"): 1e-4,
    ("float32", "backward"): 1e-4,
}
# Reference against centred numeric gradients (float64, h=1e-5).
NUMERIC_GRADIENT_TOLERANCE = 1e-7


def tolerance(dtype, direction):
    """The tolerance for results of `dtype` in `direction` ('forward' or 'backward')."""
    key = (np.dtype(dtype).name, direction)  # the name leaves out the byte order: '>f4' is float32
    if key not in TOLERANCES:
        raise ValueError(f"tolerance: the table covers float32 and float64, 'forward' and 'backward'; got dtype "
                         f"{np.dtype(dtype)} and direction {direction!r} (pass rtol= for other dtypes)")
    return TOLERANCES[key]


def finite_scale(a):
    """The largest |value| among a's finite entries (0.0 when there are none)."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))


def max_relative_error(actual, expected, floor=0.0):
    """(error, index): max |actual - expected| / max(max|expected|, floor) and where the largest difference sits.

    NaN in the same place on both sides counts as agreement; NaN on one side only is an infinite error.
    Complex values are refused: comparing their real parts would call 1+1j equal to 1.
    """
    for name, value in (("actual", actual), ("expected", expected)):
        if np.iscomplexobj(value):
            raise TypeError(f"max_relative_error: {name} holds complex numbers (dtype {np.asarray(value).dtype}); "
                            "compare the real and imaginary parts separately")
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"max_relative_error: shapes differ, actual {a.shape} vs expected {e.shape}")
    if a.size == 0:
        return 0.0, ()
    both_nan = np.isnan(a) & np.isnan(e)
    same_inf = np.isinf(a) & (a == e)
    with np.errstate(invalid="ignore"):
        diff = np.where(both_nan | same_inf, 0.0, np.abs(a - e))
    diff = np.where(np.isnan(diff), np.inf, diff)
    scale = max(finite_scale(e), floor, 1e-30)
    flat = int(np.argmax(diff))
    where = np.unravel_index(flat, a.shape)
    return float(diff.flat[flat] / scale), tuple(int(i) for i in where)


def assert_close(actual, expected, dtype=None, direction="forward", rtol=None, what="result", floor=0.0):
    """Assert `actual` matches `expected` within the tolerance table (or an explicit `rtol`); errors are relative
    to max(max|expected|, floor), so a gradient that is zero in exact arithmetic can be held to a given scale."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}")
    limit = rtol if rtol is not None else tolerance(dtype or actual.dtype, direction)
    error, where = max_relative_error(actual, expected, floor=floor)
    if not error <= limit:
        raise AssertionError(
            f"{what}: max relative error {error:.3e} > {limit:.0e} at index {where}: "
            f"actual {actual[where]!r}, expected {expected[where]!r}"
        )
    return error


# ----------------------------------------------------------------------------------------------------------
# Seeded input builders: the same seed gives the same arrays in tests and benchmarks.


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, dtype=np.float64, seed=0, scale=1.0):
    return (scale * rng(seed).standard_normal(shape)).astype(dtype)


def affine_inputs(N=4, D=(3, 5), M=6, dtype=np.float64, seed=0):
    g = rng(seed)
    D = D if isinstance(D, tuple) else (D,)
    x = g.standard_normal((N, *D)).astype(dtype)
    w = (g.standard_normal((int(np.prod(D)), M)) / np.sqrt(np.prod(D))).astype(dtype)
    b = g.standard_normal(M).astype(dtype)
    return x, w, b


def conv_inputs(N=2, C=3, H=7, W=7, F=4, HH=3, WW=3, dtype=np.float64, seed=0):
    g = rng(seed)
    x = g.standard_normal((N, C, H, W)).astype(dtype)
    w = (g.standard_normal((F, C, HH, WW)) / np.sqrt(C * HH * WW)).astype(dtype)
    b = g.standard_normal(F).astype(dtype)
    return x, w, b


def norm_inputs(shape=(8, 5), channels_axis=1, dtype=np.float64, seed=0):
    """x of `shape`, plus random gamma (around 1) and beta of the channel count."""
    g = rng(seed)
    x = (3.0 + 2.0 * g.standard_normal(shape)).astype(dtype)
    n = shape[channels_axis]
    gamma = (1.0 + 0.5 * g.standard_normal(n)).astype(dtype)
    beta = g.standard_normal(n).astype(dtype)
    return x, gamma, beta


def scores_and_labels(N=10, C=5, dtype=np.float64, seed=0, scale=1.0):
    g = rng(seed)
    scores = (scale * g.standard_normal((N, C))).astype(dtype)
    y = g.integers(0, C, size=N)
    return scores, y


def noncontiguous(x):
    """A non-C-contiguous view holding the same values as x (a transposed copy, transposed back)."""
    if x.ndim < 2:
        return np.repeat(x, 2)[::2]
    return np.ascontiguousarray(np.swapaxes(x, 0, -1)).swapaxes(0, -1)


def layouts(x):
    """(name, array) pairs holding x's values in the layouts kernels must accept."""
    readonly = x.copy()
    readonly.setflags(write=False)
    doubled = np.repeat(x, 2, axis=-1)[..., ::2]
    return [("contiguous", x), ("transposed", noncontiguous(x)), ("sliced", doubled), ("readonly", readonly)]


def check_gradients(forward, backward, inputs, wrt, seed=0, tol=NUMERIC_GRADIENT_TOLERANCE):
    """Compare a layer's analytic gradients with centred numeric ones (float64), for a random upstream gradient.

    Inputs:
    - forward: f(*inputs) -> (out, cache); backward: b(dout, cache) -> gradient or tuple of gradients
    - inputs: list of arguments to forward (arrays are perturbed in place and restored)
    - wrt: for each gradient backward returns, the index in `inputs` of the array it belongs to (None to skip)
    Returns the largest relative error seen.
    """
    from .gradient_check import eval_numerical_gradient_array

    out, cache = forward(*inputs)
    dout = rng([seed, 7919]).standard_normal(np.shape(out))  # a stream no input builder uses
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(wrt):
        raise AssertionError(f"backward returned {len(grads)} gradients, expected {len(wrt)}")
    worst = 0.0
    for k, (grad, index) in enumerate(zip(grads, wrt)):
        if index is None:
            continue
        target = inputs[index]
        numeric = eval_numerical_gradient_array(lambda _: forward(*inputs)[0], target, dout)
        # A floor on the scale: a gradient that is exactly zero (a bias before a batchnorm) has numeric noise
        # of ~1e-11, which is no error.
        scale = max(float(np.max(np.abs(numeric), initial=0.0)), 1e-3)
        error = float(np.max(np.abs(np.asarray(grad) - numeric), initial=0.0)) / scale
        if not error <= tol:
            where = np.unravel_index(int(np.argmax(np.abs(np.asarray(grad) - numeric))), numeric.shape)
            raise AssertionError(
                f"gradient {k} (input {index}): relative error {error:.3e} > {tol:.0e} at {where}: "
                f"analytic {np.asarray(grad)[where]!r}, numeric {numeric[where]!r}"
            )
        worst = max(worst, error)
    return worst
