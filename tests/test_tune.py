"""fastnn.tune: the search space, trials on dask LocalClusters, coarse to fine, results and `fastnn tune`.

Most searches train a tiny softmax classifier defined here (pure NumPy, nothing to compile) on a digits subset
for one epoch; the test module is pickled by value so the dask workers need not import it.
"""

import json
import math
import sys
import threading
import warnings

import cloudpickle
import numpy as np
import pytest

import fastnn
from fastnn.checkpoint import load_checkpoint
from fastnn.data_utils import load_digits
from fastnn.tune import (
    SearchResult,
    Trial,
    build_fc_net,
    choice,
    coarse_to_fine,
    connect,
    loguniform,
    narrow,
    randint,
    random_search,
    run_trial,
    trial_seed,
    uniform,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SOLVER_KWARGS = {"num_epochs": 1, "batch_size": 50, "update_rule": "sgd"}
SPACE = {"learning_rate": loguniform(1e-3, 1.0), "weight_scale": loguniform(1e-4, 1e-1), "keep": uniform(0.5, 1.0)}


@pytest.fixture(scope="module")
def digits():
    data = load_digits(seed=0)
    return {"X_train": data["X_train"][:200], "y_train": data["y_train"][:200],
            "X_val": data["X_val"][:100], "y_val": data["y_val"][:100]}


@pytest.fixture(scope="module")
def one_worker():
    with connect(n_workers=1) as client:  # the LocalCluster random_search starts when given no client
        yield client


class Softmax:
    """A linear softmax classifier: the smallest model with the Solver's interface."""

    def __init__(self, input_dim, num_classes, weight_scale, stable=True):
        self.stable = stable  # False skips the max shift, so large scores overflow exp as the course warns
        self.params = {"W": weight_scale * np.random.randn(input_dim, num_classes), "b": np.zeros(num_classes)}

    def loss(self, X, y=None):
        X = X.reshape(len(X), -1)
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True) if self.stable else scores
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        dscores = np.exp(log_probs)
        dscores[np.arange(len(y)), y] -= 1
        dscores /= len(y)
        return -log_probs[np.arange(len(y)), y].mean(), {"W": X.T @ dscores, "b": dscores.sum(axis=0)}


def build_softmax(config, data):
    return Softmax(int(np.prod(data["X_train"].shape[1:])), 10, config["weight_scale"])


def build_unstable_softmax(config, data):
    return Softmax(int(np.prod(data["X_train"].shape[1:])), 10, config["weight_scale"], stable=False)


def build_unless_bad(config, data):
    if config["kind"] == "bad":
        raise RuntimeError("this builder refuses kind='bad'")
    return build_softmax(config, data)


def comparable(result):
    return [(t.index, t.config, t.seed, t.status, t.val_acc, t.loss_history, t.val_acc_history) for t in result.trials]


# ----------------------------------------------------------------------------------------------------------
# The search space


@pytest.mark.parametrize("param, low, high", [(loguniform(1e-5, 1e-1), 1e-5, 1e-1), (uniform(-2, 3), -2, 3),
                                              (randint(4, 9), 4, 8)])
def test_samplers_stay_in_their_ranges(param, low, high):
    rng = np.random.default_rng(0)
    values = np.array([param.sample(rng) for _ in range(2000)])
    assert values.min() >= low and values.max() <= high
    assert values.max() - values.min() > 0.9 * (high - low)  # the whole range is reached
    if isinstance(param.sample(rng), int):
        assert set(values.tolist()) == set(range(low, high + 1))


def test_loguniform_is_uniform_in_log_space():
    rng = np.random.default_rng(1)
    logs = np.log10([loguniform(1e-6, 1e-2).sample(rng) for _ in range(4000)])
    assert abs(np.median(logs) - (-4)) < 0.15
    assert abs(np.mean(logs < -5) - 0.25) < 0.03


def test_choice_draws_every_option_as_plain_python():
    rng = np.random.default_rng(2)
    param = choice([np.int64(32), "adam", [64, 64], None])
    drawn = [param.sample(rng) for _ in range(200)]
    assert {json.dumps(v) for v in drawn} == {"32", '"adam"', "[64, 64]", "null"}
    assert all(type(v) is int for v in drawn if isinstance(v, (int, np.integer)))


@pytest.mark.parametrize("make, message", [
    (lambda: loguniform(0, 1), "0 < low < high"),
    (lambda: loguniform(1e-2, 1e-3), "0 < low < high"),
    (lambda: uniform(1.0, 1.0), "low < high"),
    (lambda: uniform(0, float("nan")), "finite"),
    (lambda: uniform(-1e308, 1e308), r"uniform: the range's width high - low must be finite"),  # once OverflowError
    (lambda: randint(5, 5), "low < high"),
    (lambda: choice([]), "must not be empty"),
])
def test_space_rejects_bad_ranges(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make", [lambda: randint(1.5, 4), lambda: loguniform("a", 1), lambda: choice("abc"),
                                  lambda: choice([object()])])
def test_space_rejects_bad_types(make):
    with pytest.raises(TypeError):
        make()


