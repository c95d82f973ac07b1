"""Models: the notebook's pinned numbers, numeric gradients in float64, overfitting 50 digits, init, arguments."""

import copy
import warnings
from fractions import Fraction

import numpy as np
import pytest

from fastnn.classifiers import ConvNet, FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
from fastnn.data_utils import load_digits
from fastnn.solver import Solver
from fastnn.testing import max_relative_error


def rel_error(x, y):
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def numeric_gradient(f, x, h=1e-5):
    """Centred differences of the scalar f() with respect to every entry of x (perturbed in place)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        saved = x[index]
        x[index] = saved + h
        plus = f()
        x[index] = saved - h
        minus = f()
        x[index] = saved
        grad[index] = (plus - minus) / (2 * h)
    return grad


def assert_gradients_match(model, X, y, limit=1e-6):
    """Analytic against numeric gradients, the error scaled by each gradient's largest entry (fastnn.testing).

    The limit is 10x the per-layer tolerance: through a whole network the centred difference carries the
    rounding of every layer. A gradient that vanishes in theory (a bias in front of batchnorm) must be ~0 on
    both sides, since relative error means nothing there.
    """
    _, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for name in sorted(grads):
        assert grads[name].shape == model.params[name].shape
        numeric = numeric_gradient(lambda: model.loss(X, y)[0], model.params[name])
        if np.abs(numeric).max() < 1e-9:
            assert np.abs(grads[name]).max() < 1e-9, f"{name}: numeric gradient ~0, analytic {grads[name]}"
            continue
        error, where = max_relative_error(grads[name], numeric)
        assert error <= limit, f"{name}: relative error {error:.2e} at {where}"


@pytest.fixture(scope="module")
def digits():
    return load_digits(dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------
# TwoLayerNet


def test_two_layer_net_matches_the_notebook():
    N, D, H, C = 3, 5, 50, 7
    std = 1e-3
    np.random.seed(0)
    model = TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=std)
    assert abs(model.params["W1"].std() - std) < std / 10 and abs(model.params["W2"].std() - std) < std / 10
    assert np.all(model.params["b1"] == 0) and np.all(model.params["b2"] == 0)

    model.params["W1"] = np.linspace(-0.7, 0.3, num=D * H).reshape(D, H)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=H)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=H * C).reshape(H, C)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=C)
    X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    correct_scores = np.asarray(
        [[11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
         [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135, 16.18839143],
         [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.2846319]])
    assert np.abs(model.loss(X) - correct_scores).sum() < 1e-6
    y = np.asarray([0, 5, 1])
    assert abs(model.loss(X, y)[0] - 3.4702243556) < 1e-10
    model.reg = 1.0  # read at every call
    assert abs(model.loss(X, y)[0] - 26.5948426952) < 1e-10
    for reg in (0.0, 0.7):
        model.reg = reg
        assert_gradients_match(model, X, y)


# ----------------------------------------------------------------------------------------------------------
# FullyConnectedNet


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_fully_connected_net_gradients(normalization, reg):
    N, D, H1, H2, C = 4, 15, 20, 30, 10  # batchnorm over 2 samples would saturate to +-1
    np.random.seed(231)
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg, weight_scale=5e-2,
                              normalization=normalization, dtype=np.float64)
    if normalization:
        assert len(model.bn_params) == 2 and {"gamma1", "beta2"} <= set(model.params)
        for i in (1, 2):  # random gamma/beta so that their gradients are not special
            model.params[f"gamma{i}"] = 1 + 0.1 * np.random.randn(*model.params[f"gamma{i}"].shape)
            model.params[f"beta{i}"] = 0.1 * np.random.randn(*model.params[f"beta{i}"].shape)
    assert_gradients_match(model, X, y)


@pytest.mark.parametrize("keep", [0.25, 0.5])
def test_fully_connected_net_gradients_with_seeded_dropout(keep):
    N, D, H1, H2, C = 3, 15, 20, 30, 10
    np.random.seed(231)
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=5e-2, dtype=np.float64,
                              dropout=keep, seed=123)
    for name in ("b1", "b2", "b3"):  # a sample whose units are all dropped would sit exactly on a ReLU kink
        model.params[name] = 0.05 * np.random.randn(*model.params[name].shape)
    assert model.use_dropout and model.dropout_param == {"mode": "train", "p": keep, "seed": 123}
    assert_gradients_match(model, X, y)
    model.loss(X)
    assert model.dropout_param["mode"] == "test"


def test_fully_connected_net_attributes_init_order_and_dtype():
    np.random.seed(5)
    model = FullyConnectedNet([4, 3], input_dim=6, num_classes=2, weight_scale=0.1)
    np.random.seed(5)
    assert model.params["W1"].dtype == np.float32 and model.dtype is np.float32
    np.testing.assert_array_equal(model.params["W1"], (0.1 * np.random.randn(6, 4)).astype(np.float32))
    np.testing.assert_array_equal(model.params["W2"], (0.1 * np.random.randn(4, 3)).astype(np.float32))
    np.testing.assert_array_equal(model.params["W3"], (0.1 * np.random.randn(3, 2)).astype(np.float32))
    assert sorted(model.params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert (model.num_layers, model.normalization, model.use_dropout, model.reg) == (3, None, False, 0.0)
    assert model.dropout_param == {} and model.bn_params == []

    X = np.random.randn(5, 2, 3)  # float64 data into a float32 model computes in float32
    before = X.copy()
    scores = model.loss(X)
    assert scores.shape == (5, 2) and scores.dtype == np.float32
    loss, grads = model.loss(X, np.array([0, 1, 1, 0, 1]))
    assert all(g.dtype == np.float32 for g in grads.values())
    np.testing.assert_array_equal(X, before)


def test_fully_connected_net_year_spellings():
    modern = FullyConnectedNet([5], input_dim=4, dropout_keep_ratio=0.5)
    assert modern.use_dropout and modern.dropout_param["p"] == 0.5
    old = FullyConnectedNet([5], input_dim=4, use_batchnorm=True)
    assert old.normalization == "batchnorm" and old.use_batchnorm
    assert old.bn_params == [{"mode": "train"}]
    assert FullyConnectedNet([5], input_dim=4, normalization="layernorm").bn_params == [{}]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"dropout": 0}, ValueError, r"FullyConnectedNet: dropout=0 is ambiguous.*KEEP probability"),
        ({"dropout_keep_ratio": 0}, ValueError, r"dropout=0 is ambiguous"),
        ({"dropout": 1.5}, ValueError, r"dropout \(the keep probability\) must be in \(0, 1\], got 1.5"),
        ({"dropout": 0.5, "dropout_keep_ratio": 0.7}, ValueError, r"disagree"),
        ({"normalization": "groupnorm"}, ValueError, r"normalization must be one of"),
        ({"weight_scale": "lecun"}, ValueError, r"weight_scale must be a number or one of \('xavier', 'he'\)"),
        ({"reg": -1}, ValueError, r"reg must be a finite number >= 0"),
        ({"dtype": np.int32}, TypeError, r"dtype must be float32 or float64"),
        ({"dtype": None}, TypeError, r"dtype must be float32 or float64, got None"),
        ({"weight_scale": 1e300, "dtype": np.float32}, ValueError,
         r"FullyConnectedNet: weight_scale 1e\+300 gives W1 weights that overflow float32"),
        # compared with each other before either was checked: numpy's "truth value of an array is ambiguous"
        ({"dropout": np.array([0.5, 0.5]), "dropout_keep_ratio": 0.5}, TypeError,
         r"FullyConnectedNet: dropout \(the keep probability\) must be a number in \(0, 1\], got array"),
        ({"dropout": 0.5, "dropout_keep_ratio": np.array([0.5, 0.5])}, TypeError,
         r"FullyConnectedNet: dropout_keep_ratio \(the keep probability\) must be a number in \(0, 1\], got array"),
    ],
)
def test_fully_connected_net_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        FullyConnectedNet([5], input_dim=4, **kwargs)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"reg": 10**400}, ValueError, r"FullyConnectedNet: reg must be a finite number >= 0"),
    ({"weight_scale": 10**400}, ValueError, r"FullyConnectedNet: weight_scale must be a finite number >= 0"),
])
def test_numbers_beyond_float_range_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        FullyConnectedNet([5], input_dim=4, **kwargs)


def test_fractions_are_numbers_and_reg_computes_in_the_models_dtype():
    model = FullyConnectedNet([5], input_dim=4, reg=Fraction(1, 2), weight_scale=Fraction(1, 10), dtype=np.float32)
    model.reg = np.float64(0.5)  # a NumPy 2 float64 scalar times a float32 array is float64
    loss, grads = model.loss(np.ones((3, 4)), np.array([0, 1, 2]))
    assert np.isfinite(loss) and all(g.dtype == np.float32 for g in grads.values())


def _bn_fc():
    return FullyConnectedNet([6, 5], input_dim=4, num_classes=3, normalization="batchnorm", dropout=0.5, seed=0)


def _bn_convnet():
    return ConvNet(input_dim=(1, 4, 4), num_filters=[2], hidden_dims=[5], num_classes=3, normalization="batchnorm")


@pytest.mark.parametrize("make_model", [_bn_fc, _bn_convnet], ids=["fc", "convnet"])
@pytest.mark.parametrize("y, reg", [
    (np.array([0, 1, 3, 2]), 0.0),  # a label out of range
    (np.array([0.0, 1.0, 2.0, 1.0]), 0.0),  # float labels
    (np.array([0, 1, 2]), 0.0),  # one label short
    (np.array([0, 1, 2, 1]), -1.0),  # reg set wrong after construction
])
def test_a_refused_training_call_changes_nothing(make_model, y, reg):
    """Labels and reg are checked before the forward pass: a train-mode forward would first have moved the batchnorm
    running statistics and drawn dropout's mask."""
    model = make_model()
    X = np.random.default_rng(0).standard_normal((4,) + tuple(np.atleast_1d(model.input_dim)))
    model.loss(X, np.array([0, 1, 2, 1]))
    model.reg = reg
    before, rng = copy.deepcopy(model.bn_params), np.random.get_state()
    with pytest.raises((ValueError, TypeError), match=type(model).__name__ + r"\.loss: (y|reg) "):
        model.loss(X, y)
    for params, saved in zip(model.bn_params, before):
        assert params.keys() == saved.keys()
        for key in saved:
            np.testing.assert_array_equal(params[key], saved[key])
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), rng))


