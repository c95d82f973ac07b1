import fastnn
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

    def peakmem_forward(self, backend, dtype, shape):
        with fastnn.options(backend=backend):
            conv_forward_fast(self.x, self.w, self.b, self.param)