def test_random_search_checks_its_arguments_before_starting_a_cluster(digits):
    with pytest.raises(ValueError, match="random_search: n_trials must be >= 1"):
        random_search(build_softmax, digits, SPACE, 0)
    with pytest.raises(TypeError, match=r"random_search: space\['lr'\] must be made by"):
        random_search(build_softmax, digits, {"lr": 1e-3}, 2)
    with pytest.raises(ValueError, match="random_search: solver_kwargs may not set \\['seed'\\]"):
        random_search(build_softmax, digits, SPACE, 2, solver_kwargs={"seed": 1})
    with pytest.raises(ValueError, match="random_search: data is missing \\['X_val', 'y_val'\\]"):
        random_search(build_softmax, {"X_train": 1, "y_train": 1}, SPACE, 2)
    with pytest.raises(TypeError, match="random_search: build_model must be a function"):
        random_search("build_softmax", digits, SPACE, 2)
    lock = threading.Lock()
    with pytest.raises(TypeError, match="random_search: build_model .* cannot be pickled for the dask workers"):
        random_search(lambda config, data: lock, digits, SPACE, 2)


# ----------------------------------------------------------------------------------------------------------
# Trials


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_trial_that_diverges_is_recorded_with_its_error(digits):
    config = {"learning_rate": 1e4, "weight_scale": 1e-2}
    trial, params = run_trial(build_unstable_softmax, digits, config, 0, 0, 7, SOLVER_KWARGS,
                              {"backend": "reference", "parallel": True})
    assert trial.status == "failed" and params is None
    assert trial.error.startswith("FloatingPointError: Solver: the loss is")
    assert not np.isfinite(trial.loss_history[-1])


def test_trial_leaves_the_callers_global_rng_alone(digits):
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    trial, best = run_trial(build_softmax, digits, {"learning_rate": 0.1, "weight_scale": 1e-2}, 0, 0, 7,
                            SOLVER_KWARGS, {"backend": "reference", "parallel": True})
    assert trial.ok and set(best["params"]) == {"W", "b"}
    assert best["model_state"] == {"normalization": None, "bn_params": []}
    assert np.random.rand() == expected


def test_search_of_four_trials_on_two_workers_matches_one_worker(digits, one_worker):
    two = random_search(build_softmax, digits, SPACE, 4, solver_kwargs=SOLVER_KWARGS, seed=11, n_workers=2)
    one = random_search(build_softmax, digits, SPACE, 4, solver_kwargs=SOLVER_KWARGS, seed=11, client=one_worker)
    assert comparable(two) == comparable(one)
    assert [t.status for t in two.trials] == ["ok"] * 4
    accs = [t.val_acc for t in two.trials]
    assert accs == sorted(accs, reverse=True) and accs[0] > 0.2  # better than chance after one epoch
    assert sorted(t.index for t in two.trials) == [0, 1, 2, 3]
    assert [t.seed for t in sorted(two.trials, key=lambda t: t.index)] == [trial_seed(11, i) for i in range(4)]
    assert len(two.trials[0].loss_history) == 4 and len(two.trials[0].val_acc_history) == 2
    for name, param in SPACE.items():
        assert all(param.low <= t.config[name] <= param.high for t in two.trials)
    assert two.best_params["W"].shape == (64, 10)
    np.testing.assert_array_equal(two.best_params["W"], one.best_params["W"])

    other_seed = random_search(build_softmax, digits, SPACE, 4, solver_kwargs=SOLVER_KWARGS, seed=12,
                               client=one_worker)
    assert comparable(other_seed) != comparable(one)


def test_failing_trials_are_recorded_and_the_search_goes_on(digits, one_worker):
    space = dict(SPACE, kind=choice(["good", "bad"]))
    result = random_search(build_unless_bad, digits, space, 6, solver_kwargs=SOLVER_KWARGS, seed=3,
                           client=one_worker)
    kinds = [t.config["kind"] for t in result.trials]
    assert "good" in kinds and "bad" in kinds  # the seed draws both
    for t in result.trials:
        assert t.ok == (t.config["kind"] == "good")
        if not t.ok:
            assert t.error == "RuntimeError: this builder refuses kind='bad'" and t.val_acc is None
    assert [t.ok for t in result.trials] == sorted((t.ok for t in result.trials), reverse=True)  # failed last
    assert result.best.ok and result.best_params is not None
    assert "failed: RuntimeError" in result.table()


def test_n_workers_is_only_for_the_local_cluster(digits, one_worker):
    with pytest.raises(ValueError, match="random_search: n_workers applies only to the LocalCluster"):
        random_search(build_softmax, digits, SPACE, 2, client=one_worker, n_workers=2)
    with pytest.raises(TypeError, match="random_search: client must be a distributed.Client or a scheduler address"):
        random_search(build_softmax, digits, SPACE, 2, client=4)


# ----------------------------------------------------------------------------------------------------------
# Coarse to fine


def _trial(index, config, val_acc, status="ok"):
    return Trial(index=index, round=0, config=config, seed=index, status=status, val_acc=val_acc)


