"""Training plots written to PNG: the loss history, train/val accuracy per epoch, and first-layer filters.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so calling these from a notebook leaves the
notebook's backend and open figures alone. matplotlib is an optional dependency (`pip install fastnn[plot]`);
`available()` says whether it is installed.
"""

import importlib.util
import os

import numpy as np

from . import _checks
from ._files import atomic_open


def available():
    """True if matplotlib can be imported."""
    return importlib.util.find_spec("matplotlib") is not None


def _agg():
    """matplotlib's Figure and Agg canvas classes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("fastnn.plots needs matplotlib: pip install 'fastnn[plot]'") from error
    return Figure, FigureCanvasAgg


def _figure(width=6.4, height=4.0):
    Figure, FigureCanvasAgg = _agg()
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _checked_path(fn, path):
    """path as a str, and the image format its extension names (png without one), checked before any drawing."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    image_format = os.path.splitext(path)[1][1:].lower() or "png"
    supported = _agg()[1].get_supported_filetypes()
    if image_format not in supported:
        raise ValueError(f"{fn}: {path!r} names the image format {image_format!r}; matplotlib writes "
                         f"{', '.join(sorted(supported))}")
    return path, image_format


def _save(fn, figure, checked):
    """Write figure to the path of `checked`, _checked_path's (path, image format)."""
    path, image_format = checked
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{fn}: cannot write {path!r}: {directory!r} is not a directory") from None
    figure.tight_layout()
    with atomic_open(path, "wb", fn=fn) as f:
        figure.savefig(f, format=image_format)
    return path


def _plottable(fn, name, values):
    """values (a 1-D float64 array); matplotlib cannot lay out an axis whose finite values span more than a
    float holds ([1e308, -1e308])."""
    finite = values[np.isfinite(values)]
    with np.errstate(over="ignore"):
        too_wide = finite.size and not np.isfinite(finite.max() - finite.min())
    if too_wide:
        raise ValueError(f"{fn}: {name}'s values span [{finite.min():g}, {finite.max():g}], too wide for a plot")
    return values


