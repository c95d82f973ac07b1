"""The default model of `fastnn tune`: build_fc_net, a FullyConnectedNet sized for the data from a config, and
default_space, the space the command searches.
"""

from collections.abc import Mapping

import numpy as np

from .. import _checks as check
from .space import choice, loguniform
from .trial import OPTIM_KEYS, SOLVER_KEYS

FC_NET_KEYS = ("hidden_size", "num_layers", "dropout", "normalization", "reg", "weight_scale", "dtype")


def build_fc_net(config, data):
    """A FullyConnectedNet for `data` (input size and class count are read from it), from the config keys
    hidden_size (default 64), num_layers (hidden layers, default 1), dropout (keep ratio, default 1),
    normalization (None), reg (0.0), weight_scale (1e-2, or 'xavier' / 'he') and dtype ('float32').

    Keys that are neither these nor Solver keys (SOLVER_KEYS, OPTIM_KEYS) raise a ValueError, so a misspelt
    parameter fails its trials instead of being searched for nothing.
    """
    from ..classifiers.fc_net import FullyConnectedNet

    fn = "build_fc_net"
    if not isinstance(config, Mapping):
        check.fail(fn, f"config must be a dict of hyperparameters, got {type(config).__name__}", TypeError)
    unknown = sorted(set(config) - set(FC_NET_KEYS) - set(SOLVER_KEYS) - set(OPTIM_KEYS))
    if unknown:
        check.fail(fn, f"unknown config keys {unknown}; it reads {list(FC_NET_KEYS)} and the Solver "
                       f"reads {list(SOLVER_KEYS + OPTIM_KEYS)}")
    missing = [k for k in ("X_train", "y_train", "y_val") if k not in data] if isinstance(data, Mapping) else None
    if missing is None or missing:
        check.fail(fn, f"data must be a dict with X_train, y_train, X_val, y_val; missing {missing or 'all'}",
                   TypeError if missing is None else ValueError)
    if min(np.size(data["y_train"]), np.size(data["y_val"])) == 0:
        check.fail(fn, "y_train and y_val must hold labels: the class count is read from them")
    num_layers = check.integer(fn, "config['num_layers']", config.get("num_layers", 1), minimum=0)
    hidden_size = check.integer(fn, "config['hidden_size']", config.get("hidden_size", 64), minimum=1)
    dtype = check.float_dtype(fn, config.get("dtype", "float32"), "config['dtype']")
    input_dim = int(np.prod(np.shape(data["X_train"])[1:]))
    num_classes = int(max(np.max(data["y_train"]), np.max(data["y_val"]))) + 1
    return FullyConnectedNet(
        [hidden_size] * num_layers,
        input_dim=input_dim,
        num_classes=num_classes,
        dropout=config.get("dropout", 1),
        normalization=config.get("normalization"),
        reg=config.get("reg", 0.0),
        weight_scale=config.get("weight_scale", 1e-2),
        dtype=dtype.type,
    )


def default_space():
    """The search `fastnn tune` runs: learning rate, regularisation and weight scale in log space, hidden size."""
    return {
        "learning_rate": loguniform(1e-4, 1e-1),
        "reg": loguniform(1e-6, 1e-1),
        "weight_scale": loguniform(1e-3, 1e-1),
        "hidden_size": choice([32, 64, 128]),
    }