def test_narrow_takes_the_top_k_range_in_log_space_widened_and_clipped():
    space = {"lr": loguniform(1e-6, 1e-1), "keep": uniform(0.0, 1.0), "h": randint(10, 100), "rule": choice(["a", "b"])}
    trials = [_trial(0, {"lr": 1e-3, "keep": 0.5, "h": 40, "rule": "a"}, 0.9),
              _trial(1, {"lr": 1e-5, "keep": 0.6, "h": 50, "rule": "b"}, 0.8),
              _trial(2, {"lr": 1e-1, "keep": 1.0, "h": 90, "rule": "a"}, 0.3),
              _trial(3, {"lr": 1e-6, "keep": 0.0, "h": 10, "rule": "a"}, 0.99, status="failed")]
    fine = narrow(space, trials, top_k=2, widen=0.5)
    # log10 range [-5, -3] widened by half its width on each side: [-6, -2]
    assert math.isclose(fine["lr"].low, 1e-6) and math.isclose(fine["lr"].high, 1e-2)
    assert math.isclose(fine["keep"].low, 0.45) and math.isclose(fine["keep"].high, 0.65)
    assert (fine["h"].low, fine["h"].high) == (34, 57)  # [40, 51) padded by 5.5, rounded outwards
    assert fine["rule"] == space["rule"]
    one = narrow(space, trials, top_k=1, widen=0.1)  # a single value: padded by a tenth of the original range
    assert math.isclose(math.log10(one["lr"].low), -3.5) and math.isclose(math.log10(one["lr"].high), -2.5)
    clipped = narrow({"lr": loguniform(1e-3, 1e-1)}, [_trial(0, {"lr": 1e-1}, 0.5)], top_k=1, widen=0.25)
    assert math.isclose(clipped["lr"].high, 1e-1) and math.isclose(math.log10(clipped["lr"].low), -1.5)
    # clipped to the original bounds exactly: exp(log(0.1)) is 0.10000000000000002, an ulp outside
    for low, high in ((1e-5, 0.1), (1e-4, 0.3), (3e-7, 0.7)):
        edge = narrow({"r": loguniform(low, high)}, [_trial(0, {"r": high}, 0.5), _trial(1, {"r": low}, 0.4)],
                      top_k=2, widen=0.5)["r"]
        assert (edge.low, edge.high) == (low, high)


def test_narrow_around_equal_values_is_never_an_empty_range():
    """Top trials with equal values (zero width) are padded by widen times the original range; a widen too small
    to move them in floating point once gave an empty range ('the range needs 0 < low < high')."""
    space = {"lr": loguniform(1e-6, 1e-1), "keep": uniform(0.0, 1.0), "h": randint(10, 100)}
    trials = [_trial(0, {"lr": 1e-3, "keep": 0.5, "h": 40}, 0.9), _trial(1, {"lr": 1e-3, "keep": 0.5, "h": 40}, 0.8)]
    fine = narrow(space, trials, top_k=2, widen=0.1)
    assert math.isclose(math.log10(fine["lr"].low), -3.5) and math.isclose(math.log10(fine["lr"].high), -2.5)
    assert math.isclose(fine["keep"].low, 0.4) and math.isclose(fine["keep"].high, 0.6)
    tiny = narrow(space, trials, top_k=2, widen=1e-300)
    assert tiny["keep"] == space["keep"] and (tiny["h"].low, tiny["h"].high) == (40, 41)
    assert math.isclose(tiny["lr"].low, 1e-6) and math.isclose(tiny["lr"].high, 1e-1)


@pytest.mark.parametrize("widen", [-0.5, float("inf")])
def test_coarse_to_fine_checks_widen_before_any_trial_runs(digits, monkeypatch, widen):
    import fastnn.tune.search as search

    def no_cluster(*args, **kwargs):
        raise AssertionError("the search started")

    monkeypatch.setattr(search, "connect", no_cluster)
    with pytest.raises(ValueError, match="coarse_to_fine: widen must be (>= 0|finite)"):
        coarse_to_fine(build_softmax, digits, SPACE, n_coarse=2, n_fine=2, top_k=1, widen=widen)
    with pytest.raises(ValueError, match="narrow: widen must be (>= 0|finite)"):
        narrow(SPACE, [_trial(0, {"learning_rate": 1e-2, "weight_scale": 1e-3, "keep": 0.7}, 0.9)], widen=widen)


def test_widen_0_around_one_value_is_the_whole_range_and_around_several_their_span():
    """widen=0 around a single top value once ran the whole coarse round, then failed in narrow (an empty range)
    and lost it."""
    one = narrow(SPACE, [_trial(0, {"learning_rate": 1e-2, "weight_scale": 1e-3, "keep": 0.7}, 0.9)], widen=0)
    assert math.isclose(one["learning_rate"].low, 1e-3) and math.isclose(one["learning_rate"].high, 1.0)
    assert (one["keep"].low, one["keep"].high) == (0.5, 1.0)
    two = narrow(SPACE, [_trial(0, {"learning_rate": 1e-2, "weight_scale": 1e-3, "keep": 0.7}, 0.9),
                         _trial(1, {"learning_rate": 1e-3, "weight_scale": 1e-3, "keep": 0.6}, 0.8)],
                 top_k=2, widen=0)
    assert math.isclose(two["learning_rate"].low, 1e-3) and math.isclose(two["learning_rate"].high, 1e-2)
    assert math.isclose(two["keep"].low, 0.6) and math.isclose(two["keep"].high, 0.7)


def test_narrow_needs_a_successful_trial():
    with pytest.raises(ValueError, match="narrow: none of the 1 trials succeeded"):
        narrow(SPACE, [_trial(0, {}, None, status="failed")])


def test_coarse_to_fine_searches_a_narrower_space(digits, one_worker):
    result = coarse_to_fine(build_softmax, digits, SPACE, n_coarse=4, n_fine=3, top_k=2, solver_kwargs=SOLVER_KWARGS,
                            seed=5, client=one_worker)
    coarse_space, fine_space = result.spaces
    for name in ("learning_rate", "weight_scale"):
        c, f = coarse_space[name], fine_space[name]
        assert c.low <= f.low < f.high <= c.high
        assert math.log(f.high / f.low) < math.log(c.high / c.low)
    assert sorted(t.index for t in result.trials) == list(range(7))
    fine_trials = [t for t in result.trials if t.round == 1]
    assert sorted(t.index for t in fine_trials) == [4, 5, 6]
    for t in fine_trials:
        assert all(fine_space[n].low <= t.config[n] <= fine_space[n].high for n in SPACE)
    best_coarse = [t for t in result.trials if t.round == 0][:2]
    rebuilt = narrow(SPACE, best_coarse, top_k=2)
    assert rebuilt == fine_space


