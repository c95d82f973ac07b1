"""The compiled 3x3 stride-1 convolution (Winograd F(4x4, 3x3)) against the NumPy reference's direct one."""

import numpy as np
import pytest

import fastnn
from fastnn import fast_layers, layers
from fastnn._conv_cache import ColumnsFromInput, WinogradTiles
from fastnn.testing import assert_close, conv_inputs, max_relative_error, randn


@pytest.fixture(autouse=True)
def _winograd_for_any_channel_count(monkeypatch):
    """These tests use few channels; the compiled path takes Winograd where it pays (winograd.pays)."""
    from fastnn.compiled import winograd

    monkeypatch.setattr(winograd, "pays", lambda channels, filters: True)


# (N, C, H, W, F, pad): even and odd outputs in each direction, pad 0-3, a single tile, N=1, C=1, F=1
GEOMETRIES = [
    (2, 3, 8, 8, 4, 1),
    (3, 2, 7, 5, 3, 1),
    (2, 2, 6, 9, 2, 0),
    (1, 2, 5, 5, 2, 2),
    (2, 3, 4, 4, 2, 3),
    (1, 1, 3, 3, 1, 0),
    (4, 1, 10, 3, 1, 1),
    (1, 5, 2, 2, 6, 1),
]


def _run(backend, forward, backward, x, w, b, pad, dout):
    with fastnn.options(backend=backend):
        out, cache = forward(x, w, b, {"stride": 1, "pad": pad})
        return (out,) + backward(dout, cache), cache


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("name", ["fast", "naive"])
def test_winograd_matches_the_direct_convolution(geometry, dtype, name):
    N, C, H, W, F, pad = geometry
    x, w, b = conv_inputs(N=N, C=C, H=H, W=W, F=F, dtype=np.float64)
    dout = randn(N, F, H + 2 * pad - 2, W + 2 * pad - 2, seed=4)
    forward, backward = getattr(layers, f"conv_forward_{name}"), getattr(layers, f"conv_backward_{name}")
    expected, _ = _run("reference", forward, backward, x, w, b, pad, dout)
    got, cache = _run("jit", forward, backward, *(a.astype(dtype) for a in (x, w, b)), pad, dout.astype(dtype))
    if name == "fast":
        assert isinstance(cache[4], WinogradTiles)
    for what, g, e in zip(["out", "dx", "dw", "db"], got, expected):
        assert g.dtype == dtype and g.shape == e.shape
        assert_close(g, e, dtype=dtype, direction="forward" if what == "out" else "backward", what=what)


def test_a_winograd_cache_feeds_the_reference_backward():
    x, w, b = conv_inputs(N=2, C=3, H=6, W=5, F=2)
    param = {"stride": 1, "pad": 1}
    dout = randn(2, 2, 6, 5, seed=9)
    with fastnn.options(backend="jit"):
        out, cache = fast_layers.conv_forward_fast(x, w, b, param)
    with fastnn.options(backend="reference"):
        from_tiles = fast_layers.conv_backward_fast(dout, cache)
        expected = fast_layers.conv_backward_fast(dout, fast_layers.conv_forward_fast(x, w, b, param)[1])
    for g, e in zip(from_tiles, expected):
        assert_close(g, e, direction="backward")


def test_the_winograd_backward_leaves_its_inputs_and_cache_alone():
    x, w, b = conv_inputs(N=2, C=2, H=6, W=6, F=3)
    param = {"stride": 1, "pad": 1}
    dout = randn(2, 3, 6, 6, seed=2)
    with fastnn.options(backend="jit"):
        out, cache = fast_layers.conv_forward_fast(x, w, b, param)
        V = cache[4].V.copy()
        snapshot = [a.copy() for a in (x, w, b, dout)]
        first = fast_layers.conv_backward_fast(dout, cache)
        second = fast_layers.conv_backward_fast(dout, cache)
    np.testing.assert_array_equal(cache[4].V, V)
    for a, s in zip((x, w, b, dout), snapshot):
        np.testing.assert_array_equal(a, s)
    for g1, g2 in zip(first, second):
        np.testing.assert_array_equal(g1, g2)


def test_a_dtype_mismatch_between_dout_and_a_winograd_cache_is_a_type_error():
    x, w, b = conv_inputs(N=1, C=1, H=4, W=4, F=1, dtype=np.float32)
    with fastnn.options(backend="jit"):
        out, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        with pytest.raises(TypeError, match="conv_backward_fast"):
            fast_layers.conv_backward_fast(out.astype(np.float64), cache)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nan_or_inf_reaches_exactly_the_outputs_whose_window_holds_it(bad):
    """A NaN or Inf spreads over a whole 4x4 tile of Winograd's outputs, so a forward whose output is not finite
    runs again by im2col: non-finite outputs are the direct convolution's, at every input position (an Inf may come
    out as NaN there, Inf - Inf)."""
    x, w, b = conv_inputs(N=1, C=2, H=6, W=7, F=2)
    param = {"stride": 1, "pad": 1}
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            bad_x = x.copy()
            bad_x[0, 1, i, j] = bad
            with fastnn.options(backend="reference"):
                direct = fast_layers.conv_forward_fast(bad_x, w, b, param)[0]
            with fastnn.options(backend="jit"):
                winograd, cache = fast_layers.conv_forward_fast(bad_x, w, b, param)
            assert isinstance(cache[4], ColumnsFromInput)
            assert np.array_equal(np.isfinite(winograd), np.isfinite(direct)), (i, j)
            if np.isnan(bad):
                assert np.array_equal(np.isnan(winograd), np.isnan(direct)), (i, j)


