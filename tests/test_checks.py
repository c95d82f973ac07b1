"""One test per error case of the layer API's argument checks (issue 2); tests/test_bad_input.py goes wider."""

import subprocess
import sys

import numpy as np
import pytest

import fastnn.fast_layers as FL
import fastnn.layers as L

pytestmark = pytest.mark.usefixtures("reference_backend")

f64 = np.float64


def x4(*shape, dtype=f64):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}

# (id, call, exception, words the message must contain)
CASES = [
    ("affine wrong w ndim", lambda: L.affine_forward(x4(2, 3), x4(3), x4(3)), ValueError, ["affine_forward", "w"]),
    ("affine feature mismatch", lambda: L.affine_forward(x4(2, 3), x4(4, 2), x4(2)), ValueError,
     ["affine_forward", "(2, 3)", "(4, 2)"]),
    ("affine bias mismatch", lambda: L.affine_forward(x4(2, 3), x4(3, 2), x4(3)), ValueError, ["affine_forward", "b"]),
    ("relu int dtype", lambda: L.relu_forward(np.ones((2, 3), int)), TypeError, ["relu_forward", "x", "int64"]),
    ("relu bool dtype", lambda: L.relu_forward(np.ones((2, 3), bool)), TypeError, ["bool"]),
    ("affine int dtype with mixed floats", lambda: L.affine_forward(np.ones((2, 3), int), x4(3, 2, dtype=np.float32),
                                                                    x4(2)), TypeError, ["float32", "float64"]),
    ("affine complex dtype", lambda: L.affine_forward(x4(2, 3) + 0j, x4(3, 2), x4(2)), TypeError, ["complex"]),
    ("affine float16", lambda: L.affine_forward(x4(2, 3, dtype=np.float16), x4(3, 2), x4(2)), TypeError,
     ["float16"]),
    ("affine mixed floats", lambda: L.affine_forward(x4(2, 3, dtype=np.float32), x4(3, 2), x4(2)), TypeError,
     ["affine_forward", "float32", "float64"]),
    ("affine list input", lambda: L.affine_forward([[1.0, 2.0]], x4(2, 2), x4(2)), TypeError, ["x", "list"]),
    ("affine empty batch", lambda: L.affine_forward(x4(0, 3), x4(3, 2), x4(2)), ValueError, ["batch"]),
    ("affine backward dout shape", lambda: L.affine_backward(x4(2, 5), L.affine_forward(x4(2, 3), x4(3, 2), x4(2))[1]),
     ValueError, ["affine_backward", "dout", "(2, 2)"]),
    ("conv channel mismatch", lambda: L.conv_forward_naive(x4(1, 3, 5, 5), x4(2, 2, 3, 3), x4(2), CONV), ValueError,
     ["conv_forward_naive", "channels"]),
    ("conv geometry not whole", lambda: FL.conv_forward_fast(x4(1, 1, 6, 6), x4(1, 1, 3, 3), x4(1),
                                                             {"stride": 2, "pad": 0}), ValueError,
     ["conv_forward_fast", "not divisible", "stride 2"]),
    ("conv window too big", lambda: L.conv_forward_naive(x4(1, 1, 3, 3), x4(1, 1, 5, 5), x4(1),
                                                         {"stride": 1, "pad": 0}), ValueError, ["larger"]),
    ("conv zero stride", lambda: L.conv_forward_naive(x4(1, 1, 3, 3), x4(1, 1, 3, 3), x4(1), {"stride": 0, "pad": 0}),
     ValueError, ["stride", ">= 1"]),
    ("conv negative pad", lambda: L.conv_forward_naive(x4(1, 1, 3, 3), x4(1, 1, 3, 3), x4(1),
                                                       {"stride": 1, "pad": -1}), ValueError, ["pad", ">= 0"]),
    ("conv missing key", lambda: L.conv_forward_naive(x4(1, 1, 3, 3), x4(1, 1, 3, 3), x4(1), {"stride": 1}),
     ValueError, ["conv_param", "pad"]),
    ("conv wrong x ndim", lambda: L.conv_forward_naive(x4(1, 3, 3), x4(1, 1, 3, 3), x4(1), CONV), ValueError,
     ["x must be 4-D"]),
    ("pool geometry not whole", lambda: L.max_pool_forward_naive(x4(1, 1, 5, 5), POOL), ValueError,
     ["max_pool_forward_naive", "not divisible"]),
    ("pool zero stride", lambda: FL.max_pool_forward_fast(x4(1, 1, 4, 4), {**POOL, "stride": 0}), ValueError,
     ["stride"]),
    ("pool reshape needs tiling", lambda: FL.max_pool_forward_reshape(x4(1, 1, 5, 5), {"pool_height": 3,
                                                                                        "pool_width": 3,
                                                                                        "stride": 1}),
     ValueError, ["max_pool_forward_reshape"]),
    ("pool unknown cache", lambda: FL.max_pool_backward_fast(x4(1, 1, 2, 2), ("reshape", ())), ValueError,
     ["Unrecognized method"]),
    ("batchnorm missing mode", lambda: L.batchnorm_forward(x4(3, 2), x4(2), x4(2), {}), ValueError,
     ["batchnorm_forward", "mode"]),
    ("batchnorm unknown mode", lambda: L.batchnorm_forward(x4(3, 2), x4(2), x4(2), {"mode": "eval"}), ValueError,
     ['Invalid forward batchnorm mode "eval"']),
    ("batchnorm gamma mismatch", lambda: L.batchnorm_forward(x4(3, 2), x4(3), x4(2), {"mode": "train"}), ValueError,
     ["gamma", "(2,)"]),
    ("batchnorm running stats dtype", lambda: L.batchnorm_forward(
        x4(3, 2), x4(2), x4(2), {"mode": "train", "running_mean": np.zeros(2, np.float32)}), TypeError,
     ["running_mean"]),
    ("spatial batchnorm ndim", lambda: L.spatial_batchnorm_forward(x4(3, 2), x4(2), x4(2), {"mode": "train"}),
     ValueError, ["spatial_batchnorm_forward", "4-D"]),
    ("groupnorm G does not divide", lambda: L.spatial_groupnorm_forward(x4(1, 6, 2, 2), x4(6), x4(6), 4, {}),
     ValueError, ["G=4", "6 channels"]),
    ("groupnorm gamma shape", lambda: L.spatial_groupnorm_forward(x4(1, 6, 2, 2), x4(1, 6), x4(6), 2, {}),
     ValueError, ["gamma", "(1, 6, 1, 1)"]),
    ("layernorm wrong cache", lambda: L.layernorm_backward(x4(2, 3), (1, 2, 3)), TypeError,
     ["layernorm_backward", "cache"]),
    ("dropout p zero", lambda: L.dropout_forward(x4(2, 2), {"mode": "train", "p": 0}), ValueError,
     ["dropout_forward", "keep probability", "> 0"]),
    ("dropout p above one", lambda: L.dropout_forward(x4(2, 2), {"mode": "train", "p": 1.5}), ValueError, ["<= 1"]),
    ("dropout p negative", lambda: L.dropout_forward(x4(2, 2), {"mode": "train", "p": -0.5}), ValueError, ["p"]),
    ("dropout unknown mode", lambda: L.dropout_forward(x4(2, 2), {"mode": "eval", "p": 0.5}), ValueError,
     ["dropout_param['mode']"]),
    ("dropout missing p", lambda: L.dropout_forward(x4(2, 2), {"mode": "train"}), ValueError, ["'p'"]),
    ("labels out of range", lambda: L.softmax_loss(x4(3, 4), np.array([0, 1, 4])), ValueError,
     ["softmax_loss", "[0, 4)"]),
    ("labels negative", lambda: L.svm_loss(x4(3, 4), np.array([0, -1, 2])), ValueError, ["svm_loss", "y"]),
    ("labels float", lambda: L.softmax_loss(x4(3, 4), np.array([0.0, 1.0, 2.0])), TypeError, ["integer"]),
    ("labels wrong length", lambda: L.svm_loss(x4(3, 4), np.array([0, 1])), ValueError, ["(3,)"]),
    ("relu backward shape", lambda: L.relu_backward(x4(2, 3), x4(3, 2)), ValueError, ["relu_backward", "dout"]),
]


