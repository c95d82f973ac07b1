import random
import warnings

import numpy as np
import pytest

from fastnn import gradient_check
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


def test_numeric_gradient_evaluates_f_at_x_first_as_the_course_does():
    """The starter evaluates fx = f(x) before perturbing: 2n + 1 calls, so f's side effects (a train-mode
    batchnorm's running statistics, global RNG draws) happen as often as in the notebooks."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    seen = []

    def f(_):
        seen.append(x.copy())
        return float(np.sum(x**2))

    eval_numerical_gradient(f, x, verbose=False)
    assert len(seen) == 2 * x.size + 1
    np.testing.assert_array_equal(seen[0], x)


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
    right = capsys.readouterr().out.splitlines()
    grad_check_sparse(lambda x: np.sum(x**2), x, 3 * x, num_checks=3)  # a wrong analytic gradient
    wrong = capsys.readouterr().out.splitlines()
    assert len(right) == len(wrong) == 3

    def errors(lines):
        return [float(line.rsplit("relative error:", 1)[1]) for line in lines]

    assert max(errors(right)) < 1e-7 and min(errors(wrong)) > 0.1  # 3x against 2x: 1/5


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
        # a masked entry read as `masked`, so every step there was taken for f modifying x
        (np.ma.MaskedArray([1.0, 2.0], mask=[False, True]), TypeError,
         r"x is a masked array with masked entries, which a numeric gradient cannot step"),
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


# ----------------------------------------------------------------------------------------------------------
# Empty x, an f that writes to its input, outputs that are not real numbers


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)])
def test_zero_size_x_gives_an_empty_gradient(shape):
    """An empty x once failed with numpy's 'Iteration of zero-sized operands is not enabled'."""
    x = np.zeros(shape)
    grad = eval_numerical_gradient(lambda v: 0.0, x, verbose=False)
    assert grad.shape == shape and grad.dtype == x.dtype
    assert eval_numerical_gradient_array(lambda v: np.zeros(2), x, np.ones(2)).shape == shape
    out = Blob(np.zeros(2), np.ones(2))
    (blob_grad,) = eval_numerical_gradient_blobs(lambda a, o: None, (Blob(x),), out)
    assert blob_grad.shape == shape

    class Net:
        def forward(self):
            pass

    (net_grad,) = eval_numerical_gradient_net(Net(), (Blob(x),), out)
    assert net_grad.shape == shape


def test_a_zero_d_x_returned_by_f_is_read_before_x_moves():
    """f returning x itself (a 0-d array) once gave a gradient of 0: both sides were the restored x."""
    assert eval_numerical_gradient(lambda v: v, np.array(2.0), verbose=False) == pytest.approx(1.0)


def _relu_inplace(x):
    x[x < 0] = 0
    return x


def _double_inplace(x):
    x *= 2
    return float(x.sum())


@pytest.mark.parametrize("where", ["eval_numerical_gradient", "eval_numerical_gradient_array",
                                   "grad_check_sparse", "eval_numerical_gradient_blobs",
                                   "eval_numerical_gradient_net"])
def test_an_f_that_modifies_x_is_refused_and_x_restored(where):
    """A ReLU written in place once gave [0, 1, 0.5] for [-1, 2, -3] and left x as [0, 2, 0]."""
    x = np.array([-1.0, 2.0, -3.0])
    with pytest.raises(ValueError, match=rf"{where}: f modified its input (x|inputs\[0\]\.vals) in place"):
        if where == "eval_numerical_gradient":
            eval_numerical_gradient(_double_inplace, x, verbose=False)
        elif where == "eval_numerical_gradient_array":
            eval_numerical_gradient_array(_relu_inplace, x, np.ones(3))
        elif where == "grad_check_sparse":
            grad_check_sparse(_double_inplace, x, np.full(3, 2.0), num_checks=1)
        else:
            a, out = Blob(x), Blob(np.zeros(3), np.ones(3))

            def f(a_blob, out_blob):
                out_blob.vals = _relu_inplace(a_blob.vals).copy()

            if where == "eval_numerical_gradient_blobs":
                eval_numerical_gradient_blobs(f, (a,), out)
            else:
                net = type("Net", (), {"forward": lambda self: f(a, out)})()
                eval_numerical_gradient_net(net, (a,), out)
    np.testing.assert_array_equal(x, [-1.0, 2.0, -3.0])


