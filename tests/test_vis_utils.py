"""fastnn.vis_utils against the starter's layouts: the notebooks import visualize_grid from cs231n.vis_utils."""

import math

import numpy as np
import pytest

from fastnn.vis_utils import vis_grid, vis_nn, visualize_grid


def test_visualize_grid_places_and_scales_each_image_as_the_starter():
    Xs = np.random.default_rng(0).standard_normal((5, 3, 2, 3))  # 5 images: a 3 x 3 grid, one row partly empty
    grid = visualize_grid(Xs, ubound=255.0, padding=2)
    assert grid.shape == (3 * 3 + 2 * 2, 3 * 2 + 2 * 2, 3)
    for n in range(5):
        y, x = divmod(n, 3)
        tile = grid[y * 5:y * 5 + 3, x * 4:x * 4 + 2]
        image = Xs[n]
        np.testing.assert_allclose(tile, 255 * (image - image.min()) / (image.max() - image.min()))
    assert not grid[10:].any() and not grid[:, 2:4].any()  # the padding, and the empty cells after image 5


def test_vis_grid_and_vis_nn_scale_the_whole_grid_to_0_1():
    Xs = np.arange(2 * 2 * 2 * 1, dtype=np.float64).reshape(2, 2, 2, 1) + 3
    grid = vis_grid(Xs)
    side = int(math.ceil(math.sqrt(2)))
    assert grid.shape == (side * 3, side * 3, 1)
    np.testing.assert_allclose(grid[0:2, 0:2, 0], (Xs[0, :, :, 0] - 3) / 7)
    np.testing.assert_allclose(grid[0:2, 3:5, 0], (Xs[1, :, :, 0] - 3) / 7)
    assert grid[2, 0, 0] == 0 and grid.max() == 1  # the gaps hold the smallest value

    rows = [[np.full((1, 2, 1), 4.0), np.full((1, 2, 1), 2.0)], [np.full((1, 2, 1), 3.0), np.full((1, 2, 1), 5.0)]]
    grid = vis_nn(rows)
    assert grid.shape == (4, 6, 1)
    np.testing.assert_allclose(grid[[0, 0, 2, 2], [0, 3, 0, 3], 0], [0.75, 0.25, 0.5, 1.0])  # (v - 1) / 4
    assert grid[1, 0, 0] == 0.0  # a gap: 1 before scaling, the smallest value


def _starter_vis_grid(Xs):  # cs231n.vis_utils.vis_grid, as the 2019 starter wrote it
    N, H, W, C = Xs.shape
    A = int(math.ceil(math.sqrt(N)))
    G = np.ones((A * H + A, A * W + A, C), Xs.dtype)
    G *= np.min(Xs)
    n = 0
    for y in range(A):
        for x in range(A):
            if n < N:
                G[y * H + y:(y + 1) * H + y, x * W + x:(x + 1) * W + x, :] = Xs[n, :, :, :]
                n += 1
    maxg, ming = G.max(), G.min()
    return (G - ming) / (maxg - ming)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_vis_grid_gives_the_starters_dtype_and_numbers(dtype):
    """uint8 pixels scaled in float32 (float64 in the starter) differed by ~3e-8."""
    Xs = np.random.default_rng(0).integers(0, 256, size=(5, 3, 4, 3)).astype(dtype)
    grid, expected = vis_grid(Xs), _starter_vis_grid(Xs)
    assert grid.dtype == expected.dtype
    np.testing.assert_array_equal(grid, expected)
    assert vis_nn([[Xs[0], Xs[1]]]).dtype == expected.dtype


def test_a_constant_image_is_drawn_as_zero_and_bad_input_is_named():
    grid = visualize_grid(np.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(grid, 0)  # the starter divided by zero into NaN
    with pytest.raises(ValueError, match=r"visualize_grid: Xs must be \(N, H, W, C\) .* got shape \(2, 2, 1\)"):
        visualize_grid(np.ones((2, 2, 1)))
    with pytest.raises(TypeError, match=r"vis_grid: Xs must be a numeric numpy.ndarray"):
        vis_grid([[1.0]])
    with pytest.raises(ValueError, match=r"vis_nn: rows\[0\]\[1\] has shape \(2, 2, 1\); every image must be"):
        vis_nn([[np.ones((1, 2, 1)), np.ones((2, 2, 1))]])
    with pytest.raises(ValueError, match=r"visualize_grid: padding must be >= 0"):
        visualize_grid(np.ones((1, 2, 2, 1)), padding=-1)


def test_integer_and_bool_images_are_scaled_without_wrapping():
    """int8 [-128, 127, 0, 5] gave [0, 255, 32640, 31365]: image - low wrapped around in int8."""
    image = np.array([-128, 127, 0, 5], np.int8).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(visualize_grid(image).ravel(), 255.0 * np.array([0, 255, 128, 133]) / 255)
    np.testing.assert_array_equal(visualize_grid(np.array([True, False]).reshape(1, 1, 2, 1)).ravel(), [255, 0])


def test_an_image_holding_nan_is_nan_as_the_starters_not_blank():
    image = np.array([1.0, np.nan]).reshape(1, 1, 2, 1)
    assert np.isnan(visualize_grid(image)).all()


@pytest.mark.parametrize("values, dtype", [([60000, -60000, 0, 0], np.float16), ([1e308, -1e308, 0, 0], np.float64),
                                           ([1e307, 0, 0, 0], np.float64)])
def test_an_image_whose_range_overflows_is_scaled_not_nan(values, dtype):
    grid = visualize_grid(np.array(values, dtype).reshape(1, 2, 2, 1))
    np.testing.assert_allclose(grid.ravel(), [255, 0, 127.5, 127.5] if values[1] else [255, 0, 0, 0], rtol=1e-3)


def test_vis_nn_takes_an_array_of_arrays_and_names_images_that_are_not_numbers():
    assert vis_nn(np.ones((2, 2, 3, 3, 1))).shape == (8, 8, 1)
    with pytest.raises(TypeError, match=r"vis_nn: rows\[0\]\[0\] must be an image of numbers, got dtype <U1"):
        vis_nn([[np.array([["a"]])]])
    with pytest.raises(TypeError, match=r"vis_nn: rows\[0\]\[1\] must be an image of numbers, got dtype complex128"):
        vis_nn([[np.ones((2, 2, 1)), np.ones((2, 2, 1)) * 1j]])


def test_star_import_gives_the_starters_module_names():
    """The starter has no __all__: `from cs231n.vis_utils import *` brings np, sqrt and ceil too."""
    names = {}
    exec("from fastnn.vis_utils import *", names)
    assert {"visualize_grid", "vis_grid", "vis_nn", "np", "sqrt", "ceil"} <= set(names)


def test_a_grid_too_large_to_make_is_named():
    """padding=10**12 met numpy's bare 'array is too big'."""
    from fastnn.vis_utils import visualize_grid

    with pytest.raises(ValueError, match=r"visualize_grid: 2 images of 3x3 with padding 1000000000000 need a grid of "
                                         r"shape \(1000000000006, 1000000000006, 3\), larger than any array can be"):
        visualize_grid(np.ones((2, 3, 3, 3)), padding=10**12)
