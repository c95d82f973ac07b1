"""Datasets: the cs231n.data_utils loaders for CIFAR-10, Tiny ImageNet, the ImageNet validation sample and pickled
models (the last three in fastnn._imagenet), the embedded 8x8 digits, and preprocessing helpers.

CIFAR-10's python batches are pickles. fastnn reads every pickle with a restricted unpickler that admits only
what NumPy arrays, NumPy scalars and builtin containers need (and builds no object-dtype array or scalar from raw
bytes); anything else (a pickle that would import a module or call a function) is refused with an
UnsafePickleError naming the file; a malformed one is a pickle.UnpicklingError naming the file. Nothing here
uses the unrestricted pickle loader, and np.load always runs with pickles disallowed.
"""

import builtins
import codecs
import importlib.resources
import os
import pickle

import numpy as np

from ._imagenet import load_imagenet_val, load_models, load_tiny_imagenet  # noqa: F401 (re-exported)

CIFAR10_ENV = "FASTNN_CIFAR10_DIR"
CIFAR10_SUBDIR = os.path.join("datasets", "cifar-10-batches-py")
CIFAR10_IMAGE_SIZE = 3 * 32 * 32


# ----------------------------------------------------------------------------------------------------------
# Safe pickles


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that fastnn's restricted unpickler does not admit, or for a NumPy array or
    scalar of an object dtype built from raw bytes."""


def _numpy_global(module, name):
    """numpy._core.<module>.<name>, or numpy.core.<module>.<name> on NumPy < 2."""
    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)
    except ImportError:  # NumPy < 2
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


def _numpy_reconstruct(source):
    return _numpy_global("multiarray", "_reconstruct")


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
        return scalar(_plain_dtype(source, "a NumPy scalar", dtype), *args)

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


# (module, name) -> factory(source) of what find_class returns. numpy._core is NumPy 2's name for numpy.core;
# pickles written under either name load with either NumPy.
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy", "ndarray"): lambda source: np.ndarray,
    ("numpy", "dtype"): lambda source: np.dtype,
    # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1'): a pure conversion
    ("_codecs", "encode"): lambda source: codecs.encode,
}
_CONTAINERS = ("dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str", "int", "float",
               "complex", "bool")
# What a malformed or hostile pickle can raise while loading: a huge declared length is a MemoryError or an
# OverflowError, deep nesting a RecursionError (a RuntimeError), a bad memo reference a KeyError.
_MALFORMED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError, MemoryError,
              OverflowError, RuntimeError)


class ArrayOnlyUnpickler(pickle.Unpickler):
    """An Unpickler that reconstructs NumPy arrays and scalars and builtin containers and refuses every other
    global (and NumPy reconstructions of object dtypes from raw bytes)."""

    def __init__(self, file, source, **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module, name):
        if (module, name) in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[(module, name)](self.source)
        if module in ("builtins", "__builtin__") and name in _CONTAINERS:
            return getattr(builtins, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle the global {module}.{name}; fastnn reads only pickles of NumPy "
            "arrays and builtin containers (such as the CIFAR-10 python batches)"
        )


def _restricted_load(f, source):
    """Unpickle the open binary file f with ArrayOnlyUnpickler; a malformed pickle is an UnpicklingError and a
    refused one an UnsafePickleError, both naming `source`."""
    try:
        return ArrayOnlyUnpickler(f, source, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except _MALFORMED as error:
        raise pickle.UnpicklingError(
            f"{source}: not a readable pickle of arrays ({type(error).__name__}: {error})") from error


def load_pickle(f):
    """Unpickle `f` (an open binary file or a path) with the restricted unpickler, latin1 for Python 2 strings."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as opened:
            return load_pickle(opened)
    return _restricted_load(f, repr(getattr(f, "name", "<pickle>")))


# ----------------------------------------------------------------------------------------------------------
# CIFAR-10


def load_CIFAR_batch(filename):
    """Load a single batch of CIFAR-10.

    Returns a tuple of:
    - X: (N, 32, 32, 3) float64 images (N = 10000 in the official batches)
    - Y: (N,) labels
    """
    with open(filename, "rb") as f:
        datadict = load_pickle(f)
    if not isinstance(datadict, dict) or "data" not in datadict or "labels" not in datadict:
        keys = sorted(datadict) if isinstance(datadict, dict) else type(datadict).__name__
        raise ValueError(f"load_CIFAR_batch: {filename!r} is not a CIFAR-10 batch (expected keys data, labels; "
                         f"got {keys})")
    X = np.asarray(datadict["data"])
    Y = np.array(datadict["labels"])
    if X.ndim != 2 or X.shape[1] != CIFAR10_IMAGE_SIZE or Y.shape != (X.shape[0],):
        raise ValueError(f"load_CIFAR_batch: {filename!r} holds data of shape {X.shape} and labels of shape "
                         f"{Y.shape}; expected (N, {CIFAR10_IMAGE_SIZE}) and (N,)")
    X = X.reshape(X.shape[0], 3, 32, 32).transpose(0, 2, 3, 1).astype("float")
    return X, Y


def load_CIFAR10(ROOT):
    """Load all of CIFAR-10 from the directory ROOT (data_batch_1..5 and test_batch).

    Returns Xtr (50000, 32, 32, 3), Ytr, Xte (10000, 32, 32, 3), Yte.
    """
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
    """The first directory of cifar10_candidates(path) that holds the batches; an explicit `path` must."""
    candidates = cifar10_candidates(path)
    if path is not None:
        candidates = candidates[:1]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "data_batch_1")):
            return candidate
    looked = ", ".join(repr(os.path.abspath(c)) for c in candidates)
    raise FileNotFoundError(
        f"CIFAR-10 python batches not found; looked in {looked}. Download cifar-10-python.tar.gz from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass its directory or set {CIFAR10_ENV}."
    )


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000, subtract_mean=True, cifar10_dir=None):
    """Load CIFAR-10 and prepare it for classifiers, as the starter does.

    Validation takes the training rows [num_training, num_training + num_validation); the mean training image
    is subtracted from every split when subtract_mean; images are transposed to channels first.

    Returns a dict with X_train, y_train, X_val, y_val, X_test, y_test (X as (N, 3, 32, 32) float64).
    """
    # num_training >= 1: the mean of no training images is NaN, and subtract_mean would spread it to every split
    for name, value, low, limit in (("num_training", num_training, 1, None),
                                    ("num_validation", num_validation, 0, None), ("num_test", num_test, 0, 10000)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"get_CIFAR10_data: {name} must be an integer >= {low}, got {value!r}")
        if limit is not None and value > limit:
            raise ValueError(f"get_CIFAR10_data: {name} must be <= {limit}, got {value}")
    if num_training + num_validation > 50000:
        raise ValueError(f"get_CIFAR10_data: num_training + num_validation = {num_training + num_validation} "
                         "exceeds the 50000 training images")
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
    if num_validation + num_test >= total:
        raise ValueError(f"load_digits: num_validation + num_test = {num_validation + num_test} leaves no "
                         f"training images out of {total}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"load_digits: dtype must be float32 or float64, got {np.dtype(dtype)}")
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
    a numeric ndarray of X_train's (C, H, W), X_train with N >= 1.
    """
    splits = _image_splits(data, "standardize_channels", ndim=4)
    X = data["X_train"]
    mean = X.mean(axis=(0, 2, 3), keepdims=True)
    std = X.std(axis=(0, 2, 3), keepdims=True)
    out = dict(data)
    for k in splits:
        out[k] = (data[k] - mean) / (std + eps)
    out["channel_mean"], out["channel_std"] = mean, std
    return out
