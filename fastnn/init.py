"""Weight initialisation for the classifiers.

`weight_scale` is what the CS231n models take: a number draws `weight_scale * np.random.randn(*shape)` (the
starter's gaussian, from numpy's global RNG so `np.random.seed` fixes it); 'xavier' and 'he' scale a standard
normal draw by sqrt(1 / fan_in) and sqrt(2 / fan_in). Weights are drawn one layer at a time in the model's
parameter order, so the same seed gives the same weights as the starter's models.
"""

import numbers

import numpy as np

from . import _checks

SCHEMES = ("xavier", "he")


def check_weight_scale(fn, weight_scale):
    """Refuse anything that is neither a finite number >= 0 nor one of SCHEMES."""
    weight_scale = _checks._scalar(weight_scale)  # a 0-d array (np.load's) holds its number, as gaussian's std
    if isinstance(weight_scale, str):
        if weight_scale.lower() not in SCHEMES:
            raise ValueError(f"{fn}: weight_scale must be a number or one of {SCHEMES}, got {weight_scale!r}")
        return weight_scale.lower()
    if isinstance(weight_scale, bool) or not isinstance(weight_scale, numbers.Real):
        raise TypeError(f"{fn}: weight_scale must be a number or one of {SCHEMES}, got {weight_scale!r}")
    if _checks.finite_float(weight_scale) is None or weight_scale < 0:
        raise ValueError(f"{fn}: weight_scale must be a finite number >= 0, got {weight_scale!r}")
    return float(weight_scale)


def cast_params(fn, params, dtype, weight_scale):
    """Each param cast to dtype in place of the dict; weights too large for dtype (weight_scale=1e300 in float32
    casts to inf, so every loss is NaN) are refused naming weight_scale, with the dict left as it was."""
    cast = {}
    for k, v in params.items():
        with np.errstate(over="ignore"):
            cast[k] = v.astype(dtype)
        if not np.all(np.isfinite(cast[k])):
            raise ValueError(f"{fn}: weight_scale {weight_scale!r} gives {k} weights that overflow "
                             f"{np.dtype(dtype).name}")
    params.update(cast)


def std_for(weight_scale, fan_in):
    """The standard deviation of the gaussian for a layer with `fan_in` inputs (an integer >= 1), for a
    weight_scale number >= 0 or 'xavier' or 'he' in any case."""
    weight_scale = check_weight_scale("std_for", weight_scale)
    fan_in = _checks.integer("std_for", "fan_in", fan_in, 1, maximum=2**63 - 1)
    if weight_scale == "xavier":
        return np.sqrt(1.0 / fan_in)
    if weight_scale == "he":
        return np.sqrt(2.0 / fan_in)
    return weight_scale


def _check_shape(fn, shape):
    """A tuple or list of integers >= 0 that fits in memory, as a tuple of ints."""
    if not isinstance(shape, (tuple, list)):
        _checks.fail(fn, f"shape must be a tuple or list of integers, got {type(shape).__name__}", TypeError)
    shape = tuple(_checks.integer(fn, f"shape[{i}]", s, minimum=0) for i, s in enumerate(shape))
    _checks.addressable(fn, f"shape {shape}", {"weights": shape}, allocated=("weights",))
    return shape


def _draw(fn, shape, std, dtype, named):
    """std * randn(*shape) as an array of dtype (a 0-d one for shape ()), refused where it overflows dtype."""
    with np.errstate(over="ignore"):
        drawn = np.asarray(std * np.random.randn(*shape)).astype(dtype)
    if not np.all(np.isfinite(drawn)):
        _checks.fail(fn, f"{named} gives weights that overflow {np.dtype(dtype).name}")
    return drawn


def gaussian(shape, std, dtype=np.float64):
    """std * np.random.randn(*shape), drawn in float64 and cast to `dtype` (as the starter casts).

    shape is a tuple or list of integers >= 0, std a finite number >= 0, dtype float32 or float64.
    """
    fn = "gaussian"
    std = _checks.number(fn, "std", std, low=0)
    return _draw(fn, _check_shape(fn, shape), std, _checks.float_dtype(fn, dtype), f"std {std:g}")


def weights(shape, weight_scale, dtype=np.float64):
    """Weights of `shape` for `weight_scale` (a number >= 0, or 'xavier' or 'he' in any case).

    fan_in is the product of every dimension but the last for affine weights (D, M), and C * HH * WW for conv
    filters (F, C, HH, WW).
    """
    fn = "weights"
    weight_scale = check_weight_scale(fn, weight_scale)
    shape, dtype = _check_shape(fn, shape), _checks.float_dtype(fn, dtype)
    fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else int(np.prod(shape[:-1]))
    return _draw(fn, shape, std_for(weight_scale, max(fan_in, 1)), dtype, f"weight_scale {weight_scale!r}")
