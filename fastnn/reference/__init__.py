"""The ground truth: every fastnn layer in plain, readable NumPy.

Same function names and signatures as fastnn.layers (which validates, then dispatches here or to
fastnn.compiled). These functions do not validate: call them through fastnn.layers. They import NumPy only.

Cache layouts (identical on the reference and compiled paths, so a forward on one path and a backward on the
other agree; the starter's layout wherever the CS231n starter fixes one):

    affine            (x, w, b)
    relu              x
    leaky_relu        (x, alpha)
    sigmoid, tanh     out
    batchnorm         (x, xhat, gamma, beta, mean, invstd, eps, mode)   mean, invstd (D,); in test mode the
                                                                         running mean and 1/sqrt(running_var+eps);
                                                                         xhat is None from the compiled path
                                                                         (every backward recomputes it)
    spatial_batchnorm (x, xhat, gamma, beta, mean, invstd, eps, mode)   mean, invstd (C,)
    layernorm         (x, xhat, gamma, beta, mean, invstd, eps)         mean, invstd (N,); xhat is None from the
                                                                         compiled path, as batchnorm's
    spatial_groupnorm (x, xhat, gamma, beta, mean, invstd, eps, G)      mean, invstd (N, G); gamma, beta as passed;
                                                                         xhat None from the compiled path
    dropout           (dropout_param, mask)                             mask: bool keep-mask, None in test mode
    conv naive        (x, w, b, conv_param)
    conv im2col/strides/fast
                      (x, w, b, conv_param, x_cols)                     x_cols (C*HH*WW, N*H'*W'), row
                                                                         (c*HH + kh)*WW + kw, column (n*H' + i)*W' + j;
                                                                         from the compiled path ColumnsFromInput or
                                                                         WinogradTiles (the backward rebuilds x_cols)
    max pool naive    (x, pool_param)
    max pool fast/reshape/im2col
                      ('argmax', (x, pool_param, argmax))               argmax (N, C, H', W'), dtype
                                                                         np.min_scalar_type(ph*pw - 1), the index
                                                                         kh*pw + kw of the window's first maximum
                                                                         (np.argmax rules: NaN counts as the maximum)
    sandwiches        tuples of the caches above, e.g. (fc_cache, bn_cache, relu_cache); a relu_cache may hold the
                      ReLU's input or its output (same sign, so the same gradient)
"""

from .activations import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .sandwich import *  # noqa: F401,F403
