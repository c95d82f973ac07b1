"""Solver: histories, lr decay, printing, seeds, bad arguments, divergence and best params.

A linear softmax classifier in plain NumPy stands in for a model here, so these tests exercise the loop alone.
"""

import os

import numpy as np
import pytest

from fastnn import optim
from fastnn.solver import Solver


class LinearSoftmax:
    """scores = X @ W + b with softmax loss; records every batch it trains on."""

    def __init__(self, D=4, C=3, scale=1e-2, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W": scale * rng.standard_normal((D, C)), "b": np.zeros(C)}
        self.batches = []

    def loss(self, X, y=None):
        X = X.reshape(X.shape[0], -1)
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        self.batches.append(X.copy())
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        N = X.shape[0]
        loss = -np.mean(np.log(probs[np.arange(N), y]))
        dscores = probs
        dscores[np.arange(N), y] -= 1
        dscores /= N
        return loss, {"W": X.T @ dscores, "b": dscores.sum(axis=0)}


def blobs(n_train=60, n_val=30, D=4, C=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((C, D))

    def split(n):
        y = rng.integers(0, C, n)
        return centres[y] + rng.standard_normal((n, D)), y

    X_train, y_train = split(n_train)
    X_val, y_val = split(n_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def test_histories_epochs_and_lr_decay():
    model, data = LinearSoftmax(), blobs()
    solver = Solver(model, data, update_rule="sgd_momentum", optim_config={"learning_rate": 0.1},
                    lr_decay=0.5, num_epochs=3, batch_size=10, verbose=False, seed=0)
    solver.train()
    assert len(solver.loss_history) == 3 * (60 // 10)
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 3 + 1
    assert solver.epoch == 3
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.1 * 0.5**3)
        assert config["momentum"] == 0.9
    assert solver.loss_history[-1] < solver.loss_history[0]
    assert solver.best_val_acc == max(solver.val_acc_history) > 0.8
    assert model.params is solver.best_params


def test_optim_config_is_copied_per_parameter():
    shared = {"learning_rate": 0.05}
    solver = Solver(LinearSoftmax(), blobs(), optim_config=shared, verbose=False)
    assert set(solver.optim_configs) == {"W", "b"}
    assert solver.optim_configs["W"] is not solver.optim_configs["b"]
    assert solver.optim_configs["W"] is not shared and solver.optim_configs["W"] == shared


def test_verbose_false_prints_nothing_at_all(capsys, tmp_path):
    solver = Solver(LinearSoftmax(), blobs(), num_epochs=2, batch_size=10, verbose=False,
                    checkpoint_name=str(tmp_path / "run"))
    solver.train()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_prints_the_starter_formats(capsys, tmp_path):
    name = str(tmp_path / "run")
    solver = Solver(LinearSoftmax(), blobs(), num_epochs=1, batch_size=20, print_every=2, seed=0,
                    checkpoint_name=name, progress_bar=False)
    solver.train()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("(Iteration 1 / 3) loss: ")
    assert out[1] == 'Saving checkpoint to "%s_epoch_0.npz"' % name
    assert out[2].startswith("(Epoch 0 / 1) train acc: ") and "; val_acc: " in out[2]
    assert out[3].startswith("(Iteration 3 / 3) loss: ")
    assert out[-1].startswith("(Epoch 1 / 1) train acc: ")


def test_progress_bar_goes_to_stderr_when_verbose(capsys):
    Solver(LinearSoftmax(), blobs(), num_epochs=1, batch_size=20, print_every=100, seed=0).train()
    err = capsys.readouterr().err
    assert "train" in err and "3/3" in err and "val_acc" in err


def test_seed_gives_the_same_run_and_leaves_the_global_rng_alone():
    runs = []
    for _ in range(2):
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        solver = Solver(LinearSoftmax(), blobs(), num_epochs=2, batch_size=10, verbose=False, seed=7)
        solver.train()
        assert np.array_equal(np.random.get_state()[1], before)
        runs.append(solver.loss_history)
    assert runs[0] == runs[1]
    other = Solver(LinearSoftmax(), blobs(), num_epochs=2, batch_size=10, verbose=False, seed=8)
    other.train()
    assert other.loss_history != runs[0]


def test_without_seed_minibatches_come_from_numpys_global_rng_as_in_the_starter():
    data = blobs()
    np.random.seed(0)
    model = LinearSoftmax()
    solver = Solver(model, data, num_epochs=1, batch_size=10, verbose=False)
    solver._step()
    np.random.seed(0)
    expected = data["X_train"][np.random.choice(60, 10)]
    np.testing.assert_array_equal(model.batches[0], expected)


def test_check_accuracy_in_batches_and_on_a_subsample():
    model, data = LinearSoftmax(), blobs()
    solver = Solver(model, data, verbose=False, seed=0)
    X, y = data["X_val"], data["y_val"]
    expected = np.mean(np.argmax(model.loss(X), axis=1) == y)
    assert solver.check_accuracy(X, y, batch_size=7) == pytest.approx(expected)
    sub = solver.check_accuracy(X, y, num_samples=10)
    assert sub in {k / 10 for k in range(11)}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"learning_rate": 1e-3}, ValueError, r'Unrecognized arguments "learning_rate"'),
        ({"update_rule": "sgd_nesterov"}, ValueError, r'Invalid update_rule "sgd_nesterov"'),
        ({"batch_size": 0}, ValueError, r"Solver: batch_size must be an integer >= 1, got 0"),
        ({"num_epochs": 2.5}, ValueError, r"Solver: num_epochs must be an integer"),
        ({"lr_decay": -1}, ValueError, r"Solver: lr_decay must be a finite number > 0"),
        ({"optim_config": None}, TypeError, r"Solver: optim_config must be a dict"),
        ({"seed": "zero"}, TypeError, r"Solver: seed must be an int or None"),
        ({"seed": -1}, ValueError, r"Solver: seed must be >= 0, got -1"),
        ({"lr_decay": float("inf")}, ValueError, r"Solver: lr_decay must be a finite number > 0, got inf"),
        ({"checkpoint_name": "/nonexistent-dir/run"}, FileNotFoundError,
         r"Solver: the directory of checkpoint_name '/nonexistent-dir/run_epoch_0.npz' does not exist"),
        ({"checkpoint_name": 3}, TypeError, r"Solver: checkpoint_name must be a str or os.PathLike, got int"),
        ({"print_every": 2.5}, ValueError, r"Solver: print_every must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        Solver(LinearSoftmax(), blobs(), **kwargs)


def test_bad_data():
    data = blobs()
    with pytest.raises(ValueError, match=r"Solver: data is missing \['y_val'\]"):
        Solver(LinearSoftmax(), {k: v for k, v in data.items() if k != "y_val"})
    with pytest.raises(ValueError, match=r"Solver: X_train and y_train must be non-empty arrays of equal length"):
        Solver(LinearSoftmax(), dict(data, y_train=data["y_train"][:5]))


def test_data_saved_with_np_savez_trains_as_the_dict_does(tmp_path):
    """The starter only indexes data, so np.load of a saved data dict (an NpzFile) worked there."""
    data = blobs()
    np.savez(tmp_path / "data.npz", **data)
    histories = []
    for source in (data, np.load(tmp_path / "data.npz")):
        solver = Solver(LinearSoftmax(), source, num_epochs=2, batch_size=10, verbose=False, seed=0)
        solver.train()
        histories.append(solver.loss_history)
    assert histories[0] == histories[1]
    with pytest.raises(TypeError, match="Solver: data must be a dict"):
        Solver(LinearSoftmax(), list(data.items()))


def test_an_unknown_rule_name_says_how_to_pass_ones_own():
    with pytest.raises(ValueError, match=r'Invalid update_rule "my_rule": name one of .*pass a rule of your own '
                                         r'as the function itself'):
        Solver(LinearSoftmax(), blobs(), update_rule="my_rule")


@pytest.mark.parametrize(
    "key, value, error, message",
    [
        ("y_val", lambda y: y[:, None], ValueError, r"Solver: y_val must have shape \(30,\) to match X, got \(30, 1\)"),
        ("y_train", lambda y: y.astype(float), TypeError, r"Solver: y_train must be a numpy.ndarray of integer class"),
        ("y_val", lambda y: y - 1, ValueError, r"Solver: y_val must hold class labels >= 0, got -1"),
        ("X_val", lambda X: np.float64(1.0), ValueError, r"Solver: X_val and y_val must be non-empty arrays"),
        ("X_train", lambda X: np.where(np.arange(X.size).reshape(X.shape) == 9, np.nan, X), ValueError,
         r"Solver: X_train holds 1 NaN or infinite values, the first at index \(2, 1\)"),
    ],
)
def test_bad_labels_are_refused_before_training(key, value, error, message):
    """A (N, 1) y_val once broadcast against the (N,) predictions into an (N, N) comparison: a wrong accuracy."""
    data = blobs()
    with pytest.raises(error, match=message):
        Solver(LinearSoftmax(), dict(data, **{key: value(data[key])}), verbose=False)


def test_rows_of_another_size_than_the_models_input_dim_are_refused_before_training():
    """They were found at the first accuracy check, after the first update; a model without input_dim (one of
    one's own, which may pool over any image size) is not held to X_train's size."""
    from fastnn.classifiers.fc_net import TwoLayerNet

    data = blobs()
    with pytest.raises(ValueError, match=r"Solver: each row of X_val must hold the model's input_dim=4 \(4 values\), "
                                         r"got shape \(30, 1\)"):
        Solver(TwoLayerNet(input_dim=4, hidden_dim=5, num_classes=3), dict(data, X_val=data["X_val"][:, :1]),
               verbose=False)
    Solver(TwoLayerNet(input_dim=4, hidden_dim=5, num_classes=3), dict(data, X_val=data["X_val"][:, None, :]),
           verbose=False)  # (N, 1, 4) rows hold 4 values, which an affine layer takes
    from fastnn.classifiers.cnn import ThreeLayerConvNet

    images = {"X_train": np.zeros((4, 1, 6, 6)), "y_train": np.zeros(4, int), "X_val": np.zeros((2, 36)),
              "y_val": np.zeros(2, int)}
    with pytest.raises(ValueError, match=r"Solver: X_val must have shape \(N, 1, 6, 6\) for the model's "
                                         r"input_dim=\(1, 6, 6\), got \(2, 36\)"):
        Solver(ThreeLayerConvNet(input_dim=(1, 6, 6), num_filters=2, filter_size=3, hidden_dim=3, num_classes=2),
               images, verbose=False)
    own = LinearSoftmax(D=1)
    own.loss = lambda X, y=None: LinearSoftmax.loss(own, X.mean(axis=1, keepdims=True), y)  # any size in
    Solver(own, dict(data, X_val=data["X_val"][:, :1]), num_epochs=1, verbose=False).train()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda s, X, y: s.check_accuracy(X, y[:, None]), ValueError, r"y must have shape \(30,\) to match X"),
        (lambda s, X, y: s.check_accuracy(X, y[:1]), ValueError, r"y must have shape \(30,\)"),
        (lambda s, X, y: s.check_accuracy(X, y + 100), ValueError, r"y must lie in \[0, 3\) for the model's 3"),
        (lambda s, X, y: s.check_accuracy(X, y.astype(str)), TypeError, r"y must be a numpy.ndarray of integer"),
        (lambda s, X, y: s.check_accuracy(X.tolist(), y), TypeError, r"X must be a numpy.ndarray \(N, ...\), got "
                                                                 r"list"),
        (lambda s, X, y: s.check_accuracy(X[:0], y[:0]), ValueError, r"X must hold at least one row"),
        (lambda s, X, y: s.check_accuracy(X, y, num_samples=0), ValueError, r"num_samples must be an integer >= 1"),
        (lambda s, X, y: s.check_accuracy(X, y, batch_size=0), ValueError, r"batch_size must be an integer >= 1"),
        (lambda s, X, y: s.check_accuracy(X, y, batch_size=2.5), ValueError, r"batch_size must be an integer"),
    ],
)
def test_check_accuracy_refuses_bad_arguments(call, error, message):
    data = blobs()
    solver = Solver(LinearSoftmax(), data, verbose=False)
    with pytest.raises(error, match="Solver.check_accuracy: " + message):
        call(solver, data["X_val"], data["y_val"])


