"""Numerical edges on both paths: huge and equal logits, a batch of one, constant features, one channel per
group, and float32 running statistics over many steps."""

import numpy as np
import pytest

import fastnn
import fastnn.layers as L

BACKENDS = ["reference", "jit"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_with_huge_and_equal_logits(backend, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [5.0, 5.0, 5.0]], dtype=dtype)
    y = np.array([0, 2, 1])
    with fastnn.options(backend=backend):
        soft, dsoft = L.softmax_loss(x, y)
        svm, dsvm = L.svm_loss(x, y)
    # row 0: p(correct) = 1; row 1: two equal winners, log 2; row 2: log 3
    np.testing.assert_allclose(soft, (0 + np.log(2) + np.log(3)) / 3, rtol=1e-6)
    # row 0: margins 0, row 1: class 1 ties the correct class -> margin 1; row 2: two margins of 1
    np.testing.assert_allclose(svm, (0 + 1 + 2) / 3, rtol=1e-6)
    for d in (dsoft, dsvm):
        assert d.dtype == dtype and np.all(np.isfinite(d))
    np.testing.assert_allclose(dsoft.sum(axis=1), 0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_with_one_sample_and_constant_features(backend):
    gamma, beta = np.array([2.0, 3.0]), np.array([0.5, -1.0])
    with fastnn.options(backend=backend):
        out, cache = L.batchnorm_forward(np.array([[1.0, 7.0]]), gamma, beta, {"mode": "train"})
        np.testing.assert_allclose(out, [[0.5, -1.0]])
        grads = L.batchnorm_backward(np.ones((1, 2)), cache)
        constant = np.tile([[4.0, 4.0]], (5, 1))
        out, cache = L.batchnorm_forward(constant, gamma, beta, {"mode": "train"})
        np.testing.assert_allclose(out, np.tile(beta, (5, 1)))
        grads += L.batchnorm_backward(np.random.default_rng(0).standard_normal((5, 2)), cache)
    assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_groupnorm_with_one_channel_per_group_is_instance_norm(backend):
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)) * 5 + 2
    with fastnn.options(backend=backend):
        out, cache = L.spatial_groupnorm_forward(x, np.ones(4), np.zeros(4), 4, {})
        dx, dgamma, dbeta = L.spatial_groupnorm_backward(np.ones_like(out), cache)
    np.testing.assert_allclose(out.mean(axis=(2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(2, 3)), 1, rtol=1e-4)
    np.testing.assert_allclose(dx, 0, atol=1e-10)  # a constant upstream gradient is normalised away


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_running_statistics_track_a_float64_run(backend):
    rng = np.random.default_rng(0)
    gamma, beta = np.ones(16), np.zeros(16)
    p32, p64 = {"mode": "train"}, {"mode": "train"}
    with fastnn.options(backend=backend):
        for _ in range(500):
            x = rng.standard_normal((32, 16)) * 3 + 100
            L.batchnorm_forward(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32), p32)
            L.batchnorm_forward(x, gamma, beta, p64)
    assert p32["running_mean"].dtype == np.float32
    np.testing.assert_allclose(p32["running_mean"], p64["running_mean"], rtol=1e-5)
    np.testing.assert_allclose(p32["running_var"], p64["running_var"], rtol=1e-3)


def _diverged_batches():
    rng = np.random.default_rng(0)
    inf_first = rng.standard_normal((8, 3))
    inf_first[0, 0], inf_first[3, 1], inf_first[2, 2] = np.inf, -np.inf, np.nan
    return {"an Inf in the first row": inf_first,  # the one-pass variance's shift was Inf: Inf - Inf
            "a spread whose squares overflow": rng.standard_normal((8, 3)) * 1e200}


