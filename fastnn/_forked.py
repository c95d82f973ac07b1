"""Whether this process was forked from one whose numba threads had started. The child's copy of that pool does
not work (it hangs under 'workqueue'; GNU OpenMP kills the child), so fastnn's kernels run serially there.

Registered when fastnn is imported, before numba is: the threads may have been started by the user's own code (a
prange function, numba.get_num_threads()) before fastnn's first kernel, and fastnn's kernel modules may first be
imported in the child."""

import os
import sys

numba_pool_inherited = False


def _after_fork_in_child():
    global numba_pool_inherited
    parallel = sys.modules.get("numba.np.ufunc.parallel")  # not imported: no numba thread has started
    if parallel is not None and parallel._is_initialized:
        numba_pool_inherited = True


os.register_at_fork(after_in_child=_after_fork_in_child)