def test_a_second_train_call_leaves_the_best_params_of_the_first_alone():
    """train() ends with model.params = best_params (the same dict, as in the starter); a second train() then
    updated that dict, so best_params no longer held the weights that scored best_val_acc."""
    model, data = LinearSoftmax(), blobs()
    solver = Solver(model, data, update_rule="sgd", optim_config={"learning_rate": 0.5}, num_epochs=2,
                    batch_size=10, verbose=False, seed=0)
    solver.train()
    assert model.params is solver.best_params
    first_best = {k: v.copy() for k, v in solver.best_params.items()}
    solver.best_val_acc = 2.0  # no later check beats it, so best_params must stay the first run's
    solver.num_epochs = 4
    solver.train()
    assert len(solver.loss_history) == 4 * 6
    for k in first_best:
        np.testing.assert_array_equal(solver.best_params[k], first_best[k])
    assert model.params is solver.best_params


def test_a_second_train_call_on_a_finished_run_trains_num_epochs_more():
    """The starter's train() looped over all its iterations again; fastnn's starts where the history ends (for
    resume), so a second call on a finished run did nothing at all."""
    solver = Solver(LinearSoftmax(), blobs(), update_rule="sgd", optim_config={"learning_rate": 0.5}, num_epochs=2,
                    batch_size=10, verbose=False, seed=0)
    solver.train()
    first = (list(solver.loss_history), list(solver.val_acc_history))
    solver.train()
    assert (solver.epoch, solver.num_epochs, len(solver.loss_history)) == (4, 4, 4 * 6)
    assert solver.loss_history[:12] == first[0] and solver.val_acc_history[:3] == first[1]
    assert len(solver.val_acc_history) == 3 + 2  # one check per epoch; the first call made the iteration-1 one


