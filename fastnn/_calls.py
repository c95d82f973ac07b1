"""How many fastnn layers the calling thread is inside. One is usual; two means a layer was called while another
ran in the same thread: from a finalizer or weakref callback (the garbage collector runs them at any allocation)
or a signal handler, in the gap between two steps of the outer call. Such an inner call must not take the outer
call's work buffers (fastnn.compiled._memory.scratch), which hold data the outer call has yet to read."""

import threading

_local = threading.local()


def enter():
    _local.depth = getattr(_local, "depth", 0) + 1


def leave():
    _local.depth -= 1


def nested():
    """Whether the calling thread is inside a layer called while another layer ran in it."""
    return getattr(_local, "depth", 0) > 1
