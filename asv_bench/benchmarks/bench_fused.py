import numpy as np

from fastnn.layer_utils import affine_bn_relu_backward, affine_bn_relu_forward

from .common import BACKENDS, DTYPES, LayerBenchmark, testing

SHAPES = {"cifar_first_layer": (256, 3072, 512), "square_1024": (1024, 1024, 1024), "fc_net_hidden": (100, 100, 100)}


class AffineBatchnormRelu(LayerBenchmark):
    time_forward_backward = LayerBenchmark.forward_backward
    params = [BACKENDS, DTYPES, list(SHAPES)]
    param_names = ["backend", "dtype", "shape"]

    def build(self, dtype, shape):
        N, D, H = SHAPES[shape]
        self.x, self.w, self.b = testing.affine_inputs(N=N, D=(D,), M=H, dtype=dtype)
        self.gamma, self.beta = np.ones(H, dtype), np.zeros(H, dtype)
        self.dout = testing.randn(N, H, dtype=dtype, seed=1)

        def step():
            _, cache = affine_bn_relu_forward(self.x, self.w, self.b, self.gamma, self.beta, {"mode": "train"})
            affine_bn_relu_backward(self.dout, cache)

        self.step = step
