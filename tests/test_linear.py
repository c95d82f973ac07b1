import numpy as np
import pytest

from fastnn.layers import affine_backward, affine_forward
from fastnn.testing import affine_inputs, check_gradients

pytestmark = pytest.mark.usefixtures("reference_backend")


def test_affine_forward_matches_notebook_numbers():
    # FullyConnectedNets.ipynb: affine_forward on linspace inputs
    num_inputs, input_shape, output_dim = 2, (4, 5, 6), 3
    input_size = num_inputs * np.prod(input_shape)
    weight_size = output_dim * np.prod(input_shape)
    x = np.linspace(-0.1, 0.5, num=input_size).reshape(num_inputs, *input_shape)
    w = np.linspace(-0.2, 0.3, num=weight_size).reshape(np.prod(input_shape), output_dim)
    b = np.linspace(-0.3, 0.1, num=output_dim)
    out, _ = affine_forward(x, w, b)
    correct = np.array([[1.49834967, 1.70660132, 1.91485297], [3.25553199, 3.5141327, 3.77273342]])
    np.testing.assert_allclose(out, correct, rtol=1e-8)


def test_affine_gradients_match_numeric():
    x, w, b = affine_inputs(N=3, D=(2, 4), M=5)
    check_gradients(affine_forward, affine_backward, [x, w, b], wrt=[0, 1, 2])


def test_affine_dx_keeps_input_shape_and_cache_layout():
    x, w, b = affine_inputs(N=2, D=(3, 2, 2), M=4)
    out, cache = affine_forward(x, w, b)
    assert cache[0] is x and cache[1] is w and cache[2] is b
    dx, dw, db = affine_backward(np.ones_like(out), cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_keeps_dtype_and_inputs(dtype):
    x, w, b = affine_inputs(dtype=dtype)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = affine_forward(x, w, b)
    grads = affine_backward(np.ones_like(out), cache)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)
