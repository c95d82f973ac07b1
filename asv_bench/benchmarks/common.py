"""Shared set-up for the asv suite: seeded inputs from fastnn.testing, one BLAS and numba thread, warm kernels."""

import numpy as np

import fastnn
from fastnn import testing

BACKENDS = ["reference", "jit"]
DTYPES = ["float32", "float64"]


def pin_threads():
    """One thread for BLAS and numba, so timings compare across commits on a shared machine."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    import numba

    from fastnn.kernels import _threads  # noqa: F401  (it chooses numba's threading layer, as users get it, before
    # set_num_threads starts numba's threads: 'omp' ran here where users run 'workqueue')

    numba.set_num_threads(1)


class LayerBenchmark:
    """Subclasses build `self.step` (forward + backward through the public API) in `build(dtype, shape)` and
    time it with `time_forward_backward = LayerBenchmark.forward_backward` (asv would otherwise also collect
    this base class as a benchmark)."""

    params = [BACKENDS, DTYPES]
    param_names = ["backend", "dtype"]

    def setup(self, backend, dtype, *shape):
        pin_threads()
        self.options = fastnn.options(backend=backend)
        self.build(np.dtype(dtype).type, *shape)
        with self.options:
            self.step()  # compile and warm up outside the timed call

    def forward_backward(self, backend, dtype, *shape):
        with fastnn.options(backend=backend):
            self.step()


__all__ = ["BACKENDS", "DTYPES", "LayerBenchmark", "pin_threads", "testing"]
