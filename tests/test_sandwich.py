import numpy as np
import pytest

from fastnn.layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_ln_relu_backward,
    affine_ln_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from fastnn.testing import affine_inputs, check_gradients, conv_inputs, rng

pytestmark = pytest.mark.usefixtures("reference_backend")

CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _gamma_beta(n, seed=5):
    g = rng(seed)
    return 1 + 0.3 * g.standard_normal(n), g.standard_normal(n)


def test_affine_relu_gradients():
    x, w, b = affine_inputs(N=3, D=(2, 3), M=4)
    check_gradients(affine_relu_forward, affine_relu_backward, [x, w, b], wrt=[0, 1, 2])


@pytest.mark.parametrize("forward,backward,param", [
    (affine_bn_relu_forward, affine_bn_relu_backward, {"mode": "train"}),
    (affine_ln_relu_forward, affine_ln_relu_backward, {}),
])
def test_affine_norm_relu_gradients(forward, backward, param):
    x, w, b = affine_inputs(N=5, D=(2, 3), M=4)
    gamma, beta = _gamma_beta(4)
    check_gradients(lambda x, w, b, g, bt: forward(x, w, b, g, bt, param), backward, [x, w, b, gamma, beta],
                    wrt=[0, 1, 2, 3, 4])


def test_conv_sandwich_gradients():
    x, w, b = conv_inputs(N=2, C=2, H=4, W=4, F=3)
    check_gradients(lambda x, w, b: conv_relu_forward(x, w, b, CONV), conv_relu_backward, [x, w, b], wrt=[0, 1, 2])
    check_gradients(lambda x, w, b: conv_relu_pool_forward(x, w, b, CONV, POOL), conv_relu_pool_backward,
                    [x, w, b], wrt=[0, 1, 2])
    gamma, beta = _gamma_beta(3)
    check_gradients(lambda x, w, b, g, bt: conv_bn_relu_forward(x, w, b, g, bt, CONV, {"mode": "train"}),
                    conv_bn_relu_backward, [x, w, b, gamma, beta], wrt=[0, 1, 2, 3, 4])


def test_sandwich_caches_keep_the_starter_shape():
    x, w, b = affine_inputs()
    _, cache = affine_relu_forward(x, w, b)
    fc_cache, relu_cache = cache
    assert fc_cache[0] is x and relu_cache.shape == (x.shape[0], w.shape[1])
    gamma, beta = _gamma_beta(w.shape[1])
    _, cache = affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"})
    assert len(cache) == 3 and len(cache[1]) == 8
    xc, wc, bc = conv_inputs(H=8, W=8)
    _, cache = conv_relu_pool_forward(xc, wc, bc, CONV, POOL)
    assert len(cache) == 3 and len(cache[0]) == 5 and cache[2][0] == "argmax"


def test_sandwich_errors_name_the_sandwich():
    x, w, b = conv_inputs(C=3)
    with pytest.raises(ValueError, match="conv_relu_pool_forward"):
        conv_relu_pool_forward(x, w, b, CONV, {"pool_height": 2, "pool_width": 2, "stride": 3})
    gamma, beta = _gamma_beta(w.shape[0] + 1)
    with pytest.raises(ValueError, match="conv_bn_relu_forward.*gamma"):
        conv_bn_relu_forward(x, w, b, gamma, beta, CONV, {"mode": "train"})
    xa, wa, ba = affine_inputs()
    with pytest.raises(ValueError, match="affine_bn_relu_forward.*mode"):
        affine_bn_relu_forward(xa, wa, ba, *_gamma_beta(wa.shape[1]), {"mode": "eval"})
    with pytest.raises(TypeError, match="affine_bn_relu_forward"):
        affine_bn_relu_forward(xa, wa, ba, *(a.astype(np.float32) for a in _gamma_beta(wa.shape[1])),
                               {"mode": "train"})