def test_a_finished_run_resumed_is_finished_not_trained_further(tmp_path):
    name = str(tmp_path / "run")
    kwargs = dict(update_rule="sgd", optim_config={"learning_rate": 0.5}, num_epochs=2, batch_size=10,
                  verbose=False, seed=0)
    Solver(LinearSoftmax(), blobs(), checkpoint_name=name, **kwargs).train()
    solver = Solver(LinearSoftmax(), blobs(), **kwargs).resume(name + "_epoch_2.npz")
    assert (solver.epoch, len(solver.loss_history)) == (2, 12)


def test_an_unnamed_update_rule_resumes_as_the_solvers_own(tmp_path):
    """A checkpoint names its rule by __name__, a functools.partial by its str (an address), which resume looked
    up among the built-in rules."""
    import functools

    rule = functools.partial(optim.sgd_momentum)
    name = str(tmp_path / "run")
    kwargs = dict(update_rule=rule, optim_config={"learning_rate": 0.1}, batch_size=10, verbose=False, seed=0)
    Solver(LinearSoftmax(), blobs(), num_epochs=1, checkpoint_name=name, **kwargs).train()
    solver = Solver(LinearSoftmax(), blobs(), num_epochs=2, **kwargs).resume(name + "_epoch_1.npz")
    assert solver.update_rule is rule and solver.epoch == 2
    with pytest.raises(ValueError, match=r"was written with the update rule 'functools.partial\(.*not one of "
                                         r"fastnn.optim's: pass that function as this Solver's update_rule"):
        Solver(LinearSoftmax(), blobs(), num_epochs=2, **{**kwargs, "update_rule": "sgd"}).restore(
            name + "_epoch_1.npz")


def test_a_parameter_a_built_in_rule_refuses_is_named_before_any_parameter_changes():
    """An int64 parameter with an int64 gradient passed the gradient check; sgd then refused it after W had been
    updated, naming neither the parameter nor the Solver."""
    model = LinearSoftmax()
    model.params["z_count"] = np.zeros(2, dtype=np.int64)
    loss = model.loss
    model.loss = lambda X, y=None: loss(X, y) if y is None else (loss(X, y)[0], {**loss(X, y)[1],
                                                                             "z_count": np.zeros(2, np.int64)})
    before = {k: v.copy() for k, v in model.params.items()}
    solver = Solver(model, blobs(), update_rule="sgd", num_epochs=1, batch_size=10, verbose=False)
    with pytest.raises(TypeError, match=r"Solver: parameter 'z_count' must be a float32 or float64 array for update "
                                        r"rule 'sgd', got int64"):
        solver.train()
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])


