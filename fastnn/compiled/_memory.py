"""Large arrays for the compiled path without a page fault per call.

A fresh array of tens of MB (whole-batch im2col columns were 38 MB for the CS231n shapes; Winograd's transformed
tiles are 2.25x the input) is mapped anew by malloc on every call, and the kernel then pays a page fault per page it
writes first: 530 faults, about 3 ms of a 5 ms whole-batch im2col, measured here. Two kinds of reuse avoid
that, both per thread:

- `scratch`: a buffer that never leaves the call that asked for it, reused by the next call.
- `recycled`: an array that is returned to the caller (a layer's output or gradient written by a kernel, or
  inside a cache; not the GEMMs' own results such as affine's out, dx and dw, nor a conv's dw); the
  next call with the same shape reuses its memory only once nothing but this module refers to it (CPython's
  reference count), so an array the caller still holds is never overwritten. Interpreters whose reference counts
  cannot be trusted so (checked once at import) always get a fresh array.

Only arrays of RECYCLE_MIN_BYTES (32 MB) or more are recycled: glibc's malloc maps those anew on every call (its
mmap threshold cannot be set higher), unless the free top of its heap happens to hold one (a dropout forward +
backward on (1024, 4096) float64 took 21.6-21.9 ms with fresh arrays, 10.4-11.1 ms recycled, measured here). A
smaller array comes back from malloc's heap, often memory that whatever ran just before freed and left in cache,
where a recycled one was last written a whole step ago: recycling from 4 MB made a layernorm forward + backward on
(1024, 1024) float32, run between two reference ones, take 2.09-2.22 ms instead of 1.30-1.34. The page faults those
sizes can still take in a training loop, when malloc gives a step's freed arrays back to the OS, are what
fastnn.allocator.keep_freed_memory() is for.

A thread's scratch buffers and recycled arrays are kept while it lives, or until `release()`
(fastnn.allocator.release_memory()) lets every thread's go.
"""

import math
import sys
import threading
import weakref

import numpy as np

from .. import _calls
from .._forked import in_child

RECYCLE_MIN_BYTES = 1 << 25  # glibc's largest mmap threshold: malloc maps arrays from this size anew
RECYCLE_BUDGET_BYTES = 1 << 28  # per thread, the kept arrays together (so at most 8 of them): what callers let go
# of and this module still keeps is at most this much (the oldest are dropped beyond it; a larger array is never kept)


class _Kept:
    """One thread's kept arrays: scratch buffers by (name, dtype str), and recycled arrays, most recently used
    last. release() swaps in empty ones: a call under way finishes with the store it already holds."""

    __slots__ = ("scratch", "recycled", "__weakref__")

    def __init__(self):
        self.scratch = {}
        self.recycled = []


_local = threading.local()
_every_thread = weakref.WeakSet()  # each live thread's _Kept: a thread's locals, and so its _Kept, die with it
_every_thread_lock = threading.Lock()


@in_child
def _fresh_lock():  # another thread may have held the lock at the fork; it will never release it here
    global _every_thread_lock
    _every_thread_lock = threading.Lock()


def _kept():
    kept = getattr(_local, "kept", None)
    if kept is None:
        kept = _local.kept = _Kept()
        with _every_thread_lock:
            _every_thread.add(kept)
    return kept


def release():
    """Stop keeping every thread's scratch and recycled arrays. Returns the bytes they held; the memory goes
    back to malloc once no caller (and no call under way) still uses it."""
    with _every_thread_lock:
        every = list(_every_thread)
    released = 0
    for kept in every:
        scratch, recycled = kept.scratch, kept.recycled
        kept.scratch, kept.recycled = {}, []
        released += sum(a.nbytes for a in list(scratch.values())) + sum(a.nbytes for a in list(recycled))
    return released


def scratch(name, shape, dtype):
    """A per-thread scratch array of this shape, reused across calls (never returned to the caller). A layer
    called while another runs in this thread (fastnn._calls) gets a fresh one: the kept ones are the outer call's."""
    if _calls.nested():
        return np.empty(shape, dtype=dtype)
    size = math.prod(shape)  # np.prod takes 2.6 us, a tenth of a small kernel call
    key = (name, np.dtype(dtype).str)
    store = _kept().scratch
    buf = store.get(key)
    if buf is None or buf.size < size:
        buf = store[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _only_held_here(slots, i):
    # slots[i] itself and getrefcount's argument: no caller holds the array or any view of it
    return sys.getrefcount(slots[i]) == 2


def _refcounts_are_exact():
    slots = [np.empty(1)]
    held = slots[0]
    busy = not _only_held_here(slots, 0)
    del held
    return busy and _only_held_here(slots, 0)


RECYCLING = _refcounts_are_exact()


def recycled(shape, dtype):
    """An uninitialised array, like np.empty, whose memory may be that of an earlier result nobody holds. The
    caller gets a new view of the kept array each time, so what it does to its array object (flags, shape, weak
    references) never reaches the next caller."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if not RECYCLING or not RECYCLE_MIN_BYTES <= nbytes <= RECYCLE_BUDGET_BYTES:
        return np.empty(shape, dtype=dtype)
    slots = _kept().recycled
    for i in range(len(slots)):
        if slots[i].shape == tuple(shape) and slots[i].dtype == dtype and _only_held_here(slots, i):
            slots.append(slots.pop(i))  # most recently used last
            return slots[-1].view()
    slots.append(np.empty(shape, dtype=dtype))
    while sum(slot.nbytes for slot in slots) > RECYCLE_BUDGET_BYTES:
        slots.pop(0)
    return slots[-1].view()
