"""The cs231n.vis_utils API: image grids for showing weights and data (the notebooks' show_net_weights and the
first-layer filters of ConvolutionalNetworks.ipynb use visualize_grid).

Same layouts and numbers as the starter, with differences on purpose: a constant image (high == low), which
the starter divides by zero into NaN, is drawn as 0; integer and bool images are scaled in float64 (the starter
wraps int8 around, and cannot subtract bools); an image whose range overflows its dtype (float16 +-60000) is
scaled by halves, not to NaN; vis_nn places every image of ragged rows (the starter sizes the grid from the first
row, drops a longer row's extra images and fails on a shorter one).
"""

from math import ceil, sqrt

import numpy as np

from . import _checks


def _images(fn, Xs):
    """Xs as a float (N, H, W, C) array of at least one image."""
    if not isinstance(Xs, np.ndarray) or Xs.dtype.kind not in "biuf":
        _checks.fail(fn, f"Xs must be a numeric numpy.ndarray (N, H, W, C), got {type(Xs).__name__}", TypeError)
    if Xs.ndim != 4 or min(Xs.shape) < 1:
        _checks.fail(fn, f"Xs must be (N, H, W, C) with every dimension at least 1, got shape {Xs.shape}")
    return Xs


def _scaled(image, top):
    """image scaled from its own [min, max] to [0, top]; a constant image is 0, one holding NaN all NaN (as the
    starter's)."""
    if image.dtype.kind != "f":
        image = image.astype(np.float64)
    low, high = np.min(image), np.max(image)
    if high == low:
        return np.zeros(image.shape)
    with np.errstate(over="ignore"):
        if np.isinf(high - low):  # halving is exact here: a range this wide holds no subnormal ends
            image, low, high = image / 2, low / 2, high / 2
        if np.isinf(top * (high - low)):  # top times a difference would overflow: divide first
            return top * ((image - low) / (high - low))
    return top * (image - low) / (high - low)


def _tile(grid, image, row, col, step_y, step_x, offset=0):
    y0, x0 = offset + row * step_y, offset + col * step_x
    grid[y0:y0 + image.shape[0], x0:x0 + image.shape[1]] = image


def visualize_grid(Xs, ubound=255.0, padding=1):
    """Reshape a 4D tensor of image data to a grid for easy visualization.

    Inputs:
    - Xs: data of shape (N, H, W, C)
    - ubound: the grid's values are scaled to [0, ubound], each image on its own
    - padding: the number of blank (0) pixels between elements of the grid

    Returns the grid (G*H + (G-1)*padding, G*W + (G-1)*padding, C), G = ceil(sqrt(N)), images row by row.
    """
    fn = "visualize_grid"
    N, H, W, C = _images(fn, Xs).shape
    ubound = _checks.number(fn, "ubound", ubound)
    padding = _checks.integer(fn, "padding", padding, minimum=0)
    size = int(ceil(sqrt(N)))
    shape = (H * size + padding * (size - 1), W * size + padding * (size - 1), C)
    _checks.addressable(fn, f"{N} images of {H}x{W} with padding {padding}", {"a grid": shape}, ("a grid",))
    grid = np.zeros(shape)
    for n in range(N):
        _tile(grid, _scaled(Xs[n], ubound), *divmod(n, size), H + padding, W + padding)
    return grid


def _image(fn, name, image):
    """image as a numeric array; strings, objects and complex numbers are refused."""
    try:
        image = np.asarray(image)
    except ValueError as error:  # a ragged nest of lists
        _checks.fail(fn, f"{name} must be an (H, W, C) image ({error})")
    if image.dtype.kind not in "biuf":
        _checks.fail(fn, f"{name} must be an image of numbers, got dtype {image.dtype}", TypeError)
    return image


def _grid_dtype(dtype):
    """The starter's result dtype: float images keep theirs; integer ones (uint8 pixels) scale to float64."""
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def vis_grid(Xs):
    """Visualize a grid of images: Xs (N, H, W, C) tiled ceil(sqrt(N)) to a side with one pixel after each image,
    the gaps at the smallest value, and the whole grid scaled to [0, 1] together."""
    N, H, W, C = _images("vis_grid", Xs).shape
    size = int(ceil(sqrt(N)))
    grid = np.full((size * (H + 1), size * (W + 1), C), np.min(Xs), dtype=_grid_dtype(Xs.dtype))
    for n in range(N):
        _tile(grid, Xs[n], *divmod(n, size), H + 1, W + 1)
    return _scaled(grid, 1.0)


def vis_nn(rows):
    """Visualize an array of arrays of images: rows[y][x] (H, W, C) at row y, column x, with one pixel after each
    image, the gaps at 1 before the whole grid is scaled to [0, 1] together."""
    fn = "vis_nn"
    sequences = (list, tuple, np.ndarray)
    if not isinstance(rows, sequences) or not len(rows) or not all(isinstance(r, sequences) and len(r) for r in rows):
        _checks.fail(fn, "rows must be a non-empty sequence of non-empty sequences of (H, W, C) images", TypeError)
    first = _image(fn, "rows[0][0]", rows[0][0])
    if first.ndim != 3:
        _checks.fail(fn, f"rows[0][0] must be an (H, W, C) image, got shape {first.shape}")
    H, W, C = first.shape
    columns = max(len(r) for r in rows)
    grid = np.ones((len(rows) * (H + 1), columns * (W + 1), C), dtype=_grid_dtype(first.dtype))
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            image = _image(fn, f"rows[{y}][{x}]", image)
            if image.shape != first.shape:
                _checks.fail(fn, f"rows[{y}][{x}] has shape {image.shape}; every image must be {first.shape}")
            _tile(grid, image, y, x, H + 1, W + 1)
    return _scaled(grid, 1.0)