def _set(key, value):
    return lambda model: model.params.__setitem__(key, value(model.params[key]))


@pytest.mark.parametrize("make_model", [_bn_fc, _bn_convnet], ids=["fc", "convnet"])
@pytest.mark.parametrize("change, error, message", [
    (_set("W2", lambda w: w.astype(np.float64)), TypeError, r"\.loss: params\['W2'\] must be an array of the "
                                                             r"model's dtype float32, got dtype float64"),
    (_set("W2", lambda w: w.astype(np.float16)), TypeError, r"\.loss: params\['W2'\] .* got dtype float16"),
    (lambda model: model.params.pop("gamma2"), ValueError, r"\.loss: params lacks gamma2"),
    (lambda model: model.bn_params.pop(), ValueError, r"\.loss: bn_params must be a list of 2 dicts"),
    # refused by a layer after the first one has run: the guard puts the first layer's statistics back
    (_set("W3", lambda w: w[:-1]), ValueError, r"affine_forward: "),
    (lambda model: model.bn_params[1].__setitem__("momentum", 2.0), ValueError, r"momentum"),
], ids=["float64 param", "float16 param", "missing param", "bn_params short", "bad shape", "bad momentum"])
def test_a_call_refused_for_the_models_own_state_changes_nothing(make_model, change, error, message):
    """A param or bn_param set wrong after construction: refused at the door where the model can tell, else by
    the layer that meets it; either way the batchnorm layers before it keep their running statistics (they had
    moved) and every dict its mode."""
    model = make_model()
    X = np.random.default_rng(0).standard_normal((4,) + tuple(np.atleast_1d(model.input_dim)))
    y = np.array([0, 1, 2, 1])
    model.loss(X, y)
    model.loss(X)  # every mode is 'test' now: a training call sets them to 'train' first
    change(model)
    before = copy.deepcopy([model.dropout_param if hasattr(model, "dropout_param") else {}, *model.bn_params])
    with pytest.raises(error, match=message):
        model.loss(X, y)
    after = [model.dropout_param if hasattr(model, "dropout_param") else {}, *model.bn_params]
    for params, saved in zip(after, before):
        assert params.keys() == saved.keys()
        for key in saved:
            np.testing.assert_array_equal(params[key], saved[key])


