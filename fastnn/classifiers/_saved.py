"""model.save(fname) / model.load(fname), the 2025 CS231n models' methods.

The starter writes `np.save('cs231n/saved/<fname>', model.params)`: a dict of arrays, pickled inside a .npy
file, which the assignment's submission collects, and reads it back with np.load(..., allow_pickle=True), which
runs whatever a file's pickle asks. fastnn writes the same file (atomically) and reads it with the
arrays-only unpickler of fastnn.data_utils, so loading a file from elsewhere never runs code.
"""

import os
import pickle
import warnings

import numpy as np

from .. import _checks
from .._files import NPY_HEADER_ERRORS, atomic_open

SAVED_DIR = os.path.join("cs231n", "saved")


def saved_path(fn, fname):
    """Where save/load put `fname`: in the assignment's cs231n/saved/ when the working directory holds one (as the
    starter, which writes beside its own package) and fname has no directory of its own; else fname as given."""
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError(f"{fn}: fname must be a str or os.PathLike, got {type(fname).__name__}")
    fname = os.fspath(fname)
    if not isinstance(fname, str) or not fname or "\0" in fname:  # bytes from a PathLike, "", a NUL
        raise ValueError(f"{fn}: fname must be a non-empty file name, got {fname!r}")
    if not os.path.dirname(fname) and os.path.isdir(SAVED_DIR):
        return os.path.join(SAVED_DIR, fname)
    return fname


def read_params(fn, path):
    """The dict of arrays in a .npy file written by save (np.save of a dict), unpickling arrays only."""
    from ..data_utils import _restricted_load

    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(f))
        except NPY_HEADER_ERRORS as error:
            raise ValueError(f"{fn}: {path!r} is not a .npy file ({error})") from error
        if dtype != np.dtype(object) or shape != ():
            raise ValueError(f"{fn}: {path!r} holds an array of shape {shape} and dtype {dtype}, not the dict of "
                             "params that save() writes")
        try:
            params = _restricted_load(f, repr(path))
        except pickle.UnpicklingError as error:  # UnsafePickleError too; both name the file
            raise ValueError(f"{fn}: {error}") from error
    if isinstance(params, np.ndarray) and params.shape == () and params.dtype == object:
        params = params.item()  # np.save pickles the dict inside a 0-d object array
    if not isinstance(params, dict) or not all(isinstance(v, np.ndarray) for v in params.values()):
        raise ValueError(f"{fn}: {path!r} holds a {type(params).__name__}, not a dict of arrays")
    return params


class SavesParams:
    """save(fname) and load(fname) of model.params, for the classes that have a `params` dict."""

    def save(self, fname):
        """Save model parameters: np.save of the params dict (to cs231n/saved/ as in the starter; see
        saved_path). '.npy' is appended to a name without it, as np.save does."""
        fn = f"{type(self).__name__}.save"
        path = saved_path(fn, fname)
        _checks.param_dict(fn, "params", self.params)
        for name, value in self.params.items():  # what load() would refuse, and pickle might not write
            if not isinstance(value, np.ndarray) or value.dtype == object:
                got = "an object array" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"
                raise TypeError(f"{fn}: params[{name!r}] is {got}; save() writes arrays of numbers")
        if not path.endswith(".npy"):
            path += ".npy"
        with atomic_open(path, "wb", fn=fn, name="fname") as f:
            np.save(f, dict(self.params))  # a dict pickles (writing one is safe; np.save allows it)
        print(fname, "saved.")

    def load(self, fname):
        """Load model parameters saved by save(fname). Returns False (printing "<fname> not available.") when
        there is no such file, True once loaded. The params must have this model's names, shapes and dtypes."""
        fn = f"{type(self).__name__}.load"
        path = saved_path(fn, fname)
        if not os.path.exists(path):
            print(fname, "not available.")
            return False
        if os.path.isdir(path):
            raise ValueError(f"{fn}: fname {fname!r} names a directory, not a file saved by save()")
        params = read_params(fn, path)
        _checks.param_dict(fn, "params", self.params)  # the names, shapes and dtypes the file must match
        mine = {k: (np.shape(v), np.asarray(v).dtype) for k, v in self.params.items()}
        theirs = {k: (v.shape, v.dtype) for k, v in params.items()}
        if theirs != mine:
            raise ValueError(f"{fn}: {path!r} holds params {_describe(theirs)}, which do not fit this model's "
                             f"{_describe(mine)}")
        self.params = params
        print(fname, "loaded.")
        if getattr(self, "normalization", None) == "batchnorm":
            warnings.warn(f"{fn}: files that save() writes hold params alone, not batchnorm's running statistics, "
                          "so test-mode scores use the ones this model has (none in a fresh one). To keep them, "
                          "load a Solver checkpoint with fastnn.transfer.load_params(model, path)", stacklevel=2)
        return True


def _describe(shapes):
    # sorted by repr: a file's keys need not be strings, nor of one type
    return {k: f"{shape} {dtype}" for k, (shape, dtype) in sorted(shapes.items(), key=lambda item: repr(item[0]))}
