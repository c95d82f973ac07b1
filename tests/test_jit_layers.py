"""Every compiled layer against the NumPy reference: dtypes, layouts, cross-path caches, verify mode.

float32 results are compared with the float64 reference on the same inputs (TOLERANCES in fastnn.testing).
"""

from fractions import Fraction

import numba
import numpy as np
import pytest

import fastnn
import fastnn.layer_utils as L
from fastnn._dispatch import run as dispatch_run
from fastnn._options import input_gradient
from fastnn.testing import (
    affine_inputs,
    assert_close,
    conv_inputs,
    layouts,
    norm_inputs,
    randn,
    scores_and_labels,
    tolerance,
)

CONV1 = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _gb(n, dtype):
    return (1 + 0.3 * randn(n, seed=11)).astype(dtype), randn(n, seed=12).astype(dtype)


# name -> (forward, backward, builder(dtype) -> args); the first arg is the one whose layout varies.
CASES = {
    "affine": (L.affine_forward, L.affine_backward, lambda t: affine_inputs(N=5, D=(3, 4), M=6, dtype=t)),
    "relu": (L.relu_forward, L.relu_backward, lambda t: (randn(4, 5, dtype=t),)),
    "leaky_relu": (L.leaky_relu_forward, L.leaky_relu_backward, lambda t: (randn(4, 5, dtype=t), 0.2)),
    "sigmoid": (L.sigmoid_forward, L.sigmoid_backward, lambda t: (randn(4, 5, dtype=t),)),
    "tanh": (L.tanh_forward, L.tanh_backward, lambda t: (randn(4, 5, dtype=t),)),
    "batchnorm": (L.batchnorm_forward, L.batchnorm_backward,
                  lambda t: norm_inputs((9, 6), dtype=t) + ({"mode": "train"},)),
    "batchnorm_alt": (L.batchnorm_forward, L.batchnorm_backward_alt,
                      lambda t: norm_inputs((9, 6), dtype=t) + ({"mode": "train", "momentum": 0.5},)),
    "batchnorm_test": (L.batchnorm_forward, L.batchnorm_backward,
                       lambda t: norm_inputs((1, 6), dtype=t) + ({"mode": "test", "running_mean": np.ones(6, t),
                                                                  "running_var": np.full(6, 2.0, t)},)),
    "spatial_batchnorm": (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                          lambda t: norm_inputs((3, 4, 5, 3), dtype=t) + ({"mode": "train"},)),
    "layernorm": (L.layernorm_forward, L.layernorm_backward, lambda t: norm_inputs((1, 7), dtype=t) + ({},)),
    "groupnorm": (L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                  lambda t: norm_inputs((2, 6, 3, 3), dtype=t) + (3, {})),
    "groupnorm_notebook_shape": (L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                                 lambda t: (lambda x, g, b: (x, g.reshape(1, 6, 1, 1), b.reshape(1, 6, 1, 1), 6, {}))(
                                     *norm_inputs((2, 6, 3, 3), dtype=t))),
    "dropout": (L.dropout_forward, L.dropout_backward, lambda t: (randn(6, 7, dtype=t),
                                                                  {"mode": "train", "p": 0.6, "seed": 3})),
    "conv_fast": (L.conv_forward_fast, L.conv_backward_fast, lambda t: conv_inputs(dtype=t) + (CONV1,)),
    "conv_winograd": (L.conv_forward_fast, L.conv_backward_fast,
                      lambda t: conv_inputs(N=2, C=8, H=6, W=6, F=8, HH=3, WW=3, dtype=t) + (CONV1,)),
    "conv_one_image_blocks": (L.conv_forward_fast, L.conv_backward_fast,  # 576 output pixels: a block per image
                              lambda t: conv_inputs(N=2, C=3, H=24, W=24, F=4, HH=5, WW=5, dtype=t)
                              + ({"stride": 1, "pad": 2},)),
    "conv_naive_stride2": (L.conv_forward_naive, L.conv_backward_naive,
                           lambda t: conv_inputs(N=2, C=3, H=9, W=7, F=2, HH=3, WW=3, dtype=t)
                           + ({"stride": 2, "pad": 2},)),
    "conv_relu_pool": (L.conv_relu_pool_forward, L.conv_relu_pool_backward,
                       lambda t: conv_inputs(N=2, C=2, H=6, W=8, F=3, HH=5, WW=5, dtype=t) + ({"stride": 1, "pad": 2},
                                                                                        POOL)),
    "conv_relu_pool_overlap": (L.conv_relu_pool_forward, L.conv_relu_pool_backward,
                               lambda t: conv_inputs(N=2, C=2, H=7, W=7, F=3, HH=3, WW=3, dtype=t)
                               + ({"stride": 1, "pad": 1}, {"pool_height": 3, "pool_width": 3, "stride": 2})),
    "pool_fast": (L.max_pool_forward_fast, L.max_pool_backward_fast, lambda t: (randn(2, 3, 6, 6, dtype=t), POOL)),
    "pool_naive_overlap": (L.max_pool_forward_naive, L.max_pool_backward_naive,
                           lambda t: (randn(2, 1, 7, 7, dtype=t), {"pool_height": 3, "pool_width": 3, "stride": 2})),
    "affine_bn_relu": (L.affine_bn_relu_forward, L.affine_bn_relu_backward,
                       lambda t: affine_inputs(N=8, D=(5,), M=6, dtype=t) + _gb(6, t) + ({"mode": "train"},)),
    "affine_bn_relu_test": (L.affine_bn_relu_forward, L.affine_bn_relu_backward,
                            lambda t: affine_inputs(N=3, D=(5,), M=6, dtype=t) + _gb(6, t)
                            + ({"mode": "test", "running_mean": np.full(6, 0.1, t), "running_var": np.ones(6, t)},)),
    "affine_ln_relu": (L.affine_ln_relu_forward, L.affine_ln_relu_backward,
                       lambda t: affine_inputs(N=4, D=(5,), M=6, dtype=t) + _gb(6, t) + ({},)),
}


def _copy_args(args):
    return [dict(a) if isinstance(a, dict) else a for a in args]


def _as_float64(a):
    if isinstance(a, np.ndarray):
        return a.astype(np.float64)
    if isinstance(a, dict):
        return {k: _as_float64(v) for k, v in a.items()}
    return a


def _run(backend, forward, backward, args, dout=None):
    with fastnn.options(backend=backend):
        out, cache = forward(*args)
        if dout is None:
            dout = randn(*out.shape, seed=5, dtype=out.dtype)
        grads = backward(dout if dout.dtype == out.dtype else dout.astype(out.dtype), cache)
    return out, cache, dout, grads if isinstance(grads, tuple) else (grads,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CASES)