@pytest.mark.parametrize("call,exception,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_named_error(call, exception, words):
    with pytest.raises(exception) as info:
        call()
    assert not isinstance(info.value, AssertionError)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_inputs_are_never_modified_and_noncontiguous_inputs_work():
    x = x4(3, 4, 5, 5)[:, :, ::2, ::2]  # non-contiguous view
    w, b = x4(2, 4, 3, 3), x4(2)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = FL.conv_forward_fast(x, w, b, CONV)
    FL.conv_backward_fast(np.ones_like(out), cache)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


def test_layer_count_covers_the_whole_api():
    code = "import fastnn.layers as L; print(len([n for n in dir(L) if n.endswith(('_forward','_backward'))]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # §2: affine, relu, batchnorm, layernorm, dropout, spatial batchnorm, spatial groupnorm (7 pairs);
    # additions: leaky_relu, sigmoid, tanh (3 pairs); §5 + fused: affine_relu, conv_relu, conv_bn_relu,
    # conv_relu_pool, affine_bn_relu, affine_ln_relu (6 pairs) -> 32; the naive/fast/alt names end otherwise.
    assert int(result.stdout) == 32, result.stderr
    import fastnn.layers as layers

    for name in ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive",
                 "batchnorm_backward_alt", "svm_loss", "softmax_loss", "conv_forward_fast", "conv_backward_fast",
                 "conv_forward_im2col", "conv_forward_strides", "max_pool_forward_fast", "max_pool_forward_reshape",
                 "max_pool_forward_im2col", "max_pool_backward_im2col", "im2col_indices", "col2im_indices"]:
        assert callable(getattr(layers, name)), name


