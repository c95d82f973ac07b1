"""The one place numba options live. Kernel modules use `kernel` and `variant`; nothing else calls numba.jit.

- Compilation is lazy: a kernel compiles for the argument types of its first call (float32 and float64 each
  compile once, on demand); importing a kernel module compiles nothing.
- The `cache` setting (fastnn.options, FASTNN_CACHE=1) turns on numba's on-disk cache; it is read once, when
  this module is first imported (the first compiled layer, optimizer step or fastnn.warmup()). A cache
  directory that cannot be written is one warning, never an error: numba then caches in its next location (the
  __pycache__ beside the kernels, or a user-wide one), and where it has none the kernel compiles in memory.
- FASTMATH holds the LLVM flags that keep NaN/Inf semantics and exact functions: no 'nnan', no 'ninf', no 'afn',
  no 'arcp'. Kernels whose inner loop is a sum along a row use it: 'reassoc' lets LLVM vectorise the sum
  (measured 3-6x here); each sum is still computed the same way on every run and at every thread count. Not
  'nsz' either: with it, the float64 norms loaded from numba's cache summed otherwise than the same kernels
  compiled in the process (1e-17 to 3e-14 apart), and it bought no measurable speed.
- Parallel kernels are compiled with parallel=True; `variant(kernel, parallel=False)` returns a serial build of
  the same Python function (prange runs as range), compiled only if it is ever asked for. The serial build runs
  where the parallel one is unsafe: numba's default 'workqueue' threading layer aborts the process when two
  Python threads launch parallel kernels at once, so calls from threads other than the main one run serially
  unless a thread-safe layer (tbb, omp) is in use; so do calls in a process forked after its parent had
  started numba's threads. fastnn asks for 'workqueue' unless the user chose a layer (see
  _threads.prefer_workqueue).
- The serial build also runs where a parallel loop cannot pay for itself (see `parallel_pays`): on one thread,
  and on two under 'workqueue'.
"""

import os
import threading
import types
import warnings

import numba
import numpy as np

from .. import _forked
from .._options import fix_cache
from . import _threads  # noqa: F401  (importing it chooses numba's threading layer)

FASTMATH = {"contract", "reassoc"}
CACHE = fix_cache()  # numba takes `cache` when a kernel is decorated, so the setting holds from here on

_serial_builds = {}
_serial_lock = threading.Lock()
_cache_warned = False


@_forked.in_child
def _fresh_lock():  # another thread may have held the lock at the fork; it will never release it here
    global _serial_lock
    _serial_lock = threading.Lock()


def _options(parallel, fast_sums):
    return dict(
        nogil=True,
        cache=CACHE,
        parallel=parallel,
        fastmath=set(FASTMATH) if fast_sums else False,
        error_model="numpy",
    )


# A helper called from kernels compiles once per distinct argument-type signature: a constant argument is typed
# as its own literal, and a prange index is uint64 in the parallel build but int64 in the serial one. Callers wrap
# such int arguments in i64(...) so each helper compiles once per dtype (the Winograd kernels' first compile took
# 0.7-0.8x the time, measured here).
i64 = np.int64


def kernel(function=None, *, parallel=False, fast_sums=False):
    """Decorate a kernel: `@kernel` (serial) or `@kernel(parallel=True)` (disjoint writes only);
    fast_sums=True compiles with FASTMATH, for kernels whose inner loop sums along a row."""

    def decorate(fn):
        return _njit(fn, _options(parallel, fast_sums))

    return decorate(function) if function is not None else decorate


def _njit(fn, options):
    """numba.njit(**options)(fn); with caching on, a cache numba refuses is one warning and fn compiles in memory,
    and a NUMBA_CACHE_DIR numba passed over is one warning naming where the cache went instead."""
    try:
        dispatcher = numba.njit(**options)(fn)
    except (OSError, RuntimeError) as error:  # numba checks the cache directory at decoration time
        if not options.get("cache"):
            raise
        _warn_once(f"the kernel cache is on but numba cannot use its cache ({error}); compiling in memory")
        return numba.njit(**{**options, "cache": False})(fn)
    if options.get("cache"):
        _check_cache_directory(dispatcher)
    return dispatcher


