"""Datasets: the cs231n.data_utils loaders for CIFAR-10, Tiny ImageNet, the ImageNet validation sample and pickled
models (the last three in fastnn._imagenet), the embedded 8x8 digits, and preprocessing helpers.

CIFAR-10's python batches are pickles. fastnn reads every pickle with a restricted unpickler that admits only
what NumPy arrays, NumPy scalars and builtin containers need (and builds no object-dtype array or scalar from raw
bytes); anything else (a pickle that would import a module or call a function) is refused with an
UnsafePickleError naming the file; a malformed or truncated one is a MalformedPickleError naming the file. Both
are pickle.UnpicklingError and ValueError. Nothing here uses the unrestricted pickle loader, and np.load always
runs with pickles disallowed.
"""

import builtins
import codecs
import importlib.resources
import io
import math
import numbers
import os
import pickle
import re
import struct
import sys
import zipfile
import zlib

import numpy as np

from . import _checks
from ._imagenet import load_imagenet_val, load_models, load_tiny_imagenet  # noqa: F401 (re-exported)

CIFAR10_ENV = "FASTNN_CIFAR10_DIR"
CIFAR10_SUBDIR = os.path.join("datasets", "cifar-10-batches-py")
CIFAR10_IMAGE_SIZE = 3 * 32 * 32
CIFAR10_NUM_CLASSES = 10


# ----------------------------------------------------------------------------------------------------------
# Safe pickles


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for something fastnn's restricted unpickler does not admit: a global outside its list, a NumPy
    array or scalar of an object dtype built from raw bytes, or a NumPy reconstruction no NumPy pickle contains."""


class MalformedPickleError(pickle.UnpicklingError, ValueError):
    """A file that is not a readable pickle of arrays: damaged, truncated, or not a pickle at all."""


def _numpy_global(module, name):
    """numpy._core.<module>.<name>, or numpy.core.<module>.<name> on NumPy < 2."""
    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)
    except ImportError:  # NumPy < 2
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


class _NdarrayType:
    """What a pickle's numpy.ndarray global stands for: only the first argument of _reconstruct. The class itself
    is never handed out: np.ndarray((1,), object, buffer) called from a pickle is an array of forged pointers."""

    def __init__(self, source):
        self.source = source

    def __call__(self, *args):
        raise UnsafePickleError(f"{self.source}: refusing to call numpy.ndarray; NumPy pickles name it only as "
                                "the first argument of _reconstruct")


def _numpy_reconstruct(source):
    """numpy's _reconstruct, as every NumPy pickle calls it: _reconstruct(numpy.ndarray, (0,), b'b'). BUILD then
    gives the empty array its shape, dtype and data (ndarray.__setstate__)."""
    reconstruct = _numpy_global("multiarray", "_reconstruct")

    def checked_reconstruct(subtype, shape, dtype):
        if (type(subtype) is not _NdarrayType or type(shape) is not tuple or shape != (0,)
                or type(dtype) not in (bytes, str) or dtype not in (b"b", "b")):
            raise UnsafePickleError(f"{source}: refusing numpy _reconstruct with arguments of types "
                                    f"{type(subtype).__name__}, {type(shape).__name__}, {type(dtype).__name__}; "
                                    "NumPy pickles an array as _reconstruct(numpy.ndarray, (0,), b'b')")
        return reconstruct(np.ndarray, (0,), b"b")

    return checked_reconstruct


_TYPE_STRING = re.compile(r"[a-zA-Z][0-9]{0,10}")  # a kind and a size, as np.dtype(...).__reduce__ gives: 'f8', 'V12'


def _numpy_dtype(source):
    """np.dtype(obj, align, copy) as NumPy pickles a dtype: obj a type string such as 'f8', 'V12' or 'M8'. Always a
    new dtype object: NumPy's shared builtin dtypes are never handed to a pickle."""

    def checked_dtype(obj, align=False, copy=True):
        if type(obj) is not str or not _TYPE_STRING.fullmatch(obj):
            shown = repr(obj[:40]) if type(obj) is str else f"a {type(obj).__name__}"
            raise UnsafePickleError(f"{source}: refusing numpy.dtype of {shown}; NumPy pickles a dtype from a type "
                                    "string such as 'f8'")
        return np.dtype(obj, align=bool(align), copy=True)

    return checked_dtype


