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
import sys
import textwrap

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


def test_a_truncated_pickle_says_so_and_is_a_value_error_too(tmp_path):
    """An interrupted download: the file ends before the pickle's STOP. The error is both an UnpicklingError (as
    the starter's) and a ValueError (fastnn's bad-input error), and load_CIFAR_batch names itself."""
    from fastnn.data_utils import MalformedPickleError, load_CIFAR_batch

    whole = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, protocol=2)
    path = tmp_path / "data_batch_1"
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(MalformedPickleError, match=r"load_CIFAR_batch: '.*data_batch_1': not a readable pickle of "
                                                   r"arrays: it ends early, so the file is truncated") as caught:
        load_CIFAR_batch(str(path))
    assert isinstance(caught.value, pickle.UnpicklingError) and isinstance(caught.value, ValueError)
    assert issubclass(UnsafePickleError, ValueError) and issubclass(UnsafePickleError, pickle.UnpicklingError)


# ----------------------------------------------------------------------------------------------------------
# Forged NumPy reconstructions: pickles that use only the admitted globals, in ways no NumPy pickle does. Each
# once gave an object array whose elements were pointers read from the file (here NULL, which NumPy reads as
# None, so that the old code fails the test instead of crashing), a dtype with an itemsize of -1, or allocated
# whatever the file asked for.

def _global(module, name):
    return f"c{module}\n{name}\n".encode()


def _pushes(obj):
    """Protocol-2 opcodes that push obj, without memo entries (so that they can be spliced into a pickle)."""
    f = io.BytesIO()
    pickler = pickle._Pickler(f, protocol=2)
    pickler.fast = True  # no PUT opcodes
    pickler.dump(obj)
    return f.getvalue()[2:-1]  # without PROTO and STOP