def test_after_training_the_model_scores_best_val_acc_with_its_batchnorm_statistics(tmp_path):
    """The starter swaps in best_params beside the last epoch's running statistics: on 50 digits that every check
    from the fourth epoch on had fitted (best_val_acc 1.0), check_accuracy then gave 0.96. A resumed run ends the
    same way (the checkpoint keeps the statistics of its best params)."""
    from fastnn.commands.train import build_model
    from fastnn.data_utils import load_digits

    digits = load_digits(seed=8)
    X, y = digits["X_train"][:50], digits["y_train"][:50]
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    kwargs = dict(update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=25, num_train_samples=None,
                  verbose=False, seed=8)
    np.random.seed(8)
    model = build_model("fc", X.shape[1:], 10, weight_scale="he", dtype=np.float32)
    name = str(tmp_path / "run")
    solver = Solver(model, data, num_epochs=20, checkpoint_name=name, **kwargs)
    solver.train()
    assert solver.check_accuracy(X, y) == solver.best_val_acc == 1.0
    final = [{k: v.copy() for k, v in p.items() if isinstance(v, np.ndarray)} for p in model.bn_params]

    np.random.seed(0)
    other = build_model("fc", X.shape[1:], 10, weight_scale="he", dtype=np.float32)
    Solver(other, data, num_epochs=20, **kwargs).resume(name + "_epoch_10.npz")
    for saved, resumed in zip(final, other.bn_params):
        for key in saved:
            np.testing.assert_array_equal(resumed[key], saved[key])


def test_lr_decay_with_a_rule_that_keeps_no_learning_rate_names_the_rule():
    def plain_step(w, dw, config=None):
        return w - 1e-3 * dw, config if config is not None else {}

    solver = Solver(LinearSoftmax(), blobs(), update_rule=plain_step, lr_decay=0.9, num_epochs=1, batch_size=30,
                    verbose=False)
    with pytest.raises(ValueError, match=r"Solver: lr_decay=0.9 needs a learning rate to decay, but the update "
                                         r"rule plain_step left no 'learning_rate'"):
        solver.train()
    Solver(LinearSoftmax(), blobs(), update_rule=plain_step, num_epochs=1, batch_size=30, verbose=False).train()


def test_divergence_raises_naming_the_iteration_and_keeps_the_best_params():
    model, data = LinearSoftmax(scale=1.0), blobs()
    solver = Solver(model, data, optim_config={"learning_rate": 1e200}, num_epochs=5, batch_size=10,
                    verbose=False, seed=0)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"at iteration \d+ / 30"):
        solver.train()
    assert not np.isfinite(solver.loss_history[-1])
    assert solver.best_params and model.params is solver.best_params
    assert all(np.all(np.isfinite(v)) for v in model.params.values())


def test_best_params_fall_back_to_the_current_params_when_val_accuracy_stays_zero():
    model, data = LinearSoftmax(), blobs()
    model.params["W"][:] = 0  # equal scores: argmax predicts class 0 for every point
    data["y_val"] = np.ones_like(data["y_val"])
    solver = Solver(model, data, optim_config={"learning_rate": 0.0}, num_epochs=1, batch_size=30, verbose=False)
    solver.train()
    assert solver.val_acc_history == [0.0, 0.0]
    assert set(solver.best_params) == {"W", "b"}
    assert model.params is solver.best_params


def test_best_params_are_copies_taken_at_the_best_epoch():
    model, data = LinearSoftmax(), blobs()
    solver = Solver(model, data, optim_config={"learning_rate": 0.5}, num_epochs=3, batch_size=10, verbose=False,
                    seed=1)
    snapshots = []
    original = solver.check_accuracy

    def spy(X, y, **kwargs):
        if X is data["X_val"]:
            snapshots.append({k: v.copy() for k, v in model.params.items()})
        return original(X, y, **kwargs)

    solver.check_accuracy = spy
    solver.train()
    best = int(np.argmax(solver.val_acc_history))
    for k in model.params:
        np.testing.assert_array_equal(solver.best_params[k], snapshots[best][k])


class NaNFromTheSecondStep(LinearSoftmax):
    """From the second step on, a finite loss (the model's own bug) with a NaN gradient: every weight and score
    is NaN after it, and the Solver's check of the loss does not see it."""

    def loss(self, X, y=None):
        result = super().loss(X, y)
        if y is None or len(self.batches) == 1:
            return result
        return 1.0, {k: np.full_like(v, np.nan) for k, v in result[1].items()}


def test_nan_scores_are_wrong_predictions_so_nan_weights_never_become_the_best():
    """np.argmax of a NaN row is class 0: NaN weights scored the share of class-0 labels and were kept as the
    best params (90% on a validation set of nine 0s)."""
    data = blobs()
    data["y_val"] = np.zeros_like(data["y_val"])
    solver = Solver(NaNFromTheSecondStep(scale=1.0), data, batch_size=10, num_epochs=1, verbose=False, seed=0)
    solver.train()
    first, last = solver.val_acc_history
    assert 0 < first < 1 and last == 0.0  # after one finite step, then with NaN weights
    assert solver.best_val_acc == first
    assert all(np.all(np.isfinite(v)) for v in solver.best_params.values())
    assert all(np.all(np.isfinite(v)) for v in solver.model.params.values())


