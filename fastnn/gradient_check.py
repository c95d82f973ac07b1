"""Numeric gradients with the cs231n.gradient_check names and behaviour, plus error helpers.

Like the starter, the numeric-gradient functions perturb `x` IN PLACE and restore it (callers pass
`lambda _: model.loss(X, y)[0]` and rely on f reading the same array). x is restored even when f raises. f must
not write to x: the perturbed entry is checked before its step and after each call, and the whole of x against
a copy taken beforehand after the first call and once at the end, and an f that modified it (an in-place ReLU)
is a ValueError, with x restored, rather than a wrong gradient.

What they accept (anything else is a TypeError or ValueError naming the function, the argument and the shapes):
- x (and every blob's .vals): a writeable numpy.ndarray of float32 or float64. An integer or bool array would
  truncate x +- h (a garbage gradient), a list or a read-only array cannot be perturbed in place, and float16
  is refused because its resolution (~1e-3 near 1) swallows any useful step: use float64 for numeric
  gradients, float32 only for a rough check.
- h: a finite real number > 0. A step that rounds away entirely at some entry (float32 x of 1e4 with
  h=1e-5) is a ValueError naming the entry, rather than a gradient of 0.
- df / output.diffs: the shape f's output has; f's output is not broadcast against it, and must hold real numbers.
- An empty x has an empty gradient (grad_check_sparse, which samples entries, refuses it).
"""

import warnings as _warnings  # private, as _Sequence
from collections.abc import Sequence as _Sequence  # private: the star import gives what the starter's gives
from random import randrange

import numpy as np

from . import _checks
from .testing import max_relative_error  # noqa: F401  (public here: the error helper beside rel_error)

# No __all__, as in the starter: `from cs231n.gradient_check import *` also gives the notebook np and randrange.


