"""Transfer learning: load a checkpoint's params into a model by name, and name groups of params to freeze or to
train at their own learning rate.

A pattern names params: an exact name ('W1', never W10 as well), a prefix ending at a layer number or a separator
('gamma' for gamma1, gamma2, ...; 'b' for the biases, not beta1), or a layer group: 'conv'
(every param of the layers whose weight is a 4-D filter bank: W, b, gamma, beta of that layer number; a weight
whose name ends in no number, alone) or 'affine' (the same for 2-D weights). A pattern that names nothing is an
error, so a typo never freezes nothing silently.
"""

import os
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ._files import NPZ_MEMBER_ERRORS
from .checkpoint import negative_variance

GROUPS = {"conv": 4, "affine": 2}


@dataclass
class TransferReport:
    """What load_params did: loaded names, skipped (name, source shape, model shape), missing and unused names."""

    loaded: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unused: list = field(default_factory=list)
    statistics: list = field(default_factory=list)  # the batchnorm layers (1-based) whose running stats loaded
    statistics_kept: list = field(default_factory=list)  # those whose gamma loaded without the checkpoint's stats

    def __str__(self):
        lines = [f"loaded {len(self.loaded)} param(s): {', '.join(self.loaded) or '-'}"]
        if self.statistics:
            lines.append("loaded the batchnorm running statistics of layer(s) "
                         + ", ".join(map(str, self.statistics)))
        if self.statistics_kept:
            lines.append("no running statistics of the layer's shape in the source for batchnorm layer(s) "
                         + ", ".join(map(str, self.statistics_kept)) + " (kept as the model had them)")
        if self.skipped:
            lines.append("skipped (shape differs): " + ", ".join(
                f"{name} {tuple(src)} vs model {tuple(dst)}" for name, src, dst in self.skipped))
        if self.missing:
            lines.append(f"missing from the checkpoint (kept as initialised): {', '.join(self.missing)}")
        if self.unused:
            lines.append(f"in the checkpoint but not in the model: {', '.join(self.unused)}")
        return "\n".join(lines)


def load_params(model, source):
    """Copy the params of `source` into `model.params` where the names match and the shapes agree, cast to each
    model param's dtype. Returns a TransferReport.

    source: a dict of arrays; a fastnn checkpoint (its params, and the batchnorm running statistics of each
    layer whose gamma loads, so that test-mode scores are the checkpoint's); a .npy written by model.save(); or
    an .npz of named arrays (np.savez(path, **model.params)). Params that are not real numbers, or that hold
    NaN or Inf (after the cast), are refused, and then nothing is loaded."""
    params = getattr(model, "params", None)
    if not isinstance(params, dict) or not all(isinstance(v, np.ndarray) for v in params.values()):
        raise TypeError(f"load_params: model must have a params dict of numpy arrays, got {type(model).__name__}")
    source, statistics = _source_params(source)
    report, loaded = TransferReport(), {}
    for name, current in params.items():
        if name not in source:
            report.missing.append(name)
            continue
        try:
            value = np.asarray(source[name])
        except ValueError as error:  # a ragged list
            raise ValueError(f"load_params: {name} is not an array ({error}); nothing was loaded") from None
        if value.dtype.kind not in "iuf":  # complex would lose its imaginary part, objects their meaning
            raise ValueError(f"load_params: {name} holds {value.dtype} values, not real numbers; nothing was loaded")
        if value.shape != current.shape:
            report.skipped.append((name, value.shape, current.shape))
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # what overflows is refused just below
            loaded[name] = value.astype(current.dtype, copy=True)
            # an integer param would truncate 1.7 to 1 and wrap 1e30 around without a word
            inexact = current.dtype.kind in "iu" and not np.array_equal(loaded[name].astype(value.dtype), value)
        if inexact:
            raise ValueError(f"load_params: {name} holds values that the model's {current.dtype} cannot hold "
                             "exactly; nothing was loaded")
    running = _running_statistics(model, statistics, loaded, report)
    not_finite = [name for name, value in loaded.items() if not np.isfinite(value).all()]
    not_finite += [f"the running statistics of batchnorm layer {layer}" for layer, stats in running.items()
                   if not all(np.isfinite(v).all() for v in stats.values())]
    if not_finite:
        raise ValueError(f"load_params: {', '.join(not_finite)} hold NaN or Inf values (in the model's dtype; "
                         "the checkpoint of a run that diverged?); nothing was loaded")
    negative = [layer for layer, stats in running.items() if negative_variance(stats["running_var"])]
    if negative:
        raise ValueError(f"load_params: the running variance of batchnorm layer(s) {', '.join(map(str, negative))} "
                         "holds negative values, which no batch gives; nothing was loaded")
    model.params.update(loaded)
    for layer, stats in running.items():
        model.bn_params[layer - 1].update(stats)
    report.loaded = list(loaded)
    report.statistics = sorted(running)
    report.unused = sorted(str(name) for name in set(source) - set(model.params))
    return report