def test_jit_matches_reference(name, dtype):
    forward, backward, build = CASES[name]
    args = build(dtype)
    reference_args = [_as_float64(a) for a in args]
    originals = [a.copy() for a in args if isinstance(a, np.ndarray)]
    out_ref, _, dout, grads_ref = _run("reference", forward, backward, reference_args)
    jit_args = _copy_args(args)
    jit_dout = dout.astype(dtype)
    out, _, _, grads = _run("jit", forward, backward, jit_args, jit_dout)
    np.testing.assert_array_equal(jit_dout, dout.astype(dtype))  # the compiled backward leaves dout alone
    assert out.dtype == dtype
    assert_close(out, out_ref, dtype=dtype, what=f"{name} forward")
    for k, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        assert g.dtype == dtype and g.shape == g_ref.shape
        if name.startswith("affine_bn_relu") and k == 2 and jit_args[-1]["mode"] == "train":
            # db of an affine layer feeding a batchnorm is zero in exact arithmetic: both paths return rounding
            # noise, so it is held to the scale of dx instead of its own
            scale = np.abs(grads_ref[0]).max()
            assert np.abs(g - g_ref).max() <= 10 * np.finfo(dtype).eps * scale * len(dout), "db noise"
            continue
        assert_close(g, g_ref, dtype=dtype, direction="backward", what=f"{name} gradient {k}")
    for param, ref_param in zip(jit_args, reference_args):  # running statistics written back
        if isinstance(param, dict) and "running_mean" in param:
            assert param["running_mean"].dtype == dtype
            assert_close(param["running_mean"], ref_param["running_mean"], dtype=dtype)
            assert_close(param["running_var"], ref_param["running_var"], dtype=dtype)
    for a, original in zip([a for a in args if isinstance(a, np.ndarray)], originals):
        np.testing.assert_array_equal(a, original)


@pytest.mark.parametrize("name", ["affine", "relu", "batchnorm", "layernorm", "conv_fast", "pool_fast", "dropout",
                                  "affine_bn_relu"])
def test_jit_accepts_every_layout(name):
    forward, backward, build = CASES[name]
    args = build(np.float64)
    out_ref, _, dout, grads_ref = _run("reference", forward, backward, _copy_args(args))
    for layout, first in layouts(args[0]):
        out, _, _, grads = _run("jit", forward, backward, _copy_args((first,) + tuple(args[1:])), dout)
        assert_close(out, out_ref, what=f"{name} {layout}")
        for g, g_ref in zip(grads[:1], grads_ref[:1]):
            assert_close(g, g_ref, direction="backward", what=f"{name} {layout} dx")


@pytest.mark.parametrize("name", ["batchnorm", "batchnorm_alt", "batchnorm_test", "layernorm", "groupnorm",
                                  "conv_fast", "conv_naive_stride2", "pool_fast", "pool_naive_overlap", "dropout",
                                  "affine_bn_relu", "affine_bn_relu_test", "affine_ln_relu"])
def test_forward_on_one_path_backward_on_the_other(name):
    forward, backward, build = CASES[name]
    args = build(np.float64)
    with fastnn.options(backend="jit"):
        out_jit, cache_jit = forward(*_copy_args(args))
    with fastnn.options(backend="reference"):
        out_ref, cache_ref = forward(*_copy_args(args))
    dout = randn(*out_ref.shape, seed=5)
    with fastnn.options(backend="reference"):
        from_jit_cache = backward(dout, cache_jit)
        expected = backward(dout, cache_ref)
    with fastnn.options(backend="jit"):
        from_ref_cache = backward(dout, cache_ref)
    for grads in (from_jit_cache, from_ref_cache):
        grads = grads if isinstance(grads, tuple) else (grads,)
        expected_t = expected if isinstance(expected, tuple) else (expected,)
        for k, (got, want) in enumerate(zip(grads, expected_t)):
            # floor: the affine db before batchnorm is zero in exact arithmetic (both paths give rounding noise)
            assert_close(got, want, direction="backward", what=f"{name} gradient {k} across paths", floor=1.0)


@pytest.mark.parametrize("name", ["batchnorm", "conv_fast", "pool_fast", "dropout", "affine_ln_relu",
                                  "affine_bn_relu", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_verify_backend_accepts_agreeing_paths(name, dtype):
    forward, backward, build = CASES[name]
    _run("verify", forward, backward, _copy_args(build(dtype)))


@pytest.mark.parametrize("loss", [L.softmax_loss, L.svm_loss])
def test_verify_holds_a_float32_loss_to_float32_precision(loss):
    """The loss is a Python float even for float32 scores; it was once held to the float64 tolerance, so verify
    failed nearly every float32 model (`fastnn train --backend verify`)."""
    for seed in range(10):
        x, y = scores_and_labels(N=50, C=10, dtype=np.float32, seed=seed)
        with fastnn.options(backend="verify"):
            value, dx = loss(x, y)
        assert isinstance(value, float) and dx.dtype == np.float32


def test_verify_accepts_rounding_noise_on_an_exact_zero_and_a_nan_in_one_output():
    """A feature constant over the batch normalises to exactly 0 on one path and 4e-15 on the other; a NaN in one
    backward output once dropped the scale shared by the others. verify called both a disagreement."""
    with fastnn.options(backend="verify"):
        L.batchnorm_forward(np.full((8, 4), 0.1), np.ones(4), np.zeros(4), {"mode": "train"})
        L.spatial_batchnorm_forward(np.full((2, 3, 4, 4), 0.1), np.ones(3), np.zeros(3), {"mode": "train"})
        L.affine_bn_relu_forward(randn(16, 10), np.zeros((10, 5)), np.full(5, 0.3), np.ones(5), np.zeros(5),
                                 {"mode": "train"})
        for dtype in (np.float32, np.float64):
            x = randn(8, 16).astype(dtype)
            x[0, 0] = np.nan
            out, cache = L.layernorm_forward(x, np.ones(16, dtype), np.zeros(16, dtype), {})
            L.layernorm_backward(np.ones_like(out), cache)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_verify_catches_a_wrong_output_beside_large_running_statistics(monkeypatch, dtype):
    """Measured on the scale of all the call's results, a wrong batchnorm output (+0.01 where |out| <= 4) hid
    behind a running_var of 1e4 (the reviewer's pixel-scale case)."""
    import fastnn.compiled as compiled

    real = compiled.batchnorm_forward

    def wrong(*args):
        out, cache = real(*args)
        out = out.copy()
        out[0, 0] += 0.01
        return out, cache

    monkeypatch.setattr(compiled, "batchnorm_forward", wrong)
    x = randn(16, 5).astype(dtype)
    bn_param = {"mode": "train", "running_mean": np.zeros(5, dtype), "running_var": np.full(5, 1e4, dtype)}
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match="batchnorm_forward.*out"):
        L.batchnorm_forward(x, np.ones(5, dtype), np.zeros(5, dtype), bn_param)


def test_verify_backend_raises_on_float32_disagreement_beyond_its_tolerance(monkeypatch):
    import fastnn.compiled as compiled

    real = compiled.softmax_loss
    monkeypatch.setattr(compiled, "softmax_loss", lambda x, y: (real(x, y)[0] * (1 + 1e-3), real(x, y)[1]))
    x, y = scores_and_labels(N=50, C=10, dtype=np.float32)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match="tolerance 1e-04 for float32"):
        L.softmax_loss(x, y)


