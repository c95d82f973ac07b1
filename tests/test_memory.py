"""The compiled path's array reuse: scratch never escapes, recycled memory is reused only once nobody holds it."""

import gc

import numpy as np
import pytest

from fastnn import fast_layers, options
from fastnn._conv_cache import ColumnsFromInput
from fastnn.compiled import _memory
from fastnn.testing import assert_close

BIG = (_memory.RECYCLE_MIN_BYTES // 8 + 1,)

needs_recycling = pytest.mark.skipif(not _memory.RECYCLING, reason="this interpreter's refcounts are not exact")


@needs_recycling
def test_an_array_nobody_holds_is_reused():
    a = _memory.recycled(BIG, np.float64)
    address = a.ctypes.data
    del a
    gc.collect()
    assert _memory.recycled(BIG, np.float64).ctypes.data == address


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


def test_small_and_mismatched_requests_get_fresh_arrays():
    small = _memory.recycled((4,), np.float32)
    assert small.shape == (4,) and small.dtype == np.float32
    a = _memory.recycled(BIG, np.float64)
    del a
    b = _memory.recycled(BIG, np.float32)
    assert b.dtype == np.float32 and b.shape == BIG


def test_slots_are_bounded():
    held = [_memory.recycled((BIG[0] + i,), np.float64) for i in range(_memory.RECYCLE_SLOTS + 3)]
    assert len(_memory._local.recycled) == _memory.RECYCLE_SLOTS
    assert len({h.ctypes.data for h in held}) == len(held)


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
