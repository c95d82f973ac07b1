"""Fully connected classifiers, the cs231n.classifiers.fc_net API.

`from fastnn.classifiers.fc_net import *` also gives every layer function (affine_forward, batchnorm_forward,
dropout_forward, softmax_loss, ...), as the course notebooks expect from this module.
"""

import contextlib
import functools
import numbers

import numpy as np

from .. import _checks, init
from .._options import input_gradient as _input_gradient
from ..layer_utils import *
from ..layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_ln_relu_backward,
    affine_ln_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
)
from ..layers import *
from ..layers import affine_backward, affine_forward, dropout_backward, dropout_forward, softmax_loss
from ._saved import SavesParams as _SavesParams

NORMALIZATIONS = (None, "batchnorm", "layernorm")


def _model_input(fn, X, dtype, expected_shape):
    """X as an array of the model's dtype (float64 data into a float32 model computes in float32), checked
    against the input shape the model was built for."""
    try:
        X = np.asarray(X)
    except ValueError as error:  # a ragged list
        raise ValueError(f"{fn}: X must be an array (N, ...) of numbers: {error}") from error
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise TypeError(f"{fn}: X must hold numbers, got dtype {X.dtype}")
    if X.ndim < 2 or X.shape[0] < 1:
        raise ValueError(f"{fn}: X must be a non-empty batch (N, ...), got shape {X.shape}")
    if not _checks.fits_input_dim(X.shape[1:], expected_shape):
        if len(expected_shape) == 1:
            raise ValueError(f"{fn}: X of shape {X.shape} flattens to {int(np.prod(X.shape[1:]))} features, "
                             f"but the model was built for input_dim={expected_shape[0]}")
        raise ValueError(f"{fn}: X must have shape (N, {', '.join(map(str, expected_shape))}) for "
                         f"input_dim={tuple(expected_shape)}, got {X.shape}")
    return X.astype(dtype, copy=False)


def _training_targets(fn, X, y, params, scores_bias, reg):
    """(labels, reg) for a training call, (None, None) for a test-time one. Checked at the model's door, before
    the forward pass, so an error names the model and a refused call changes nothing (a train-mode forward
    updates batchnorm's running statistics): integer labels (N,) in [0, C) for the C entries of
    params[scores_bias], reg a finite number >= 0."""
    if y is None:
        return None, None
    num_classes = _num_classes(fn, params, scores_bias)
    return _checks.labels(fn, y, X.shape[0], num_classes), _check_reg(fn, reg)


def _num_classes(fn, params, scores_bias):
    """The length of the scores' bias, which must be a 1-D array."""
    bias = params[scores_bias]
    if not isinstance(bias, np.ndarray):
        _checks.fail(fn, f"params[{scores_bias!r}] (the scores' bias) must be a 1-D numpy.ndarray, got "
                         f"{type(bias).__name__}", TypeError)
    if bias.ndim != 1:
        _checks.fail(fn, f"params[{scores_bias!r}] (the scores' bias) must be 1-D, got shape {bias.shape}")
    return bias.shape[0]


@functools.cache
def _layer_param_names(num_layers, normalized):
    """The params a net of num_layers layers reads: W1, b1, (gamma1, beta1), ..., WL, bL."""
    names = []
    for i in range(1, num_layers + 1):
        names += [f"W{i}", f"b{i}"] + ([f"gamma{i}", f"beta{i}"] if normalized and i < num_layers else [])
    return tuple(names)


def _check_params(fn, params, names, dtype=None):
    """The params the forward pass reads, checked at the model's door, before any layer runs: each present and,
    where the model has a dtype, an array the layers take alongside it: of that float dtype (in either byte
    order), or of integers or bools (which the layers cast to it). Another float dtype is refused by name."""
    _checks.param_dict(fn, "params", params)
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"{fn}: params lacks {', '.join(missing)}; the model reads {', '.join(names)}")
    if dtype is None:
        return
    dtype = np.dtype(dtype)
    for name in names:
        value = params[name]
        kind = value.dtype.kind if isinstance(value, np.ndarray) else None
        if kind not in ("b", "i", "u", "f") or (kind == "f" and _checks.native_dtype(value) != dtype):
            got = f"dtype {value.dtype}" if kind else f"a {type(value).__name__}"
            raise TypeError(f"{fn}: params[{name!r}] must be an array of the model's dtype {dtype.name}, got {got} "
                            f"(set it as value.astype(np.{dtype.name}))")