def _plain_dtype(source, what, dtype):
    """The dtype a NumPy reconstructor was given, which must be a dtype without Python objects: bytes turned
    into object pointers would be memory, not data."""
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"{source}: refusing {what} with a dtype of type {type(dtype).__name__}")
    if dtype.hasobject:
        raise UnsafePickleError(f"{source}: refusing {what} of dtype {dtype}, which holds Python objects")
    return dtype


def _numpy_scalar(source):
    """numpy's scalar(dtype, bytes), which every pickled np.float64 / np.int64 names; object dtypes refused."""
    scalar = _numpy_global("multiarray", "scalar")

    def checked_scalar(dtype, *args):
        dtype = _plain_dtype(source, "a NumPy scalar", dtype)
        # scalar(dtype) without data gives a zero-size dtype an itemsize of 1 in place (an array made with that
        # dtype then reads past its buffer) and allocates itemsize bytes; NumPy pickles always pass the data
        if len(args) != 1 or type(args[0]) not in (bytes, str) or len(args[0]) != dtype.itemsize:
            raise UnsafePickleError(f"{source}: refusing a NumPy scalar of dtype {dtype} without exactly its "
                                    f"{dtype.itemsize} bytes of data")
        return scalar(dtype, *args)

    return checked_scalar


def _numpy_frombuffer(source):
    """numpy's _frombuffer(buf, dtype, shape, order[, axis_order]), which arrays pickled at protocol 5 (Python
    3.14's default) name; the buffer must be bytes and the dtype free of objects."""
    frombuffer = _numpy_global("numeric", "_frombuffer")

    def checked_frombuffer(buf, dtype, *args):
        if not isinstance(buf, (bytes, bytearray)):
            raise UnsafePickleError(f"{source}: refusing a NumPy array buffer of type {type(buf).__name__}")
        return frombuffer(buf, _plain_dtype(source, "a NumPy array buffer", dtype), *args)

    return checked_frombuffer


def _latin1_encode(source):
    """codecs.encode(str, 'latin1'), the way protocol-2 pickles written by Python 3 spell bytes."""

    def checked_encode(obj, encoding="utf-8", errors="strict"):
        if type(obj) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise UnsafePickleError(f"{source}: refusing _codecs.encode other than of a str to latin1")
        return codecs.encode(obj, "latin1")

    return checked_encode


def _builtin(name):
    kind = getattr(builtins, name)
    return lambda source: kind


def _buffer_type(name):
    """bytes or bytearray from their contents; bytearray(10**11) (a buffer by size, zero-filled) is refused: a
    twenty-byte pickle could otherwise ask for any amount of memory."""
    kind = getattr(builtins, name)

    def factory(source):
        def checked(*args):
            if args and isinstance(args[0], numbers.Integral):
                raise UnsafePickleError(f"{source}: refusing {name} of a size (an integer); a pickle of data "
                                        "never asks for a buffer by size")
            return kind(*args)

        return checked

    return factory


# (module, name) -> factory(source) of what find_class returns. numpy._core is NumPy 2's name for numpy.core;
# pickles written under either name load with either NumPy.
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _latin1_encode,
}
_CONTAINERS = ("dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "complex", "bool")
for _module in ("builtins", "__builtin__"):  # __builtin__ in Python 2 pickles (the official CIFAR-10 batches)
    for _name in _CONTAINERS:
        _ARRAY_GLOBALS[(_module, _name)] = _builtin(_name)
    for _name in ("bytes", "bytearray"):
        _ARRAY_GLOBALS[(_module, _name)] = _buffer_type(_name)
# What a malformed or hostile pickle can raise while loading: a huge declared length is a MemoryError or an
# OverflowError, a cut length field a struct.error, a bad memo reference a KeyError, and garbage arguments to
# NumPy's C reconstructors a RuntimeError or SystemError ("bad argument to internal function"), all found by
# fuzzing mutated array pickles; a SyntaxError or RecursionError from a type string NumPy parses, were one let
# through.
_MALFORMED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError, MemoryError,
              OverflowError, RuntimeError, SystemError, BufferError, struct.error, SyntaxError, RecursionError,
              zlib.error, zipfile.BadZipFile)  # the last two: a pickle read from a damaged .npz member


