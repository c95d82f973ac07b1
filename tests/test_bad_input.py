"""The bad-input matrix: every public entry point refuses wrong input with a ValueError/TypeError that names
the function and the argument, never a numba error, an AssertionError or a crash, and leaves its inputs as
they were. Each row: (case id, function name, argument named, exception, call)."""

import os

import numpy as np
import pytest

import fastnn
import fastnn.fast_layers as FL
import fastnn.layer_utils as LU
import fastnn.layers as L
from fastnn import optim
from fastnn.classifiers.cnn import ConvNet, ThreeLayerConvNet
from fastnn.classifiers.fc_net import FullyConnectedNet, TwoLayerNet
from fastnn.solver import Solver

F64, F32 = np.float64, np.float32


def a(*shape, dtype=F64):
    return np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)


X2, W2, B2 = a(4, 6), a(6, 3), a(3)
X4, WC, BC = a(2, 3, 8, 8), a(4, 3, 3, 3), a(4)
G3, BT3 = np.ones(3), np.zeros(3)
CONV, POOL = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
_, AFFINE_CACHE = L.affine_forward(X2, W2, B2)
_, RELU_CACHE = L.relu_forward(X2)
_, BN_CACHE = L.batchnorm_forward(X2, np.ones(6), np.zeros(6), {"mode": "train"})
_, BN1_CACHE = L.batchnorm_forward(a(4, 1), np.ones(1), np.zeros(1), {"mode": "train"})  # one feature
_, LN_CACHE = L.layernorm_forward(X2, np.ones(6), np.zeros(6), {})
_, GN_CACHE = L.spatial_groupnorm_forward(X4, G3, BT3, 3, {})
with fastnn.options(backend="jit"):  # the compiled path's cache, without xhat, whatever FASTNN_BACKEND says
    _, (LNR_FC, LNR_NORM, LNR_OUT) = LU.affine_ln_relu_forward(X2, W2, B2, G3, BT3, {})
_, POOL_CACHE = FL.max_pool_forward_fast(X4, POOL)
_, CONV_CACHE = FL.conv_forward_fast(X4, WC, BC, CONV)
CRP_OUT, (CRP_CONV, CRP_RELU, CRP_POOL) = LU.conv_relu_pool_forward(X4, WC, BC, CONV, POOL)
_, DROP_CACHE = L.dropout_forward(X2, {"mode": "train", "p": 0.5, "seed": 0})
DATA = {"X_train": a(20, 6), "y_train": np.arange(20) % 3, "X_val": a(5, 6), "y_val": np.arange(5) % 3}