def _check_bn_params(fn, bn_params, count):
    if not isinstance(bn_params, list) or len(bn_params) != count or not all(isinstance(p, dict) for p in bn_params):
        raise ValueError(f"{fn}: bn_params must be a list of {count} dicts, one per normalized layer, got "
                         f"{bn_params!r:.80}")


@contextlib.contextmanager
def _unchanged_if_refused(dicts):
    """Puts back the contents of these dicts (bn_params, dropout_param) when the block raises, so that a call a
    layer refuses part way through the forward pass leaves the model as it was (the layers before it had updated
    their running statistics, and every dict its mode). The layers rebind running_mean and running_var, never
    write into them, so shallow copies keep the old ones."""
    saved = [dict(d) for d in dicts]
    try:
        yield
    except BaseException:
        for d, contents in zip(dicts, saved):
            d.clear()
            d.update(contents)
        raise


def _l2_penalty(params, weight_names, reg):
    """0.5 * reg * sum of squared weights (biases, gamma and beta are not regularised). At reg 0 nothing is
    computed: the squares of a 3072x512 layer alone took ~1 ms a step (its temporary is 6 MB)."""
    if reg == 0:
        return 0.0
    return 0.5 * reg * sum(_sum_of_squares(params[k]) for k in weight_names)


def _sum_of_squares(w):
    """sum(w * w) as a float; integer and bool weights are squared in float64, where their own dtype wraps."""
    if w.dtype.kind in "biu":
        w = w.astype(np.float64)
    return float(np.sum(w * w))


def _add_l2_gradient(grads, params, weight_names, reg):
    """grads[k] += reg * params[k] for each weight, in place; nothing at reg 0."""
    if reg == 0:
        return
    for k in weight_names:
        grads[k] += reg * params[k]


def _check_reg(fn, reg):
    reg = _checks._scalar(reg)  # a 0-d array holds a number, as everywhere in fastnn
    if isinstance(reg, (bool, np.bool_)) or not isinstance(reg, numbers.Real):
        raise TypeError(f"{fn}: reg must be a finite number >= 0, got {reg!r}")
    if _checks.finite_float(reg) is None or reg < 0:
        raise ValueError(f"{fn}: reg must be a finite number >= 0, got {reg!r}")
    return float(reg)  # a Python float keeps float32 grads float32 (np.float64 * float32 array is float64)


def _check_dims(fn, name, dims):
    if isinstance(dims, np.ndarray) and dims.ndim == 0:  # np.array(3): one number, which list() cannot iterate
        dims = dims.item()
    if not isinstance(dims, (numbers.Integral, list, tuple, range, np.ndarray)):
        raise TypeError(f"{fn}: {name} must be an integer or a list of integers, got {dims!r}")
    dims = [dims] if isinstance(dims, numbers.Integral) else list(dims)
    return [_check_dim(fn, f"{name}[{i}]", d) for i, d in enumerate(dims)]


def _check_dim(fn, name, value):
    """One positive integer (a numpy integer or a 0-d array of one too), not a list of them."""
    value = _checks._scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _initial_weights(fn, cause, shapes, scale):
    """{name: init.weights(shape, scale)} in the order given, once all of them together are known to fit in
    memory: an error names the model and the arguments that set the sizes, before anything is drawn."""
    _checks.params_fit(fn, cause, shapes)
    return {name: init.weights(shape, scale) for name, shape in shapes.items()}


