import re

import numpy as np
import pytest

from fastnn.checkpoint import save_checkpoint
from fastnn.classifiers.cnn import ConvNet, ThreeLayerConvNet
from fastnn.classifiers.fc_net import FullyConnectedNet
from fastnn.solver import Solver
from fastnn.transfer import load_params, select


def _data(n=40, shape=(1, 8, 8), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n,) + shape)
    y = rng.integers(0, classes, n)
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


@pytest.fixture(autouse=True)
def _reference(reference_backend):
    yield


def test_frozen_params_are_bit_identical_after_training():
    np.random.seed(0)
    model = ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=4, filter_size=3, hidden_dim=10, num_classes=4,
                              weight_scale=1e-2, dtype=np.float64)
    before = {k: v.copy() for k, v in model.params.items()}
    solver = Solver(model, _data(), update_rule="adam", num_epochs=2, batch_size=10, verbose=False, seed=0,
                    freeze=["conv"])
    solver.train()
    for name in ("W1", "b1"):
        np.testing.assert_array_equal(model.params[name], before[name])
    assert not np.array_equal(model.params["W2"], before["W2"])


def test_fine_tuned_model_starts_from_the_loaded_weights(tmp_path):
    np.random.seed(1)
    source = FullyConnectedNet([6, 5], input_dim=64, num_classes=4, dtype=np.float64)
    path = tmp_path / "source.npz"
    save_checkpoint(path, {"params": source.params})
    np.random.seed(2)
    target = FullyConnectedNet([6, 7], input_dim=64, num_classes=4, dtype=np.float32)
    report = load_params(target, path)
    assert report.loaded == ["W1", "b1", "b3"] and [s[0] for s in report.skipped] == ["W2", "b2", "W3"]
    assert report.missing == [] and report.unused == []
    np.testing.assert_array_equal(target.params["W1"], source.params["W1"].astype(np.float32))
    assert target.params["W1"].dtype == np.float32
    assert "skipped" in str(report)


def test_missing_and_unused_names_are_reported():
    np.random.seed(0)
    model = FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="batchnorm", dtype=np.float64)
    report = load_params(model, {"W1": np.ones((6, 5)), "extra": np.zeros(2)})
    assert report.loaded == ["W1"] and "gamma1" in report.missing and report.unused == ["extra"]


def test_a_group_takes_an_unnumbered_weight_alone():
    """Unnumbered names all had the layer number None: one unnumbered filter bank made 'conv' take every
    unnumbered param, the affine weight and both biases among them."""
    params = {"W_conv": np.ones((2, 1, 3, 3)), "b_conv": np.ones(2), "W_fc": np.ones((4, 2)), "b_fc": np.ones(2),
              "W1": np.ones((2, 2, 3, 3)), "b1": np.ones(2), "W2": np.ones((3, 2)), "b2": np.ones(2)}
    assert select(params, ["conv"]) == {"W_conv", "W1", "b1"}
    assert select(params, ["affine"]) == {"W_fc", "W2", "b2"}


def test_select_patterns_and_errors():
    np.random.seed(0)
    model = ConvNet(input_dim=(1, 8, 8), num_filters=(4, 4), hidden_dims=(5,), num_classes=3,
                    normalization="batchnorm", dtype=np.float64)
    conv = select(model.params, ["conv"])
    assert conv == {"W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2"}
    assert select(model.params, ["affine"]) == set(model.params) - conv
    assert select(model.params, ["b"]) == {n for n in model.params if re.fullmatch(r"b\d+", n)}
    assert select(model.params, ["beta"]) == {n for n in model.params if n.startswith("beta")}
    with pytest.raises(ValueError, match="names no parameter"):
        select(model.params, ["encoder"])
    with pytest.raises(ValueError, match="freeze"):
        Solver(model, _data(shape=(1, 8, 8), classes=3), freeze=["encoder"], verbose=False)
    with pytest.raises(ValueError, match="names every parameter of the model; nothing would train"):
        Solver(model, _data(shape=(1, 8, 8), classes=3), freeze=["conv", "affine"], verbose=False)