def test_params_the_layers_take_pass_the_models_door():
    """Integer, bool and byte-swapped params of the model's dtype are what the layers take (README); the door check
    refused them at first. TwoLayerNet, which has no dtype, checks that its params are there."""
    X, y = np.random.default_rng(0).standard_normal((4, 5)), np.array([0, 1, 2, 1])
    model = FullyConnectedNet([6], input_dim=5, num_classes=3, normalization="batchnorm", dtype=np.float64)
    expected = model.loss(X, y)[0]
    model.params["b1"] = np.zeros(6, dtype=np.int64)
    model.params["beta1"] = np.zeros(6, dtype=bool)
    model.params["W1"] = model.params["W1"].astype(">f8")
    assert model.loss(X, y)[0] == pytest.approx(expected, rel=1e-12)
    plain = FullyConnectedNet([6], input_dim=5, num_classes=3, dropout=0.5, seed=0)
    plain.bn_params = None  # a model without normalization never reads them
    plain.loss(X, y)
    two = TwoLayerNet(input_dim=5, hidden_dim=6, num_classes=3)
    del two.params["b2"]
    with pytest.raises(ValueError, match=r"TwoLayerNet.loss: params lacks b2; the model reads W1, b1, W2, b2"):
        two.loss(X, y)


def _two_layer():
    return TwoLayerNet(input_dim=4, hidden_dim=5, num_classes=3)


def _three_layer_conv():
    return ThreeLayerConvNet(input_dim=(1, 4, 4), num_filters=2, filter_size=3, hidden_dim=5, num_classes=3)


def _trained_once(make_model):
    """A model, a batch for it, and its state after one training and one test call (every mode 'test')."""
    model = make_model()
    X = np.random.default_rng(0).standard_normal((4,) + tuple(np.atleast_1d(model.input_dim)))
    model.loss(X, np.array([0, 1, 2, 1]))
    model.loss(X)
    return model, X


def _state(model):
    """Copies of what a forward pass may change: dropout_param, each bn_param, numpy's generator."""
    dicts = [getattr(model, "dropout_param", None), *(getattr(model, "bn_params", None) or [])]
    return copy.deepcopy(dicts), np.random.get_state()


def _assert_state_unchanged(model, saved):
    (dicts, rng), (before, rng_before) = _state(model), saved
    assert len(dicts) == len(before)
    for now, then in zip(dicts, before):
        if not isinstance(then, dict):  # a dropout_param set wrong, or a model without one
            assert now == then
            continue
        assert now.keys() == then.keys()
        for key in then:
            np.testing.assert_array_equal(now[key], then[key])
    assert all(np.array_equal(a, b) for a, b in zip(rng, rng_before))


