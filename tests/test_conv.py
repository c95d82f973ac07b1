import numpy as np
import pytest

from fastnn.fast_layers import (
    col2im_indices,
    conv_backward_fast,
    conv_backward_im2col,
    conv_forward_fast,
    conv_forward_im2col,
    conv_forward_strides,
    im2col_indices,
)
from fastnn.layers import conv_backward_naive, conv_forward_naive
from fastnn.testing import assert_close, check_gradients, conv_inputs

pytestmark = pytest.mark.usefixtures("reference_backend")

# (N, C, H, W, F, HH, WW, stride, pad): stride 1-3, pad 0-3, non-square and 1x1 kernels, odd sizes, N=1, C=1
GEOMETRIES = [
    (2, 3, 5, 5, 4, 3, 3, 1, 1),
    (2, 3, 7, 7, 2, 3, 3, 2, 1),
    (1, 1, 9, 9, 3, 3, 3, 3, 0),
    (2, 2, 5, 7, 3, 3, 1, 1, 0),
    (1, 3, 6, 8, 2, 2, 4, 2, 1),
    (3, 4, 4, 4, 2, 1, 1, 1, 0),
    (1, 2, 3, 3, 2, 1, 1, 1, 3),
    (2, 1, 7, 5, 1, 5, 3, 1, 2),
    (1, 2, 11, 11, 2, 7, 7, 2, 3),
]


def _param(g):
    return {"stride": g[7], "pad": g[8]}


def _inputs(g, dtype=np.float64):
    N, C, H, W, F, HH, WW = g[:7]
    return conv_inputs(N=N, C=C, H=H, W=W, F=F, HH=HH, WW=WW, dtype=dtype, seed=sum(g))


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_naive_loops_match_vectorised_forward_and_backward(g):
    x, w, b = _inputs(g)
    out_naive, cache_naive = conv_forward_naive(x, w, b, _param(g))
    out_fast, cache_fast = conv_forward_fast(x, w, b, _param(g))
    assert_close(out_fast, out_naive, rtol=1e-12)
    dout = np.random.default_rng(1).standard_normal(out_naive.shape)
    for fast, naive in zip(conv_backward_fast(dout, cache_fast), conv_backward_naive(dout, cache_naive)):
        assert_close(fast, naive, rtol=1e-12)


@pytest.mark.parametrize("g", GEOMETRIES[:4], ids=str)
def test_conv_gradients_match_numeric(g):
    x, w, b = _inputs(g)
    p = _param(g)
    check_gradients(lambda x, w, b: conv_forward_naive(x, w, b, p), conv_backward_naive, [x, w, b], wrt=[0, 1, 2])
    check_gradients(lambda x, w, b: conv_forward_fast(x, w, b, p), conv_backward_fast, [x, w, b], wrt=[0, 1, 2])


