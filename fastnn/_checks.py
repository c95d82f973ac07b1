"""Argument checks shared by every public function.

Each check raises ValueError (bad values or shapes) or TypeError (bad types or dtypes) with a message that
starts with the public function's name and names the argument and the shapes involved. Checks never modify
their inputs; `floats` returns C-contiguous arrays, copying only when the input is not contiguous already.
"""

import functools
import math
import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Elements of a float64 array numpy can address; beyond it numpy says "array is too big" without the function.
_LARGEST_ARRAY = np.iinfo(np.intp).max // 8


def fail(fn, message, error=ValueError):
    raise error(f"{fn}: {message}")


def array(fn, name, x, ndim=None, min_ndim=None):
    """A float32/float64 ndarray with the expected number of dimensions, as C-contiguous."""
    if not isinstance(x, np.ndarray):
        got = f"a numpy scalar {type(x).__name__}" if isinstance(x, np.generic) else type(x).__name__
        fail(fn, f"{name} must be a numpy.ndarray of float32 or float64, got {got}", TypeError)
    if x.dtype not in FLOAT_DTYPES:
        if x.dtype.newbyteorder("=") in FLOAT_DTYPES:  # big-endian float32/float64: the same numbers, native
            return array(fn, name, x.astype(x.dtype.newbyteorder("=")), ndim, min_ndim)
        fail(fn, f"{name} must be float32 or float64, got dtype {x.dtype} with shape {x.shape}", TypeError)
    if ndim is not None and x.ndim != ndim:
        fail(fn, f"{name} must be {ndim}-D, got shape {x.shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        fail(fn, f"{name} must have at least {min_ndim} dimensions, got shape {x.shape}")
    if not x.flags.writeable:
        # numba compiles read-only arrays as a separate type: one copy here spares every kernel a second
        # compilation; the layer never writes to its inputs either way
        return np.array(x, order="C")
    return np.asarray(x, order="C")  # a plain ndarray (not a matrix or masked array); 0-d stays 0-d


class of_ndim:
    """An argument of `floats` that must also have `ndim` dimensions: floats(fn, w=of_ndim(w, 2))."""

    __slots__ = ("value", "ndim")

    def __init__(self, value, ndim):
        self.value, self.ndim = value, ndim


def floats(fn, *, cast_integers=False, **arrays):
    """Check several float arrays of one call and that they share a dtype; returns them in order.

    Each value is an array, or of_ndim(array, ndim) to require its number of dimensions too (a user's tuple is
    never read as such a spec). Mixed float32/float64 is a TypeError: fastnn never casts silently in either
    direction. cast_integers: an integer or bool array becomes a new array of the call's float dtype (float64 if
    no argument has one), as the model's dtype rules everywhere in fastnn (NumPy would promote int64 with float32
    to float64): the CS231n notebooks pass a layer `b = np.array([0, 128])` or `gamma = np.asarray([3, 4, 5])`.
    """
    if cast_integers:
        arrays = _integers_as_float(fn, arrays)
    out = []
    for name, spec in arrays.items():
        x, ndim = (spec.value, spec.ndim) if isinstance(spec, of_ndim) else (spec, None)
        out.append(array(fn, name, x, ndim=ndim))
    same_dtype(fn, dict(zip(arrays, out)))
    return out


def _integer_array(x):
    return isinstance(x, np.ndarray) and x.dtype.kind in "biu"


def _integers_as_float(fn, arrays):
    """arrays (floats' arguments) with each integer or bool array cast to the one float dtype among the others
    (float64 if none); the same dict when there is none to cast."""
    for spec in arrays.values():  # a plain loop: this runs on every layer call
        if _integer_array(spec.value if type(spec) is of_ndim else spec):
            break
    else:
        return arrays
    given = {name: spec.value if isinstance(spec, of_ndim) else spec for name, spec in arrays.items()}
    floats_given = {name: x.dtype.newbyteorder("=") for name, x in given.items()
                    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype.newbyteorder("=") in FLOAT_DTYPES}
    same_dtype(fn, floats_given)  # named with the dtypes as given
    target = next(iter(floats_given.values())) if floats_given else np.dtype(np.float64)
    cast = {}
    for name, spec in arrays.items():
        x = given[name].astype(target) if _integer_array(given[name]) else given[name]
        cast[name] = of_ndim(x, spec.ndim) if isinstance(spec, of_ndim) else x
    return cast


def float_dtype(fn, dtype, name="dtype"):
    """np.dtype(dtype), which must be float32 or float64 (a string numpy does not know is named, not numpy's).
    None is refused: np.dtype(None) is float64, a silent default where the caller meant to choose."""
    if dtype is None:
        fail(fn, f"{name} must be float32 or float64, got None", TypeError)
    try:
        checked = np.dtype(dtype)
    except (TypeError, ValueError):
        fail(fn, f"{name} must be float32 or float64, got {dtype!r}", TypeError)
    if checked not in FLOAT_DTYPES:
        fail(fn, f"{name} must be float32 or float64, got {checked}", TypeError)
    return checked


def same_dtype(fn, named_arrays):
    """named_arrays: name -> array (or dtype); None entries are skipped."""
    dtypes = {name: np.dtype(getattr(a, "dtype", a)) for name, a in named_arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in dtypes.items())
        fail(fn, f"all arrays must share one float dtype (float32 or float64), got {listed}; fastnn does not cast "
                 "them for you (cast the data to the model's dtype in its loss, X = X.astype(self.dtype), as "
                 "FullyConnectedNet does; float64 CIFAR-10 into float32 params would otherwise compute in float64)",
             TypeError)


def batch(fn, name, x):
    """The leading (batch) dimension must be at least 1."""
    if x.ndim == 0 or x.shape[0] < 1:
        fail(fn, f"{name} must have a non-empty batch dimension, got shape {x.shape}")


def fits_input_dim(row_shape, input_dim):
    """Whether rows of row_shape fit a model built for input_dim (a tuple of counts): one count is a size (an affine
    first layer takes (3, 32, 32) and (3072,) alike), several are a shape (C, H, W)."""
    if len(input_dim) == 1:
        return math.prod(row_shape) == input_dim[0]
    return tuple(row_shape) == tuple(input_dim)


def shape(fn, name, x, expected):
    if tuple(x.shape) != tuple(expected):
        fail(fn, f"{name} must have shape {tuple(expected)}, got {tuple(x.shape)}")


def _scalar(value):
    """The number in a 0-d integer or float array (np.load of an .npz gives its numbers so, and the starter
    computed with them); anything else as given."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return value[()]
    return value


def native_dtype(a):
    """a's dtype in native byte order (a big-endian float32 holds the same numbers), None for a non-array."""
    dtype = getattr(a, "dtype", None)
    return dtype.newbyteorder("=") if isinstance(dtype, np.dtype) else None


def compiled_float_dtype(value):
    """np.dtype(value) where it is float32 or float64 in native byte order (the dtypes the kernels compile for),
    else None: None itself (np.dtype's float64), anything np.dtype refuses, its parser's SyntaxError (',4')."""
    if value is None:
        return None
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError, SyntaxError):
        return None
    return dtype if dtype in FLOAT_DTYPES and dtype.isnative else None


