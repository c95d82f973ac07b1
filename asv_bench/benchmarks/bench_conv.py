import tracemalloc

import fastnn
from fastnn.allocator import release_memory
from fastnn.layer_utils import conv_backward_fast, conv_forward_fast

from .common import BACKENDS, DTYPES, LayerBenchmark, testing

SHAPES = {  # name: (N, C, H, W, F, HH, pad)
    "threelayer_default": (64, 3, 32, 32, 32, 7, 3),
    "mid_3x3": (64, 64, 16, 16, 64, 3, 1),
    "small": (16, 16, 16, 16, 16, 3, 1),
}


class Conv(LayerBenchmark):
    time_forward_backward = LayerBenchmark.forward_backward
    params = [BACKENDS, DTYPES, list(SHAPES)]
    param_names = ["backend", "dtype", "shape"]

    def build(self, dtype, shape):
        N, C, H, W, F, K, pad = SHAPES[shape]
        self.x, self.w, self.b = testing.conv_inputs(N=N, C=C, H=H, W=W, F=F, HH=K, WW=K, dtype=dtype)
        self.param = {"stride": 1, "pad": pad}

        def step():
            out, cache = conv_forward_fast(self.x, self.w, self.b, self.param)
            conv_backward_fast(out, cache)

        self.step = step

    def track_forward_peak_incl_workspace_mb(self, backend, dtype, shape):
        """The most memory the forward's arrays held at once, output, cache and workspace included (numpy reports
        its allocations to tracemalloc). The work buffers the jit path keeps between calls are let go first, so
        the forward allocates them anew where they are counted (kept from setup, they were not: a change in their
        size never showed); small arrays numba allocates inside compiled code are not seen. asv's peakmem_ is the
        process's peak, set by the compile in setup."""
        release_memory()
        with fastnn.options(backend=backend):
            tracemalloc.start()
            try:
                conv_forward_fast(self.x, self.w, self.b, self.param)
                return tracemalloc.get_traced_memory()[1] / 2**20
            finally:
                tracemalloc.stop()

    track_forward_peak_incl_workspace_mb.unit = "MB"