def test_a_name_never_selects_the_params_whose_layer_number_it_begins():
    """freeze=['W1'] on a net of 11 layers once froze W1, W10 and W11 (a prefix match through the number)."""
    np.random.seed(0)
    model = FullyConnectedNet([4] * 10, input_dim=6, num_classes=3, normalization="batchnorm", dtype=np.float64)
    assert select(model.params, ["W1"]) == {"W1"}
    assert select(model.params, ["b1"]) == {"b1"}
    assert select(model.params, ["gamma1"]) == {"gamma1"}
    assert select(model.params, ["W"]) == {f"W{i}" for i in range(1, 12)}
    assert select(model.params, ["gamma"]) == {f"gamma{i}" for i in range(1, 11)}
    assert select(model.params, ["b"]) == {f"b{i}" for i in range(1, 12)}  # the biases, never beta1 as well
    custom = {"conv1_W": 0, "conv1_b": 0, "conv10_W": 0, "bias": 0}
    assert select(custom, ["conv1"]) == {"conv1_W", "conv1_b"}
    assert select(custom, ["conv1_"]) == {"conv1_W", "conv1_b"}
    with pytest.raises(ValueError, match="names no parameter"):
        select(custom, ["bi"])
    data = _data(shape=(6,), classes=3)
    before = {k: v.copy() for k, v in model.params.items()}
    Solver(model, data, freeze=["W1"], num_epochs=1, batch_size=4, verbose=False).train()
    assert np.array_equal(model.params["W1"], before["W1"])
    assert not np.array_equal(model.params["W10"], before["W10"])


def test_lr_multiplier_slows_a_group():
    def run(multipliers):
        np.random.seed(0)
        model = FullyConnectedNet([5], input_dim=64, num_classes=4, dtype=np.float64)
        start = {k: v.copy() for k, v in model.params.items()}
        Solver(model, _data(shape=(64,)), update_rule="sgd", optim_config={"learning_rate": 0.1}, num_epochs=1,
               batch_size=10, verbose=False, seed=0, lr_multipliers=multipliers).train()
        return {k: np.abs(model.params[k] - start[k]).max() for k in start}

    plain, slowed = run(None), run({"W1": 0.0001})
    assert slowed["W1"] < plain["W1"] * 0.01
    with pytest.raises(ValueError, match="lr_multipliers"):
        run({"W1": -1})


def test_train_command_fine_tunes_with_frozen_conv(tmp_path, capsys):
    from fastnn.checkpoint import load_checkpoint
    from fastnn.cli import main

    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--epochs", "1", "--quiet", "--backend", "reference"]
    assert main(["train", *common, "--out", str(first)]) == 0
    start = load_checkpoint(first / "checkpoint_epoch_1.npz")["params"]
    assert main(["train", *common, "--out", str(second), "--init-from", str(first / "checkpoint_epoch_1.npz"),
                 "--freeze", "conv", "--seed", "3"]) == 0
    assert "loaded 6 param(s)" in capsys.readouterr().out
    tuned = load_checkpoint(second / "checkpoint_epoch_1.npz")["params"]
    np.testing.assert_array_equal(tuned["W1"], start["W1"])
    np.testing.assert_array_equal(tuned["b1"], start["b1"])
    assert not np.array_equal(tuned["W3"], start["W3"])


def test_params_with_nan_or_inf_are_refused_and_nothing_is_loaded():
    """The checkpoint of a diverged run loaded, and the run then diverged at its first step with advice about
    --lr and --reg."""
    np.random.seed(0)
    model = FullyConnectedNet([5], input_dim=6, num_classes=3, dtype=np.float32)
    before = {k: v.copy() for k, v in model.params.items()}
    bad_w2 = np.ones((5, 3))
    bad_w2[0, 0] = np.nan
    too_large = np.full(5, 1e300)  # finite in float64, Inf in the model's float32
    with pytest.raises(ValueError, match=r"load_params: b1, W2 hold NaN or Inf values .*; nothing was loaded"):
        load_params(model, {"W1": np.ones((6, 5)), "b1": too_large, "W2": bad_w2})
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, before[k])