def test_an_f_that_changes_only_the_perturbed_entry_is_refused():
    x = np.array([1.0, 2.0])

    def clip(v):
        np.minimum(v, 1.0, out=v)  # moves x[1] + h back to 1, and nothing else when x[1] is perturbed
        return v.copy()

    with pytest.raises(ValueError, match=r"eval_numerical_gradient_array: f modified its input x in place"):
        eval_numerical_gradient_array(clip, x, np.ones(2))
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_an_f_that_reads_x_and_restores_it_is_accepted():
    x = np.array([1.0, -2.0, np.nan])

    def f(v):
        saved = v.copy()
        v[...] = 0
        v[...] = saved
        return v[:2] * 3

    grad = eval_numerical_gradient_array(f, x, np.ones(2))  # NaN is where it was: no modification
    np.testing.assert_allclose(grad, [3.0, 3.0, 0.0], rtol=1e-8)


@pytest.mark.parametrize("output, dtype", [(lambda v: v * 1j, "complex128"),
                                           (lambda v: np.array(["a"] * v.size).reshape(v.shape), "<U1"),
                                           (lambda v: None, "object"),
                                           (lambda v: v > 2, "bool")])
def test_an_array_output_that_is_not_real_numbers_is_refused(output, dtype):
    """A complex output once gave a ComplexWarning and a zero gradient, a string array a UFuncTypeError, a bool
    one numpy's 'boolean subtract is not supported'."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match=rf"eval_numerical_gradient_array: f\(x\) must hold real numbers, got "
                                        rf"dtype {dtype}"):
        eval_numerical_gradient_array(output, x, np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"eval_numerical_gradient_blobs: output.vals must hold real numbers"):
        eval_numerical_gradient_blobs(lambda a, o: setattr(o, "vals", output(a.vals)), (Blob(x),),
                                      Blob(np.zeros((2, 2)), np.ones((2, 2))))
    np.testing.assert_array_equal(x, [[1.0, 2.0], [3.0, 4.0]])


def test_an_output_that_is_no_array_is_refused():
    """f returning (array, number) raised numpy's 'setting an array element with a sequence'."""
    with pytest.raises(TypeError, match=r"eval_numerical_gradient_array: f\(x\) must be an array of real numbers, "
                                        r"got tuple"):
        eval_numerical_gradient_array(lambda a: (a, 1), np.ones(3), np.ones(3))


def test_rel_error_of_empty_arrays_is_zero_and_strings_are_refused():
    """Empty arrays once raised numpy's 'zero-size array to reduction operation maximum'."""
    assert rel_error(np.ones(0), np.ones(0)) == 0.0
    assert rel_error(np.ones((0, 3)), np.zeros((0, 3))) == 0.0
    with pytest.raises(TypeError, match=r"rel_error: x must hold real numbers, got dtype <U1"):
        rel_error("a", "b")


def test_an_f_that_changes_an_entry_before_its_turn_is_still_refused():
    """Each entry's check started from x's current value: an f taking |x| in place gave [3, 12, 27] for
    sum(|x|**3) at [1, 2, -3] (correct: [3, 12, -27]) and passed the final comparison (review)."""
    def f(x):
        np.abs(x, out=x)
        return float(np.sum(x**3))

    x = np.array([1.0, 2.0, -3.0])
    with pytest.raises(ValueError, match=r"f modified its input x in place"):
        eval_numerical_gradient(f, x, verbose=False)
    np.testing.assert_array_equal(x, [1.0, 2.0, -3.0])


