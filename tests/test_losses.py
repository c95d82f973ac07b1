import numpy as np
import pytest

from fastnn.gradient_check import eval_numerical_gradient
from fastnn.layers import softmax_loss, svm_loss
from fastnn.testing import assert_close, scores_and_labels

pytestmark = pytest.mark.usefixtures("reference_backend")


@pytest.mark.parametrize("loss_fn", [svm_loss, softmax_loss])
def test_loss_gradients_match_numeric(loss_fn):
    x, y = scores_and_labels(N=8, C=5, seed=3)
    loss, dx = loss_fn(x, y)
    numeric = eval_numerical_gradient(lambda x: loss_fn(x, y)[0], x, verbose=False)
    assert_close(dx, numeric, rtol=1e-7)


def test_tiny_random_scores_give_log_c_and_c_minus_one():
    # the notebook's sanity check: scores ~ 0.001 * randn, N=50, C=10
    x, y = scores_and_labels(N=50, C=10, seed=1, scale=0.001)
    assert abs(svm_loss(x, y)[0] - 9.0) < 0.01
    assert abs(softmax_loss(x, y)[0] - np.log(10)) < 0.01


@pytest.mark.parametrize("loss_fn", [svm_loss, softmax_loss])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_is_a_float_and_dx_keeps_dtype(loss_fn, dtype):
    x, y = scores_and_labels(dtype=dtype)
    loss, dx = loss_fn(x, y)
    assert isinstance(loss, float) and dx.dtype == dtype


def test_softmax_is_stable_for_huge_logits():
    x = np.array([[1e4, -1e4, 0.0], [5.0, 5.0, 5.0]])
    loss, dx = softmax_loss(x, np.array([0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    np.testing.assert_allclose(loss, np.log(3) / 2)


def test_labels_as_a_list_of_ints_as_in_the_starter():
    """The starter's fancy indexing x[np.arange(N), y] took a list; fastnn refused it."""
    import fastnn.layers as L

    x = np.random.default_rng(0).standard_normal((3, 4))
    for loss in (L.softmax_loss, L.svm_loss):
        by_list, by_array = loss(x, [0, 3, 1]), loss(x, np.array([0, 3, 1]))
        assert by_list[0] == by_array[0]
        np.testing.assert_array_equal(by_list[1], by_array[1])


def test_jit_softmax_gradient_of_a_certain_prediction_has_the_truths_sign_and_size():
    """The kernel stored p / N in float32 dx and then took 1 / N away: the rounding of p / N was left as the
    gradient (+9.9e-9 where the truth is -3.1e-14), and a one-class float32 model got non-zero gradients."""
    import fastnn
    from fastnn.classifiers.fc_net import FullyConnectedNet

    x, y = np.array([[30.0, 0.0]] * 3, np.float32), np.zeros(3, int)
    truth = softmax_loss(x.astype(np.float64), y)[1]  # the reference backend: exp(-30) / 3 - 1 / 3 terms
    with fastnn.options(backend="jit"):
        dx = softmax_loss(x, y)[1]
    assert_close(dx, truth, rtol=1e-6)
    model = FullyConnectedNet([3], input_dim=4, num_classes=1, dtype=np.float32)
    with fastnn.options(backend="jit"):
        _, grads = model.loss(np.ones((2, 4), np.float32), np.zeros(2, int))
    assert all(not grad.any() for grad in grads.values())