@pytest.mark.parametrize("bad, message", [
    ({"b": None}, r"the gradient of 'b' must be an array of its parameter's shape \(3,\) and dtype float64, got "
                  r"NoneType"),
    ({"b": np.zeros(4)}, r"the gradient of 'b' must be an array .* got \(4,\) float64"),
    ({"b": np.zeros(3, np.float32)}, r"the gradient of 'b' must be an array .* dtype float64, got \(3,\) float32"),
    ("drop b", r"model.loss returned no gradient for parameter 'b'"),
])
def test_a_bad_gradient_is_found_before_any_parameter_changes(bad, message):
    """W was updated, then the bad gradient of b raised: a half-updated model."""
    class BadGradient(LinearSoftmax):
        def loss(self, X, y=None):
            result = super().loss(X, y)
            if y is None:
                return result
            grads = dict(result[1])
            if bad == "drop b":
                del grads["b"]
            else:
                grads.update(bad)
            return result[0], grads

    model = BadGradient()
    before = {k: v.copy() for k, v in model.params.items()}
    solver = Solver(model, blobs(), update_rule="sgd", verbose=False, seed=0)
    with pytest.raises(ValueError, match=r"Solver: " + message):
        solver.train()
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v)


def test_a_checkpoint_directory_that_takes_no_file_is_found_by_the_constructor(tmp_path, monkeypatch):
    """Only the directory's existence was checked: a read-only one failed after the first epoch's work with
    a bare PermissionError on a temporary file's name."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match=r"Solver: cannot write checkpoint_name '.*run_epoch_0.npz' "
                                              r"\(Permission denied\)"):
        Solver(LinearSoftmax(), blobs(), checkpoint_name=str(tmp_path / "run"), verbose=False)
    monkeypatch.undo()
    Solver(LinearSoftmax(), blobs(), checkpoint_name=str(tmp_path / "run"), verbose=False)
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="Linux /proc: a directory no one can create files in")
def test_a_checkpoint_in_proc_is_refused_by_the_constructor():
    with pytest.raises(OSError, match=r"Solver: cannot write checkpoint_name '/proc/run_epoch_0.npz'"):
        Solver(LinearSoftmax(), blobs(), checkpoint_name="/proc/run", verbose=False)


def test_optim_config_keys_the_rule_does_not_read_are_warned_of():
    with pytest.warns(UserWarning, match=r"Solver: update rule 'sgd' does not read optim_config \['lr'\]; it "
                                         r"reads \['learning_rate'\]"):
        Solver(LinearSoftmax(), blobs(), update_rule="sgd", optim_config={"lr": 0.5}, verbose=False)
    with pytest.warns(UserWarning, match=r"'adam' does not read optim_config \['momentum'\]"):
        Solver(LinearSoftmax(), blobs(), update_rule="adam", optim_config={"momentum": 0.9, "beta1": 0.8},
               verbose=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Solver(LinearSoftmax(), blobs(), update_rule="rmsprop", verbose=False,
               optim_config={"learning_rate": 1e-3, "decay_rate": 0.9, "epsilon": 1e-7, "cache": np.zeros(1)})
        Solver(LinearSoftmax(), blobs(), update_rule=lambda w, dw, config: (w, config), optim_config={"lr": 1},
               verbose=False)  # a rule of the user's own: its keys are its own


def test_print_every_as_the_notebooks_float_1e2(capsys):
    """The starter's `t % print_every` takes print_every=1e2, which some notebook cells pass."""
    solver = Solver(LinearSoftmax(), blobs(), num_epochs=4, batch_size=1, print_every=1e2, seed=0,
                    progress_bar=False)
    assert solver.print_every == 100 and isinstance(solver.print_every, int)
    solver.train()
    iterations = [line for line in capsys.readouterr().out.splitlines() if line.startswith("(Iteration")]
    assert [line.split()[1] for line in iterations] == ["1", "101", "201"]


def test_a_rule_of_the_users_own_gets_the_gradients_as_the_model_gives_them():
    """The shape and dtype checks are the built-in rules' own; a custom rule may take, say, float64 gradients of
    float32 params."""
    class Float64Gradients(LinearSoftmax):
        def loss(self, X, y=None):
            result = super().loss(X, y)
            return result if y is None else (result[0], {k: v.astype(np.float64) for k, v in result[1].items()})

    model = Float64Gradients()
    model.params = {k: v.astype(np.float32) for k, v in model.params.items()}
    seen = []

    def rule(w, dw, config):
        seen.append((w.dtype, dw.dtype))
        return (w - 0.1 * dw).astype(w.dtype), config

    Solver(model, blobs(), update_rule=rule, num_epochs=1, verbose=False, seed=0).train()
    assert set(seen) == {(np.dtype(np.float32), np.dtype(np.float64))}


@pytest.mark.parametrize("model", [None, object(), type("NoLoss", (), {"params": {}})()])
def test_something_that_is_no_model_is_refused_by_the_constructor(model):
    with pytest.raises(TypeError, match=r"Solver: model must have a params dict and a loss\(X, y=None\) method"):
        Solver(model, blobs())


def _broken(model, train=None, scores=None):
    loss = model.loss
    model.loss = lambda X, y=None: (scores(loss(X)) if scores else loss(X)) if y is None else (
        train(loss(X, y)) if train else loss(X, y))
    return model


