"""What a forked child must redo: `in_child` registers it (nowhere on a platform that does not fork). And whether
this process was forked from one whose numba threads had started: the child's copy of that pool does not work (it
hangs under 'workqueue'; GNU OpenMP kills the child), so fastnn's kernels run serially there.

Imported with fastnn, before numba: the threads may have been started by the user's own code (a prange function,
numba.get_num_threads()) before fastnn's first kernel, and fastnn's kernel modules may first be imported in the
child."""

import os
import sys

numba_pool_inherited = False


def in_child(fn):
    """Decorator: fn runs in the child after each fork, where the platform forks at all (Windows does not)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=fn)
    return fn


@in_child
def _note_an_inherited_pool():
    global numba_pool_inherited
    parallel = sys.modules.get("numba.np.ufunc.parallel")  # not imported: no numba thread has started
    if parallel is not None and parallel._is_initialized:
        numba_pool_inherited = True