def test_conv_forward_naive_matches_notebook():
    x_shape, w_shape = (2, 3, 4, 4), (3, 3, 4, 4)
    x = np.linspace(-0.1, 0.5, num=np.prod(x_shape)).reshape(x_shape)
    w = np.linspace(-0.2, 0.3, num=np.prod(w_shape)).reshape(w_shape)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    correct = np.array([[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
                         [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
                         [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
                        [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
                         [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
                         [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
    np.testing.assert_allclose(out, correct, rtol=1e-7)


def test_fast_conv_aliases_share_one_cache_layout():
    x, w, b = conv_inputs(N=2, C=3, H=5, W=5, F=4, HH=3, WW=3)
    p = {"stride": 1, "pad": 1}
    out, cache = conv_forward_im2col(x, w, b, p)
    np.testing.assert_array_equal(out, conv_forward_strides(x, w, b, p)[0])
    x_cols = cache[4]
    assert x_cols.shape == (3 * 3 * 3, 2 * 5 * 5)
    # row (c*HH + kh)*WW + kw, column (n*H' + i)*W' + j: entry for c=1, kh=0, kw=2, n=1, i=2, j=3
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert x_cols[(1 * 3 + 0) * 3 + 2, (1 * 5 + 2) * 5 + 3] == xp[1, 1, 2 + 0, 3 + 2]
    assert len(conv_backward_im2col(np.ones_like(out), cache)) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, size", [(2, 3), (1, 5)])  # Winograd; im2col on one-image blocks
def test_conv_keeps_dtype_and_does_not_modify_inputs(dtype, N, size):
    x, w, b = conv_inputs(N=N, HH=size, WW=size, dtype=dtype)
    copies = [a.copy() for a in (x, w, b)]
    for forward, backward in [(conv_forward_naive, conv_backward_naive), (conv_forward_fast, conv_backward_fast)]:
        out, cache = forward(x, w, b, {"stride": 1, "pad": size // 2})
        dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)  # read in place by one-image blocks
        dout_copy = dout.copy()
        assert out.dtype == dtype and all(g.dtype == dtype for g in backward(dout, cache))
        np.testing.assert_array_equal(dout, dout_copy)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


def test_starter_im2col_helpers_are_adjoint():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    cols = im2col_indices(x, 3, 3, padding=1, stride=1)
    assert cols.shape == (27, 50)
    y = np.random.default_rng(1).standard_normal(cols.shape)
    # <im2col(x), y> == <x, col2im(y)>
    np.testing.assert_allclose(np.sum(cols * y), np.sum(x * col2im_indices(y, x.shape, 3, 3, 1, 1)))


@pytest.mark.parametrize("shape", [(0, 3, 5, 5), (2, 0, 5, 5)])
def test_starter_im2col_helpers_take_an_empty_batch_or_no_channels(shape):
    """im2col_indices gave (rows, 0) there; col2im_indices raised numpy's reshape error on it."""
    from fastnn.fast_layers import col2im_cython

    cols = im2col_indices(np.zeros(shape), 3, 3, padding=1, stride=1)
    assert cols.shape == (shape[1] * 9, 25 * shape[0])
    assert col2im_indices(cols, shape, 3, 3, 1, 1).shape == shape
    assert col2im_cython(cols, *shape, 3, 3, 1, 1).shape == shape


@pytest.mark.parametrize("N, C, H, W, HH, WW, pad, stride", [(2, 3, 7, 5, 3, 3, 1, 1), (1, 2, 8, 8, 2, 2, 0, 2),
                                                             (2, 1, 9, 7, 3, 1, 0, 3)])
def test_col2im_6d_cython_sums_the_strided_columns_back(N, C, H, W, HH, WW, pad, stride):
    """API.md lists col2im_6d_cython among the compiled extension's names, which fast_layers lacked."""
    from fastnn.fast_layers import col2im_6d_cython

    H_out, W_out = (H + 2 * pad - HH) // stride + 1, (W + 2 * pad - WW) // stride + 1
    cols = np.random.default_rng(0).standard_normal((C, HH, WW, N, H_out, W_out))
    padded = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for c, a, b, n, i, j in np.ndindex(cols.shape):  # the starter's Cython loop
        padded[n, c, stride * i + a, stride * j + b] += cols[c, a, b, n, i, j]
    np.testing.assert_allclose(col2im_6d_cython(cols, N, C, H, W, HH, WW, pad, stride),
                               padded[:, :, pad:pad + H, pad:pad + W], rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match=r"col2im_6d_cython: cols must have shape"):
        col2im_6d_cython(cols[:, :, :, :, :-1], N, C, H, W, HH, WW, pad, stride)


def test_starter_im2col_helpers_name_bad_arguments():
    """stride 0 once raised ZeroDivisionError, a list x an AttributeError, float field sizes a raw numpy TypeError,
    and every message named get_im2col_indices whichever helper was called."""
    from fastnn.fast_layers import col2im_cython, get_im2col_indices, im2col_cython

    x = np.zeros((2, 3, 5, 5))
    cases = [
        (lambda: im2col_indices(x, 3, 3, padding=1, stride=0), ValueError, "im2col_indices: stride must be >= 1"),
        (lambda: im2col_indices(x.tolist(), 3, 3), TypeError, "im2col_indices: x must be a numeric numpy.ndarray"),
        (lambda: im2col_indices(x[0], 3, 3), ValueError, r"im2col_indices: x must be 4-D"),
        (lambda: im2col_indices(x, 3.0, 3), TypeError, "im2col_indices: field_height must be an integer"),
        (lambda: im2col_indices(x, 3, 3, padding=-1), ValueError, "im2col_indices: padding must be >= 0"),
        (lambda: im2col_cython(x, 3, 3, 1, 3), ValueError, "im2col_cython: height: .* not divisible by stride 3"),
        (lambda: get_im2col_indices((2, 3, 5), 3, 3), TypeError, r"get_im2col_indices: x_shape must be \(N, C, H, W\)"),
        (lambda: col2im_indices(np.zeros((27, 49)), x.shape, 3, 3, 1, 1), ValueError,
         r"col2im_indices: cols must have shape \(27, 50\)"),
        (lambda: col2im_cython(np.zeros((27, 50)), 2, 3, 5, 5, 3, 3, 1, 0), ValueError,
         "col2im_cython: stride must be >= 1"),
        (lambda: col2im_cython(np.zeros((27, 50)), -2, 3, 5, 5, 3, 3, 1, 1), ValueError,
         "col2im_cython: N must be >= 0"),
        (lambda: im2col_cython(x, 3, 3, 1, 0), ValueError, "im2col_cython: stride must be >= 1"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize("geometry", [(2, 3, 5, 5, 4, 3, 3, 1, 1), (3, 2, 7, 5, 2, 3, 1, 2, 0)])
def test_a_cache_holding_columns_in_im2col_cythons_order_is_refused(geometry):
    """The starter's im2col_cython orders columns (H', W', N): the same shape as the forward's (N, H', W'), and the
    reference's dw from such a hand-built cache was silently wrong."""
    from fastnn.fast_layers import im2col_cython

    x, w, b = _inputs(geometry)
    stride, pad = geometry[7], geometry[8]
    out, cache = conv_forward_im2col(x, w, b, {"stride": stride, "pad": pad})
    starters = im2col_cython(x, w.shape[2], w.shape[3], pad, stride)
    assert starters.shape == cache[4].shape
    with pytest.raises(ValueError, match=r"conv_backward_im2col: cache x_cols column \d+ is not x's receptive field"):
        conv_backward_im2col(np.ones_like(out), cache[:4] + (starters,))
    x[0, 0, 0, 0] = np.nan  # NaN columns are still the forward's own
    out, cache = conv_forward_im2col(x, w, b, {"stride": stride, "pad": pad})
    assert len(conv_backward_im2col(np.ones_like(out), cache)) == 3
