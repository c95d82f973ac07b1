"""Numerical edges on both paths: huge and equal logits, a batch of one, constant features, one channel per
group, and float32 running statistics over many steps."""

import numpy as np
import pytest

import fastnn
import fastnn.layers as L

BACKENDS = ["reference", "jit"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_with_huge_and_equal_logits(backend, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [5.0, 5.0, 5.0]], dtype=dtype)
    y = np.array([0, 2, 1])
    with fastnn.options(backend=backend):
        soft, dsoft = L.softmax_loss(x, y)
        svm, dsvm = L.svm_loss(x, y)
    # row 0: p(correct) = 1; row 1: two equal winners, log 2; row 2: log 3
    np.testing.assert_allclose(soft, (0 + np.log(2) + np.log(3)) / 3, rtol=1e-6)
    # row 0: margins 0, row 1: class 1 ties the correct class -> margin 1; row 2: two margins of 1
    np.testing.assert_allclose(svm, (0 + 1 + 2) / 3, rtol=1e-6)
    for d in (dsoft, dsvm):
        assert d.dtype == dtype and np.all(np.isfinite(d))
    np.testing.assert_allclose(dsoft.sum(axis=1), 0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_with_one_sample_and_constant_features(backend):
    gamma, beta = np.array([2.0, 3.0]), np.array([0.5, -1.0])
    with fastnn.options(backend=backend):
        out, cache = L.batchnorm_forward(np.array([[1.0, 7.0]]), gamma, beta, {"mode": "train"})
        np.testing.assert_allclose(out, [[0.5, -1.0]])
        grads = L.batchnorm_backward(np.ones((1, 2)), cache)
        constant = np.tile([[4.0, 4.0]], (5, 1))
        out, cache = L.batchnorm_forward(constant, gamma, beta, {"mode": "train"})
        np.testing.assert_allclose(out, np.tile(beta, (5, 1)))
        grads += L.batchnorm_backward(np.random.default_rng(0).standard_normal((5, 2)), cache)
    assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_groupnorm_with_one_channel_per_group_is_instance_norm(backend):
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)) * 5 + 2
    with fastnn.options(backend=backend):
        out, cache = L.spatial_groupnorm_forward(x, np.ones(4), np.zeros(4), 4, {})
        dx, dgamma, dbeta = L.spatial_groupnorm_backward(np.ones_like(out), cache)
    np.testing.assert_allclose(out.mean(axis=(2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(2, 3)), 1, rtol=1e-4)
    np.testing.assert_allclose(dx, 0, atol=1e-10)  # a constant upstream gradient is normalised away


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_running_statistics_track_a_float64_run(backend):
    rng = np.random.default_rng(0)
    gamma, beta = np.ones(16), np.zeros(16)
    p32, p64 = {"mode": "train"}, {"mode": "train"}
    with fastnn.options(backend=backend):
        for _ in range(500):
            x = rng.standard_normal((32, 16)) * 3 + 100
            L.batchnorm_forward(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32), p32)
            L.batchnorm_forward(x, gamma, beta, p64)
    assert p32["running_mean"].dtype == np.float32
    np.testing.assert_allclose(p32["running_mean"], p64["running_mean"], rtol=1e-5)
    np.testing.assert_allclose(p32["running_var"], p64["running_var"], rtol=1e-3)