def test_coarse_to_fine_stops_after_a_coarse_round_that_failed(digits, one_worker):
    space = {"weight_scale": loguniform(1e-3, 1e-2), "kind": choice(["bad"])}
    with pytest.warns(RuntimeWarning, match="coarse_to_fine: every coarse trial failed, so there is no fine round"):
        result = coarse_to_fine(build_unless_bad, digits, space, n_coarse=2, n_fine=2, client=one_worker)
    assert len(result.spaces) == 1 and [t.status for t in result.trials] == ["failed", "failed"]
    assert result.best is None and result.best_params is None


# ----------------------------------------------------------------------------------------------------------
# Results


@pytest.fixture
def finished():
    trials = [_trial(1, {"lr": 3e-3, "h": 64}, 0.75), _trial(0, {"lr": 1e-4, "h": 32}, 0.5),
              _trial(2, {"lr": 2.0, "h": 64}, None, status="failed")]
    trials[0].loss_history, trials[0].final_loss = [2.3, 1.1], 1.1
    trials[2].error = "FloatingPointError: the loss is nan"
    params = {"W1": np.arange(6.0).reshape(2, 3), "b1": np.zeros(3)}
    return SearchResult(trials, [{"lr": loguniform(1e-5, 10.0), "h": choice([32, 64])}], seed=4, best_params=params)


def test_result_table_lists_trials_best_first(finished):
    lines = finished.table().splitlines()
    assert lines[0].split() == ["rank", "trial", "round", "val_acc", "final_loss", "lr", "h", "status"]
    assert lines[1].split()[:7] == ["1", "1", "coarse", "0.7500", "1.1", "3.00e-03", "64"]
    assert lines[3].split()[1] == "2" and "failed: FloatingPointError" in lines[3]
    assert lines[-1] == "2 of 3 trials succeeded (seed 4)"
    assert len(finished.table(top=1).splitlines()) == 3