CASES = [
    # --- layers: dtypes and types
    # an integer or bool argument takes the call's float dtype (tests/test_checks.py); with mixed floats, none
    ("affine int x, mixed floats", "affine_forward", "float32", TypeError,
     lambda: L.affine_forward(np.ones((4, 6), int), W2.astype(F32), B2)),
    ("affine bool w, wrong shape", "affine_forward", "w", ValueError,
     lambda: L.affine_forward(X2, np.ones((5, 3), bool), B2)),
    ("affine float16", "affine_forward", "x", TypeError, lambda: L.affine_forward(X2.astype(np.float16), W2, B2)),
    ("affine complex", "affine_forward", "x", TypeError, lambda: L.affine_forward(X2 + 1j, W2, B2)),
    ("affine object", "affine_forward", "x", TypeError, lambda: L.affine_forward(X2.astype(object), W2, B2)),
    ("affine mixed", "affine_forward", "float32", TypeError, lambda: L.affine_forward(X2.astype(F32), W2, B2)),
    ("affine list", "affine_forward", "x", TypeError, lambda: L.affine_forward(X2.tolist(), W2, B2)),
    ("affine 0-d", "affine_forward", "x", ValueError, lambda: L.affine_forward(np.array(1.0), W2, B2)),
    ("affine empty batch", "affine_forward", "x", ValueError, lambda: L.affine_forward(a(0, 6), W2, B2)),
    ("affine D mismatch", "affine_forward", "w", ValueError, lambda: L.affine_forward(X2, a(5, 3), B2)),
    ("affine b mismatch", "affine_forward", "b", ValueError, lambda: L.affine_forward(X2, W2, a(4))),
    ("affine w ndim", "affine_forward", "w", ValueError, lambda: L.affine_forward(X2, a(18), B2)),
    ("affine dout shape", "affine_backward", "dout", ValueError, lambda: L.affine_backward(a(4, 4), AFFINE_CACHE)),
    ("affine dout dtype", "affine_backward", "dout", TypeError,
     lambda: L.affine_backward(a(4, 3, dtype=F32), AFFINE_CACHE)),
    ("affine foreign cache", "affine_backward", "cache", TypeError, lambda: L.affine_backward(a(4, 3), BN_CACHE)),
    ("affine 0-d cache x", "affine_backward", "cache x", ValueError,
     lambda: L.affine_backward(a(1, 3), (np.array(1.0), a(1, 3), a(3)))),
    ("batchnorm 0-d cache gamma", "batchnorm_backward", "gamma", TypeError,
     lambda: L.batchnorm_backward(a(4, 1), BN1_CACHE[:2] + (np.array(1.0),) + BN1_CACHE[3:])),
    ("relu int", "relu_forward", "x", TypeError, lambda: L.relu_forward(np.ones(3, int))),
    ("relu 0-d", "relu_forward", "x", ValueError, lambda: L.relu_forward(np.array(2.0))),
    ("relu dout shape", "relu_backward", "dout", ValueError, lambda: L.relu_backward(a(6, 4), RELU_CACHE)),
    ("leaky alpha negative", "leaky_relu_forward", "alpha", ValueError, lambda: L.leaky_relu_forward(X2, -0.1)),
    ("leaky alpha str", "leaky_relu_forward", "alpha", TypeError, lambda: L.leaky_relu_forward(X2, "0.1")),
    ("sigmoid bool", "sigmoid_forward", "x", TypeError, lambda: L.sigmoid_forward(np.ones(3, bool))),
    ("tanh dout dtype", "tanh_backward", "dout", TypeError, lambda: L.tanh_backward(a(3, dtype=F32), a(3))),
    # --- normalisation
    ("bn missing mode", "batchnorm_forward", "mode", ValueError, lambda: L.batchnorm_forward(X2, a(6), a(6), {})),
    ("bn unknown mode", "batchnorm_forward", "mode", ValueError,
     lambda: L.batchnorm_forward(X2, a(6), a(6), {"mode": "eval"})),
    ("bn param not dict", "batchnorm_forward", "bn_param", TypeError,
     lambda: L.batchnorm_forward(X2, a(6), a(6), "train")),
    ("bn gamma shape", "batchnorm_forward", "gamma", ValueError,
     lambda: L.batchnorm_forward(X2, a(5), a(6), {"mode": "train"})),
    ("bn beta dtype", "batchnorm_forward", "beta", TypeError,
     lambda: L.batchnorm_forward(X2, a(6), a(6, dtype=F32), {"mode": "train"})),
    ("bn eps negative", "batchnorm_forward", "eps", ValueError,
     lambda: L.batchnorm_forward(X2, a(6), a(6), {"mode": "train", "eps": -1})),
    ("bn momentum > 1", "batchnorm_forward", "momentum", ValueError,
     lambda: L.batchnorm_forward(X2, a(6), a(6), {"mode": "train", "momentum": 2})),
    ("bn running shape", "batchnorm_forward", "running_mean", ValueError,
     lambda: L.batchnorm_forward(X2, a(6), a(6), {"mode": "test", "running_mean": a(5)})),
    ("bn x ndim", "batchnorm_forward", "x", ValueError, lambda: L.batchnorm_forward(X4, a(3), a(3), {"mode": "train"})),
    ("bn foreign cache", "batchnorm_backward", "cache", TypeError, lambda: L.batchnorm_backward(X2, AFFINE_CACHE)),
    ("bn dout shape", "batchnorm_backward_alt", "dout", ValueError,
     lambda: L.batchnorm_backward_alt(a(3, 6), BN_CACHE)),
    ("sbn channels", "spatial_batchnorm_forward", "gamma", ValueError,
     lambda: L.spatial_batchnorm_forward(X4, a(4), a(4), {"mode": "train"})),
    ("ln param not dict", "layernorm_forward", "ln_param", TypeError,
     lambda: L.layernorm_forward(X2, a(6), a(6), None)),
    ("ln gamma shape", "layernorm_forward", "gamma", ValueError, lambda: L.layernorm_forward(X2, a(4), a(6), {})),
    # a cache without xhat (the compiled path's) is read through its mean and invstd: their shapes are checked
    ("bn cache mean shape", "batchnorm_backward", "mean", TypeError,
     lambda: L.batchnorm_backward(X2, (X2, None) + BN_CACHE[2:4] + (a(5),) + BN_CACHE[5:])),
    ("ln cache invstd shape", "layernorm_backward", "invstd", TypeError,
     lambda: L.layernorm_backward(X2, (X2, None) + LN_CACHE[2:5] + (a(6),) + LN_CACHE[6:])),
    ("ln cache gamma shape", "layernorm_backward", "gamma", TypeError,
     lambda: L.layernorm_backward(X2, LN_CACHE[:2] + (a(5),) + LN_CACHE[3:])),
    ("gn cache beta shape", "spatial_groupnorm_backward", "beta", TypeError,
     lambda: L.spatial_groupnorm_backward(X4, GN_CACHE[:3] + (a(2),) + GN_CACHE[4:])),
    ("ln cache invstd dtype", "layernorm_backward", "invstd", TypeError,
     lambda: L.layernorm_backward(X2, (X2, None) + LN_CACHE[2:5] + (a(4, dtype=F32),) + LN_CACHE[6:])),
    ("gn G not dividing", "spatial_groupnorm_forward", "G", ValueError,
     lambda: L.spatial_groupnorm_forward(X4, G3, BT3, 2, {})),
    ("gn G zero", "spatial_groupnorm_forward", "G", ValueError,
     lambda: L.spatial_groupnorm_forward(X4, G3, BT3, 0, {})),
    ("gn G float", "spatial_groupnorm_forward", "G", TypeError,
     lambda: L.spatial_groupnorm_forward(X4, G3, BT3, 1.5, {})),
    ("gn gamma shape", "spatial_groupnorm_forward", "gamma", ValueError,
     lambda: L.spatial_groupnorm_forward(X4, np.ones((3, 1)), BT3, 1, {})),
    # --- dropout
    ("dropout p zero", "dropout_forward", "p", ValueError, lambda: L.dropout_forward(X2, {"mode": "train", "p": 0})),
    ("dropout p negative", "dropout_forward", "p", ValueError,
     lambda: L.dropout_forward(X2, {"mode": "train", "p": -0.2})),
    ("dropout p > 1", "dropout_forward", "p", ValueError, lambda: L.dropout_forward(X2, {"mode": "train", "p": 1.5})),
    ("dropout p nan", "dropout_forward", "p", ValueError,
     lambda: L.dropout_forward(X2, {"mode": "train", "p": float("nan")})),
    ("dropout unknown mode", "dropout_forward", "mode", ValueError,
     lambda: L.dropout_forward(X2, {"mode": "eval", "p": 0.5})),
    ("dropout missing mode", "dropout_forward", "mode", ValueError, lambda: L.dropout_forward(X2, {"p": 0.5})),
    ("dropout seed float", "dropout_forward", "seed", TypeError,
     lambda: L.dropout_forward(X2, {"mode": "train", "p": 0.5, "seed": 1.5})),
    ("dropout dout shape", "dropout_backward", "dout", ValueError, lambda: L.dropout_backward(a(4, 5), DROP_CACHE)),
    ("dropout foreign cache", "dropout_backward", "cache", TypeError, lambda: L.dropout_backward(X2, AFFINE_CACHE)),
    # --- convolution and pooling
    ("conv stride zero", "conv_forward_fast", "stride", ValueError,
     lambda: FL.conv_forward_fast(X4, WC, BC, {"stride": 0, "pad": 1})),
    ("conv stride negative", "conv_forward_naive", "stride", ValueError,
     lambda: L.conv_forward_naive(X4, WC, BC, {"stride": -1, "pad": 1})),
    ("conv pad negative", "conv_forward_im2col", "pad", ValueError,
     lambda: FL.conv_forward_im2col(X4, WC, BC, {"stride": 1, "pad": -1})),
    ("conv pad float", "conv_forward_strides", "pad", TypeError,
     lambda: FL.conv_forward_strides(X4, WC, BC, {"stride": 1, "pad": 1.0})),
    ("conv not divisible", "conv_forward_fast", "stride", ValueError,
     lambda: FL.conv_forward_fast(X4, WC, BC, {"stride": 2, "pad": 0})),
    ("conv output < 1", "conv_forward_fast", "window", ValueError,
     lambda: FL.conv_forward_fast(a(1, 3, 2, 2), WC, BC, {"stride": 1, "pad": 0})),
    ("conv channels", "conv_forward_fast", "channels", ValueError,
     lambda: FL.conv_forward_fast(X4, a(4, 2, 3, 3), BC, CONV)),
    ("conv b shape", "conv_forward_fast", "b", ValueError, lambda: FL.conv_forward_fast(X4, WC, a(3), CONV)),
    ("conv missing key", "conv_forward_fast", "conv_param", ValueError,
     lambda: FL.conv_forward_fast(X4, WC, BC, {"pad": 1})),
    ("conv dout shape", "conv_backward_fast", "dout", ValueError, lambda: FL.conv_backward_fast(X4, CONV_CACHE)),
    ("conv-relu-pool geometry", "conv_relu_pool_forward", "the conv output (2, 4, 5, 5)", ValueError,
     lambda: LU.conv_relu_pool_forward(a(2, 3, 5, 5), WC, BC, CONV, POOL)),
    ("naive pool given a fast cache", "max_pool_backward_naive", "cache of the fast pools", TypeError,
     lambda: FL.max_pool_backward_naive(a(1, 1, 4, 4), POOL_CACHE)),
    ("conv x_cols shape", "conv_backward_fast", "x_cols has shape (5, 5)", ValueError,
     lambda: FL.conv_backward_fast(a(2, 4, 8, 8), CONV_CACHE[:4] + (a(5, 5),))),
    ("conv foreign cache", "conv_backward_fast", "cache", TypeError,
     lambda: FL.conv_backward_fast(a(2, 4, 8, 8), POOL_CACHE)),
    ("pool not divisible", "max_pool_forward_fast", "stride", ValueError,
     lambda: FL.max_pool_forward_fast(a(1, 1, 5, 5), POOL)),
    ("pool window too big", "max_pool_forward_naive", "pool", ValueError,
     lambda: L.max_pool_forward_naive(a(1, 1, 2, 2), {"pool_height": 3, "pool_width": 3, "stride": 1})),
    ("pool zero height", "max_pool_forward_fast", "pool_height", ValueError,
     lambda: FL.max_pool_forward_fast(X4, {**POOL, "pool_height": 0})),
    ("pool x ndim", "max_pool_forward_fast", "x", ValueError, lambda: FL.max_pool_forward_fast(X2, POOL)),
    ("pool reshape geometry", "max_pool_forward_reshape", "pool_height", ValueError,
     lambda: FL.max_pool_forward_reshape(a(1, 1, 9, 9), {"pool_height": 3, "pool_width": 3, "stride": 2})),
    ("pool unknown method", "max_pool_backward_fast", "method", ValueError,
     lambda: FL.max_pool_backward_fast(a(2, 3, 4, 4), ("reshape", POOL_CACHE[1]))),
    ("pool dout shape", "max_pool_backward_fast", "dout", ValueError,
     lambda: FL.max_pool_backward_fast(a(2, 3, 5, 4), POOL_CACHE)),
    ("pool argmax out of its window", "max_pool_backward_fast", "argmax", ValueError,
     lambda: FL.max_pool_backward_fast(a(2, 3, 4, 4), ("argmax", POOL_CACHE[1][:2] + (
         np.full_like(POOL_CACHE[1][2], 4),)))),
    # --- losses
    ("labels float", "softmax_loss", "y", TypeError, lambda: L.softmax_loss(X2, np.zeros(4))),
    ("labels nan", "svm_loss", "y", TypeError, lambda: L.svm_loss(X2, np.array([0, 1, np.nan, 2]))),
    ("labels out of range", "softmax_loss", "y", ValueError, lambda: L.softmax_loss(X2, np.array([0, 1, 2, 6]))),
    ("labels negative", "svm_loss", "y", ValueError, lambda: L.svm_loss(X2, np.array([0, -1, 2, 3]))),
    ("labels shape", "softmax_loss", "y", ValueError, lambda: L.softmax_loss(X2, np.array([[0, 1, 2, 3]]))),
    ("labels list of floats", "softmax_loss", "y", TypeError, lambda: L.softmax_loss(X2, [0.0, 1.0, 2.0, 3.0])),
    ("labels list out of range", "svm_loss", "y", ValueError, lambda: L.svm_loss(X2, [0, 1, 2, 9])),
    ("scores ndim", "svm_loss", "x", ValueError, lambda: L.svm_loss(a(4), np.array([0, 1, 2, 3]))),
    # --- sandwiches
    ("affine_bn_relu gamma", "affine_bn_relu_forward", "gamma", ValueError,
     lambda: LU.affine_bn_relu_forward(X2, W2, B2, a(4), a(3), {"mode": "train"})),
    ("affine_ln_relu eps", "affine_ln_relu_forward", "eps", ValueError,
     lambda: LU.affine_ln_relu_forward(X2, W2, B2, a(3), a(3), {"eps": 0})),
    ("affine_ln_relu cache mean", "affine_ln_relu_backward", "mean", TypeError,
     lambda: LU.affine_ln_relu_backward(a(4, 3), (LNR_FC, LNR_NORM[:4] + (a(3),) + LNR_NORM[5:], LNR_OUT))),
    ("affine_ln_relu cache gamma", "affine_ln_relu_backward", "gamma", TypeError,
     lambda: LU.affine_ln_relu_backward(a(4, 3), (LNR_FC, LNR_NORM[:2] + (a(2),) + LNR_NORM[3:], LNR_OUT))),
    ("affine_ln_relu cache a", "affine_ln_relu_backward", "norm input", TypeError,
     lambda: LU.affine_ln_relu_backward(a(5, 3), (LNR_FC, LNR_NORM, a(5, 3)))),
    ("conv_relu_pool pool", "conv_relu_pool_forward", "stride", ValueError,
     lambda: LU.conv_relu_pool_forward(X4, WC, BC, CONV, {**POOL, "stride": 4})),
    ("conv_relu_pool relu cache", "conv_relu_pool_backward", "ReLU part", ValueError,
     lambda: LU.conv_relu_pool_backward(CRP_OUT, (CRP_CONV, CRP_RELU[:, :, :4], CRP_POOL))),
    ("conv_relu_pool relu dtype", "conv_relu_pool_backward", "ReLU part", TypeError,
     lambda: LU.conv_relu_pool_backward(CRP_OUT, (CRP_CONV, CRP_RELU.astype(F32), CRP_POOL))),
    ("conv_relu_pool argmax out of its window", "conv_relu_pool_backward", "argmax", ValueError,
     lambda: LU.conv_relu_pool_backward(CRP_OUT, (CRP_CONV, CRP_RELU, ("argmax", CRP_POOL[1][:2] + (
         np.full_like(CRP_POOL[1][2], 7),))))),
    ("conv_relu_pool dout", "conv_relu_pool_backward", "dout", ValueError,
     lambda: LU.conv_relu_pool_backward(CRP_OUT[:, :2], (CRP_CONV, CRP_RELU, CRP_POOL))),
    ("conv_bn_relu mode", "conv_bn_relu_forward", "mode", ValueError,
     lambda: LU.conv_bn_relu_forward(X4, WC, BC, a(4), a(4), CONV, {"mode": "x"})),
    ("affine_relu cache", "affine_relu_backward", "cache", TypeError, lambda: LU.affine_relu_backward(X2, BN_CACHE)),
    ("affine_relu w", "affine_relu_forward", "w", ValueError, lambda: LU.affine_relu_forward(X2, a(5, 3), B2)),
    ("affine_relu dout", "affine_relu_backward", "dout", ValueError,
     lambda: LU.affine_relu_backward(a(4, 2), LU.affine_relu_forward(X2, W2, B2)[1])),
    ("conv_relu dout", "conv_relu_backward", "dout", ValueError,
     lambda: LU.conv_relu_backward(a(2, 4, 8, 7), LU.conv_relu_forward(X4, WC, BC, CONV)[1])),
    ("conv_bn_relu dout dtype", "conv_bn_relu_backward", "dout", TypeError,
     lambda: LU.conv_bn_relu_backward(a(2, 4, 8, 8).astype(F32),
                                      LU.conv_bn_relu_forward(X4, WC, BC, a(4), a(4), CONV, {"mode": "train"})[1])),
    # caches from another function (the naive pool's once gave numpy's "truth value ... is ambiguous"; a
    # sandwich's cache in affine_backward once gave "too many values to unpack")
    ("pool naive cache", "max_pool_backward_fast", "max_pool_forward_fast", TypeError,
     lambda: FL.max_pool_backward_fast(a(2, 3, 4, 4), L.max_pool_forward_naive(X4, POOL)[1])),
    ("pool relu cache", "max_pool_backward_im2col", "max_pool_forward_fast", TypeError,
     lambda: FL.max_pool_backward_im2col(a(2, 3, 4, 4), L.leaky_relu_forward(X4, 0.1)[1])),
    ("affine sandwich cache", "affine_backward", "x", TypeError,
     lambda: L.affine_backward(a(4, 3), LU.affine_bn_relu_forward(X2, W2, B2, np.ones(3), np.zeros(3),
                                                                  {"mode": "train"})[1])),
    ("affine tuple x", "affine_forward", "x", TypeError, lambda: L.affine_forward((2.0, 3.0), W2, B2)),
    # no channels or no filters: the compiled path once raised ZeroDivisionError or a reshape error where the
    # reference computed on (or the other way round)
    ("conv no channels", "conv_forward_fast", "at least one channel", ValueError,
     lambda: FL.conv_forward_fast(np.zeros((2, 0, 5, 5)), np.zeros((3, 0, 3, 3)), np.zeros(3), CONV)),
    ("conv no filters", "conv_forward_naive", "at least one filter", ValueError,
     lambda: L.conv_forward_naive(X4, np.zeros((0, 3, 3, 3)), np.zeros(0), CONV)),
    ("spatial bn no channels", "spatial_batchnorm_forward", "at least one channel", ValueError,
     lambda: L.spatial_batchnorm_forward(np.zeros((2, 0, 4, 4)), np.ones(0), np.zeros(0), {"mode": "train"})),
    ("spatial gn no channels", "spatial_groupnorm_forward", "at least one channel", ValueError,
     lambda: L.spatial_groupnorm_forward(np.zeros((2, 0, 4, 4)), np.ones(0), np.zeros(0), 1, {})),
    # zero-size filters, strides beyond 64-bit integers, a statistics-free spatial batch, a cache's float G: the
    # compiled path once raised ZeroDivisionError or a numba TypingError, the reference computed nonsense or NaN
    ("conv empty filter", "conv_forward_fast", "at least 1x1", ValueError,
     lambda: FL.conv_forward_fast(np.ones((1, 1, 3, 3)), np.ones((1, 1, 0, 0)), np.ones(1), {"stride": 1, "pad": 0})),
    ("conv naive filter width 0", "conv_forward_naive", "at least 1x1", ValueError,
     lambda: L.conv_forward_naive(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 0)), np.ones(1), {"stride": 1, "pad": 0})),
    ("conv huge stride", "conv_forward_fast", "conv_param['stride'] must be at most 2**63 - 1", ValueError,
     lambda: FL.conv_forward_fast(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), np.zeros(1),
                                  {"stride": 2**64, "pad": 0})),
    ("pool huge stride", "max_pool_forward_fast", "pool_param['stride'] must be at most", ValueError,
     lambda: FL.max_pool_forward_fast(np.ones((1, 1, 2, 2)), {"pool_height": 2, "pool_width": 2, "stride": 2**64})),
    ("im2col huge stride", "im2col_indices", "stride must be at most", ValueError,
     lambda: FL.im2col_indices(X4, 3, 3, 1, 2**70)),
    # a pad whose padded input no array can hold: numpy's "array is too big" (or "Maximum allowed dimension
    # exceeded" on the compiled path) named no function
    ("conv huge pad", "conv_forward_fast", "larger than any array can be", ValueError,
     lambda: FL.conv_forward_fast(X4, WC, BC, {"stride": 1, "pad": 2**40})),
    ("conv naive huge pad", "conv_forward_naive", "padded input of shape (2, 3, 2147483656", ValueError,
     lambda: L.conv_forward_naive(X4, WC, BC, {"stride": 1, "pad": 2**30})),
    ("conv_relu_pool huge pad", "conv_relu_pool_forward", "larger than any array can be", ValueError,
     lambda: LU.conv_relu_pool_forward(X4, WC, BC, {"stride": 1, "pad": 2**40}, POOL)),
    ("im2col huge padding", "im2col_indices", "larger than any array can be", ValueError,
     lambda: FL.im2col_indices(X4, 3, 3, 2**40, 1)),
    ("spatial bn no positions", "spatial_batchnorm_forward", "no positions (H * W = 0)", ValueError,
     lambda: L.spatial_batchnorm_forward(np.zeros((2, 3, 0, 4)), G3, BT3, {"mode": "train"})),
    ("groupnorm float G", "spatial_groupnorm_backward", "cache G", TypeError,
     lambda: L.spatial_groupnorm_backward(X4, GN_CACHE[:7] + (3.0,))),
    ("bn eps beyond float", "batchnorm_forward", "bn_param['eps'] must be finite", ValueError,
     lambda: L.batchnorm_forward(X2, np.ones(6), np.zeros(6), {"mode": "train", "eps": 10**400})),
    ("sgd lr beyond float", "sgd", "learning_rate", ValueError,
     lambda: optim.sgd(a(3), a(3), {"learning_rate": 10**400})),
    # --- optim
    ("sgd shape", "sgd", "dw", ValueError, lambda: optim.sgd(a(3), a(4))),
    ("adam dtype", "adam", "dw", TypeError, lambda: optim.adam(a(3), np.ones(3, int))),
    ("adam huge t", "adam", "config['t'] must be <= ", ValueError, lambda: optim.adam(a(3), a(3), {"t": 10**400})),
    ("momentum lr", "sgd_momentum", "learning_rate", TypeError,
     lambda: optim.sgd_momentum(a(3), a(3), {"learning_rate": "fast"})),
    ("rmsprop config", "rmsprop", "config", TypeError, lambda: optim.rmsprop(a(3), a(3), [1])),
    # --- models and Solver
    ("fc dropout zero", "FullyConnectedNet", "dropout", ValueError,
     lambda: FullyConnectedNet([5], input_dim=6, num_classes=3, dropout=0)),
    ("fc normalization", "FullyConnectedNet", "normalization", ValueError,
     lambda: FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="groupnorm")),
    ("fc X shape", "FullyConnectedNet", "X", ValueError,
     lambda: FullyConnectedNet([5], input_dim=6, num_classes=3).loss(a(4, 7))),
    ("two layer labels", "TwoLayerNet", "y", ValueError,
     lambda: TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3).loss(X2, np.array([0, 1, 2, 3]))),
    ("convnet X shape", "ThreeLayerConvNet", "X", ValueError,
     lambda: ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=4).loss(a(2, 1, 8, 8))),
    ("convnet even filter", "ThreeLayerConvNet", "filter_size 2", ValueError,
     lambda: ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=2, hidden_dim=4)),
    # masked arrays: min and max skip masked entries, which the kernels would index with (out of bounds: a crash)
    ("softmax masked labels", "softmax_loss", "y must lie in [0, 3)", ValueError,
     lambda: L.softmax_loss(W2[:4], np.ma.MaskedArray([0, 1, 2, 10**8], mask=[0, 0, 0, 1]))),
    ("svm masked labels", "svm_loss", "y must lie in [0, 3)", ValueError,
     lambda: L.svm_loss(W2[:4], np.ma.MaskedArray([0, 1, 2, -7], mask=[0, 0, 0, 1]))),
    ("masked pool argmax", "max_pool_backward_fast", "argmax holds 4000000000", ValueError,
     lambda: FL.max_pool_backward_fast(np.ones((2, 3, 4, 4)), ("argmax", (
         POOL_CACHE[1][0], POOL, np.ma.MaskedArray(np.full((2, 3, 4, 4), 4_000_000_000, np.uint32), mask=True))))),
    ("timedelta labels", "softmax_loss", "dtype timedelta64", TypeError,
     lambda: L.softmax_loss(W2[:4], np.array([0, 1, 2, 1], "m8[s]"))),
    ("batchnorm mode array", "batchnorm_forward", "shape (2,)", ValueError,
     lambda: L.batchnorm_forward(X2, np.ones(6), np.zeros(6), {"mode": np.array(["train", "test"])})),
    ("dropout mode array", "dropout_forward", "shape (2,)", ValueError,
     lambda: L.dropout_forward(X2, {"mode": np.array(["train", "test"]), "p": 0.5})),
    ("layernorm no features", "layernorm_forward", "D = 0", ValueError,
     lambda: L.layernorm_forward(a(4, 0), np.ones(0), np.zeros(0), {})),
    ("groupnorm no positions", "spatial_groupnorm_forward", "H * W = 0", ValueError,
     lambda: L.spatial_groupnorm_forward(a(2, 3, 0, 4), G3, BT3, 3, {})),
    ("pool window beyond input", "max_pool_forward_fast", "larger than the input 8", ValueError,
     lambda: FL.max_pool_forward_fast(X4, {"pool_height": 9, "pool_width": 2, "stride": 1})),
    # a fused layer's affine cache part, checked as affine_backward checks its cache
    ("fused cache x None", "affine_ln_relu_backward", "cache x", TypeError,
     lambda: LU.affine_ln_relu_backward(a(4, 3), ((None,) + LNR_FC[1:], LNR_NORM, LNR_OUT))),
    ("fused cache x of another dtype", "affine_ln_relu_backward", "cache x float32", TypeError,
     lambda: LU.affine_ln_relu_backward(a(4, 3), ((X2.astype(F32),) + LNR_FC[1:], LNR_NORM, LNR_OUT))),
    ("fused cache w of another dtype", "affine_ln_relu_backward", "cache w float32", TypeError,
     lambda: LU.affine_ln_relu_backward(a(4, 3), ((X2.astype(F32), W2.astype(F32), B2.astype(F32)), LNR_NORM,
                                                  LNR_OUT))),
    ("fused cache x of another size", "affine_ln_relu_backward", "cache x of shape (5, 8) flattens to 8", ValueError,
     lambda: LU.affine_ln_relu_backward(a(4, 3), ((a(5, 8),) + LNR_FC[1:], LNR_NORM, LNR_OUT))),
    ("fused cache x of another batch", "affine_ln_relu_backward", "maps x (5, 6)", ValueError,
     lambda: LU.affine_ln_relu_backward(a(4, 3), ((a(5, 6),) + LNR_FC[1:], LNR_NORM, LNR_OUT))),
    ("affine cache x of another size", "affine_backward", "cache x of shape (4, 5) flattens to 5", ValueError,
     lambda: L.affine_backward(a(4, 3), (a(4, 5), W2, B2))),
    # gamma in a norm cache by shape, not size: a (1, D) gamma reached the kernels (a numba TypingError)
    ("batchnorm cache gamma (1, D)", "batchnorm_backward", "gamma (1, 6)", TypeError,
     lambda: L.batchnorm_backward(X2, BN_CACHE[:2] + (np.ones((1, 6)),) + BN_CACHE[3:])),
    ("layernorm cache gamma (D, 1)", "layernorm_backward", "gamma (6, 1)", TypeError,
     lambda: L.layernorm_backward(X2, LN_CACHE[:2] + (np.ones((6, 1)),) + LN_CACHE[3:])),
    ("sandwich running mean", "conv_bn_relu_forward", "to match w (4, 3, 3, 3)", ValueError,
     lambda: LU.conv_bn_relu_forward(X4, WC, BC, np.ones(4), np.zeros(4), CONV,
                                     {"mode": "train", "running_mean": np.zeros(3)})),
    ("affine_ln_relu no outputs", "affine_ln_relu_forward", "M = 0", ValueError,
     lambda: LU.affine_ln_relu_forward(X2, a(6, 0), a(0), np.ones(0), np.zeros(0), {})),
    ("convnet odd input", "ThreeLayerConvNet", "input_dim (3, 8, 7)", ValueError,
     lambda: ThreeLayerConvNet(input_dim=(3, 8, 7), num_filters=2, filter_size=3, hidden_dim=4)),
    ("convnet filters", "ConvNet", "num_filters", (ValueError, TypeError),
     lambda: ConvNet(input_dim=(3, 8, 8), num_filters=(-1,))),
    ("solver kwarg", "Unrecognized", "bogus", ValueError,
     lambda: Solver(TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3), DATA, bogus=1)),
    ("solver update rule", "update_rule", "nadam", ValueError,
     lambda: Solver(TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3), DATA, update_rule="nadam")),
    ("solver batch size", "Solver", "batch_size", (ValueError, TypeError),
     lambda: Solver(TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3), DATA, batch_size=0)),
    ("solver data keys", "Solver", "X_val", (ValueError, KeyError, TypeError),
     lambda: Solver(TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3), {"X_train": X2, "y_train": np.zeros(4)})),
]