@pytest.mark.filterwarnings("error")  # the serial builds made off the main thread compile without a warning
def test_the_winograd_kernels_run_from_many_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    def step(seed):
        x, w, b = conv_inputs(N=3, C=4, H=9, W=8, F=5, seed=seed)
        out, cache = layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        assert isinstance(cache[4], WinogradTiles)
        return (out,) + layers.conv_backward_fast(out, cache)

    with fastnn.options(backend="jit"):
        serial = [step(s) for s in range(12)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            threaded = list(pool.map(step, range(12)))
    for one, other in zip(serial, threaded):
        for a, b in zip(one, other):
            np.testing.assert_array_equal(a, b)


def test_few_input_channels_or_many_filters_per_channel_stay_on_im2col(monkeypatch):
    from fastnn.compiled import winograd

    monkeypatch.undo()  # the rule itself, not this module's fixture
    with fastnn.options(backend="jit"):
        for C, F, expected in [(1, 2, ColumnsFromInput), (2, 4, WinogradTiles), (3, 7, ColumnsFromInput),
                               (8, 16, WinogradTiles), (8, 17, ColumnsFromInput), (23, 47, ColumnsFromInput),
                               (24, 200, WinogradTiles)]:
            assert winograd.pays(C, F) == (expected is WinogradTiles)
            x, w, b = conv_inputs(N=1, C=C, H=4, W=4, F=F)
            assert isinstance(fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})[1][4], expected)


def test_every_layout_of_x_and_dout_is_accepted():
    from fastnn.testing import layouts

    x, w, b = conv_inputs(N=3, C=4, H=7, W=6, F=2)
    dout = randn(3, 2, 7, 6, seed=3)
    expected, _ = _run("reference", layers.conv_forward_fast, layers.conv_backward_fast, x, w, b, 1, dout)
    for (name, x_layout), (_, dout_layout) in zip(layouts(x), layouts(dout)):
        got, cache = _run("jit", layers.conv_forward_fast, layers.conv_backward_fast, x_layout, w, b, 1, dout_layout)
        assert isinstance(cache[4], WinogradTiles)
        for g, e in zip(got, expected):
            assert_close(g, e, direction="backward", what=name)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_nan_input_entry_reaches_only_the_filter_taps_that_read_it():
    """G^T dU G as a product multiplied G's zeros by the NaN: every tap of the filter gradient became NaN where
    the direct convolution's dw holds it at one tap (numeric fuzzing)."""
    import fastnn
    import fastnn.fast_layers as FL

    x = np.random.default_rng(0).standard_normal((1, 8, 4, 4))
    x[0, 0, 0, 0] = np.nan
    w, b, dout = np.ones((1, 8, 3, 3)), np.zeros(1), np.ones((1, 1, 2, 2))
    nan_taps = {}
    for backend in ("jit", "reference"):
        with fastnn.options(backend=backend):
            _, cache = FL.conv_forward_fast(x, w, b, {"stride": 1, "pad": 0})
            nan_taps[backend] = np.isnan(FL.conv_backward_fast(dout, cache)[1])
    assert nan_taps["reference"].sum() == 1
    np.testing.assert_array_equal(nan_taps["jit"], nan_taps["reference"])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Inf * 0 in both backends' dw GEMM, as NumPy warns
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nan_or_inf_in_dout_reaches_exactly_the_input_gradients_of_its_window(bad):
    """dM = A dY A^T spreads one entry of dout over a whole 6x6 tile of dx; a backward with a gradient that is not
    finite runs by im2col, so dx is non-finite exactly where the direct convolution's is."""
    x, w, b = conv_inputs(N=1, C=2, H=9, W=7, F=2)
    param = {"stride": 1, "pad": 1}
    for i, j in [(0, 0), (4, 3), (8, 6), (5, 1)]:
        dout = randn(1, 2, 9, 7, seed=5)
        dout[0, 1, i, j] = bad
        grads = {}
        for backend in ("reference", "jit"):
            with fastnn.options(backend=backend):
                out, cache = fast_layers.conv_forward_fast(x, w, b, param)
                grads[backend] = fast_layers.conv_backward_fast(dout, cache)
        assert isinstance(cache[4], WinogradTiles)
        for what, got, expected in zip(["dx", "dw", "db"], grads["jit"], grads["reference"]):
            assert np.array_equal(np.isnan(got), np.isnan(expected)), (what, i, j)
            assert np.array_equal(np.isfinite(got), np.isfinite(expected)), (what, i, j)


