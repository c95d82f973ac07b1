"""Plots: PNG files for loss, accuracy and filters, drawn without touching pyplot's state."""

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fastnn import plots  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    from matplotlib.image import imread

    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    return imread(path)


def test_smooth_is_a_running_mean():
    np.testing.assert_allclose(plots.smooth([1, 2, 3, 4, 5, 6], window=2), [1, 1.5, 2.5, 3.5, 4.5, 5.5])
    np.testing.assert_allclose(plots.smooth([4.0] * 50), [4.0] * 50)
    assert plots.smooth([]).size == 0


def test_smooth_leaves_a_diverged_step_out_of_its_windows_and_checks_the_window():
    """One NaN once made the running mean NaN from there on (a cumulative sum); window 0 gave all NaN and -1 an
    IndexError."""
    np.testing.assert_allclose(plots.smooth([1, 2, np.nan, 4, 5, np.inf], window=2), [1, 1.5, 2, 4, 4.5, 5])
    assert np.isnan(plots.smooth([1, np.nan, np.nan, 4], window=2)[2])
    for window in (0, -1):
        with pytest.raises(ValueError, match="smooth: window must be >= 1"):
            plots.smooth([1, 2, 3], window)
    for window in (2.5, True):
        with pytest.raises(TypeError, match="smooth: window must be an integer"):
            plots.smooth([1, 2, 3], window)
    with pytest.raises(ValueError, match="smooth: values must be 1-D"):
        plots.smooth([[1, 2]])


def test_filter_grid_names_an_empty_filter_bank():
    for shape in ((0, 3, 3, 3), (2, 1, 0, 3)):
        with pytest.raises(ValueError, match="filter_grid: W must hold at least one filter"):
            plots.filter_grid(np.zeros(shape))
    with pytest.raises(ValueError, match="filter_grid: padding must be >= 0"):
        plots.filter_grid(np.zeros((2, 1, 3, 3)), padding=-1)


def test_loss_and_accuracy_pngs(tmp_path):
    rng = np.random.default_rng(0)
    loss = 2.3 * np.exp(-np.arange(200) / 50) + 0.1 * rng.random(200)
    path = plots.plot_loss(loss, tmp_path / "sub" / "loss.png")
    assert path.endswith("loss.png")
    image = read_png(path)
    assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0
    image = read_png(plots.plot_accuracy([0.1, 0.5, 0.8], [0.1, 0.45, 0.7], tmp_path / "acc.png"))
    assert image.std() > 0


def test_filter_grid_tiles_each_filter_scaled_to_unit_range():
    W = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    grid = plots.filter_grid(W, padding=1)
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1, 3)  # 5 filters -> 2 rows x 3 columns
    np.testing.assert_allclose(grid[1:3, 1:3], (W[0] - W[0].min()).transpose(1, 2, 0) / np.ptp(W[0]))
    assert grid[0].min() == 1.0  # padding
    gray = plots.filter_grid(np.ones((4, 1, 3, 3)))
    assert gray.shape == (9, 9) and np.all(gray[1:4, 1:4] == 0.5)  # a constant filter is mid-gray


def test_filters_png(tmp_path):
    W = np.random.default_rng(0).standard_normal((16, 1, 3, 3))
    assert read_png(plots.plot_filters(W, tmp_path / "filters.png")).std() > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"plot_loss: loss_history must be a non-empty 1-D sequence"):
        plots.plot_loss([], "x.png")
    with pytest.raises(ValueError, match=r"plot_accuracy: .*equal length, got shapes \(2,\) and \(3,\)"):
        plots.plot_accuracy([0, 1], [0, 1, 1], "x.png")
    with pytest.raises(ValueError, match=r"filter_grid: W must be \(F, C, HH, WW\) with C 1 or 3, got shape \(2, 2,"):
        plots.filter_grid(np.zeros((2, 2, 3, 3)))


def test_plots_leave_pyplot_alone(tmp_path):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plots.plot_loss([1.0, 0.5], tmp_path / "loss.png")
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


def test_smooth_recovers_after_a_huge_spike():
    """Differences of one running sum lost all precision after a loss of 1e20: the later means were 0."""
    values = [1e20] + [0.5] * 30
    np.testing.assert_array_equal(plots.smooth(values, 5)[-25:], 0.5)


@pytest.mark.parametrize("window", [1, 3, 7, 10, 31])
def test_smooth_equals_the_mean_of_each_windows_finite_entries(window):
    values = np.random.default_rng(window).standard_normal(31)
    values[[2, 15, 16]] = np.nan
    values[20] = np.inf
    expected = []
    for end in range(1, 32):
        held = values[max(end - window, 0):end]
        held = held[np.isfinite(held)]
        expected.append(held.mean() if held.size else np.nan)
    np.testing.assert_allclose(plots.smooth(values, window), expected, rtol=1e-12, atol=1e-15)


def test_smooth_takes_a_window_longer_than_the_history():
    np.testing.assert_array_equal(plots.smooth([1.0, 2.0, 3.0], 10**30), [1.0, 1.5, 2.0])


