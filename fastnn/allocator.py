"""keep_freed_memory(): an opt-in for training processes, applied by the `fastnn train` and `fastnn tune` commands;
release_memory(): let go of the buffers fastnn's compiled layers keep for reuse.

glibc's malloc hands arrays of a few MB to the OS when they are freed (it trims the heap top, and maps the
largest ones anew), so the next step's arrays of the same sizes page-fault again on first write (the README's
Options section gives the faults per ThreeLayerConvNet train step and the time they cost, as measured). Asking
malloc to keep freed memory removes them. It is process-wide (it also serves
NumPy, PyTorch and everything else in the process) and keeps up to the process's peak heap allocated, so the
library never does it on import: a user's own training script calls it once.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest accepted value: arrays up to 32 MB then come from the heap
TRIM_THRESHOLD = 2**31 - 1  # the largest int mallopt takes: in effect, never give the heap top back


def _glibc_mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # glibc only: other C libraries' mallopt takes other options
    return libc.mallopt if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    Returns True when applied, False where the C library is not glibc (nothing is changed there).
    """
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_memory():
    """Let go of the work buffers and large recycled outputs that fastnn's compiled layers keep for reuse, in every
    thread (otherwise each thread keeps its own while it lives: a thread pool or a dask worker that ran a
    convolution keeps its columns, up to tens of MB). The next call allocates them again.

    Returns the bytes fastnn stopped keeping; an output a caller still holds stays valid and is freed with it.
    """
    from .compiled._memory import release

    return release()
