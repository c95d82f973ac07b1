"""The babysitting checks behind `fastnn check`: each verdict passes on a sound model and fails on a broken one."""

import numpy as np
import pytest

from fastnn import sanity


class Softmax:
    """A linear softmax classifier with L2; `grad_scale` != 1 plants a gradient bug."""

    def __init__(self, D=6, C=4, scale=1e-3, reg=0.0, grad_scale=1.0, dtype=np.float64):
        self.params = {"W": (scale * np.random.randn(D, C)).astype(dtype), "b": np.zeros(C, dtype)}
        self.reg, self.grad_scale = reg, grad_scale

    def loss(self, X, y=None):
        W, b = self.params["W"], self.params["b"]
        scores = X @ W + b
        if y is None:
            return scores
        p = np.exp(scores - scores.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        N = len(y)
        loss = -np.log(p[np.arange(N), y]).mean() + 0.5 * self.reg * np.sum(W * W)
        p[np.arange(N), y] -= 1
        p /= N
        return loss, {"W": self.grad_scale * (X.T @ p + self.reg * W), "b": p.sum(0)}


def data(n=40, D=6, C=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % C
    return 4 * np.eye(C, D)[y] + 0.3 * rng.standard_normal((n, D)), y


def test_initial_loss_verdicts():
    X, y = data()
    good = sanity.check_initial_loss(lambda reg: Softmax(reg=reg), X, y, num_classes=4, reg=1e3)
    assert good.passed and "log 4 = 1.3863" in good.detail and "rises" in good.detail
    too_big = sanity.check_initial_loss(lambda reg: Softmax(scale=5.0, reg=reg), X, y, num_classes=4)
    assert not too_big.passed and "outside" in too_big.detail
    no_reg = sanity.check_initial_loss(lambda reg: Softmax(), X, y, num_classes=4)  # ignores reg
    assert not no_reg.passed and "does not rise" in no_reg.detail
    assert str(good).startswith("[PASS] initial loss: ") and str(no_reg).startswith("[FAIL]")


def test_gradient_check_verdicts():
    X, y = data(n=5)
    good = sanity.check_gradients(Softmax(scale=0.5, reg=0.3), X, y)
    assert good.passed, good.detail
    errors = sanity.sampled_gradient_errors(Softmax(scale=0.5, reg=0.3), X, y, num_checks=24)
    assert max(e for e, _ in errors.values()) < 1e-5  # elementwise: an entry near 0 costs digits
    bad = sanity.check_gradients(Softmax(scale=0.5, reg=0.3, grad_scale=1.01), X, y)
    assert not bad.passed and "(W[" in bad.detail
    single = sanity.check_gradients(Softmax(dtype=np.float32), X, y)
    assert not single.passed and "need float64" in single.detail


def test_a_correct_convnet_with_the_courses_small_weights_passes_the_gradient_check():
    """At the notebook's ThreeLayerConvNet set-up (weight_scale 1e-3) b1's gradients are ~3e-7, below what a
    centred difference at h = 1e-6 resolves to 1e-5 relative: every seed failed. Now only a real error fails."""
    from fastnn.classifiers import ThreeLayerConvNet

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((2, 3, 16, 16)), np.array([3, 7])
    np.random.seed(0)
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=3, filter_size=3, hidden_dim=7, dtype=np.float64)
    verdict = sanity.check_gradients(model, X, y)
    assert verdict.passed and "within 4 x the numeric difference's resolution" in verdict.detail, verdict.detail
    loss = model.loss
    model.loss = lambda X, y=None: (lambda out: (out[0], {**out[1], "b1": out[1]["b1"] * 1.01}))(loss(X, y))
    wrong = sanity.check_gradients(model, X, y, num_checks=3)
    assert not wrong.passed and "(b1[" in wrong.detail and "entries fail" in wrong.detail, wrong.detail


def test_gradient_check_restores_the_params():
    X, y = data(n=5)
    model = Softmax(scale=0.5)
    before = {k: v.copy() for k, v in model.params.items()}
    sanity.sampled_gradient_errors(model, X, y)
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])


