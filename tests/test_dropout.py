import numpy as np
import pytest

from fastnn.layers import dropout_backward, dropout_forward, relu_forward
from fastnn.reference.dropout import dropout_keep_mask
from fastnn.testing import check_gradients, randn

pytestmark = pytest.mark.usefixtures("reference_backend")


@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_dropout_keeps_p_and_preserves_the_mean(p):
    x = randn(500, 500, seed=1) + 10
    out, (_, mask) = dropout_forward(x, {"mode": "train", "p": p, "seed": 123})
    assert abs(mask.mean() - p) < 0.01
    assert abs(out.mean() - x.mean()) / x.mean() < 0.02
    np.testing.assert_allclose(out[mask], x[mask] / p)
    assert np.all(out[~mask] == 0)


def test_dropout_test_mode_is_identity():
    x = randn(10, 10)
    out, cache = dropout_forward(x, {"mode": "test", "p": 0.3})
    np.testing.assert_array_equal(out, x)
    assert cache[1] is None
    np.testing.assert_array_equal(dropout_backward(x, cache), x)


def test_dropout_gradient_matches_numeric():
    x = randn(5, 6, seed=2)
    param = {"mode": "train", "p": 0.6, "seed": 7}
    check_gradients(lambda x: dropout_forward(x, param), dropout_backward, [x], wrt=[0])


@pytest.mark.parametrize("backend", ["reference", "jit"])
def test_backward_is_of_the_forward_as_called_whatever_the_dict_holds_later(backend):
    """The starter's mask held 1/p; this cache's mask is bool and the backward reads p from the cached dict, which
    was the caller's own: setting p (or mode) after the forward changed the gradient."""
    import fastnn

    param = {"mode": "train", "p": 0.5, "seed": 1}
    with fastnn.options(backend=backend):
        out, cache = dropout_forward(np.ones((2, 4)), param)
        param["p"], param["mode"] = 0.25, "test"
        dx = dropout_backward(np.ones((2, 4)), cache)
    np.testing.assert_array_equal(dx, out)


def test_seeded_mask_is_repeatable_and_leaves_global_rng_untouched():
    x = randn(20, 30)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    a, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 42})
    b, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 42})
    c, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 43})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_unseeded_masks_follow_np_random_seed():
    x = randn(20, 30)
    np.random.seed(5)
    a, _ = dropout_forward(x, {"mode": "train", "p": 0.5})
    b, _ = dropout_forward(x, {"mode": "train", "p": 0.5})
    np.random.seed(5)
    a2, _ = dropout_forward(x, {"mode": "train", "p": 0.5})
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)


def test_keep_mask_is_a_pure_function_of_key_and_index():
    full = dropout_keep_mask(99, (6, 7), 0.5)
    np.testing.assert_array_equal(full.reshape(-1), dropout_keep_mask(99, (42,), 0.5))
    assert dropout_keep_mask(99, (3,), 1.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_keeps_dtype(dtype):
    x = randn(4, 4, dtype=dtype)
    out, cache = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1})
    assert out.dtype == dtype and dropout_backward(out, cache).dtype == dtype


def test_verify_draws_an_unseeded_key_once_and_never_rewinds_the_global_rng(monkeypatch):
    """verify saved numpy's global RNG state before each call and restored it between the two paths: draws that
    another thread made meanwhile were handed out again (400 unseeded masks from 8 threads: 171 distinct)."""
    import fastnn

    x = np.ones((50, 40))

    def calls():
        out, cache = dropout_forward(x, {"mode": "train", "p": 0.5})
        relu_forward(x)
        dropout_forward(x.astype(np.float32), {"mode": "train", "p": 0.3})
        return out, cache, np.random.get_state()

    np.random.seed(3)
    expected_out, expected_cache, expected_state = calls()
    np.random.seed(3)
    set_state = np.random.set_state

    def rewind(state):
        raise AssertionError("numpy's global RNG was set back")

    monkeypatch.setattr(np.random, "set_state", rewind)
    with fastnn.options(backend="verify"):
        out, cache, state = calls()
    monkeypatch.setattr(np.random, "set_state", set_state)
    np.testing.assert_array_equal(out, expected_out)
    assert state[2] == expected_state[2] and np.array_equal(state[1], expected_state[1])  # a draw per call
    assert "seed" not in cache[0] and cache[0] == expected_cache[0]
