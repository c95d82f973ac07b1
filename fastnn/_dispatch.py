"""Pick the path that runs a layer: the compiled kernels (fastnn.compiled) or the NumPy reference.

Both paths expose the same cs231n-level functions under the same names and build the same caches, so a
forward on one path and a backward on the other agree. `run(name, *args)` is the only entry point.
"""

import importlib
import warnings

import numpy as np

from . import _options, reference


class VerificationError(AssertionError):
    """Raised by backend='verify' when the compiled kernel and the reference disagree."""


_compiled_module = None
_compiled_failed = None


def _compiled():
    """The fastnn.compiled module, imported on first use (this is what imports numba)."""
    global _compiled_module, _compiled_failed
    if _compiled_module is None and _compiled_failed is None:
        try:
            _compiled_module = importlib.import_module("fastnn.compiled")
        except ImportError as error:  # numba missing or broken: auto falls back, jit reports it
            _compiled_failed = error
    return _compiled_module


def compiled_function(name):
    module = _compiled()
    return None if module is None else getattr(module, name, None)


def run(name, *args):
    """Run layer `name` on the path the current backend selects."""
    backend = _options.current().backend
    reference_fn = getattr(reference, name)
    if backend == "reference":
        return reference_fn(*args)
    fast_fn = compiled_function(name)
    if fast_fn is None:
        if backend in ("auto", "verify"):  # nothing to verify against: the reference is the answer
            if _compiled_failed is not None:
                _warn_fallback_once(_compiled_failed)
            return reference_fn(*args)
        reason = f" (compiled kernels failed to import: {_compiled_failed})" if _compiled_failed else ""
        raise NotImplementedError(
            f"{name}: no compiled kernel exists for this layer{reason}; "
            "use fastnn.options(backend='auto') to fall back to the NumPy reference"
        )
    if backend == "verify":
        return _verify(name, reference_fn, fast_fn, args)
    return fast_fn(*args)


_warned = False


def _warn_fallback_once(error):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"fastnn: compiled kernels unavailable ({error}); using the NumPy reference", stacklevel=3)


# The backwards whose every gradient is a sum of products: dx of dout and w, dw of dout and x, db of dout. A float
# sum is defined only to within a few units of roundoff of the sum of its terms' magnitudes S, whatever the size
# of the sum itself (at most n u S in any order of summation; measured here up to 2.5 eps S, on the widest 3x3
# layers, C = F = 1024, float32). So each of their gradients is held to SUM_ROUNDING eps of its own S rather
# than to the other gradients: a bias gradient that cancels to noise (the layer feeds a batchnorm) passes, and a
# dw that is small because x is tiny is still held to x's scale. S costs a second reference backward, so it is
# computed only for a gradient that fails against its own largest value.
_SUMS_OF_PRODUCTS = ("affine_backward", "conv_backward_fast", "conv_backward_naive")
SUM_ROUNDING = 8


def _sums_of_magnitudes(reference_fn, args):
    """{'output i': S}: the largest sum of |terms| among gradient i's entries, for a backward in _SUMS_OF_PRODUCTS.
    The reference is bilinear in dout and the cache, so run on their absolute values it computes these sums."""
    from .testing import finite_scale

    dout, cache = args
    magnitudes = tuple(np.abs(c) if isinstance(c, np.ndarray) else c for c in cache)
    sums = reference_fn(np.abs(dout), magnitudes)
    return {f"output {i}": finite_scale(s) for i, s in enumerate(sums) if s is not None}


def _copy_arrays(value):
    """value with every array in it copied, through tuples, lists and dicts; anything else shared. Not deepcopy:
    a param dict may carry extra keys of the user's (ignored by the layers) that cannot be copied, a lock say."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value) in (tuple, list):
        return type(value)(_copy_arrays(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy_arrays(v) for k, v in value.items()}
    return value


def _verify(name, reference_fn, fast_fn, args):
    from .testing import finite_scale, max_relative_error, tolerance

    reference_args = _copy_arrays(args)
    rng_state = np.random.get_state()  # both paths must draw the same dropout key
    expected = reference_fn(*reference_args)
    np.random.set_state(rng_state)
    actual = fast_fn(*args)

    direction = "backward" if ("backward" in name or name.endswith("_loss")) else "forward"
    if direction == "forward" and isinstance(actual, tuple):
        pairs = [("out", actual[0], expected[0])]  # caches may hold equivalent but different arrays
    elif isinstance(actual, tuple):
        pairs = [(f"output {i}", a, e) for i, (a, e) in enumerate(zip(actual, expected))]
    else:
        pairs = [("output", actual, expected)]
    for arg, ref_arg in zip(args, reference_args):  # param dicts the layer writes into (running stats)
        if isinstance(arg, dict):
            pairs += [(f"param {k!r}", v, ref_arg[k]) for k, v in arg.items() if isinstance(v, np.ndarray)]

    numeric = (np.ndarray, float, np.floating)
    arrays = [(what, np.asarray(a), np.asarray(e)) for what, a, e in pairs if isinstance(a, numeric)]
    # Each result is measured against its own largest finite value or a floor, whichever is larger. Backward: for a
    # sum of products, its own rounding scale (_SUMS_OF_PRODUCTS); otherwise the largest of the call's gradients (a
    # bias gradient feeding a batchnorm is rounding noise on both paths, meaningful only against the others).
    # Forward: the largest of the call's input arrays (a batchnorm of a feature constant over the batch is exactly 0
    # on one path and 4e-15 on the other); not the other results, whose scale can be far larger (running_var of
    # pixel-scale data) and would hide a wrong output.
    if direction == "backward":
        floor = max((finite_scale(e) for _, _, e in arrays), default=0.0)
    else:
        floor = max((finite_scale(arg) for arg in args if isinstance(arg, np.ndarray) and arg.dtype.kind == "f"),
                    default=0.0)
    sums = None
    # A result is held to its layer's precision: a float32 layer's loss comes back as a Python float (float64)
    # but was computed from float32 scores, differently rounded on each path.
    single = any(isinstance(arg, np.ndarray) and arg.dtype == np.float32 for arg in args)
    for what, a, e in arrays:
        if a.shape != e.shape:
            raise VerificationError(f"{name}: {what} has shape {a.shape} on the jit path, {e.shape} in the reference")
        precision = np.dtype(np.float32) if single else a.dtype
        limit = tolerance(precision, direction)
        by_rounding = name in _SUMS_OF_PRODUCTS and what.startswith("output")
        error, where = max_relative_error(a, e, floor=0.0 if by_rounding else floor)
        if by_rounding and not error <= limit:  # within its own scale passes; otherwise held to its rounding scale
            sums = _sums_of_magnitudes(reference_fn, args) if sums is None else sums
            rounding = SUM_ROUNDING * np.finfo(precision).eps * sums.get(what, 0.0) / limit
            error, where = max_relative_error(a, e, floor=rounding)
        if not error <= limit:
            raise VerificationError(
                f"{name}: jit and reference disagree on {what}: max relative error {error:.3e} at index {where} "
                f"(jit {a[where]!r}, reference {e[where]!r}), tolerance {limit:.0e} for {precision} {direction}"
            )
    return actual