def rel_error(x, y):
    """The notebooks' relative error: max(|x - y| / max(1e-8, |x| + |y|)), elementwise; 0.0 for empty arrays."""
    x, y = (_numeric("rel_error", name, a).astype(np.float64) for name, a in (("x", x), ("y", y)))
    if x.shape != y.shape and x.ndim and y.ndim:  # a scalar against an array is fine; (3,) vs (3, 1) is not
        raise ValueError(f"rel_error: x and y must have the same shape, got {x.shape} and {y.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        errors = np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))
        overflowed = np.isnan(errors) & np.isfinite(x) & np.isfinite(y)  # 1e308 against -1e308: inf / inf
        if overflowed.any():  # the same ratio of halves (exact: numbers this large are not subnormal)
            x, y, errors = np.broadcast_arrays(x / 2, y / 2, errors)
            errors = np.where(overflowed, np.abs(x - y) / np.maximum(5e-9, np.abs(x) + np.abs(y)), errors)
    return float(np.max(errors, initial=0.0))


# ----------------------------------------------------------------------------------------------------------
# Argument checks


def _perturbable(fn, name, x):
    """x itself (never a copy: it is perturbed in place), once it is a writeable float32/float64 ndarray."""
    if not isinstance(x, np.ndarray):
        _checks.fail(fn, f"{name} must be a writeable numpy.ndarray of float32 or float64 (it is perturbed in "
                         f"place), got {type(x).__name__}", TypeError)
    if np.ma.is_masked(x):  # a masked entry reads as `masked`, so each step there looked like f had changed x
        _checks.fail(fn, f"{name} is a masked array with masked entries, which a numeric gradient cannot step; pass "
                         f"{name}.filled(value) or {name}.data", TypeError)
    if _checks.native_dtype(x) not in _checks.FLOAT_DTYPES:  # a big-endian float64 steps as well
        _checks.fail(fn, f"{name} must be float32 or float64 (use float64 for numeric gradients), got dtype "
                         f"{x.dtype} with shape {x.shape}", TypeError)
    if not x.flags.writeable:
        _checks.fail(fn, f"{name} must be writeable (it is perturbed in place and restored), got a read-only "
                         f"array of shape {x.shape}")
    if _overlapping(x):  # stepping one entry would step the others that share its memory
        _checks.fail(fn, f"{name} has entries that share memory (strides {x.strides} for shape {x.shape}, as "
                         f"np.broadcast_to or as_strided make), so one step moves several; pass {name}.copy()")
    return x


def _overlapping(x):
    """Whether two entries of x share memory. Ordinary arrays and their views pass the quick test: each axis's
    stride, by size, spans the axes below it. Anything else is settled by sorting every entry's byte offset."""
    axes = sorted((abs(stride), n) for stride, n in zip(x.strides, x.shape) if n > 1)
    span = x.itemsize
    for stride, n in axes:
        if stride < span:
            break
        span = stride * n
    else:
        return False
    offsets = np.zeros(1, dtype=np.int64)
    for stride, n in zip(x.strides, x.shape):
        offsets = (offsets[:, None] + stride * np.arange(n, dtype=np.int64)).ravel()
    return bool(x.size > 1 and np.min(np.diff(np.sort(offsets))) < x.itemsize)


def _warn_if_steps_round(fn, name, x, h, stacklevel, entries=None):
    """A RuntimeWarning when x's dtype stores x +- h a step off 2h by more than a tenth at some entry (of
    `entries`, else anywhere): float32 x of 100 with h=1e-5 steps by 1.5e-5. The starter's formula, kept, divides
    by 2h, so the numeric gradient there is off by as much. A step that vanishes entirely is an error (_set)."""
    where = tuple(np.array(entries, dtype=np.intp).reshape(-1, x.ndim).T) if entries is not None else ...
    values = x[where]
    with np.errstate(over="ignore", invalid="ignore"):
        steps = (values + h) - (values - h)
        off = np.abs(steps.astype(np.float64) - 2 * h) / (2 * h)
        rounded = (off > 0.1) & (steps != 0)
    count = int(np.count_nonzero(rounded))
    if not count:
        return
    worst = np.unravel_index(int(np.argmax(np.where(rounded, off, 0))), values.shape)
    ix = tuple(int(i) for i in (worst if entries is None else np.array(entries)[worst[0]]))
    _warnings.warn(f"{fn}: h={h} is too fine for the {x.dtype} {name} at {count} of the {values.size} entries "
                   f"stepped: {_entry(name, ix)} = {x[ix]} steps by {steps[worst]:.4g} instead of {2 * h:.4g}, so "
                   f"the numeric gradient there is off by up to {off[worst]:.0%}; use a float64 {name} or a larger h",
                   RuntimeWarning, stacklevel=stacklevel + 1)


def _step(fn, h):
    return _checks.number(fn, "h", h, low=0, low_open=True)


def _callable(fn, name, f):
    if not callable(f):
        _checks.fail(fn, f"{name} must be callable, got {type(f).__name__}", TypeError)


def _numeric(fn, name, a):
    try:
        a = np.asarray(a)
    except ValueError as error:  # a ragged list: numpy's message alone does not say whose argument it was
        _checks.fail(fn, f"{name} must be an array of real numbers; numpy cannot make one of the "
                         f"{type(a).__name__} given ({error})")
    if a.dtype.kind not in "biuf":
        _checks.fail(fn, f"{name} must hold real numbers, got dtype {a.dtype} with shape {a.shape}", TypeError)
    return a


def _entry(name, ix):
    return f"{name}[{', '.join(map(str, ix))}]"


def _set(fn, name, x, ix, value, old, h):
    """x[ix] = value, refusing a step that x's dtype rounds back to the old value; returns the stored value."""
    x[ix] = value
    if x[ix] == old:
        _checks.fail(fn, f"the step h={h} vanishes at {_entry(name, ix)} = {old}: {old} +- {h} "
                         f"rounds back to {old} in {x.dtype}; use a larger h or a float64 {name}")
    return x[ix]


def _modified(fn, name, where, was, now):
    _checks.fail(fn, f"f modified its input {name} in place ({_entry(name, where)} went from {was} to {now}); "
                     f"{name} is restored, but a numeric gradient needs an f that leaves its input unchanged "
                     f"(copy {name} inside f before writing to it)")


def _unchanged(fn, name, x, original):
    """After the last evaluation: x must equal the copy taken before the first (NaN equal to NaN), else it is
    restored and f named. Once, not per evaluation: a full comparison each time tripled the time of a cheap f."""
    if np.array_equal(x, original, equal_nan=True):
        return
    where = tuple(int(i) for i in np.argwhere((x != original) & ~(np.isnan(x) & np.isnan(original)))[0])
    now = x[where]
    np.copyto(x, original)
    _modified(fn, name, where, original[where], now)


def _same(a, b):
    return a == b or (a != a and b != b)  # NaN stays NaN; scalars, for speed


def _both_sides(fn, name, x, ix, h, evaluate, original):
    """(evaluate() with x[ix] + h, evaluate() with x[ix] - h). `original` is a copy of x taken before the first
    evaluation: x is restored from it when evaluate raises or has changed x[ix], before or during this step (the
    rest of x is compared with it once, by _unchanged, at the end)."""
    old = original[ix]
    results = []
    try:
        if not _same(x[ix], old):  # else stepping it would overwrite the change before the final comparison
            _modified(fn, name, ix, old, x[ix])
        for value in (old + h, old - h):
            stored = _set(fn, name, x, ix, value, old, h)
            results.append(evaluate())
            if not _same(x[ix], stored):
                _modified(fn, name, ix, stored, x[ix])
            x[ix] = original[ix]
    except BaseException:
        np.copyto(x, original)
        raise
    return tuple(results)


def _scalar(fn, value):
    """f's value, unchanged (a float32 loss stays float32); f must return a single real number."""
    if np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "biuf":
        _checks.fail(fn, f"f must return a single real number, got {type(value).__name__} with shape "
                         f"{np.shape(value)}")
    # a 0-d array may be x itself, which the next step changes: keep its value
    value = value[()] if isinstance(value, np.ndarray) else value
    if isinstance(value, (np.integer, np.bool_)):  # np.uint8(3) - np.uint8(5) wraps to 254; Python's int does not
        return int(value)
    return value


def _output(fn, what, value, diff_name, diff):
    """A copy of f's array output, which must hold real numbers (not bools, which have no differences) of the
    upstream gradient's shape."""
    try:
        value = np.array(value)
    except (TypeError, ValueError) as error:  # a tuple of an array and a number, say
        _checks.fail(fn, f"{what} must be an array of real numbers, got {type(value).__name__} ({error})", TypeError)
    if value.dtype.kind == "b":
        _checks.fail(fn, f"{what} must hold real numbers, got dtype bool with shape {value.shape}: differences "
                         "of bools are not defined", TypeError)
    value = _numeric(fn, what, value)
    if value.dtype.kind in "iu":  # differences of uint8 outputs would wrap around
        value = value.astype(np.float64)
    if value.shape != diff.shape:
        _checks.fail(fn, f"{what} has shape {value.shape} but {diff_name} has shape {diff.shape}; they must "
                         "match (no broadcasting)")
    return value


# ----------------------------------------------------------------------------------------------------------
# The starter's functions


def _first_value(fn, f, x, original):
    """The course's fx = f(x), unused but evaluated: f's side effects (a train-mode batchnorm's running statistics,
    draws from the global RNG) then happen as many times as there, 2n + 1. x is restored if f raises or changes
    it."""
    try:
        value = f(x)
    except BaseException:
        np.copyto(x, original)
        raise
    _unchanged(fn, "x", x, original)  # before _scalar, which may raise with x still changed
    return _scalar(fn, value)


def eval_numerical_gradient(f, x, verbose=True, h=0.00001):
    """Centred-difference gradient of the scalar function f at x (x is perturbed in place, then restored).

    Inputs: f, a function of one argument returning a number; x, the writeable float32/float64 array to
    differentiate at; verbose prints (index, gradient) per entry; h the step (> 0).
    Returns grad, an array of x's shape.
    """
    fn = "eval_numerical_gradient"
    _callable(fn, "f", f)
    x = _perturbable(fn, "x", x)
    h = _step(fn, h)
    _warn_if_steps_round(fn, "x", x, h, stacklevel=2)
    grad = np.zeros_like(x)
    original = x.copy()
    _first_value(fn, f, x, original)
    it = np.nditer(x, flags=["multi_index", "zerosize_ok"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        fxph, fxmh = _both_sides(fn, "x", x, ix, h, lambda: _scalar(fn, f(x)), original)
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    _unchanged(fn, "x", x, original)
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numeric gradient of sum(f(x) * df) with respect to x, for a function f returning an array of df's shape."""
    fn = "eval_numerical_gradient_array"
    _callable(fn, "f", f)
    x = _perturbable(fn, "x", x)
    df = _numeric(fn, "df", df)
    h = _step(fn, h)
    _warn_if_steps_round(fn, "x", x, h, stacklevel=2)
    grad = np.zeros_like(x)
    original = x.copy()
    it = np.nditer(x, flags=["multi_index", "zerosize_ok"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        pos, neg = _both_sides(fn, "x", x, ix, h, lambda: _output(fn, "f(x)", f(x), "df", df), original)
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    _unchanged(fn, "x", x, original)
    return grad


def _blob_arrays(fn, name, blob):
    for attr in ("vals", "diffs"):
        if not hasattr(blob, attr):
            _checks.fail(fn, f"{name} must have .vals and .diffs, got {type(blob).__name__} without .{attr}",
                         TypeError)
    return blob.vals, _numeric(fn, f"{name}.diffs", blob.diffs)


def _gradient_blobs(fn, f, inputs, output, h):
    _callable(fn, "f", f)
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, _Sequence):
        _checks.fail(fn, f"inputs must be a tuple or list of blobs, got {type(inputs).__name__}", TypeError)
    inputs = tuple(inputs)
    for i, blob in enumerate(inputs):
        vals, diffs = _blob_arrays(fn, f"inputs[{i}]", blob)
        _perturbable(fn, f"inputs[{i}].vals", vals)
        if diffs.shape != vals.shape:
            _checks.fail(fn, f"inputs[{i}].diffs has shape {diffs.shape} but inputs[{i}].vals has shape "
                             f"{vals.shape}; they must match")
    _, out_diffs = _blob_arrays(fn, "output", output)
    h = _step(fn, h)
    for i, blob in enumerate(inputs):
        _warn_if_steps_round(fn, f"inputs[{i}].vals", blob.vals, h, stacklevel=3)

    def run():  # f writes output.vals; a copy of them, checked against output.diffs
        f(*(inputs + (output,)))
        return _output(fn, "output.vals", output.vals, "output.diffs", out_diffs)

    arrays = [blob.vals for blob in inputs]
    originals = [vals.copy() for vals in arrays]  # f must leave every input blob as it got it
    try:
        return [_blob_gradient(fn, i, arrays, originals, h, run, out_diffs) for i in range(len(arrays))]
    except BaseException:  # f may have changed a blob other than the one being stepped
        for vals, original in zip(arrays, originals):
            np.copyto(vals, original)
        raise


def _blob_gradient(fn, i, arrays, originals, h, run, out_diffs):
    """The gradient for arrays[i], then a check that every input blob is as it was."""
    vals = arrays[i]
    diff = np.zeros_like(vals)  # the starter's zeros_like(diffs): the same once diffs has vals' shape and dtype
    it = np.nditer(vals, flags=["multi_index", "zerosize_ok"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        pos, neg = _both_sides(fn, f"inputs[{i}].vals", vals, idx, h, run, originals[i])
        diff[idx] = np.sum((pos - neg) * out_diffs) / (2.0 * h)
        it.iternext()
    for j, (other, original) in enumerate(zip(arrays, originals)):
        _unchanged(fn, f"inputs[{j}].vals", other, original)
    return diff


def eval_numerical_gradient_blobs(f, inputs, output, h=1e-5):
    """Numeric gradients for blobs (objects with .vals and .diffs): f(*inputs, output) writes output.vals.

    inputs is a tuple or list of blobs whose .vals are writeable float32/float64 arrays (perturbed in place and
    restored). Returns a list with the gradient of sum(output.vals * output.diffs) for each input blob.
    """
    return _gradient_blobs("eval_numerical_gradient_blobs", f, inputs, output, h)


def eval_numerical_gradient_net(net, inputs, output, h=1e-5):
    """eval_numerical_gradient_blobs for a net with a forward() method."""
    fn = "eval_numerical_gradient_net"
    if not callable(getattr(net, "forward", None)):
        _checks.fail(fn, f"net must have a forward() method, got {type(net).__name__}", TypeError)
    return _gradient_blobs(fn, lambda *args: net.forward(), inputs, output, h)


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5):
    """Compare numeric and analytic gradients at `num_checks` random entries (Python's random module), printing
    'numerical: %f analytic: %f, relative error: %e' for each. Returns None, as the starter does.

    x must be a non-empty writeable float32/float64 array (perturbed in place and restored); analytic_grad must
    have x's shape."""
    fn = "grad_check_sparse"
    _callable(fn, "f", f)
    x = _perturbable(fn, "x", x)
    analytic_grad = _numeric(fn, "analytic_grad", analytic_grad)
    if analytic_grad.shape != x.shape:
        _checks.fail(fn, f"analytic_grad must have x's shape {x.shape}, got {analytic_grad.shape}")
    if x.size == 0:
        _checks.fail(fn, f"x is empty (shape {x.shape}): there is no entry to check")
    num_checks = _checks.integer(fn, "num_checks", num_checks, minimum=0)
    h = _step(fn, h)
    original = x.copy()
    checked = []
    for _ in range(num_checks):
        ix = tuple(randrange(m) for m in x.shape)
        checked.append(ix)
        fxph, fxmh = _both_sides(fn, "x", x, ix, h, lambda: _scalar(fn, f(x)), original)
        _unchanged(fn, "x", x, original)  # before printing: a few checks, so each can afford it
        grad_numerical = (fxph - fxmh) / (2 * h)
        grad_analytic = analytic_grad[ix]
        rel = _sparse_error(grad_numerical, grad_analytic)
        print("numerical: %f analytic: %f, relative error: %e" % (grad_numerical, grad_analytic, rel))
    if checked:
        _warn_if_steps_round(fn, "x", x, h, stacklevel=2, entries=checked if x.ndim else None)


def _sparse_error(numerical, analytic):
    """The starter's |n - a| / (|n| + |a|), in its dtype (float32 digits print differently), and 0 for 0 against 0
    (the starter's nan; adding a tiny floor instead rounds away in float32)."""
    total = abs(numerical) + abs(analytic)
    return abs(numerical - analytic) / total if total != 0 else 0.0
