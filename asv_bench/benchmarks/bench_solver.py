"""One Solver step (forward, backward, Adam update) of the models users train."""

import numpy as np

import fastnn
from fastnn.classifiers.cnn import ThreeLayerConvNet
from fastnn.classifiers.fc_net import FullyConnectedNet
from fastnn.solver import Solver

from .common import BACKENDS, pin_threads


def _data(shape, classes, n):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n,) + shape).astype(np.float32)
    y = rng.integers(0, classes, n)
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


class SolverStep:
    params = [BACKENDS, ["threelayer_convnet", "fc5_batchnorm_dropout"]]
    param_names = ["backend", "model"]

    def setup(self, backend, model):
        pin_threads()
        np.random.seed(0)
        if model == "threelayer_convnet":
            net, data, batch = ThreeLayerConvNet(), _data((3, 32, 32), 10, 128), 64
        else:
            net = FullyConnectedNet([512] * 4, normalization="batchnorm", dropout=0.5, dtype=np.float32)
            data, batch = _data((3072,), 10, 512), 256
        self.solver = Solver(net, data, update_rule="adam", batch_size=batch, verbose=False, seed=0)
        with fastnn.options(backend=backend):
            self.solver._step()

    def time_step(self, backend, model):
        with fastnn.options(backend=backend):
            self.solver._step()
