"""numba's threads for fastnn's kernels: the threading layer, chosen on import (before anything in fastnn starts
numba's threads), and the thread count, read or set for a block. Never touches environment variables."""

import os
import threading
import warnings
from contextlib import ContextDecorator, contextmanager

import numba

from .. import _checks


def prefer_workqueue():
    """Choose numba's 'workqueue' threading layer unless the user chose one or numba has started its threads.

    numba would otherwise pick 'omp' where libgomp exists, whose idle threads spin for a while after each
    parallel loop; between fastnn's kernels come OpenBLAS GEMMs whose threads spin too, and on the same cores
    the two runtimes starve each other (measured here, 2 cores: `fastnn train` 7.0 s for 5 epochs with 'omp',
    0.8-1.0 s with 'workqueue'; a 2-thread FullyConnectedNet step 164 ms against 43 ms). A user who needs a
    thread-safe layer sets NUMBA_THREADING_LAYER (or numba.config.THREADING_LAYER) and fastnn keeps it.
    Reading or setting numba's thread count starts its threads, so every such call in fastnn goes through
    this module (num_threads).
    """
    from numba.np.ufunc import parallel as numba_parallel

    chosen = os.environ.get("NUMBA_THREADING_LAYER") or numba.config.THREADING_LAYER != "default"
    if not chosen and not numba_parallel._is_initialized:
        numba.config.THREADING_LAYER = "workqueue"


prefer_workqueue()


def num_threads(n=None):
    """num_threads() -> numba's current thread count; `with num_threads(n):` uses n threads inside the block
    and restores the previous count afterwards, also when the block raises."""
    if n is None:
        return numba.get_num_threads()
    n = _checks.integer("fastnn.num_threads", "n", n)
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"fastnn.num_threads: n must be between 1 and {limit} (numba's limit: NUMBA_NUM_THREADS, "
                         f"by default the CPUs this process may use), got {n}")
    return _ThreadsBlock(n)


class _ThreadsBlock(ContextDecorator):
    """threads(n) as `with num_threads(n):` enters it (or as `@num_threads(n)` wraps a function); a call never
    used so says when it is dropped, as it changed nothing (num_threads(2) on its own line looks like a setter)."""

    def __init__(self, n):
        # the blocks entered and not yet left, per thread: one object entered in two threads at once (a module-level
        # `limit = num_threads(2)`) must restore each thread's own count
        self.n, self._entered, self._used = n, threading.local(), False

    @property
    def _blocks(self):
        if not hasattr(self._entered, "blocks"):
            self._entered.blocks = []
        return self._entered.blocks

    def _recreate_cm(self):  # each call of a decorated function enters a block of its own
        self._used = True
        return _ThreadsBlock(self.n)

    def __enter__(self):
        self._used = True
        block = threads(self.n)
        self._blocks.append(block)
        return block.__enter__()

    def __exit__(self, *exc_info):
        return self._blocks.pop().__exit__(*exc_info)

    def __del__(self):
        if not self._used:
            warnings.warn(f"fastnn.num_threads({self.n}) changed nothing: the count applies inside "
                          f"`with fastnn.num_threads({self.n}):` only", RuntimeWarning, stacklevel=2)


@contextmanager
def threads(n):
    """n numba threads inside the block (n checked by the caller), the previous count restored after."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)