_MODELS = [(_two_layer, "b2"), (_bn_fc, "b3"), (_three_layer_conv, "b3"), (_bn_convnet, "b3")]
_MODEL_IDS = ["two_layer", "fc", "three_layer_conv", "convnet"]


@pytest.mark.parametrize("make_model, bias", _MODELS, ids=_MODEL_IDS)
@pytest.mark.parametrize("bad, error, message", [
    (lambda b: np.zeros((), b.dtype), ValueError, r"must be 1-D, got shape \(\)"),
    (lambda b: b.reshape(1, -1), ValueError, r"must be 1-D, got shape \(1, 3\)"),
], ids=["0-d", "2-D"])
def test_a_scores_bias_that_is_not_1d_is_named_in_training_and_test_calls(make_model, bias, bad, error, message):
    """The class count was read as params[bias].shape[0] before y was looked at: a 0-d bias gave a bare IndexError
    even in test mode, a (1, C) one a count of 1 class. Training calls name it at the door, test calls where the
    scores' affine_forward meets it; neither changes the model's state."""
    model, X = _trained_once(make_model)
    model.params[bias] = bad(model.params[bias])
    saved = _state(model)
    with pytest.raises(error, match=rf"{type(model).__name__}\.loss: params\['{bias}'\] \(the scores' bias\) "
                                    + message):
        model.loss(X, np.array([0, 1, 2, 1]))
    _assert_state_unchanged(model, saved)
    with pytest.raises(error, match=r"affine_forward: b " + message):
        model.loss(X)
    _assert_state_unchanged(model, saved)


@pytest.mark.parametrize("bad, got", [([0.0, 0.0, 0.0], "list"), (None, "NoneType")])
def test_a_two_layer_net_names_a_scores_bias_that_is_not_an_array(bad, got):
    """TwoLayerNet has no dtype, so its door does not check the params' types: a list or None bias gave a bare
    AttributeError (no .shape)."""
    model, X = _trained_once(_two_layer)
    model.params["b2"] = bad
    with pytest.raises(TypeError, match=rf"TwoLayerNet\.loss: params\['b2'\] \(the scores' bias\) must be a 1-D "
                                        rf"numpy.ndarray, got {got}"):
        model.loss(X, np.array([0, 1, 2, 1]))
    with pytest.raises(TypeError, match=rf"affine_forward: b must be a numpy.ndarray of float32 or float64, got {got}"):
        model.loss(X)


@pytest.mark.parametrize("make_model, change, message", [
    *[(make, lambda model: setattr(model, "params", None), r"params must be a dict, got NoneType")
      for make, _ in _MODELS],
    (_bn_fc, lambda model: setattr(model, "dropout_param", None), r"dropout_param must be a dict, got NoneType"),
    (_bn_fc, lambda model: setattr(model, "dropout_param", [0.5]), r"dropout_param must be a dict, got list"),
], ids=[f"{name}-params" for name in _MODEL_IDS] + ["fc-dropout_param-None", "fc-dropout_param-list"])
def test_model_state_that_is_not_a_dict_is_named_and_changes_nothing(make_model, change, message):
    """params or dropout_param set to None escaped as "argument of type 'NoneType' is not iterable" or
    "'NoneType' object is not iterable", naming no function."""
    model, X = _trained_once(make_model)
    change(model)
    saved = _state(model)
    for args in ((X, np.array([0, 1, 2, 1])), (X,)):
        with pytest.raises(TypeError, match=rf"{type(model).__name__}\.loss: {message}"):
            model.loss(*args)
        _assert_state_unchanged(model, saved)


def test_save_and_load_name_params_that_are_not_a_dict(tmp_path):
    model = _two_layer()
    model.save(tmp_path / "two.npy")
    model.params = None
    for method in ("save", "load"):
        with pytest.raises(TypeError, match=rf"TwoLayerNet\.{method}: params must be a dict, got NoneType"):
            getattr(model, method)(tmp_path / "two.npy")
    assert model.params is None


def test_models_without_dropout_or_normalization_never_read_those_dicts():
    """FullyConnectedNet without normalization tolerated bn_params = None; ConvNet raised a bare TypeError."""
    X, y = np.random.default_rng(0).standard_normal((4, 1, 4, 4)), np.array([0, 1, 2, 1])
    model = ConvNet(input_dim=(1, 4, 4), num_filters=[2], hidden_dims=[5], num_classes=3, dtype=np.float64)
    expected_scores, (expected_loss, expected_grads) = model.loss(X), model.loss(X, y)
    model.bn_params = None
    np.testing.assert_array_equal(model.loss(X), expected_scores)
    loss, grads = model.loss(X, y)
    assert loss == expected_loss and all(np.array_equal(grads[k], expected_grads[k]) for k in expected_grads)
    fc = FullyConnectedNet([5], input_dim=4, num_classes=3)
    fc.dropout_param = fc.bn_params = None
    assert fc.loss(X[:, 0, 0], y)[0] > 0


