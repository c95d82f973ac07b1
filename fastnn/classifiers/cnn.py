"""Convolutional classifiers, the cs231n.classifiers.cnn API, plus ConvNet for deeper models.

`from fastnn.classifiers.cnn import *` also gives every layer function (conv_forward_fast,
max_pool_forward_fast, conv_relu_pool_forward, softmax_loss, ...), as the course notebooks expect.
"""

import numbers

import numpy as np

from .. import init
from .._options import input_gradient as _input_gradient
from ..fast_layers import *
from ..fast_layers import max_pool_backward_fast, max_pool_forward_fast
from ..layer_utils import *
from ..layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from ..layers import *
from ..layers import affine_backward, affine_forward, softmax_loss
from ._saved import SavesParams as _SavesParams
from .fc_net import (
    _add_l2_gradient,
    _check_bn_params,
    _check_dim,
    _check_dims,
    _check_float_dtype,
    _check_params,
    _check_reg,
    _initial_weights,
    _l2_penalty,
    _layer_param_names,
    _model_input,
    _training_targets,
    _unchanged_if_refused,
)

POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _conv_output_size(size, filter_size, pad, stride=1):
    return 1 + (size + 2 * pad - filter_size) // stride


def _pool_output_size(size):
    return 1 + (size - POOL_PARAM["pool_height"]) // POOL_PARAM["stride"]


def _input_dim(fn, input_dim):
    dims = _check_dims(fn, "input_dim (C, H, W)", input_dim)
    if len(dims) != 3:
        raise ValueError(f"{fn}: input_dim must be (C, H, W), got {input_dim!r}")
    return tuple(dims)