def _tiny_conv_inputs(dtype):
    """A first conv layer's inputs with images of scale 1e-4 (float32) or 1e-8 (float64): dw is that small."""
    x, w, b = conv_inputs(N=8, C=3, H=8, W=8, F=4, dtype=dtype)
    return x * dtype(1e-4 if dtype == np.float32 else 1e-8), w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_verify_accepts_a_bias_gradient_that_is_rounding_noise_beside_a_tiny_dw(dtype):
    """A conv feeding a batchnorm has db = 0 in exact arithmetic, rounding noise of the size of sum|dout| on both
    paths. With dx skipped (a model's first layer) and x tiny, it was held to dw, the call's largest gradient: a
    ConvNet with batchnorm on such images failed verify (float32: jit -5.6e-09, reference 8.9e-08 against dw's
    7.3e-05, error 1.1e-03)."""
    x, w, b = _tiny_conv_inputs(dtype)
    gamma, beta = _gb(4, dtype)
    with fastnn.options(backend="verify"):
        out, cache = L.conv_bn_relu_forward(x, w, b, gamma, beta, CONV1, {"mode": "train"})
        with input_gradient(False):
            L.conv_bn_relu_backward(randn(*out.shape, seed=5, dtype=dtype), cache)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2], ids=["dw", "db"])
def test_verify_catches_a_small_error_in_a_conv_gradient_beside_a_tiny_input(monkeypatch, dtype, k):
    """Each gradient of a sum of products is held to its own rounding scale: a db that means something (dout not
    centred) or a dw that is tiny with x, off by 10x the tolerance, raises. (The wrong dw once passed, held to db,
    the call's largest gradient.)"""
    import fastnn.compiled as compiled

    real = compiled.conv_backward_fast

    def wrong(dout, cache):
        grads = list(real(dout, cache))
        grads[k] = grads[k].copy()
        grads[k].flat[0] += 10 * tolerance(dtype, "backward") * np.abs(grads[k]).max()
        return tuple(grads)

    monkeypatch.setattr(compiled, "conv_backward_fast", wrong)
    with fastnn.options(backend="jit"):
        out, cache = L.conv_forward_fast(*_tiny_conv_inputs(dtype), CONV1)
    dout = randn(*out.shape, seed=5, dtype=dtype)
    with fastnn.options(backend="verify"), input_gradient(False), \
            pytest.raises(fastnn.VerificationError, match=f"conv_backward_fast.*output {k}"):
        L.conv_backward_fast(dout, cache)


