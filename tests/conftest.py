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
