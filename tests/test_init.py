"""Weight initialisation: the starter's draws for valid input, clear errors for the rest."""

import numpy as np
import pytest

from fastnn import init


def test_weights_draw_the_starters_gaussian_and_scale_xavier_and_he_by_fan_in():
    np.random.seed(0)
    W = init.weights((6, 4), 1e-2)
    np.random.seed(0)
    np.testing.assert_array_equal(W, 1e-2 * np.random.randn(6, 4))
    np.random.seed(0)
    conv = init.weights((5, 3, 2, 2), "he")
    np.random.seed(0)
    np.testing.assert_array_equal(conv, np.sqrt(2.0 / 12) * np.random.randn(5, 3, 2, 2))


@pytest.mark.parametrize("scheme", ["Xavier", "HE", "xavier"])
def test_schemes_are_accepted_in_any_case_as_check_weight_scale_does(scheme):
    """weights((2, 2), 'Xavier') once failed with numpy's _UFuncNoLoopError."""
    assert init.check_weight_scale("f", scheme) == scheme.lower()
    np.random.seed(0)
    W = init.weights((8, 3), scheme)
    np.random.seed(0)
    np.testing.assert_array_equal(W, init.weights((8, 3), scheme.lower()))
    assert init.std_for(scheme, 8) == init.std_for(scheme.lower(), 8) > 0  # std_for("XAVIER", 8) gave 'XAVIER'


def test_std_for_refuses_what_weights_refuses():
    with pytest.raises(ValueError, match="std_for: weight_scale must be a number or one of"):
        init.std_for("bogus", 8)
    with pytest.raises(ValueError, match="std_for: fan_in must be >= 1"):
        init.std_for("he", 0)
    assert init.std_for(0.5, 3) == 0.5


@pytest.mark.parametrize("fn", ["weights", "gaussian"])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"scale": -1.0}, ValueError, r"(weight_scale|std) must be .*>= 0, got -1.0"),
        ({"scale": float("nan")}, ValueError, r"(weight_scale|std) must be .*finite.*, got nan"),
        ({"scale": None}, TypeError, r"(weight_scale|std) must be a .*number.*, got None"),
        ({"shape": (3.5, 4)}, TypeError, r"shape\[0\] must be an integer, got 3.5"),
        ({"shape": (3, -4)}, ValueError, r"shape\[1\] must be >= 0, got -4"),
        ({"shape": 3}, TypeError, r"shape must be a tuple or list of integers, got int"),
        ({"dtype": np.int64}, TypeError, r"dtype must be float32 or float64, got int64"),
        ({"dtype": "bogus"}, TypeError, r"dtype must be float32 or float64, got 'bogus'"),
        ({"dtype": None}, TypeError, r"dtype must be float32 or float64, got None"),  # np.dtype(None) is float64
    ],
)
def test_bad_arguments_are_refused(fn, kwargs, error, message):
    """A negative std, a float shape (silently truncated) and an integer dtype (all-zero weights) were accepted."""
    args = {"shape": (3, 4), "scale": 0.1, "dtype": np.float64, **kwargs}
    with pytest.raises(error, match=rf"{fn}: " + message):
        getattr(init, fn)(args["shape"], args["scale"], dtype=args["dtype"])


def test_weights_refuses_an_unknown_scheme():
    with pytest.raises(ValueError, match=r"weights: weight_scale must be a number or one of \('xavier', 'he'\), "
                                         r"got 'bogus'"):
        init.weights((2, 2), "bogus")


def test_valid_shapes_and_dtypes():
    assert init.weights([0, 4], "he").shape == (0, 4)
    assert init.weights((np.int64(2), 3), 0.1, dtype=np.float32).dtype == np.float32
    assert init.gaussian((2,), 0.0).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("call, message", [
    (lambda: init.gaussian((2, 2), 1e300, np.float32), r"gaussian: std 1e\+300 gives weights that overflow float32"),
    (lambda: init.weights((2, 2), 1e39, np.float32), r"weights: weight_scale 1e\+39 gives weights that overflow"),
    (lambda: init.std_for("he", 10**400), r"std_for: fan_in must be <= 9223372036854775807"),
    (lambda: init.gaussian((10**10, 10**10), 1.0), r"gaussian: shape \(10000000000, 10000000000\) need weights"),
])
def test_weights_that_overflow_or_cannot_exist_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_scalar_shape_draws_a_0d_array():
    """np.random.randn() is a float, which has no astype."""
    np.random.seed(0)
    drawn = init.gaussian((), 2.0, np.float32)
    np.random.seed(0)
    assert drawn.shape == () and drawn.dtype == np.float32 and drawn == np.float32(2.0 * np.random.randn())
    assert init.weights((), "he").shape == ()


def test_cast_params_leaves_the_dict_as_it_was_when_it_refuses():
    params = {"W1": np.full(2, 1e300), "W2": np.ones(2)}
    with pytest.raises(ValueError, match=r"Net: weight_scale 1e\+300 gives W1 weights that overflow float32"):
        init.cast_params("Net", params, np.float32, 1e300)
    assert params["W1"].dtype == np.float64 and params["W1"][0] == 1e300 and params["W2"].dtype == np.float64


def test_weight_scale_takes_a_0d_array_as_its_number():
    """gaussian(std=np.array(1.0)) took one; the models' weight_scale refused it."""
    from fastnn.init import check_weight_scale

    assert check_weight_scale("f", np.array(0.01)) == 0.01
    with pytest.raises(ValueError, match="finite number >= 0"):
        check_weight_scale("f", np.array(-1.0))