def _float32_cases_where_the_reference_rounds_worse():
    """(layer, args) where verify raised though the kernel was the closer to the float64 truth (a reviewer's
    fuzzing): a hinge the float32 reference decided on a margin rounded to 0, a confident softmax's log-sum-exp,
    a batchnorm feature constant over the batch (the reference's mean 1 ulp off, over sqrt(eps)), and the naive
    conv's dw summed one term at a time over 16 images of mean 1."""
    x_bn = randn(64, 3, seed=0).astype(np.float32)
    x_bn[:, 0] = 3.3
    rng = np.random.default_rng(0)
    x = (1 + 0.1 * rng.standard_normal((16, 1, 32, 32))).astype(np.float32)
    w, b = rng.standard_normal((2, 1, 3, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    with fastnn.options(backend="jit"):
        out, cache = L.conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dout -= dout.mean(axis=(0, 2, 3), keepdims=True)
    dout[:8], dout[8:] = np.abs(dout[:8]), -np.abs(dout[8:])
    return [
        (L.svm_loss, (np.array([[1.0, 2.0**-30, -5.0]], np.float32), np.array([0]))),
        (L.softmax_loss, (np.array([[0.0, 8.8]], np.float32), np.array([1]))),
        (L.batchnorm_forward, (x_bn, np.ones(3, np.float32), np.zeros(3, np.float32), {"mode": "train"})),
        (L.conv_backward_naive, (dout, cache)),
    ]


def test_verify_settles_a_float32_disagreement_in_float64():
    for layer, args in _float32_cases_where_the_reference_rounds_worse():
        with fastnn.options(backend="verify"):
            layer(*args)  # raised VerificationError


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
def test_verify_settles_a_float64_disagreement_in_long_double():
    """A float64 reference that cancels (1 + 1e17) - 1e17 to 0 is no truth to hold a kernel giving 1 to; one giving
    5 is more than twice as far from the long double result as the reference is."""
    from fastnn import _dispatch

    def reference(x):
        return ((x[0] + x[1]) - x[1]).reshape(1)

    x = np.array([1.0, 1e17])
    _dispatch._verify("cancelling_backward", reference, lambda x: np.ones(1), (x,))
    with pytest.raises(fastnn.VerificationError, match=r"reference computed in float\d+ np.longdouble\('1(.0)?'\)"):
        _dispatch._verify("cancelling_backward", reference, lambda x: np.full(1, 5.0), (x,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_verify_holds_a_loss_gradient_to_its_own_scale(monkeypatch, dtype):
    """dx (~1/N) was measured against the loss (~log C), the call's largest result: softmax's dx 1% off passed in
    float32, 1e-7 off in float64 (tolerance 1e-10)."""
    import fastnn.compiled as compiled

    real = compiled.softmax_loss
    off = 1e-3 if dtype == np.float32 else 1e-8
    monkeypatch.setattr(compiled, "softmax_loss", lambda x, y: (real(x, y)[0], real(x, y)[1] * dtype(1 + off)))
    x, y = scores_and_labels(N=64, C=10, dtype=dtype)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match="softmax_loss.*output 1"):
        L.softmax_loss(x, y)
    monkeypatch.undo()
    confident = np.where(np.arange(10) == y[:, None], 40.0, 0.0).astype(dtype) + x  # loss ~1e-16: rounding only
    with fastnn.options(backend="verify"):
        L.softmax_loss(confident, y)
        L.svm_loss(confident, y)


def test_verify_holds_a_float32_batchnorm_output_to_its_own_scale(monkeypatch):
    """Against the floor max|x| = 100 of pixel-scale data, a batchnorm output 1e-3 off passed."""
    import fastnn.compiled as compiled

    real = compiled.batchnorm_forward

    def wrong(*args):
        out, cache = real(*args)
        return out * np.float32(1 + 1e-3), cache

    monkeypatch.setattr(compiled, "batchnorm_forward", wrong)
    x = (100 + randn(64, 16, seed=2)).astype(np.float32)
    gamma, beta = np.ones(16, np.float32), np.zeros(16, np.float32)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError,
                                                         match="batchnorm_forward.*reference computed in float64"):
        L.batchnorm_forward(x, gamma, beta, {"mode": "train"})


def _forward_cases_far_smaller_than_their_inputs():
    """(layer, call, error) where the output is far smaller than the largest input: a conv or affine of
    pixel data by the notebooks' small weights, sigmoid and tanh of large scores, norms of pixel data."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    x = rng.uniform(-130, 130, (8, 3, 32, 32)).astype(f32)
    w = (1e-3 * rng.standard_normal((16, 3, 3, 3))).astype(f32)
    xa = rng.uniform(-130, 130, (16, 3072)).astype(f32)
    wa = (1e-4 * rng.standard_normal((3072, 10))).astype(f32)
    scores = (40 * rng.standard_normal((64, 64))).astype(f32)
    pixels = rng.uniform(0, 255, (16, 50))
    images = rng.uniform(0, 255, (4, 6, 5, 5))
    return [
        ("conv_forward_fast", lambda: L.conv_forward_fast(x, w, np.zeros(16, f32), CONV1), 1e-3),
        ("affine_forward", lambda: L.affine_forward(xa, wa, np.zeros(10, f32)), 1e-3),
        ("sigmoid_forward", lambda: L.sigmoid_forward(scores), 1e-2),
        ("tanh_forward", lambda: L.tanh_forward(scores), 1e-2),
        ("layernorm_forward", lambda: L.layernorm_forward(pixels, np.ones(50), np.zeros(50), {}), 1e-8),
        ("spatial_groupnorm_forward",
         lambda: L.spatial_groupnorm_forward(images, np.ones(6), np.zeros(6), 2, {}), 1e-8),
        ("affine_bn_relu_forward", lambda: L.affine_bn_relu_forward(pixels, randn(50, 8), np.zeros(8), np.ones(8),
                                                                    np.zeros(8), {"mode": "train"}), 1e-8),
    ]


@pytest.mark.parametrize("layer, call, error", [pytest.param(*case, id=case[0])
                                                for case in _forward_cases_far_smaller_than_their_inputs()])
def test_verify_holds_a_forward_output_to_its_own_scale_not_its_inputs(monkeypatch, layer, call, error):
    """A forward's output was held to the largest input's scale: each of these, off by 10-100x the tolerance in
    its largest entry, passed. A reviewer's cases."""
    import fastnn.compiled as compiled

    real = getattr(compiled, layer)

    def wrong(*args):
        out, cache = real(*args)
        out = out.copy()
        out[np.unravel_index(np.abs(out).argmax(), out.shape)] *= 1 + error
        return out, cache

    monkeypatch.setattr(compiled, layer, wrong)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match=f"{layer}: .* on out"):
        call()
    monkeypatch.undo()
    with fastnn.options(backend="verify"):
        call()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_verify_catches_a_wrong_running_mean_of_pixel_data(monkeypatch, dtype):
    """A float32 batchnorm's running statistics were held to the largest input (130) while its output was held
    to its own scale: a running_mean 10% off passed. A reviewer's case."""
    import fastnn.compiled as compiled

    real = compiled.batchnorm_forward

    def wrong(x, gamma, beta, bn_param):
        out, cache = real(x, gamma, beta, bn_param)
        bn_param["running_mean"] = bn_param["running_mean"] * dtype(1.1)
        return out, cache

    monkeypatch.setattr(compiled, "batchnorm_forward", wrong)
    x = np.random.default_rng(0).uniform(-130, 130, (64, 8))
    x = (x - x.mean(axis=0) + 0.5).astype(dtype)  # centred pixels: running_mean 0.05 after one step, max|x| 130
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError,
                                                         match="batchnorm_forward.*param 'running_mean'"):
        L.batchnorm_forward(x, np.ones(8, dtype), np.zeros(8, dtype), {"mode": "train"})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_verify_accepts_forwards_at_their_rounding_limits(dtype):
    """Held to their own scale, right forwards must still pass: a 3x3 conv (Winograd) of pixel data by He weights
    and by filters summing to 0 over an offset of 1e3 (float32) or 1e6 (float64), whose outputs are rounding
    against their terms, or exactly 0 in the reference; norms of data offset by 1e8, where the reference rounds
    worse than the kernels; rows constant up to rounding."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (8, 16, 16, 16)).astype(dtype)
    w = (rng.standard_normal((16, 16, 3, 3)) * np.sqrt(2 / 144)).astype(dtype)
    zero_sum = rng.standard_normal((16, 16, 3, 3))
    zero_sum = (zero_sum - zero_sum.mean(axis=(1, 2, 3), keepdims=True)).astype(dtype)
    offset = 1e3 if dtype == np.float32 else 1e6
    far = (1e8 + rng.standard_normal((64, 16))).astype(dtype)
    ones, zeros = np.ones(16, dtype), np.zeros(16, dtype)
    exact_zero_sum = rng.integers(-3, 4, (16, 16, 3, 3))
    exact_zero_sum[:, 0, 0, 0] -= exact_zero_sum.sum(axis=(1, 2, 3))
    with fastnn.options(backend="verify"):
        out, cache = L.conv_forward_fast(x, w, zeros, CONV1)
        L.conv_backward_fast(rng.standard_normal(out.shape).astype(dtype), cache)
        L.conv_forward_fast((offset + x / 255).astype(dtype), zero_sum, zeros, {"stride": 1, "pad": 0})
        # exactly 0 in the reference, Winograd's rounding (4e-3 in float32, 5e-12 in float64) on the jit path
        L.conv_forward_fast(np.full((2, 16, 12, 12), 1e3, dtype), exact_zero_sum.astype(dtype), zeros,
                            {"stride": 1, "pad": 0})
        L.batchnorm_forward(far, ones, zeros, {"mode": "train"})
        L.layernorm_forward(far, ones, zeros, {})
        L.affine_bn_relu_forward(far, rng.standard_normal((16, 8)).astype(dtype), zeros[:8], ones[:8], zeros[:8],
                                 {"mode": "train"})
        L.layernorm_forward(np.full((6, 10), 0.1, dtype), ones[:10], zeros[:10], {})
        L.spatial_groupnorm_forward(np.full((2, 4, 3, 3), 0.1, dtype), ones[:4], zeros[:4], 2, {})
        # identical rows: an output of rounding noise alone, with an eps the layers take as any real number
        L.affine_bn_relu_forward(np.full((8, 16), 0.1, dtype), w[:, :, 0, 0], zeros, ones, zeros,
                                 {"mode": "train", "eps": Fraction(1, 100000)})


def test_jit_layernorm_of_one_feature_has_a_zero_gradient():
    """dout * gamma was rounded to float32 before the row mean (float64) was taken from it: with one feature, where
    dx is 0, it came out as ~1e-7 |dout| / sqrt(eps)."""
    x = randn(5, 1, seed=3).astype(np.float32)
    dout = (1e6 * randn(5, 1, seed=4)).astype(np.float32)
    gamma, beta = np.full(1, 0.7, np.float32), np.zeros(1, np.float32)
    with fastnn.options(backend="jit"):
        out, cache = L.layernorm_forward(x, gamma, beta, {})
        dx, _, _ = L.layernorm_backward(dout, cache)
    assert not dx.any()


def test_verify_backend_raises_on_disagreement(monkeypatch):
    import fastnn.compiled as compiled

    def wrong_relu(x):
        return np.maximum(x, 0) + 1e-3, x

    monkeypatch.setattr(compiled, "relu_forward", wrong_relu)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match="relu_forward.*index"):
        L.relu_forward(randn(3, 4))


@pytest.mark.parametrize("wrong, message", [
    (lambda right: (lambda d, c: (None,) + right(d, c)[1:]), r"the reference gave output 0, the jit path none"),
    (lambda right: (lambda d, c: right(d, c)[:2]), r"the reference gave output 2, the jit path none"),
    (lambda right: (lambda d, c: tuple(g.astype(np.float32) for g in right(d, c))),
     r"output 0 has dtype float32 on the jit path, float64 in the reference"),
])
def test_verify_backend_catches_a_missing_result_and_a_changed_dtype(monkeypatch, wrong, message):
    """A kernel that dropped dx, returned two of three gradients, or gave float32 for float64 passed verify: only
    the jit path's results were looked at, and each was held to the tolerance of its own dtype."""
    import fastnn.compiled as compiled

    x, w, b = randn(4, 5), randn(5, 3), randn(3)
    _, cache = L.affine_forward(x, w, b)
    monkeypatch.setattr(compiled, "affine_backward", wrong(compiled.affine_backward))
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match=f"affine_backward: {message}"):
        L.affine_backward(randn(4, 3), cache)