@pytest.mark.parametrize("broken, error, message", [
    (dict(train=lambda result: result[0]), TypeError, r"model.loss\(X, y\) must return \(loss, grads\), got float"),
    (dict(train=lambda result: ("x", result[1])), TypeError, r"model.loss\(X, y\) must return a number as its loss"),
    (dict(scores=lambda s: s[:, 0]), ValueError, r"Solver.check_accuracy: model.loss\(X\) must return scores of "
                                                 r"shape \(N, C\) for X of N = \d+ rows, got \(\d+,\)"),
    (dict(rule=lambda w, dw, config: (w - dw, config) if w.ndim == 2 else None),  # W updated, then b's fails
     TypeError, r"the update rule '<lambda>' must return \(next_w, config\), got NoneType for 'b'"),
])
def test_a_model_or_rule_that_breaks_the_api_is_named_and_changes_no_parameter(broken, error, message):
    """A loss returning a bare float, 1-D scores or a rule returning None ended in an unpacking TypeError or a
    numpy AxisError that named neither the Solver nor the model; a rule (other than sgd, which updates in place)
    failing on the second parameter had already set the first."""
    rule = broken.pop("rule", "sgd")
    model = _broken(LinearSoftmax(), **broken)
    before = {k: v.copy() for k, v in model.params.items()}
    solver = Solver(model, blobs(), update_rule=rule, num_epochs=1, batch_size=10, verbose=False)
    with pytest.raises(error, match=message):
        solver.check_accuracy(solver.X_val, solver.y_val) if "scores" in broken else solver.train()
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])


def test_a_built_in_rule_failing_on_a_later_param_leaves_the_earlier_ones_and_their_state_alone():
    """adam wrote t, m and v into W's config in place, so b's refused learning rate left W's optimizer state one
    step ahead of its weights."""
    model = LinearSoftmax()
    solver = Solver(model, blobs(), update_rule="adam", num_epochs=1, batch_size=10, verbose=False)
    solver.optim_configs["b"]["learning_rate"] = -1.0
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"adam: config\['learning_rate'\] must be >= 0.0, got -1.0"):
        solver.train()
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])
    assert "t" not in solver.optim_configs["W"] and "m" not in solver.optim_configs["W"]


class StartersStep(Solver):
    """A subclass with the starter's _step body, which returns None."""

    def _step(self):
        num_train = self.X_train.shape[0]
        batch_mask = np.random.choice(num_train, self.batch_size)
        loss, grads = self.model.loss(self.X_train[batch_mask], self.y_train[batch_mask])
        self.loss_history.append(loss)
        for p, w in self.model.params.items():
            next_w, next_config = self.update_rule(w, grads[p], self.optim_configs[p])
            self.model.params[p] = next_w
            self.optim_configs[p] = next_config


def test_a_subclass_with_the_starters_step_trains():
    """train() took _step's None for a diverged loss and raised FloatingPointError at iteration 1."""
    solver = StartersStep(LinearSoftmax(), blobs(), num_epochs=2, batch_size=20, verbose=False)
    solver.train()
    assert len(solver.loss_history) == 6 and solver.loss_history[-1] < solver.loss_history[0]


def test_a_subclass_with_the_starters_step_still_stops_on_a_nan_loss():
    model = LinearSoftmax(scale=np.nan)
    with pytest.raises(FloatingPointError, match=r"the loss is nan at iteration 1"):
        StartersStep(model, blobs(), num_epochs=1, verbose=False).train()


def test_save_checkpoint_takes_the_starters_arguments(tmp_path):
    """_save_checkpoint(self) as in the starter: a subclass overriding it, or a direct call, once met a TypeError."""
    saved = []

    class Counting(Solver):
        def _save_checkpoint(self):
            saved.append(self.epoch)
            super()._save_checkpoint()

    solver = Counting(LinearSoftmax(), blobs(), num_epochs=2, batch_size=20, verbose=False,
                      checkpoint_name=str(tmp_path / "run"))
    solver.train()
    assert saved == [0, 1, 2] and (tmp_path / "run_epoch_2.npz").exists()
    solver._save_checkpoint()
    resumed = Solver(LinearSoftmax(), blobs(), verbose=False)
    resumed.restore(str(tmp_path / "run_epoch_2.npz"))
    assert resumed.loss_history == solver.loss_history


def test_check_accuracy_takes_labels_as_a_list_as_the_starter_did():
    data = blobs()
    solver = Solver(LinearSoftmax(), data, verbose=False)
    assert solver.check_accuracy(data["X_val"], data["y_val"].tolist()) == solver.check_accuracy(data["X_val"],
                                                                                              data["y_val"])


def test_arguments_lists_every_keyword_the_solver_takes():
    """solver.ARGUMENTS (which fastnn.tune checks solver_kwargs against) must not drift from Solver.__init__."""
    import inspect
    import re

    from fastnn import solver

    popped = re.findall(r'kwargs\.pop\("(\w+)"', inspect.getsource(solver.Solver.__init__))
    assert sorted(popped) == sorted(solver.ARGUMENTS)


