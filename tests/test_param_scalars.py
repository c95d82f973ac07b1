"""numpy scalars in param dicts behave as the Python numbers they equal, on both backends.

NumPy 2 keeps a numpy scalar's own type through arithmetic: np.uint8(200) as pad made H + 2 * pad wrap around
(a wrong output shape, then writes outside the Winograd buffers), np.int16 overflowed a block size, np.float16
reached numba. The layers pass the checked Python values on instead.
"""

from fractions import Fraction

import numpy as np
import pytest

import fastnn
import fastnn.layer_utils as L
from fastnn import optim
from fastnn.testing import randn

BACKENDS = ["jit", "reference"]
INTS = [np.int8, np.uint8, np.int16, np.uint16, np.int64, np.uint64]


def _same(got, want):
    for g, e in zip(got, want):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("C", [3, 8], ids=["im2col", "winograd"])
def test_numpy_integer_stride_and_pad_act_as_python_ints(C, backend):
    x, w, b = randn(2, C, 6, 6), randn(8, C, 3, 3, seed=1), randn(8, seed=2)  # 8 filters: im2col at C = 3
    with fastnn.options(backend=backend):
        want, want_cache = L.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        dout = randn(*want.shape, seed=3)
        for t in INTS:
            out, cache = L.conv_forward_fast(x, w, b, {"stride": t(1), "pad": t(1)})
            np.testing.assert_array_equal(out, want)
            _same(L.conv_backward_fast(dout, cache), L.conv_backward_fast(dout, want_cache))
        out, _ = L.conv_forward_fast(x, w, b, {"stride": np.uint64(1), "pad": np.int64(1)})  # uint64 + int64
        np.testing.assert_array_equal(out, want)
        out, _ = L.conv_forward_fast(x, w, b, {"stride": 1, "pad": np.uint8(200)})  # 6 + 400 - 2 wraps in uint8
        assert out.shape == (2, 8, 404, 404)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_integer_pool_sizes_act_as_python_ints(backend):
    x = randn(2, 3, 12, 12)
    with fastnn.options(backend=backend):
        for param in ({"pool_height": 12, "pool_width": 12, "stride": 1}, {"pool_height": 2, "pool_width": 2,
                                                                            "stride": 2}):
            want, want_cache = L.max_pool_forward_fast(x, param)
            dout = randn(*want.shape, seed=4)
            for t in INTS:
                out, cache = L.max_pool_forward_fast(x, {k: t(v) for k, v in param.items()})
                np.testing.assert_array_equal(out, want)
                np.testing.assert_array_equal(L.max_pool_backward_fast(dout, cache),
                                              L.max_pool_backward_fast(dout, want_cache))
            out, cache = L.max_pool_forward_naive(x, {k: np.int8(v) for k, v in param.items()})
            np.testing.assert_array_equal(out, want)
            np.testing.assert_array_equal(L.max_pool_backward_naive(dout, cache),
                                          L.max_pool_backward_fast(dout, want_cache))


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_float_keep_probability_and_integer_seed(backend):
    x = randn(4, 6)
    with fastnn.options(backend=backend):
        want, want_cache = L.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 3})
        for p in (np.float16(0.5), np.float32(0.5), np.float64(0.5)):
            out, cache = L.dropout_forward(x, {"p": p, "mode": "train", "seed": np.uint16(3)})
            np.testing.assert_array_equal(out, want)
            np.testing.assert_array_equal(L.dropout_backward(x, cache), L.dropout_backward(x, want_cache))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eps", [np.float16(1e-3), np.float64(1e-3), Fraction(1, 1000)], ids=str)
def test_numpy_or_fraction_eps_and_momentum_act_as_python_floats(eps, backend):
    x, g, b = randn(4, 6), 1 + 0.1 * randn(6, seed=5), randn(6, seed=6)
    x4 = randn(2, 4, 3, 3)
    with fastnn.options(backend=backend):
        cases = [
            (lambda e: L.layernorm_forward(x, g, b, {"eps": e})[0]),
            (lambda e: L.spatial_groupnorm_forward(x4, np.ones(4), np.zeros(4), 2, {"eps": e})[0]),
            (lambda e: L.affine_ln_relu_forward(x, np.eye(6), np.zeros(6), g, b, {"eps": e})[0]),
            (lambda e: L.affine_bn_relu_forward(x, np.eye(6), np.zeros(6), g, b, {"mode": "train", "eps": e})[0]),
        ]
        for case in cases:
            np.testing.assert_array_equal(case(eps), case(float(eps)))
        params = [{"mode": "train", "eps": e, "momentum": m} for e, m in ((eps, Fraction(9, 10)), (float(eps), 0.9))]
        outs = [L.batchnorm_forward(x, g, b, param)[0] for param in params]
        np.testing.assert_array_equal(outs[0], outs[1])
        for key in ("running_mean", "running_var"):
            assert params[0][key].dtype == x.dtype
            np.testing.assert_array_equal(params[0][key], params[1][key])