@pytest.mark.parametrize("loss", [L.softmax_loss, L.svm_loss])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jit_losses_match_reference(loss, dtype):
    x, y = scores_and_labels(N=9, C=6, dtype=dtype)
    with fastnn.options(backend="reference"):
        loss_ref, dx_ref = loss(x.astype(np.float64), y)
    with fastnn.options(backend="jit"):
        value, dx = loss(x, y)
    assert isinstance(value, float) and dx.dtype == dtype
    assert abs(value - loss_ref) <= fastnn.testing.tolerance(dtype, "backward") * abs(loss_ref)
    assert_close(dx, dx_ref, dtype=dtype, direction="backward")


def test_nan_and_inf_propagate_through_relu_and_max_pool_as_in_numpy():
    x = randn(1, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 3, 3], x[0, 0, 1, 2] = np.nan, np.inf, -np.inf
    with fastnn.options(backend="jit"):
        relu_out, _ = L.relu_forward(x)
        pool_out, _ = L.max_pool_forward_fast(x, POOL)
    np.testing.assert_array_equal(relu_out, np.maximum(x, 0))
    np.testing.assert_array_equal(pool_out, x.reshape(1, 1, 2, 2, 2, 2).max(axis=(3, 5)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_relu_pool_backward_gates_nan_and_inf_as_np_where(dtype):
    """The fused unpool-and-ReLU pass: a NaN or Inf in dout passes only where the ReLU input is > 0, and a NaN
    ReLU input lets nothing through, exactly as relu_backward(max_pool_backward_fast(...)) on the reference."""
    x, w, b = conv_inputs(N=1, C=2, H=4, W=4, F=2, dtype=dtype)
    out, (_, a, pool_cache) = L.conv_relu_pool_forward(x, w, b, CONV1, POOL)
    a = a.copy()
    a[0, 0, 0, :2] = [np.nan, -1.0]
    a[0, 0, 2, 2], a[0, 1, 0, 1], a[0, 1, 2, 2] = -0.5, 2.0, 3.0
    argmax = pool_cache[1][2]
    argmax[0, 0, 0, 0], argmax[0, 0, 1, 1] = 1, 0  # maxima at the -1 and the -0.5: shut
    argmax[0, 1, 0, 0], argmax[0, 1, 1, 1] = 1, 0  # at the 2 and the 3: open
    dout = randn(*out.shape, seed=3, dtype=dtype)
    dout[0, 0, 0, 0], dout[0, 1, 1, 1], dout[0, 1, 0, 0], dout[0, 0, 1, 1] = np.inf, np.nan, -np.inf, np.nan
    with fastnn.options(backend="jit"):
        da = dispatch_run("max_pool_relu_backward", dout, pool_cache, a)
    with fastnn.options(backend="reference"):
        want = dispatch_run("max_pool_relu_backward", dout, pool_cache, a)
    np.testing.assert_array_equal(da, want)  # NaN where NaN, and the same infinities
    np.testing.assert_array_equal(np.signbit(da), np.signbit(want))  # and the same signed zeros
    assert np.isnan(da).sum() == 1 and np.isneginf(da).sum() == 1 and not np.isposinf(da).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_relu_pool_backward_is_bit_for_bit_the_reference_on_random_signs(dtype):
    """The fused pass (each plane unpooled, then gated by relu_input > 0): over relu inputs of random sign and
    random argmaxes, with -0.0, Inf and NaN gradients, it equals relu_backward(max_pool_backward_fast(...))
    exactly."""
    a = randn(3, 4, 8, 10, seed=5, dtype=dtype)
    a[0, 0, 0, 0], a[1, 2, 3, 4] = np.nan, -0.0
    with fastnn.options(backend="reference"):
        _, pool_cache = L.max_pool_forward_fast(np.maximum(a, 0), POOL)
        pool_cache[1][2][...] = np.random.default_rng(6).integers(0, 4, pool_cache[1][2].shape)
        pool_cache[1][2][0, 0, 0, 0] = 0  # a gradient routed to the NaN relu input, which shuts it
    dout = randn(3, 4, 4, 5, seed=7, dtype=dtype)
    dout.reshape(-1)[::7] = -0.0
    dout[0, 1, 0, :3] = [np.nan, np.inf, -np.inf]
    dout[0, 0, 0, 0] = 1.5  # to the NaN relu input: shut
    with fastnn.options(backend="jit"):
        da = dispatch_run("max_pool_relu_backward", dout, pool_cache, a)
    with fastnn.options(backend="reference"):
        want = dispatch_run("max_pool_relu_backward", dout, pool_cache, a)
    np.testing.assert_array_equal(da, want)
    np.testing.assert_array_equal(np.signbit(da), np.signbit(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [POOL, {"pool_height": 3, "pool_width": 3, "stride": 2}], ids=["2x2", "3x3s2"])
def test_max_pool_backward_routes_nan_inf_and_signed_zeros_as_the_reference(pool, dtype):
    """Each window's gradient lands at its argmax as 0.0 + dout (np.add.at into zeros), nothing elsewhere: a NaN
    or Inf gradient stays in its window, and a -0.0 one arrives as +0.0."""
    x = randn(2, 3, 8, 8, dtype=dtype) if pool is POOL else randn(2, 3, 7, 7, dtype=dtype)
    with fastnn.options(backend="reference"):
        out, cache = L.max_pool_forward_fast(x, pool)
    dout = randn(*out.shape, seed=9, dtype=dtype)
    dout[0, 0, 0, :3] = [np.nan, np.inf, -0.0]
    dout[0, 0, 1, 0], dout[1, 2, -1, -1] = -np.inf, -0.0
    with fastnn.options(backend="jit"):
        dx = L.max_pool_backward_fast(dout, cache)
    with fastnn.options(backend="reference"):
        want = L.max_pool_backward_fast(dout, cache)
    np.testing.assert_array_equal(dx, want)
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 2, 6, 34), (2, 3, 32, 32), (1, 1, 2, 2), (5, 26, 4, 2)],
                         ids=["wide", "square", "one", "130 planes"])