def test_an_f_that_changes_another_input_blob_is_refused_and_it_restored():
    a, b = Blob(np.array([1.0, 2.0])), Blob(np.array([-3.0, 4.0]))
    out = Blob(np.zeros(2), diffs=np.ones(2))

    def f(a, b, out):
        np.abs(b.vals, out=b.vals)
        out.vals = a.vals * b.vals

    with pytest.raises(ValueError, match=r"f modified its input inputs\[1\].vals in place"):
        eval_numerical_gradient_blobs(f, (a, b), out)
    np.testing.assert_array_equal(b.vals, [-3.0, 4.0])


def test_verbose_prints_nothing_computed_on_a_modified_x(capsys):
    def relu_in_place(x):
        x[x < 0] = 0
        return float(np.sum(x))

    x = np.array([1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match=r"f modified its input x in place"):
        eval_numerical_gradient(relu_in_place, x)
    assert capsys.readouterr().out == ""
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])


@pytest.mark.parametrize("integer", [np.uint8, np.int8])
def test_integer_outputs_are_differenced_without_wrapping(integer):
    """np.uint8(3) - np.uint8(5) is 254: the gradient came out 12,700,000 instead of -100,000."""
    grad = eval_numerical_gradient(lambda z: integer(5 if z[0] < 1 else 3), np.ones(1), verbose=False)
    np.testing.assert_allclose(grad, [-100000.0])
    grad = eval_numerical_gradient_array(lambda z: (z < 1).astype(integer) * 3, np.ones(2), np.ones(2))
    np.testing.assert_allclose(grad, [-150000.0, -150000.0])


def test_a_numpy_bool_output_counts_as_0_or_1():
    grad = eval_numerical_gradient(lambda z: np.bool_(z[0] < 1), np.ones(1), verbose=False)
    np.testing.assert_allclose(grad, [-50000.0])


def test_rel_error_of_numbers_whose_difference_overflows():
    assert rel_error(1e308, -1e308) == 1.0
    assert rel_error(np.array([1e308, 1.0]), np.array([-1e308, 1.0])) == 1.0
    assert np.isnan(rel_error(np.inf, 1.0))  # as the starter's


# ----------------------------------------------------------------------------------------------------------
# Review fixes


