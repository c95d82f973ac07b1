import fastnn.layers as L

from .common import BACKENDS, DTYPES, LayerBenchmark, testing

LAYERS = {
    "batchnorm": (L.batchnorm_forward, L.batchnorm_backward, (1024, 1024), lambda: {"mode": "train"}),
    "layernorm": (L.layernorm_forward, L.layernorm_backward, (1024, 1024), dict),
    "spatial_batchnorm": (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward, (64, 32, 16, 16),
                          lambda: {"mode": "train"}),
}


class Norms(LayerBenchmark):
    time_forward_backward = LayerBenchmark.forward_backward
    params = [BACKENDS, DTYPES, list(LAYERS)]
    param_names = ["backend", "dtype", "layer"]

    def build(self, dtype, layer):
        forward, backward, shape, param = LAYERS[layer]
        x, gamma, beta = testing.norm_inputs(shape, dtype=dtype)

        def step():
            out, cache = forward(x, gamma, beta, param())
            backward(out, cache)

        self.step = step
