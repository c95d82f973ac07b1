"""Untrusted files: pickles that would run code are refused before anything runs; malformed CIFAR batches are
named; no fastnn module unpickles without the restricted unpickler."""

import ast
import builtins
import io
import os
import pathlib
import pickle
import re
import subprocess

import numpy as np
import pytest

from fastnn.data_utils import UnsafePickleError, load_CIFAR_batch, load_pickle


class Reduce:
    """Pickles as a call of `fn(*args)`."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker):
    touch = f"touch {marker}"
    return {
        "os.system": Reduce(os.system, touch),
        "subprocess.Popen": Reduce(subprocess.Popen, ["touch", str(marker)]),
        "builtins.eval": Reduce(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "builtins.exec": Reduce(builtins.exec, f"open({str(marker)!r}, 'w')"),
        "a callable nested in an admitted one": Reduce(dict, [("a", Reduce(os.system, touch))]),
        "numpy.load": Reduce(np.load, str(marker)),
        "numpy.save": Reduce(np.save, str(marker), np.zeros(1)),
        "nested in a dict": {"data": np.zeros((1, 3072), np.uint8), "labels": [Reduce(os.system, touch)]},
        "nested in an array of objects": np.array([Reduce(os.system, touch)], dtype=object),
    }


@pytest.mark.parametrize("name", list(_payloads("x")))
def test_pickles_that_would_run_code_are_refused_and_nothing_runs(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / f"{name.replace(' ', '_')}.pkl"
    path.write_bytes(pickle.dumps(_payloads(marker)[name], protocol=2))
    with pytest.raises(UnsafePickleError, match=re.escape(path.name)):
        load_pickle(str(path))
    assert not marker.exists()


def test_plain_arrays_and_containers_still_load():
    data = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [1, 2], "name": b"batch"}
    loaded = load_pickle(io.BytesIO(pickle.dumps(data, protocol=2)))
    np.testing.assert_array_equal(loaded["data"], data["data"])
    assert loaded["labels"] == [1, 2]


@pytest.mark.parametrize("batch,words", [
    ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, ["(2, 100)", "3072"]),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, ["labels of shape (1,)"]),
    ({"pixels": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, ["expected keys data, labels", "pixels"]),
    ([1, 2, 3], ["expected keys data, labels", "list"]),
])
def test_malformed_cifar_batches_name_the_file_and_what_was_expected(tmp_path, batch, words):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError) as info:
        load_CIFAR_batch(str(path))
    assert "data_batch_1" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_truncated_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "data_batch_2"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})[:50])
    with pytest.raises(pickle.UnpicklingError, match="data_batch_2"):
        load_CIFAR_batch(str(path))


def test_no_module_unpickles_without_the_restricted_unpickler():
    package = pathlib.Path(__file__).resolve().parent.parent / "fastnn"
    offenders = []
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr in ("load", "loads")
                    and isinstance(func.value, ast.Name) and func.value.id == "pickle"):
                offenders.append(f"{source.name}:{node.lineno} pickle.{func.attr}")
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant)
                                                          and keyword.value.value is False):
                    offenders.append(f"{source.name}:{node.lineno} allow_pickle")
    assert offenders == []


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_scalars_and_protocol_5_arrays_load(protocol):
    """numpy's scalar() (any np.float64 in a pickle) and _frombuffer (arrays at protocol 5, Python 3.14's
    default) were refused as unsafe, so such a file was skipped."""
    data = {"W": np.arange(6, dtype=np.float32).reshape(2, 3), "lr": np.float64(1.5), "epoch": np.int64(3)}
    loaded = load_pickle(io.BytesIO(pickle.dumps(data, protocol=protocol)))
    np.testing.assert_array_equal(loaded["W"], data["W"])
    assert loaded["W"].dtype == np.float32 and loaded["lr"] == 1.5 and loaded["epoch"] == 3


def test_object_dtypes_built_from_raw_bytes_are_refused():
    """Bytes read as object pointers would be memory, not data: scalar() and _frombuffer() with an object
    dtype are refused whatever the protocol."""
    from numpy._core.multiarray import scalar
    from numpy._core.numeric import _frombuffer

    class Forged:
        def __init__(self, call):
            self.call = call

        def __reduce__(self):
            return self.call

    for forged in (Forged((scalar, (np.dtype(object), b"\x00" * 8))),
                   Forged((_frombuffer, (b"\x00" * 8, np.dtype(object), (1,), "C")))):
        with pytest.raises(UnsafePickleError, match="holds Python objects"):
            load_pickle(io.BytesIO(pickle.dumps(forged, protocol=4)))


@pytest.mark.parametrize("payload", [b"\x80\x04\x8d" + (2**62).to_bytes(8, "little"),  # a 4 EiB bytes object
                                     b"\x80\x04" + b"(" * 100000])  # nesting deeper than the recursion limit
def test_a_malformed_pickle_is_an_unpickling_error_naming_the_file(tmp_path, payload):
    """A huge declared length was a MemoryError, which load_models did not catch: one bad file stopped it."""
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError, match=r"'.*bad.pkl': not a readable pickle of arrays"):
        load_pickle(str(path))