def test_max_pool_2x2_forward_is_bit_for_bit_the_reference_on_ties_nan_inf_and_zeros(shape, dtype):
    """The 2x2 kernel picks each window's maximum in two vectorised passes (rows, then column pairs). Over inputs
    drawn from ties, -0.0/+0.0, +-Inf and NaNs with distinct payloads, in every layout, its out (bits, so the NaN
    payload) and argmax equal the reference's np.argmax: the first maximum, the first NaN."""
    rng = np.random.default_rng(21)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    nan_quiet = np.array(np.nan, dtype).view(uint)
    values = np.array([1.0, 1.0, 2.0, 0.0, -0.0, np.inf, -np.inf, -1.0], dtype)
    for trial in range(6):
        x = values[rng.integers(0, len(values), shape)]
        payloads = (nan_quiet | rng.integers(1, 64, shape).astype(uint)).view(dtype)
        x = np.where(rng.random(shape) < (0.0, 0.1, 0.4)[trial % 3], payloads, x)
        for name, arg in layouts(x):
            with fastnn.options(backend="jit"):
                out, (_, (_, _, argmax)) = L.max_pool_forward_fast(arg, POOL)
            with fastnn.options(backend="reference"):
                want, (_, (_, _, want_argmax)) = L.max_pool_forward_fast(arg, POOL)
            np.testing.assert_array_equal(argmax, want_argmax, err_msg=name)
            np.testing.assert_array_equal(out.view(uint), want.view(uint), err_msg=name)


WIDE_CASES = {  # longer vectorised sums than CASES has (with remainders), for the builds' bit-for-bit test
    "layernorm_wide": (L.layernorm_forward, L.layernorm_backward, lambda t: norm_inputs((5, 1001), dtype=t) + ({},)),
    "groupnorm_wide": (L.spatial_groupnorm_forward, L.spatial_groupnorm_backward,
                       lambda t: norm_inputs((3, 8, 7, 7), dtype=t) + (4, {})),
    "spatial_batchnorm_wide": (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                               lambda t: norm_inputs((4, 3, 9, 11), dtype=t) + ({"mode": "train"},)),
    "batchnorm_wide": (L.batchnorm_forward, L.batchnorm_backward,
                       lambda t: norm_inputs((77, 131), dtype=t) + ({"mode": "train"},)),
    "conv_wide": (L.conv_forward_fast, L.conv_backward_fast,
                  lambda t: conv_inputs(N=5, C=3, H=23, W=19, F=6, dtype=t) + (CONV1,)),
    "conv_winograd_wide": (L.conv_forward_fast, L.conv_backward_fast,
                           lambda t: conv_inputs(N=5, C=8, H=23, W=19, F=6, dtype=t) + (CONV1,)),
    "pool_wide": (L.max_pool_forward_fast, L.max_pool_backward_fast, lambda t: (randn(3, 5, 22, 18, dtype=t), POOL)),
    "dropout_wide": (L.dropout_forward, L.dropout_backward, lambda t: (randn(61, 257, dtype=t),
                                                                       {"mode": "train", "p": 0.3, "seed": 9})),
    "affine_bn_relu_wide": (L.affine_bn_relu_forward, L.affine_bn_relu_backward,
                            lambda t: affine_inputs(N=67, D=(40,), M=129, dtype=t) + _gb(129, t)
                            + ({"mode": "train"},)),
}


# fast-math sums over two nested loops (channel_moments, channel_sums, group_*): measured to differ by an ulp
@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
@pytest.mark.parametrize("name", list(CASES) + list(WIDE_CASES))
def test_serial_and_parallel_builds_agree(name):
    """One thread runs every kernel's serial build, two its parallel build (conftest lets two threads pay). The
    same source compiled twice gives the same bits (fixed reduction chunks, disjoint writes; a fast-math sum in a
    helper outside the prange loop, so both builds vectorise it alike: inline, spatial batchnorm's and groupnorm's
    backward differed by a few ulps)."""
    forward, backward, build = {**CASES, **WIDE_CASES}[name]
    args = build(np.float64)
    results = []
    for threads in (1, 2):
        with fastnn.num_threads(threads):
            out, _, _, grads = _run("jit", forward, backward, _copy_args(args))
        results.append((out,) + grads)
    for serial, parallel in zip(*results):
        np.testing.assert_array_equal(serial, parallel)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_dropout_mask_is_the_same_at_one_and_two_threads():
    x = randn(64, 257)
    param = {"mode": "train", "p": 0.3, "seed": 99}
    with fastnn.options(backend="jit"):
        with fastnn.num_threads(1):
            one = L.dropout_forward(x, param)[1][1]
        with fastnn.num_threads(2):
            two = L.dropout_forward(x, param)[1][1]
    with fastnn.options(backend="reference"):
        reference = L.dropout_forward(x, param)[1][1]
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, reference)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_passes_special_values_as_the_reference(dtype):
    """Kept: x / p, NaN, Inf and -0.0 included; dropped: +0.0 whatever x was. Forward and backward, bit for bit."""
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, -1.0]
    x = np.repeat(np.array(specials, dtype=dtype)[:, None], 33, axis=1)  # one row of each: kept and dropped both
    param = {"mode": "train", "p": 0.5, "seed": 3}
    results = {}
    for backend in ("jit", "reference"):
        with fastnn.options(backend=backend):
            out, cache = L.dropout_forward(x, param)
            results[backend] = out, L.dropout_backward(x, cache)
    mask = cache[1]
    assert mask.any(axis=1).all() and not mask.all(axis=1).any()
    for got, want in zip(results["jit"], results["reference"]):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