def _source_params(source):
    """(params, the checkpoint's bn_params or None) of load_params' source."""
    if isinstance(source, dict):
        return source, None
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_params: source must be a dict of arrays or a path, got {type(source).__name__}")
    from .checkpoint import HEADER_KEY, read_checkpoint
    from .classifiers._saved import read_params, saved_path

    given = source = os.fspath(source)
    if isinstance(source, str) and source and "\0" not in source and not os.path.exists(source):
        source = saved_path("load_params", source)  # where model.save(source) put it, if it did
    if not os.path.exists(source):
        raise FileNotFoundError(f"load_params: no file at {given!r} (a fastnn checkpoint, a .npy written by "
                                "model.save() or an .npz of arrays)")
    if os.path.isfile(source):
        with open(source, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        if npy:
            return read_params("load_params", source), None
        if zipfile.is_zipfile(source):
            try:
                with np.load(source, allow_pickle=False) as npz:
                    if HEADER_KEY not in npz.files:  # an .npz of named arrays, not a checkpoint
                        return {name: npz[name] for name in npz.files}, None
            except NPZ_MEMBER_ERRORS as error:
                raise ValueError(f"load_params: {source!r} is not a readable .npz of arrays "
                                 f"({error})") from error
    state = read_checkpoint(source, "load_params")
    if "params" not in state:
        raise ValueError(f"load_params: checkpoint {source!r} holds no 'params'")
    model_state = state.get("model_state")
    return state["params"], (model_state.get("bn_params") if isinstance(model_state, dict) else None)


def _running_statistics(model, statistics, loaded, report):
    """{layer: {'running_mean', 'running_var'}} of the source for each batchnorm layer of the model whose gamma
    loaded and whose statistics the source has in gamma's shape, cast to its dtype; the others are noted."""
    running = {}
    if getattr(model, "normalization", None) != "batchnorm":  # layernorm keeps no statistics
        return running
    for layer, bn_param in enumerate(getattr(model, "bn_params", None) or [], start=1):
        gamma = loaded.get(f"gamma{layer}")
        if gamma is None or not isinstance(bn_param, dict):
            continue
        theirs = statistics[layer - 1] if isinstance(statistics, list) and layer <= len(statistics) else {}
        theirs = theirs if isinstance(theirs, dict) else {}
        stats = {k: theirs.get(k) for k in ("running_mean", "running_var")}
        if all(isinstance(v, np.ndarray) and v.shape == gamma.shape and v.dtype.kind in "iuf"
               for v in stats.values()):
            with np.errstate(over="ignore", invalid="ignore"):
                running[layer] = {k: v.astype(gamma.dtype, copy=True) for k, v in stats.items()}
        else:
            report.statistics_kept.append(layer)
    return running


def _layer_number(name):
    match = re.search(r"(\d+)$", name)
    return match.group(1) if match else None


def _names(pattern, name):
    """Whether a name or prefix pattern names the param `name`. A prefix ends where a word does: the rest of the
    name starts with a layer number (after a pattern that does not end in one), or a separator such as '_' ends
    the pattern or starts the rest. 'W1' is W1 alone, not W10 and W11; 'b' is b1, b2, ..., not beta1."""
    if not name.startswith(pattern):
        return False
    rest = name[len(pattern):]
    return (not rest or not pattern[-1].isalnum() or not rest[0].isalnum()
            or (rest[0].isdigit() and not pattern[-1].isdigit()))


def select(params, patterns, what="select: pattern"):
    """The names in `params` that the patterns name (exact names, prefixes or the groups 'conv'/'affine').
    `what` names the patterns in errors ('Solver: freeze')."""
    if not isinstance(params, dict) or not all(isinstance(n, str) for n in params):
        raise TypeError("select: params must be a dict keyed by param names (str), got "
                        f"{type(params).__name__}")
    if isinstance(patterns, str):
        patterns = [patterns]
    if isinstance(patterns, (bytes, dict)) or not hasattr(patterns, "__iter__"):
        raise TypeError(f"{what} must be a str or a list of str, got {type(patterns).__name__}")
    chosen = set()
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"{what} must be non-empty strings, got {pattern!r}")
        if pattern in GROUPS:
            layers, names = set(), set()
            for n, v in params.items():
                if n.startswith("W") and np.ndim(v) == GROUPS[pattern]:
                    number = _layer_number(n)
                    if number is None:
                        names.add(n)  # a weight with no layer number: nothing ties another param to it
                    else:
                        layers.add(number)
            names |= {n for n in params if _layer_number(n) in layers}
        else:
            names = {n for n in params if _names(pattern, n)}
        if not names:
            raise ValueError(f"{what} {pattern!r} names no parameter; the model has {sorted(params)}")
        chosen |= names
    return chosen
