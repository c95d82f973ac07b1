"""Update rules against the arrays the course notebooks pin and against hand-computed steps."""

import numpy as np
import pytest

import fastnn
from fastnn import optim

N, D = 4, 5


def rel_error(x, y):
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def notebook_inputs():
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    state = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    return w, dw, state


def test_sgd_updates_in_place_with_default_learning_rate():
    w, dw, _ = notebook_inputs()
    expected = w - 1e-2 * dw
    next_w, config = optim.sgd(w, dw)
    assert next_w is w
    np.testing.assert_allclose(next_w, expected, rtol=0, atol=1e-15)
    assert config == {"learning_rate": 1e-2}


def test_sgd_updates_any_layout_in_place_and_a_read_only_w_by_copy():
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    dw = np.ones((4, 3))
    for w in (np.asfortranarray(base[:, :3]), base.copy()[:, ::2]):
        expected = w - 0.5 * dw
        next_w, _ = optim.sgd(w, dw, {"learning_rate": 0.5})
        assert next_w is w
        np.testing.assert_array_equal(w, expected)
    frozen = base[:, :3].copy()
    frozen.setflags(write=False)
    next_w, _ = optim.sgd(frozen, dw, {"learning_rate": 0.5})
    np.testing.assert_array_equal(next_w, base[:, :3] - 0.5)
    np.testing.assert_array_equal(frozen, base[:, :3])