def test_grad_check_sparse_prints_0_where_both_float32_gradients_are_0(capsys):
    """1e-300 added to a float32 sum rounds to 0 under NumPy 2's rules: 0 / 0 printed nan with a RuntimeWarning."""
    x = -np.arange(1.0, 4.0, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad_check_sparse(lambda v: np.maximum(v, 0).sum(), x, np.zeros(3, np.float32), num_checks=2)
    assert capsys.readouterr().out == "numerical: 0.000000 analytic: 0.000000, relative error: 0.000000e+00\n" * 2


def test_grad_check_sparse_prints_the_starters_float32_digits(capsys):
    """The starter's error is computed in float32 for float32 gradients; its printed digits are kept."""
    grad_check_sparse(lambda v: np.sum(v**3), np.array([0.3], np.float32), np.array([0.29], np.float32), 1)
    assert capsys.readouterr().out.endswith("relative error: 3.504344e-02\n")  # 3.504345e-02 in float64


@pytest.mark.parametrize("fails", ["raises", "returns an array"])
def test_x_is_restored_when_f_changes_it_on_the_first_call_and_fails(fails):
    """The unperturbed first call was outside the restoring try, and f's value was checked before x."""
    x = np.array([1.0, -2.0])

    def f(v):
        v *= 2
        if fails == "raises":
            raise RuntimeError("f failed")
        return v.copy()

    with pytest.raises(RuntimeError if fails == "raises" else ValueError,
                       match="f failed" if fails == "raises" else r"f modified its input x in place"):
        eval_numerical_gradient(f, x, verbose=False)
    np.testing.assert_array_equal(x, [1.0, -2.0])


@pytest.mark.parametrize("fails", ["raises", "changes the stepped blob too"])
def test_every_input_blob_is_restored_when_f_changes_one_and_fails(fails):
    """Only the blob being stepped was restored: f's change to another one stayed."""
    a, b = Blob(np.array([-1.0, -2.0])), Blob(np.array([-3.0, 4.0]))
    out = Blob(np.zeros(2), diffs=np.ones(2))

    def f(a, b, out):
        np.abs(b.vals, out=b.vals)
        if fails == "raises":
            raise RuntimeError("f failed")
        np.abs(a.vals, out=a.vals)
        out.vals = a.vals * b.vals

    with pytest.raises(RuntimeError if fails == "raises" else ValueError,
                       match="f failed" if fails == "raises" else r"f modified its input inputs\[0\].vals in place"):
        eval_numerical_gradient_blobs(f, (a, b), out)
    np.testing.assert_array_equal(a.vals, [-1.0, -2.0])
    np.testing.assert_array_equal(b.vals, [-3.0, 4.0])


def test_ragged_lists_are_named():
    """numpy's bare 'setting an array element with a sequence' named neither the function nor the argument."""
    with pytest.raises(ValueError, match=r"rel_error: x must be an array of real numbers; numpy cannot make one "
                                         r"of the list given \(setting an array element"):
        rel_error([[1], [1, 2]], [1])
    with pytest.raises(ValueError, match=r"eval_numerical_gradient_array: df must be an array of real numbers"):
        eval_numerical_gradient_array(lambda v: v, np.ones(2), [[1], [1, 2]])


def test_verbose_compares_the_whole_of_x_a_fixed_number_of_times(monkeypatch, capsys):
    """verbose=True compared all of x after every entry: O(n^2), 15x the starter's time at n = 8000."""
    calls = []
    unchanged = gradient_check._unchanged
    monkeypatch.setattr(gradient_check, "_unchanged", lambda *args: calls.append(1) or unchanged(*args))
    x = np.arange(50.0)
    grad = eval_numerical_gradient(lambda v: float(np.sum(v**2)), x)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-6, atol=1e-6)
    assert len(calls) == 2  # after the first call and at the end
    assert capsys.readouterr().out.splitlines()[1] == f"(1,) {grad[1]}"


@pytest.mark.parametrize("verbose", [False, True])
@pytest.mark.parametrize("changed", [0, 2], ids=["stepped-entry", "entry-before-its-step"])
def test_an_f_that_changes_another_entry_later_on_is_refused(verbose, changed, capsys):
    """A change to an entry not yet stepped was overwritten by its step, so the final comparison missed it."""
    x = np.array([1.0, 2.0, 3.0])
    calls = []

    def f(v):
        calls.append(1)
        if len(calls) == 4:  # stepping x[1]
            v[changed] = 7.0
        return float(np.sum(v**2))

    with pytest.raises(ValueError, match=rf"eval_numerical_gradient: f modified its input x in place "
                                         rf"\(x\[{changed}\] went from {x[changed]} to 7.0\)"):
        eval_numerical_gradient(f, x, verbose=verbose)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def _half_square(v):
    return 0.5 * float(np.sum(v.astype(np.float64) ** 2))


def test_a_float32_step_that_rounds_far_from_2h_is_warned_about_with_the_starters_numbers():
    """At 200 in float32, x +- 1e-5 steps by 3.05e-5: the starter's gradient (kept) is 53% off, silently."""
    x = np.array([100.0, 200.0, 1.0], np.float32)
    with pytest.warns(RuntimeWarning, match=r"eval_numerical_gradient: h=1e-05 is too fine for the float32 x at 2 of "
                                            r"the 3 entries stepped: x\[1\] = 200.0 steps by 3.052e-05 .* 53%"):
        grad = eval_numerical_gradient(_half_square, x, verbose=False)
    assert grad[1] == np.float32(305.17578)  # (f(x + h) - f(x - h)) / 2h, as the starter computes it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eval_numerical_gradient(_half_square, np.array([1.0, 2.0], np.float32), verbose=False)  # steps within 10%
        eval_numerical_gradient(_half_square, x.astype(np.float64), verbose=False)
        eval_numerical_gradient(_half_square, x, verbose=False, h=1e-2)