def test_result_files(finished, tmp_path):
    pytest.importorskip("matplotlib")
    written = finished.save(tmp_path / "out")
    assert "skipped" not in written
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [t["index"] for t in saved["trials"]] == [1, 0, 2]
    assert saved["spaces"][0]["lr"] == {"type": "loguniform", "low": 1e-5, "high": 10.0}
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert rows[0] == "rank,index,round,seed,status,val_acc,final_loss,seconds,lr,h,error"
    assert rows[3].endswith("FloatingPointError: the loss is nan")
    assert (tmp_path / "out" / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(tmp_path / "out" / "best.npz")
    np.testing.assert_array_equal(best["params"]["W1"], finished.best_params["W1"])
    assert best["config"] == {"lr": 3e-3, "h": 64} and best["val_acc"] == 0.75 and best["trial"] == 1


def test_results_json_is_strict_json_when_a_trial_diverged(finished, tmp_path):
    """A diverged trial's NaN loss was written as a bare NaN, which strict JSON parsers refuse."""
    finished.trials[1].loss_history, finished.trials[1].final_loss = [2.3, float("inf"), float("nan")], float("nan")

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    saved = json.loads(finished.to_json(tmp_path / "results.json") and (tmp_path / "results.json").read_text(),
                       parse_constant=refuse)
    assert saved["trials"][1]["loss_history"] == [2.3, None, None] and saved["trials"][1]["final_loss"] is None
    assert saved["trials"][0]["loss_history"] == [2.3, 1.1]
    assert np.isnan(finished.trials[1].final_loss)  # the result itself keeps its floats


def test_result_of_failed_search_saves_no_checkpoint(tmp_path):
    result = SearchResult([_trial(0, {"h": 3}, None, status="failed")], [{"h": choice([3])}], seed=0)
    with pytest.raises(ValueError, match="save_best: none of the 1 trials succeeded"):
        result.save_best(tmp_path / "best.npz")
    written = result.save(tmp_path)
    assert "best" not in written and "scatter" not in written and len(written["skipped"]) == 2


# ----------------------------------------------------------------------------------------------------------
# `fastnn tune` with the default builder (FullyConnectedNet) on the embedded digits


def test_fastnn_tune_command(tmp_path, capsys):
    from fastnn.cli import main

    with fastnn.options(backend="reference"):  # the trials inherit it: nothing to compile in the workers
        status = main(["tune", "--trials", "2", "--fine-trials", "1", "--top-k", "1", "--epochs", "1",
                       "--workers", "1", "--seed", "2", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    header = ["rank", "trial", "round", "val_acc", "final_loss", "learning_rate", "reg", "weight_scale",
              "hidden_size", "status"]
    assert header in [line.split() for line in out.splitlines()]
    assert "3 of 3 trials succeeded (seed 2)" in out
    assert f"wrote {tmp_path / 'best.npz'}" in out
    best = load_checkpoint(tmp_path / "best.npz")
    assert set(best["params"]) == {"W1", "b1", "W2", "b2"} and best["val_acc"] > 0.3
    with pytest.raises(SystemExit, match="--workers starts a LocalCluster"):
        main(["tune", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])


def test_fastnn_tune_never_writes_over_an_earlier_search(tmp_path, monkeypatch):
    """A second search into one --out replaced the first's results.json, results.csv, scatter.png and
    best.npz; a bad --out was found only when the results were saved, after all the trials."""
    from fastnn import tune as tune_module
    from fastnn.cli import main

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"fastnn tune: --out '.*earlier' holds an earlier run \(results.json\)"):
        main(["tune", "--out", str(earlier), "--workers", "1"])
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    with pytest.raises(SystemExit, match=r"fastnn tune: --out '.*a_file' is a file, not a directory"):
        main(["tune", "--out", str(a_file), "--workers", "1"])

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_module, "coarse_to_fine", interrupted)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        main(["tune", "--workers", "1", "--quiet"])
    assert not (tmp_path / "fastnn-tune").exists()  # the claim of a search that wrote nothing is released
    assert (earlier / "results.json").read_text() == "{}" and a_file.read_text() == "mine"


def test_a_trial_gives_a_built_in_rule_only_the_optim_keys_it_reads():
    """A search over update_rule and momentum gave adam's trials a momentum, which the Solver warns of."""
    from fastnn.tune import solver_settings

    config = {"update_rule": "adam", "learning_rate": 1e-3, "momentum": 0.9, "beta1": 0.8}
    settings = solver_settings({"optim_config": {"epsilon": 1e-7}}, config)
    assert settings["optim_config"] == {"epsilon": 1e-7, "learning_rate": 1e-3, "beta1": 0.8}
    settings = solver_settings({}, {**config, "update_rule": "sgd_momentum"})
    assert settings["optim_config"] == {"learning_rate": 1e-3, "momentum": 0.9}
    from fastnn import optim

    assert solver_settings({"update_rule": optim.adam}, {"momentum": 0.9})["optim_config"] == {}  # by function
    rule = lambda w, dw, config: (w, config)  # noqa: E731 (a rule of the user's own takes every key)
    assert solver_settings({"update_rule": rule}, {"momentum": 0.9})["optim_config"] == {"momentum": 0.9}


def test_a_searched_optim_key_no_rule_reads_is_warned_of_once():
    """Trials leave momentum out of adam's optim_config (solver_settings); the search says so once."""
    import warnings

    from fastnn import optim
    from fastnn.tune import choice, loguniform
    from fastnn.tune.search import _warn_of_unread_optim_keys

    space = {"learning_rate": loguniform(1e-4, 1e-2), "momentum": loguniform(0.5, 0.99)}
    with pytest.warns(UserWarning, match=r"random_search: no update rule of this search \(adam\) reads "
                                         r"\['momentum'\]"):
        _warn_of_unread_optim_keys("random_search", space, {"update_rule": "adam"})
    with pytest.warns(UserWarning, match=r"\(sgd\) reads \['momentum'\]"):
        _warn_of_unread_optim_keys("random_search", space, {})  # the Solver's default rule
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_of_unread_optim_keys("random_search", {**space, "update_rule": choice(["adam", "sgd_momentum"])}, {})
        _warn_of_unread_optim_keys("random_search", space, {"update_rule": optim.sgd_momentum})
        _warn_of_unread_optim_keys("random_search", space, {"update_rule": lambda w, dw, config: (w, config)})


# ----------------------------------------------------------------------------------------------------------
# A fuzz of the library's arguments and of trials that take their worker with them


def build_exiting(config, data):
    if config["kind"] == "bad":
        sys.exit(3)
    return build_softmax(config, data)


def build_crashing(config, data):
    import os

    if config["kind"] == "bad":
        os._exit(1)  # the worker process dies, as on a segfault or the kernel's out-of-memory kill
    return build_softmax(config, data)


def test_a_trial_calling_sys_exit_fails_alone(digits, one_worker):
    space = dict(SPACE, kind=choice(["good", "bad"]))
    result = random_search(build_exiting, digits, space, 4, solver_kwargs=SOLVER_KWARGS, seed=3, client=one_worker)
    assert {t.config["kind"] for t in result.trials} == {"good", "bad"}
    for t in result.trials:
        assert t.ok == (t.config["kind"] == "good") and (t.ok or t.error == "SystemExit: 3")


@pytest.mark.parametrize("n_trials, n_workers", [(6, 2), (2, 1)])
def test_a_trial_that_kills_its_worker_fails_alone_and_the_others_finish(digits, n_trials, n_workers):
    """Every trial failed once (cancelled, 'already forgotten'): the crashes killed every worker holding the
    scattered data; a healthy trial queued on a worker behind the crashing one was blamed with KilledWorker; later a
    healthy trial whose data, or finished result, went with the workers crashing trials killed was given up after 3
    losses, and dask closed for good a nanny caught restarting its worker, leaving no worker at all (seed 5 draws
    bad, then good)."""
    space = dict(SPACE, kind=choice(["good", "bad"]))
    result = random_search(build_crashing, digits, space, n_trials, solver_kwargs=SOLVER_KWARGS, seed=5,
                           n_workers=n_workers)
    by_index = sorted(result.trials, key=lambda t: t.index)
    assert [t.config["kind"] for t in by_index[:2]] == ["bad", "good"]
    for t in result.trials:
        assert t.ok == (t.config["kind"] == "good"), (t.index, t.error)
        if not t.ok:
            assert t.error.startswith(("KilledWorker: the worker process running it died",
                                       "FutureCancelledError: the worker process running it died")), t.error


def test_a_task_that_raises_on_its_worker_is_failed_at_once_not_run_again(digits, monkeypatch):
    """An error raised by the task itself (the builder not unpickled on a worker, say) was run 4 times and
    reported as a task lost 4 times with its worker."""
    import distributed

    from fastnn.tune import search

    def unpicklable(pickled_builder, *args):
        raise ModuleNotFoundError("No module named 'the_callers_module'")

    monkeypatch.setattr(search, "_run_pickled_trial", unpicklable)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        result = random_search(build_softmax, digits, SPACE, 2, solver_kwargs=SOLVER_KWARGS, seed=3, client=client)
    assert [t.error for t in result.trials] == ["ModuleNotFoundError: No module named 'the_callers_module'"] * 2


@pytest.mark.parametrize("call, error, message", [
    (lambda d: random_search(build_softmax, d, SPACE, 2, solver_kwargs={"num_epoch": 1}), ValueError,
     r"random_search: solver_kwargs has keys the Solver does not take: \['num_epoch'\]"),
    (lambda d: random_search(build_softmax, d, SPACE, 2, solver_kwargs={"optim_config": None}), TypeError,
     r"random_search: solver_kwargs\['optim_config'\] must be a dict, got NoneType"),
    (lambda d: random_search(build_softmax, d, SPACE, 10**9), ValueError, r"random_search: n_trials must be <= 100000"),
    (lambda d: coarse_to_fine(build_softmax, d, SPACE, 0, 1), ValueError, r"coarse_to_fine: n_coarse must be >= 1"),
    (lambda d: coarse_to_fine(build_softmax, d, SPACE, 2, 10**6), ValueError, r"coarse_to_fine: n_fine must be <="),
    (lambda d: randint(1, 2**64), ValueError, r"randint: high must be <= 9223372036854775808"),
    (lambda d: randint(-2**63 - 1, 0), ValueError, r"randint: low must be >= -9223372036854775808"),
])
def test_search_arguments_are_refused_before_any_trial_runs(digits, call, error, message):
    with pytest.raises(error, match=message):
        call(digits)


def test_a_numpy_integer_seed_is_saved_as_json(digits, one_worker, tmp_path):
    """np.int64(3) ran the search, then saving it failed: int64 is not JSON serializable."""
    result = random_search(build_softmax, digits, SPACE, 1, solver_kwargs=SOLVER_KWARGS, seed=np.int64(3),
                           client=one_worker)
    assert type(result.seed) is int
    result.save(tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["seed"] == 3


def test_saving_over_an_earlier_search_leaves_none_of_its_files(finished, tmp_path):
    """A search with no successful trial saved beside an earlier best.npz left it there, the earlier search's."""
    pytest.importorskip("matplotlib")
    finished.save(tmp_path)
    assert (tmp_path / "best.npz").exists() and (tmp_path / "scatter.png").exists()
    failed = SearchResult([_trial(0, {"h": 3}, None, status="failed")], [{"h": choice([3])}], seed=1)
    written = failed.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]
    assert "best" not in written
    alone = tmp_path / "other"  # a best.npz beside no results.json is no search's: it stays
    alone.mkdir()
    (alone / "best.npz").write_bytes(b"the user's own")
    failed.save(alone)
    assert (alone / "best.npz").read_bytes() == b"the user's own"


@pytest.mark.parametrize("call, error, message", [
    (lambda r, p: r.save(None), TypeError, r"SearchResult.save: directory must be a str or os.PathLike"),
    (lambda r, p: r.save(p / "file"), ValueError, r"SearchResult.save: '.*file' is not a directory"),
    (lambda r, p: r.save(p / "file" / "sub"), ValueError, r"SearchResult.save: '.*sub' is not a directory"),
    (lambda r, p: r.table(top=0), ValueError, r"SearchResult.table: top must be >= 1"),
    (lambda r, p: r.table(top="1"), TypeError, r"SearchResult.table: top must be an integer"),
])
def test_result_methods_name_bad_arguments(finished, tmp_path, call, error, message):
    (tmp_path / "file").write_text("")
    with pytest.raises(error, match=message):
        call(finished, tmp_path)


def test_space_helpers_name_bad_arguments():
    from fastnn.tune import describe_space, sample_configs

    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=r"sample_configs: rng must be a numpy.random.Generator"):
        sample_configs(SPACE, 2, 0)
    with pytest.raises(TypeError, match=r"sample_configs: space\['a'\] must be made by"):
        sample_configs({"a": 3}, 2, rng)
    with pytest.raises(ValueError, match=r"sample_configs: n_trials must be >= 0"):
        sample_configs(SPACE, -3, rng)
    with pytest.raises(TypeError, match=r"describe_space: space must be a dict"):
        describe_space([1])
    with pytest.raises(TypeError, match=r"narrow: trials must be a list of Trials"):
        narrow(SPACE, [1, 2])
    with pytest.raises(ValueError, match=r"narrow: the best trials' configs have no value for \['keep'\]"):
        narrow(SPACE, [_trial(0, {"learning_rate": 0.1, "weight_scale": 0.01}, 0.5)])
    with pytest.raises(ValueError, match=r"trial_seed: search_seed must be >= 0"):
        trial_seed(-1, 0)