class ThreeLayerConvNet(_SavesParams):
    """A three-layer convolutional network:

        conv - relu - 2x2 max pool - affine - relu - affine - softmax

    operating on minibatches of shape (N, C, H, W). The conv layer keeps H and W (stride 1, pad
    (filter_size - 1) // 2); params W1 (F, C, fs, fs), b1, W2 (F * H/2 * W/2, hidden_dim), b2, W3, b3 of `dtype`.
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100, num_classes=10,
                 weight_scale=1e-3, reg=0.0, dtype=np.float32):
        """
        Inputs:
        - input_dim: tuple (C, H, W) giving the size of the input data
        - num_filters: number of filters in the convolutional layer
        - filter_size: width/height of the filters
        - hidden_dim: number of units in the fully-connected hidden layer
        - num_classes: number of scores to produce from the final affine layer
        - weight_scale: the standard deviation of the gaussian initial weights, or 'xavier' / 'he'
        - reg: the L2 regularization strength
        - dtype: numpy datatype of the params and of the computation (X is cast to it)
        """
        fn = "ThreeLayerConvNet"
        C, H, W = self.input_dim = _input_dim(fn, input_dim)
        num_filters, filter_size, hidden_dim, num_classes = (
            _check_dim(fn, name, value) for name, value in (("num_filters", num_filters), ("filter_size", filter_size),
                                                            ("hidden_dim", hidden_dim), ("num_classes", num_classes)))
        scale = init.check_weight_scale(fn, weight_scale)
        self.reg = _check_reg(fn, reg)
        self.dtype = _check_float_dtype(fn, dtype)
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.pool_param = dict(POOL_PARAM)
        H_conv = _conv_output_size(H, filter_size, self.conv_param["pad"])
        W_conv = _conv_output_size(W, filter_size, self.conv_param["pad"])
        if min(H_conv, W_conv) < 2:
            raise ValueError(f"{fn}: input_dim {self.input_dim} is too small for filter_size {filter_size} and a "
                             "2x2 pool")
        if H_conv % 2 or W_conv % 2:  # else only loss() would find out
            raise ValueError(f"{fn}: input_dim {self.input_dim} with filter_size {filter_size} gives a conv output "
                             f"of {H_conv}x{W_conv}, which the 2x2 stride-2 pool cannot tile: it needs an even "
                             "height and width (an odd filter_size keeps H and W)")
        pooled = num_filters * _pool_output_size(H_conv) * _pool_output_size(W_conv)

        weights = _initial_weights(fn, "input_dim, num_filters, filter_size, hidden_dim and num_classes", {
            "W1": (num_filters, C, filter_size, filter_size), "W2": (pooled, hidden_dim),
            "W3": (hidden_dim, num_classes)}, scale)
        self.params = {}
        self.params["W1"] = weights["W1"]
        self.params["b1"] = np.zeros(num_filters)
        self.params["W2"] = weights["W2"]
        self.params["b2"] = np.zeros(hidden_dim)
        self.params["W3"] = weights["W3"]
        self.params["b3"] = np.zeros(num_classes)
        init.cast_params(fn, self.params, dtype, weight_scale)

    def loss(self, X, y=None):
        """Evaluate loss and gradient for the three-layer convolutional network.

        Input / output: same API as TwoLayerNet in fc_net.py (scores when y is None, else (loss, grads)).
        """
        fn = "ThreeLayerConvNet.loss"
        _check_params(fn, self.params, _layer_param_names(3, False), self.dtype)
        X = _model_input(fn, X, self.dtype, self.input_dim)
        y, reg = _training_targets(fn, X, y, self.params, "b3", self.reg)
        p = self.params
        out1, cache1 = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param, self.pool_param)
        out2, cache2 = affine_relu_forward(out1, p["W2"], p["b2"])
        scores, cache3 = affine_forward(out2, p["W3"], p["b3"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        loss += _l2_penalty(p, ("W1", "W2", "W3"), reg)
        grads = {}
        dout2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dout1, grads["W2"], grads["b2"] = affine_relu_backward(dout2, cache2)
        with _input_gradient(False):  # dx of the images is discarded: not computed
            _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dout1, cache1)
        _add_l2_gradient(grads, p, ("W1", "W2", "W3"), reg)
        return loss, grads


class ConvNet(_SavesParams):
    """A convolutional network of any depth:

        [conv - (spatial batchnorm) - relu - (2x2 max pool)] x K - [affine - (batchnorm) - relu] x M
        - affine - softmax

    Convolutions have stride 1 and pad (filter_size - 1) // 2. Parameters are numbered through the whole
    network: W1, b1 (and gamma1, beta1 with batchnorm) for the first conv layer, ..., W(K+M+1), b(K+M+1) for
    the scores. bn_params holds one dict per normalized layer, in order.
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=(32, 64), filter_size=3, hidden_dims=(100,),
                 num_classes=10, pool=True, normalization=None, weight_scale=1e-3, reg=0.0, dtype=np.float32):
        """
        Inputs:
        - input_dim: tuple (C, H, W) giving the size of the input data
        - num_filters: filters of each conv layer (K = len(num_filters))
        - filter_size: width/height of every filter
        - hidden_dims: sizes of the hidden affine layers (M = len(hidden_dims); may be empty)
        - num_classes: number of scores to produce from the final affine layer
        - pool: True/False for every conv layer, or a sequence of K booleans: 2x2 max pool after that layer
        - normalization: None or 'batchnorm' (spatial batchnorm after convs, batchnorm after hidden affines)
        - weight_scale: the standard deviation of the gaussian initial weights, or 'xavier' / 'he'
        - reg: the L2 regularization strength
        - dtype: numpy datatype of the params and of the computation (X is cast to it)
        """
        fn = "ConvNet"
        C, H, W = self.input_dim = _input_dim(fn, input_dim)
        num_filters = _check_dims(fn, "num_filters", num_filters)
        hidden_dims = _check_dims(fn, "hidden_dims", hidden_dims)  # may be empty: no hidden affine layer
        filter_size = _check_dim(fn, "filter_size", filter_size)
        num_classes = _check_dim(fn, "num_classes", num_classes)
        if isinstance(pool, (bool, np.bool_)):
            pools = [pool] * len(num_filters)
        else:
            iterable = hasattr(pool, "__iter__") and not isinstance(pool, (str, bytes, dict))
            pools = list(pool) if iterable else []
        if len(pools) != len(num_filters) or not all(isinstance(b, (bool, np.bool_)) for b in pools):
            raise ValueError(f"{fn}: pool must be a bool or {len(num_filters)} bools (one per conv layer), "
                             f"got {pool!r}")
        if normalization not in (None, "batchnorm"):
            raise ValueError(f"{fn}: normalization must be None or 'batchnorm', got {normalization!r}")
        scale = init.check_weight_scale(fn, weight_scale)
        self.reg = _check_reg(fn, reg)
        self.dtype = _check_float_dtype(fn, dtype)
        self.normalization = normalization
        self.pools = [bool(b) for b in pools]
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.pool_param = dict(POOL_PARAM)
        self.num_conv_layers = len(num_filters)
        self.num_layers = len(num_filters) + len(hidden_dims) + 1

        self.params = {}
        shapes = {}  # of the weights, drawn in this order once all are known to fit
        channels, height, width = C, H, W
        layer = 0
        for F, pooled in zip(num_filters, self.pools):
            layer += 1
            shapes[f"W{layer}"] = (F, channels, filter_size, filter_size)
            self.params[f"W{layer}"] = None
            self.params[f"b{layer}"] = np.zeros(F)
            if normalization:
                self.params[f"gamma{layer}"] = np.ones(F)
                self.params[f"beta{layer}"] = np.zeros(F)
            height = _conv_output_size(height, filter_size, self.conv_param["pad"])
            width = _conv_output_size(width, filter_size, self.conv_param["pad"])
            if pooled:
                if min(height, width) < 2:
                    raise ValueError(f"{fn}: conv layer {layer} outputs {height}x{width}, too small for a 2x2 pool; "
                                     f"input_dim {self.input_dim} allows fewer pooled layers")
                if height % 2 or width % 2:
                    raise ValueError(f"{fn}: conv layer {layer} outputs {height}x{width}, which the 2x2 stride-2 "
                                     f"pool after it cannot tile (it needs an even height and width); choose "
                                     f"input_dim {self.input_dim}, filter_size {filter_size} or pool to fit")
                height, width = _pool_output_size(height), _pool_output_size(width)
            if min(height, width) < 1:
                raise ValueError(f"{fn}: conv layer {layer} leaves no output for input_dim {self.input_dim}")
            channels = F
        dims = [channels * height * width] + hidden_dims + [num_classes]
        for i in range(len(dims) - 1):
            layer += 1
            shapes[f"W{layer}"] = (dims[i], dims[i + 1])
            self.params[f"W{layer}"] = None
            self.params[f"b{layer}"] = np.zeros(dims[i + 1])
            if normalization and i < len(dims) - 2:
                self.params[f"gamma{layer}"] = np.ones(dims[i + 1])
                self.params[f"beta{layer}"] = np.zeros(dims[i + 1])

        self.params.update(_initial_weights(
            fn, "input_dim, num_filters, filter_size, hidden_dims and num_classes", shapes, scale))
        self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)] if normalization else []
        init.cast_params(fn, self.params, dtype, weight_scale)

    def loss(self, X, y=None):
        """Evaluate loss and gradient of the network.

        Input / output: same API as TwoLayerNet in fc_net.py (scores when y is None, else (loss, grads)).
        """
        fn = "ConvNet.loss"
        _check_params(fn, self.params, _layer_param_names(self.num_layers, self.normalization), self.dtype)
        if self.normalization is not None:
            _check_bn_params(fn, self.bn_params, self.num_layers - 1)
        X = _model_input(fn, X, self.dtype, self.input_dim)
        y, reg = _training_targets(fn, X, y, self.params, f"b{self.num_layers}", self.reg)
        # without normalization bn_params is never read (it may be None), as in FullyConnectedNet
        with _unchanged_if_refused(self.bn_params if self.normalization else []):
            return self._scores_or_loss(X, y, reg)

    def _scores_or_loss(self, X, y, reg):
        mode = "test" if y is None else "train"
        bn = self.normalization == "batchnorm"
        for bn_param in self.bn_params if bn else []:
            bn_param["mode"] = mode

        p = self.params
        caches = []
        out = X
        for i in range(1, self.num_conv_layers + 1):
            args = (out, p[f"W{i}"], p[f"b{i}"])
            pooled = self.pools[i - 1]
            if bn:
                out, cache = conv_bn_relu_forward(*args, p[f"gamma{i}"], p[f"beta{i}"], self.conv_param,
                                                  self.bn_params[i - 1])
                if pooled:
                    out, pool_cache = max_pool_forward_fast(out, self.pool_param)
                    cache = (cache, pool_cache)
            elif pooled:
                out, cache = conv_relu_pool_forward(*args, self.conv_param, self.pool_param)
            else:
                out, cache = conv_relu_forward(*args, self.conv_param)
            caches.append(cache)
        L = self.num_layers
        for i in range(self.num_conv_layers + 1, L):
            if bn:
                out, cache = affine_bn_relu_forward(out, p[f"W{i}"], p[f"b{i}"], p[f"gamma{i}"], p[f"beta{i}"],
                                                    self.bn_params[i - 1])
            else:
                out, cache = affine_relu_forward(out, p[f"W{i}"], p[f"b{i}"])
            caches.append(cache)
        scores, scores_cache = affine_forward(out, p[f"W{L}"], p[f"b{L}"])
        if y is None:
            return scores

        weight_names = [f"W{i}" for i in range(1, L + 1)]
        loss, dscores = softmax_loss(scores, y)
        loss += _l2_penalty(p, weight_names, reg)

        grads = {}
        dout, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, scores_cache)
        for i in range(L - 1, self.num_conv_layers, -1):
            with _input_gradient(i > 1):
                if bn:
                    dout, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"], grads[f"beta{i}"] = (
                        affine_bn_relu_backward(dout, caches[i - 1])
                    )
                else:
                    dout, grads[f"W{i}"], grads[f"b{i}"] = affine_relu_backward(dout, caches[i - 1])
        for i in range(self.num_conv_layers, 0, -1):
            cache = caches[i - 1]
            pooled = self.pools[i - 1]
            if bn and pooled:
                cache, pool_cache = cache
                dout = max_pool_backward_fast(dout, pool_cache)
            with _input_gradient(i > 1):  # the first layer's dx (of the images) is discarded: not computed
                if bn:
                    dout, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"], grads[f"beta{i}"] = (
                        conv_bn_relu_backward(dout, cache)
                    )
                elif pooled:
                    dout, grads[f"W{i}"], grads[f"b{i}"] = conv_relu_pool_backward(dout, cache)
                else:
                    dout, grads[f"W{i}"], grads[f"b{i}"] = conv_relu_backward(dout, cache)
        _add_l2_gradient(grads, p, weight_names, reg)
        return loss, grads