def test_a_checkpoints_batchnorm_statistics_load_with_its_params(tmp_path):
    """load_params took the params and left the running statistics: the loaded model's test-mode scores used
    none (running_var 0), [-0.41, -0.03, 0.22] against the checkpoint model's [-0.09, -0.01, 0.06]."""
    data = _data(n=40, shape=(5,), classes=3)
    np.random.seed(0)
    trained = FullyConnectedNet([8, 6], input_dim=5, num_classes=3, normalization="batchnorm", dtype=np.float64)
    Solver(trained, data, num_epochs=2, batch_size=10, verbose=False, seed=0,
           checkpoint_name=str(tmp_path / "run")).train()
    checkpoint = tmp_path / "run_epoch_2.npz"
    from fastnn.checkpoint import load_checkpoint

    saved = load_checkpoint(checkpoint)
    trained.params = saved["params"]
    for bn_param, state in zip(trained.bn_params, saved["model_state"]["bn_params"]):
        bn_param.update(state)
    fresh = FullyConnectedNet([8, 6], input_dim=5, num_classes=3, normalization="batchnorm", dtype=np.float32)
    report = load_params(fresh, checkpoint)
    assert report.statistics == [1, 2] and "running statistics of layer(s) 1, 2" in str(report)
    assert fresh.bn_params[0]["running_var"].dtype == np.float32
    np.testing.assert_allclose(fresh.loss(data["X_val"].astype(np.float32)), trained.loss(data["X_val"]),
                               rtol=1e-4, atol=1e-5)
    # a source with params only (a dict) loads no statistics, and says which layers kept their own
    other = FullyConnectedNet([8, 6], input_dim=5, num_classes=3, normalization="batchnorm", dtype=np.float64)
    report = load_params(other, dict(saved["params"]))
    assert report.statistics == [] and report.statistics_kept == [1, 2] and "kept as the model had them" in str(report)
    assert "running_mean" not in other.bn_params[0]


def test_a_model_save_file_and_a_plain_npz_load_as_sources(tmp_path, monkeypatch):
    """A file of model.save() was refused as "not an .npz archive: truncated", an np.savez of the params with
    the message "('__header__')"."""
    monkeypatch.chdir(tmp_path)
    np.random.seed(2)
    source = FullyConnectedNet([4], input_dim=6, num_classes=3, dtype=np.float64)
    source.save("saved")
    np.savez(tmp_path / "plain.npz", **source.params)
    for path in (tmp_path / "saved.npy", tmp_path / "plain.npz"):
        target = FullyConnectedNet([4], input_dim=6, num_classes=3, dtype=np.float64)
        assert sorted(load_params(target, path).loaded) == sorted(source.params)
        for name, value in source.params.items():
            np.testing.assert_array_equal(target.params[name], value)
    from fastnn.checkpoint import load_checkpoint

    with pytest.raises(ValueError, match="no __header__ member: an .npz of other arrays"):
        load_checkpoint(tmp_path / "plain.npz")
    np.savez(tmp_path / "objects.npz", W1=np.array([None, 1], dtype=object))  # pickled: never unpickled here
    with pytest.raises(ValueError, match="load_params: .*objects.npz' is not a readable .npz of arrays"):
        load_params(target, tmp_path / "objects.npz")