def _param_dtype(param):
    """The dtype a model computes in, from one of its params: float64 for integer params a user set (the
    starter's X.dot(W1) promotes them), so float data is never cast to integers."""
    dtype = getattr(param, "dtype", None)
    return dtype if dtype in _checks.FLOAT_DTYPES else np.dtype(np.float64)


def _check_float_dtype(fn, dtype):
    return _checks.float_dtype(fn, dtype).type


def _keep_number(fn, name, value):
    """A keep probability as a number (the number in a 0-d array), before it is compared with anything."""
    value = _checks._scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        _checks.fail(fn, f"{name} (the keep probability) must be a number in (0, 1], got {value!r}", TypeError)
    return value


class TwoLayerNet(_SavesParams):
    """A two-layer fully connected network with ReLU and softmax loss:

        affine - relu - affine - softmax

    Params: W1 (D, H), b1 (H,), W2 (H, C), b2 (C,); float64 as in the starter.
    """

    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0):
        """
        Inputs:
        - input_dim: an integer giving the size of the input
        - hidden_dim: an integer giving the size of the hidden layer
        - num_classes: an integer giving the number of classes to classify
        - weight_scale: the standard deviation of the gaussian initial weights, or 'xavier' / 'he'
        - reg: the L2 regularization strength
        """
        fn = "TwoLayerNet"
        self.input_dim = _check_dim(fn, "input_dim", input_dim)
        self.hidden_dim = _check_dim(fn, "hidden_dim", hidden_dim)
        self.num_classes = _check_dim(fn, "num_classes", num_classes)
        self.reg = _check_reg(fn, reg)
        scale = init.check_weight_scale(fn, weight_scale)
        weights = _initial_weights(fn, "input_dim, hidden_dim and num_classes", {
            "W1": (self.input_dim, self.hidden_dim), "W2": (self.hidden_dim, self.num_classes)}, scale)
        self.params = {}
        self.params["W1"] = weights["W1"]
        self.params["b1"] = np.zeros(self.hidden_dim)
        self.params["W2"] = weights["W2"]
        self.params["b2"] = np.zeros(self.num_classes)

    def loss(self, X, y=None):
        """Compute loss and gradient for a minibatch of data.

        Inputs:
        - X: array of input data of shape (N, d_1, ..., d_k)
        - y: array of labels, of shape (N,); y[i] gives the label for X[i]

        Returns:
        If y is None, run a test-time forward pass and return scores (N, C).
        Else return a tuple of: loss (a scalar) and grads (a dict with the keys of self.params).
        """
        fn = "TwoLayerNet.loss"
        _check_params(fn, self.params, _layer_param_names(2, False))
        X = _model_input(fn, X, _param_dtype(self.params["W1"]), (self.input_dim,))
        y, reg = _training_targets(fn, X, y, self.params, "b2", self.reg)
        hidden, hidden_cache = affine_relu_forward(X, self.params["W1"], self.params["b1"])
        scores, scores_cache = affine_forward(hidden, self.params["W2"], self.params["b2"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        loss += _l2_penalty(self.params, ("W1", "W2"), reg)
        grads = {}
        dhidden, grads["W2"], grads["b2"] = affine_backward(dscores, scores_cache)
        with _input_gradient(False):  # dx of the input is discarded: not computed
            _, grads["W1"], grads["b1"] = affine_relu_backward(dhidden, hidden_cache)
        _add_l2_gradient(grads, self.params, ("W1", "W2"), reg)
        return loss, grads


class FullyConnectedNet(_SavesParams):
    """A fully connected network with any number of hidden layers, ReLU, softmax loss, and optional dropout
    and batch or layer normalization. For L layers the architecture is

        {affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax

    Learnable parameters are W1..WL, b1..bL and, with normalization, gamma1..gamma(L-1) and beta1..beta(L-1),
    all of `dtype`. Hidden layers run the fused affine_bn_relu / affine_ln_relu sandwiches.
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout=1, normalization=None,
                 reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None, *, dropout_keep_ratio=None,
                 use_batchnorm=None):
        """
        Inputs:
        - hidden_dims: a list of integers giving the size of each hidden layer
        - input_dim: an integer giving the size of the input
        - num_classes: an integer giving the number of classes to classify
        - dropout: the probability of KEEPING a unit, in (0, 1]; 1 means no dropout (2018+ meaning)
        - normalization: None, 'batchnorm' or 'layernorm'
        - reg: the L2 regularization strength
        - weight_scale: the standard deviation of the gaussian initial weights, or 'xavier' / 'he'
        - dtype: np.float32 or np.float64; float64 is needed for numeric gradient checking
        - seed: if not None, passed to the dropout layers so that dropout is deterministic
        - dropout_keep_ratio: the 2021+ name of `dropout` (same meaning)
        - use_batchnorm: the 2017 spelling; True means normalization='batchnorm'
        """
        fn = "FullyConnectedNet"
        keep = self._keep_ratio(fn, dropout, dropout_keep_ratio)
        normalization = self._normalization(fn, normalization, use_batchnorm)
        hidden_dims = _check_dims(fn, "hidden_dims", hidden_dims)
        input_dim, num_classes = _check_dim(fn, "input_dim", input_dim), _check_dim(fn, "num_classes", num_classes)
        scale = init.check_weight_scale(fn, weight_scale)
        if seed is not None:  # checked now, before the weights are drawn, not at the first loss()
            seed = _checks.integer(fn, "seed", seed)

        self.normalization = normalization
        self.use_batchnorm = normalization == "batchnorm"
        self.use_dropout = keep != 1
        self.reg = _check_reg(fn, reg)
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = _check_float_dtype(fn, dtype)
        self.input_dim = input_dim
        self.params = {}

        dims = [input_dim] + hidden_dims + [num_classes]
        weights = _initial_weights(fn, "input_dim, hidden_dims and num_classes",
                                   {f"W{i + 1}": (dims[i], dims[i + 1]) for i in range(self.num_layers)}, scale)
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = weights[f"W{i + 1}"]
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1])
            if normalization is not None and i < self.num_layers - 1:
                self.params[f"gamma{i + 1}"] = np.ones(dims[i + 1])
                self.params[f"beta{i + 1}"] = np.zeros(dims[i + 1])

        # One dropout_param shared by every dropout layer; the layer reads the mode and, if given, the seed.
        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": keep}
            if seed is not None:
                self.dropout_param["seed"] = seed

        # One dict per normalized layer: batchnorm keeps its running mean and variance there.
        self.bn_params = []
        if normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        if normalization == "layernorm":
            self.bn_params = [{} for _ in range(self.num_layers - 1)]

        init.cast_params(fn, self.params, dtype, weight_scale)

    @staticmethod
    def _keep_ratio(fn, dropout, dropout_keep_ratio):
        dropout = _keep_number(fn, "dropout", dropout)
        if dropout_keep_ratio is not None:
            dropout_keep_ratio = _keep_number(fn, "dropout_keep_ratio", dropout_keep_ratio)
            if dropout != 1 and dropout != dropout_keep_ratio:
                raise ValueError(f"{fn}: dropout={dropout!r} and dropout_keep_ratio={dropout_keep_ratio!r} "
                                 "disagree; they are two names of the keep probability, give one")
            dropout = dropout_keep_ratio
        if dropout == 0:
            raise ValueError(
                f"{fn}: dropout=0 is ambiguous: in the 2017 course it meant 'no dropout' (a drop probability), "
                "since 2018 it is the KEEP probability and 0 would divide by zero. Use dropout=1 (or "
                "dropout_keep_ratio=1) for no dropout, or e.g. dropout=0.5 to keep half of the units."
            )
        if not 0 < dropout <= 1:
            raise ValueError(f"{fn}: dropout (the keep probability) must be in (0, 1], got {dropout!r}")
        return dropout

    @staticmethod
    def _normalization(fn, normalization, use_batchnorm):
        if normalization is True:  # the 2017 positional use_batchnorm=True lands here
            normalization = "batchnorm"
        elif normalization is False:
            normalization = None
        if use_batchnorm is not None and not isinstance(use_batchnorm, (bool, np.bool_)):
            raise TypeError(f"{fn}: use_batchnorm must be True, False or None, got {use_batchnorm!r}")
        if use_batchnorm:
            if normalization not in (None, "batchnorm"):
                raise ValueError(f"{fn}: use_batchnorm=True contradicts normalization={normalization!r}")
            normalization = "batchnorm"
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"{fn}: normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        return normalization

    def loss(self, X, y=None):
        """Compute loss and gradient for the fully connected net.

        Inputs:
        - X: array of input data of shape (N, d_1, ..., d_k), cast to the model's dtype
        - y: array of labels, of shape (N,); y[i] gives the label for X[i]

        Returns:
        If y is None, run a test-time forward pass and return scores (N, C).
        Else (training mode: batchnorm batch statistics, dropout on) return a tuple of:
        - loss: scalar value giving the loss
        - grads: dictionary with the same keys as self.params, mapping parameter names to gradients
        """
        fn = "FullyConnectedNet.loss"
        _check_params(fn, self.params, _layer_param_names(self.num_layers, self.normalization), self.dtype)
        if self.use_dropout:
            _checks.param_dict(fn, "dropout_param", self.dropout_param)
        if self.normalization is not None:
            _check_bn_params(fn, self.bn_params, self.num_layers - 1)
        X = _model_input(fn, X, self.dtype, (self.input_dim,))
        y, reg = _training_targets(fn, X, y, self.params, f"b{self.num_layers}", self.reg)
        # the dicts the forward pass writes; a model without dropout or normalization never reads its own
        state = ([self.dropout_param] if self.use_dropout else []) + (self.bn_params if self.normalization else [])
        with _unchanged_if_refused(state):
            return self._scores_or_loss(X, y, reg)

    def _scores_or_loss(self, X, y, reg):
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = mode

        p = self.params
        hidden_caches, dropout_caches = [], []
        out = X
        for i in range(1, self.num_layers):
            W, b = p[f"W{i}"], p[f"b{i}"]
            if self.normalization == "batchnorm":
                out, cache = affine_bn_relu_forward(out, W, b, p[f"gamma{i}"], p[f"beta{i}"], self.bn_params[i - 1])
            elif self.normalization == "layernorm":
                out, cache = affine_ln_relu_forward(out, W, b, p[f"gamma{i}"], p[f"beta{i}"], self.bn_params[i - 1])
            else:
                out, cache = affine_relu_forward(out, W, b)
            hidden_caches.append(cache)
            if self.use_dropout:
                out, cache = dropout_forward(out, self.dropout_param)
                dropout_caches.append(cache)
        L = self.num_layers
        scores, scores_cache = affine_forward(out, p[f"W{L}"], p[f"b{L}"])
        if mode == "test":
            return scores

        weight_names = [f"W{i}" for i in range(1, L + 1)]
        loss, dscores = softmax_loss(scores, y)
        loss += _l2_penalty(p, weight_names, reg)

        grads = {}
        with _input_gradient(L > 1):  # the first layer's dx (of the input) is discarded: not computed
            dout, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, scores_cache)
        for i in range(L - 1, 0, -1):
            if self.use_dropout:
                dout = dropout_backward(dout, dropout_caches[i - 1])
            cache = hidden_caches[i - 1]
            with _input_gradient(i > 1):
                if self.normalization == "batchnorm":
                    dout, dW, db, grads[f"gamma{i}"], grads[f"beta{i}"] = affine_bn_relu_backward(dout, cache)
                elif self.normalization == "layernorm":
                    dout, dW, db, grads[f"gamma{i}"], grads[f"beta{i}"] = affine_ln_relu_backward(dout, cache)
                else:
                    dout, dW, db = affine_relu_backward(dout, cache)
            grads[f"W{i}"], grads[f"b{i}"] = dW, db
        _add_l2_gradient(grads, p, weight_names, reg)
        return loss, grads
