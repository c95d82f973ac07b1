"""The models skip the gradient of their input (the first layer's dx, which they discard), and nothing else
changes: the same loss and the same gradients, bit for bit, as computing it."""

import contextlib

import numpy as np
import pytest

import fastnn
import fastnn.classifiers.cnn as cnn
import fastnn.classifiers.fc_net as fc_net
from fastnn._options import input_gradient, input_gradient_wanted
from fastnn.classifiers import ConvNet, FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
from fastnn.fast_layers import conv_backward_fast, conv_forward_fast
from fastnn.layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_ln_relu_backward,
    affine_ln_relu_forward,
)
from fastnn.layers import affine_backward, affine_forward, conv_backward_naive, conv_forward_naive

BACKENDS = ["reference", "jit"]


def _computing_dx_anyway(monkeypatch):
    """Make every input_gradient(False) block compute dx all the same: the models' grads as if nothing skipped."""
    for module in (cnn, fc_net):
        monkeypatch.setattr(module, "_input_gradient", lambda wanted: contextlib.nullcontext())


MODELS = {
    "two_layer": (lambda: TwoLayerNet(input_dim=12, hidden_dim=7, num_classes=4, reg=0.1), (5, 12)),
    "fc": (lambda: FullyConnectedNet([6, 5], input_dim=12, num_classes=4, reg=0.1, seed=0), (5, 12)),
    "fc_no_hidden": (lambda: FullyConnectedNet([], input_dim=12, num_classes=4, reg=0.1, seed=0), (5, 12)),
    "fc_batchnorm": (lambda: FullyConnectedNet([6, 5], input_dim=12, num_classes=4, normalization="batchnorm",
                                               seed=0), (5, 12)),
    "fc_layernorm": (lambda: FullyConnectedNet([6, 5], input_dim=12, num_classes=4, normalization="layernorm",
                                               seed=0), (5, 12)),
    "three_layer": (lambda: ThreeLayerConvNet(input_dim=(2, 8, 8), num_filters=3, filter_size=3, hidden_dim=5,
                                              num_classes=4, reg=0.1, dtype=np.float64), (5, 2, 8, 8)),
    "convnet": (lambda: ConvNet(input_dim=(2, 8, 8), num_filters=(3, 4), hidden_dims=(5,), num_classes=4, reg=0.1,
                                dtype=np.float64), (5, 2, 8, 8)),
    "convnet_batchnorm": (lambda: ConvNet(input_dim=(2, 8, 8), num_filters=(3,), hidden_dims=(5,), num_classes=4,
                                          normalization="batchnorm", dtype=np.float64), (5, 2, 8, 8)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", MODELS)
def test_models_skip_only_the_input_gradient(backend, model, monkeypatch):
    make_model, shape = MODELS[model]
    X = np.random.default_rng(0).standard_normal(shape)
    y = np.array([0, 1, 2, 3, 1])
    with fastnn.options(backend=backend):
        np.random.seed(0)
        loss, grads = make_model().loss(X, y)
        _computing_dx_anyway(monkeypatch)
        np.random.seed(0)
        loss_full, grads_full = make_model().loss(X, y)
    assert loss == loss_full
    assert grads.keys() == grads_full.keys()
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads_full[k], err_msg=k)


def _assert_skips_only_dx(backward, dout, cache):
    full = backward(dout, cache)
    with input_gradient(False):
        assert not input_gradient_wanted()
        skipped = backward(dout, cache)
    assert input_gradient_wanted()
    assert skipped[0] is None and full[0] is not None
    for got, want in zip(skipped[1:], full[1:]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS + ["verify"])
def test_layers_return_no_dx_inside_the_block_and_the_same_dw_db(backend):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((4, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    xa, wa, ba = rng.standard_normal((4, 5)), rng.standard_normal((5, 6)), rng.standard_normal(6)
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    with fastnn.options(backend=backend):
        out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        _assert_skips_only_dx(conv_backward_fast, out, cache)
        out, cache = affine_forward(xa, wa, ba)
        _assert_skips_only_dx(affine_backward, out, cache)
        out, cache = affine_bn_relu_forward(xa, wa, ba, gamma, beta, {"mode": "train"})
        _assert_skips_only_dx(affine_bn_relu_backward, out, cache)
        out, cache = affine_ln_relu_forward(xa, wa, ba, gamma, beta, {})
        _assert_skips_only_dx(affine_ln_relu_backward, out, cache)


@pytest.mark.parametrize("backend", BACKENDS + ["verify"])
@pytest.mark.parametrize("C", [2, 8])  # 5 filters on 2 channels: im2col; on 8: Winograd on the compiled path
def test_the_naive_conv_backward_computes_dx_inside_the_block_on_every_backend(backend, C):
    """The compiled naive backward once returned dx None inside input_gradient(False), the reference the full dx."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, C, 6, 6)), rng.standard_normal((5, C, 3, 3)), rng.standard_normal(5)
    with fastnn.options(backend=backend):
        out, cache = conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
        full = conv_backward_naive(out, cache)
        with input_gradient(False):
            inside = conv_backward_naive(out, cache)
    for got, want in zip(inside, full):
        np.testing.assert_array_equal(got, want)


def test_the_block_restores_on_error():
    with pytest.raises(RuntimeError):
        with input_gradient(False):
            raise RuntimeError("boom")
    assert input_gradient_wanted()


@pytest.mark.parametrize("filter_size", [3, 5])  # 3: the Winograd path (dinput_tiles); 5: im2col (col2im)
def test_the_first_conv_layer_computes_no_input_gradient(monkeypatch, filter_size):
    import fastnn.compiled.conv as compiled_conv
    import fastnn.compiled.winograd as compiled_winograd

    monkeypatch.setattr(compiled_winograd, "pays", lambda channels, filters: True)
    calls = []
    for module, name in [(compiled_conv.K, "col2im"), (compiled_winograd.K, "dinput_tiles")]:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, _real=real: calls.append(1) or _real(*args))
    X = np.random.default_rng(3).standard_normal((2, 2, 8, 8))
    with fastnn.options(backend="jit"):
        ThreeLayerConvNet(input_dim=(2, 8, 8), num_filters=3, filter_size=filter_size, hidden_dim=5, num_classes=4,
                          dtype=np.float64).loss(X, np.array([0, 1]))
        assert calls == []
        ConvNet(input_dim=(2, 8, 8), num_filters=(3, 4), filter_size=filter_size, hidden_dims=(5,), num_classes=4,
                dtype=np.float64).loss(X, np.array([0, 1]))
        assert len(calls) == 1  # the second conv layer's dx is needed
