"""data_utils' ImageNet-side loaders: Tiny ImageNet from a directory tree, the ImageNet validation sample from its
.npz, and a directory of pickled models. Fixtures build small files of the same layout."""

import os
import pickle
import re
import struct
import zipfile
import zlib

import numpy as np
import pytest

from fastnn._imagenet import IMAGENET_VAL_ENV
from fastnn.data_utils import UnsafePickleError, load_imagenet_val, load_models, load_tiny_imagenet

Image = pytest.importorskip("PIL.Image")


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")  # lossless, so the pixels can be checked exactly


def _tiny_tree(root, test_labels=True):
    """Two classes with 3 and 2 training images, 3 validation images, 3 test images (one grayscale)."""
    g = np.random.default_rng(0)
    wnids = ["n01", "n02"]
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("n01\nn02\n")
    (root / "words.txt").write_text("n00\tunused\nn01\tgoldfish, Carassius auratus\nn02\tcat\n")
    pixels = {}
    for wnid, count in zip(wnids, (3, 2)):
        lines = []
        for i in range(count):
            name = f"{wnid}_{i}.JPEG"
            pixels[("train", name)] = g.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            _save(root / "train" / wnid / "images" / name, pixels[("train", name)])
            lines.append(f"{name}\t0\t0\t63\t63\n")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(lines))
    val = [("val_0.JPEG", "n02"), ("val_1.JPEG", "n01"), ("val_2.JPEG", "n02")]
    for name, _ in val:
        pixels[("val", name)] = g.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        _save(root / "val" / "images" / name, pixels[("val", name)])
    (root / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{w}\t0\t0\t63\t63\n" for n, w in val))
    for name in ("test_2.JPEG", "test_0.JPEG"):
        pixels[("test", name)] = g.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        _save(root / "test" / "images" / name, pixels[("test", name)])
    gray = g.integers(0, 256, (64, 64), dtype=np.uint8)
    pixels[("test", "test_1.JPEG")] = np.repeat(gray[:, :, None], 3, axis=2)
    _save(root / "test" / "images" / "test_1.JPEG", gray)
    if test_labels:
        (root / "test" / "test_annotations.txt").write_text("test_0.JPEG\tn01\ntest_1.JPEG\tn02\ntest_2.JPEG\tn01\n")
    return pixels


def test_load_tiny_imagenet_reads_every_split_with_labels_and_class_names(tmp_path):
    pixels = _tiny_tree(tmp_path)
    data = load_tiny_imagenet(str(tmp_path), subtract_mean=False)
    assert data["class_names"] == [["goldfish", "Carassius auratus"], ["cat"]]
    assert data["X_train"].shape == (5, 3, 64, 64) and data["X_train"].dtype == np.float32
    np.testing.assert_array_equal(data["y_train"], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(data["X_train"][3], pixels[("train", "n02_0.JPEG")].transpose(2, 0, 1))
    np.testing.assert_array_equal(data["y_val"], [1, 0, 1])
    np.testing.assert_array_equal(data["X_val"][2], pixels[("val", "val_2.JPEG")].transpose(2, 0, 1))
    # test images in file-name order; the grayscale one repeated over the channels
    for i in range(3):
        np.testing.assert_array_equal(data["X_test"][i], pixels[("test", f"test_{i}.JPEG")].transpose(2, 0, 1))
    np.testing.assert_array_equal(data["y_test"], [0, 1, 0])
    np.testing.assert_allclose(data["mean_image"], data["X_train"].mean(axis=0))


def test_load_tiny_imagenet_subtracts_the_training_mean_and_has_no_test_labels_without_annotations(tmp_path):
    _tiny_tree(tmp_path, test_labels=False)
    raw = load_tiny_imagenet(tmp_path, dtype=np.float64, subtract_mean=False)
    data = load_tiny_imagenet(tmp_path, dtype=np.float64)
    assert data["y_test"] is None and data["X_val"].dtype == np.float64
    for split in ("X_train", "X_val", "X_test"):
        np.testing.assert_allclose(data[split], raw[split] - raw["mean_image"])
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0, atol=1e-9)


def test_load_tiny_imagenet_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_tiny_imagenet.*not a directory"):
        load_tiny_imagenet(tmp_path / "missing")
    _tiny_tree(tmp_path)
    with pytest.raises(TypeError, match="load_tiny_imagenet: dtype"):
        load_tiny_imagenet(tmp_path, dtype=np.complex64)
    with pytest.raises(TypeError, match="load_tiny_imagenet: subtract_mean=True needs a floating dtype"):
        load_tiny_imagenet(tmp_path, dtype=np.int32)
    with pytest.raises(TypeError, match="load_tiny_imagenet: dtype int8 cannot hold pixel values 0-255"):
        load_tiny_imagenet(tmp_path, dtype=np.int8, subtract_mean=False)
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt.*n99"):
        load_tiny_imagenet(tmp_path)
    _save(tmp_path / "val" / "images" / "val_0.JPEG", np.zeros((32, 64, 3), np.uint8))
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match=r"val_0.JPEG.*64x32 pixels"):
        load_tiny_imagenet(tmp_path)
    (tmp_path / "train" / "n01" / "n01_boxes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="n01_boxes.txt"):
        load_tiny_imagenet(tmp_path)


def _imagenet_npz(path, label_map):
    g = np.random.default_rng(1)
    X = g.integers(0, 256, (5, 224, 224, 3), dtype=np.uint8)
    y = np.array([3, 1, 4, 1, 5])
    np.savez(path, X=X, y=y, label_map=label_map)  # label_map is stored as a pickled object array
    return X, y


def test_load_imagenet_val_reads_the_npz_without_the_unrestricted_unpickler(tmp_path, monkeypatch):
    path = tmp_path / "imagenet_val_25.npz"
    X, y = _imagenet_npz(path, {1: "goldfish", 3: "shark", 4: "hen", 5: "ostrich"})
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("the unrestricted unpickler ran"))
    X2, y2, names = load_imagenet_val(path=path)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert names == {1: "goldfish", 3: "shark", 4: "hen", 5: "ostrich"}
    X3, y3, _ = load_imagenet_val(num=2, path=path)
    assert X3.shape == (2, 224, 224, 3) and list(y3) == [3, 1]