if hasattr(os, "sysconf"):  # the machine's memory is known (POSIX): a pad too large for it is refused
    CASES.append(("conv pad beyond memory", "conv_forward_fast", "more than this machine's", ValueError,
                  lambda: FL.conv_forward_fast(X4, WC, BC, {"stride": 1, "pad": 10**6})))  # 96 TB


def _snapshot(objects):
    return [o.copy() for o in objects if isinstance(o, np.ndarray)]


@pytest.mark.parametrize("backend", ["reference", "jit"])
@pytest.mark.parametrize("case,function,argument,error,call", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_by_name(case, function, argument, error, call, backend):
    watched = [X2, W2, B2, X4, WC, BC]
    before = _snapshot(watched)
    with fastnn.options(backend=backend), pytest.raises(error) as info:
        call()
    assert not isinstance(info.value, AssertionError), info.value
    assert "numba" not in type(info.value).__module__
    message = str(info.value)
    assert function in message and argument in message, f"{function!r}/{argument!r} not in: {message}"
    for array, copy in zip(watched, before):
        np.testing.assert_array_equal(array, copy)


def test_a_groupnorm_cache_keeps_its_gamma_of_shape_1_c_1_1():
    gamma, beta = np.ones((1, 3, 1, 1)), np.zeros((1, 3, 1, 1))
    for backend in ("reference", "jit"):
        with fastnn.options(backend=backend):
            out, cache = L.spatial_groupnorm_forward(X4, gamma, beta, 3, {})
            dx, dgamma, dbeta = L.spatial_groupnorm_backward(np.ones_like(out), cache)
        assert dgamma.shape == dbeta.shape == (1, 3, 1, 1)


def _norm_cases():
    from fastnn import layer_utils as U

    x4, g3 = X4, np.ones(3)
    return {
        "batchnorm": (lambda: L.batchnorm_forward(X2, np.ones(6), np.zeros(6), {"mode": "train"}),
                      L.batchnorm_backward, None),
        "batchnorm_alt": (lambda: L.batchnorm_forward(X2, np.ones(6), np.zeros(6), {"mode": "train"}),
                          L.batchnorm_backward_alt, None),
        "spatial_batchnorm": (lambda: L.spatial_batchnorm_forward(x4, g3, 0 * g3, {"mode": "train"}),
                              L.spatial_batchnorm_backward, None),
        "layernorm": (lambda: L.layernorm_forward(X2, np.ones(6), np.zeros(6), {}), L.layernorm_backward, None),
        "groupnorm": (lambda: L.spatial_groupnorm_forward(x4, g3, 0 * g3, 3, {}), L.spatial_groupnorm_backward,
                      None),
        "affine_bn_relu": (lambda: U.affine_bn_relu_forward(X2, W2, B2, np.ones(3), np.zeros(3), {"mode": "train"}),
                           U.affine_bn_relu_backward, 1),
        "affine_ln_relu": (lambda: U.affine_ln_relu_forward(X2, W2, B2, np.ones(3), np.zeros(3), {}),
                           U.affine_ln_relu_backward, 1),
    }


def _with_norm_entry(cache, part, index, value):
    """The cache with entry `index` of its norm cache (cache itself, or cache[part] of a fused layer) replaced."""
    norm = list(cache if part is None else cache[part])
    norm[index] = value(norm[index])
    if part is None:
        return tuple(norm)
    return tuple(tuple(norm) if i == part else c for i, c in enumerate(cache))


@pytest.mark.parametrize("backend", ["reference", "jit", "verify"])
@pytest.mark.parametrize("name", list(_norm_cases()))
def test_a_norm_cache_with_big_endian_arrays_gives_the_same_gradients(name, backend):
    """The cache check converted a '>f8' entry to native order for itself and passed the original on: a numba
    TypingError on the compiled path, for every array of every norm cache."""
    forward, backward, part = _norm_cases()[name]
    with fastnn.options(backend=backend):
        out, cache = forward()
        dout = np.random.default_rng(1).standard_normal(out.shape)
        expected = backward(dout, cache)
        for index in (0, 2, 3, 4, 5):
            swapped = _with_norm_entry(cache, part, index, lambda v: v.astype(v.dtype.newbyteorder(">")))
            for got, want in zip(backward(dout, swapped), expected):
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["reference", "jit"])
def test_a_norm_cache_whose_mode_or_groups_cannot_be_is_refused_by_name(backend):
    """A groupnorm cache whose G does not divide C (mean and invstd in its shape): the compiled backward left the
    channels past G * (C // G) unwritten (np.empty's leftovers as dx and dbeta), the reference raised numpy's
    reshape error. A mode array of two entries raised numpy's "truth value ... is ambiguous"."""
    cases = _norm_cases()
    with fastnn.options(backend=backend):
        out, cache = cases["groupnorm"][0]()
        _, six = L.spatial_groupnorm_forward(np.random.default_rng(0).standard_normal((2, 6, 3, 3)), np.ones(6),
                                             np.zeros(6), 3, {})
        bad = (*six[:4], np.zeros((2, 4)), np.ones((2, 4)), six[6], 4)
        with pytest.raises(TypeError, match=r"spatial_groupnorm_backward: cache is not from "
                                             r"spatial_groupnorm_forward: its G=4 groups do not divide the 6 "
                                             r"channels"):
            L.spatial_groupnorm_backward(np.ones_like(six[0]), bad)
        for name in ("batchnorm", "spatial_batchnorm", "affine_bn_relu"):
            forward, backward, part = cases[name]
            out, cache = forward()
            with pytest.raises(ValueError, match=rf"{backward.__name__}: cache\['mode'\] must be one of "
                                                 r"\('train', 'test'\), got an array of shape \(2,\)"):
                backward(np.ones_like(out), _with_norm_entry(cache, part, 7, lambda m: np.array(["train"] * 2)))


