"""Checkpoints without pickle: one `.npz` file holding the arrays and a JSON header holding everything else.

A checkpoint is a nested dict (the Solver writes params, optimizer state, histories, settings and RNG states).
`save_checkpoint` stores each array leaf as an array of the `.npz` and the rest of the tree as JSON, so
`load_checkpoint` reads it back with `np.load(..., allow_pickle=False)`: loading a checkpoint never executes
code. The file is written to a temporary file in the same directory, flushed, fsynced and renamed into place,
so a crash or a full disk leaves either the previous checkpoint or the new one, never half a file.

The CS231n starter pickled `{'model': model, 'update_rule': <function>, ...}` to `<name>_epoch_<e>.pkl`; fastnn
writes `<name>_epoch_<e>.npz` holding the model's params (not the model object) and the update rule's name.
"""

import json
import os
import zipfile

import numpy as np

from . import _checks as _check
from ._files import NPZ_MEMBER_ERRORS, atomic_open

FORMAT = "fastnn-checkpoint"
VERSION = 1
HEADER_KEY = "__header__"
ARRAY_TAG = "__array__"

# The keys a Solver checkpoint always holds (the starter's checkpoint dict, with params for the model).
SOLVER_KEYS = (
    "params",
    "update_rule",
    "lr_decay",
    "optim_config",
    "batch_size",
    "num_train_samples",
    "num_val_samples",
    "epoch",
    "loss_history",
    "train_acc_history",
    "val_acc_history",
)