@pytest.mark.parametrize("case, dtype", [
    ("an Inf in the first row", np.float32),
    ("an Inf in the first row", np.float64),
    ("a spread whose squares overflow", np.float64),  # float32 statistics sum in float64, where they do not
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_batchnorm_statistics_of_a_diverged_batch_are_numpys(case, dtype):
    """The compiled batch statistics give np.mean's and np.var's Inf and NaN where a training has diverged: an
    Inf column's mean is Inf (not NaN), a spread beyond sqrt(float max) has variance Inf and normalises to 0."""
    from fastnn import layer_utils as U
    x = _diverged_batches()[case].astype(dtype)
    gamma, beta = np.full(3, 2.0, dtype), np.full(3, 0.5, dtype)
    spatial = x.reshape(2, 4, 3, 1).transpose(0, 2, 1, 3).copy()  # (N, C, H, W) with the same channel values
    results = {}
    for backend in BACKENDS:
        with fastnn.options(backend=backend):
            plain, sp, fused = {"mode": "train"}, {"mode": "train"}, {"mode": "train"}
            out = L.batchnorm_forward(x, gamma, beta, plain)[0]
            out_sp = L.spatial_batchnorm_forward(spatial, gamma, beta, sp)[0]
            out_fused = U.affine_bn_relu_forward(x, np.eye(3, dtype=dtype), np.zeros(3, dtype), gamma, beta, fused)[0]
        results[backend] = [out, out_sp, out_fused] + [p[k] for p in (plain, sp, fused)
                                                        for k in ("running_mean", "running_var")]
    for got, want in zip(results["jit"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_second_pass_whose_sums_overflow_keeps_the_first_passs_statistics():
    """Values near the largest float whose squares overflow (so the column is measured again): the second pass,
    adding row by row, overflowed (M + M) where the first pass's blocks of four did not, and gave mean Inf and
    var NaN where the reference gives mean 0 and var Inf (out = beta)."""
    from fastnn import layer_utils as U
    x = np.zeros((64, 1))
    x[1:5, 0] = 0.9 * np.finfo(np.float64).max * np.array([1.0, 1.0, -1.0, -1.0])
    gamma, beta = np.ones(1), np.full(1, 0.5)
    results = {}
    for backend in BACKENDS:
        with fastnn.options(backend=backend):
            plain, fused = {"mode": "train"}, {"mode": "train"}
            results[backend] = [L.batchnorm_forward(x, gamma, beta, plain)[0], plain["running_var"],
                                U.affine_bn_relu_forward(x, np.eye(1), np.zeros(1), gamma, beta, fused)[0],
                                fused["running_var"]]
    for got, want in zip(results["jit"], results["reference"]):
        np.testing.assert_array_equal(got, want)


def _row_norms(x, dtype):
    """layernorm, groupnorm (rows as (N, C, 1, 1), G = 1) and, for rows of up to 1024, the fused
    affine-layernorm-relu with an identity weight, of x in `dtype`."""
    from fastnn import layer_utils as U
    x = x.astype(dtype)
    D = x.shape[1]
    gamma, beta = np.full(D, 2.0, dtype), np.full(D, 0.5, dtype)
    norms = [L.layernorm_forward(x, gamma, beta, {})[0],
             L.spatial_groupnorm_forward(x.reshape(*x.shape, 1, 1), gamma, beta, 1, {})[0].reshape(x.shape)]
    if D <= 1024:
        norms.append(U.affine_ln_relu_forward(x, np.eye(D, dtype=dtype), np.zeros(D, dtype), gamma, beta, {})[0])
    return norms


@pytest.mark.parametrize("case, dtype", [
    ("an Inf in the first row", np.float32),
    ("an Inf in the first row", np.float64),
    ("a spread whose squares overflow", np.float64),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_row_statistics_of_a_diverged_batch_are_numpys(case, dtype):
    """Layernorm's and groupnorm's one-pass shifted statistics (shifted by the row's first entry) give the
    reference's NaN rows and overflowed variances, as batchnorm's columns do above."""
    results = {}
    for backend in BACKENDS:
        with fastnn.options(backend=backend):
            results[backend] = _row_norms(_diverged_batches()[case].T, dtype)
    for got, want in zip(results["jit"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def _far_rows(case):
    """Rows far from zero, or whose first entry (the one-pass variance's shift) lies far out."""
    rng = np.random.default_rng(0)
    if case.startswith("one long row"):  # the shift's error grew with the row: 7e-11 at 3e5
        x = 0.5 + 0.01 * rng.standard_normal((1, 100_000))
        x[0, 0] = 50.0 if case.endswith("an outlier") else 0.5 + 0.01 * 7.9  # 4.6e-13 at 2.6e5 when 64 let 7.9 by
        return x
    offset, first = {"at 1e4": (1e4, 0.0), "at 1e8": (1e8, 0.0), "at 1e4, first 1e4 out": (1e4, 1e4),
                     "at 1e8, first 1e4 out": (1e8, 1e4)}[case]
    x = offset + rng.standard_normal((6, 40))
    x[:, 0] += first
    return x


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="no wider long double here")
@pytest.mark.parametrize("case", ["at 1e4", "at 1e8", "at 1e4, first 1e4 out", "at 1e8, first 1e4 out",
                                  "one long row, its first entry an outlier",
                                  "one long row, its first entry 7.9 standard deviations out"])
def test_row_statistics_far_from_zero_are_as_accurate_as_the_references(case):
    """The compiled layernorm and groupnorm stay within a few times the two-pass reference's error against the
    reference run in long double (the conditioning, not the algorithm, sets both: ~1e-8 at 1e8)."""
    from fastnn.reference import norm as R
    x = _far_rows(case)
    with fastnn.options(backend="reference"):
        reference = _row_norms(x, np.float64)
    with fastnn.options(backend="jit"):
        jit = _row_norms(x, np.float64)
    D = x.shape[1]
    truth = R.layernorm_forward(x.astype(np.longdouble), np.full(D, 2.0, np.longdouble),
                                np.full(D, 0.5, np.longdouble), {})[0]
    truth = [truth, truth, np.maximum(truth, 0)]  # layernorm, groupnorm with G = 1, then relu of layernorm
    for got, want, exact in zip(jit, reference, truth):
        scale = float(np.abs(exact).max())
        error, reference_error = np.abs(got - exact).max() / scale, np.abs(want - exact).max() / scale
        assert error <= 8 * reference_error + 1e-13, (error, reference_error)  # summation order: ~5e-15 at 1e5


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="no wider long double here")
@pytest.mark.parametrize("layer, far", [("batchnorm", "every"), ("batchnorm", "one"), ("fused batchnorm", "every"),
                                        ("fused batchnorm", "one"), ("spatial batchnorm", "every")])
def test_batch_statistics_whose_first_row_is_an_outlier_are_as_accurate_as_the_references(layer, far):
    """The one-pass column variance shifted by the first row lost up to the batch's size in precision where that
    row was an outlier: 7e-12 against 8e-15 at N = 20000, 3e-10 (beyond the float64 tolerance) for a spatial
    channel of 65536. One far column of eight takes the pass over far columns, every column a whole pass."""
    from fastnn import layer_utils as U
    from fastnn.reference import norm as R
    rng = np.random.default_rng(2)
    if layer == "spatial batchnorm":
        x = 0.5 + 0.01 * rng.standard_normal((64, 8, 16, 16))
        x[0, :, 0, 0] = 50.0
    else:
        x = 0.5 + 0.01 * rng.standard_normal((20000, 8))
        x[0, :1 if far == "one" else None] = 50.0
    gamma, beta = np.ones(8), np.zeros(8)

    def forward(x, gamma, beta, module=L):
        if layer == "spatial batchnorm":
            return module.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})[0]
        if layer == "fused batchnorm":
            return U.affine_bn_relu_forward(x, np.eye(8), np.zeros(8), gamma, beta, {"mode": "train"})[0]
        return module.batchnorm_forward(x, gamma, beta, {"mode": "train"})[0]

    results = {}
    for backend in BACKENDS:
        with fastnn.options(backend=backend):
            results[backend] = forward(x, gamma, beta)
    wide = [a.astype(np.longdouble) for a in (x, gamma, beta)]
    exact = forward(*wide, module=R) if layer != "fused batchnorm" else np.maximum(R.batchnorm_forward(
        *wide, {"mode": "train"})[0], 0)
    scale = float(np.abs(exact).max())
    error, reference_error = [np.abs(results[b] - exact).max() / scale for b in ("jit", "reference")]
    assert error <= 8 * reference_error + 1e-13, (error, reference_error)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_rows_whose_squares_overflow_only_about_their_first_entry_normalise_as_the_reference():
    """Shifted by a first entry of 1.35e154, the squares overflowed and the row came out as beta (var Inf), where
    the reference's centred squares do not overflow."""
    rng = np.random.default_rng(0)
    spread = rng.choice([-1.0, 1.0], size=(3, 64)) * 3e152
    spread[:, 0] = 3e152
    for x in (np.array([[1.35e154, 0.0, 0.0, 0.0]]), spread):
        results = {}
        for backend in BACKENDS:
            with fastnn.options(backend=backend):
                results[backend] = _row_norms(x, np.float64)
        for got, want in zip(results["jit"], results["reference"]):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("offset", [1e8, 1e15])
def test_softmax_of_large_logits_matches_the_reference(offset):
    """Fast-math reassociation made x - top - log_total into x - (top + log_total): dx off by 3.6e-9 at 1e8."""
    rng = np.random.default_rng(0)
    x, y = offset + rng.standard_normal((50, 10)), rng.integers(0, 10, 50)
    results = {}
    for backend in BACKENDS:
        with fastnn.options(backend=backend):
            results[backend] = L.softmax_loss(x, y)
    assert results["jit"][0] == pytest.approx(results["reference"][0], rel=1e-12)
    np.testing.assert_allclose(results["jit"][1], results["reference"][1], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_splits_two_tied_large_maxima(backend, dtype):
    """The compiled loss gave 0 and dx [0, 0, 1] for two tied logits of 1.5e19 (log_total lost to the maximum)."""
    with fastnn.options(backend=backend):
        loss, dx = L.softmax_loss(np.array([[1.5e19, -1.5e19, 1.5e19]], dtype), np.array([0]))
    assert loss == pytest.approx(np.log(2), rel=1e-6)
    np.testing.assert_allclose(dx, [[-0.5, 0, 0.5]], atol=1e-7)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_groupnorm_backward_with_an_infinite_gamma_gives_the_references_nan():
    """The kernel took gamma out of the group's sums: Inf times mixed-sign dout summed to one signed Inf (dx -inf)
    where the reference's mean(dout * gamma) is NaN (numeric fuzzing)."""
    x = np.array([-1.0, 1.0, -2.0]).reshape(1, 1, 1, 3)
    dout = np.array([-1.0, 1.0, 2.0]).reshape(1, 1, 1, 3)
    gamma, beta = np.full((1, 1, 1, 1), np.inf), np.zeros((1, 1, 1, 1))
    results = {}
    for backend in BACKENDS:
        with fastnn.options(backend=backend):
            _, cache = L.spatial_groupnorm_forward(x, gamma, beta, 1, {})
            results[backend] = L.spatial_groupnorm_backward(dout, cache)[0]
    np.testing.assert_array_equal(np.isnan(results["jit"]), np.isnan(results["reference"]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_batchnorm_backward_with_an_infinite_gamma_is_nan_on_every_path():
    """dx = invstd * (dout * gamma - mean(dout * gamma) - ...) is Inf - Inf in every entry of a feature whose gamma
    is infinite; the kernels' per-feature coefficients gave -inf and NaN mixed, the reference's alt formula
    +-inf (numeric fuzzing)."""
    from fastnn import layer_utils as U

    x = np.array([[-1.0, 0.5], [1.0, 0.2], [-2.0, 0.9]])
    dout = np.array([[-1.0, 0.3], [1.0, -0.1], [2.0, 0.4]])
    gamma, beta = np.array([np.inf, 1.0]), np.zeros(2)
    spatial = (x.T.reshape(1, 2, 3, 1), dout.T.reshape(1, 2, 3, 1))
    for backend in BACKENDS:
        with fastnn.options(backend=backend):
            _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
            for backward in (L.batchnorm_backward, L.batchnorm_backward_alt):
                dx = backward(dout, cache)[0]
                assert np.isnan(dx[:, 0]).all() and np.isfinite(dx[:, 1]).all(), (backend, backward.__name__)
            _, cache = L.spatial_batchnorm_forward(spatial[0], gamma, beta, {"mode": "train"})
            dx = L.spatial_batchnorm_backward(spatial[1], cache)[0]
            assert np.isnan(dx[:, 0]).all() and np.isfinite(dx[:, 1]).all(), backend
            _, cache = U.affine_bn_relu_forward(x, np.eye(2), np.zeros(2), gamma, beta, {"mode": "train"})
            dx = U.affine_bn_relu_backward(dout, cache)[0]
            assert np.isnan(dx[:, 0]).all(), backend