def _same(a, b):
    """a and b are equal and of the same types throughout (a dtype never equals the string 'f8' here)."""
    if isinstance(a, np.dtype) or isinstance(b, np.dtype):
        return isinstance(a, np.dtype) and type(a) is type(b) and a == b
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) in (str, bytes, int, bool, type(None)):
        return a == b
    return a is b  # the np.dtype class in a __reduce__ tuple


def _dtype_from_state(fresh, state):
    """The dtype that NumPy's public constructors build from the description in a dtype pickle's state
    (version, byte order, subarray, names, fields, itemsize, alignment, flags[, metadata]); `fresh` is the dtype
    the pickle made from its type string, before the state."""
    endian, subarray, names, fields, itemsize, _, flags = state[1:8]
    if subarray is not None:
        base, shape = subarray
        return np.dtype((base, shape))
    if names is not None:
        entries = [fields[name] for name in names]
        spec = {"names": list(names), "formats": [e[0] for e in entries], "offsets": [e[1] for e in entries],
                "itemsize": itemsize}
        if any(len(e) > 2 for e in entries):
            spec["titles"] = [e[2] if len(e) > 2 else None for e in entries]
        return np.dtype(spec, align=bool(flags & 0x80))  # NPY_ALIGNED_STRUCT
    if len(state) > 8 and fresh.kind in "mM":  # datetime64 / timedelta64: (None, (unit, count, 1, 1))
        unit, count = state[8][1][:2]
        unit = unit.decode("latin1") if type(unit) is bytes else unit
        fresh = np.dtype(f"{fresh.char}8[{int(count)}{unit}]")
    native = "<" if sys.byteorder == "little" else ">"
    return fresh.newbyteorder(endian) if endian in ("<", ">") and endian != native else fresh


def _check_array_state(source, state):
    """An array's state as NumPy pickles it: ([version,] shape, dtype, is_fortran, data), with exactly as many items
    (a list, for a dtype holding objects) or bytes as the shape needs. ndarray.__setstate__ does not count an
    object array's items: a shape larger than the list left pointers unset, which crashed the interpreter."""
    if type(state) is not tuple or len(state) not in (4, 5):
        raise UnsafePickleError(f"{source}: refusing an array state that is not NumPy's ([version,] shape, dtype, "
                                "is_fortran, data)")
    shape, dtype, _, data = state[-4:]
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise UnsafePickleError(f"{source}: refusing an array state whose shape {shape!r} is not a tuple of sizes")
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"{source}: refusing an array state whose dtype is a {type(dtype).__name__}")
    size = math.prod(shape)
    if dtype.hasobject:
        if type(data) is not list or len(data) != size:
            raise UnsafePickleError(f"{source}: refusing an array of shape {shape} and dtype {dtype} whose state "
                                    "does not hold one Python object per entry")
    elif type(data) not in (bytes, bytearray, str) or len(data) != size * dtype.itemsize:  # str: Python 2's, latin-1
        raise UnsafePickleError(f"{source}: refusing an array of shape {shape} and dtype {dtype} whose state does not "
                                f"hold exactly its {size * dtype.itemsize} bytes")


class _Memo(dict):
    """The unpickler's memo, which also knows under which keys each dtype is stored."""

    def __init__(self):
        super().__init__()
        self.dtype_keys = {}

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if isinstance(value, np.dtype):
            self.dtype_keys.setdefault(id(value), []).append(key)