def test_reductions_are_identical_run_to_run():
    x, gamma, beta = norm_inputs((300, 40))
    with fastnn.options(backend="jit"):
        runs = []
        for _ in range(3):
            out, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
            runs.append(L.batchnorm_backward(out, cache))
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_matches_the_numpy_update(dtype):
    from fastnn import optim

    w, dw = randn(30, 7, dtype=dtype, seed=1), randn(30, 7, dtype=dtype, seed=2)
    results = {}
    for backend in ("reference", "jit"):
        config = {"learning_rate": 1e-2}
        with fastnn.options(backend=backend):
            next_w = w
            for _ in range(3):
                next_w, config = optim.adam(next_w, dw, config)
        results[backend] = (next_w, config)
    (w_ref, c_ref), (w_jit, c_jit) = results["reference"], results["jit"]
    assert w_jit.dtype == dtype and c_jit["m"].dtype == dtype and c_jit["t"] == c_ref["t"] == 3
    for got, want in ((w_jit, w_ref), (c_jit["m"], c_ref["m"]), (c_jit["v"], c_ref["v"])):
        np.testing.assert_array_equal(got, want)  # the same float operations in the same dtype: the same bits
    np.testing.assert_array_equal(w, randn(30, 7, dtype=dtype, seed=1))  # inputs untouched


