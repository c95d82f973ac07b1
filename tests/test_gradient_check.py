import numpy as np
import pytest

from fastnn.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    eval_numerical_gradient_blobs,
    eval_numerical_gradient_net,
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


# ----------------------------------------------------------------------------------------------------------
# Bad arguments (each once returned garbage or a raw numpy error)

def _square(x):
    return float(np.sum(x.astype(np.float64) ** 2))


@pytest.mark.parametrize(
    "x, error, message",
    [
        (np.arange(4).reshape(2, 2), TypeError, r"x must be float32 or float64 .* got dtype int64"),
        (np.array([True, False]), TypeError, r"x must be float32 or float64 .* got dtype bool"),
        (np.ones(2, np.float16), TypeError, r"x must be float32 or float64 .* got dtype float16"),
        ([1.0, 2.0], TypeError, r"x must be a writeable numpy.ndarray of float32 or float64 .* got list"),
    ],
)
def test_non_float_or_unwritable_x_is_refused(x, error, message):
    """An integer x once came back as [[0, 49999], [150000, 249999]]: x[ix] = old + h truncated."""
    for fn, call in (("eval_numerical_gradient", lambda: eval_numerical_gradient(_square, x, verbose=False)),
                     ("eval_numerical_gradient_array", lambda: eval_numerical_gradient_array(lambda v: v, x,
                                                                                             np.ones(2))),
                     ("grad_check_sparse", lambda: grad_check_sparse(_square, x, np.zeros(np.shape(x))))):
        with pytest.raises(error, match=rf"{fn}: " + message):
            call()


def test_read_only_x_and_bad_h_are_refused():
    frozen = np.ones(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"eval_numerical_gradient: x must be writeable .* shape \(3,\)"):
        eval_numerical_gradient(_square, frozen, verbose=False)
    for h in (0, -1e-5, float("nan")):
        with pytest.raises(ValueError, match=r"eval_numerical_gradient: h must be"):
            eval_numerical_gradient(_square, np.ones(3), verbose=False, h=h)


def test_a_step_that_rounds_away_is_named_instead_of_a_zero_gradient():
    x = np.array([1e4], np.float32)  # 1e4 + 1e-5 is 1e4 in float32
    with pytest.raises(ValueError, match=r"eval_numerical_gradient: the step h=1e-05 vanishes at x\[0\]"):
        eval_numerical_gradient(_square, x, verbose=False)
    np.testing.assert_array_equal(x, [1e4])


def test_df_of_another_shape_than_the_output_is_refused():
    """A (3, 1) df once broadcast against a (3, 4) output: a gradient of a different function."""
    with pytest.raises(ValueError, match=r"eval_numerical_gradient_array: f\(x\) has shape \(3, 4\) but df has "
                                         r"shape \(3, 1\)"):
        eval_numerical_gradient_array(lambda v: v * 2, np.ones((3, 4)), np.ones((3, 1)))


@pytest.mark.parametrize("where", ["eval_numerical_gradient", "eval_numerical_gradient_array",
                                   "grad_check_sparse", "eval_numerical_gradient_blobs"])
def test_x_is_restored_when_f_raises(where):
    """Ctrl-C in a long check once left x perturbed: [1., 2.00001]."""
    x = np.array([1.0, 2.0])

    def f(*args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        if where == "eval_numerical_gradient":
            eval_numerical_gradient(f, x, verbose=False)
        elif where == "eval_numerical_gradient_array":
            eval_numerical_gradient_array(f, x, np.ones(2))
        elif where == "grad_check_sparse":
            grad_check_sparse(f, x, np.zeros(2), num_checks=1)
        else:
            eval_numerical_gradient_blobs(f, [Blob(x)], Blob(np.zeros(2), np.ones(2)))
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_blobs_accept_a_list_and_name_a_bad_blob():
    a = Blob(np.array([1.0, 2.0]))
    out = Blob(np.zeros(2), diffs=np.array([1.0, 1.0]))

    def f(a_blob, out_blob):
        out_blob.vals[...] = a_blob.vals**2

    (grad,) = eval_numerical_gradient_blobs(f, [a], out)  # a list once failed on `inputs + (output,)`
    np.testing.assert_allclose(grad, [2.0, 4.0], rtol=1e-8)
    with pytest.raises(TypeError, match=r"eval_numerical_gradient_blobs: inputs\[0\].vals must be float32 or "
                                        r"float64"):
        eval_numerical_gradient_blobs(f, [Blob(np.array([1, 2]))], out)
    with pytest.raises(TypeError, match=r"eval_numerical_gradient_net: net must have a forward\(\) method"):
        eval_numerical_gradient_net(object(), [a], out)