def integer(fn, name, value, minimum=None, maximum=None):
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        fail(fn, f"{name} must be an integer, got {value!r}", TypeError)
    value = int(value)
    if minimum is not None and value < minimum:
        fail(fn, f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        fail(fn, f"{name} must be <= {maximum}, got {value}")
    return value


def geometry(fn, name, value, minimum):
    """A stride, pad or window size: an integer >= minimum that the kernels' 64-bit indices can hold."""
    value = integer(fn, name, value, minimum)
    if value > 2**63 - 1:
        fail(fn, f"{name} must be at most 2**63 - 1 (the kernels index in 64-bit integers), got {value}")
    return value


def finite_float(value):
    """float(value) for a real number, or None where that is not finite; an integer beyond float's range
    (10**400) is None too, where float() itself raises."""
    try:
        converted = float(value)
    except OverflowError:
        return None
    return converted if np.isfinite(converted) else None


def number(fn, name, value, low=None, high=None, low_open=False, high_open=False):
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        fail(fn, f"{name} must be a real number, got {value!r}", TypeError)
    converted = finite_float(value)
    if converted is None:
        shown = "an integer beyond float's range" if isinstance(value, numbers.Integral) else value
        fail(fn, f"{name} must be finite, got {shown}")
    value = converted
    if low is not None and (value <= low if low_open else value < low):
        fail(fn, f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        fail(fn, f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def plain(d, **checked):
    """A copy of the param dict d with its checked entries replaced by the Python ints and floats the checks
    returned. Backends then never compute with a numpy scalar, whose own small type an arithmetic result keeps
    (NumPy 2): np.uint8(200) as pad wrapped H + 2 * pad around. A copy, so a cache holds the values its forward
    used: a conv_param changed between forward and backward gave a silently wrong dx from a Winograd cache."""
    return {**d, **{key: value for key, value in checked.items() if key in d}}


def param_dict(fn, name, d, required=()):
    if not isinstance(d, dict):
        fail(fn, f"{name} must be a dict, got {type(d).__name__}", TypeError)
    missing = [k for k in required if k not in d]
    if missing:
        fail(fn, f"{name} is missing required key(s) {missing}; got keys {sorted(map(str, d))}")
    return d


def mode_value(fn, name, value, allowed=("train", "test")):
    """value, or the one entry of a one-element numpy array (the starter's `mode == 'train'` read either); an
    array of several entries is named, not numpy's "truth value of an array is ambiguous"."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            fail(fn, f"{name}['mode'] must be one of {allowed}, got an array of shape {value.shape}")
        return value.item()
    return value


def mode(fn, name, value, allowed=("train", "test")):
    if mode_value(fn, name, value, allowed) not in allowed:
        fail(fn, f"{name}['mode'] must be one of {allowed}, got {value!r}")
    return value


def labels(fn, y, num_rows, num_classes):
    """Integer class labels, shape (N,), each in [0, num_classes); a list or tuple of ints as an array (the
    starter's fancy indexing took one)."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
        if y.size == 0:
            y = y.astype(np.intp)
    if not isinstance(y, np.ndarray):
        fail(fn, f"y must be a numpy.ndarray of integer labels, got {type(y).__name__}", TypeError)
    y = np.asarray(y)  # a masked array's min and max skip masked entries, which the kernels would index with
    if y.dtype.kind not in "iu":  # not bool, nor timedelta64 (an integer subtype to numpy)
        fail(fn, f"y must hold integer class labels, got dtype {y.dtype}", TypeError)
    if y.shape != (num_rows,):
        fail(fn, f"y must have shape ({num_rows},) to match the scores, got {y.shape}")
    if num_rows and (y.min() < 0 or y.max() >= num_classes):
        fail(fn, f"y must lie in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.intp)


def output_size(fn, what, size, window, stride, pad, exact):
    """1 + (size + 2*pad - window) / stride, which must be a whole number >= 1 when `exact`."""
    span = size + 2 * pad - window
    if span < 0:
        padded = f"padded input {size} + 2*{pad}" if pad else f"input {size}"
        fail(fn, f"{what}: window {window} is larger than the {padded}")
    if exact and span % stride:
        padded = f"input {size} + 2*pad {pad}" if pad else f"input {size}"
        fail(fn, f"{what}: ({padded} - window {window}) = {span} is not divisible by stride {stride}, so the "
                 "output size is not a whole number")
    return 1 + span // stride


def conv_param(fn, conv_param, x_shape, w_shape, exact=True):
    """Validate conv_param against x (N,C,H,W) and w (F,C,HH,WW); returns (stride, pad, H_out, W_out)."""
    param_dict(fn, "conv_param", conv_param, required=("stride", "pad"))
    stride = geometry(fn, "conv_param['stride']", conv_param["stride"], 1)
    pad = geometry(fn, "conv_param['pad']", conv_param["pad"], 0)
    if x_shape[1] != w_shape[1]:
        fail(fn, f"x has {x_shape[1]} channels but w expects {w_shape[1]}: x {x_shape}, w {w_shape}")
    if w_shape[2] < 1 or w_shape[3] < 1:
        fail(fn, f"w's filters must be at least 1x1, got w {w_shape}")
    h_out = output_size(fn, f"height (x {x_shape}, w {w_shape})", x_shape[2], w_shape[2], stride, pad, exact)
    w_out = output_size(fn, f"width (x {x_shape}, w {w_shape})", x_shape[3], w_shape[3], stride, pad, exact)
    N, C, H, W = x_shape
    F, _, HH, WW = w_shape
    addressable(fn, f"stride {stride} and pad {pad} with x {x_shape} and w {w_shape}", {
        "a padded input": (N, C, H + 2 * pad, W + 2 * pad),
        "an output": (N, F, h_out, w_out),
        "im2col columns": (C * HH * WW, N * h_out * w_out),
    }, allocated=("a padded input", "an output"))
    return stride, pad, h_out, w_out


@functools.cache  # asked on every convolution's check; it does not change
def _physical_memory():
    """The machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def addressable(fn, cause, shapes, allocated=()):
    """Refuse a geometry whose arrays (what -> shape) numpy could not even address, or, for those named in
    `allocated` (made on every path), whose float32 array alone would not fit in the machine's memory: a typo'd
    pad of 100000 met a MemoryError naming an array of some path's own, not the function."""
    for what, shape in shapes.items():
        if math.prod(shape) > _LARGEST_ARRAY:
            fail(fn, f"{cause} need {what} of shape {shape}, larger than any array can be")
    memory = _physical_memory()
    for what in allocated if memory else ():
        gigabytes = math.prod(shapes[what]) * 4 / 2**30
        if gigabytes * 2**30 > memory:
            fail(fn, f"{cause} need {what} of shape {shapes[what]}: at least {gigabytes:,.0f} GiB, more than this "
                     f"machine's {memory / 2**30:,.0f} GiB of memory")


def params_fit(fn, cause, shapes):
    """Refuse a model whose params (name -> shape) numpy could not address, or that would not fit in the
    machine's memory together as they are drawn (float64), before any is drawn."""
    addressable(fn, cause, shapes)
    memory = _physical_memory()
    total = 8 * sum(math.prod(shape) for shape in shapes.values())
    if memory and total > memory:
        largest = sorted(shapes.items(), key=lambda item: -math.prod(item[1]))[:2]
        listed = ", ".join(f"{name} {shape}" for name, shape in largest)
        fail(fn, f"{cause} give params of at least {total / 2**30:,.0f} GiB ({listed}, ...), more than this "
                 f"machine's {memory / 2**30:,.0f} GiB of memory")


def pool_param(fn, pool_param, x_shape, exact=True, name="x"):
    """Validate pool_param against the pool's input `name` (N,C,H,W); returns (pool_height, pool_width, stride,
    H_out, W_out)."""
    param_dict(fn, "pool_param", pool_param, required=("pool_height", "pool_width", "stride"))
    ph = geometry(fn, "pool_param['pool_height']", pool_param["pool_height"], 1)
    pw = geometry(fn, "pool_param['pool_width']", pool_param["pool_width"], 1)
    stride = geometry(fn, "pool_param['stride']", pool_param["stride"], 1)
    h_out = output_size(fn, f"height ({name} {x_shape}, pool {ph}x{pw})", x_shape[2], ph, stride, 0, exact)
    w_out = output_size(fn, f"width ({name} {x_shape}, pool {ph}x{pw})", x_shape[3], pw, stride, 0, exact)
    return ph, pw, stride, h_out, w_out


def cache_tuple(fn, cache, length, what):
    """A cache must be the tuple its forward returned; a cache of another layer is refused."""
    if not isinstance(cache, tuple) or len(cache) != length:
        got = f"a tuple of length {len(cache)}" if isinstance(cache, tuple) else type(cache).__name__
        fail(fn, f"cache must be the {length}-tuple returned by {what}, got {got}", TypeError)
    return cache


def dout_like(fn, dout, expected_shape, dtype):
    dout = array(fn, "dout", dout)
    if dout.shape != tuple(expected_shape):
        fail(fn, f"dout must have the forward output's shape {tuple(expected_shape)}, got {dout.shape}")
    if dout.dtype != dtype:
        fail(fn, f"dout has dtype {dout.dtype} but the forward pass ran in {dtype}", TypeError)
    return dout
