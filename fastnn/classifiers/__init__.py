"""The models of cs231n.classifiers: fc_net (TwoLayerNet, FullyConnectedNet) and cnn (ThreeLayerConvNet, ConvNet).

Every model keeps its parameters in `params` and reads them at every call of `loss(X, y=None)`, which returns
scores (N, C) when y is None and (loss, grads) otherwise.
"""

from .cnn import ConvNet, ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet

__all__ = ["TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "ConvNet"]