@pytest.mark.parametrize("seed, n", [(8, 50), (0, 2)])
def test_the_fc_model_that_fits_its_small_set_passes_the_overfit_check(seed, n):
    """The verdict measured after training, on the Solver's best params beside the last epoch's batchnorm running
    statistics: 96% on 50 digits at seed 8 though every epoch's check from the fourth on had 100%; 50% on 2."""
    from fastnn.commands.train import build_model
    from fastnn.data_utils import load_digits

    data = load_digits(seed=seed)
    X, y = data["X_train"][:n], data["y_train"][:n]
    np.random.seed(seed)
    model = build_model("fc", X.shape[1:], 10, weight_scale="he", dtype=np.float32)
    verdict = sanity.check_overfit(model, X, y, seed=seed)
    assert verdict.passed and "100.0% (first at epoch" in verdict.detail, verdict.detail


def test_overfit_verdicts():
    X, y = data(n=20)
    good = sanity.check_overfit(Softmax(), X, y, num_epochs=30, batch_size=10, learning_rate=0.1)
    assert good.passed and "100.0%" in good.detail
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((20, 6))
    hopeless = sanity.check_overfit(Softmax(), noise, rng.integers(0, 4, 20), num_epochs=1, learning_rate=0.0)
    assert not hopeless.passed


@pytest.mark.parametrize("model", ["fc", "cnn"])
def test_fastnn_check_prints_each_verdict_and_passes(model, capsys):
    from fastnn.cli import main

    status = main(["check", "--model", model, "--num-overfit", "30"])
    out = capsys.readouterr().out
    assert status == 0, out
    for name in ("initial loss", "gradient check", "overfit small subset"):
        assert f"[PASS] {name}: " in out
    assert "all checks passed" in out