def test_grad_check_sparse_and_the_array_and_blob_checks_warn_of_rounded_steps_too(capsys):
    x = np.array([150.0, 1.0], np.float32)
    random.seed(0)  # grad_check_sparse draws its entries from Python's random module: this seed draws x[0]
    with pytest.warns(RuntimeWarning, match=r"grad_check_sparse: .* x\[0\] = 150.0"):
        grad_check_sparse(_half_square, x, x.astype(np.float64), num_checks=4)
    with pytest.warns(RuntimeWarning, match=r"eval_numerical_gradient_array: .* x\[0\] = 150.0"):
        eval_numerical_gradient_array(lambda v: 2 * v, x, np.ones(2))
    blob = type("Blob", (), {})
    inputs, output = blob(), blob()
    inputs.vals, inputs.diffs = x.copy(), np.zeros(2, np.float32)
    output.vals, output.diffs = np.zeros(2, np.float32), np.ones(2, np.float32)

    def f(a, out):
        out.vals = 2 * a.vals

    with pytest.warns(RuntimeWarning, match=r"eval_numerical_gradient_blobs: .* inputs\[0\].vals\[0\] = 150.0"):
        eval_numerical_gradient_blobs(f, [inputs], output)


def test_an_x_whose_entries_share_memory_is_refused_and_views_are_not():
    shared = np.lib.stride_tricks.as_strided(np.ones(1), (3,), (0,), writeable=True)
    with pytest.raises(ValueError, match=r"eval_numerical_gradient: x has entries that share memory \(strides "
                                         r"\(0,\) for shape \(3,\)"):
        eval_numerical_gradient(_half_square, shared, verbose=False)
    base = np.arange(1.0, 13.0)
    overlapping = np.lib.stride_tricks.as_strided(base, (3, 4), (16, 8), writeable=True)  # rows overlap by half
    with pytest.raises(ValueError, match="share memory"):
        eval_numerical_gradient_array(lambda v: v.copy(), overlapping, np.ones((3, 4)))
    for view in (np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1), np.arange(24.0).reshape(4, 6)[::2, ::-3],
                 np.arange(6.0).reshape(2, 3)[:, None, :], np.lib.stride_tricks.as_strided(base, (3, 2), (32, 8))):
        view = view.copy() if not view.flags.writeable else view
        np.testing.assert_allclose(eval_numerical_gradient(_half_square, view, verbose=False), view, rtol=1e-7)


def test_a_big_endian_x_is_stepped_as_the_same_numbers():
    x = np.array([1.5, -2.0, 3.0]).astype(">f8")
    grad = eval_numerical_gradient(_half_square, x, verbose=False)
    np.testing.assert_allclose(grad, [1.5, -2.0, 3.0], rtol=1e-7)
    np.testing.assert_array_equal(x, [1.5, -2.0, 3.0])


def test_the_comparators_name_a_dtype_or_direction_outside_their_table_and_refuse_complex_numbers():
    from fastnn.testing import assert_close, tolerance

    assert tolerance(np.dtype(">f4"), "backward") == tolerance(np.float32, "backward")
    with pytest.raises(ValueError, match=r"tolerance: .* got dtype float16 and direction 'forward'"):
        assert_close(np.ones(2, np.float16), np.ones(2, np.float16))
    with pytest.raises(ValueError, match=r"got dtype float64 and direction 'sideways'"):
        tolerance(np.float64, "sideways")
    assert assert_close(np.ones(2, np.int64), np.ones(2, np.int64), rtol=0) == 0.0
    with pytest.raises(TypeError, match=r"max_relative_error: actual holds complex numbers"):
        max_relative_error(np.array([1 + 1j]), np.array([1 + 0j]))
