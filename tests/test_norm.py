import numpy as np
import pytest

from fastnn.layers import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
    spatial_groupnorm_backward,
    spatial_groupnorm_forward,
)
from fastnn.testing import check_gradients, norm_inputs

pytestmark = pytest.mark.usefixtures("reference_backend")


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_alt])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_gradients_match_numeric(backward, mode):
    x, gamma, beta = norm_inputs((6, 5))
    bn_param = {"mode": "train"}
    batchnorm_forward(x * 0.5 + 1, gamma, beta, bn_param)  # non-zero running stats for test mode
    bn_param["mode"] = mode
    check_gradients(lambda x, g, b: batchnorm_forward(x, g, b, bn_param), backward, [x, gamma, beta], wrt=[0, 1, 2])


def test_batchnorm_train_output_has_beta_mean_and_gamma_std():
    x, gamma, beta = norm_inputs((200, 3), seed=1)
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), np.abs(gamma), rtol=1e-4)


def test_batchnorm_running_stats_follow_momentum_and_test_mode_uses_them():
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((20, 6))
    gamma, beta = np.ones(6), np.zeros(6)
    bn_param = {"mode": "train", "momentum": 0.9}
    expected_mean = np.zeros(6)
    for _ in range(60):
        x = rng.standard_normal((50, 20)) @ W1 + 3
        batchnorm_forward(x, gamma, beta, bn_param)
        expected_mean = 0.9 * expected_mean + 0.1 * x.mean(axis=0)
    np.testing.assert_allclose(bn_param["running_mean"], expected_mean, rtol=1e-12)
    bn_param["mode"] = "test"
    x = rng.standard_normal((2000, 20)) @ W1 + 3
    out, _ = batchnorm_forward(x, gamma, beta, bn_param)
    # the notebook's check: after warm-up, test-mode outputs are roughly standardised
    assert np.all(np.abs(out.mean(axis=0)) < 0.3)
    assert np.all(np.abs(out.std(axis=0) - 1) < 0.3)


def test_batchnorm_writes_new_running_arrays_and_leaves_the_users_alone():
    x, gamma, beta = norm_inputs((5, 4))
    running_mean = np.ones(4)
    bn_param = {"mode": "train", "running_mean": running_mean}
    batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_array_equal(running_mean, np.ones(4))
    assert bn_param["running_mean"] is not running_mean
    assert bn_param["running_var"].dtype == x.dtype


def test_batchnorm_backward_alt_equals_backward():
    x, gamma, beta = norm_inputs((7, 3))
    out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = np.random.default_rng(1).standard_normal(out.shape)
    for a, b in zip(batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_batchnorm_batch_of_one_and_constant_features_stay_finite():
    x, gamma, beta = norm_inputs((1, 4))
    out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out, np.broadcast_to(beta, (1, 4)))
    assert all(np.all(np.isfinite(g)) for g in batchnorm_backward(np.ones_like(out), cache))


@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_gradients_match_numeric(mode):
    x, gamma, beta = norm_inputs((2, 3, 4, 5))
    bn_param = {"mode": "train"}
    spatial_batchnorm_forward(x, gamma, beta, bn_param)
    bn_param["mode"] = mode
    check_gradients(lambda x, g, b: spatial_batchnorm_forward(x, g, b, bn_param), spatial_batchnorm_backward,
                    [x, gamma, beta], wrt=[0, 1, 2])


def test_spatial_batchnorm_normalises_each_channel():
    x, gamma, beta = norm_inputs((10, 3, 4, 5), seed=2)
    out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), np.abs(gamma), rtol=1e-4)
    assert spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})[1][4].shape == (3,)


def test_layernorm_gradients_match_numeric():
    x, gamma, beta = norm_inputs((4, 6))
    check_gradients(lambda x, g, b: layernorm_forward(x, g, b, {}), layernorm_backward, [x, gamma, beta],
                    wrt=[0, 1, 2])


