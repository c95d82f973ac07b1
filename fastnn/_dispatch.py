"""Pick the path that runs a layer: the compiled kernels (fastnn.compiled) or the NumPy reference.

Both paths expose the same cs231n-level functions under the same names and build the same caches, so a
forward on one path and a backward on the other agree. `run(name, *args)` is the only entry point.
"""

import importlib
import warnings

import numpy as np

from . import _calls, _options, reference


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
    _calls.enter()
    try:
        return _run(name, args)
    except MemoryError as error:  # numpy's names an array of the path's own (a workspace), not the layer
        if str(error).startswith(f"{name}: "):
            raise
        raise MemoryError(f"{name}: {error}") from error
    finally:
        _calls.leave()


def _run(name, args):
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
# The forwards x w + b are such sums too: a conv of pixel data by weights of 1e-3 has outputs 1e3 times smaller
# than its input, and held to that input's scale, an output 1e-3 off passed in float32.
_SUMS_OF_PRODUCTS = ("affine_backward", "conv_backward_fast", "conv_backward_naive", "affine_forward",
                     "conv_forward_fast", "conv_forward_naive")
SUM_ROUNDING = 8


def _magnitudes(value):
    return np.abs(value) if isinstance(value, np.ndarray) else value


def _sums_of_magnitudes(reference_fn, args, direction):
    """{what: S}: the largest sum of |terms| among a result's entries, for a layer in _SUMS_OF_PRODUCTS. The
    reference is linear in each array it reads, so run on their absolute values it computes these sums."""
    from .testing import finite_scale

    if direction == "forward":
        out, _ = reference_fn(*(_magnitudes(arg) for arg in args))
        return {"out": finite_scale(out)}
    dout, cache = args
    sums = reference_fn(np.abs(dout), tuple(_magnitudes(c) for c in cache))
    return {f"output {i}": finite_scale(s) for i, s in enumerate(sums) if s is not None}


def _copy_arrays(value, copy=np.copy):
    """value with every array in it replaced by copy(array), through tuples, lists and dicts; anything else
    shared. Not deepcopy: a param dict may carry extra keys of the user's (ignored by the layers) that cannot be
    copied, a lock say."""
    if isinstance(value, np.ndarray):
        return copy(value)
    if type(value) in (tuple, list):
        return type(value)(_copy_arrays(v, copy) for v in value)
    if isinstance(value, dict):
        return {k: _copy_arrays(v, copy) for k, v in value.items()}
    return value


def _verify(name, reference_fn, fast_fn, args, direction=None):
    """fast_fn(*args), once it agrees with reference_fn(*args) (see _verified). direction: "forward" or
    "backward" (whose every result is compared), "update" (an optimizer's: every result, each against its own
    scale), else told by the name."""
    actual = _verified(name, reference_fn, fast_fn, _keyed(name, args), direction)
    if actual is not None and name == "dropout_forward" and args[1] is not actual[1][0]:
        out, (_, mask) = actual  # the cache holds the caller's dict, not the key drawn for it
        actual = out, (args[1], mask)
    return actual


def _keyed(name, args):
    """args, with an unseeded train-mode dropout's key drawn now, once, as its seed: both paths must use the same
    mask, and rewinding numpy's global RNG between them (as this did) handed other threads' draws out again."""
    if name != "dropout_forward" or args[1].get("mode") != "train" or args[1].get("seed") is not None:
        return args
    from .reference.dropout import dropout_key

    return (args[0], dict(args[1], seed=dropout_key(args[1]))) + tuple(args[2:])