class ArrayOnlyUnpickler(pickle._Unpickler):
    """An Unpickler that reconstructs NumPy arrays and scalars and builtin containers and refuses every other
    global, NumPy reconstructions of object dtypes from raw bytes, and any state (BUILD) but the one NumPy's own
    pickles give a fresh array or dtype.

    It is the pure-Python unpickler, so that BUILD can be checked: a dtype's __setstate__ trusts its state, and a
    forged one (an object dtype with its flags cleared, then raw bytes as array data) made an array of arbitrary
    pointers; other forged states crashed the interpreter. No dtype's state is ever set here: BUILD on a dtype
    puts in its place (on the stack and in the memo) the dtype NumPy's public constructors build from that state,
    once that dtype pickles to exactly the same state. A dtype used before its BUILD keeps the plain type it was
    made with, so no array's dtype changes under it (nor does scalar() get the chance: it must be given its data).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, source, **kwargs):
        super().__init__(file, **kwargs)
        self.source = source
        self.memo = _Memo()

    def find_class(self, module, name):
        if (module, name) in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[(module, name)](self.source)
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle the global {module}.{name}; fastnn reads only pickles of NumPy "
            "arrays and builtin containers (such as the CIFAR-10 python batches)"
        )

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.dtype):
            built = self._dtype_for_state(inst, state)
            self.stack.pop()
            self.stack[-1] = built
            for key in self.memo.dtype_keys.pop(id(inst), ()):
                if self.memo.get(key) is inst:
                    self.memo[key] = built
            return
        if type(inst) is not np.ndarray or inst.shape != (0,) or inst.dtype != np.int8 or not inst.flags.owndata:
            raise UnsafePickleError(f"{self.source}: refusing to set the state of a {type(inst).__name__} that "
                                    "does not come fresh from numpy's _reconstruct")
        _check_array_state(self.source, state)
        pickle._Unpickler.load_build(self)  # ndarray.__setstate__: shape, dtype (never altered) and data

    dispatch[pickle.BUILD[0]] = load_build

    def _dtype_for_state(self, inst, state):
        """The dtype NumPy's public constructors build from a dtype pickle's state, which must pickle to exactly
        (np.dtype, (inst's type string, False, True), state)."""
        try:
            built = _dtype_from_state(inst, state) if type(state) is tuple and len(state) in (8, 9) else None
            ok = built is not None and _same(built.__reduce__(), (np.dtype, inst.__reduce__()[1], state))
        except Exception:  # any description NumPy's constructors cannot build is refused below
            ok = False
        if not ok:
            raise UnsafePickleError(f"{self.source}: refusing a NumPy dtype state that NumPy's own pickles never "
                                    f"hold (dtype {inst}, state of type {type(state).__name__})")
        return built

    def load_bytearray8(self):
        # the pure-Python unpickler zero-fills bytearray(declared length) before reading: read first instead
        (size,) = struct.unpack("<Q", self.read(8))
        if size > sys.maxsize:
            raise pickle.UnpicklingError(f"BYTEARRAY8 exceeds system's maximum size of {sys.maxsize} bytes")
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(bytearray(data))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def _restricted_load(f, source):
    """Unpickle the open binary file f with ArrayOnlyUnpickler; a malformed pickle is a MalformedPickleError and a
    refused one an UnsafePickleError, both naming `source`."""
    try:
        return ArrayOnlyUnpickler(f, source, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except EOFError as error:  # also what pickle raises on an empty file
        raise MalformedPickleError(f"{source}: not a readable pickle of arrays: it ends early, so the file is "
                                   "truncated or empty (an interrupted download or write); get or save it "
                                   "again") from error
    except _MALFORMED as error:
        raise MalformedPickleError(
            f"{source}: not a readable pickle of arrays ({type(error).__name__}: {error})") from error


def load_pickle(f):
    """Unpickle `f` (an open binary file or a path) with the restricted unpickler, latin1 for Python 2 strings."""
    if isinstance(f, (str, bytes, os.PathLike)):
        with open(f, "rb") as opened:
            return load_pickle(opened)
    if not (callable(getattr(f, "read", None)) and callable(getattr(f, "readline", None))):
        raise TypeError(f"load_pickle: f must be a path or a file open in binary mode, got {type(f).__name__}")
    source = repr(getattr(f, "name", "<pickle>"))
    if isinstance(f, io.TextIOBase):
        raise TypeError(f"load_pickle: {source} is open in text mode; open it in binary mode ('rb')")
    return _restricted_load(f, source)


# ----------------------------------------------------------------------------------------------------------
# CIFAR-10


def load_CIFAR_batch(filename):
    """Load a single batch of CIFAR-10.

    Returns a tuple of:
    - X: (N, 32, 32, 3) float64 images (N = 10000 in the official batches)
    - Y: (N,) labels
    """
    if not isinstance(filename, (str, bytes, os.PathLike)):
        raise TypeError(f"load_CIFAR_batch: filename must be a str or os.PathLike, got {type(filename).__name__}")
    with open(filename, "rb") as f:
        try:
            datadict = load_pickle(f)
        except pickle.UnpicklingError as error:  # the same class again, now naming the function too
            raise type(error)(f"load_CIFAR_batch: {error}") from error
    if not isinstance(datadict, dict) or "data" not in datadict or "labels" not in datadict:
        keys = sorted(datadict) if isinstance(datadict, dict) else type(datadict).__name__
        raise ValueError(f"load_CIFAR_batch: {filename!r} is not a CIFAR-10 batch (expected keys data, labels; "
                         f"got {keys})")
    try:
        X = np.asarray(datadict["data"])
        Y = np.array(datadict["labels"])
    except (TypeError, ValueError) as error:  # ragged lists, say
        raise ValueError(f"load_CIFAR_batch: {filename!r} holds data or labels that are not arrays "
                         f"({error})") from error
    if X.dtype.kind not in "uif":  # None, strings or complex numbers would become NaN, an error or lose a part
        raise ValueError(f"load_CIFAR_batch: {filename!r} holds data of dtype {X.dtype}; expected pixel values "
                         "(uint8 in the official batches)")
    if X.dtype.kind == "f" and not np.isfinite(X).all():  # one NaN pixel would make every split's mean NaN
        raise ValueError(f"load_CIFAR_batch: {filename!r} holds NaN or infinite pixel values")
    if X.ndim != 2 or X.shape[1] != CIFAR10_IMAGE_SIZE or Y.shape != (X.shape[0],):
        raise ValueError(f"load_CIFAR_batch: {filename!r} holds data of shape {X.shape} and labels of shape "
                         f"{Y.shape}; expected (N, {CIFAR10_IMAGE_SIZE}) and (N,)")
    if Y.size and (Y.dtype.kind not in "iu" or Y.min() < 0 or Y.max() >= CIFAR10_NUM_CLASSES):
        held = f"in [{Y.min()}, {Y.max()}]" if Y.dtype.kind in "iu" else f"of dtype {Y.dtype}"
        raise ValueError(f"load_CIFAR_batch: {filename!r} holds labels {held}; expected integer class labels in "
                         f"[0, {CIFAR10_NUM_CLASSES})")
    if Y.size == 0:  # np.array([]) is float64, and concatenating it would make every batch's labels float
        Y = Y.astype(np.int64)
    X = X.reshape(X.shape[0], 3, 32, 32).transpose(0, 2, 3, 1).astype("float")
    return X, Y


def load_CIFAR10(ROOT):
    """Load all of CIFAR-10 from the directory ROOT (data_batch_1..5 and test_batch).

    Returns Xtr (50000, 32, 32, 3), Ytr, Xte (10000, 32, 32, 3), Yte.
    """
    if not isinstance(ROOT, (str, os.PathLike)):
        raise TypeError(f"load_CIFAR10: ROOT must be a str or os.PathLike directory, got {type(ROOT).__name__}")
    names = [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not os.path.isfile(os.path.join(ROOT, n))]
    if missing:
        raise FileNotFoundError(f"load_CIFAR10: {ROOT!r} lacks the CIFAR-10 python batches {missing}")
    xs, ys = [], []
    for name in names[:-1]:
        X, Y = load_CIFAR_batch(os.path.join(ROOT, name))
        xs.append(X)
        ys.append(Y)
    Xtr = np.concatenate(xs)
    Ytr = np.concatenate(ys)
    Xte, Yte = load_CIFAR_batch(os.path.join(ROOT, "test_batch"))
    return Xtr, Ytr, Xte, Yte


def cifar10_candidates(path=None):
    """Where CIFAR-10 is looked for, in order: `path`, $FASTNN_CIFAR10_DIR, then the starter's locations
    (cs231n/datasets/cifar-10-batches-py under the working directory, datasets/... under it and next to fastnn)."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"cifar10 directory must be a str or os.PathLike, got {type(path).__name__}")
    candidates = [] if path is None else [os.fspath(path)]
    if os.environ.get(CIFAR10_ENV):
        candidates.append(os.environ[CIFAR10_ENV])
    candidates += [
        os.path.join("cs231n", CIFAR10_SUBDIR),
        CIFAR10_SUBDIR,
        os.path.join(os.path.dirname(os.path.abspath(__file__)), CIFAR10_SUBDIR),
    ]
    return candidates


def find_cifar10_dir(path=None):
    """The first directory of cifar10_candidates(path) that holds the batches. An explicit `path`, or else
    $FASTNN_CIFAR10_DIR, must: a mistyped one is an error, not a quiet fall back to the starter's locations."""
    candidates = cifar10_candidates(path)
    if path is not None or os.environ.get(CIFAR10_ENV):
        candidates = candidates[:1]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "data_batch_1")):
            return candidate
    looked = ", ".join(repr(os.path.abspath(c)) for c in candidates)
    named = f" (${CIFAR10_ENV})" if path is None and os.environ.get(CIFAR10_ENV) else ""
    raise FileNotFoundError(
        f"CIFAR-10 python batches not found; looked in {looked}{named}. Download cifar-10-python.tar.gz from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass its directory or set {CIFAR10_ENV}."
    )


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000, subtract_mean=True, cifar10_dir=None):
    """Load CIFAR-10 and prepare it for classifiers, as the starter does.

    Validation takes the training rows [num_training, num_training + num_validation); the mean training image
    is subtracted from every split when subtract_mean; images are transposed to channels first.

    Returns a dict with X_train, y_train, X_val, y_val, X_test, y_test (X as (N, 3, 32, 32) float64).
    """
    # num_training >= 1: the mean of no training images is NaN, and subtract_mean would spread it to every split
    sizes = []
    for name, value, low, limit in (("num_training", num_training, 1, None),
                                    ("num_validation", num_validation, 0, None), ("num_test", num_test, 0, 10000)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"get_CIFAR10_data: {name} must be an integer >= {low}, got {value!r}")
        if limit is not None and value > limit:
            raise ValueError(f"get_CIFAR10_data: {name} must be <= {limit}, got {value}")
        sizes.append(int(value))  # a numpy int8 would wrap in the sums below
    num_training, num_validation, num_test = sizes
    if num_training + num_validation > 50000:
        raise ValueError(f"get_CIFAR10_data: num_training + num_validation = {num_training + num_validation} "
                         "exceeds the 50000 training images")
    if cifar10_dir is not None and not isinstance(cifar10_dir, (str, os.PathLike)):
        raise TypeError(f"get_CIFAR10_data: cifar10_dir must be a str or os.PathLike, got {type(cifar10_dir).__name__}")
    root = find_cifar10_dir(cifar10_dir)
    X_train, y_train, X_test, y_test = load_CIFAR10(root)
    # a directory laid out like CIFAR-10 may hold fewer images than the official 50000 + 10000
    if num_training + num_validation > len(X_train) or num_test > len(X_test):
        raise ValueError(f"get_CIFAR10_data: asked for num_training + num_validation = "
                         f"{num_training + num_validation} and num_test = {num_test} images, but {root!r} holds "
                         f"{len(X_train)} training and {len(X_test)} test images")

    mask = list(range(num_training, num_training + num_validation))
    X_val = X_train[mask]
    y_val = y_train[mask]
    mask = list(range(num_training))
    X_train = X_train[mask]
    y_train = y_train[mask]
    mask = list(range(num_test))
    X_test = X_test[mask]
    y_test = y_test[mask]

    if subtract_mean:
        mean_image = np.mean(X_train, axis=0)
        X_train -= mean_image
        X_val -= mean_image
        X_test -= mean_image

    X_train = X_train.transpose(0, 3, 1, 2).copy()
    X_val = X_val.transpose(0, 3, 1, 2).copy()
    X_test = X_test.transpose(0, 3, 1, 2).copy()
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val, "X_test": X_test, "y_test": y_test}


