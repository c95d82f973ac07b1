import numpy as np
import pytest

import fastnn


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
