"""Datasets: the embedded digits, CIFAR-10 batches through the restricted unpickler, and preprocessing."""

import io
import os
import pickle

import numpy as np
import pytest

from fastnn import data_utils
from fastnn.data_utils import UnsafePickleError, load_pickle


def test_embedded_digits_equal_scikit_learns_copy():
    datasets = pytest.importorskip("sklearn.datasets")
    reference = datasets.load_digits()
    images, targets = data_utils.digits_arrays()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(targets, reference.target)


def test_load_digits_splits_shapes_and_scaling():
    data = data_utils.load_digits()
    sizes = {k: len(v) for k, v in data.items()}
    assert sizes == {"X_train": 1200, "y_train": 1200, "X_val": 300, "y_val": 300, "X_test": 297, "y_test": 297}
    assert data["X_train"].shape[1:] == (1, 8, 8) and data["X_train"].dtype == np.float64
    assert data["y_train"].dtype == np.int64 and set(np.unique(data["y_train"])) == set(range(10))
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0, atol=1e-12)

    raw = data_utils.load_digits(subtract_mean=False, dtype=np.float32, num_validation=100, num_test=50)
    assert raw["X_val"].dtype == np.float32 and len(raw["X_val"]) == 100 and len(raw["X_test"]) == 50
    X = np.concatenate([raw["X_train"], raw["X_val"], raw["X_test"]])
    assert X.min() == 0 and X.max() == 1
    images, targets = data_utils.digits_arrays()
    # the three splits are a permutation of the whole set
    pixels = np.rint(X.reshape(len(X), -1) * 16).astype(np.uint8)
    y = np.concatenate([raw["y_train"], raw["y_val"], raw["y_test"]])
    order = np.lexsort(pixels.T[::-1])
    expected_order = np.lexsort(images.reshape(len(images), -1).T[::-1])
    np.testing.assert_array_equal(pixels[order], images.reshape(len(images), -1)[expected_order])
    assert sorted(y.tolist()) == sorted(targets.tolist())


def test_load_digits_split_is_fixed_by_the_seed():
    a, b, c = data_utils.load_digits(seed=0), data_utils.load_digits(seed=0), data_utils.load_digits(seed=1)
    np.testing.assert_array_equal(a["y_val"], b["y_val"])
    assert not np.array_equal(a["y_val"], c["y_val"])


def test_load_digits_bad_arguments():
    with pytest.raises(ValueError, match=r"load_digits: num_validation \+ num_test = 1800 leaves no training"):
        data_utils.load_digits(num_validation=900, num_test=900)
    with pytest.raises(TypeError, match=r"load_digits: dtype must be float32 or float64, got int32"):
        data_utils.load_digits(dtype=np.int32)


# ----------------------------------------------------------------------------------------------------------
# CIFAR-10 batches


