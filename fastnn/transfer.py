"""Transfer learning: load a checkpoint's params into a model by name, and name groups of params to freeze or to
train at their own learning rate.

A pattern names params: an exact name ('W1', never W10 as well), a prefix ('gamma'), or a layer group: 'conv'
(every param of the layers whose weight is a 4-D filter bank: W, b, gamma, beta of that layer number) or 'affine'
(the same for 2-D weights). A pattern that names nothing is an error, so a typo never freezes nothing silently.
"""

import re
from dataclasses import dataclass, field

import numpy as np

GROUPS = {"conv": 4, "affine": 2}


@dataclass
class TransferReport:
    """What load_params did: loaded names, skipped (name, source shape, model shape), missing and unused names."""

    loaded: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unused: list = field(default_factory=list)

    def __str__(self):
        lines = [f"loaded {len(self.loaded)} param(s): {', '.join(self.loaded) or '-'}"]
        if self.skipped:
            lines.append("skipped (shape differs): " + ", ".join(
                f"{name} {tuple(src)} vs model {tuple(dst)}" for name, src, dst in self.skipped))
        if self.missing:
            lines.append(f"missing from the checkpoint (kept as initialised): {', '.join(self.missing)}")
        if self.unused:
            lines.append(f"in the checkpoint but not in the model: {', '.join(self.unused)}")
        return "\n".join(lines)


def load_params(model, source):
    """Copy the params of `source` (a checkpoint path or a dict of arrays) into `model.params` where the names
    match and the shapes agree, cast to each model param's dtype. Returns a TransferReport. Params that hold NaN
    or Inf (after the cast) are refused, and then nothing is loaded."""
    if not isinstance(source, dict):
        from .checkpoint import load_checkpoint

        state = load_checkpoint(source)
        if "params" not in state:
            raise ValueError(f"load_params: checkpoint {source!r} holds no 'params'")
        source = state["params"]
    report, loaded = TransferReport(), {}
    for name, current in model.params.items():
        if name not in source:
            report.missing.append(name)
            continue
        value = np.asarray(source[name])
        if value.shape != current.shape:
            report.skipped.append((name, value.shape, current.shape))
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # what overflows is refused just below
            loaded[name] = value.astype(current.dtype, copy=True)
    not_finite = [name for name, value in loaded.items() if not np.isfinite(value).all()]
    if not_finite:
        raise ValueError(f"load_params: {', '.join(not_finite)} hold NaN or Inf values (in the model's dtype; "
                         "the checkpoint of a run that diverged?); nothing was loaded")
    model.params.update(loaded)
    report.loaded = list(loaded)
    report.unused = sorted(set(source) - set(model.params))
    return report


def _layer_number(name):
    match = re.search(r"(\d+)$", name)
    return match.group(1) if match else None


def _names(pattern, name):
    """Whether a name or prefix pattern names the param `name`. A prefix never ends inside a layer number:
    'W1' is W1 alone, not W10 and W11."""
    if not name.startswith(pattern):
        return False
    rest = name[len(pattern):]
    return not (rest and pattern[-1].isdigit() and rest[0].isdigit())


def select(params, patterns, what="pattern"):
    """The names in `params` that the patterns name (exact names, prefixes or the groups 'conv'/'affine')."""
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen = set()
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"{what} must be non-empty strings, got {pattern!r}")
        if pattern in GROUPS:
            layers = {_layer_number(n) for n, v in params.items()
                      if n.startswith("W") and np.ndim(v) == GROUPS[pattern]}
            names = {n for n in params if _layer_number(n) in layers}
        else:
            names = {n for n in params if _names(pattern, n)}
        if not names:
            raise ValueError(f"{what} {pattern!r} names no parameter; the model has {sorted(params)}")
        chosen |= names
    return chosen