def smooth(values, window=None):
    """The running mean of `values` over `window` points (default: about 1/20 of the history, at least 1);
    entries before a full window average what is there so far. NaN and infinite entries (a diverged step) are
    left out of the windows that hold them, so one of them does not turn the rest of the curve into NaN; a window
    holding nothing else is NaN."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"smooth: values must be 1-D, got shape {values.shape}")
    if window is not None:
        window = _checks.integer("smooth", "window", window, 1)
    if values.size == 0:
        return values
    window = max(1, values.size // 20) if window is None else min(window, values.size)
    finite = np.isfinite(values)
    counts = np.concatenate(([0], np.cumsum(finite)))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    n = counts[ends] - counts[starts]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(n > 0, _window_sums(np.where(finite, values, 0.0), window) / n, np.nan)


def _window_sums(values, window):
    """The sum of each entry and the window - 1 before it (fewer at the start). A window is a block's suffix plus
    the next block's prefix (blocks of `window` entries), so each sum adds its own entries only: differences of
    one running sum lost every later window's precision after a spike (a loss of 1e20, then 0.5s, smoothed to 0)."""
    size = values.size
    blocks = np.zeros(-(-size // window) * window)
    blocks[:size] = values
    blocks = blocks.reshape(-1, window)
    prefix = np.cumsum(blocks, axis=1).ravel()[:size]
    suffix = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].ravel()[:size]
    ends = np.arange(size)
    starts = np.maximum(ends - window + 1, 0)
    return np.where(starts % window == 0, prefix, suffix[starts] + prefix)


def plot_loss(loss_history, path, title="Training loss"):
    """Write the per-iteration loss (faint) with its running mean to the PNG `path`; returns path."""
    loss = _history("plot_loss", "loss_history", loss_history)
    if loss.ndim != 1 or loss.size == 0:
        raise ValueError(f"plot_loss: loss_history must be a non-empty 1-D sequence, got shape {loss.shape}")
    _plottable("plot_loss", "loss_history", loss)
    checked = _checked_path("plot_loss", path)
    figure = _figure()
    ax = figure.add_subplot(1, 1, 1)
    iterations = np.arange(1, loss.size + 1)
    ax.plot(iterations, loss, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
    ax.plot(iterations, smooth(loss), color="tab:blue", linewidth=2.0, label="running mean")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save("plot_loss", figure, checked)


def _history(fn, name, values):
    """values as a float64 array; what numpy cannot read as numbers is named, not numpy's own message."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{fn}: {name} must be a sequence of numbers ({error})") from None


def plot_accuracy(train_acc_history, val_acc_history, path, title="Classification accuracy", epochs=None):
    """Write train and validation accuracy per accuracy check to the PNG `path`; returns path. epochs: the epoch
    of each check (default 0, 1, 2, ...: check 0 after the first iteration, check e after epoch e; a Solver whose
    epoch is one iteration makes no check 0, see fastnn.solver.epochs_of_checks)."""
    fn = "plot_accuracy"
    train = _history(fn, "train_acc_history", train_acc_history)
    val = _history(fn, "val_acc_history", val_acc_history)
    if train.ndim != 1 or train.shape != val.shape or train.size == 0:
        raise ValueError(f"plot_accuracy: the histories must be non-empty and of equal length, got shapes "
                         f"{train.shape} and {val.shape}")
    epochs = np.arange(train.size) if epochs is None else _history(fn, "epochs", epochs)
    if epochs.shape != train.shape:
        raise ValueError(f"plot_accuracy: epochs must give one epoch per check, got shape {epochs.shape} for "
                         f"histories of shape {train.shape}")
    checked = _checked_path(fn, path)
    figure = _figure()
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(epochs, train, "-o", label="train")
    ax.plot(epochs, val, "-o", label="val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs, never 0.5
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fn, figure, checked)


def filter_grid(W, padding=1):
    """Tile first-layer filters W (F, C, HH, WW) into one image (rows, cols) for C == 1 or (rows, cols, 3) for
    C == 3, each filter scaled to [0, 1] over its finite entries; a NaN or infinite entry (a diverged run's) is
    drawn as 0 (black), and the gaps are 1 (white)."""
    return _filter_grid("filter_grid", W, padding)


def _filter_grid(fn, W, padding):
    W = _real_array(fn, "W", W)
    if W.ndim != 4 or W.shape[1] not in (1, 3):
        raise ValueError(f"{fn}: W must be (F, C, HH, WW) with C 1 or 3, got shape {W.shape}")
    F, C, HH, WW = W.shape
    if min(F, HH, WW) < 1:
        raise ValueError(f"{fn}: W must hold at least one filter of at least 1x1, got shape {W.shape}")
    padding = _checks.integer(fn, "padding", padding, 0)
    cols = int(np.ceil(np.sqrt(F)))
    rows = int(np.ceil(F / cols))
    shape = (rows * (HH + padding) + padding, cols * (WW + padding) + padding, C)
    _checks.addressable(fn, f"{F} filters of {HH}x{WW} with padding {padding}", {"a grid": shape},
                        allocated=("a grid",))
    grid = np.ones(shape)
    for f in range(F):
        r, c = divmod(f, cols)
        y0, x0 = padding + r * (HH + padding), padding + c * (WW + padding)
        grid[y0:y0 + HH, x0:x0 + WW] = _unit_range(W[f]).transpose(1, 2, 0)
    return grid[:, :, 0] if C == 1 else grid


def _real_array(fn, name, values):
    """values as a float64 array; complex values are refused (casting them drops the imaginary part)."""
    values = np.asarray(values)
    if np.iscomplexobj(values):
        raise TypeError(f"{fn}: {name} must be real, got {values.dtype}")
    return values.astype(np.float64, copy=False)


def _unit_range(w):
    """w scaled to [0, 1] over its finite entries (0.5 where they are all equal); non-finite entries are 0. The
    scaling is vis_utils' (a span wider than a float holds, -1e308 to 1e308, is taken in halves)."""
    from .vis_utils import _scaled

    finite = np.isfinite(w)
    if not finite.any():
        return np.zeros_like(w)
    low, high = w[finite].min(), w[finite].max()
    if not high > low:
        return np.where(finite, 0.5, 0.0)
    return np.where(finite, _scaled(np.where(finite, w, low), 1.0), 0.0)


def plot_filters(W, path, title="First-layer filters"):
    """Write the grid of first-layer filters W (F, C, HH, WW) to the PNG `path`; returns path."""
    grid = _filter_grid("plot_filters", W, 1)
    checked = _checked_path("plot_filters", path)
    figure = _figure(5, 5)
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return _save("plot_filters", figure, checked)