@pytest.mark.parametrize("config, error, message", [
    ({"num_layers": -1}, ValueError, r"build_fc_net: config\['num_layers'\] must be >= 0, got -1"),
    ({"num_layers": 2.0}, TypeError, r"build_fc_net: config\['num_layers'\] must be an integer, got 2.0"),
    ({"hidden_size": 0}, ValueError, r"build_fc_net: config\['hidden_size'\] must be >= 1"),
    ({"dtype": "floop"}, TypeError, r"build_fc_net: config\['dtype'\] must be float32 or float64, got 'floop'"),
    (None, TypeError, r"build_fc_net: config must be a dict of hyperparameters, got NoneType"),
])
def test_build_fc_net_names_bad_config_values(digits, config, error, message):
    from fastnn.tune import build_fc_net

    with pytest.raises(error, match=message):
        build_fc_net(config, digits)


def test_build_fc_net_names_data_it_cannot_size_a_net_from(digits):
    from fastnn.tune import build_fc_net

    with pytest.raises(ValueError, match=r"build_fc_net: data must be a dict with X_train, .* missing \['X_train'"):
        build_fc_net({}, {})
    with pytest.raises(ValueError, match=r"build_fc_net: y_train and y_val must hold labels"):
        build_fc_net({}, dict(digits, y_val=digits["y_val"][:0]))


