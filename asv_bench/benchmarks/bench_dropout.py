from fastnn.layers import dropout_backward, dropout_forward

from .common import BACKENDS, DTYPES, LayerBenchmark, testing

SHAPES = {"wide": (1024, 4096), "fc_net_hidden": (100, 100)}


class Dropout(LayerBenchmark):
    time_forward_backward = LayerBenchmark.forward_backward
    params = [BACKENDS, DTYPES, list(SHAPES)]
    param_names = ["backend", "dtype", "shape"]

    def build(self, dtype, shape):
        self.x = testing.randn(*SHAPES[shape], dtype=dtype)
        self.param = {"mode": "train", "p": 0.5, "seed": 0}

        def step():
            out, cache = dropout_forward(self.x, self.param)
            dropout_backward(out, cache)

        self.step = step