def test_a_refused_constructor_draws_nothing_from_numpys_generator():
    state = np.random.get_state()
    with pytest.raises(TypeError, match="FullyConnectedNet: seed must be an integer"):
        FullyConnectedNet([3], input_dim=4, num_classes=2, dropout=0.5, seed="a")
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), state))


def test_hidden_dims_none_and_convnet_overflow_are_named():
    with pytest.raises(TypeError, match=r"FullyConnectedNet: hidden_dims must be an integer or a list of integers, "
                                        r"got None"):
        FullyConnectedNet(None, input_dim=4)
    with pytest.raises(ValueError, match=r"ThreeLayerConvNet: weight_scale 1e\+300 gives W1 weights that overflow"):
        ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=2, filter_size=3, hidden_dim=4, weight_scale=1e300,
                          dtype=np.float32)


def test_models_name_the_shape_of_a_wrong_input():
    with pytest.raises(ValueError, match=r"FullyConnectedNet.loss: X of shape \(2, 5\) flattens to 5 features, "
                                         r"but the model was built for input_dim=4"):
        FullyConnectedNet([5], input_dim=4).loss(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"ThreeLayerConvNet.loss: X must have shape \(N, 1, 8, 8\)"):
        ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=2, filter_size=3, hidden_dim=4).loss(np.zeros((2, 1, 8, 9)))


def test_xavier_and_he_scale_by_fan_in():
    np.random.seed(0)
    he = FullyConnectedNet([400], input_dim=800, num_classes=10, weight_scale="he", dtype=np.float64)
    assert he.params["W1"].std() == pytest.approx(np.sqrt(2 / 800), rel=0.02)
    np.random.seed(0)
    xavier = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=50, filter_size=5, weight_scale="xavier")
    assert xavier.params["W1"].std() == pytest.approx(np.sqrt(1 / 75), rel=0.05)


# ----------------------------------------------------------------------------------------------------------
# Convolutional nets


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_three_layer_convnet_gradients(reg):
    np.random.seed(231)
    X = np.random.randn(2, 3, 6, 6)
    y = np.random.randint(4, size=2)
    model = ThreeLayerConvNet(input_dim=(3, 6, 6), num_filters=3, filter_size=3, hidden_dim=7, num_classes=4,
                              weight_scale=1e-1, reg=reg, dtype=np.float64)
    assert model.params["W2"].shape == (3 * 3 * 3, 7)
    assert_gradients_match(model, X, y)


def test_three_layer_convnet_initial_loss_and_dtype():
    np.random.seed(0)
    model = ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=4, filter_size=3, hidden_dim=10)
    X = np.random.randn(20, 1, 8, 8)  # float64 into the float32 default model
    y = np.random.randint(10, size=20)
    loss, grads = model.loss(X, y)
    assert loss == pytest.approx(np.log(10), rel=1e-3)
    assert model.loss(X).dtype == np.float32 and grads["W1"].dtype == np.float32
    model.reg = 0.5
    assert model.loss(X, y)[0] > loss


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_convnet_gradients(normalization):
    np.random.seed(231)
    X = np.random.randn(3, 2, 6, 6)
    y = np.random.randint(3, size=3)
    model = ConvNet(input_dim=(2, 6, 6), num_filters=(3, 2), filter_size=3, hidden_dims=(5,), num_classes=3,
                    pool=(True, False), normalization=normalization, weight_scale=0.3, reg=0.1, dtype=np.float64)
    expected = {"W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"}
    if normalization:
        expected |= {"gamma1", "beta1", "gamma2", "beta2", "gamma3", "beta3"}
        assert len(model.bn_params) == 3
    assert set(model.params) == expected
    assert model.params["W3"].shape == (2 * 3 * 3, 5)
    assert_gradients_match(model, X, y)


def test_convnet_rejects_a_geometry_that_pools_to_nothing():
    with pytest.raises(ValueError, match=r"ConvNet: conv layer 3 outputs 1x1, too small for a 2x2 pool"):
        ConvNet(input_dim=(1, 4, 4), num_filters=(2, 2, 2), filter_size=3)
    with pytest.raises(ValueError, match=r"ConvNet: pool must be a bool or 2 bools"):
        ConvNet(input_dim=(1, 8, 8), num_filters=(2, 2), pool=(True,))


