"""Datasets: the cs231n.data_utils loaders for CIFAR-10, Tiny ImageNet, the ImageNet validation sample and pickled
models (the last three in fastnn._imagenet), the embedded 8x8 digits, and preprocessing helpers.

CIFAR-10's python batches are pickles. fastnn reads every pickle with a restricted unpickler that admits only
what the NumPy array reconstruction and builtin containers need; anything else (a pickle that would import a
module or call a function) is refused with an UnsafePickleError naming the file. Nothing here uses the
unrestricted pickle loader, and np.load always runs with pickles disallowed.
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
    """A pickle asked for a global that fastnn's restricted unpickler does not admit."""


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1'): a pure conversion
    ("_codecs", "encode"): lambda: codecs.encode,
}
_CONTAINERS = ("dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str", "int", "float",
               "complex", "bool")


class ArrayOnlyUnpickler(pickle.Unpickler):
    """An Unpickler that reconstructs NumPy arrays and builtin containers and refuses every other global."""

    def __init__(self, file, source, **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module, name):
        if (module, name) in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[(module, name)]()
        if module in ("builtins", "__builtin__") and name in _CONTAINERS:
            return getattr(builtins, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle the global {module}.{name}; fastnn reads only pickles of NumPy "
            "arrays and builtin containers (such as the CIFAR-10 python batches)"
        )


def load_pickle(f):
    """Unpickle `f` (an open binary file or a path) with the restricted unpickler, latin1 for Python 2 strings."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as opened:
            return load_pickle(opened)
    source = repr(getattr(f, "name", "<pickle>"))
    try:
        return ArrayOnlyUnpickler(f, source, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise pickle.UnpicklingError(f"{source}: not a readable pickle of arrays ({error})") from error


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
    for name, value, limit in (("num_training", num_training, None), ("num_validation", num_validation, None),
                               ("num_test", num_test, 10000)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"get_CIFAR10_data: {name} must be an integer >= 0, got {value!r}")
        if limit is not None and value > limit:
            raise ValueError(f"get_CIFAR10_data: {name} must be <= {limit}, got {value}")
    if num_training + num_validation > 50000:
        raise ValueError(f"get_CIFAR10_data: num_training + num_validation = {num_training + num_validation} "
                         "exceeds the 50000 training images")
    X_train, y_train, X_test, y_test = load_CIFAR10(find_cifar10_dir(cifar10_dir))

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


def _image_splits(data, fn):
    if not isinstance(data, dict) or "X_train" not in data:
        raise ValueError(f"{fn}: data must be a dict holding X_train (and optionally X_val, X_test)")
    return [k for k in data if k.startswith("X_")]


def subtract_mean_image(data):
    """A copy of `data` with the mean training image subtracted from every X_* and stored as 'mean_image'."""
    splits = _image_splits(data, "subtract_mean_image")
    mean_image = np.mean(data["X_train"], axis=0)
    out = dict(data)
    for k in splits:
        out[k] = data[k] - mean_image
    out["mean_image"] = mean_image
    return out


def standardize_channels(data, eps=1e-8):
    """A copy of `data` with every X_* (N, C, H, W) standardised per channel by the training mean and std.

    The statistics are stored as 'channel_mean' and 'channel_std', each of shape (1, C, 1, 1).
    """
    splits = _image_splits(data, "standardize_channels")
    X = data["X_train"]
    if np.ndim(X) != 4:
        raise ValueError(f"standardize_channels: X_train must be (N, C, H, W), got shape {np.shape(X)}")
    mean = X.mean(axis=(0, 2, 3), keepdims=True)
    std = X.std(axis=(0, 2, 3), keepdims=True)
    out = dict(data)
    for k in splits:
        out[k] = (data[k] - mean) / (std + eps)
    out["channel_mean"], out["channel_std"] = mean, std
    return out