def _encode(value, arrays, where):
    """The JSON form of `value`, moving every ndarray into `arrays` and leaving {ARRAY_TAG: key} in its place. A
    value no checkpoint can hold is a TypeError naming `where`."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"{where} is an object array, which only pickle could store")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {ARRAY_TAG: key}
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad or ARRAY_TAG in value:
            raise TypeError(f"{where} has keys {bad or [ARRAY_TAG]}; keys must be strings")
        return {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()  # a Python number or str, except a long double's (still numpy's), which JSON refuses
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{where} is a {type(value).__name__}; a checkpoint holds only arrays, numbers, strings, None, "
                    "lists and dicts (no pickle)")


def check_storable(value, where):
    """Raise the TypeError save_checkpoint would, naming `where`, if a checkpoint cannot hold `value`."""
    _encode(value, {}, where)


def _decode(value, arrays):
    if isinstance(value, dict):
        if set(value) == {ARRAY_TAG}:
            name = value[ARRAY_TAG]
            if not isinstance(name, str) or name not in arrays:
                raise ValueError(f"its header names an array member {name!r} that the archive does not hold")
            return arrays[name]
        return {k: _decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


def save_checkpoint(path, state):
    """Write `state` to `path` atomically.

    Inputs:
    - path: the file to write (the Solver uses '<checkpoint_name>_epoch_<epoch>.npz')
    - state: a dict of arrays, numbers, strings, None, lists and dicts; it must hold 'params', a dict of arrays

    Returns the path written. On any error the temporary file is removed and a file already at `path` is left
    as it was.
    """
    if not isinstance(state, dict) or not isinstance(state.get("params"), dict):
        raise TypeError("save_checkpoint: state must be a dict with a 'params' dict of arrays")
    arrays = {}
    try:
        header = {"format": FORMAT, "version": VERSION, "state": _encode(state, arrays, "state")}
    except TypeError as error:
        raise TypeError(f"save_checkpoint: {error}") from None
    arrays[HEADER_KEY] = np.array(json.dumps(header, allow_nan=True))
    with atomic_open(path, "wb", fn="save_checkpoint") as f:  # which checks the path
        np.savez(f, **arrays)
    return os.fspath(path)


def load_checkpoint(path):
    """Read a checkpoint written by save_checkpoint.

    Returns the state dict as saved (tuples come back as lists). A Solver checkpoint holds the keys of
    SOLVER_KEYS (params, update_rule as its name, lr_decay, optim_config, batch_size, num_train_samples,
    num_val_samples, epoch, loss_history, train_acc_history, val_acc_history) plus iteration, best_val_acc,
    best_params, optim_configs (the per-parameter optimizer state), seed, model_state, best_model_state (the
    model state of best_params; older checkpoints lack it), num_train (the training set's length; older ones lack
    it), rng_state and global_rng_state.

    A missing file raises FileNotFoundError; a truncated, corrupted or foreign file raises ValueError naming it.
    """
    return read_checkpoint(path, "load_checkpoint")


def read_checkpoint(path, fn):
    """load_checkpoint, with `fn` naming the caller in its errors (transfer.load_params reads checkpoints too)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{fn}: no checkpoint at {path!r}")
    if not os.path.isdir(path) and not os.path.isfile(path):
        # a device or a FIFO: reading it for the zip directory would never end (/dev/zero) or block
        raise ValueError(f"{fn}: {path!r} is not a regular file")
    try:
        head, is_zip, last = _ends(path)
    except OSError as error:  # unreadable, or a directory
        raise ValueError(f"{fn}: cannot read {path!r} ({error})") from error
    if not is_zip:  # np.load would read a .npy, or offer to unpickle anything else
        if _is_pickle(head, last):
            raise ValueError(f"{fn}: {path!r} is a pickle (such as the starter's .pkl checkpoints), not "
                             "a fastnn checkpoint (.npz); fastnn never unpickles a checkpoint, since that can "
                             "run any code")
        raise ValueError(f"{fn}: {path!r} is not a readable fastnn checkpoint (not an .npz archive: "
                         "truncated, or another kind of file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}  # reads (and CRC-checks) every member now
        if HEADER_KEY not in arrays:
            raise ValueError(f"it has no {HEADER_KEY} member: an .npz of other arrays")
        header = json.loads(str(arrays.pop(HEADER_KEY)))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("it has no fastnn checkpoint header")
        if header.get("version") != VERSION:
            raise ValueError(f"format version {header.get('version')!r} is not {VERSION}")
        state = _decode(header.get("state"), arrays)
        if not isinstance(state, dict) or not isinstance(state.get("params"), dict):
            raise ValueError("its state holds no 'params' dict, which every checkpoint has")
        return state
    # KeyError, TypeError: a header that does not describe the arrays; RecursionError: a JSON header nested beyond
    # Python's recursion limit
    except (*NPZ_MEMBER_ERRORS, KeyError, TypeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{fn}: {path!r} is not a readable fastnn checkpoint ({error})") from error


def _ends(path):
    """The file's first two bytes, whether it is a zip archive, and its last byte."""
    with open(path, "rb") as f:
        head = f.read(2)
        is_zip = zipfile.is_zipfile(f)
        f.seek(max(f.seek(0, os.SEEK_END) - 1, 0))
        return head, is_zip, f.read(1)


def _is_pickle(head, last):
    """Whether a file with these first two bytes and this last one looks like a pickle: it ends with STOP (b'.')
    and starts as protocol 2 or later does (b'\\x80' and the protocol number), or with an opcode that protocols
    0 and 1 begin with (MARK, a global, an empty dict, list or tuple)."""
    if last != b".":
        return False
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    return head[:1] in (b"(", b"c", b"}", b"]", b")")


# ----------------------------------------------------------------------------------------------------------
# Model state that lives outside `params`: the batchnorm running statistics in `model.bn_params`.


def model_state(model):
    """The model's non-parameter state as a checkpoint-able dict: its normalization (None for models without one)
    and the dicts of its bn_params (none for models without)."""
    bn_params = getattr(model, "bn_params", None) or []
    kept = (np.ndarray, str, float, int)
    return {"normalization": getattr(model, "normalization", None),
            "bn_params": [{k: v for k, v in p.items() if isinstance(v, kept)} for p in bn_params]}


def restore_model_state(model, state, source="checkpoint"):
    """Put model_state(model) output back into `model` (its bn_params dicts are updated in place), after checking
    all of it: a saved array must have the shape and dtype of the model's array it replaces."""
    state = {} if state is None else state
    saved = state.get("bn_params", []) if isinstance(state, dict) else state
    current = getattr(model, "bn_params", None) or []
    if isinstance(state, dict) and "normalization" in state:  # absent in checkpoints of earlier versions
        theirs, ours = state["normalization"], getattr(model, "normalization", None)
        if theirs != ours:  # a layernorm net's dicts would land in a batchnorm net's, without statistics
            raise ValueError(f"Solver.restore: {source} was written by a model with normalization={theirs!r:.40}; "
                             f"this one has normalization={ours!r}")
    if not isinstance(saved, list) or not all(isinstance(p, dict) for p in saved):
        raise ValueError(f"Solver.restore: {source} holds model_state bn_params as "
                         f"{saved!r:.80}; it must be a list of dicts")
    if len(saved) != len(current):
        raise ValueError(f"Solver.restore: {source} holds {len(saved)} batchnorm parameter dicts but the model has "
                         f"{len(current)}")
    params = getattr(model, "params", {})
    for i, (mine, theirs) in enumerate(zip(current, saved)):
        _check_bn_settings(f"Solver.restore: {source} holds bn_params[{i}]", theirs)
        for key, value in theirs.items():
            ours = mine.get(key)
            if ours is None and key in ("running_mean", "running_var") and f"gamma{i + 1}" in params:
                ours = params[f"gamma{i + 1}"]  # a fresh model has no statistics yet: they take gamma's form
            if isinstance(ours, np.ndarray) and (not isinstance(value, np.ndarray) or value.shape != ours.shape
                                                 or value.dtype != ours.dtype):
                raise ValueError(f"Solver.restore: {source} holds bn_params[{i}][{key!r}] as "
                                 f"{getattr(value, 'shape', type(value).__name__)} "
                                 f"{getattr(value, 'dtype', '')}; the model's is {ours.shape} {ours.dtype}")
            if key == "running_var" and negative_variance(value):
                raise ValueError(f"Solver.restore: {source} holds bn_params[{i}]['running_var'] with negative "
                                 "values, which no batch gives")
    for mine, theirs in zip(current, saved):
        mine.update(theirs)


def negative_variance(value):
    """Whether a saved running variance holds a negative entry, which no batch gives (a damaged or altered file)."""
    return isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and bool((value < 0).any())


def _check_bn_settings(where, bn_param):
    """The scalars of a saved bn_param dict hold values the norm layers accept (ValueError, else)."""
    _check.mode(where, "", bn_param.get("mode", "train"))
    try:
        if "eps" in bn_param:
            _check.number(where, "['eps']", bn_param["eps"], low=0.0, low_open=True)
        if "momentum" in bn_param:
            _check.number(where, "['momentum']", bn_param["momentum"], low=0.0, high=1.0)
    except TypeError as error:
        raise ValueError(str(error)) from error