def test_convnet_refuses_at_construction_what_its_loss_could_not_run():
    """These once constructed, and loss() failed in conv_relu_pool_forward, or with a bare TypeError."""
    with pytest.raises(ValueError, match=r"ConvNet: conv layer 3 outputs 7x7, which the 2x2 stride-2 pool"):
        ConvNet((3, 28, 28), (2, 2, 2), 3, (5,), 2)
    with pytest.raises(ValueError, match=r"ConvNet: conv layer 1 outputs 7x7, which the 2x2 stride-2 pool"):
        ConvNet((3, 8, 8), (2,), 4)
    for hidden_dims in (None, "5", 2.5):
        with pytest.raises(TypeError, match="ConvNet: hidden_dims must be an integer or a list of integers"):
            ConvNet((1, 8, 8), (2,), 3, hidden_dims)
    with pytest.raises(ValueError, match=r"ConvNet: pool must be a bool or 1 bools"):
        ConvNet((1, 8, 8), (2,), 3, pool=None)
    model = ConvNet((1, 8, 8), (2,), 3, hidden_dims=5, num_classes=3)  # an int: one hidden layer, as FullyConnectedNet
    assert model.params["W2"].shape == (2 * 4 * 4, 5) and model.params["W3"].shape == (5, 3)
    assert ConvNet((1, 7, 7), (2,), 3, hidden_dims=(), pool=False).loss(np.zeros((2, 1, 7, 7))).shape == (2, 10)
    assert ConvNet((1, 8, 8), (2, 2), 3, pool=(p for p in (True, False))).pools == [True, False]  # any iterable


# ----------------------------------------------------------------------------------------------------------
# Overfitting 50 samples (the course's sanity check that a model can learn)


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: FullyConnectedNet([100, 100], input_dim=64, num_classes=10, weight_scale=5e-2),
        lambda: ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=8, filter_size=3, hidden_dim=50,
                                  weight_scale="he"),
    ],
    ids=["three-layer-fc", "three-layer-convnet"],
)
def test_overfits_fifty_digits(make_model, digits):
    small = {"X_train": digits["X_train"][:50], "y_train": digits["y_train"][:50],
             "X_val": digits["X_val"][:50], "y_val": digits["y_val"][:50]}
    np.random.seed(0)
    model = make_model()
    solver = Solver(model, small, update_rule="adam", optim_config={"learning_rate": 1e-2}, num_epochs=20,
                    batch_size=25, verbose=False, seed=0)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0  # on all 50: num_train_samples (1000) exceeds them


# ----------------------------------------------------------------------------------------------------------
# The notebook namespace


def test_star_imports_give_the_layer_functions():
    import fastnn.classifiers.cnn as cnn
    import fastnn.classifiers.fc_net as fc_net

    for name in ("affine_forward", "affine_backward", "relu_forward", "batchnorm_forward", "layernorm_forward",
                 "dropout_forward", "softmax_loss", "svm_loss", "affine_relu_forward", "np"):
        assert hasattr(fc_net, name), name
    for name in ("conv_forward_fast", "conv_backward_fast", "max_pool_forward_fast", "conv_relu_pool_forward",
                 "conv_forward_naive", "spatial_batchnorm_forward"):
        assert hasattr(cnn, name), name


def test_star_import_of_gradient_check_gives_what_the_starters_gives():
    """An __all__ once kept np and randrange out of `from fastnn.gradient_check import *`."""
    namespace = {}
    exec("from fastnn.gradient_check import *", namespace)
    for name in ("eval_numerical_gradient", "eval_numerical_gradient_array", "eval_numerical_gradient_blobs",
                 "eval_numerical_gradient_net", "grad_check_sparse", "np", "randrange"):
        assert name in namespace, name