def _verified(name, reference_fn, fast_fn, args, direction=None):
    from .testing import finite_scale, max_relative_error, tolerance

    # a forward writes its running statistics into the param dicts it is given: the float64 check below needs
    # them as they came
    pristine = tuple(_copy_arrays(arg) if isinstance(arg, dict) else arg for arg in args)
    reference_args = _copy_arrays(args)
    expected = reference_fn(*reference_args)
    actual = fast_fn(*args)

    if direction is None:
        direction = "backward" if ("backward" in name or name.endswith("_loss")) else "forward"
    # An update rule's results are of unrelated scales (Adam's v ~1e-9 where w ~1e-2): against the largest of them,
    # a v never stored passed
    own_scale = direction == "update"
    direction = "backward" if own_scale else direction
    actual_results = _results(actual, args, direction)
    expected_results = _results(expected, reference_args, direction)
    # Each result is measured against its own largest finite value or a floor, whichever is larger. Backward: for a
    # sum of products, its own rounding scale (_SUMS_OF_PRODUCTS); for a loss and its dx, theirs (_loss_rounding);
    # otherwise the largest of the call's gradients (a bias gradient feeding a batchnorm is rounding noise on both
    # paths, meaningful only against the others). A forward's output: its own largest value (an elementwise
    # layer), its sums of magnitudes as for those backwards (x w + b), or a float64 norm's rounding floor
    # (_norm_noise); its running statistics: the largest of the call's input arrays. Never the other results,
    # whose scale can be far larger (running_var of pixel-scale data) and would hide a wrong output.
    # A result is held to its layer's precision: a float32 layer's loss comes back as a Python float (float64)
    # but was computed from float32 scores, differently rounded on each path.
    single = any(isinstance(arg, np.ndarray) and arg.dtype == np.float32 for arg in args)
    if own_scale:
        floor = 0.0
    elif direction == "backward":
        floor = max((finite_scale(e) for e in expected_results.values()), default=0.0)
    else:
        floor = _largest_input(args)
    sums = None
    higher = _HIGHER_PRECISION.get(np.dtype(np.float32 if single else np.float64))
    truth = None
    missing = [what for what in expected_results if what not in actual_results]
    if missing:
        raise VerificationError(f"{name}: the reference gave {missing[0]}, the jit path none")
    for what, a in actual_results.items():
        e = expected_results.get(what)
        if e is None:
            raise VerificationError(f"{name}: the jit path gave {what}, the reference none")
        if a.shape != e.shape:
            raise VerificationError(f"{name}: {what} has shape {a.shape} on the jit path, {e.shape} in the reference")
        if a.dtype != e.dtype:
            raise VerificationError(f"{name}: {what} has dtype {a.dtype} on the jit path, {e.dtype} in the reference")
        precision = np.dtype(np.float32) if single else e.dtype
        limit = tolerance(precision, direction)
        loss_rounding = _loss_rounding(name, what, args)
        by_rounding = name in _SUMS_OF_PRODUCTS and (what == "out" or what.startswith("output"))
        by_noise = what == "out" and name in _NORM_FORWARDS and not single  # float32: the check in float64 below
        if loss_rounding is not None:
            what_floor = SUM_ROUNDING * np.finfo(precision).eps * loss_rounding / limit
        elif what == "out" or by_rounding or (single and name in _NORM_FORWARDS):  # a float32 norm's statistics too
            what_floor = 0.0
        else:
            what_floor = floor
        error, where = max_relative_error(a, e, floor=what_floor)
        if not error <= limit and (by_rounding or by_noise):  # within its own scale passes; else its rounding's
            if by_rounding:
                sums = _sums_of_magnitudes(reference_fn, args, direction) if sums is None else sums
                what_floor = SUM_ROUNDING * np.finfo(precision).eps * sums.get(what, 0.0) / limit
            else:
                what_floor = _norm_noise(name, args, limit, floor)
            error, where = max_relative_error(a, e, floor=what_floor)
        if error <= limit:
            continue
        if higher is not None:
            # The reference is no ground truth: rounding it more than the kernel (a log-sum-exp, a hinge decided on
            # float32 margins, a mean 1 ulp off divided by the spread) made a better kernel fail. The kernel passes
            # when it is within tolerance of the reference run in higher precision (float64 for float32 inputs,
            # long double for float64 where it is wider) on the same inputs, or at most twice as far from it as
            # the reference is.
            if truth is None:
                truth = _precise_results(reference_fn, pristine, direction, higher)
            t = truth[what]
            jit_off, jit_where = max_relative_error(a, t, floor=what_floor)
            reference_off, _ = max_relative_error(e, t, floor=what_floor)
            if jit_off <= limit or jit_off <= 2 * reference_off:  # 2: two roundings of one ill-posed sum differ
                continue
            error, where = jit_off, jit_where
        raise VerificationError(
            f"{name}: jit and reference disagree on {what}: max relative error {error:.3e} at index {where} "
            f"(jit {a[where]!r}, reference {e[where]!r}"
            + (f", reference computed in {np.dtype(higher).name} {truth[what][where]!r}" if truth is not None else "")
            + f"), tolerance {limit:.0e} for {precision} {direction}"
        )
    return actual