@pytest.mark.parametrize("call, error, message", [
    (lambda p: plots.plot_loss([1.0, 2.0], p / "loss.zzz"), ValueError, r"plot_loss: .* names the image format 'zzz'"),
    (lambda p: plots.plot_loss([1.0, 2.0], 5), TypeError, r"plot_loss: path must be a str or os.PathLike, got int"),
    (lambda p: plots.plot_loss([1e308, -1e308], p / "l.png"), ValueError, r"plot_loss: loss_history's values span"),
    (lambda p: plots.plot_loss(["a"], p / "l.png"), TypeError,
     r"plot_loss: loss_history must be a sequence of numbers"),
    (lambda p: plots.plot_accuracy([0.1], ["high"], p / "a.png"), TypeError,
     r"plot_accuracy: val_acc_history must be a sequence of numbers"),
    (lambda p: plots.plot_filters(np.ones((2, 1, 3, 3)), p / "f.txt"), ValueError, r"plot_filters: .*'txt'"),
    (lambda p: plots.plot_loss([1.0], p.parent / "file" / "l.png"), ValueError,
     r"plot_loss: cannot write .* is not a directory"),
    (lambda p: plots.filter_grid(np.ones((2, 1, 3, 3)), padding=10**12), ValueError,
     r"filter_grid: 2 filters of 3x3 with padding 10+ need a grid of shape"),
])
def test_plots_name_bad_arguments_before_making_any_directory(tmp_path, call, error, message):
    (tmp_path / "file").write_text("")
    with pytest.raises(error, match=message):
        call(tmp_path / "new")
    assert not (tmp_path / "new").exists()  # the format was once checked after os.makedirs


def test_an_upper_case_extension_names_its_format(tmp_path):
    read_png(plots.plot_loss([3.0, 2.0, 1.0], tmp_path / "loss.PNG"))


def test_accuracy_is_drawn_at_the_epochs_given(tmp_path, monkeypatch):
    """A Solver whose epoch is one iteration makes no check after its first iteration: drawn at 0, 1, 2, ...,
    each point sat one epoch early."""
    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fn, figure, checked: drawn.append(figure) or checked[0])
    plots.plot_accuracy([0.1, 0.5, 0.8], [0.1, 0.45, 0.7], tmp_path / "acc.png", epochs=[1, 2, 3])
    plots.plot_accuracy([0.1, 0.5], [0.1, 0.45], tmp_path / "acc.png")
    assert [list(line.get_xdata()) for line in drawn[0].axes[0].lines] == [[1, 2, 3]] * 2
    assert [list(line.get_xdata()) for line in drawn[1].axes[0].lines] == [[0, 1]] * 2
    with pytest.raises(ValueError, match=r"plot_accuracy: epochs must give one epoch per check, got shape \(2,\)"):
        plots.plot_accuracy([0.1, 0.5, 0.8], [0.1, 0.45, 0.7], tmp_path / "acc.png", epochs=[1, 2])


@pytest.mark.filterwarnings("error")
def test_filter_grid_scales_over_the_finite_entries_and_draws_the_others_black():
    """One infinite weight made NumPy warn 'invalid value encountered in divide' and left a NaN pixel."""
    W = np.arange(2 * 1 * 2 * 2, dtype=np.float64).reshape(2, 1, 2, 2)
    W[0, 0, 0, 0], W[0, 0, 1, 1], W[1, 0, 0, 1] = np.inf, np.nan, -np.inf
    grid = plots.filter_grid(W, padding=0)
    np.testing.assert_array_equal(grid[:, :2], [[0.0, 0.0], [1.0, 0.0]])  # finite 1 and 2 span [0, 1]
    np.testing.assert_allclose(grid[:, 2:], [[0.0, 0.0], [2 / 3, 1.0]])  # finite 4, 6 and 7
    assert np.array_equal(plots.filter_grid(np.full((1, 1, 2, 2), np.nan)), np.pad(np.zeros((2, 2)), 1,
                                                                                  constant_values=1.0))


@pytest.mark.filterwarnings("error")
def test_filter_grid_scales_a_span_wider_than_a_float_holds(tmp_path):
    """A filter spanning -1e308 to 1e308 became all NaN, with overflow warnings."""
    W = np.array([-1e308, -5e307, 0.0, 1e308]).reshape(1, 1, 2, 2)
    grid = plots.filter_grid(W, padding=0)
    np.testing.assert_allclose(grid, [[0.0, 0.25], [0.5, 1.0]])
    assert read_png(plots.plot_filters(W, tmp_path / "wide.png")).std() > 0


@pytest.mark.parametrize("fn", ["filter_grid", "plot_filters"])
def test_complex_filters_are_refused_not_cast(fn, tmp_path):
    """A complex W was cast to its real part, with only NumPy's ComplexWarning."""
    W = np.ones((2, 1, 3, 3)) * (1 + 2j)
    args = (W,) if fn == "filter_grid" else (W, tmp_path / "f.png")
    with pytest.raises(TypeError, match=rf"^{fn}: W must be real, got complex128$"):
        getattr(plots, fn)(*args)
    assert not (tmp_path / "f.png").exists()