def test_fastnn_check_exits_1_when_a_check_fails(monkeypatch, capsys):
    from fastnn.cli import main

    failing = sanity.Verdict("gradient check", False, "planted failure")
    monkeypatch.setattr(sanity, "check_gradients", lambda *a, **k: failing)
    assert main(["check", "--model", "fc", "--num-overfit", "20"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] gradient check: planted failure" in out and "failed: gradient check" in out


# ----------------------------------------------------------------------------------------------------------
# Bad arguments and failing models


def test_sampled_gradient_errors_restores_the_params_when_loss_raises():
    """A loss that raised mid-check once left W[1, 1] at saved + h for the rest of the session."""

    class FailsAfterFirstCall:
        def __init__(self):
            self.params, self.calls = {"W": np.zeros((2, 2))}, 0

        def loss(self, X, y=None):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("loss failed")
            return 1.0, {"W": np.zeros((2, 2))}

    model = FailsAfterFirstCall()
    with pytest.raises(RuntimeError, match="loss failed"):
        sanity.sampled_gradient_errors(model, *data(n=4))
    np.testing.assert_array_equal(model.params["W"], np.zeros((2, 2)))


def test_check_gradients_refuses_a_model_without_params():
    """An empty model.params once raised a bare StopIteration."""

    class NoParams:
        params = {}

        def loss(self, X, y=None):
            return 1.0, {}

    with pytest.raises(ValueError, match=r"check_gradients: model.params is empty"):
        sanity.check_gradients(NoParams(), *data(n=4))


@pytest.mark.parametrize("num_checks, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                               ("3", TypeError)])
def test_num_checks_must_be_a_positive_integer(num_checks, error):
    """num_checks=-1 once gave numpy's 'negative dimensions are not allowed'; 0 a PASS over no entries."""
    X, y = data(n=4)
    for fn in ("check_gradients", "sampled_gradient_errors"):
        with pytest.raises(error, match=rf"{fn}: num_checks must be"):
            getattr(sanity, fn)(Softmax(), X, y, num_checks=num_checks)


@pytest.mark.parametrize("num_classes, error", [(0, ValueError), (1, ValueError), (-3, ValueError),
                                                ("3", TypeError), (3.0, TypeError)])
def test_initial_loss_needs_an_integer_num_classes_of_at_least_two(num_classes, error):
    """num_classes=0 once gave a log(0) warning and a FAIL; '3' a ufunc TypeError."""
    X, y = data(n=8)
    with pytest.raises(error, match=r"check_initial_loss: num_classes must be"):
        sanity.check_initial_loss(lambda reg: Softmax(reg=reg), X, y, num_classes=num_classes)


class Broken(Softmax):
    """Softmax whose gradients (or loss) are NaN or infinite."""

    def __init__(self, bad_grad=None, bad_loss=None):
        super().__init__()
        self.bad_grad, self.bad_loss = bad_grad, bad_loss

    def loss(self, X, y=None):
        loss, grads = super().loss(X, y)
        if self.bad_grad is not None:
            grads["W"] = np.full_like(grads["W"], self.bad_grad)
        return (loss if self.bad_loss is None else self.bad_loss), grads


@pytest.mark.parametrize("model", [Broken(bad_grad=np.nan), Broken(bad_grad=np.inf), Broken(bad_loss=np.nan)],
                         ids=["nan-grad", "inf-grad", "nan-loss"])
def test_nan_or_infinite_gradients_are_the_worst_error_not_a_match(model):
    """A NaN error never compared above 0.0, so a broken model read as a perfect one ((0.0, None))."""
    X, y = data(n=8)
    errors = sanity.sampled_gradient_errors(model, X, y, num_checks=2)
    assert errors["W"][0] == np.inf and errors["W"][1] is not None
    verdict = sanity.check_gradients(model, X, y, num_checks=2)
    assert not verdict.passed and "max relative error inf (" in verdict.detail


@pytest.mark.parametrize("kwargs, error, message", [
    ({"h": 0.0}, ValueError, r"h must be > 0"),
    ({"h": np.nan}, ValueError, r"h must be finite"),
    ({"seed": -1}, ValueError, r"seed must be what np.random.default_rng takes .*got -1"),
    ({"seed": "a"}, TypeError, r"seed must be what np.random.default_rng takes .*got 'a'"),
])
def test_sampled_gradient_checks_name_bad_arguments(kwargs, error, message):
    X, y = data(n=4)
    for fn in (sanity.sampled_gradient_errors, sanity.check_gradients):
        with pytest.raises(error, match=fn.__name__ + ": " + message):
            fn(Softmax(), X, y, **kwargs)
    with pytest.raises(TypeError, match=r"check_gradients: threshold must be a real number"):
        sanity.check_gradients(Softmax(), X, y, threshold="1e-5")


class Grads(Softmax):
    def __init__(self, change):
        super().__init__()
        self.change = change

    def loss(self, X, y=None):
        loss, grads = super().loss(X, y)
        self.change(grads)
        return loss, grads


@pytest.mark.parametrize("model, error, message", [
    (Grads(lambda g: g.pop("b")), ValueError,
     r"model.loss's grads\['b'\] must have the shape of its param, \(4,\); got no entry"),
    (Grads(lambda g: g.update(b=np.zeros(3))), ValueError, r"model.loss's grads\['b'\] .* got shape \(3,\)"),
    (type("NoParams", (), {"params": [1], "loss": lambda self, X, y: 0}), TypeError,
     r"model must have a params dict and a loss method, got type"),
])
def test_sampled_gradient_checks_name_a_bad_model(model, error, message):
    X, y = data(n=4)
    with pytest.raises(error, match="sampled_gradient_errors: " + message):
        sanity.sampled_gradient_errors(model, X, y)


def test_sampled_gradient_checks_refuse_integer_and_read_only_params():
    X, y = data(n=4)
    model = Softmax()
    model.params["b"] = np.zeros(4, np.int64)
    with pytest.raises(TypeError, match=r"model.params\['b'\] must be a floating numpy array, got dtype int64"):
        sanity.sampled_gradient_errors(model, X, y)
    model = Softmax()
    model.params["W"].flags.writeable = False
    with pytest.raises(ValueError, match=r"check_gradients: model.params\['W'\] is read-only"):
        sanity.check_gradients(model, X, y)


class Labelled(Softmax):
    """reg is only a label here: the loss is taken at reg 0."""

    def loss(self, X, y=None):
        reg, self.reg = self.reg, 0.0
        try:
            return super().loss(X, y)
        finally:
            self.reg = reg


def test_check_gradients_shows_a_reg_that_is_not_a_number():
    X, y = data(n=4)
    model = Labelled()
    model.reg = None
    assert "at reg None" in sanity.check_gradients(model, X, y, num_checks=1).detail


def test_other_checks_name_bad_arguments():
    X, y = data(n=4)
    with pytest.raises(ValueError, match=r"check_overfit: num_epochs must be >= 1, got 0"):
        sanity.check_overfit(Softmax(), X, y, num_epochs=0)
    with pytest.raises(TypeError, match=r"check_initial_loss: make_model must be callable"):
        sanity.check_initial_loss(5, X, y, num_classes=4)
    with pytest.raises(TypeError, match=r"check_initial_loss: tolerance must be a real number"):
        sanity.check_initial_loss(lambda reg: Softmax(reg=reg), X, y, num_classes=4, tolerance="x")
    with pytest.raises(ValueError, match=r"check_initial_loss: reg must be > 0"):
        sanity.check_initial_loss(lambda reg: Softmax(reg=reg), X, y, num_classes=4, reg=0)


def test_the_seed_is_anything_default_rng_takes():
    X, y = data(n=4)
    np.random.seed(0)
    by_int = sanity.sampled_gradient_errors(Softmax(), X, y, num_checks=2, seed=7)
    np.random.seed(0)
    by_sequence = sanity.sampled_gradient_errors(Softmax(), X, y, num_checks=2, seed=np.random.SeedSequence(7))
    assert by_int == by_sequence
    sanity.check_gradients(Softmax(), X, y, num_checks=1, seed=np.random.default_rng(1))


def test_check_gradients_needs_every_param_float64():
    """Only the first param's dtype was read: a float32 b behind a float64 W passed."""
    X, y = data(n=5)
    model = Softmax(scale=0.5)
    model.params["b"] = model.params["b"].astype(np.float32)
    verdict = sanity.check_gradients(model, X, y)
    assert not verdict.passed and "float32 in model.params['b']; gradient checks need float64" in verdict.detail


class Returns:
    """A model whose loss returns `result`."""

    def __init__(self, result):
        self.params, self.result = {"W": np.zeros((2, 2))}, result

    def loss(self, X, y=None):
        return self.result


@pytest.mark.parametrize("result, message", [
    (1.0, r"must return \(loss, grads\), got float"),
    ((np.ones(3), {"W": np.zeros((2, 2))}), r"must return a real number as its loss, got ndarray with shape \(3,\)"),
    ((None, {"W": np.zeros((2, 2))}), r"must return a real number as its loss, got NoneType"),
    ((1.0, None), r"must return \(loss, grads\) with grads a dict, got NoneType"),
], ids=["scalar", "array-loss", "none-loss", "none-grads"])
def test_a_loss_that_is_not_a_number_and_grads_is_named(result, message):
    """These gave Python's 'cannot unpack non-iterable float', 'truth value ... is ambiguous' and 'bad operand
    type for abs()', without the check's name."""
    X, y = data(n=4)
    message = r"model.loss\(X, y\) " + message
    for fn in (sanity.sampled_gradient_errors, sanity.check_gradients):
        with pytest.raises(TypeError, match=fn.__name__ + ": " + message):
            fn(Returns(result), X, y)
    with pytest.raises(TypeError, match="check_initial_loss: " + message):
        sanity.check_initial_loss(lambda reg: Returns(result), X, y, num_classes=4)


def test_a_make_model_that_returns_no_model_is_named():
    with pytest.raises(TypeError, match=r"check_initial_loss: make_model\(0.0\) must return a model with a loss "
                                        r"method, got NoneType"):
        sanity.check_initial_loss(lambda reg: None, *data(n=4), num_classes=4)


def test_the_overfit_verdict_counts_in_the_singular():
    """It said 'on 1 samples in 1 epochs'."""
    X, y = data(n=1)
    verdict = sanity.check_overfit(Softmax(), X, y, num_epochs=1, batch_size=1)
    assert " on 1 sample in 1 epoch of adam " in verdict.detail, verdict.detail