def test_a_one_element_mode_array_is_read_as_its_entry_as_in_the_starter():
    with fastnn.options(backend="reference"):
        expected, _ = L.batchnorm_forward(X2, np.ones(6), np.zeros(6), {"mode": "train"})
    for backend in ("reference", "jit", "verify"):
        with fastnn.options(backend=backend):
            out, _ = L.batchnorm_forward(X2, np.ones(6), np.zeros(6), {"mode": np.array(["train"])})
            dropped, _ = L.dropout_forward(X2, {"mode": np.array("test"), "p": 0.5})
        np.testing.assert_allclose(out, expected, rtol=1e-12)
        assert dropped is X2 or np.array_equal(dropped, X2)


def test_verify_ignores_a_param_dicts_other_arrays_and_masked_running_statistics_are_refused():
    """verify compares the float arrays a layer writes (running statistics): an int or string array among a
    user's keys raised KeyError (no tolerance for int64). A masked running_mean reached the kernels in test mode
    (a numba error) and computed on its masked entries' data in train mode: refused by name on every backend."""
    extra = {"mode": np.array("train"), "note": np.array(["a", "b"]), "ids": np.arange(3)}
    with fastnn.options(backend="verify"):
        L.batchnorm_forward(X2, np.ones(6), np.zeros(6), dict(extra))
        L.dropout_forward(X2, {"mode": "train", "p": 0.5, "seed": 0, "ids": np.arange(3)})
        FL.max_pool_forward_fast(X4, {**POOL, "ids": np.arange(3)})
    for backend in ("reference", "jit", "verify"):
        for mode in ("train", "test"):
            param = {"mode": mode, "running_mean": np.ma.MaskedArray(np.ones(6), mask=[0, 1, 0, 0, 0, 0]),
                     "running_var": np.ones(6)}
            with fastnn.options(backend=backend), pytest.raises(
                    TypeError, match=r"batchnorm_forward: bn_param\['running_mean'\] must be a plain numpy.ndarray"):
                L.batchnorm_forward(X2, np.ones(6), np.zeros(6), param)


def test_the_matrix_has_at_least_sixty_cases():
    assert len(CASES) >= 60


def test_a_workspace_that_cannot_be_allocated_is_a_memory_error_naming_the_layer(monkeypatch):
    """numpy's MemoryError named an array of the path's own (im2col's flat columns), not the layer."""
    from fastnn import _dispatch

    def workspace(*args):
        np.empty(2**60, dtype=np.uint8)  # refused at once by any allocator: 1 EiB

    monkeypatch.setattr(_dispatch, "compiled_function", lambda name: workspace)
    with fastnn.options(backend="jit"), pytest.raises(MemoryError, match=r"^conv_forward_fast: Unable to allocate"):
        FL.conv_forward_fast(X4, WC, BC, {"stride": 1, "pad": 1})