def test_load_imagenet_val_is_found_in_the_starters_place_and_through_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(IMAGENET_VAL_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="get_imagenet_val.sh"):
        load_imagenet_val()
    (tmp_path / "cs231n" / "datasets").mkdir(parents=True)
    _imagenet_npz(tmp_path / "cs231n" / "datasets" / "imagenet_val_25.npz", {3: "shark"})
    assert load_imagenet_val(num=1)[2] == {3: "shark"}
    elsewhere = tmp_path / "elsewhere.npz"
    _imagenet_npz(elsewhere, {1: "goldfish"})
    monkeypatch.setenv(IMAGENET_VAL_ENV, str(elsewhere))
    assert load_imagenet_val()[2] == {1: "goldfish"}
    monkeypatch.setenv(IMAGENET_VAL_ENV, str(tmp_path / "elswhere.npz"))  # mistyped: no quiet fall back
    with pytest.raises(FileNotFoundError, match=r"looked in '[^,]*elswhere.npz' \(\$FASTNN_IMAGENET_VAL\)\. Get"):
        load_imagenet_val()
    monkeypatch.setenv(IMAGENET_VAL_ENV, str(elsewhere))
    with pytest.raises(ValueError, match="num"):
        load_imagenet_val(num=-1)


def test_load_imagenet_val_refuses_a_label_map_that_would_run_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    path = tmp_path / "evil.npz"
    _imagenet_npz(path, Payload())
    with pytest.raises(UnsafePickleError, match=re.escape("evil.npz")):
        load_imagenet_val(path=path)
    assert not (tmp_path / "pwned").exists()


def test_load_models_loads_model_pickles_and_skips_the_rest(tmp_path):
    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    (tmp_path / "good.pkl").write_bytes(pickle.dumps({"model": {"W1": np.ones((2, 3))}, "epoch": 3}))
    (tmp_path / "notes.txt").write_text("not a pickle")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"model": Payload()}))
    (tmp_path / "no_model.pkl").write_bytes(pickle.dumps({"W1": np.ones(2)}))
    (tmp_path / "subdir").mkdir()
    with pytest.warns(RuntimeWarning) as caught:
        models = load_models(tmp_path)
    assert list(models) == ["good.pkl"]
    np.testing.assert_array_equal(models["good.pkl"]["W1"], np.ones((2, 3)))
    messages = " ".join(str(w.message) for w in caught)
    assert "evil.pkl" in messages and "no_model.pkl" in messages and "notes.txt" not in messages
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(FileNotFoundError, match="load_models"):
        load_models(tmp_path / "missing")


def test_load_imagenet_val_names_the_member_that_is_not_what_it_should_be(tmp_path):
    g = np.random.default_rng(1)
    numeric_map = tmp_path / "numeric_map.npz"
    np.savez(numeric_map, X=g.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8), y=np.array([1, 2]),
             label_map=np.arange(3))
    with pytest.raises(ValueError, match=r"load_imagenet_val: .*numeric_map.npz.* member label_map.npy holds a "
                                         r"int64 array of shape \(3,\); expected a pickled dict"):
        load_imagenet_val(path=numeric_map)
    object_x = tmp_path / "object_x.npz"
    np.savez(object_x, X=np.array([{"a": 1}, None], dtype=object), y=np.array([1, 2]), label_map={1: "goldfish"})
    with pytest.raises(ValueError, match=r"load_imagenet_val: .*object_x.npz.* member X.npy cannot be read as a "
                                         r"plain array"):
        load_imagenet_val(path=object_x)


@pytest.mark.parametrize("member, words", [("label_map.npy", "is damaged or not a .npy array"),
                                           ("X.npy", "cannot be read as a plain array")])