def test_a_client_address_that_accepts_but_never_answers_is_an_error_not_a_hang(digits, monkeypatch):
    """distributed.Client waits for a scheduler's handshake without end: random_search(client=ADDRESS) hung."""
    import socket

    from fastnn.tune import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    silent = socket.create_server(("127.0.0.1", 0))
    accepted = []  # held open, sending nothing
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    try:
        with pytest.raises(ConnectionError, match=rf"random_search: client '{address}' accepted a connection but "
                                                  r"sent nothing in 1 s"):
            random_search(build_softmax, digits, SPACE, 1, solver_kwargs=SOLVER_KWARGS, client=address)
    finally:
        silent.close()
    with pytest.raises(ValueError, match=r"random_search: cannot connect to client 'nonsense' \(ValueError: "):
        random_search(build_softmax, digits, SPACE, 1, solver_kwargs=SOLVER_KWARGS, client="nonsense")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:99999", "127.0.0.1:0"])
def test_an_address_of_no_tcp_port_is_refused_at_once(digits, address):
    """Port 99999 was tried for the whole 10 s connect timeout."""
    with pytest.raises(ConnectionError, match=rf"random_search: client '{address}' names port \d+, which no TCP "
                                              r"port is \(1-65535\)"):
        random_search(build_softmax, digits, SPACE, 1, solver_kwargs=SOLVER_KWARGS, client=address)


def test_build_fc_net_takes_any_mapping(digits):
    """The Solver takes a data Mapping (np.load's NpzFile): build_fc_net refused one as 'missing all'."""
    import types

    from fastnn.tune import build_fc_net

    model = build_fc_net(types.MappingProxyType({"hidden_size": 8}), types.MappingProxyType(digits))
    assert model.params["W1"].shape == (64, 8)


def test_a_round_left_without_workers_ends_with_the_trials_it_has(digits, one_worker, monkeypatch):
    """A cluster whose workers all died for good (no nanny) raised out of the search after the trials had run,
    losing every result; now the trials not yet done fail with the reason and the finished ones are kept."""
    from fastnn.tune import search

    current, calls = search._SharedData.current, []

    def workers_gone_after_the_first_trial(self):
        calls.append(1)
        if len(calls) > 1:
            raise search.NoWorkers("random_search: no worker of the cluster is running")
        return current(self)

    monkeypatch.setattr(search._SharedData, "current", workers_gone_after_the_first_trial)
    result = random_search(build_softmax, digits, SPACE, 3, solver_kwargs=SOLVER_KWARGS, seed=3, client=one_worker)
    by_index = sorted(result.trials, key=lambda t: t.index)
    assert [t.ok for t in by_index] == [True, False, False]
    assert all(t.error == "random_search: no worker of the cluster is running" for t in by_index[1:])


def test_overlapping_searches_keep_the_nannies_until_the_last_ends_then_restore_the_setting():
    """Two overlapping `with dask.config.set` blocks put each other's values back: the first search to end
    restored 15 s under the second, and the second left the first's 30 days in force for good."""
    import dask
    import distributed  # noqa: F401  (its import loads the setting's default)

    from fastnn.tune import cluster

    key = "distributed.deploy.lost-worker-timeout"
    before = dask.config.get(key)
    first, second = cluster._nannies_kept(), cluster._nannies_kept()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert dask.config.get(key) == cluster.KEEP_NANNIES
    second.__exit__(None, None, None)
    assert dask.config.get(key) == before


def test_overlapping_local_clusters_keep_the_logs_quiet_until_the_last_ends(monkeypatch):
    """Each LocalCluster (and each of its nannies) put back the log level it found when it closed: a second search's
    INFO logs came through once the first search had ended."""
    import logging

    from fastnn.tune import cluster

    handler = logging.StreamHandler()  # what distributed sets up outside pytest, which leaves it none
    monkeypatch.setattr(logging.getLogger("distributed"), "handlers", [handler])
    monkeypatch.setattr(cluster, "_logs_quiet", cluster._WhileAnySearch(cluster._quiet_logs))  # not one_worker's
    with cluster.connect(n_workers=1):
        with cluster.connect(n_workers=1):
            pass
        assert handler.level == logging.CRITICAL
        second = cluster.connect(n_workers=1)
        second.__enter__()
    assert handler.level == logging.CRITICAL  # the second, started inside the first, still runs
    second.__exit__(None, None, None)
    assert handler.level == logging.NOTSET


def test_the_data_are_sent_again_once_a_worker_is_back_and_at_most_three_times():
    """With every worker dead for a moment, scattering raised "No valid workers found" out of the search."""
    from fastnn.tune import search

    class Client:
        def __init__(self, timeouts):
            self.timeouts, self.scatters, self.waits = timeouts, 0, 0

        def scatter(self, data, broadcast, hash):
            self.scatters += 1
            if self.scatters <= self.timeouts:
                raise TimeoutError("No valid workers found")
            return ["the data's future"]

        def wait_for_workers(self, n, timeout):
            self.waits += 1

    client = Client(timeouts=2)
    assert search._SharedData("random_search", client, {}).current() == "the data's future"
    assert (client.scatters, client.waits) == (3, 2)
    client = Client(timeouts=3)
    with pytest.raises(search.NoWorkers, match=r"random_search: the workers died each time the training data were "
                                                r"sent to them \(3 times\)"):
        search._SharedData("random_search", client, {}).current()