def test_a_file_model_save_put_in_cs231n_saved_loads_by_the_name_given_to_save(tmp_path, monkeypatch):
    """With cs231n/saved/ in the working directory, save('net.npy') writes there; load_params(model, 'net.npy')
    looked in the working directory alone and said "load_checkpoint: no checkpoint at 'net.npy'"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cs231n" / "saved").mkdir(parents=True)
    source = FullyConnectedNet([4], input_dim=6, num_classes=3, dtype=np.float64)
    source.save("net.npy")
    target = FullyConnectedNet([4], input_dim=6, num_classes=3, dtype=np.float64)
    assert sorted(load_params(target, "net.npy").loaded) == sorted(source.params)
    np.testing.assert_array_equal(target.params["W1"], source.params["W1"])
    with pytest.raises(FileNotFoundError, match=r"load_params: no file at 'other.npy' \(a fastnn checkpoint"):
        load_params(target, "other.npy")
    (tmp_path / "truncated.npz").write_bytes(b"PK\x03\x04 and no more")
    with pytest.raises(ValueError, match=r"^load_params: .*truncated.npz"):
        load_params(target, "truncated.npz")


def test_a_checkpoint_with_a_negative_running_variance_is_refused(tmp_path):
    from fastnn.checkpoint import load_checkpoint, save_checkpoint

    data = _data(n=20, shape=(5,), classes=3)
    model = FullyConnectedNet([6], input_dim=5, num_classes=3, normalization="batchnorm", dtype=np.float64)
    Solver(model, data, num_epochs=1, batch_size=10, verbose=False, seed=0,
           checkpoint_name=str(tmp_path / "run")).train()
    state = load_checkpoint(tmp_path / "run_epoch_1.npz")
    state["model_state"]["bn_params"][0]["running_var"][0] = -1.0
    save_checkpoint(tmp_path / "tampered.npz", state)
    fresh = FullyConnectedNet([6], input_dim=5, num_classes=3, normalization="batchnorm", dtype=np.float64)
    before = dict(fresh.params)
    with pytest.raises(ValueError, match=r"load_params: the running variance of batchnorm layer\(s\) 1 holds "
                                         r"negative values.*nothing was loaded"):
        load_params(fresh, tmp_path / "tampered.npz")
    assert all(fresh.params[k] is v for k, v in before.items()) and "running_var" not in fresh.bn_params[0]
    solver = Solver(fresh, data, num_epochs=2, batch_size=10, verbose=False)
    with pytest.raises(ValueError, match=r"Solver.restore: .* holds bn_params\[0\]\['running_var'\] with negative"):
        solver.restore(tmp_path / "tampered.npz")


def test_params_that_are_not_real_numbers_or_keys_that_are_not_names():
    model = FullyConnectedNet([4], input_dim=6, num_classes=3, dtype=np.float64)
    before = {k: v.copy() for k, v in model.params.items()}
    for bad in (model.params["W1"] + 1j, np.array([None] * 24, dtype=object).reshape(6, 4)):
        with pytest.raises(ValueError, match=r"load_params: W1 holds (complex128|object) values, not real numbers"):
            load_params(model, {"W1": bad, "b1": np.ones(4)})
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)
    report = load_params(model, {"b1": np.ones(4), 7: np.ones(2)})
    assert report.unused == ["7"] and "in the checkpoint but not in the model: 7" in str(report)


class IntegerModel:
    def __init__(self):
        self.params = {"W": np.zeros(2, np.int64), "step": np.zeros((), np.int64)}


@pytest.mark.parametrize("value", [np.array([1.7, 1.0]), np.array([1e30, 1.0])])
def test_values_an_integer_param_cannot_hold_are_refused_and_nothing_loads(value):
    model = IntegerModel()
    with pytest.raises(ValueError, match=r"load_params: W holds values that the model's int64 cannot hold exactly"):
        load_params(model, {"W": value, "step": np.array(3.0)})
    assert model.params["step"] == 0
    assert load_params(model, {"W": np.array([2.0, -1.0])}).loaded == ["W"]
    np.testing.assert_array_equal(model.params["W"], [2, -1])


@pytest.mark.parametrize("model, source, error, message", [
    (None, {}, TypeError, r"load_params: model must have a params dict of numpy arrays, got NoneType"),
    (IntegerModel(), 5, TypeError, r"load_params: source must be a dict of arrays or a path, got int"),
    (IntegerModel(), {"W": [[1], [1, 2]]}, ValueError, r"load_params: W is not an array"),
])
def test_load_params_names_bad_arguments(model, source, error, message):
    with pytest.raises(error, match=message):
        load_params(model, source)


@pytest.mark.parametrize("params, patterns, error, message", [
    ({"W1": 1}, None, TypeError, r"select: pattern must be a str or a list of str, got NoneType"),
    ({"W1": 1}, b"W1", TypeError, r"select: pattern must be a str or a list of str, got bytes"),
    ({1: 1}, "W", TypeError, r"select: params must be a dict keyed by param names \(str\)"),
    ({"W1": 1}, "X", ValueError, r"select: pattern 'X' names no parameter"),
])
def test_select_names_itself_and_bad_arguments(params, patterns, error, message):
    with pytest.raises(error, match=message):
        select(params, patterns)


def test_a_damaged_compressed_npz_is_a_value_error_naming_the_function(tmp_path):
    """One byte changed in a member's deflate stream: mostly a bad CRC (BadZipFile), sometimes zlib.error, which
    escaped load_params and load_checkpoint."""
    import struct
    import zipfile

    from fastnn.checkpoint import load_checkpoint

    model = FullyConnectedNet([20], input_dim=30, num_classes=5)
    good, damaged = tmp_path / "params.npz", tmp_path / "damaged.npz"
    g = np.random.default_rng(0)
    np.savez_compressed(good, **{name: g.standard_normal(p.shape) for name, p in model.params.items()})
    raw = good.read_bytes()
    info = zipfile.ZipFile(good).getinfo("W1.npy")
    name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    stream = info.header_offset + 30 + name_length + extra_length
    before = {name: p.copy() for name, p in model.params.items()}
    for offset in range(100, 4000, 37):
        changed = bytearray(raw)
        changed[stream + offset] ^= 0x55
        damaged.write_bytes(bytes(changed))
        with pytest.raises(ValueError, match=r"load_params: .*damaged.npz"):
            load_params(model, damaged)
        with pytest.raises(ValueError, match=r"load_checkpoint: .*damaged.npz"):
            load_checkpoint(damaged)
    assert all(np.array_equal(model.params[name], p) for name, p in before.items())