@pytest.mark.filterwarnings("error")  # the overflow inside Winograd is no result, so no warning either
@pytest.mark.parametrize("x_scale, dout_scale", [(1e37, 1e-2), (1.0, 1e37)], ids=["x", "dout"])
def test_large_finite_inputs_that_overflow_the_transforms_give_the_direct_result(x_scale, dout_scale):
    """B^T d B sums up to 100x an entry of x, and A dY A^T up to 225x one of dout: float32 entries of 1e37 overflow
    there, though the direct convolution's outputs and gradients are finite."""
    x, w, b = conv_inputs(N=2, C=3, H=8, W=8, F=2)
    x, w, dout = x * x_scale, w * 1e-3, randn(2, 2, 8, 8, seed=6) * dout_scale
    expected, _ = _run("reference", fast_layers.conv_forward_fast, fast_layers.conv_backward_fast, x, w, b, 1, dout)
    got, cache = _run("jit", fast_layers.conv_forward_fast, fast_layers.conv_backward_fast,
                      *(a.astype(np.float32) for a in (x, w, b)), 1, dout.astype(np.float32))
    assert isinstance(cache[4], ColumnsFromInput if x_scale > 1 else WinogradTiles)
    for what, g, e in zip(["out", "dx", "dw", "db"], got, expected):
        assert np.isfinite(e).all() and np.isfinite(g).all(), what
        assert_close(g, e, dtype=np.float32, what=what)


def test_the_winograd_setting_off_runs_im2col_with_each_outputs_own_rounding():
    """A pixel 1e6 times its neighbours costs Winograd float32 ~0.7 (relative) at the outputs of its 6x6 tile
    that do not read it (the tile's largest entry sets their rounding); options(winograd=False) runs im2col,
    whose outputs round on their own windows only."""
    x, w, b = conv_inputs(N=1, C=8, H=8, W=8, F=8)
    x[0, :, 2, 2] = 1e6
    far = np.ones((8, 8), bool)
    far[1:4, 1:4] = False  # the outputs whose window reads pixel (2, 2)
    with fastnn.options(backend="reference"):
        expected = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})[0][:, :, far]
    errors = {}
    for winograd in (True, False):
        with fastnn.options(backend="jit", winograd=winograd):
            out, cache = fast_layers.conv_forward_fast(*(a.astype(np.float32) for a in (x, w, b)),
                                                       {"stride": 1, "pad": 1})
        assert isinstance(cache[4], WinogradTiles if winograd else ColumnsFromInput)
        errors[winograd] = max_relative_error(out[:, :, far], expected)[0]
    assert errors[False] <= 1e-6
    assert errors[True] > 1e-3  # the documented cost of F(4x4): if this improves, the README's caveat can go


def test_a_backward_under_winograd_false_runs_im2col_from_a_winograd_cache(monkeypatch):
    from fastnn.compiled import winograd

    x, w, b = conv_inputs(N=2, C=4, H=6, W=6, F=3)
    dout = randn(2, 3, 6, 6, seed=7)
    with fastnn.options(backend="jit"):
        out, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    assert isinstance(cache[4], WinogradTiles)
    calls = []
    real = winograd.backward
    monkeypatch.setattr(winograd, "backward", lambda *args: calls.append(1) or real(*args))
    with fastnn.options(backend="jit", winograd=False):
        got = fast_layers.conv_backward_fast(dout, cache)
    with fastnn.options(backend="reference"):
        expected = fast_layers.conv_backward_fast(dout, cache)
    assert calls == []
    for g, e in zip(got, expected):
        assert_close(g, e, direction="backward")


def test_an_input_gradient_that_is_not_finite_sends_the_backward_to_im2col(monkeypatch):
    """dinput_tiles' tile sums are the last check: a dx whose tiles are not finite (here, one made so) is computed
    again by im2col, as dout and dw already are."""
    from fastnn.compiled import winograd

    x, w, b = conv_inputs(N=2, C=3, H=6, W=6, F=2)
    dout = randn(2, 2, 6, 6, seed=8)
    real = winograd.K.dinput_tiles

    def poisoned(dV, pad, tiles_h, tiles_w, dx, sums):
        real(dV, pad, tiles_h, tiles_w, dx, sums)
        dx[0, 0, 0, 0], sums[0] = np.nan, np.nan

    with fastnn.options(backend="jit"):
        out, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        monkeypatch.setattr(winograd.K, "dinput_tiles", poisoned)
        monkeypatch.setattr(winograd, "variant", lambda fn, parallel: fn, raising=False)
        got = fast_layers.conv_backward_fast(dout, cache)
    with fastnn.options(backend="reference"):
        expected = fast_layers.conv_backward_fast(dout, cache)
    assert isinstance(cache[4], WinogradTiles)
    for g, e in zip(got, expected):
        assert np.isfinite(g).all()
        assert_close(g, e, direction="backward")