# ----------------------------------------------------------------------------------------------------------
# The embedded digits


def digits_arrays():
    """scikit-learn's bundled 8x8 digits as shipped in fastnn/data/digits.npz: images (1797, 8, 8) uint8 in
    0..16 and targets (1797,) uint8, in scikit-learn's order."""
    with importlib.resources.files("fastnn").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as npz:
            return npz["images"], npz["targets"]


def load_digits(num_validation=300, num_test=297, subtract_mean=True, seed=0, dtype=np.float64):
    """The embedded default dataset: 1797 handwritten 8x8 digits, 10 classes, split at random with `seed`.

    Pixels are scaled from 0..16 to 0..1; with subtract_mean the mean training image is subtracted from every
    split (as get_CIFAR10_data does).

    Returns a dict with X_train, y_train, X_val, y_val, X_test, y_test: X as (N, 1, 8, 8) arrays of `dtype`,
    y as int64 labels. The default split is 1200 / 300 / 297.
    """
    images, targets = digits_arrays()
    total = len(targets)
    for name, value in (("num_validation", num_validation), ("num_test", num_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"load_digits: {name} must be an integer >= 0, got {value!r}")
    num_validation, num_test = int(num_validation), int(num_test)  # a numpy int16 would wrap in the sums below
    if num_validation + num_test >= total:
        raise ValueError(f"load_digits: num_validation + num_test = {num_validation + num_test} leaves no "
                         f"training images out of {total}")
    _checks.float_dtype("load_digits", dtype)
    if seed is not None:
        seed = _checks.integer("load_digits", "seed", seed, minimum=0)
    order = np.random.default_rng(seed).permutation(total)
    X = (images[order].astype(np.float64) / 16.0).reshape(total, 1, 8, 8)
    y = targets[order].astype(np.int64)
    n_train = total - num_validation - num_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + num_validation),
              "test": (n_train + num_validation, total)}
    data = {}
    for split, (lo, hi) in bounds.items():
        data[f"X_{split}"], data[f"y_{split}"] = X[lo:hi], y[lo:hi]
    if subtract_mean:
        data = subtract_mean_image(data)
        del data["mean_image"]
    for split in bounds:
        data[f"X_{split}"] = np.ascontiguousarray(data[f"X_{split}"], dtype=dtype)
    return data


