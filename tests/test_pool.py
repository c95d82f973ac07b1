import numpy as np
import pytest

from fastnn.fast_layers import (
    max_pool_backward_fast,
    max_pool_backward_im2col,
    max_pool_forward_fast,
    max_pool_forward_im2col,
    max_pool_forward_reshape,
)
from fastnn.layers import max_pool_backward_naive, max_pool_forward_naive
from fastnn.testing import assert_close, check_gradients, randn

pytestmark = pytest.mark.usefixtures("reference_backend")

# (N, C, H, W, pool_height, pool_width, stride): tiling, overlapping, non-square, 1x1, odd sizes, N=1, C=1
GEOMETRIES = [
    (2, 3, 4, 4, 2, 2, 2),
    (1, 1, 5, 5, 3, 3, 1),
    (2, 2, 7, 7, 3, 3, 2),
    (1, 3, 8, 9, 2, 3, 3),
    (2, 1, 5, 7, 1, 1, 1),
    (1, 2, 9, 9, 3, 3, 3),
    (3, 2, 5, 8, 3, 2, 2),
]


def _param(g):
    return {"pool_height": g[4], "pool_width": g[5], "stride": g[6]}


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_naive_loops_match_vectorised_pool(g):
    x = randn(*g[:4], seed=sum(g))
    out_naive, cache_naive = max_pool_forward_naive(x, _param(g))
    out_fast, cache_fast = max_pool_forward_fast(x, _param(g))
    np.testing.assert_array_equal(out_fast, out_naive)
    dout = randn(*out_naive.shape, seed=1)
    assert_close(max_pool_backward_fast(dout, cache_fast), max_pool_backward_naive(dout, cache_naive), rtol=1e-15)


@pytest.mark.parametrize("g", GEOMETRIES[:3], ids=str)
def test_pool_gradients_match_numeric(g):
    x = randn(*g[:4], seed=sum(g))
    p = _param(g)
    check_gradients(lambda x: max_pool_forward_naive(x, p), max_pool_backward_naive, [x], wrt=[0])
    check_gradients(lambda x: max_pool_forward_fast(x, p), max_pool_backward_fast, [x], wrt=[0])


def test_max_pool_forward_matches_notebook():
    x = np.linspace(-0.3, 0.4, num=np.prod((2, 3, 4, 4))).reshape(2, 3, 4, 4)
    out, _ = max_pool_forward_naive(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
    correct = np.array([[[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
                         [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
                         [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
                        [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
                         [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
                         [[0.32631579, 0.34105263], [0.38526316, 0.4]]]])
    np.testing.assert_allclose(out, correct, rtol=1e-7)


@pytest.mark.parametrize("forward,backward", [(max_pool_forward_naive, max_pool_backward_naive),
                                              (max_pool_forward_fast, max_pool_backward_fast),
                                              (max_pool_forward_reshape, max_pool_backward_fast)])
def test_ties_send_the_whole_gradient_to_the_first_maximum(forward, backward):
    x = np.ones((1, 1, 2, 2))
    out, cache = forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = backward(np.full_like(out, 3.0), cache)
    np.testing.assert_array_equal(dx[0, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_overlapping_windows_accumulate():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # the maximum of all four 2x2 windows with stride 1
    out, cache = max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 1})
    dx = max_pool_backward_fast(np.ones_like(out), cache)
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_nan_propagates_and_takes_the_gradient():
    x = randn(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    for forward, backward in [(max_pool_forward_naive, max_pool_backward_naive),
                              (max_pool_forward_fast, max_pool_backward_fast)]:
        out, cache = forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
        assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1, 1])
        dx = backward(np.ones_like(out), cache)
        assert dx[0, 0, 0, 1] == 1.0


def test_fast_cache_is_a_compact_argmax():
    x = randn(2, 3, 8, 8)
    out, cache = max_pool_forward_im2col(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    method, (x_cached, pool_param, argmax) = cache
    assert method == "argmax" and x_cached is x and argmax.dtype == np.uint8 and argmax.shape == out.shape
    assert max_pool_backward_im2col(np.ones_like(out), cache).shape == x.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_keeps_dtype(dtype):
    x = randn(2, 2, 4, 4, dtype=dtype)
    for forward, backward in [(max_pool_forward_naive, max_pool_backward_naive),
                              (max_pool_forward_fast, max_pool_backward_fast)]:
        out, cache = forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
        assert out.dtype == dtype and backward(out, cache).dtype == dtype


@pytest.mark.parametrize("backend", ["jit", "reference"])
@pytest.mark.parametrize("pool", [{"pool_height": 2, "pool_width": 2, "stride": 2},
                                  {"pool_height": 3, "pool_width": 3, "stride": 2}], ids=["2x2", "3x3s2"])
def test_a_byte_swapped_argmax_cache_gives_the_same_gradient(pool, backend):
    """A cache whose argmax was byte-swapped (converted or read back on its own) gives the same dx, no numba
    error. (A big-endian float x is refused by name, as everywhere.)"""
    import fastnn
    from fastnn.layer_utils import conv_relu_pool_backward, conv_relu_pool_forward

    x = randn(2, 3, 7, 7) if pool["pool_height"] == 3 else randn(2, 3, 8, 8)
    with fastnn.options(backend=backend):
        out, (method, (x_cached, param, argmax)) = max_pool_forward_fast(x, pool)
        swapped = ("argmax", (x_cached, param, argmax.astype(np.dtype("uint16").newbyteorder(">"))))
        dout = randn(*out.shape, seed=3)
        np.testing.assert_array_equal(max_pool_backward_fast(dout, swapped),
                                      max_pool_backward_fast(dout, (method, (x_cached, param, argmax))))
        w, b = randn(4, 3, 3, 3, seed=4), randn(4, seed=5)
        out, (conv_cache, relu_cache, (m, (a, p, am))) = conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1}, pool)
        dout = randn(*out.shape, seed=6)
        want = conv_relu_pool_backward(dout, (conv_cache, relu_cache, (m, (a, p, am))))
        got = conv_relu_pool_backward(dout, (conv_cache, relu_cache, (m, (a, p, am.astype(">u2")))))
        for g, e in zip(got, want):
            np.testing.assert_array_equal(g, e)
