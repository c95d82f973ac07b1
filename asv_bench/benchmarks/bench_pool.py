from fastnn.layer_utils import max_pool_backward_fast, max_pool_forward_fast

from .common import BACKENDS, DTYPES, LayerBenchmark, testing

SHAPES = {"threelayer_default": ((64, 32, 32, 32), 2, 2), "overlapping_3x3": ((32, 16, 17, 17), 3, 2)}


class MaxPool(LayerBenchmark):
    time_forward_backward = LayerBenchmark.forward_backward
    params = [BACKENDS, DTYPES, list(SHAPES)]
    param_names = ["backend", "dtype", "shape"]

    def build(self, dtype, shape):
        x_shape, size, stride = SHAPES[shape]
        self.x = testing.randn(*x_shape, dtype=dtype)
        self.param = {"pool_height": size, "pool_width": size, "stride": stride}

        def step():
            out, cache = max_pool_forward_fast(self.x, self.param)
            max_pool_backward_fast(out, cache)

        self.step = step
