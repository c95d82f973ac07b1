import os

from fastnn._cpus import available_cpus

# Numba takes its thread count from the CPUs this process may run on, read once when it is first imported. On a
# one-CPU machine (or under `taskset -c 0`) that is 1: the parallel builds would never run and the tests comparing
# one thread with two would skip. Two threads on one CPU run correctly, just without a speed-up. A count the user
# set is kept.
if "NUMBA_NUM_THREADS" not in os.environ and available_cpus() < 2:
    os.environ["NUMBA_NUM_THREADS"] = "2"

# The tests choose the backend and settings they test; one exported by the user (FASTNN_BACKEND=reference) would
# quietly run every 'auto' test on one path. FASTNN_CACHE only decides where compiled kernels are kept.
for _name in ("FASTNN_BACKEND", "FASTNN_PARALLEL", "FASTNN_WINOGRAD"):
    os.environ.pop(_name, None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastnn  # noqa: E402


@pytest.fixture
def reference_backend():
    """Run the public layer API on the NumPy reference only (no compiled kernels)."""
    with fastnn.options(backend="reference"):
        yield


@pytest.fixture(autouse=True)
def _restore_global_rng():
    """Tests may seed numpy's global RNG; leave it as it was for the next test."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


@pytest.fixture(autouse=True, scope="session")
def _parallel_builds_at_two_threads():
    """Run the parallel builds at two numba threads, as on a machine where they pay, so the suite exercises them
    (fastnn's default runs the serial builds at two threads under 'workqueue': kernels._jit.parallel_pays)."""
    from fastnn.kernels import _jit

    default = _jit.WORKQUEUE_MIN_THREADS
    _jit.WORKQUEUE_MIN_THREADS = 2
    yield
    _jit.WORKQUEUE_MIN_THREADS = default
