"""The compiled path's array reuse: scratch never escapes, recycled memory is reused only once nobody holds it."""

import gc

import numpy as np
import pytest

from fastnn import fast_layers, options
from fastnn._conv_cache import ColumnsFromInput
from fastnn.compiled import _memory
from fastnn.testing import assert_close

SMALL_MIN_BYTES = 1 << 20  # the tests recycle from 1 MB instead of 32, to stay light
BIG = (SMALL_MIN_BYTES // 8 + 1,)


@pytest.fixture(autouse=True)
def _recycle_from_one_megabyte(monkeypatch):
    monkeypatch.setattr(_memory, "RECYCLE_MIN_BYTES", SMALL_MIN_BYTES)

needs_recycling = pytest.mark.skipif(not _memory.RECYCLING, reason="this interpreter's refcounts are not exact")


@needs_recycling
def test_an_array_nobody_holds_is_reused():
    a = _memory.recycled(BIG, np.float64)
    address = a.ctypes.data
    del a
    gc.collect()
    again = _memory.recycled(BIG, np.float64)
    assert again.ctypes.data == address
    assert any(np.shares_memory(again, slot) for slot in _memory._local.kept.recycled)  # kept here, not malloc's reuse


@pytest.mark.parametrize("holder", ["array", "view", "tuple"])
def test_an_array_still_held_is_never_handed_out_again(holder):
    a = _memory.recycled(BIG, np.float64)
    a.fill(7.0)
    kept = {"array": a, "view": a[::2], "tuple": (1, a)}[holder]
    del a
    b = _memory.recycled(BIG, np.float64)
    b.fill(-1.0)
    original = kept if holder == "array" else (kept[1] if holder == "tuple" else kept)
    assert not np.shares_memory(b, original)
    assert np.all(original == 7.0)


@needs_recycling
def test_small_and_mismatched_requests_get_fresh_arrays():
    small = _memory.recycled((4,), np.float32)
    assert small.shape == (4,) and small.dtype == np.float32 and small.base is None
    shape = (SMALL_MIN_BYTES // 4 + 1,)  # large enough to be kept in float32 as in float64
    a = _memory.recycled(shape, np.float64)
    kept = a.base
    del a
    b = _memory.recycled(shape, np.float32)
    assert b.dtype == np.float32 and b.shape == shape and not np.shares_memory(b, kept)
    c = _memory.recycled((shape[0] + 1,), np.float64)
    assert not np.shares_memory(c, kept)


def test_scratch_is_reused_and_shaped():
    a = _memory.scratch("t", (3, 4), np.float32)
    b = _memory.scratch("t", (2, 2), np.float32)
    assert a.shape == (3, 4) and b.shape == (2, 2) and np.shares_memory(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("filter_size", [3, 5])  # Winograd tiles (recycled), im2col (keeps no array)
def test_a_kept_convolution_cache_survives_later_calls(dtype, filter_size):
    """Two forwards with their caches alive, then backward on the first: what they keep is not shared, and
    the scratch reused by later calls does not change the first one's gradients."""
    g = np.random.default_rng(0)
    x1, x2 = (g.standard_normal((32, 16, 32, 32)).astype(dtype) for _ in range(2))
    w = g.standard_normal((4, 16, filter_size, filter_size)).astype(dtype)
    b = g.standard_normal(4).astype(dtype)
    param = {"stride": 1, "pad": filter_size // 2}
    with options(backend="jit"):
        out1, cache1 = fast_layers.conv_forward_fast(x1, w, b, param)
        out2, cache2 = fast_layers.conv_forward_fast(x2, w, b, param)
        if filter_size == 3:
            kept1, kept2 = cache1[4].V, cache2[4].V
            assert kept1.nbytes >= _memory.RECYCLE_MIN_BYTES  # large enough to be recycled
            assert not np.shares_memory(kept1, kept2)
            del kept1, kept2
        else:
            assert isinstance(cache1[4], ColumnsFromInput) and cache1[4].dtype == dtype
        grads = fast_layers.conv_backward_fast(out1, cache1)
        del out2, cache2
        for _ in range(2):  # reuse of the second one's memory must not touch the first
            fast_layers.conv_forward_fast(x2, w, b, param)
        again = fast_layers.conv_backward_fast(out1, cache1)
    with options(backend="reference"):
        expected = fast_layers.conv_backward_fast(out1, fast_layers.conv_forward_fast(x1, w, b, param)[1])
    for got, same, want in zip(grads, again, expected):
        np.testing.assert_array_equal(got, same)
        assert_close(got, want, dtype=dtype, direction="backward")


@needs_recycling
def test_the_kept_arrays_stay_within_the_budget(monkeypatch):
    """Beyond RECYCLE_BUDGET_BYTES the oldest slots are let go, and an array larger than the budget is never kept,
    so what a caller has dropped is not held on to without bound."""
    monkeypatch.setattr(_memory, "_local", type(_memory._local)())
    monkeypatch.setattr(_memory, "RECYCLE_BUDGET_BYTES", 3 * _memory.RECYCLE_MIN_BYTES)
    for _ in range(5):
        _memory.recycled(BIG, np.float64)  # each dropped at once, so the same memory comes back
    assert len(_memory._local.kept.recycled) == 1
    held = [_memory.recycled((BIG[0] + i,), np.float64) for i in range(4)]
    assert sum(a.nbytes for a in _memory._local.kept.recycled) <= _memory.RECYCLE_BUDGET_BYTES
    assert held[-1].base is _memory._local.kept.recycled[-1]
    huge = _memory.recycled((4 * BIG[0],), np.float64)
    assert huge.base is None and not any(np.shares_memory(huge, slot) for slot in _memory._local.kept.recycled)


@needs_recycling
@pytest.mark.parametrize("layer", ["dropout", "relu", "conv", "batchnorm"])
def test_a_layer_output_nobody_holds_is_reused_and_one_held_is_not(layer):
    """The layers' outputs and gradients are recycled: a step whose arrays were dropped gets the same memory (no
    page faults), and an output the caller kept is never written by a later call."""
    g = np.random.default_rng(1)
    x = g.standard_normal((8, 8, 64, 64)).astype(np.float32)  # 1 MB: just large enough to be recycled here
    run = {
        "dropout": lambda: fast_layers.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1})[0],
        "relu": lambda: fast_layers.relu_forward(x)[0],
        "conv": lambda: fast_layers.conv_forward_fast(x, w, np.zeros(8, np.float32), {"stride": 1, "pad": 2})[0],
        "batchnorm": lambda: fast_layers.spatial_batchnorm_forward(x, np.ones(8, np.float32), np.zeros(8, np.float32),
                                                                   {"mode": "train"})[0],
    }[layer]
    w = g.standard_normal((8, 8, 5, 5)).astype(np.float32)
    with options(backend="jit"):
        first = run()
        assert first.nbytes >= _memory.RECYCLE_MIN_BYTES
        kept = first.copy()
        second = run()
        assert not np.shares_memory(first, second)
        np.testing.assert_array_equal(first, kept)
        address = second.__array_interface__["data"][0]
        del second
        third = run()
        assert third.__array_interface__["data"][0] == address
        assert any(np.shares_memory(third, slot) for slot in _memory._local.kept.recycled)  # not malloc's doing
        np.testing.assert_array_equal(third, kept)


@needs_recycling
def test_what_a_caller_does_to_its_array_object_does_not_reach_the_next_caller():
    """A caller that made its output read-only (or changed its shape) and dropped it does not hand the next call
    a read-only output (a numba TypingError in the kernel once); a weak reference to it dies with it."""
    import weakref

    x = np.random.default_rng(2).standard_normal(BIG)
    with options(backend="jit"):
        out, _ = fast_layers.relu_forward(x)
        out.flags.writeable = False
        gone = weakref.ref(out)
        del out
        assert gone() is None
        again, _ = fast_layers.relu_forward(x)
        assert again.flags.writeable and any(np.shares_memory(again, slot) for slot in _memory._local.kept.recycled)
        np.testing.assert_array_equal(again, np.maximum(x, 0))
        again.shape = (1,) + BIG
        del again
        third, _ = fast_layers.relu_forward(x)
        assert third.shape == BIG


def _kept_bytes(kept):
    return sum(a.nbytes for a in kept.scratch.values()) + sum(a.nbytes for a in kept.recycled)


@needs_recycling
def test_release_memory_lets_go_of_every_threads_arrays_and_spares_what_callers_hold():
    """A live worker thread's kept arrays are let go by a call from the main thread; an output the caller still
    holds keeps its values and is not handed out again; the next call simply allocates anew."""
    import threading

    from fastnn.allocator import release_memory

    release_memory()
    ready, released, finished = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def worker():
        _memory.scratch("t", (1000,), np.float64)
        dropped = _memory.recycled(BIG, np.float64)
        del dropped
        seen["kept"] = _memory._local.kept
        ready.set()
        released.wait(30)
        seen["after"] = _kept_bytes(_memory._local.kept)
        seen["again"] = _memory.recycled(BIG, np.float64).shape
        finished.set()

    thread = threading.Thread(target=worker)
    thread.start()
    assert ready.wait(30)
    held = _memory.recycled(BIG, np.float64)
    held.fill(3.0)
    big = 8 * BIG[0]
    assert _kept_bytes(seen["kept"]) == 8000 + big  # the worker's scratch and dropped recycled array
    assert release_memory() == 8000 + 2 * big  # and this thread's held one
    released.set()
    assert finished.wait(30)
    thread.join(30)
    assert seen["after"] == 0 and seen["again"] == BIG
    seen.clear()
    gc.collect()
    assert release_memory() == 0 and not _memory._local.kept.recycled  # the worker, gone, took its new one along
    after = _memory.recycled(BIG, np.float64)
    after.fill(-1.0)
    assert not np.shares_memory(after, held) and np.all(held == 3.0)


def test_a_finished_threads_kept_arrays_go_with_it():
    """Each thread's store lives in its thread-local: when the thread ends it leaves the registry too, so
    release_memory() never walks (or keeps alive) the stores of threads that are gone."""
    import threading

    thread = threading.Thread(target=lambda: _memory.scratch("t", (1000,), np.float64))
    before = len(_memory._every_thread)
    thread.start()
    thread.join(30)
    gc.collect()
    assert len(_memory._every_thread) <= before


@pytest.mark.parametrize("filter_size", [3, 5], ids=["winograd", "im2col"])
def test_a_layer_called_in_the_middle_of_another_leaves_its_work_buffers_alone(filter_size, monkeypatch):
    """A finalizer (the garbage collector runs them at any allocation) or a signal handler can call a layer
    between two steps of another in the same thread. It took the outer call's work buffers: a Winograd forward
    filled its products, allocated its output (where the inner convolution ran and wrote the same buffer), then
    read them back, up to 3e5 off. The inner call runs here where the collector could have run it."""
    from fastnn.compiled import conv, winograd

    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((8, 4, 8, 8)), rng.standard_normal((4, 4, filter_size, filter_size)), np.zeros(4)
    conv_param = {"stride": 1, "pad": filter_size // 2}
    with options(backend="jit"):
        expected_out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
        dout = rng.standard_normal(expected_out.shape)
        expected_grads = fast_layers.conv_backward_fast(dout, cache)

    inner_calls = []

    def after_another_layer(step):
        def run(*args):
            if not inner_calls:  # once: the inner call takes this step too
                inner_calls.append(step)
                out, inner_cache = fast_layers.conv_forward_fast(-50 * x, w, b, conv_param)
                fast_layers.conv_backward_fast(7 * dout, inner_cache)
            return step(*args)
        return run

    # Winograd's forward fills its products, then allocates its output; im2col's backward gathers a block's
    # columns, then takes the weight gradient from them
    module, name = (winograd, "recycled") if filter_size == 3 else (conv, "_weight_gradient")
    monkeypatch.setattr(module, name, after_another_layer(getattr(module, name)))
    with options(backend="jit"):
        out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
        inner_calls.clear()
        grads = fast_layers.conv_backward_fast(dout, cache)
    assert inner_calls  # the inner layer did run inside the outer one
    np.testing.assert_array_equal(out, expected_out)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_array_equal(got, want)