def test_load_imagenet_val_names_a_member_whose_header_is_damaged(tmp_path, member, words):
    good, damaged = tmp_path / "good.npz", tmp_path / "damaged.npz"
    np.savez(good, X=np.zeros((2, 4, 4, 3), dtype=np.uint8), y=np.array([1, 2]), label_map={1: "goldfish"})
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(damaged, "w") as target:
        for name in source.namelist():  # numpy's parser raises tokenize.TokenError on a header left open
            data = source.read(name)
            target.writestr(name, data.replace(b"}", b"(", 1) if name == member else data)
    with pytest.raises(ValueError, match=rf"load_imagenet_val: .*damaged.npz.* member {member} {words}"):
        load_imagenet_val(path=damaged)


@pytest.mark.parametrize("X_shape, y", [((3, 4, 4), [1, 2, 3]), ((3, 4, 4, 3), [1, 2]), ((3, 4, 4, 1), [1, 2, 3]),
                                        ((3, 4, 4, 3), [[1], [2], [3]])])
def test_load_imagenet_val_names_images_and_labels_that_do_not_match(tmp_path, X_shape, y):
    path = tmp_path / "odd.npz"
    np.savez(path, X=np.zeros(X_shape, np.uint8), y=np.array(y), label_map={1: "goldfish"})
    message = r"load_imagenet_val: .*odd.npz.* holds X .* and y .*; expected X \(N, H, W, 3\)"
    with pytest.raises(ValueError, match=message):
        load_imagenet_val(path=path)


def test_load_tiny_imagenet_names_bad_arguments_and_text_that_is_not_utf8(tmp_path):
    with pytest.raises(TypeError, match=r"load_tiny_imagenet: path must be a str or os.PathLike directory, got int"):
        load_tiny_imagenet(5)
    _tiny_tree(tmp_path)
    with pytest.raises(TypeError, match=r"load_tiny_imagenet: dtype must be a floating type, got 'nope'"):
        load_tiny_imagenet(tmp_path, dtype="nope")
    (tmp_path / "words.txt").write_bytes(b"n01\tgoldfish\nn02\tcat \xff\n")
    with pytest.raises(ValueError, match=r"load_tiny_imagenet: '.*words.txt' is not UTF-8 text"):
        load_tiny_imagenet(tmp_path)
    (tmp_path / "words.txt").write_bytes(b"n01\tgoldfish\r\nn02\tcat\r\n")  # Windows line ends still read
    assert load_tiny_imagenet(tmp_path)["class_names"] == [["goldfish"], ["cat"]]


def test_load_tiny_imagenet_keeps_integer_pixels_without_mean_subtraction(tmp_path):
    pixels = _tiny_tree(tmp_path)
    data = load_tiny_imagenet(tmp_path, dtype=np.uint8, subtract_mean=False)
    assert data["X_train"].dtype == np.uint8 and data["mean_image"].dtype == np.float64
    np.testing.assert_array_equal(data["X_val"][1], pixels[("val", "val_1.JPEG")].transpose(2, 0, 1))
    np.testing.assert_allclose(data["mean_image"], data["X_train"].astype(np.float64).mean(axis=0))


def test_load_tiny_imagenet_refuses_a_class_listed_twice_and_reads_a_byte_order_mark(tmp_path):
    _tiny_tree(tmp_path)
    (tmp_path / "wnids.txt").write_text("n01\nn02\nn01\n")
    with pytest.raises(ValueError, match=r"load_tiny_imagenet: wnids.txt lists \['n01'\] more than once"):
        load_tiny_imagenet(tmp_path)
    (tmp_path / "wnids.txt").write_bytes(b"\xef\xbb\xbfn01\nn02\n")
    assert load_tiny_imagenet(tmp_path)["class_names"][0] == ["goldfish", "Carassius auratus"]


def _compressed_imagenet_npz(path):
    g = np.random.default_rng(0)
    names = {i: "".join(g.choice(list("abcdefgh"), 30)) for i in range(1000)}
    np.savez_compressed(path, X=np.zeros((2, 4, 4, 3), np.uint8), y=np.array([0, 1]), label_map=names)
    raw = path.read_bytes()
    info = zipfile.ZipFile(path).getinfo("label_map.npy")
    name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return bytearray(raw), info.header_offset + 30 + name_length + extra_length


@pytest.mark.parametrize("damage", ["early in the stream", "late in the stream", "compression method"])
def test_load_imagenet_val_names_a_damaged_compressed_archive(tmp_path, damage):
    raw, stream = _compressed_imagenet_npz(tmp_path / "good.npz")
    if damage == "compression method":  # in label_map.npy's central-directory entry
        entry = raw.rfind(b"PK\x01\x02", 0, raw.rfind(b"label_map.npy"))
        raw[entry + 10] = 99
    else:  # one byte of label_map.npy's deflate stream: zlib.error, or a pickle cut short
        raw[stream + (200 if damage == "early in the stream" else 2528)] ^= 0x55
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"load_imagenet_val: .*damaged.npz"):
        load_imagenet_val(path=damaged)


def test_an_image_whose_header_claims_a_huge_size_is_named(tmp_path):
    from fastnn._imagenet import _read_image

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match=r"load_tiny_imagenet: cannot read the image .*big.png"):
        _read_image(str(tmp_path / "big.png"), "load_tiny_imagenet")