# ----------------------------------------------------------------------------------------------------------
# Preprocessing: statistics come from X_train and are applied to every X_* of the dict. Inputs are not modified.


def _image_splits(data, fn, ndim=None):
    """The X_* keys of data, once every X_* is a numeric ndarray whose shape past the first axis is X_train's and
    X_train has at least one row (the statistics of no rows are NaN)."""
    if not isinstance(data, dict) or "X_train" not in data:
        raise ValueError(f"{fn}: data must be a dict holding X_train (and optionally X_val, X_test)")
    keys = [k for k in data if isinstance(k, str) and k.startswith("X_")]
    for k in keys:
        X = data[k]
        if not isinstance(X, np.ndarray):
            raise TypeError(f"{fn}: data[{k!r}] must be a numpy.ndarray, got {type(X).__name__}")
        if X.dtype.kind not in "iuf":
            raise TypeError(f"{fn}: data[{k!r}] must hold integers or floats, got dtype {X.dtype} with shape "
                            f"{X.shape}")
    train = data["X_train"]
    if ndim is not None and train.ndim != ndim:
        raise ValueError(f"{fn}: X_train must be (N, C, H, W), got shape {train.shape}")
    if train.ndim == 0 or train.shape[0] < 1:
        raise ValueError(f"{fn}: X_train must have at least one row to take statistics from, got shape "
                         f"{train.shape}")
    for k in keys:
        if data[k].shape[1:] != train.shape[1:]:
            expected = "(" + ", ".join(["N", *map(str, train.shape[1:])]) + ("," if train.ndim == 1 else "") + ")"
            raise ValueError(f"{fn}: data[{k!r}] has shape {data[k].shape}, but every X_* must be {expected} "
                             f"like X_train {train.shape}")
    return keys