def test_star_imports_give_the_notebook_namespace():
    namespace = {}
    exec("from fastnn.classifiers.fc_net import *", namespace)
    for name in ["affine_forward", "svm_loss", "batchnorm_forward", "dropout_forward", "FullyConnectedNet",
                 "affine_relu_forward", "np"]:
        assert name in namespace, name
    namespace = {}
    exec("from fastnn.classifiers.cnn import *\nfrom fastnn.fast_layers import *", namespace)
    for name in ["ThreeLayerConvNet", "conv_forward_fast", "max_pool_forward_fast", "conv_relu_pool_forward"]:
        assert name in namespace, name
    assert "_check" not in namespace and "run" not in namespace


def test_integer_and_bool_layer_arguments_take_the_calls_float_dtype():
    """The CS231n notebooks pass integer arrays to layers (b = np.array([0, 128]) to a convolution, gamma =
    np.asarray([3, 4, 5]) to spatial batchnorm), which the starter's NumPy arithmetic promotes; the arguments
    the user passed stay as they were."""
    import fastnn.layer_utils as U

    x = np.zeros((2, 3, 8, 8))
    w = np.zeros((2, 3, 3, 3), np.float32)
    b = np.array([0, 128])
    for conv in (L.conv_forward_naive, FL.conv_forward_fast):
        out, _ = conv(x.astype(np.float32), w, b, CONV)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out[:, :, 0, 0], [[0, 128], [0, 128]])
    assert b.dtype == np.int64
    x = 4 * np.random.default_rng(0).standard_normal((2, 3, 4, 5)) + 10
    gamma, beta = np.asarray([3, 4, 5]), np.asarray([6, 7, 8])
    out, _ = L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [6, 7, 8])
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [3, 4, 5], rtol=1e-4)
    out, _ = L.affine_forward(np.ones((2, 3), int), np.ones((3, 2), bool), np.array([1, 2], np.uint8))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[4, 5], [4, 5]])
    out, _ = U.affine_relu_forward(x4(2, 3), np.ones((3, 2), int), np.zeros(2, int))
    assert out.dtype == np.float64
    with pytest.raises(TypeError, match=r"got w float32, b float64"):  # the dtypes as given, x int64 aside
        L.affine_forward(np.ones((2, 3), int), np.ones((3, 2), np.float32), np.zeros(2))


@pytest.mark.parametrize("backend", ["reference", "jit"])
def test_big_endian_floats_are_the_same_numbers(backend):
    """A big-endian float64 (an .npy written on such a machine, say) was refused as 'not float64'; it now gives
    the native array's results, beside an integer bias too, and is left as it was."""
    import fastnn

    x, w = x4(2, 3, 6, 6), x4(4, 3, 3, 3)
    big_x, big_w = x.astype(">f8"), w.astype(">f4")
    param = {"stride": 1, "pad": 1}
    with fastnn.options(backend=backend):
        np.testing.assert_array_equal(L.relu_forward(big_x)[0], L.relu_forward(x)[0])
        out, _ = FL.conv_forward_fast(big_x, w.astype(">f8"), np.arange(4), param)
        np.testing.assert_array_equal(out, FL.conv_forward_fast(x, w, np.arange(4.0), param)[0])
        assert out.dtype == np.float64
        single = L.affine_forward(big_w.reshape(4, -1), np.ones((27, 2), ">f4"), np.array([0, 1]))[0]
        assert single.dtype == np.float32
        with pytest.raises(TypeError, match=r"relu_forward: x must be float32 or float64, got dtype >i4"):
            L.relu_forward(np.ones(3, ">i4"))
    np.testing.assert_array_equal(big_x, x)
