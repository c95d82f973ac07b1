from fastnn.layers import softmax_loss, svm_loss

from .common import BACKENDS, DTYPES, LayerBenchmark, testing


class Losses(LayerBenchmark):
    time_forward_backward = LayerBenchmark.forward_backward
    params = [BACKENDS, DTYPES, ["softmax", "svm"], [(256, 10), (4096, 1000)]]
    param_names = ["backend", "dtype", "loss", "shape"]

    def build(self, dtype, loss, shape):
        x, y = testing.scores_and_labels(*shape, dtype=dtype)
        fn = softmax_loss if loss == "softmax" else svm_loss
        self.step = lambda: fn(x, y)
