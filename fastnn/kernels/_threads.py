"""numba's thread count for fastnn's kernels, read or set for a block. Never touches environment variables."""

from contextlib import contextmanager

import numba


def num_threads(n=None):
    """num_threads() -> numba's current thread count; `with num_threads(n):` uses n threads inside the block
    and restores the previous count afterwards, also when the block raises."""
    if n is None:
        return numba.get_num_threads()
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"fastnn.num_threads: n must be an integer, got {n!r}")
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"fastnn.num_threads: n must be between 1 and {limit} (NUMBA_NUM_THREADS), got {n}")
    return _threads(n)


@contextmanager
def _threads(n):
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)
