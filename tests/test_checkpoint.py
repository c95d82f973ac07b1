"""Checkpoints: pickle-free round trip, atomic writes, clear errors on bad files, exact resume of a Solver."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from fastnn import checkpoint
from fastnn.checkpoint import load_checkpoint, save_checkpoint
from fastnn.solver import Solver


class TwoLayerSoftmax:
    """A small NumPy model (affine - relu - affine - softmax) with a bn_params list to carry along."""

    def __init__(self, D=4, H=8, C=3, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": 0.3 * rng.standard_normal((D, H)), "b1": np.zeros(H),
                       "W2": 0.3 * rng.standard_normal((H, C)), "b2": np.zeros(C)}
        self.bn_params = [{"mode": "train"}]

    def loss(self, X, y=None):
        p = self.params
        h = np.maximum(X @ p["W1"] + p["b1"], 0)
        scores = h @ p["W2"] + p["b2"]
        self.bn_params[0]["running_mean"] = h.mean(axis=0)  # some state outside params
        if y is None:
            return scores
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        N = X.shape[0]
        loss = -np.mean(np.log(probs[np.arange(N), y]))
        d = probs
        d[np.arange(N), y] -= 1
        d /= N
        dh = (d @ p["W2"].T) * (h > 0)
        return loss, {"W1": X.T @ dh, "b1": dh.sum(0), "W2": h.T @ d, "b2": d.sum(0)}


def blobs(seed=0, n=60, D=4, C=3):
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((C, D))
    y = rng.integers(0, C, 2 * n)
    X = centres[y] + rng.standard_normal((2 * n, D))
    return {"X_train": X[:n], "y_train": y[:n], "X_val": X[n:], "y_val": y[n:]}


def test_round_trip_keeps_arrays_dtypes_and_json_values(tmp_path):
    state = {
        "params": {"W1": np.arange(6, dtype=np.float32).reshape(2, 3), "b1": np.zeros(3)},
        "optim_configs": {"W1": {"m": np.ones((2, 3), np.float32), "t": 3, "learning_rate": 1e-3}},
        "loss_history": [2.302585092994046, 1.0000000000000002],
        "num_val_samples": None,
        "update_rule": "adam",
        "rng_state": {"bit_generator": "PCG64", "state": {"state": 2**127 + 12345, "inc": 7}},
        "global_rng_state": ["MT19937", np.arange(4, dtype=np.uint32), 2, 0, 0.0],
        "scalar": np.float64(0.25),
    }
    path = save_checkpoint(tmp_path / "c.npz", state)
    loaded = load_checkpoint(path)
    np.testing.assert_array_equal(loaded["params"]["W1"], state["params"]["W1"])
    assert loaded["params"]["W1"].dtype == np.float32 and loaded["params"]["b1"].dtype == np.float64
    assert loaded["optim_configs"]["W1"]["t"] == 3
    assert loaded["optim_configs"]["W1"]["m"].dtype == np.float32
    assert loaded["loss_history"] == state["loss_history"]  # floats survive JSON exactly
    assert loaded["num_val_samples"] is None and loaded["update_rule"] == "adam"
    assert loaded["rng_state"]["state"]["state"] == 2**127 + 12345
    assert loaded["global_rng_state"][0] == "MT19937"
    assert loaded["global_rng_state"][1].dtype == np.uint32
    assert loaded["scalar"] == 0.25
    # the file is a plain npz that NumPy opens without pickle
    with np.load(path, allow_pickle=False) as npz:
        assert checkpoint.HEADER_KEY in npz.files


def test_what_only_pickle_could_store_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"save_checkpoint: state\['model'\] is a TwoLayerSoftmax"):
        save_checkpoint(tmp_path / "c.npz", {"params": {}, "model": TwoLayerSoftmax()})
    with pytest.raises(TypeError, match=r"object array"):
        save_checkpoint(tmp_path / "c.npz", {"params": {"W": np.array([{}], dtype=object)}})
    with pytest.raises(TypeError, match=r"'params' dict"):
        save_checkpoint(tmp_path / "c.npz", {"weights": {}})
    assert os.listdir(tmp_path) == []


def _good_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"params": {"W": np.arange(1000.0)}, "epoch": 1})
    return path, path.read_bytes()


def test_failed_rename_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path, before = _good_checkpoint(tmp_path)

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, {"params": {"W": np.zeros(1000)}, "epoch": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind
    assert load_checkpoint(path)["epoch"] == 1


def test_failure_half_way_through_the_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path, before = _good_checkpoint(tmp_path)

    def half_write(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", half_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"params": {"W": np.zeros(3)}})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


def test_truncated_corrupted_and_foreign_files_raise_value_error_naming_the_file(tmp_path):
    path, data = _good_checkpoint(tmp_path)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint at all")
    flipped = tmp_path / "flipped.npz"
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 3] ^= 0xFF  # inside the stored W array: the zip CRC check catches it
    flipped.write_bytes(bytes(corrupt))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, W=np.zeros(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, W=np.array([{"x": 1}], dtype=object))
    for bad in (truncated, garbage, flipped, foreign, pickled):
        with pytest.raises(ValueError, match=rf"load_checkpoint: .*{bad.name}.* not a readable fastnn checkpoint"):
            load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")


def _with_unclosed_header(npy):
    """A .npy whose header dict ends in '(' where its '}' stood: numpy's header parser raises a
    tokenize.TokenError on it, not a ValueError."""
    return npy.replace(b"}", b"(", 1)


def test_a_damaged_array_header_is_a_value_error_wherever_fastnn_reads_arrays(tmp_path):
    from fastnn import transfer
    from fastnn.classifiers.fc_net import FullyConnectedNet

    path, _ = _good_checkpoint(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    damaged = tmp_path / "damaged.npz"
    with zipfile.ZipFile(damaged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, _with_unclosed_header(data) if name == "a0.npy" else data)
    with pytest.raises(ValueError, match=r"load_checkpoint: .*damaged.npz.* not a readable fastnn checkpoint"):
        load_checkpoint(damaged)

    arrays = tmp_path / "arrays.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    with zipfile.ZipFile(arrays, "w") as archive:
        archive.writestr("W1.npy", _with_unclosed_header(buffer.getvalue()))
    model = FullyConnectedNet([4], input_dim=3, num_classes=2)
    with pytest.raises(ValueError, match=r"load_params: .*arrays.npz.* not a readable .npz"):
        transfer.load_params(model, arrays)

    model.save(tmp_path / "model.npy")
    saved = tmp_path / "model.npy"
    saved.write_bytes(_with_unclosed_header(saved.read_bytes()))
    with pytest.raises(ValueError, match=r"FullyConnectedNet.load: .*model.npy.* is not a .npy file"):
        model.load(saved)
    with pytest.raises(ValueError, match=r"load_params: .*model.npy.* is not a .npy file"):
        transfer.load_params(model, saved)


def _header(state):
    return np.array(json.dumps({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "state": state}))


def test_a_huge_declared_array_or_a_deeply_nested_header_is_a_value_error(tmp_path):
    """A member whose .npy header declares a (10**6, 10**6) array raised MemoryError; a header nested 100,000
    deep RecursionError: both went through Solver.resume as they were."""
    huge = io.BytesIO()
    np.lib.format.write_array_header_1_0(huge, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    header = io.BytesIO()
    np.save(header, _header({"params": {"W": {"__array__": "a0"}}}))
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("a0.npy", huge.getvalue() + bytes(64))
        archive.writestr(checkpoint.HEADER_KEY + ".npy", header.getvalue())
    beyond = io.BytesIO()  # a dimension past a C long: OverflowError, once let through
    np.save(beyond, np.zeros(2))
    with zipfile.ZipFile(tmp_path / "beyond.npz", "w") as archive:
        archive.writestr("a0.npy", beyond.getvalue().replace(b"(2,)", b"(99999999999999999999999,)"))
        archive.writestr(checkpoint.HEADER_KEY + ".npy", header.getvalue())
    deep = "[" * 100_000 + "]" * 100_000
    np.savez(tmp_path / "deep.npz", **{checkpoint.HEADER_KEY: np.array(
        f'{{"format": "{checkpoint.FORMAT}", "version": {checkpoint.VERSION}, "state": {deep}}}')})
    for name in ("huge.npz", "beyond.npz", "deep.npz"):
        with pytest.raises(ValueError, match=rf"load_checkpoint: .*{name}.* not a readable fastnn checkpoint"):
            load_checkpoint(tmp_path / name)


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_a_starter_pickle_is_named_as_one_without_advice_to_unpickle_it(tmp_path, protocol):
    """Protocols 0 and 1 (Python 2's pickles) got numpy's advice to load with allow_pickle=True."""
    import pickle

    starter = tmp_path / "model_epoch_3.pkl"
    starter.write_bytes(pickle.dumps({"model": {"W1": np.zeros(2)}, "epoch": 3}, protocol=protocol))
    with pytest.raises(ValueError, match=r"load_checkpoint: .*model_epoch_3.pkl.* is a pickle \(such as the "
                                         r"starter's .pkl checkpoints\), not a fastnn checkpoint") as raised:
        load_checkpoint(starter)
    assert "allow_pickle" not in str(raised.value)


def test_other_files_are_named_not_checkpoints_without_numpys_errors_or_advice(tmp_path):
    """A .npy file gave "'numpy.ndarray' object does not support the context manager protocol", a corrupted
    compression method zipfile's NotImplementedError, a text file numpy's advice to unpickle it."""
    path, data = _good_checkpoint(tmp_path)
    npy = tmp_path / "weights.npy"
    np.save(npy, np.ones(3))
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    method = tmp_path / "method.npz"
    corrupt = bytearray(data)
    central = corrupt.rindex(b"PK\x01\x02")  # the last member's central directory entry
    corrupt[central + 10] = 99  # its compression method: one zipfile does not know
    method.write_bytes(bytes(corrupt))
    for bad in (npy, text, method):
        with pytest.raises(ValueError, match=rf"load_checkpoint: .*{bad.name}.* not a readable fastnn checkpoint") \
                as raised:
            load_checkpoint(bad)
        assert "allow_pickle" not in str(raised.value)
    with pytest.raises(TypeError, match="load_checkpoint: path must be a str or os.PathLike, got int"):
        load_checkpoint(3)
    notes = tmp_path / "notes.txt"
    notes.write_text("checkpoint notes: (first run)")  # starts as a protocol-0 pickle may, but is none
    with pytest.raises(ValueError, match=r"not a readable fastnn checkpoint \(not an .npz archive"):
        load_checkpoint(notes)
    with pytest.raises(ValueError, match=r"load_checkpoint: cannot read .* Is a directory"):
        load_checkpoint(tmp_path)


def test_a_model_state_that_is_no_list_of_dicts_is_named_as_such():
    with pytest.raises(ValueError, match=r"model_state bn_params as \[1\]; it must be a list of dicts"):
        checkpoint.restore_model_state(TwoLayerSoftmax(), {"bn_params": [1]})


def test_solver_writes_npz_per_epoch_with_the_starter_keys(tmp_path):
    name = str(tmp_path / "run")
    solver = Solver(TwoLayerSoftmax(), blobs(), update_rule="adam", num_epochs=2, batch_size=20, verbose=False,
                    seed=0, checkpoint_name=name)
    solver.train()
    assert sorted(os.listdir(tmp_path)) == ["run_epoch_0.npz", "run_epoch_1.npz", "run_epoch_2.npz"]
    saved = load_checkpoint(name + "_epoch_2.npz")
    assert set(checkpoint.SOLVER_KEYS) <= set(saved)
    assert saved["update_rule"] == "adam" and saved["epoch"] == 2 and saved["batch_size"] == 20
    assert saved["loss_history"] == solver.loss_history
    assert saved["optim_configs"]["W1"]["t"] == 6
    np.testing.assert_array_equal(saved["optim_configs"]["W2"]["v"], solver.optim_configs["W2"]["v"])
    for k, v in solver.best_params.items():
        np.testing.assert_array_equal(saved["best_params"][k], v)
    assert zipfile.is_zipfile(name + "_epoch_2.npz")


@pytest.mark.parametrize("seed", [3, None], ids=["own-generator", "global-rng"])
@pytest.mark.parametrize("rule", ["sgd_momentum", "adam"])
def test_resume_gives_the_same_loss_history_as_an_uninterrupted_run(tmp_path, seed, rule):
    data = blobs()
    kwargs = dict(update_rule=rule, optim_config={"learning_rate": 0.05}, lr_decay=0.9, batch_size=10,
                  num_train_samples=20, verbose=False, seed=seed)

    np.random.seed(11)
    full = Solver(TwoLayerSoftmax(), data, num_epochs=4, **kwargs)
    full.train()

    np.random.seed(11)
    name = str(tmp_path / "run")
    Solver(TwoLayerSoftmax(), data, num_epochs=2, checkpoint_name=name, **kwargs).train()
    np.random.seed(999)  # whatever happens in between must not matter
    model = TwoLayerSoftmax(seed=5)  # other initial weights: the checkpoint must override them
    resumed = Solver(model, data, num_epochs=4, **kwargs)
    resumed.resume(name + "_epoch_2.npz")

    assert resumed.loss_history == full.loss_history
    assert resumed.train_acc_history == full.train_acc_history
    assert resumed.val_acc_history == full.val_acc_history
    assert resumed.epoch == 4
    for k in full.model.params:
        np.testing.assert_array_equal(resumed.model.params[k], full.model.params[k])
    np.testing.assert_array_equal(model.bn_params[0]["running_mean"], full.model.bn_params[0]["running_mean"])


def test_resume_into_a_model_of_other_shapes_is_refused(tmp_path):
    name = str(tmp_path / "run")
    Solver(TwoLayerSoftmax(), blobs(), num_epochs=1, batch_size=30, verbose=False, checkpoint_name=name).train()
    solver = Solver(TwoLayerSoftmax(H=5), blobs(), verbose=False)
    with pytest.raises(ValueError, match=r"Solver.restore: .*run_epoch_1.npz.* do not fit the model"):
        solver.resume(name + "_epoch_1.npz")


def _tamper(state, key, change):
    if key == "params.W1":
        state["params"]["W1"] = state["params"]["W1"].astype(np.float32)
    elif key == "optim_configs.W1.m":
        state["optim_configs"]["W1"]["m"] = np.zeros(3)
    elif key == "bn_params.running_mean":
        state["model_state"]["bn_params"][0]["running_mean"] = np.zeros(2)
    elif key.startswith("optim_configs.W1."):
        state["optim_configs"]["W1"][key.rsplit(".", 1)[1]] = change
    elif key.startswith("bn_params."):
        state["model_state"]["bn_params"][0][key.split(".", 1)[1]] = change
    elif key == "rng_state":
        state["rng_state"]["bit_generator"] = change
    else:
        state[key] = change
    return state


@pytest.mark.parametrize(
    "key, change, message",
    [
        ("params.W1", None, r"holds params of other dtypes than the model's .*'W1': \('float32', 'float64'\)"),
        ("optim_configs.W1.m", None, r"optim_configs\['W1'\]\['m'\] has shape \(3,\)"),
        ("bn_params.running_mean", None, r"bn_params\[0\]\['running_mean'\] as \(2,\) float64; the model's is \(8,\)"),
        ("rng_state", "Nope", r"cannot continue from: rng_state names bit generator 'Nope', not one of"),
        ("rng_state", "seed", r"rng_state names bit generator 'seed'"),  # np.random.seed() once reseeded numpy
        ("global_rng_state", ["MT19937", 1, 2], r"cannot continue from"),
        ("global_rng_state", ["MT19937", [1, 2], 0, 0, 0.0], r"cannot continue from"),  # an IndexError once
        ("epoch", "x", r"epoch must be an integer >= 0, got 'x'"),
        ("epoch", 10**30, r"epoch 10{30} is more than the iterations done"),
        ("loss_history", [2.0], r"iteration must be the number of losses in loss_history \(1\), got"),
        ("iteration", -5, r"iteration must be the number of losses in loss_history \(\d+\), got -5"),
        ("iteration", 2.5, r"iteration must be the number of losses in loss_history \(\d+\), got 2.5"),
        ("batch_size", 0, r"batch_size must be an integer >= 1, got 0"),
        ("loss_history", [1.0, "x"], r"loss_history must be a list of numbers"),
        ("optim_configs", {"W1": {}}, r"optim_configs must hold one dict per param"),
        ("seed", "zero", r"seed must be an int or None, got 'zero'"),
        # these restored, and the run failed at its next step or never counted an epoch as better
        ("optim_configs.W1.learning_rate", -5.0, r"optim_configs\['W1'\]: adam: config\['learning_rate'\] must be "
                                                 r">= 0.0, got -5.0"),
        ("optim_configs.W1.t", "x", r"optim_configs\['W1'\]: adam: config\['t'\]"),
        ("optim_configs.W1.v", [0.0], r"optim_configs\['W1'\]: adam: config\['v'\] must be an array"),
        ("bn_params.momentum", 5.0, r"bn_params\[0\]: \['momentum'\] must be <= 1.0, got 5.0"),
        ("bn_params.eps", "x", r"bn_params\[0\]: \['eps'\] must be a real number, got 'x'"),
        ("bn_params.mode", "eval", r"bn_params\[0\]: \['mode'\] must be one of \('train', 'test'\), got 'eval'"),
        ("best_val_acc", float("nan"), r"best_val_acc must be an accuracy in \[0, 1\], got nan"),
    ],
)
def test_a_bad_checkpoint_is_refused_and_changes_nothing(tmp_path, key, change, message):
    """Each of these once restored part of the state (params, histories) before failing, or restored 'OK' and
    broke in train() with an error far from its cause."""
    name = str(tmp_path / "run")
    Solver(TwoLayerSoftmax(), blobs(), update_rule="adam", num_epochs=1, batch_size=30, verbose=False, seed=1,
           checkpoint_name=name).train()
    bad = str(tmp_path / "bad.npz")
    save_checkpoint(bad, _tamper(load_checkpoint(name + "_epoch_1.npz"), key, change))

    model = TwoLayerSoftmax(seed=5)
    model.loss(blobs()["X_train"])  # a running_mean of the model's own
    solver = Solver(model, blobs(), num_epochs=3, verbose=False)
    before = {k: v.copy() for k, v in model.params.items()}
    running_mean = model.bn_params[0]["running_mean"].copy()
    global_state = np.random.get_state()[1].copy()
    with pytest.raises(ValueError, match=r"Solver.restore: .*bad.npz.* " + message):
        solver.resume(bad)
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])
    np.testing.assert_array_equal(model.bn_params[0]["running_mean"], running_mean)
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)
    assert solver.loss_history == [] and solver.epoch == 0 and solver.batch_size == 100
    assert solver.update_rule.__name__ == "sgd" and solver.optim_configs["W1"] == {}


@pytest.mark.skipif(not hasattr(os, "umask"), reason="POSIX file modes")
def test_a_new_checkpoint_gets_the_mode_open_would_give_it(tmp_path):
    """mkstemp makes the temporary file 0o600, which the rename kept: a checkpoint others could not read."""
    mask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "a.npz", {"params": {"W": np.zeros(2)}})
        assert os.stat(path).st_mode & 0o777 == 0o644
        os.chmod(path, 0o640)  # an existing file keeps its own mode
        save_checkpoint(path, {"params": {"W": np.ones(2)}})
        assert os.stat(path).st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs POSIX devices")
def test_a_device_or_a_fifo_is_refused_without_reading_it(tmp_path):
    """/dev/zero was read without end looking for a zip directory, and a FIFO with no writer blocked."""
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    for path in ("/dev/zero", fifo):
        with pytest.raises(ValueError, match=r"load_checkpoint: .* is not a regular file"):
            load_checkpoint(path)


def test_a_path_that_is_a_directory_or_in_no_directory_is_named(tmp_path):
    state = {"params": {"W": np.zeros(2)}}
    with pytest.raises(ValueError, match=r"save_checkpoint: path .* names a directory, not a file"):
        save_checkpoint(str(tmp_path) + "/", state)
    with pytest.raises(ValueError, match=r"save_checkpoint: path .* names a directory"):
        save_checkpoint(tmp_path, state)
    with pytest.raises(FileNotFoundError, match=r"save_checkpoint: the directory of path .*missing.* does not exist"):
        save_checkpoint(tmp_path / "missing" / "a.npz", state)
    assert os.listdir(tmp_path) == []


def test_batchnorm_statistics_are_checked_against_a_fresh_models_gamma(tmp_path):
    """A model built just now has no running_mean to compare with: a (3,) float32 one was accepted, and the run
    failed in the next forward pass, far from its cause."""
    from fastnn.classifiers import FullyConnectedNet

    rng = np.random.default_rng(0)
    data = {"X_train": rng.standard_normal((40, 6)), "y_train": rng.integers(0, 3, 40),
            "X_val": rng.standard_normal((10, 6)), "y_val": rng.integers(0, 3, 10)}
    make = lambda: FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="batchnorm")  # noqa: E731
    name = str(tmp_path / "run")
    Solver(make(), data, num_epochs=1, batch_size=20, verbose=False, checkpoint_name=name).train()
    state = load_checkpoint(name + "_epoch_1.npz")
    state["model_state"]["bn_params"][0]["running_mean"] = np.zeros(3, np.float32)
    save_checkpoint(tmp_path / "bad.npz", state)
    fresh = make()
    with pytest.raises(ValueError, match=r"bn_params\[0\]\['running_mean'\] as \(3,\) float32; the model's is "
                                         r"\(5,\) float32"):
        Solver(fresh, data, verbose=False).resume(tmp_path / "bad.npz")
    assert "running_mean" not in fresh.bn_params[0]


def test_a_checkpoint_without_model_state_fits_a_model_without_batchnorm():
    model = TwoLayerSoftmax()
    model.bn_params = []
    params = {k: v.copy() for k, v in model.params.items()}
    checkpoint.restore_model_state(model, None)
    assert model.bn_params == [] and all(np.array_equal(model.params[k], v) for k, v in params.items())


def test_writing_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "ck.npz"
    save_checkpoint(target, {"params": {"W": np.zeros(2)}})
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    save_checkpoint(link, {"params": {"W": np.ones(2)}})
    assert link.is_symlink()
    np.testing.assert_array_equal(load_checkpoint(target)["params"]["W"], np.ones(2))


def test_restore_never_calls_a_rule_of_the_users_own(tmp_path):
    """restore checks a built-in rule's state by one dry update; a user's rule may count its calls or refuse a
    zero gradient (this one did, and a valid checkpoint could not be restored)."""
    calls = []

    def normalized_sgd(w, dw, config):
        calls.append(1)
        norm = float(np.linalg.norm(dw))
        if norm == 0:
            raise ZeroDivisionError("normalized_sgd: zero gradient")
        return w - 0.1 * dw / norm, config

    name = str(tmp_path / "run")
    Solver(TwoLayerSoftmax(), blobs(), update_rule=normalized_sgd, num_epochs=1, batch_size=30, verbose=False,
           seed=0, checkpoint_name=name).train()
    solver = Solver(TwoLayerSoftmax(), blobs(), update_rule=normalized_sgd, num_epochs=1, verbose=False)
    calls.clear()
    solver.restore(name + "_epoch_1.npz")
    assert calls == [] and solver.epoch == 1


@pytest.mark.parametrize("state, message", [
    ({"params": None}, r"its state holds no 'params' dict"),
    ({"params": "W"}, r"its state holds no 'params' dict"),
    (None, r"its state holds no 'params' dict"),
    ({"params": {"W": {"__array__": "a9"}}}, r"its header names an array member 'a9' that the archive does not hold"),
    ({"params": {"W": {"__array__": ["a0"]}}}, r"its header names an array member \['a0'\]"),
])
def test_a_malformed_header_is_named_in_words(tmp_path, state, message):
    """params null gave "(argument of type 'NoneType' is not iterable)", a missing member "('a9')"."""
    np.savez(tmp_path / "bad.npz", a0=np.zeros(2), **{checkpoint.HEADER_KEY: _header(state)})
    with pytest.raises(ValueError, match=r"load_checkpoint: .*bad.npz' is not a readable fastnn checkpoint \("
                                         + message):
        load_checkpoint(tmp_path / "bad.npz")