def test_save_and_load_as_the_2025_starter_without_unpickling_code(tmp_path, monkeypatch, capsys):
    """two_layer_net.ipynb (2025) calls best_model.save("best_two_layer_net.npy"), which fastnn's models lacked;
    the file goes to cs231n/saved/ (collected for submission) and reads back with np.load(allow_pickle=True)."""
    import os

    from fastnn.classifiers import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet

    monkeypatch.chdir(tmp_path)
    model = TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3)
    model.save("in_cwd.npy")  # no cs231n/saved here: the working directory
    (tmp_path / "cs231n" / "saved").mkdir(parents=True)
    model.save("best_two_layer_net.npy")
    assert capsys.readouterr().out == "in_cwd.npy saved.\nbest_two_layer_net.npy saved.\n"
    assert os.path.exists("in_cwd.npy")
    saved = np.load("cs231n/saved/best_two_layer_net.npy", allow_pickle=True).item()  # as a grader reads it
    assert sorted(saved) == sorted(model.params)

    other = TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3)
    assert other.load("best_two_layer_net.npy") is True
    for name in model.params:
        np.testing.assert_array_equal(other.params[name], model.params[name])
    assert other.load("missing.npy") is False
    assert capsys.readouterr().out == "best_two_layer_net.npy loaded.\nmissing.npy not available.\n"

    with pytest.raises(ValueError, match=r"TwoLayerNet.load: .* holds params .* which do not fit this model's"):
        TwoLayerNet(input_dim=6, hidden_dim=5, num_classes=3).load("best_two_layer_net.npy")
    net = FullyConnectedNet([4], input_dim=6, num_classes=3, dtype=np.float64)
    net.save("fc")  # np.save's '.npy' suffix
    assert FullyConnectedNet([4], input_dim=6, num_classes=3, dtype=np.float64).load("fc.npy")
    with pytest.raises(ValueError, match=r"FullyConnectedNet.load: .* float64.* float32"):
        FullyConnectedNet([4], input_dim=6, num_classes=3).load("fc.npy")  # a float32 net
    ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=2, hidden_dim=3).save("cnn.npy")

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    np.save("cs231n/saved/evil.npy", {"W1": Payload()}, allow_pickle=True)
    with pytest.raises(ValueError, match=r"TwoLayerNet.load: .*evil.npy.* refusing to unpickle the global"):
        other.load("evil.npy")
    assert not marker.exists()
    np.save("cs231n/saved/array.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"holds an array of shape \(3,\) and dtype float64, not the dict"):
        other.load("array.npy")


def test_save_refuses_what_is_not_an_array_and_load_warns_that_batchnorm_statistics_stay_behind(tmp_path):
    """A function in params gave pickle's bare PicklingError; a batchnorm model loaded its params and went on to
    score test batches with the statistics of none (up to 4.6 off)."""
    model = FullyConnectedNet([4], input_dim=6, num_classes=3, normalization="batchnorm")
    model.save(tmp_path / "good.npy")
    model.params["W1"] = lambda: 0
    with pytest.raises(TypeError, match=r"FullyConnectedNet.save: params\['W1'\] is a function; save\(\) writes "
                                        r"arrays of numbers"):
        model.save(tmp_path / "good.npy")
    fresh = FullyConnectedNet([4], input_dim=6, num_classes=3, normalization="batchnorm")
    with pytest.warns(UserWarning, match=r"FullyConnectedNet.load: files that save\(\) writes hold params alone, "
                                         r"not batchnorm's running statistics"):
        assert fresh.load(tmp_path / "good.npy")
    plain = FullyConnectedNet([4], input_dim=6, num_classes=3)
    plain.save(tmp_path / "plain.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plain.load(tmp_path / "plain.npy")


def test_zero_d_arrays_serve_as_dimensions_and_a_bad_seed_is_refused_by_the_constructor():
    """np.array(3) as hidden_dims or num_filters raised numpy's bare "iteration over a 0-d array"; seed='a' was
    accepted and refused at the first loss() as dropout_param['seed']."""
    assert FullyConnectedNet(np.array(3), input_dim=4, num_classes=2).params["W1"].shape == (4, 3)
    model = ThreeLayerConvNet(input_dim=np.array([3, 8, 8]), num_filters=np.array(4), filter_size=3, hidden_dim=5)
    assert model.params["W1"].shape == (4, 3, 3, 3)
    assert ConvNet(input_dim=(3, 8, 8), num_filters=np.array(4)).params["W1"].shape == (4, 3, 3, 3)
    for seed in ("a", 1.5):
        with pytest.raises(TypeError, match="FullyConnectedNet: seed must be an integer"):
            FullyConnectedNet([3], input_dim=4, num_classes=2, dropout=0.5, seed=seed)


@pytest.mark.parametrize("make_model", [
    lambda reg: TwoLayerNet(input_dim=12, hidden_dim=7, num_classes=4, reg=reg),
    lambda reg: FullyConnectedNet([6, 5], input_dim=12, num_classes=4, reg=reg, normalization="batchnorm"),
    lambda reg: ThreeLayerConvNet(input_dim=(3, 4, 4), num_filters=2, filter_size=3, hidden_dim=5, num_classes=4,
                                  reg=reg),
    lambda reg: ConvNet(input_dim=(3, 4, 4), num_filters=[2], hidden_dims=[5], num_classes=4, reg=reg),
], ids=["two_layer", "fc", "three_layer_conv", "convnet"])
def test_the_l2_term_adds_half_reg_times_the_squares_and_reg_times_the_weights(make_model):
    """At reg 0 the models skip the penalty's work (the squares of a big layer's weights took ~1 ms a step); at
    reg > 0 the loss gains 0.5 * reg * sum(W**2) and each weight's gradient reg * W, biases and norms nothing."""
    from fastnn.classifiers.fc_net import _add_l2_gradient, _l2_penalty

    assert _l2_penalty({"W1": None}, ["W1"], 0.0) == 0.0  # the weights are not read at reg 0
    _add_l2_gradient({}, {}, ["W1"], 0.0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 3, 4, 4)) if "Conv" in type(make_model(0.0)).__name__ else rng.standard_normal((3, 12))
    y = np.array([0, 3, 1])
    np.random.seed(1)
    plain = make_model(0.0)
    np.random.seed(1)
    regularised = make_model(0.3)
    loss0, grads0 = plain.loss(X, y)
    loss, grads = regularised.loss(X, y)
    weights = [k for k in plain.params if k.startswith("W")]
    squares = sum(float(np.sum(plain.params[k] ** 2)) for k in weights)
    assert loss == pytest.approx(loss0 + 0.5 * 0.3 * squares, rel=1e-12)
    for k in plain.params:
        expected = grads0[k] + 0.3 * plain.params[k] if k in weights else grads0[k]
        np.testing.assert_allclose(grads[k], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make_model", [
    lambda: TwoLayerNet(input_dim=5, hidden_dim=6, num_classes=3, reg=1.0),
    lambda: FullyConnectedNet([6], input_dim=5, num_classes=3, reg=1.0, dtype=np.float64),
], ids=["two_layer", "fc"])
@pytest.mark.parametrize("dtype, value", [(np.int8, 20), (np.uint8, 20), (np.int16, 200), (np.int32, 50_000)])
def test_the_l2_term_of_integer_weights_does_not_wrap_around(make_model, dtype, value):
    """Integer params are what the layers take, but their squares were summed in their own dtype: int8 weights of
    20 at reg 1 gave a negative loss. Float weights keep the computation they had, bit for bit."""
    from fastnn.classifiers.fc_net import _l2_penalty

    X, y = np.random.default_rng(0).standard_normal((4, 5)), np.array([0, 1, 2, 1])
    np.random.seed(0)
    model = make_model()
    model.params["W1"] = np.full((5, 6), value, dtype=dtype)
    loss = model.loss(X, y)[0]
    model.params["W1"] = model.params["W1"].astype(np.float64)
    assert loss == pytest.approx(model.loss(X, y)[0], rel=1e-12)
    assert loss > 0.5 * 30 * float(value) ** 2
    w = np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)
    assert _l2_penalty({"W": w}, ["W"], 0.7) == 0.5 * 0.7 * float(np.sum(w * w))