def test_sgd_momentum_matches_the_notebook():
    w, dw, v = notebook_inputs()
    config = {"learning_rate": 1e-3, "velocity": v}
    next_w, returned = optim.sgd_momentum(w, dw, config=config)
    expected_next_w = np.asarray([
        [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
        [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
        [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
        [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]])
    expected_velocity = np.asarray([
        [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
        [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
        [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
        [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]])
    assert returned is config
    assert rel_error(next_w, expected_next_w) < 1e-8
    assert rel_error(config["velocity"], expected_velocity) < 1e-8
    assert config["momentum"] == 0.9


def test_rmsprop_matches_the_notebook():
    w, dw, cache = notebook_inputs()
    config = {"learning_rate": 1e-2, "cache": cache}
    next_w, _ = optim.rmsprop(w, dw, config=config)
    expected_next_w = np.asarray([
        [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
        [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
        [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
        [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]])
    expected_cache = np.asarray([
        [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
        [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
        [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
        [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]])
    assert rel_error(next_w, expected_next_w) < 1e-7
    assert rel_error(config["cache"], expected_cache) < 1e-7


def test_adam_matches_the_notebook_with_t_incremented_before_use():
    w, dw, m = notebook_inputs()
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    config = {"learning_rate": 1e-2, "m": m, "v": v, "t": 5}
    next_w, _ = optim.adam(w, dw, config=config)
    expected_next_w = np.asarray([
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
    expected_v = np.asarray([
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]])
    expected_m = np.asarray([
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]])
    # The notebook prints 8 decimals, so 0.01971428 alone carries a 1.1e-7 rounding error; t = 5 used
    # without the increment would miss by 3e-3.
    assert rel_error(next_w, expected_next_w) < 2e-7
    assert rel_error(config["v"], expected_v) < 1e-7
    assert rel_error(config["m"], expected_m) < 1e-7
    assert config["t"] == 6


def test_adam_first_step_moves_each_weight_by_about_the_learning_rate():
    # With t = 0 -> 1 the bias correction gives m_hat = dw and v_hat = dw**2, so the step is lr * sign(dw).
    w = np.array([1.0, -2.0, 3.0])
    dw = np.array([0.5, -4.0, 1e-3])
    next_w, config = optim.adam(w.copy(), dw)
    expected = w - 1e-3 * dw / (np.abs(dw) + 1e-8)
    np.testing.assert_allclose(next_w, expected, rtol=1e-12)
    assert (config["t"], config["beta1"], config["beta2"], config["epsilon"]) == (1, 0.9, 0.999, 1e-8)


def test_nesterov_by_hand():
    w = np.array([1.0, 2.0])
    dw = np.array([0.5, -1.0])
    v = np.array([0.1, 0.2])
    config = {"learning_rate": 0.1, "momentum": 0.5, "velocity": v}
    next_w, _ = optim.nesterov(w, dw, config)
    v_new = 0.5 * v - 0.1 * dw                          # [0.0, 0.2]
    expected = w - 0.5 * v + 1.5 * v_new                # [0.95, 2.2]
    np.testing.assert_allclose(next_w, expected, rtol=1e-15)
    np.testing.assert_allclose(next_w, [0.95, 2.2], rtol=1e-15)
    np.testing.assert_allclose(config["velocity"], v_new)


def test_adagrad_by_hand_over_two_steps():
    w = np.array([1.0, -1.0])
    dw = np.array([3.0, 4.0])
    w1, config = optim.adagrad(w, dw, {"learning_rate": 0.5, "epsilon": 0.0})
    np.testing.assert_allclose(w1, [0.5, -1.5])         # w - 0.5 * dw / |dw|
    w2, config = optim.adagrad(w1, dw, config)
    np.testing.assert_allclose(config["cache"], [18.0, 32.0])
    np.testing.assert_allclose(w2, w1 - 0.5 * dw / np.sqrt([18.0, 32.0]))


@pytest.mark.parametrize("rule", optim.UPDATE_RULES)
def test_float32_stays_float32_even_with_a_numpy_float64_learning_rate(rule):
    w = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    dw = np.full((2, 3), 0.25, dtype=np.float32)
    config = {"learning_rate": np.float64(1e-2)}
    for _ in range(2):
        w, config = getattr(optim, rule)(w, dw, config)
        assert w.dtype == np.float32
    state = [v for v in config.values() if isinstance(v, np.ndarray)]
    assert all(s.dtype == np.float32 for s in state)


@pytest.mark.parametrize("rule", optim.UPDATE_RULES)
def test_bad_arguments_raise_clear_errors(rule):
    update = getattr(optim, rule)
    w = np.zeros((2, 3))
    with pytest.raises(ValueError, match=rf"{rule}: dw must have the shape of w \(2, 3\)"):
        update(w, np.zeros((3, 2)))
    with pytest.raises(TypeError, match=rf"{rule}: .*share one float dtype"):
        update(w, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match=rf"{rule}: config must be a dict"):
        update(w, np.zeros((2, 3)), config=[("learning_rate", 1.0)])
    with pytest.raises(TypeError, match=rf"{rule}: config\['learning_rate'\] must be a real number"):
        update(w, np.zeros((2, 3)), config={"learning_rate": "fast"})


@pytest.mark.parametrize(
    "rule, key, value, message",
    [
        ("adam", "beta1", 1.0, r"must be < 1.0, got 1.0"),
        ("adam", "beta2", 1.0, r"must be < 1.0, got 1.0"),
        ("adam", "beta1", 1.5, r"must be < 1.0, got 1.5"),
        ("adam", "beta2", -0.1, r"must be >= 0.0, got -0.1"),
        ("rmsprop", "decay_rate", 2.0, r"must be <= 1.0, got 2.0"),
        ("sgd_momentum", "momentum", -0.5, r"must be >= 0.0, got -0.5"),
        ("sgd", "learning_rate", -1e-3, r"must be >= 0.0, got -0.001"),
        ("adagrad", "epsilon", -1e-8, r"must be >= 0.0, got -1e-08"),
    ],
)
def test_hyperparameters_outside_their_range_are_refused(rule, key, value, message):
    """beta1 = 1 or beta2 = 1 (1 - beta**t = 0) and decay_rate = 2 once gave NaN weights without a word."""
    with pytest.raises(ValueError, match=rf"{rule}: config\['{key}'\] " + message):
        getattr(optim, rule)(np.ones(3), np.ones(3), {key: value})


def test_state_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"adam: config\['m'\] must be an array of w's shape \(2,\)"):
        optim.adam(np.zeros(2), np.zeros(2), {"m": np.zeros(3)})
    with pytest.raises(TypeError, match=r"sgd_momentum: config\['velocity'\] has dtype float32"):
        optim.sgd_momentum(np.zeros(2), np.zeros(2), {"velocity": np.zeros(2, np.float32)})


@pytest.mark.parametrize("rule, keys", [("sgd_momentum", ["velocity"]), ("nesterov", ["velocity"]),
                                        ("adagrad", ["cache"]), ("rmsprop", ["cache"]), ("adam", ["m", "v"])])
def test_existing_state_is_used_without_allocating_a_fresh_default(rule, keys, monkeypatch):
    """The rule's state defaults to zeros only when missing: a given state is not shadowed by zeros made anyway
    (every step of a training loop would otherwise allocate and zero arrays of every weight's size)."""
    w, dw, state = notebook_inputs()
    config = {key: state.copy() for key in keys}
    expected, _ = getattr(optim, rule)(w.copy(), dw, {key: state.copy() for key in keys})

    def no_zeros(*args, **kwargs):
        raise AssertionError("zeros_like called although the state exists")

    monkeypatch.setattr(optim.np, "zeros_like", no_zeros)
    next_w, config = getattr(optim, rule)(w.copy(), dw, config)
    np.testing.assert_array_equal(next_w, expected)
    monkeypatch.undo()
    fresh_w, fresh = getattr(optim, rule)(w.copy(), dw, {})
    assert all(np.array_equal(fresh[key].shape, w.shape) for key in keys)


@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("rule", optim.UPDATE_RULES)
def test_a_0d_parameter_stays_an_array_step_after_step(rule, backend):
    """NumPy arithmetic on 0-d arrays gives scalars: next_w and the state came back as np.float64, which the next
    call refused as state ("config['velocity'] must be an array of w's shape ()")."""
    import fastnn

    update = getattr(optim, rule)
    w, config = np.array(1.0), None
    with fastnn.options(backend=backend):
        for _ in range(3):
            w, config = update(w, np.array(0.5), config)
            assert isinstance(w, np.ndarray) and w.shape == () and w.dtype == np.float64
            for key, value in config.items():
                if key in ("velocity", "cache", "m", "v"):
                    assert isinstance(value, np.ndarray) and value.shape == ()
    assert w < 1.0


@pytest.mark.parametrize("rule, config", [
    ("adam", {"beta1": 1.0}),
    ("adam", {"t": -1}),
    ("adam", {"m": np.zeros(3, np.float32)}),
    ("rmsprop", {"epsilon": -1.0}),
    ("sgd_momentum", {"velocity": np.zeros(2)}),
    ("sgd_momentum", {"learning_rate": "1e-3"}),  # momentum and velocity went in before the rate was checked
])
def test_a_refused_call_leaves_config_as_it_was(rule, config):
    """The defaults and zero state went into config before a hyperparameter was checked, so a refused call left
    the caller's dict holding learning_rate, m, v and t = 0 besides the bad entry."""
    before = dict(config)
    with pytest.raises((ValueError, TypeError), match=rule):
        getattr(optim, rule)(np.ones(3), np.ones(3), config)
    assert config.keys() == before.keys() and all(config[k] is before[k] for k in before)


@pytest.mark.parametrize("backend", ["reference", "jit"])
@pytest.mark.parametrize("rule", ["sgd_momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_big_endian_state_counts_as_its_numbers_as_a_big_endian_w_does(rule, backend):
    rng = np.random.default_rng(3)
    w, dw = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    with fastnn.options(backend=backend):
        _, config = getattr(optim, rule)(w.copy(), dw, {})
        state = {k: v.astype(">f4") if isinstance(v, np.ndarray) else v for k, v in config.items()}
        expected, _ = getattr(optim, rule)(w.copy(), dw, dict(config))
        got, _ = getattr(optim, rule)(w.astype(">f4"), dw.astype(">f4"), state)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", ["auto", "jit", "reference", "verify"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rmsprop_and_adam_state_equal_the_starters_bit_for_bit(backend, dtype):
    """The starter squares first ((1 - beta2) * dw**2); fastnn multiplied (1 - beta2) * dw, then by dw: the state
    came out a last bit apart (float32 parameters 3e-8 apart after a Solver run)."""
    rng = np.random.default_rng(0)
    w, dw = rng.standard_normal((7, 9)).astype(dtype), rng.standard_normal((7, 9)).astype(dtype)
    with fastnn.options(backend=backend):
        _, config = optim.rmsprop(w, dw, {"cache": np.full_like(w, 0.5)})
        np.testing.assert_array_equal(config["cache"], 0.99 * np.full_like(w, 0.5) + (1 - 0.99) * dw**2)
        _, config = optim.adam(w, dw, {"v": np.full_like(w, 0.5), "t": 3})
        np.testing.assert_array_equal(config["v"], 0.999 * np.full_like(w, 0.5) + (1 - 0.999) * dw**2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_verify_catches_an_adam_state_that_was_never_stored(dtype, monkeypatch):
    """verify held m and v (1e-9 where w is 1e-2) to the scale of next_w: a kernel that left v at 0 passed."""
    compiled = optim._adam_kernel

    def v_never_stored(w, dw, m, v, *rest):
        next_w, m, _ = compiled(w, dw, m, v, *rest)
        return next_w, m, np.zeros_like(next_w)

    monkeypatch.setattr(optim, "_adam_kernel", v_never_stored)
    rng = np.random.default_rng(1)
    w, dw = (1e-2 * rng.standard_normal((50, 20))).astype(dtype), (1e-3 * rng.standard_normal((50, 20))).astype(dtype)
    # output 3 is v (next_w, step, m, v)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match=r"adam: .* output 3"):
        optim.adam(w, dw, {})


def test_adam_without_the_compiled_kernels_falls_back_as_the_layers_do(monkeypatch):
    """numba missing or broken: adam raised the bare import error on every backend but 'reference', where a layer
    under 'auto' falls back with a warning and under 'jit' names the reason."""
    from fastnn import _dispatch

    monkeypatch.setattr(_dispatch, "_compiled", lambda: None)
    monkeypatch.setattr(_dispatch, "_compiled_failed", ImportError("import of numba halted"))
    monkeypatch.setattr(_dispatch, "_warned", False)
    w, dw = np.linspace(-1, 1, 6), np.linspace(1, -1, 6)
    with fastnn.options(backend="reference"):
        expected, _ = optim.adam(w, dw, {})
    with fastnn.options(backend="auto"), pytest.warns(UserWarning, match="compiled kernels unavailable"):
        np.testing.assert_array_equal(optim.adam(w, dw, {})[0], expected)
    with fastnn.options(backend="jit"), pytest.raises(NotImplementedError, match=r"adam: .*import of numba halted"):
        optim.adam(w, dw, {})


def test_verify_catches_an_adam_step_a_little_too_long_and_jit_without_kernels_leaves_config_alone(monkeypatch):
    """next_w is of w's scale: a float32 step 5% too long was 5e-5 of it, within 1e-4. And 'jit' without the
    compiled kernels refused adam only after filling the caller's config with its defaults and zero state."""
    compiled = optim._adam_kernel

    def long_step(w, dw, m, v, *rest):
        next_w, m, v = compiled(w, dw, m, v, *rest)
        return w + 1.05 * (next_w - w), m, v

    monkeypatch.setattr(optim, "_adam_kernel", long_step)
    rng = np.random.default_rng(2)
    w, dw = rng.standard_normal((50, 20)).astype(np.float32), rng.standard_normal((50, 20)).astype(np.float32)
    # output 1 is the step (next_w, step, m, v)
    with fastnn.options(backend="verify"), pytest.raises(fastnn.VerificationError, match=r"adam: .* output 1"):
        optim.adam(w, dw, {})

    from fastnn import _dispatch

    monkeypatch.setattr(_dispatch, "_compiled", lambda: None)
    monkeypatch.setattr(_dispatch, "_compiled_failed", ImportError("import of numba halted"))
    config = {"learning_rate": 1e-3}
    with fastnn.options(backend="jit"), pytest.raises(NotImplementedError):
        optim.adam(w, dw, config)
    assert config == {"learning_rate": 1e-3}