def _check_cache_directory(dispatcher):
    """numba moves on to its next cache location without a word when NUMBA_CACHE_DIR cannot be written: to the
    __pycache__ beside the kernels (an editable install's source tree), or a user-wide directory."""
    wanted = numba.config.CACHE_DIR
    path = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
    if not wanted or not path:
        return
    wanted, path = os.path.abspath(wanted), os.path.abspath(path)
    if os.path.commonpath([wanted, path]) != wanted:
        _warn_once(f"NUMBA_CACHE_DIR={wanted!r} cannot be written, so numba caches the kernels in {path!r}")


def _warn_once(message):
    global _cache_warned
    if not _cache_warned:
        _cache_warned = True
        warnings.warn(f"fastnn: {message}", RuntimeWarning, stacklevel=4)


def threading_layer_is_thread_safe():
    """True when numba's threading layer tolerates parallel kernels launched from several threads."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer is not chosen
        layer = numba.config.THREADING_LAYER
    return layer in ("tbb", "omp")


def parallel_allowed(parallel):
    """Whether a parallel kernel may run here: asked for (the caller passes the `parallel` setting), safe on this
    thread, and not in a child forked after the parent started numba's threads (the child's copy of the pool
    hangs: measured here)."""
    if not parallel or _forked.numba_pool_inherited:
        return False
    return threading.current_thread() is threading.main_thread() or threading_layer_is_thread_safe()


WORKQUEUE_MIN_THREADS = 3


def parallel_pays(threads):
    """Whether a parallel loop on `threads` numba threads can beat the serial build.

    Not on one thread: launching the loop costs ~30 us even then (measured here, against 0.3 us for a serial
    call), a tenth of a 4 MB batchnorm pass. Not on two under 'workqueue' (2 threads on 2 cores, measured here):
    a parallel loop of 2.3 ms of arithmetic ran no faster than the serial build, 9 ms 1.05x, 36 ms 1.8x, against
    1.9x at every size under 'omp'. workqueue's launching thread sleeps while one worker per thread runs a chunk,
    and the two woken workers apparently start on one core and spread only after milliseconds. The kernel calls
    of the CS231n models and of `fastnn bench` take at most a few milliseconds, and a 2-thread ThreeLayerConvNet /
    FullyConnectedNet train step took 0.94x / 0.88x the time with the serial builds. With WORKQUEUE_MIN_THREADS
    threads or more, a worker left waiting for a core delays one chunk of several.
    """
    if threads < 2:
        return False
    if threads >= WORKQUEUE_MIN_THREADS:
        return True
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel loop has run yet: the configured layer is the one that will
        return numba.config.THREADING_LAYER not in ("workqueue", "default")


def _serial_copy(fn):
    """fn under the name fn_serial. numba names a function's cache files and keys their entries by its name and
    signature, not by its compile options: the serial build must not read or overwrite the parallel one's."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                              fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + "_serial"
    copy.__module__, copy.__doc__ = fn.__module__, fn.__doc__
    return copy


def variant(kernel_fn, parallel):
    """`kernel_fn` itself where a parallel kernel may run and pays (parallel_allowed, parallel_pays), else its
    serial build (compiled on first use). `parallel` is the caller's `current().parallel`, passed rather than read
    here so that no call site can leave it out."""
    options = getattr(kernel_fn, "targetoptions", None)  # None under NUMBA_DISABLE_JIT=1: plain Python
    if options is None or not options.get("parallel"):
        return kernel_fn
    if parallel_allowed(parallel) and parallel_pays(numba.get_num_threads()):
        return kernel_fn
    key = id(kernel_fn)
    build = _serial_builds.get(key)
    if build is None:
        with _serial_lock:
            build = _serial_builds.get(key)
            if build is None:
                options = dict(kernel_fn.targetoptions, parallel=False, cache=CACHE)
                options.pop("boundscheck", None)
                options.pop("nopython", None)  # njit sets it; passing it again only warns
                build = _njit(_serial_copy(kernel_fn.py_func), options)
                _serial_builds[key] = build
    return build