def test_two_layer_net_with_integer_weights_a_user_set_computes_in_float64():
    """X was cast to W1's dtype, so integer weights truncated the data: [0.4, 0.6, 1.5] became [0, 0, 1]."""
    model = TwoLayerNet(3, 2, 2)
    model.params["W1"], model.params["W2"] = np.ones((3, 2), dtype=int), np.eye(2, dtype=int)
    np.testing.assert_allclose(model.loss(np.array([[0.4, 0.6, 1.5]])), [[2.5, 2.5]])


@pytest.mark.parametrize("make, error, message", [
    (lambda: TwoLayerNet(6, 0, 3), ValueError, r"TwoLayerNet: hidden_dim must be a positive integer, got 0"),
    (lambda: TwoLayerNet([6], 4, 3), TypeError, r"TwoLayerNet: input_dim must be a positive integer, got \[6\]"),
    (lambda: FullyConnectedNet([4, 4.0], input_dim=4), TypeError,
     r"FullyConnectedNet: hidden_dims\[1\] must be a positive integer, got 4.0"),
    (lambda: FullyConnectedNet([4], input_dim=4, reg="1"), TypeError, r"FullyConnectedNet: reg must be a finite"),
    (lambda: FullyConnectedNet([4], input_dim=4, use_batchnorm="no"), TypeError,
     r"FullyConnectedNet: use_batchnorm must be True, False or None, got 'no'"),
    (lambda: ThreeLayerConvNet(filter_size=3.0), TypeError,
     r"ThreeLayerConvNet: filter_size must be a positive integer, got 3.0"),
    (lambda: TwoLayerNet(3, 2, 2).loss([[1, 2, 3], [1]]), ValueError, r"TwoLayerNet.loss: X must be an array"),
])
def test_models_name_the_argument_that_is_wrong(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: FullyConnectedNet([10**8], input_dim=6, num_classes=3),
     r"FullyConnectedNet: input_dim, hidden_dims and num_classes give params of at least 7 GiB \(W1 \(6, 100000000\)"),
    (lambda: ThreeLayerConvNet(input_dim=(2, 10**4, 10**4)),
     r"ThreeLayerConvNet: input_dim, num_filters, filter_size, hidden_dim and num_classes give params of at least "
     r"[\d,]+ GiB \(W2 \(800000000, 100\)"),
    # each hidden-to-hidden weight (9000, 9000) takes 0.6 of the memory in float64: they fit one by one, not together
    (lambda: FullyConnectedNet([9000, 9000, 9000], input_dim=2, num_classes=2),
     r"FullyConnectedNet: input_dim, hidden_dims and num_classes give params of at least 1 GiB \(W2 \(9000, 9000\)"),
])
def test_params_that_do_not_fit_in_memory_together_are_refused_before_any_is_drawn(make, message, monkeypatch):
    """An over-large size was reported as 'weights: shape ...' (no model, no argument), and only per layer."""
    from fastnn import _checks, init

    monkeypatch.setattr(_checks, "_physical_memory", lambda: 2**30)  # a 1 GiB machine, whatever this one has

    def drawn(*args, **kwargs):
        raise AssertionError("a weight was drawn before the sizes were checked")

    monkeypatch.setattr(init, "weights", drawn)
    state = np.random.get_state()
    with pytest.raises(ValueError, match=message):
        make()
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), state))


def test_save_and_load_name_a_bad_fname_and_a_file_with_other_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = TwoLayerNet(4, 3, 2)
    for fname in ("", "a\0b.npy"):
        with pytest.raises(ValueError, match=r"TwoLayerNet.save: fname must be a non-empty file name"):
            model.save(fname)
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(ValueError, match=r"TwoLayerNet.load: fname 'dir.npy' names a directory"):
        model.load("dir.npy")
    np.save("keys.npy", {**model.params, 0: np.zeros(1)})
    with pytest.raises(ValueError, match=r"TwoLayerNet.load: 'keys.npy' holds params .* which do not fit"):
        model.load("keys.npy")
    assert list(tmp_path.iterdir()) and not (tmp_path / ".npy").exists()
