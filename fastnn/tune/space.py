"""The search space: loguniform, uniform, randint, lograndint and choice parameters, each sampling from a
np.random.Generator it is given, and the helpers that check a space, draw configs from it, narrow a range around
the best values and describe it as JSON; nothing here knows about trials, models or dask.
"""

import math
from dataclasses import dataclass

import numpy as np

from .. import _checks as check


def _bounds(fn, low, high, positive=False, integer=False):
    if integer:  # numpy draws int64: low from -2**63, high (excluded) up to 2**63
        low, high = (check.integer(fn, name, value, minimum=-2**63, maximum=2**63)
                     for name, value in (("low", low), ("high", high)))
    else:
        low, high = (check.number(fn, name, value) for name, value in (("low", low), ("high", high)))
    if not low < high or (positive and not low > 0):
        need = "0 < low < high" if positive else "low < high"
        check.fail(fn, f"the range needs {need}, got low={low!r}, high={high!r}")
    if not integer and not math.isfinite(float(high) - float(low)):
        check.fail(fn, f"the range's width high - low must be finite, got low={low!r}, high={high!r}")
    return (int(low), int(high)) if integer else (float(low), float(high))


class _Range:
    """A [low, high] parameter: its bounds checked by _bounds (with `bounds`' options) when it is made, and
    described as JSON under `kind`."""

    kind = ""
    bounds = {}

    def __post_init__(self):
        low, high = _bounds(self.kind, self.low, self.high, **self.bounds)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def describe(self):
        return {"type": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform(_Range):
    """A float whose logarithm is uniform in [log(low), log(high)]: learning rates, regularisation strengths."""

    low: float
    high: float
    log_scale = True
    kind = "loguniform"
    bounds = {"positive": True}

    def sample(self, rng):
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return min(max(value, self.low), self.high)  # exp(log(x)) may round one ulp outside

    def narrowed(self, values, widen):
        lo, hi = _widened(np.log(values), widen, math.log(self.low), math.log(self.high))
        # a bound clipped to the original one is that one: exp(log(0.1)) is 0.10000000000000002
        lo = self.low if lo <= math.log(self.low) else max(math.exp(lo), self.low)
        hi = self.high if hi >= math.log(self.high) else min(math.exp(hi), self.high)
        return LogUniform(lo, hi) if lo < hi else self  # too narrow to tell from a point once out of log space


@dataclass(frozen=True)
class Uniform(_Range):
    """A float uniform in [low, high]: dropout keep ratios, momentum."""

    low: float
    high: float
    log_scale = False
    kind = "uniform"

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def narrowed(self, values, widen):
        return Uniform(*_widened(np.asarray(values, dtype=float), widen, self.low, self.high))


@dataclass(frozen=True)
class RandInt(_Range):
    """An integer uniform in [low, high) (high excluded, as numpy's integers): hidden sizes, batch sizes."""

    low: int
    high: int
    log_scale = False
    kind = "randint"
    bounds = {"integer": True}

    def sample(self, rng):
        return int(rng.integers(self.low, self.high))

    def narrowed(self, values, widen):
        # The top values as the half-open range [min, max + 1), widened and clipped like the float ranges; equal
        # values (that range's width is 1, not 0) padded by widen times the whole range, as theirs are.
        lo, hi = min(values), max(values) + 1
        if hi - lo == 1:
            pad = math.floor(widen * (self.high - self.low))  # in integers: floats lose large bounds
            lo, hi = max(lo - pad, self.low), min(hi + pad, self.high)
        else:
            lo, hi = _widened(np.array([lo, hi], dtype=float), widen, self.low, self.high)
            lo, hi = math.floor(lo), math.ceil(hi)
        return RandInt(lo, hi) if lo < hi else self  # values outside the range (an earlier one's): all of it


@dataclass(frozen=True)
class LogRandInt(_Range):
    """An integer in [low, high) (high excluded, as randint's) whose logarithm is about uniform: the floor of a
    log-uniform draw in [low, high). Hidden sizes from 16 to 1024, where each doubling is as likely as the next."""

    low: int
    high: int
    log_scale = True
    kind = "lograndint"
    bounds = {"integer": True, "positive": True}

    def sample(self, rng):
        value = math.floor(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return min(max(value, self.low), self.high - 1)  # exp(log(x)) may round one ulp outside

    def narrowed(self, values, widen):
        # as LogUniform's, in log space, over the half-open [min, max + 1) of the top values, then to integers
        lo, hi = _widened(np.log([min(values), max(values) + 1]), widen, math.log(self.low), math.log(self.high))
        lo, hi = max(math.floor(math.exp(lo)), self.low), min(math.ceil(math.exp(hi)), self.high)
        return LogRandInt(lo, hi) if lo < hi else self


_JSON_SCALARS = (type(None), bool, int, float, str)


def _plain(value, fn):
    """`value` as plain Python (numpy scalars unwrapped, tuples as lists), refusing what JSON cannot hold."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, fn) for v in value]
    if not isinstance(value, _JSON_SCALARS):
        check.fail(fn, f"options must be numbers, strings, None or lists of them (results are saved as JSON), "
                       f"got {value!r} of type {type(value).__name__}", TypeError)
    return value


@dataclass(frozen=True)
class Choice:
    """One of a list of options, each equally likely: update rules, normalisations, layer sizes."""

    options: tuple
    log_scale = False

    def __post_init__(self):
        if isinstance(self.options, (str, bytes)) or not isinstance(self.options, (list, tuple)):
            check.fail("choice", f"options must be a list, got {self.options!r}", TypeError)
        if len(self.options) == 0:
            check.fail("choice", "options must not be empty")
        object.__setattr__(self, "options", tuple(_plain(v, "choice") for v in self.options))

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def narrowed(self, values, widen):
        return self  # options have no order to narrow along; every one stays possible

    def describe(self):
        return {"type": "choice", "options": list(self.options)}


def loguniform(low, high):
    """A float whose log is uniform between log(low) and log(high); needs 0 < low < high."""
    return LogUniform(low, high)


def uniform(low, high):
    """A float uniform between low and high; needs low < high."""
    return Uniform(low, high)


def randint(low, high):
    """An integer uniform in [low, high), high excluded; needs integers low < high."""
    return RandInt(low, high)


def lograndint(low, high):
    """An integer in [low, high), high excluded, whose log is about uniform; needs integers 0 < low < high."""
    return LogRandInt(low, high)


def choice(options):
    """One of `options` (a non-empty list of numbers, strings, None or lists of them), each equally likely."""
    return Choice(options)


PARAM_TYPES = (LogUniform, Uniform, RandInt, LogRandInt, Choice)


def _widened(values, widen, low, high):
    """[min, max] of `values` padded by `widen` times its width on each side, clipped to [low, high].

    Equal values (zero width) are padded by `widen` times the whole range instead; a result too narrow to tell
    from a point in floating point (a tiny `widen`) is the whole [low, high], so the range is never empty.
    """
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = widen * ((hi - lo) if hi > lo else (high - low))
    lo, hi = max(lo - pad, low), min(hi + pad, high)
    return (lo, hi) if lo < hi else (low, high)


def check_space(fn, space):
    """A dict of parameter name -> loguniform/uniform/randint/lograndint/choice."""
    if not isinstance(space, dict):
        check.fail(fn, f"space must be a dict of name -> loguniform/uniform/randint/lograndint/choice, "
                       f"got {type(space).__name__}", TypeError)
    for name, param in space.items():
        if not isinstance(name, str):
            check.fail(fn, f"space keys must be strings, got {name!r}", TypeError)
        if not isinstance(param, PARAM_TYPES):
            check.fail(fn, f"space[{name!r}] must be made by loguniform, uniform, randint, lograndint or choice, "
                           f"got {param!r}", TypeError)
    return dict(space)


def sample_configs(space, n_trials, rng):
    """`n_trials` configs (dicts of name -> value) drawn in order from the np.random.Generator `rng`."""
    fn = "sample_configs"
    space = check_space(fn, space)
    n_trials = check.integer(fn, "n_trials", n_trials, minimum=0)
    if not isinstance(rng, np.random.Generator):
        check.fail(fn, f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                       f"{type(rng).__name__}", TypeError)
    return [{name: param.sample(rng) for name, param in space.items()} for _ in range(n_trials)]


def describe_space(space):
    """The space as JSON-able dicts, e.g. {'learning_rate': {'type': 'loguniform', 'low': 1e-4, 'high': 0.1}}."""
    return {name: param.describe() for name, param in check_space("describe_space", space).items()}