# Normalisations are held to their own outputs' scale, not their inputs': an output of pixel-scale data (mean 100)
# 1e-3 off passed in float32 against the floor max|x| = 100, 1e-8 off in float64. In float32 their rounding (a mean
# 1 ulp off, divided by the spread) is what the float64 check absorbs: the kernels' statistics are float64, so
# they are the closer to it. In float64 the floor is _norm_noise.
_NORM_FORWARDS = ("batchnorm_forward", "spatial_batchnorm_forward", "layernorm_forward",
                  "spatial_groupnorm_forward", "affine_bn_relu_forward", "affine_ln_relu_forward")


def _largest_input(args):
    from .testing import finite_scale

    return max((finite_scale(arg) for arg in args if isinstance(arg, np.ndarray) and arg.dtype.kind == "f"),
               default=0.0)


def _norm_noise(name, args, limit, largest_input):
    """The floor of a float64 norm forward's output: its rounding noise where the output is nothing else. x - mean
    of a feature (or row) constant up to rounding is a few ulps of |x| (of the sums |x| |w| + |b| after an affine),
    which the norm scales by up to 1 / sqrt(eps) and gamma: such a batchnorm output is exactly 0 on one path and
    4e-15 on the other. Never above the largest input (_largest_input(args)), the floor before."""
    from .testing import finite_scale

    fused = name.startswith("affine_")
    x_scale = finite_scale(reference.affine_forward(*map(np.abs, args[:3]))[0]) if fused else largest_input
    gamma = args[3] if fused else args[1]
    eps = float(next(arg for arg in args if isinstance(arg, dict)).get("eps", 1e-5))  # > 0: the layers check it
    noise = SUM_ROUNDING * np.finfo(np.float64).eps * x_scale * finite_scale(gamma) / np.sqrt(eps)
    return min(noise / limit, largest_input)


def _results(result, call_args, direction):
    """{what: array} of a call's results to compare: a forward's output (caches may hold equivalent but different
    arrays), a backward's every output, and the arrays of the param dicts the call wrote into (running stats)."""
    if direction == "forward" and isinstance(result, tuple):
        pairs = [("out", result[0])]
    elif isinstance(result, tuple):
        pairs = [(f"output {i}", r) for i, r in enumerate(result)]
    else:
        pairs = [("output", result)]
    for arg in call_args:
        if isinstance(arg, dict):
            # float arrays only: a layer writes running statistics; a user's other keys (ints, strings) are not
            # its results, and no tolerance applies to them
            pairs += [(f"param {k!r}", v) for k, v in arg.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    numeric = (np.ndarray, float, np.floating)
    return {what: np.asarray(r) for what, r in pairs if isinstance(r, numeric)}


# The precision a disagreement is settled in: long double only where it is wider than float64 (x86's 80 bits;
# on platforms where it is float64 itself, float64 results keep the floors above alone).
_HIGHER_PRECISION = {np.dtype(np.float32): np.dtype(np.float64)}
if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
    _HIGHER_PRECISION[np.dtype(np.float64)] = np.dtype(np.longdouble)


def _precise_results(reference_fn, args, direction, dtype):
    """The reference's results on copies of the call's float arrays in `dtype` (a dropout's key is in its args)."""
    args = _copy_arrays(args, lambda a: a.astype(dtype) if a.dtype.kind == "f" else a.copy())
    return _results(reference_fn(*args), args, direction)


def _loss_rounding(name, what, args):
    """For svm_loss and softmax_loss, the magnitude their rounding scales with: M = 1 + log C + 2 max|x| for the
    loss (each row's terms: a log-sum-exp in [0, log C] and a score gap of up to 2 max|x|) and M / N for dx (each
    entry a difference of such terms, over N). Measured against the call's largest result instead, dx (~1/N) was
    held to the loss's scale (~log C), and a dx 1% off passed. None for other layers and outputs."""
    from .testing import finite_scale

    if name not in ("svm_loss", "softmax_loss") or what not in ("output 0", "output 1"):
        return None
    x = args[0]
    magnitude = 1.0 + np.log(max(x.shape[1], 1)) + 2.0 * finite_scale(x)
    return magnitude if what == "output 0" else magnitude / max(x.shape[0], 1)