def test_layernorm_normalises_each_row_and_ignores_mode():
    x, gamma, beta = norm_inputs((4, 50), seed=4)
    gamma, beta = np.ones(50), np.zeros(50)
    out_train, _ = layernorm_forward(x, gamma, beta, {"mode": "train"})
    out_test, _ = layernorm_forward(x, gamma, beta, {"mode": "test"})
    np.testing.assert_array_equal(out_train, out_test)
    np.testing.assert_allclose(out_train.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out_train.std(axis=1), 1, rtol=1e-4)


@pytest.mark.parametrize("param_shape", ["flat", "notebook"])
@pytest.mark.parametrize("G", [1, 2, 4])
def test_groupnorm_gradients_match_numeric_in_callers_shape(param_shape, G):
    x, gamma, beta = norm_inputs((2, 4, 3, 3))
    if param_shape == "notebook":
        gamma, beta = gamma.reshape(1, 4, 1, 1), beta.reshape(1, 4, 1, 1)
    out, cache = spatial_groupnorm_forward(x, gamma, beta, G, {})
    dx, dgamma, dbeta = spatial_groupnorm_backward(np.ones_like(out), cache)
    assert dgamma.shape == gamma.shape and dbeta.shape == beta.shape
    check_gradients(lambda x, g, b: spatial_groupnorm_forward(x, g, b, G, {}), spatial_groupnorm_backward,
                    [x, gamma, beta], wrt=[0, 1, 2])


def test_groupnorm_normalises_each_group():
    x, _, _ = norm_inputs((3, 6, 4, 4), seed=5)
    out, _ = spatial_groupnorm_forward(x, np.ones(6), np.zeros(6), 3, {"mode": "train"})
    grouped = out.reshape(3, 3, -1)
    np.testing.assert_allclose(grouped.mean(axis=2), 0, atol=1e-12)
    np.testing.assert_allclose(grouped.std(axis=2), 1, rtol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norms_keep_dtype(dtype):
    x, gamma, beta = norm_inputs((4, 3), dtype=dtype)
    bn_param = {"mode": "train"}
    out, cache = batchnorm_forward(x, gamma, beta, bn_param)
    assert out.dtype == dtype and bn_param["running_mean"].dtype == dtype
    assert all(g.dtype == dtype for g in batchnorm_backward(out, cache))
    out, cache = layernorm_forward(x, gamma, beta, {})
    assert out.dtype == dtype and all(g.dtype == dtype for g in layernorm_backward(out, cache))


@pytest.mark.parametrize("backend", ["reference", "jit"])
def test_the_default_eps_is_1e_5_and_momentum_0_9(backend):
    """Features of variance 1e-4, where eps = 1e-5 is a tenth of it, so another default shows (the outputs were
    only held to a unit std within 1e-4, which eps = 1e-4 passed)."""
    import fastnn

    rng = np.random.default_rng(0)
    x = 0.01 * rng.standard_normal((8, 5)) + 3.0
    x4 = 0.01 * rng.standard_normal((2, 4, 3, 3)) + 3.0
    ones, zeros = np.ones(5), np.zeros(5)

    def normalised(v, axes):
        return (v - v.mean(axis=axes, keepdims=True)) / np.sqrt(v.var(axis=axes, keepdims=True) + 1e-5)

    with fastnn.options(backend=backend):
        bn_param = {"mode": "train"}
        out, _ = batchnorm_forward(x, ones, zeros, bn_param)
        np.testing.assert_allclose(out, normalised(x, 0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(bn_param["running_var"], 0.1 * x.var(axis=0), rtol=1e-9)
        out, _ = layernorm_forward(x, ones, zeros, {})
        np.testing.assert_allclose(out, normalised(x, 1), rtol=1e-9, atol=1e-9)
        out, _ = spatial_batchnorm_forward(x4, np.ones(4), np.zeros(4), {"mode": "train"})
        np.testing.assert_allclose(out, normalised(x4, (0, 2, 3)), rtol=1e-9, atol=1e-9)
        out, _ = spatial_groupnorm_forward(x4, np.ones(4), np.zeros(4), 2, {})
        grouped = x4.reshape(2, 2, 18)
        np.testing.assert_allclose(out, normalised(grouped, 2).reshape(x4.shape), rtol=1e-9, atol=1e-9)
