"""The compiled im2col convolution works a block of images at a time: several blocks (the last one short) give
the reference's results, and its cache keeps no columns."""

import numpy as np
import pytest

import fastnn
import fastnn.layer_utils as L
from fastnn._conv_cache import ColumnsFromInput
from fastnn._options import input_gradient
from fastnn.compiled import conv as compiled_conv
from fastnn.testing import assert_close, conv_inputs, randn

# (C, H, W, F, HH, WW, stride, pad): none of them Winograd's 3x3 stride-1 case
GEOMETRIES = [
    (3, 9, 9, 4, 5, 5, 1, 2),
    (2, 9, 7, 3, 3, 3, 2, 0),
    (4, 6, 6, 5, 1, 1, 1, 0),
    (1, 8, 8, 2, 7, 7, 1, 3),
]


def _images_per_block(monkeypatch, g, images, dtype):
    C, H, W, F, HH, WW, stride, pad = g
    P = (1 + (H + 2 * pad - HH) // stride) * (1 + (W + 2 * pad - WW) // stride)
    monkeypatch.setattr(compiled_conv, "BLOCK_BYTES", images * C * HH * WW * P * np.dtype(dtype).itemsize)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_blocks_of_two_images_match_the_reference(monkeypatch, g, dtype):
    C, H, W, F, HH, WW, stride, pad = g
    x, w, b = conv_inputs(N=5, C=C, H=H, W=W, F=F, HH=HH, WW=WW, dtype=dtype, seed=sum(g))
    param = {"stride": stride, "pad": pad}
    with fastnn.options(backend="reference"):
        out_ref, cache_ref = L.conv_forward_fast(*(a.astype(np.float64) for a in (x, w, b)), param)
        dout = randn(*out_ref.shape, seed=2)
        grads_ref = L.conv_backward_fast(dout, cache_ref)
    _images_per_block(monkeypatch, g, 2, dtype)  # blocks of 2, 2 and 1 images
    assert [stop - start for start, stop in compiled_conv._block_ranges(x, w, out_ref[0, 0].size)] == [2, 2, 1]
    with fastnn.options(backend="jit"):
        out, cache = L.conv_forward_fast(x, w, b, param)
        grads = L.conv_backward_fast(dout.astype(dtype), cache)
        with input_gradient(False):
            no_dx = L.conv_backward_fast(dout.astype(dtype), cache)
        naive_grads = L.conv_backward_naive(dout.astype(dtype), cache[:4])
    assert isinstance(cache[4], ColumnsFromInput) and cache[4].dtype == dtype
    assert_close(out, out_ref, dtype=dtype, what="forward")
    for k, (got, want) in enumerate(zip(grads, grads_ref)):
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype=dtype, direction="backward", what=f"gradient {k}")
    assert no_dx[0] is None
    for got, same, naive in zip(no_dx[1:], grads[1:], naive_grads[1:]):
        np.testing.assert_array_equal(got, same)
        np.testing.assert_array_equal(naive, same)
    np.testing.assert_array_equal(naive_grads[0], grads[0])


def test_a_reference_cache_runs_on_the_compiled_backward_and_back(monkeypatch):
    g = GEOMETRIES[0]
    C, H, W, F, HH, WW, stride, pad = g
    x, w, b = conv_inputs(N=3, C=C, H=H, W=W, F=F, HH=HH, WW=WW, seed=4)
    param = {"stride": stride, "pad": pad}
    _images_per_block(monkeypatch, g, 1, np.float64)
    with fastnn.options(backend="reference"):
        out, reference_cache = L.conv_forward_fast(x, w, b, param)
    dout = randn(*out.shape, seed=6)
    with fastnn.options(backend="jit"):
        compiled_out, compiled_cache = L.conv_forward_fast(x, w, b, param)
        from_reference_cache = L.conv_backward_fast(dout, reference_cache)
    with fastnn.options(backend="reference"):
        from_compiled_cache = L.conv_backward_fast(dout, compiled_cache)
        expected = L.conv_backward_fast(dout, reference_cache)
    assert_close(compiled_out, out, dtype=np.float64)
    for a, b_, want in zip(from_reference_cache, from_compiled_cache, expected):
        assert_close(a, want, dtype=np.float64, direction="backward")
        assert_close(b_, want, dtype=np.float64, direction="backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g", [(3, 24, 24, 4, 5, 5, 1, 2), (6, 24, 22, 5, 1, 1, 1, 0)], ids=str)
def test_images_with_many_output_pixels_run_one_per_block_in_place(g, dtype):
    """From ONE_IMAGE_PIXELS output pixels the GEMM writes each image's output in place and reads its dout in
    place (few channels and many: both weight-gradient products), whatever BLOCK_BYTES says."""
    C, H, W, F, HH, WW, stride, pad = g
    x, w, b = conv_inputs(N=3, C=C, H=H, W=W, F=F, HH=HH, WW=WW, dtype=dtype, seed=sum(g))
    param = {"stride": stride, "pad": pad}
    P = (H + 2 * pad - HH + 1) * (W + 2 * pad - WW + 1)
    assert P >= compiled_conv.ONE_IMAGE_PIXELS and w[0].size * P * x.itemsize < compiled_conv.BLOCK_BYTES
    assert compiled_conv._block_ranges(x, w, P) == [(0, 1), (1, 2), (2, 3)]
    with fastnn.options(backend="reference"):
        out_ref, cache_ref = L.conv_forward_fast(*(a.astype(np.float64) for a in (x, w, b)), param)
        dout = randn(*out_ref.shape, seed=3)
        grads_ref = L.conv_backward_fast(dout, cache_ref)
    with fastnn.options(backend="jit"):
        out, cache = L.conv_forward_fast(x, w, b, param)
        grads = L.conv_backward_fast(dout.astype(dtype), cache)
    assert_close(out, out_ref, dtype=dtype, what="forward")
    for k, (got, want) in enumerate(zip(grads, grads_ref)):
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype=dtype, direction="backward", what=f"gradient {k}")