def subtract_mean_image(data):
    """A copy of `data` with the mean training image subtracted from every X_* and stored as 'mean_image'.

    Every X_* must be a numeric ndarray of shape (N, *X_train.shape[1:]), X_train with N >= 1."""
    splits = _image_splits(data, "subtract_mean_image")
    mean_image = np.mean(data["X_train"], axis=0)
    out = dict(data)
    for k in splits:
        out[k] = data[k] - mean_image
    out["mean_image"] = mean_image
    return out


def standardize_channels(data, eps=1e-8):
    """A copy of `data` with every X_* (N, C, H, W) standardised per channel by the training mean and std.

    The statistics are stored as 'channel_mean' and 'channel_std', each of shape (1, C, 1, 1). Every X_* must be
    a numeric ndarray of X_train's (C, H, W), X_train with N >= 1; eps a finite number > 0.
    The result has the dtype NumPy gives (X_* - mean) / (std + eps), the statistics X_train's float dtype (float64
    for integers), as before; only float16 is computed in float64 and returned as float16 (its variance
    overflowed, and eps=1e-8 rounds to 0 in it).
    """
    fn = "standardize_channels"
    splits = _image_splits(data, fn, ndim=4)
    eps = _checks.number(fn, "eps", eps, low=0, low_open=True)
    X = data["X_train"]
    work = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)  # no float64 copy of float32
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is met just below
        precise_mean = X.mean(axis=(0, 2, 3), keepdims=True, dtype=work)
        precise_std = X.std(axis=(0, 2, 3), keepdims=True, dtype=work)
    if not (np.isfinite(precise_mean).all() and np.isfinite(precise_std).all()):
        if not np.isfinite(X).all():
            raise ValueError(f"{fn}: X_train holds NaN or infinite values")
        # the sums overflowed (float32 near 1e20, float64 near 1e200): the statistics of X / its largest value
        scale = np.abs(X).max().astype(work)
        precise_mean = (X / scale).mean(axis=(0, 2, 3), keepdims=True, dtype=work) * scale
        precise_std = (X / scale).std(axis=(0, 2, 3), keepdims=True, dtype=work) * scale
    mean, std = precise_mean.astype(_float_dtype(X)), precise_std.astype(_float_dtype(X))
    out = dict(data)
    for k in splits:
        if data[k].dtype == np.float16:  # the statistics before their rounding to float16
            wide = (data[k] - precise_mean.astype(np.float64)) / (precise_std.astype(np.float64) + eps)
            out[k] = wide.astype(np.float16)
        else:
            out[k] = (data[k] - mean) / (std + eps)
    out["channel_mean"], out["channel_std"] = mean, std
    return out


def _float_dtype(X):
    return X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