def test_a_0d_learning_rate_decays_once_per_epoch_for_each_param_and_the_callers_config_keeps_it(tmp_path):
    """Each param's config shared the caller's 0-d learning rate, which `*= lr_decay` scaled in place: once per
    param per epoch (0.5**4 after two epochs of two params, not 0.5**2), in the caller's dict too; a 0-d integer
    rate raised at the first decay; a checkpoint of such a run refused to resume (a 0-d array read as state)."""
    user_config = {"learning_rate": np.array(1e-2)}
    solver = Solver(LinearSoftmax(), blobs(), update_rule="sgd", optim_config=user_config, lr_decay=0.5,
                    lr_multipliers={"W": 10}, num_epochs=2, batch_size=20, verbose=False, seed=0,
                    checkpoint_name=str(tmp_path / "run"))
    solver.train()
    assert user_config["learning_rate"] == 1e-2
    assert np.isclose(solver.optim_configs["b"]["learning_rate"], 1e-2 * 0.25)
    assert np.isclose(solver.optim_configs["W"]["learning_rate"], 1e-1 * 0.25)
    resumed = Solver(LinearSoftmax(), blobs(), update_rule="sgd", optim_config={"learning_rate": np.array(1e-2)},
                     lr_decay=0.5, num_epochs=3, batch_size=20, verbose=False, seed=0)
    resumed.resume(str(tmp_path / "run_epoch_2.npz"))
    Solver(LinearSoftmax(), blobs(), optim_config={"learning_rate": np.array(1)}, lr_decay=0.5, num_epochs=2,
           batch_size=20, verbose=False, seed=0).train()


def test_the_solver_takes_big_endian_params_and_refuses_timedelta_and_masked_out_of_range_labels():
    model = LinearSoftmax()
    model.params = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in model.params.items()}
    Solver(model, blobs(), update_rule="adam", num_epochs=1, batch_size=20, verbose=False, seed=0).train()
    data = blobs()
    with pytest.raises(TypeError, match=r"Solver: y_val must be a numpy.ndarray of integer class labels"):
        Solver(LinearSoftmax(), {**data, "y_val": data["y_val"].astype("m8[s]")})
    masked = np.ma.MaskedArray(data["y_val"], mask=np.arange(30) == 0)
    masked.data[0] = -5
    with pytest.raises(ValueError, match=r"Solver: y_val must hold class labels >= 0, got -5"):
        Solver(LinearSoftmax(), {**data, "y_val": masked})


def test_rules_that_keep_no_step_count_leave_t_alone():
    """Every rule checked config['t'], which only Adam reads (the Solver warns that the others ignore it)."""
    for rule in ("sgd", "sgd_momentum", "nesterov", "adagrad", "rmsprop"):
        _, config = getattr(optim, rule)(np.ones(2), np.ones(2), {"t": 1.5})
        assert config["t"] == 1.5


def _scheduled(w, dw, config=None):
    """A rule of the user's own whose config holds an array of another shape than the param's."""
    config = {"schedule": np.array([0.5, 0.1, 0.1]), "step": 0} if config is None else config
    rate = config["schedule"][min(config["step"], 2)]
    config["step"] += 1
    return w - rate * dw, config


def test_a_rule_of_ones_own_with_arrays_in_its_config_resumes(tmp_path):
    """Its checkpoints were refused by its own restore: each config array was held to the param's shape."""
    name = str(tmp_path / "run")
    kwargs = dict(update_rule=_scheduled, optim_config={"schedule": np.array([0.5, 0.1, 0.1]), "step": 0},
                  batch_size=10, verbose=False, seed=0)
    whole = Solver(LinearSoftmax(), blobs(), num_epochs=2, checkpoint_name=name, **kwargs)
    whole.train()
    resumed = Solver(LinearSoftmax(), blobs(), num_epochs=2, **kwargs).resume(name + "_epoch_1.npz")
    assert resumed.loss_history == whole.loss_history
    with pytest.raises(ValueError, match=r"Solver.restore: .*run_epoch_1.npz' was written with the update rule "
                                         r"'_scheduled', not one of fastnn.optim's: pass that function"):
        Solver(LinearSoftmax(), blobs(), num_epochs=2, verbose=False).restore(name + "_epoch_1.npz")


def test_a_checkpoint_of_another_epoch_length_is_refused(tmp_path):
    """Restored beside 1200 samples, a run written with 60 counted its epochs in 6 iterations and went on to
    'Epoch 5 / 3', its learning-rate decay and checkpoint names parting from its iterations."""
    name = str(tmp_path / "run")
    kwargs = dict(update_rule="sgd", optim_config={"learning_rate": 0.5}, batch_size=10, verbose=False, seed=0)
    Solver(LinearSoftmax(), blobs(), num_epochs=1, checkpoint_name=name, **kwargs).train()
    model = LinearSoftmax()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"was written for a training set of 60 samples, 6 iterations an epoch; "
                                         r"this Solver's X_train has 120, 12"):
        Solver(model, blobs(n_train=120), num_epochs=2, **kwargs).restore(name + "_epoch_1.npz")
    assert all(np.array_equal(model.params[k], before[k]) for k in before)
    resumed = Solver(LinearSoftmax(), blobs(n_train=65), num_epochs=2, **kwargs).resume(name + "_epoch_1.npz")
    assert resumed.epoch == 2  # 65 samples are 6 iterations an epoch too


def test_settings_found_only_after_an_update_are_refused_by_the_constructor(tmp_path):
    """A function in optim_config was found when the first checkpoint was written, after updates had changed the
    caller's params; lr_multipliers with a rule of one's own that sets no learning_rate raised a bare KeyError."""
    model = LinearSoftmax()
    before = {k: v.copy() for k, v in model.params.items()}
    data = blobs()
    with pytest.raises(TypeError, match=r"Solver: with checkpoint_name, optim_config\['schedule'\] is a function"):
        Solver(model, data, optim_config={"learning_rate": 0.1, "schedule": _scheduled},
               checkpoint_name=str(tmp_path / "run"), verbose=False)
    with pytest.raises(TypeError, match=r"Solver: with checkpoint_name, .*longdouble"):  # .item() keeps numpy's type
        Solver(model, data, optim_config={"learning_rate": np.longdouble(0.1)}, checkpoint_name=str(tmp_path / "r"),
               verbose=False)
    with pytest.raises(ValueError, match=r"Solver: lr_multipliers\['W'\] scales optim_config's learning_rate, "
                                         r"which the update rule sets no default for: give one \(KeyError"):
        Solver(model, data, update_rule=_scheduled, lr_multipliers={"W": 2.0}, verbose=False)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)
    assert not os.listdir(tmp_path)