def test_verify_checks_the_compiled_adam_step(monkeypatch):
    """Under verify Adam ran the reference alone: `fastnn check --backend verify` never checked the kernel."""
    from fastnn import optim

    w, dw = randn(30, 7, seed=1), randn(30, 7, seed=2)
    with fastnn.options(backend="verify"):
        next_w, config = optim.adam(w, dw, {"learning_rate": 1e-2})
    with fastnn.options(backend="reference"):
        expected, _ = optim.adam(w, dw, {"learning_rate": 1e-2})
    np.testing.assert_array_equal(next_w, expected)
    right = optim._adam_kernel

    def wrong_second_moment(*args):
        next_w, m, v = right(*args)
        return next_w, m, v * 1.001

    monkeypatch.setattr(optim, "_adam_kernel", wrong_second_moment)
    config = {"learning_rate": 1e-2}
    # the results compared: next_w, the step, m, v (output 3)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError,
                                                         match=r"adam: jit and reference disagree on output 3"):
        optim.adam(w, dw, config)
    assert config["t"] == 0 and not config["m"].any()  # the refused step is not recorded


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm,mode", [("batchnorm", "train"), ("batchnorm", "test"), ("layernorm", None)])
def test_fused_backward_recomputes_exactly_the_forward_relu_mask(norm, mode, dtype):
    """The fused backward gates dout by gamma * xhat + beta > 0 recomputed from the cache (and xhat from a, for
    batchnorm); it must open exactly where the forward output is positive, also where y lands on zero, an ulp
    from it, or is NaN. With w the identity, a = x exactly, and dbeta counts the open entries per column."""
    g = np.random.default_rng(5)
    N, D = 64, 48
    x = g.standard_normal((N, D)).astype(dtype)
    if mode != "train":  # a NaN row would make every batch statistic NaN
        x[3, :] = np.nan
    eye, zeros = np.eye(D, dtype=dtype), np.zeros(D, dtype)
    gamma = g.uniform(0.5, 2, D).astype(dtype)

    def forward(beta):
        if norm == "layernorm":
            return L.affine_ln_relu_forward(x, eye, zeros, gamma, beta, {})
        param = {"mode": mode, "running_mean": x[4:].mean(0).astype(dtype),
                 "running_var": x[4:].var(0).astype(dtype)}
        return L.affine_bn_relu_forward(x, eye, zeros, gamma, beta, param)

    with fastnn.options(backend="jit"):
        _, (_, norm_cache, _) = forward(zeros)  # xhat does not depend on beta
        a, xhat, mean, invstd = norm_cache[0], norm_cache[1], norm_cache[4], norm_cache[5]
        if xhat is None:  # NumPy's float operations: the kernels' own (statistics per row for layernorm)
            xhat = (a - mean) * invstd if norm == "batchnorm" else (a - mean[:, None]) * invstd[:, None]
        beta = -(gamma * xhat[7])  # row 7: y = 0 exactly ...
        beta[::3] = np.nextafter(beta[::3], dtype(np.inf))  # ... or an ulp above it
        out, cache = forward(beta)
        dbeta = L.affine_bn_relu_backward(np.ones_like(out), cache)[4] if norm == "batchnorm" else \
            L.affine_ln_relu_backward(np.ones_like(out), cache)[4]
    np.testing.assert_array_equal(dbeta, (out > 0).sum(axis=0))
    assert 0 < (out[7] > 0).sum() < D  # the probe row really sits on the boundary


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_recomputes_the_xhat_it_does_not_store_bit_for_bit(dtype, mode):
    """The compiled batchnorm caches xhat as None; its backward must equal, bit for bit, the backward given
    xhat = (x - mean) * invstd stored (NumPy's float operations: the same ones, no fused multiply-add)."""
    x, gamma, beta = norm_inputs((37, 23), dtype=dtype)
    param = {"mode": mode, "running_mean": np.full(23, 0.3, dtype), "running_var": np.full(23, 1.7, dtype)}
    dout = randn(37, 23, seed=8).astype(dtype)
    with fastnn.options(backend="jit"):
        out, cache = L.batchnorm_forward(x, gamma, beta, param)
        assert cache[1] is None
        stored = cache[:1] + ((x - cache[4]) * cache[5],) + cache[2:]
        for backward in (L.batchnorm_backward, L.batchnorm_backward_alt):
            for got, want in zip(backward(dout, cache), backward(dout, stored)):
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layernorm_recomputes_the_xhat_it_does_not_store_bit_for_bit(dtype):
    """The compiled layernorm caches xhat as None (per-row mean and invstd in x's dtype); its backward must equal,
    bit for bit, the backward given xhat = (x - mean) * invstd stored, and so must the reference's."""
    x, gamma, beta = norm_inputs((37, 23), dtype=dtype)
    x = x + 5  # a mean large against the spread
    dout = randn(37, 23, seed=8).astype(dtype)
    with fastnn.options(backend="jit"):
        out, cache = L.layernorm_forward(x, gamma, beta, {})
        assert cache[1] is None and cache[4].shape == cache[5].shape == (37,)
        xhat = (x - cache[4][:, None]) * cache[5][:, None]
        stored = cache[:1] + (xhat,) + cache[2:]
        got = L.layernorm_backward(dout, cache)
        for g, want in zip(got, L.layernorm_backward(dout, stored)):
            np.testing.assert_array_equal(g, want)
    ulp = np.finfo(dtype).eps * np.abs(out).max()  # the forward may fuse gamma * xhat + beta into one FMA
    np.testing.assert_allclose(out, gamma * xhat + beta, rtol=0, atol=2 * ulp)
    with fastnn.options(backend="reference"):
        for g, want in zip(L.layernorm_backward(dout, cache), L.layernorm_backward(dout, stored)):
            np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_groupnorm_recomputes_the_xhat_it_does_not_store_bit_for_bit(dtype):
    """As layernorm's: the compiled groupnorm caches xhat as None (mean, invstd (N, G) in x's dtype); its backward
    and the reference's must equal, bit for bit, the backward given xhat stored."""
    N, C, H, W, G = 3, 6, 5, 4, 2
    x = (randn(N, C, H, W, seed=3) + 5).astype(dtype)
    gamma, beta = randn(1, C, 1, 1, seed=4).astype(dtype), randn(1, C, 1, 1, seed=5).astype(dtype)
    dout = randn(N, C, H, W, seed=8).astype(dtype)
    with fastnn.options(backend="jit"):
        out, cache = L.spatial_groupnorm_forward(x, gamma, beta, G, {})
        assert cache[1] is None and cache[4].shape == cache[5].shape == (N, G)
        grouped = x.reshape(N, G, -1)
        xhat = ((grouped - cache[4][:, :, None]) * cache[5][:, :, None]).reshape(x.shape)
        stored = cache[:1] + (xhat,) + cache[2:]
        for g, want in zip(L.spatial_groupnorm_backward(dout, cache), L.spatial_groupnorm_backward(dout, stored)):
            np.testing.assert_array_equal(g, want)
    with fastnn.options(backend="reference"):
        for g, want in zip(L.spatial_groupnorm_backward(dout, cache), L.spatial_groupnorm_backward(dout, stored)):
            np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_fused_batchnorm_recomputes_the_xhat_it_does_not_store_bit_for_bit(dtype, mode):
    """The compiled affine-BN-ReLU caches xhat as None: its backward must equal, bit for bit, the backward given
    xhat = (a - mean) * invstd stored, and the reference backward must accept the cache."""
    x, w, b = affine_inputs(N=31, D=(4, 5), M=17, dtype=dtype)
    gamma, beta = _gb(17, dtype)
    param = {"mode": mode, "running_mean": np.full(17, 0.3, dtype), "running_var": np.full(17, 1.7, dtype)}
    dout = randn(31, 17, seed=8).astype(dtype)
    with fastnn.options(backend="jit"):
        out, cache = L.affine_bn_relu_forward(x, w, b, gamma, beta, param)
        fc_cache, bn_cache, relu_cache = cache
        assert bn_cache[1] is None
        a, mean, invstd = bn_cache[0], bn_cache[4], bn_cache[5]
        stored = (fc_cache, bn_cache[:1] + ((a - mean) * invstd,) + bn_cache[2:], relu_cache)
        got = L.affine_bn_relu_backward(dout, cache)
        for g, want in zip(got, L.affine_bn_relu_backward(dout, stored)):
            np.testing.assert_array_equal(g, want)
    with fastnn.options(backend="reference"):
        expected = L.affine_bn_relu_backward(dout, cache)
    scale = max(float(np.abs(e).max()) for e in expected)  # db is rounding noise in train mode: held to this scale
    for g, want in zip(got, expected):
        assert_close(g, want, dtype=dtype, direction="backward", floor=scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_layernorm_recomputes_the_xhat_it_does_not_store_bit_for_bit(dtype):
    """The compiled affine-LN-ReLU caches xhat as None: its backward must equal, bit for bit, the backward given
    xhat = (a - mean) * invstd (per row) stored, and the reference backward must accept the cache."""
    x, w, b = affine_inputs(N=31, D=(4, 5), M=17, dtype=dtype)
    gamma, beta = _gb(17, dtype)
    dout = randn(31, 17, seed=8).astype(dtype)
    with fastnn.options(backend="jit"):
        out, cache = L.affine_ln_relu_forward(x, w, b, gamma, beta, {})
        fc_cache, ln_cache, relu_cache = cache
        assert ln_cache[1] is None
        a, mean, invstd = ln_cache[0], ln_cache[4], ln_cache[5]
        stored = (fc_cache, ln_cache[:1] + ((a - mean[:, None]) * invstd[:, None],) + ln_cache[2:], relu_cache)
        got = L.affine_ln_relu_backward(dout, cache)
        for g, want in zip(got, L.affine_ln_relu_backward(dout, stored)):
            np.testing.assert_array_equal(g, want)
    with fastnn.options(backend="reference"):
        expected = L.affine_ln_relu_backward(dout, cache)
    scale = max(float(np.abs(e).max()) for e in expected)
    for g, want in zip(got, expected):
        assert_close(g, want, dtype=dtype, direction="backward", floor=scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_backward_gates_nan_and_inf_in_dout_as_np_where(dtype):
    """A NaN or Inf in dout where the ReLU is closed contributes 0 (the reference's np.where), one where it is
    open spreads NaN through the column's sums: the compiled gate (a multiply with a NaN fix-up) must agree."""
    x, w, b = affine_inputs(N=16, D=(6,), M=5, dtype=dtype)
    gamma, beta = _gb(5, dtype)
    results = {}
    for backend in ("reference", "jit"):
        with fastnn.options(backend=backend), np.errstate(invalid="ignore"):
            out, cache = L.affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"})
            dout = randn(*out.shape, seed=6).astype(dtype)
            closed = np.argwhere(out == 0)
            opened = np.argwhere(out > 0)
            dout[tuple(closed[0])], dout[tuple(closed[1])] = np.nan, -np.inf  # gated away
            dout[tuple(opened[0])] = np.inf  # let through: column opened[0][1] turns non-finite
            results[backend] = L.affine_bn_relu_backward(dout, cache)
    for got, want in zip(results["jit"], results["reference"]):
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        assert np.isfinite(results["jit"][3]).sum() == 4  # dgamma: only the column with the open Inf is lost
        np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["affine_bn_relu", "affine_ln_relu"])
def test_changing_a_fused_output_in_place_leaves_its_cache_valid_on_every_path(name):
    """The compiled fused layers cache their returned out as the ReLU's part; a caller may edit out in place
    (out -= 1). The compiled backward never reads it; the reference backward, given that cache, recomputes the
    ReLU's input from the norm cache, so a jit forward then a reference or verify backward stays right."""
    forward, backward, build = CASES[name]
    args = build(np.float64)
    with fastnn.options(backend="jit"):
        out, cache = forward(*_copy_args(args))
    dout = randn(*out.shape, seed=5)
    with fastnn.options(backend="reference"):
        expected = backward(dout, cache)
    out -= 100.0
    for backend in ("reference", "verify", "jit"):
        with fastnn.options(backend=backend):
            got = backward(dout, cache)
        for k, (g, want) in enumerate(zip(got, expected)):
            assert_close(g, want, direction="backward", what=f"{name} {backend} gradient {k}", floor=1.0)