def cifar_batch_bytes(n, seed, numpy_module="numpy._core.multiarray"):
    """A CIFAR-10 python batch of n images as pickle bytes; protocol 3 keeps globals as plain text, so the
    module holding _reconstruct can be renamed to the one the official (NumPy 1.x era) files name."""
    rng = np.random.default_rng(seed)
    batch = {"batch_label": "testing batch", "labels": rng.integers(0, 10, n).tolist(),
             "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"img{i}.png" for i in range(n)]}
    raw = pickle.dumps(batch, protocol=3)
    old = b"cnumpy._core.multiarray\n_reconstruct\n"
    assert old in raw
    return raw.replace(old, f"c{numpy_module}\n_reconstruct\n".encode()), batch


def write_cifar_dir(directory, n=4):
    os.makedirs(directory, exist_ok=True)
    batches = {}
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        raw, batches[name] = cifar_batch_bytes(n, seed=i, numpy_module="numpy.core.multiarray")
        with open(os.path.join(directory, name), "wb") as f:
            f.write(raw)
    return batches


@pytest.mark.parametrize("module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_restricted_unpickler_loads_a_cifar_batch(tmp_path, module):
    raw, batch = cifar_batch_bytes(5, seed=0, numpy_module=module)
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    X, Y = data_utils.load_CIFAR_batch(str(path))
    assert X.shape == (5, 32, 32, 3) and X.dtype == np.float64
    np.testing.assert_array_equal(X, batch["data"].reshape(5, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(Y, batch["labels"])
    with open(path, "rb") as f:
        assert load_pickle(f)["filenames"] == batch["filenames"]


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_restricted_unpickler_refuses_a_pickle_that_would_execute_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Exploit(), "labels": [0]}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"data_batch_1.*refusing to unpickle the global (os|posix)\.system"):
        data_utils.load_CIFAR_batch(str(path))
    with pytest.raises(pickle.UnpicklingError, match=r"data_batch_1"):
        load_pickle(str(path))
    assert not (tmp_path / "pwned.txt").exists()
    # other callables that a CIFAR batch never needs are refused too
    for evil in (pickle.dumps(eval, protocol=2), pickle.dumps(np.load, protocol=4)):
        with pytest.raises(UnsafePickleError, match="refusing"):
            load_pickle(io.BytesIO(evil))


def test_load_cifar10_and_get_cifar10_data(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    batches = write_cifar_dir(root, n=4)
    Xtr, Ytr, Xte, Yte = data_utils.load_CIFAR10(str(root))
    assert Xtr.shape == (20, 32, 32, 3) and Ytr.shape == (20,) and Xte.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(Ytr[4:8], batches["data_batch_2"]["labels"])

    data = data_utils.get_CIFAR10_data(num_training=15, num_validation=5, num_test=3, cifar10_dir=root)
    assert {k: v.shape for k, v in data.items()} == {
        "X_train": (15, 3, 32, 32), "y_train": (15,), "X_val": (5, 3, 32, 32), "y_val": (5,),
        "X_test": (3, 3, 32, 32), "y_test": (3,)}
    mean_image = Xtr[:15].mean(axis=0).transpose(2, 0, 1)
    np.testing.assert_allclose(data["X_val"], Xtr[15:20].transpose(0, 3, 1, 2) - mean_image)
    np.testing.assert_array_equal(data["y_val"], Ytr[15:20])
    plain = data_utils.get_CIFAR10_data(num_training=15, num_validation=5, num_test=3, subtract_mean=False,
                                        cifar10_dir=root)
    np.testing.assert_array_equal(plain["X_test"], Xte[:3].transpose(0, 3, 1, 2))


def test_cifar10_is_found_through_the_environment_and_the_error_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(data_utils.CIFAR10_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r"looked in .*cs231n/datasets/cifar-10-batches-py"):
        data_utils.find_cifar10_dir()
    with pytest.raises(FileNotFoundError, match=r"looked in '.*nowhere'"):
        data_utils.find_cifar10_dir(tmp_path / "nowhere")
    root = tmp_path / "elsewhere"
    write_cifar_dir(root, n=2)
    monkeypatch.setenv(data_utils.CIFAR10_ENV, str(root))
    assert data_utils.find_cifar10_dir() == str(root)
    starter_dir = tmp_path / "cs231n" / "datasets" / "cifar-10-batches-py"
    write_cifar_dir(starter_dir, n=2)
    # a mistyped variable is an error naming it, not a quiet fall back to the starter's directory
    monkeypatch.setenv(data_utils.CIFAR10_ENV, str(tmp_path / "elsewhre"))
    with pytest.raises(FileNotFoundError, match=r"looked in '.*elsewhre' \(\$FASTNN_CIFAR10_DIR\)\. Download"):
        data_utils.find_cifar10_dir()
    monkeypatch.delenv(data_utils.CIFAR10_ENV)
    assert os.path.abspath(data_utils.find_cifar10_dir()) == str(starter_dir)


def test_get_cifar10_data_loads_through_the_module_level_load_cifar10(tmp_path, monkeypatch):
    write_cifar_dir(tmp_path, n=1)
    calls = []

    def fake_load(root):
        calls.append(root)
        rng = np.random.default_rng(0)
        return rng.random((30, 32, 32, 3)), np.arange(30) % 10, rng.random((10, 32, 32, 3)), np.arange(10)

    monkeypatch.setattr(data_utils, "load_CIFAR10", fake_load)
    data = data_utils.get_CIFAR10_data(num_training=20, num_validation=10, num_test=5, cifar10_dir=tmp_path)
    assert calls == [str(tmp_path)] and data["X_train"].shape == (20, 3, 32, 32)
    with pytest.raises(ValueError, match=r"num_training \+ num_validation = 50001 exceeds"):
        data_utils.get_CIFAR10_data(num_training=50000, num_validation=1, cifar10_dir=tmp_path)


# ----------------------------------------------------------------------------------------------------------
# Preprocessing


def test_subtract_mean_image_and_standardize_channels_use_training_statistics_without_mutating():
    rng = np.random.default_rng(0)
    data = {"X_train": 3 + 2 * rng.standard_normal((20, 3, 4, 4)), "X_val": rng.standard_normal((5, 3, 4, 4)),
            "y_train": np.zeros(20, int)}
    before = {k: v.copy() for k, v in data.items()}
    centred = data_utils.subtract_mean_image(data)
    np.testing.assert_allclose(centred["X_train"].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(centred["X_val"], data["X_val"] - data["X_train"].mean(axis=0))
    standard = data_utils.standardize_channels(data)
    np.testing.assert_allclose(standard["X_train"].mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(standard["X_train"].std(axis=(0, 2, 3)), 1, rtol=1e-6)
    assert standard["channel_mean"].shape == (1, 3, 1, 1)
    np.testing.assert_allclose(standard["X_val"], (data["X_val"] - standard["channel_mean"]) /
                               (standard["channel_std"] + 1e-8))
    for k in data:
        np.testing.assert_array_equal(data[k], before[k])
    with pytest.raises(ValueError, match=r"standardize_channels: X_train must be \(N, C, H, W\)"):
        data_utils.standardize_channels({"X_train": np.zeros((3, 4))})


def test_get_cifar10_data_refuses_counts_it_cannot_serve(tmp_path):
    """num_training=0 once gave all-NaN X_val and X_test (the mean of no images), with a RuntimeWarning only."""
    root = tmp_path / "cifar-10-batches-py"
    write_cifar_dir(root, n=4)
    with pytest.raises(ValueError, match=r"get_CIFAR10_data: num_training must be an integer >= 1, got 0"):
        data_utils.get_CIFAR10_data(num_training=0, num_validation=5, num_test=3, cifar10_dir=root)
    with pytest.raises(ValueError, match=r"get_CIFAR10_data: asked for num_training \+ num_validation = 25 .* "
                                         r"holds 20 training and 4 test images"):
        data_utils.get_CIFAR10_data(num_training=20, num_validation=5, num_test=3, cifar10_dir=root)


@pytest.mark.parametrize(
    "fn, data, error, message",
    [
        ("subtract_mean_image", {"X_train": np.zeros((4, 6)), "X_val": np.zeros((2, 1))}, ValueError,
         r"data\['X_val'\] has shape \(2, 1\), but every X_\* must be \(N, 6\) like X_train \(4, 6\)"),
        ("standardize_channels", {"X_train": np.zeros((4, 3, 2, 2)), "X_val": np.zeros((2, 1, 2, 2))}, ValueError,
         r"data\['X_val'\] has shape \(2, 1, 2, 2\), but every X_\* must be \(N, 3, 2, 2\)"),
        ("subtract_mean_image", {"X_train": np.zeros((4, 6)), "X_test": [[0.0] * 6]}, TypeError,
         r"data\['X_test'\] must be a numpy.ndarray, got list"),
        ("subtract_mean_image", {"X_train": np.zeros((4, 6), dtype=object)}, TypeError,
         r"data\['X_train'\] must hold integers or floats, got dtype object"),
        ("subtract_mean_image", {"X_train": np.zeros((0, 6))}, ValueError,
         r"X_train must have at least one row to take statistics from"),
    ],
)
def test_preprocessing_checks_every_split_against_x_train(fn, data, error, message):
    """A (2, 1) X_val once came back (2, 6), broadcast against the (6,) mean image."""
    with pytest.raises(error, match=rf"{fn}: " + message):
        getattr(data_utils, fn)(data)


# ----------------------------------------------------------------------------------------------------------
# Low-precision data, bad eps and seeds, text-mode files, labels that are not CIFAR-10 classes


def test_standardize_channels_takes_float16_statistics_in_float64_and_keeps_the_dtype():
    """float16 images of 0..31000 once gave channel_std [inf] and every output -0.0 (the variance overflowed)."""
    X = (np.arange(32) * 1000).astype(np.float16).reshape(2, 1, 4, 4)
    out = data_utils.standardize_channels({"X_train": X, "X_val": X[:1]})
    X64 = X.astype(np.float64)
    assert out["X_train"].dtype == np.float16 and out["X_val"].dtype == np.float16
    np.testing.assert_allclose(out["channel_std"].ravel(), [X64.std()], rtol=1e-3)
    np.testing.assert_allclose(out["X_train"], (X64 - X64.mean()) / X64.std(), atol=2e-3)
    assert np.all(np.isfinite(out["channel_mean"])) and np.all(np.isfinite(out["channel_std"]))
    # a mean large against the spread: statistics rounded to float16 first (1000, not 1000.25) gave {0, 2}
    X = np.array([1000.0, 1000.5] * 8, np.float16).reshape(4, 1, 2, 2)
    np.testing.assert_array_equal(np.unique(data_utils.standardize_channels({"X_train": X})["X_train"]), [-1, 1])


def test_standardize_channels_maps_a_constant_channel_to_zero_in_every_float_dtype():
    for dtype in (np.float16, np.float32, np.float64):
        out = data_utils.standardize_channels({"X_train": np.full((2, 3, 2, 2), 7, dtype)})
        assert out["X_train"].dtype == dtype
        np.testing.assert_array_equal(out["X_train"], 0)


@pytest.mark.parametrize("eps, error, message", [
    (0, ValueError, r"eps must be > 0"), (-1, ValueError, r"eps must be > 0"),
    (float("nan"), ValueError, r"eps must be finite"), ("a", TypeError, r"eps must be a real number, got 'a'"),
])
def test_standardize_channels_needs_a_positive_eps(eps, error, message):
    """eps=0 on a constant channel once gave NaN, eps=-1 a sign flip, eps='a' a ufunc error."""
    with pytest.raises(error, match=r"standardize_channels: " + message):
        data_utils.standardize_channels({"X_train": np.ones((2, 3, 4, 4))}, eps=eps)


@pytest.mark.parametrize("seed, error, message", [
    ("a", TypeError, r"seed must be an integer, got 'a'"), (-1, ValueError, r"seed must be >= 0, got -1"),
    (1.5, TypeError, r"seed must be an integer, got 1.5"),
])
def test_load_digits_names_a_bad_seed(seed, error, message):
    with pytest.raises(error, match=r"load_digits: " + message):
        data_utils.load_digits(seed=seed)


def test_load_pickle_asks_for_a_binary_file(tmp_path):
    """A text-mode file once gave a bare AssertionError from inside the unpickler."""
    path = tmp_path / "batch.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with open(path) as f, pytest.raises(TypeError, match=r"load_pickle: .*batch.pkl.* is open in text mode; open "
                                                         r"it in binary mode \('rb'\)"):
        load_pickle(f)
    with pytest.raises(TypeError, match=r"load_pickle: .* text mode"):
        load_pickle(io.StringIO("not bytes"))


@pytest.mark.parametrize("labels", [["cat", "dog"], [1.5, 2.0], [1, -3], [0, 10], [True, False]])
def test_load_cifar_batch_refuses_labels_that_are_not_classes(tmp_path, labels):
    """String, float and negative labels were once returned as they were."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}, protocol=2))
    with pytest.raises(ValueError, match=r"load_CIFAR_batch: '.*data_batch_1' holds labels .*; expected integer "
                                         r"class labels in \[0, 10\)"):
        data_utils.load_CIFAR_batch(str(path))


@pytest.mark.parametrize("data, message", [
    ([[None] * 3072], r"holds data of dtype object; expected pixel values"),  # once an all-NaN image
    (np.ones((1, 3072), complex), r"holds data of dtype complex128"),  # once lost its imaginary part
    ([["a"] * 3072], r"holds data of dtype <U1"),
    ([[1] * 3072, [1] * 5], r"holds data or labels that are not arrays"),  # ragged
])
def test_load_cifar_batch_refuses_data_that_are_not_pixels(tmp_path, data, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": data, "labels": [1] * len(data)}, protocol=2))
    with pytest.raises(ValueError, match=r"load_CIFAR_batch: '.*data_batch_1' " + message):
        data_utils.load_CIFAR_batch(str(path))


def test_load_cifar_batch_names_a_filename_that_is_no_path():
    with pytest.raises(TypeError, match=r"load_CIFAR_batch: filename must be a str or os.PathLike, got NoneType"):
        data_utils.load_CIFAR_batch(None)


@pytest.mark.parametrize("small", [np.int8, np.int16, np.uint8])
def test_load_digits_adds_small_numpy_integer_sizes_without_wrapping(small):
    """int16(30000) + int16(30000) wrapped negative: train was all 1797 images and test the same 1797."""
    split = data_utils.load_digits(num_validation=small(100), num_test=small(100))
    assert (len(split["y_train"]), len(split["y_val"]), len(split["y_test"])) == (1597, 100, 100)
    assert not set(map(bytes, split["X_train"])) & set(map(bytes, split["X_test"]))
    big = np.iinfo(small).max
    if 2 * big >= 1797:
        with pytest.raises(ValueError, match=rf"num_validation \+ num_test = {2 * big} leaves no training"):
            data_utils.load_digits(num_validation=small(big), num_test=small(big))


@pytest.mark.parametrize("small", [np.int8, np.uint8])
def test_get_cifar10_data_adds_small_numpy_integer_sizes_without_wrapping(tmp_path, small):
    write_cifar_dir(tmp_path, n=100)  # 500 training images
    data = data_utils.get_CIFAR10_data(small(100), small(100), small(3), cifar10_dir=str(tmp_path))
    assert (len(data["y_train"]), len(data["y_val"]), len(data["y_test"])) == (100, 100, 3)


def test_an_empty_cifar_batch_keeps_the_labels_integer(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []}, protocol=2))
    X, Y = data_utils.load_CIFAR_batch(str(path))
    assert X.shape == (0, 32, 32, 3) and Y.dtype.kind == "i"


def test_load_cifar_batch_refuses_nan_pixels(tmp_path):
    """One NaN pixel made the training mean, and so every split, NaN."""
    data = np.zeros((1, 3072))
    data[0, 5] = np.nan
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": data, "labels": [1]}, protocol=2))
    with pytest.raises(ValueError, match=r"load_CIFAR_batch: .* NaN or infinite pixel values"):
        data_utils.load_CIFAR_batch(str(path))


def test_cifar10_directories_that_are_no_path_are_named():
    with pytest.raises(TypeError, match=r"load_CIFAR10: ROOT must be a str or os.PathLike directory, got NoneType"):
        data_utils.load_CIFAR10(None)
    with pytest.raises(TypeError, match=r"get_CIFAR10_data: cifar10_dir must be a str or os.PathLike, got int"):
        data_utils.get_CIFAR10_data(cifar10_dir=5)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e20), (np.float64, 1e200)])
def test_standardize_channels_of_values_whose_variance_overflows(dtype, scale):
    """The variance of float32 values near 1e20 is inf in float32: every output was 0."""
    X = (np.random.default_rng(0).standard_normal((6, 2, 3, 3)) * scale).astype(dtype)
    out = data_utils.standardize_channels({"X_train": X})
    assert out["X_train"].dtype == dtype
    np.testing.assert_allclose(out["X_train"].std(axis=(0, 2, 3)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["channel_std"].ravel() / scale, (X / scale).std(axis=(0, 2, 3)), rtol=1e-5)


def test_standardize_channels_refuses_nan_training_images():
    X = np.random.default_rng(0).standard_normal((6, 2, 3, 3))
    X[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"standardize_channels: X_train holds NaN or infinite values"):
        data_utils.standardize_channels({"X_train": X})


def test_load_cifar10_names_a_bytes_root():
    with pytest.raises(TypeError, match=r"load_CIFAR10: ROOT must be a str or os.PathLike directory, got bytes"):
        data_utils.load_CIFAR10(b"/tmp")


def test_paths_given_as_bytes_load_and_other_objects_are_named(tmp_path):
    """load_pickle(b'x.pkl') was taken for a file object (an UnpicklingError), so load_models(b'dir') skipped
    every file and returned {}; a None or a number was a bare TypeError from os or pickle."""
    import pickle

    from fastnn.data_utils import get_CIFAR10_data, load_imagenet_val, load_models, load_pickle

    (tmp_path / "m.pkl").write_bytes(pickle.dumps({"model": np.arange(3)}))
    np.testing.assert_array_equal(load_pickle(os.fsencode(tmp_path / "m.pkl"))["model"], np.arange(3))
    assert list(load_models(os.fsencode(tmp_path))) == [b"m.pkl"]  # the starter's keys for a bytes directory
    for call, message in [(lambda: load_pickle(3), r"load_pickle: f must be a path or a file open in binary mode, "
                                                   r"got int"),
                          (lambda: load_models(None), r"load_models: models_dir must be a path .*got NoneType"),
                          (lambda: load_imagenet_val(path=3), r"load_imagenet_val: path must be a str .*got int"),
                          (lambda: get_CIFAR10_data(cifar10_dir=3), r"get_CIFAR10_data: cifar10_dir must be .*int")]:
        with pytest.raises(TypeError, match=message):
            call()