@pytest.mark.parametrize("backend", BACKENDS)
def test_svm_loss_of_a_nan_score_is_nan(backend):
    """A diverging run must not look healthy: a NaN score makes the loss NaN on both paths, as np.maximum."""
    scores, y = np.array([[np.nan, 1.0, 2.0], [0.0, 1.0, 2.0]]), np.array([1, 0])
    with fastnn.options(backend=backend):
        loss, dx = L.svm_loss(scores, y)
    with fastnn.options(backend="reference"):
        _, want = L.svm_loss(scores, y)
    assert np.isnan(loss)
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_d_arrays_keep_their_shape(backend):
    with fastnn.options(backend=backend):
        with pytest.raises(ValueError, match="affine_forward: x must have a non-empty batch dimension"):
            L.affine_forward(np.array(2.0), np.ones((1, 5)), np.zeros(5))
        next_w, _ = optim.sgd(np.array(1.0), np.array(0.5), {"learning_rate": 0.1})
    assert next_w.shape == () and next_w == 0.95


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_array_subclasses_run_as_plain_arrays(backend):
    """A matrix or masked array is taken as its plain ndarray data on both paths (numba refuses subclasses)."""
    scores = np.ma.MaskedArray(np.arange(12.0).reshape(3, 4), mask=np.eye(3, 4, dtype=bool))
    with fastnn.options(backend=backend):
        loss, _ = L.softmax_loss(scores, np.array([0, 1, 2]))
        out, _ = L.relu_forward(np.matrix([[1.0, -1.0], [2.0, 0.5]]))
    with fastnn.options(backend="reference"):
        want, _ = L.softmax_loss(np.arange(12.0).reshape(3, 4), np.array([0, 1, 2]))
    assert loss == want
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, [[1.0, 0.0], [2.0, 0.5]])


def _zero_d(d):
    return {k: np.array(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in d.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_0d_arrays_act_as_the_numbers_they_hold(backend):
    """np.load of an .npz gives its numbers as 0-d arrays, and the starter computed with them; they were refused
    ("must be an integer, got array(1)")."""
    f32 = np.float32  # float32 arrays: a 0-d float64 value must not promote the results to float64
    x4, w, b = randn(2, 3, 6, 6).astype(f32), randn(4, 3, 3, 3, seed=1).astype(f32), randn(4, seed=2).astype(f32)
    x2, g, be = randn(5, 4, seed=3).astype(f32), randn(4, seed=4).astype(f32), randn(4, seed=5).astype(f32)
    x7, gn = randn(2, 3, 7, 7).astype(f32), randn(2, 4, 3, 3).astype(f32)
    w43, b3, g3, be3 = (randn(*shape, seed=6 + i).astype(f32) for i, shape in enumerate([(4, 3), (3,), (3,), (3,)]))
    calls = [
        lambda z: L.conv_forward_fast(x7, w, b, z({"stride": 2, "pad": 1}))[0],
        lambda z: L.max_pool_forward_fast(x4, z({"pool_height": 3, "pool_width": 3, "stride": 3}))[0],
        lambda z: L.dropout_forward(x2, z({"mode": "train", "p": 0.5, "seed": 7}))[0],
        lambda z: L.batchnorm_forward(x2, g, be, z({"mode": "train", "eps": 1e-3, "momentum": 0.5}))[0],
        lambda z: L.layernorm_forward(x2, g, be, z({"eps": 1e-3}))[0],
        lambda z: L.spatial_groupnorm_forward(gn, g, be, z({"G": 2})["G"], z({"eps": 1e-3}))[0],
        lambda z: L.leaky_relu_forward(x2, z({"alpha": 0.1})["alpha"])[0],
        lambda z: L.affine_bn_relu_forward(x2, w43, b3, g3, be3, z({"mode": "train", "eps": 1e-3}))[0],
        lambda z: optim.adam(x2.copy(), g[None].repeat(5, 0), z({"learning_rate": 1e-2, "t": 3, "beta1": 0.8}))[0],
        lambda z: optim.sgd(x2.copy(), x2, z({"learning_rate": 0.5}))[0],
    ]
    with fastnn.options(backend=backend):
        for call in calls:
            got, want = call(_zero_d), call(lambda d: d)
            assert got.dtype == want.dtype == np.float32
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_param_dict_changed_after_the_forward_leaves_its_cache_alone(backend):
    """A cache held the caller's conv_param: changing it before the backward gave a silently wrong dx from a
    Winograd cache on jit (the reference raised)."""
    x, w, b = randn(2, 8, 6, 6), randn(8, 8, 3, 3, seed=1), randn(8, seed=2)
    with fastnn.options(backend=backend):
        conv_param, pool_param = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
        out, conv_cache = L.conv_forward_fast(x, w, b, conv_param)
        pooled, pool_cache = L.max_pool_forward_fast(x, pool_param)
        dout, dpooled = randn(*out.shape, seed=3), randn(*pooled.shape, seed=4)
        want = L.conv_backward_fast(dout, conv_cache), L.max_pool_backward_fast(dpooled, pool_cache)
        conv_param.update(stride=2, pad=1)
        pool_param.update(pool_height=3, stride=1)
        _same(L.conv_backward_fast(dout, conv_cache), want[0])
        np.testing.assert_array_equal(L.max_pool_backward_fast(dpooled, pool_cache), want[1])