_NULL_POINTER = b"C\x08" + bytes(8)  # SHORT_BINBYTES of 8 zero bytes
_RECONSTRUCT = (_global("numpy._core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
                + _pushes((0,)) + _pushes(b"b") + b"\x87R")  # _reconstruct(ndarray, (0,), b'b')


def _array_with(dtype_opcodes, data=_NULL_POINTER):
    """_reconstruct, then BUILD with the state (1, (1,), <dtype>, False, data)."""
    return _RECONSTRUCT + b"(" + _pushes(1) + _pushes((1,)) + dtype_opcodes + b"\x89" + data + b"tb"


def _dtype_with_state(type_string, state):
    return _global("numpy", "dtype") + _pushes((type_string, False, True)) + b"R" + _pushes(state) + b"b"


FORGED = {
    "numpy.ndarray called with an object dtype and a buffer":
        _global("numpy", "ndarray") + b"(" + _pushes((1,)) + _pushes(np.dtype(object)) + _NULL_POINTER + b"tR",
    "an object dtype whose state clears its flags, then raw bytes as its data":
        _array_with(_dtype_with_state("O8", (3, "|", None, None, None, -1, -1, 0))),
    "a void dtype of itemsize -1": _dtype_with_state("V8", (3, "|", None, None, None, -1, -1, 0)),
    "a datetime dtype without its unit": _dtype_with_state("M8", (3, "<", None, None, None, -1, -1, 0)),
    "a dtype described by a dict": _global("numpy", "dtype") + _pushes(({"names": ["a"], "formats": ["O"]},)) + b"R",
    "_reconstruct of a large shape": (_global("numpy._core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
                                      + _pushes((10**12,)) + _pushes(b"b") + b"\x87R"),
    "the state of a numpy scalar": _pushes(np.float64(1.0)) + _pushes((np.dtype("O"), 0)) + b"b",
    "a bytearray by size": _global("builtins", "bytearray") + _pushes((2**40,)) + b"R",
    "_codecs.encode to another codec": _global("_codecs", "encode") + _pushes(("x", "zlib")) + b"R",
    # scalar(dtype) without data: gives a zero-size dtype an itemsize of 1 in place (an array made with it then
    # read the heap past its buffer), or allocates whatever itemsize the file names (found by a reviewing helper)
    "a numpy scalar without its data (zero-size dtype)":
        _global("numpy._core.multiarray", "scalar") + b"(" + _pushes(np.dtype("V0")) + b"tR",
    "a numpy scalar without its data (300 MB dtype)":
        _global("numpy._core.multiarray", "scalar") + b"(" + _pushes(np.dtype("V300000000")) + b"tR",
}


@pytest.mark.parametrize("name", list(FORGED))
def test_forged_numpy_reconstructions_are_refused(tmp_path, name):
    path = tmp_path / "forged.pkl"
    path.write_bytes(b"\x80\x02" + FORGED[name] + b".")
    with pytest.raises(UnsafePickleError, match=r"forged.pkl.*refusing"):
        load_pickle(str(path))


def test_a_dtype_used_before_its_state_does_not_change_under_the_array():
    """A void dtype given to an array, then the state of a structured dtype with an object field: the array's
    raw bytes became object pointers. Now the state builds a new dtype; the array keeps the plain void one."""
    forged = (b"\x80\x02" + _global("numpy", "dtype") + _pushes(("V8", False, True)) + b"Rq\x000"  # memo 0, pop
              + _array_with(b"h\x00") + b"h\x00"                   # the array of dtype V8, then the dtype again
              + _pushes(np.dtype([("a", "O")]).__reduce__()[2]) + b"b\x86.")  # its state; (array, dtype)
    array, dtype = load_pickle(io.BytesIO(forged))
    assert array.dtype == np.dtype("V8") and not array.dtype.hasobject
    assert dtype == np.dtype([("a", "O")])


ROUND_TRIP_DTYPES = ["f4", ">f8", "<i2", ">u4", "?", "c16", "U3", ">U2", "S5", "V8", "M8[10s]", ">m8[D]", "i4,f8",
                     [("a", ">i4"), ("b", "f8", (2,))], ("f4", (2, 3)),
                     {"names": ["a"], "formats": ["f8"], "titles": ["T"]}, [("n", [("x", "u1"), ("y", ">f4")])]]


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
@pytest.mark.parametrize("spec", ROUND_TRIP_DTYPES, ids=str)
def test_arrays_scalars_and_dtypes_that_numpy_pickles_load_unchanged(protocol, spec):
    dtype = np.dtype(spec)
    objects = [np.zeros((2, 2), dtype, order="F"), np.zeros((), dtype), np.zeros(0, dtype), np.zeros(1, dtype)[0],
               dtype, np.dtype(spec, align=True), np.ones(3, np.dtype(spec, align=True))]
    for obj in objects:
        raw = pickle.dumps(obj, protocol=protocol)
        loaded, expected = load_pickle(io.BytesIO(raw)), pickle.loads(raw)
        assert type(loaded) is type(expected)
        if isinstance(expected, np.dtype):
            assert loaded == expected and loaded.__reduce__() == expected.__reduce__()
        else:
            assert loaded.dtype == expected.dtype and loaded.tobytes() == expected.tobytes()
            assert np.shape(loaded) == np.shape(expected)


def test_object_arrays_of_containers_still_load():
    """label_map in imagenet_val_25.npz is a 0-d object array holding a dict."""
    for protocol in (2, 4, 5):
        loaded = load_pickle(io.BytesIO(pickle.dumps(
            [np.array({1: "goldfish"}, dtype=object), np.array([[1, "a"], [None, (2,)]], dtype=object)],
            protocol=protocol)))
        assert loaded[0].item() == {1: "goldfish"}
        assert loaded[1].tolist() == [[1, "a"], [None, (2,)]]


def test_a_bytearray_resized_under_an_array_is_a_malformed_pickle():
    """APPENDS on a bytearray that an array from _frombuffer exports raised a bare BufferError, which stopped
    load_models instead of making it skip the file."""
    bytearray_ = _global("builtins", "bytearray") + b"(" + _pushes(b"12345678") + b"tRq\x000"
    array = (_global("numpy._core.numeric", "_frombuffer") + b"(h\x00" + _global("numpy", "dtype")
             + _pushes(("u1", False, True)) + b"R" + _pushes((8,)) + _pushes("C") + b"tRq\x010")
    grow = b"h\x00(" + b"K\x01" * 1000 + b"e0"
    with pytest.raises(pickle.UnpicklingError, match="BufferError"):
        load_pickle(io.BytesIO(b"\x80\x02" + bytearray_ + array + grow + b"h\x01h\x00\x86."))


def _forged(obj, old, new, protocol=2):
    raw = pickle.dumps(obj, protocol=protocol)
    assert raw.count(old) == 1
    return io.BytesIO(raw.replace(old, new))


def test_an_object_array_state_with_fewer_items_than_its_shape_is_refused():
    """Shape (2,) forged to (255,) for a list of 2 objects: ndarray.__setstate__ left 253 pointers unset, and the
    interpreter crashed (SIGSEGV). In a process of its own, so that a return of the crash fails one test only."""
    code = textwrap.dedent("""
        import io, pickle, numpy as np
        from fastnn.data_utils import UnsafePickleError, load_pickle
        raw = pickle.dumps({"model": np.array([1, "a"], dtype=object)}, protocol=2)
        assert raw.count(b"K\\x01K\\x02\\x85") == 1
        try:
            load_pickle(io.BytesIO(raw.replace(b"K\\x01K\\x02\\x85", b"K\\x01K\\xff\\x85")))
        except UnsafePickleError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refusing an array of shape (255,) and dtype object whose state does not hold one Python object per " \
           "entry" in result.stdout


@pytest.mark.parametrize("obj, old, new, words", [
    (np.arange(3.0), b"K\x01K\x03\x85", b"K\x01K\x04\x85", "exactly its 32 bytes"),
    (np.arange(3.0), b"K\x01K\x03\x85", b"K\x01J\xff\xff\xff\xff\x85", "shape (-1,) is not a tuple of sizes"),
])
def test_an_array_state_that_does_not_fill_its_shape_is_refused(obj, old, new, words):
    with pytest.raises(UnsafePickleError, match=re.escape(words)):
        load_pickle(_forged(obj, old, new))


@pytest.mark.parametrize("type_string", [b",4", b"(4", b"i4,"])
def test_a_dtype_type_string_numpy_never_pickles_is_refused(type_string):
    """',4' reached np.dtype, whose parser raised a bare SyntaxError: load_models stopped instead of skipping."""
    forged = _forged(np.zeros(2, dtype=[("a", "<f4")]), b"X\x02\x00\x00\x00V4",
                     b"X" + len(type_string).to_bytes(4, "little") + type_string)
    with pytest.raises(UnsafePickleError, match="refusing numpy.dtype of "):
        load_pickle(forged)