def test_narrowing_a_randint_whose_top_trials_agree_pads_by_the_whole_range():
    """[v, v + 1) had width 1, so equal values were padded by widen x 1, not by widen x the range as documented."""
    from fastnn.tune import narrow

    trials = [_trial(i, {"h": 64}, 0.5) for i in range(3)]
    assert narrow({"h": randint(16, 257)}, trials, top_k=3, widen=0.25)["h"] == randint(16, 125)  # [64, 65) -+ 60
    assert randint(16, 257).narrowed([400, 400], 0.25) == randint(16, 257)  # outside it (an earlier range's): all
    assert randint(-2**63, 2**63).narrowed([2**62 + 1] * 2, 0) == randint(2**62 + 1, 2**62 + 2)  # exact integers


def test_a_scheduler_gone_while_sending_the_data_ends_the_round():
    """dask's RuntimeError('ConnectionPool is closed') came out of the search as a traceback, losing its trials. A
    client still running meets such an error when a worker goes mid-broadcast: then it waits and sends again."""
    from fastnn.tune import search

    class Client:
        def __init__(self, status, errors):
            self.status, self.errors, self.waits = status, list(errors), 0

        def scatter(self, *args, **kwargs):
            if self.errors:
                raise self.errors.pop(0)
            return ["the data's future"]

        def wait_for_workers(self, n, timeout):
            self.waits += 1

    gone = Client("closed", [RuntimeError("ConnectionPool is closed")])
    with pytest.raises(search.NoWorkers, match=r"random_search: the cluster's scheduler cannot be reached "
                                                r"\(RuntimeError: ConnectionPool is closed\)"):
        search._SharedData("random_search", gone, {}).current()
    from distributed.comm.core import CommClosedError

    running = Client("running", [CommClosedError("a worker went")])
    assert search._SharedData("random_search", running, {}).current() == "the data's future"
    assert running.waits == 1


def test_a_batchnorm_searchs_best_npz_scores_what_the_search_reported(digits, tmp_path):
    """best.npz held the params without their running statistics: on uncentred data the loaded model scored
    0.17 where the search reported 0.55."""
    from fastnn.solver import Solver
    from fastnn.transfer import load_params

    data = {k: v + 3.0 if k.startswith("X") else v for k, v in digits.items()}
    space = {"learning_rate": loguniform(1e-3, 1e-2), "normalization": choice(["batchnorm"])}
    result = random_search(build_fc_net, data, space, n_trials=2, n_workers=1, progress=False,
                           solver_kwargs={"update_rule": "adam", "num_epochs": 2, "batch_size": 50})
    assert len(result.best_model_state["bn_params"]) == 1
    path = result.save_best(tmp_path / "best.npz")
    model = build_fc_net(result.best.config, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # load_params warns when the file holds no running statistics
        load_params(model, path)
    assert Solver(model, data, verbose=False).check_accuracy(data["X_val"], data["y_val"]) == result.best.val_acc


def _build_after_centring_in_place(config, data):
    data["X_train"] -= data["X_train"].mean()  # a preprocessing step that would change every later trial
    return build_softmax(config, data)


def test_a_builder_that_edits_the_data_fails_its_trial_and_leaves_the_data_as_it_was(digits):
    before = {k: v.copy() for k, v in digits.items()}
    config = {"learning_rate": 0.1, "weight_scale": 1e-2}
    trial, best = run_trial(_build_after_centring_in_place, digits, config, 0, 0, 7, SOLVER_KWARGS,
                            {"backend": "reference", "parallel": True})
    assert trial.status == "failed" and best is None and "read-only" in trial.error
    assert all(np.array_equal(digits[k], before[k]) and digits[k].flags.writeable for k in before)


def test_lograndint_draws_integers_in_its_half_open_range_about_uniformly_in_log_space():
    """Hidden sizes log-spaced needed choice(): loguniform gave floats, which build_fc_net refused in every trial."""
    from fastnn.tune import LogRandInt, lograndint

    param = lograndint(16, 1024)
    values = [param.sample(np.random.default_rng([3, i])) for i in range(4000)]
    assert all(isinstance(v, int) and 16 <= v < 1024 for v in values)
    counts = np.histogram(np.log2(values), bins=6, range=(4, 10))[0]  # one bin per doubling
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()
    assert param.describe() == {"type": "lograndint", "low": 16, "high": 1024} and param.log_scale
    narrowed = param.narrowed([100, 120, 128], widen=0.25)
    assert isinstance(narrowed, LogRandInt) and 16 <= narrowed.low <= 100 and 129 <= narrowed.high <= 1024
    assert narrowed.low > 16 and narrowed.high < 1024
    for low, high in ((0, 8), (8, 8), (2.5, 8)):
        with pytest.raises((ValueError, TypeError), match="lograndint"):
            lograndint(low, high)


def test_a_trial_over_a_lograndint_hidden_size_trains(digits):
    from fastnn.tune import lograndint, sample_configs

    space = {"hidden_size": lograndint(8, 64), "learning_rate": loguniform(1e-2, 1e-1)}
    config = sample_configs(space, 1, np.random.default_rng(0))[0]
    trial, best = run_trial(build_fc_net, digits, config, 0, 0, 7, {**SOLVER_KWARGS, "update_rule": "adam"},
                            {"backend": "reference", "parallel": True})
    assert trial.ok and best["params"]["W1"].shape == (64, config["hidden_size"])
