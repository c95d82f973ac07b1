import numpy as np
import pytest

from fastnn.layers import (
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from fastnn.testing import check_gradients, randn

pytestmark = pytest.mark.usefixtures("reference_backend")

ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (lambda x: leaky_relu_forward(x, 0.1), leaky_relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients_match_numeric(name):
    forward, backward = ACTIVATIONS[name]
    x = randn(4, 5, seed=3)
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the ReLU kink
    check_gradients(forward, backward, [x], wrt=[0])


def test_relu_forward_matches_notebook():
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    out, _ = relu_forward(x)
    correct = np.array([[0.0, 0.0, 0.0, 0.0],
                        [0.0, 0.0, 0.04545455, 0.13636364],
                        [0.22727273, 0.31818182, 0.40909091, 0.5]])
    np.testing.assert_allclose(out, correct, rtol=1e-6)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_keeps_dtype(name, dtype):
    forward, backward = ACTIVATIONS[name]
    x = randn(3, 4, dtype=dtype)
    out, cache = forward(x)
    assert out.dtype == dtype and backward(np.ones_like(out), cache).dtype == dtype


def test_relu_and_sigmoid_propagate_nan():
    x = np.array([[np.nan, -1.0, 2.0]])
    assert np.isnan(relu_forward(x)[0][0, 0])
    assert np.isnan(sigmoid_forward(x)[0][0, 0])


def test_sigmoid_does_not_overflow():
    out, _ = sigmoid_forward(np.array([[-1000.0, 1000.0]]))
    np.testing.assert_allclose(out, [[0.0, 1.0]])
