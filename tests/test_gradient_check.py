import numpy as np

from fastnn.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    eval_numerical_gradient_blobs,
    grad_check_sparse,
    max_relative_error,
    rel_error,
)


def test_numeric_gradient_of_a_quadratic():
    x = np.array([1.0, -2.0, 3.0])
    grad = eval_numerical_gradient(lambda x: np.sum(x**2), x, verbose=False)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8)


def test_numeric_gradient_perturbs_in_place_and_restores(capsys):
    x = np.array([[1.0, 2.0]])
    seen = []

    def f(_):  # reads the caller's array, as `lambda _: model.loss(X, y)[0]` does
        seen.append(x.copy())
        return float(x.sum())

    eval_numerical_gradient(f, x)
    assert any(not np.array_equal(s, [[1.0, 2.0]]) for s in seen)
    np.testing.assert_array_equal(x, [[1.0, 2.0]])
    assert "(0, 0)" in capsys.readouterr().out  # verbose by default, like the starter


def test_numeric_gradient_array():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    df = np.array([[1.0, 0.5], [0.0, 2.0]])
    grad = eval_numerical_gradient_array(lambda x: x**3, x, df)
    np.testing.assert_allclose(grad, 3 * x**2 * df, rtol=1e-8)


class Blob:
    def __init__(self, vals, diffs=None):
        self.vals = vals
        self.diffs = np.zeros_like(vals) if diffs is None else diffs


def test_numeric_gradient_blobs():
    a = Blob(np.array([1.0, 2.0]))
    out = Blob(np.zeros(2), diffs=np.array([1.0, 1.0]))

    def f(a_blob, out_blob):
        out_blob.vals[...] = a_blob.vals**2

    (grad,) = eval_numerical_gradient_blobs(f, (a,), out)
    np.testing.assert_allclose(grad, [2.0, 4.0], rtol=1e-8)


def test_grad_check_sparse_prints_and_returns_none(capsys):
    x = np.array([1.0, 2.0, 3.0])
    assert grad_check_sparse(lambda x: np.sum(x**2), x, 2 * x, num_checks=3) is None
    assert capsys.readouterr().out.count("relative error") == 3


def test_error_helpers():
    assert rel_error(np.array([1.0]), np.array([1.0])) == 0
    assert abs(rel_error(np.array([1.0]), np.array([1.1])) - 0.1 / 2.1) < 1e-12
    error, where = max_relative_error(np.array([[1.0, 2.0], [3.0, 4.5]]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert where == (1, 1) and abs(error - 0.125) < 1e-12