def test_lr_multipliers_take_the_default_rate_of_a_rule_of_ones_own():
    """A starter-style rule that sets its default learning_rate is called on a dummy for it, as the built-in ones."""
    def my_sgd(w, dw, config=None):
        config = {} if config is None else config
        config.setdefault("learning_rate", 1e-2)
        return w - config["learning_rate"] * dw, config

    solver = Solver(LinearSoftmax(), blobs(), update_rule=my_sgd, lr_multipliers={"W": 0.1}, verbose=False)
    assert solver.optim_configs["W"]["learning_rate"] == pytest.approx(1e-3) and "learning_rate" not in \
        solver.optim_configs["b"]


def _momentum_in_float64(w, dw, config=None):
    """A student's sgd_momentum whose rate is a NumPy float64 (from np.logspace): float32 w comes back float64."""
    config = {} if config is None else config
    config.setdefault("velocity", np.zeros_like(w))
    v = 0.9 * config["velocity"] - np.logspace(-2, -1, 3)[0] * dw
    config["velocity"] = v
    return w + v, config


def test_a_rule_of_ones_own_that_returns_another_float_dtype_is_cast_back_with_a_warning():
    """The float32 model then refused its own float64 params at the first accuracy check, blaming the params."""
    from fastnn.classifiers.fc_net import FullyConnectedNet

    data = {k: v.astype(np.float32) if k.startswith("X") else v for k, v in blobs().items()}
    model = FullyConnectedNet([8], input_dim=4, num_classes=3, dtype=np.float32, seed=0)
    solver = Solver(model, data, update_rule=_momentum_in_float64, num_epochs=2, batch_size=10, verbose=False)
    with pytest.warns(RuntimeWarning, match=r"Solver: the update rule '_momentum_in_float64' returned float64 for "
                                            r"the float32 param '(W|b)\d' .* cast back .* \(warned once\)") as caught:
        solver.train()
    cast = [w for w in caught if "cast back" in str(w.message)]
    assert len(cast) == 1 and cast[0].filename == __file__  # the caller's train(), on every Python version
    assert all(p.dtype == np.float32 for p in model.params.values()) and solver.best_val_acc > 0


@pytest.mark.parametrize("returned, error, message", [
    (lambda w: w[:1], ValueError, r"returned next_w of shape \(1, 3\) and dtype float64 for 'W', whose value is of "
                                  r"shape \(4, 3\) and dtype float64; it must be an array of that shape"),
    (lambda w: w.tolist(), TypeError, r"returned next_w of type list for 'W'"),
    (lambda w: w.astype(np.complex128), TypeError, r"returned next_w of dtype complex128 for 'W'"),
])
def test_a_rule_of_ones_own_that_returns_no_array_of_the_params_shape_is_named_before_any_change(returned, error,
                                                                                                message):
    model = LinearSoftmax()
    before = {k: v.copy() for k, v in model.params.items()}

    def rule(w, dw, config=None):
        return (returned(w) if w.shape == (4, 3) else w - 0.1 * dw), config or {}

    solver = Solver(model, blobs(), update_rule=rule, num_epochs=1, batch_size=10, verbose=False)
    with pytest.raises(error, match=r"Solver: the update rule 'rule' " + message):
        solver.train()
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


def test_a_resumed_run_keeps_the_params_its_checkpoint_froze(tmp_path):
    """freeze= was not in the checkpoint: resumed by a Solver built without it, the run trained W."""
    name = str(tmp_path / "run")
    kwargs = dict(update_rule="sgd", optim_config={"learning_rate": 0.5}, batch_size=10, verbose=False, seed=0)
    straight = Solver(LinearSoftmax(), blobs(), num_epochs=3, freeze=["W"], **kwargs)
    straight.train()
    Solver(LinearSoftmax(), blobs(), num_epochs=1, freeze=["W"], checkpoint_name=name, **kwargs).train()
    resumed = Solver(LinearSoftmax(), blobs(), num_epochs=3, **kwargs).resume(name + "_epoch_1.npz")
    np.testing.assert_array_equal(resumed.model.params["W"], LinearSoftmax().params["W"])
    assert resumed.loss_history == straight.loss_history and resumed.freeze == ["W"]


def test_a_checkpoint_of_a_model_with_another_normalization_is_refused(tmp_path):
    from fastnn.classifiers.fc_net import FullyConnectedNet

    name = str(tmp_path / "run")
    kwargs = dict(update_rule="sgd", optim_config={"learning_rate": 0.1}, batch_size=10, verbose=False, seed=0)

    def net(normalization):
        return FullyConnectedNet([8], input_dim=4, num_classes=3, normalization=normalization, seed=0)

    Solver(net("layernorm"), blobs(), num_epochs=1, checkpoint_name=name, **kwargs).train()
    model = net("batchnorm")
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"Solver.restore: .*run_epoch_1.npz' was written by a model with "
                                         r"normalization='layernorm'; this one has normalization='batchnorm'"):
        Solver(model, blobs(), num_epochs=2, **kwargs).resume(name + "_epoch_1.npz")
    assert all(np.array_equal(model.params[k], before[k]) for k in before) and "running_mean" not in model.bn_params[0]
