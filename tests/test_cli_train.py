"""`fastnn train`: end to end in a subprocess, and its options and outputs in-process."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import data_utils, plots
from fastnn.checkpoint import load_checkpoint
from fastnn.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fastnn_train_one_epoch_in_a_subprocess(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "fastnn", "train", "--epochs", "1", "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "final accuracy: train " in result.stdout and " test " in result.stdout
    assert "(Epoch 1 / 1) train acc: " in result.stdout
    assert "ThreeLayerConvNet on digits: 1 epoch in " in result.stdout  # said "1 epochs"
    assert "train: 100%" in result.stderr  # the progress bar
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "ThreeLayerConvNet" and summary["epochs"] == 1
    assert summary["winograd"] is fastnn.options().winograd
    assert summary["accuracy"]["test"] > 0.5  # one epoch on the digits already learns a lot
    assert set(os.listdir(out)) >= {"checkpoint_epoch_0.npz", "checkpoint_epoch_1.npz", "summary.json"}
    assert load_checkpoint(out / "checkpoint_epoch_1.npz")["epoch"] == 1
    if plots.available():
        assert {"loss.png", "accuracy.png", "filters.png"} <= set(os.listdir(out))


def test_fc_model_without_matplotlib_says_so_once_and_skips_the_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "fc"
    status = main(["train", "--model", "fc", "--epochs", "1", "--batch-size", "100", "--quiet", "--out", str(out),
                   "--update-rule", "sgd_momentum", "--lr", "0.05", "--seed", "3"])
    assert status == 0
    printed = capsys.readouterr()
    assert printed.out.count("matplotlib is not installed") == 1
    assert "(Epoch" not in printed.out and printed.err == ""  # --quiet
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "FullyConnectedNet" and summary["update_rule"] == "sgd_momentum"
    assert summary["plots"] == {} and not any(name.endswith(".png") for name in os.listdir(out))
    assert summary["accuracy"]["val"] > 0.5


def test_cifar10_data_option_reaches_the_loader(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_cifar(cifar10_dir=None, **kwargs):
        calls.append(cifar10_dir)
        rng = np.random.default_rng(0)
        split = {"train": 40, "val": 20, "test": 20}
        data = {}
        for name, n in split.items():
            y = np.arange(n) % 10
            data[f"X_{name}"] = rng.standard_normal((n, 3, 32, 32)) + y[:, None, None, None] * 0.5
            data[f"y_{name}"] = y
        return data

    monkeypatch.setattr(data_utils, "get_CIFAR10_data", fake_cifar)
    monkeypatch.setattr(plots, "available", lambda: False)
    status = main(["train", "--data", "cifar10", "--data-dir", str(tmp_path), "--model", "fc", "--epochs", "1",
                   "--batch-size", "20", "--quiet", "--out", str(tmp_path / "out")])
    assert status == 0 and calls == [str(tmp_path)]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["data"] == "cifar10" and summary["num_params"] == 3072 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10 \
        + 2 * (128 + 64)
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--update-rule", "lbfgs"], "--update-rule must be one of sgd, sgd_momentum"),
        (["--data-dir", "somewhere"], "--data-dir is only used with --data cifar10"),
        (["--lr-decay", "0"], "--lr-decay must be a positive number, got 0.0"),
        (["--reg", "-1"], "--reg must be a number >= 0, got -1.0"),
    ],
)
def test_bad_options_exit_with_a_message(argv, message, tmp_path):
    with pytest.raises(SystemExit, match=message):
        main(["train", "--out", str(tmp_path / "never"), *argv])
    assert not (tmp_path / "never").exists()


def _fastnn(*argv, **kwargs):
    """`python -m fastnn ARGV` in a subprocess, with this checkout's fastnn."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    env.update(kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "fastnn", *argv], env=env, timeout=300, **kwargs)


@pytest.mark.skipif(os.name != "posix", reason="closes the child's file descriptor 2, or needs /dev/full")
@pytest.mark.parametrize("stderr", ["closed", "full", "reader-gone"])
def test_a_stderr_that_cannot_be_written_does_not_stop_the_training(stderr, tmp_path):
    """The progress bar's first write to a closed stderr (2>&-), a full one (2>/dev/full) or a pipe whose reader
    had gone raised OSError: the run stopped with status 1, removed what it had written, and said so (blaming
    --out for a full disk) on the stderr that could not take it."""
    out = tmp_path / "out"
    argv = ["train", "--model", "fc", "--epochs", "1", "--batch-size", "500", "--out", str(out)]  # with the bar
    if stderr == "reader-gone":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
        process = subprocess.Popen([sys.executable, "-m", "fastnn", *argv], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        process.stderr.close()
        said, _ = process.communicate(timeout=300)
        status = process.returncode
    else:
        with open(os.devnull if stderr == "closed" else "/dev/full", "w") as sink:
            done = _fastnn(*argv, stdout=subprocess.PIPE, stderr=sink,
                           preexec_fn=(lambda: os.close(2)) if stderr == "closed" else None)
        said, status = done.stdout, done.returncode
    assert status == 0 and b"final accuracy: train " in said, said[-2000:]
    assert {"summary.json", "checkpoint_epoch_1.npz"} <= set(os.listdir(out))


@pytest.mark.skipif(os.name != "posix", reason="needs file names of bytes")
def test_an_out_name_that_is_not_utf8_is_printed_escaped_under_a_strict_stdout(tmp_path):
    """PYTHONIOENCODING=utf-8 makes stdout strict: an --out of bytes that are not UTF-8 (held in the name as
    surrogates) ended in a UnicodeEncodeError traceback at "Saving checkpoint to", and the run was removed."""
    out = os.fsencode(tmp_path) + b"/bad\xffname"
    done = _fastnn("train", "--model", "fc", "--epochs", "1", "--batch-size", "500", "--out", out,
                   capture_output=True, env={"PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-2000:]
    assert b'Saving checkpoint to "' + os.fsencode(tmp_path) + b'/bad\\udcffname/' in done.stdout
    assert b"summary.json" in os.listdir(out)


@pytest.mark.parametrize("own_process", [True, False])
def test_only_the_console_command_sets_up_its_process(monkeypatch, tmp_path, own_process):
    """`fastnn train` as a command keeps freed memory and caches kernels; main([...]) called from a user's
    code leaves the user's process as it was."""
    import fastnn.allocator
    from fastnn import cli

    calls = []
    monkeypatch.setattr(fastnn.allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setenv("FASTNN_CACHE", "unset")  # records the original state, restored after the test
    monkeypatch.delenv("FASTNN_CACHE")
    stub = type("Command", (), {"configure": staticmethod(lambda parser: None), "run": staticmethod(lambda args: 0)})
    monkeypatch.setattr(cli, "_command_module", lambda name: stub)
    argv = ["train"]
    if own_process:
        monkeypatch.setattr("sys.argv", ["fastnn"] + argv)
        assert cli.main() == 0
    else:
        assert cli.main(argv) == 0
    assert (calls == [1]) == own_process
    assert (os.environ.get("FASTNN_CACHE") == "1") == own_process


FAST = ["train", "--model", "fc", "--epochs", "1", "--batch-size", "500", "--quiet"]


def test_a_run_never_writes_over_an_earlier_one(tmp_path, monkeypatch, capsys):
    """The second of two runs into one --out once replaced the first's summary and plots and left its later
    checkpoints beside its own: a directory mixing two runs."""
    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert main(FAST) == 0 and main(FAST) == 0  # without --out: ./fastnn-out, then ./fastnn-out-2
    assert (tmp_path / "fastnn-out" / "summary.json").exists() and (tmp_path / "fastnn-out-2" / "summary.json").exists()

    out = tmp_path / "fastnn-out"
    (out / "checkpoint_epoch_7.npz").write_bytes(b"an earlier, longer run")
    first = (out / "summary.json").read_text()
    with pytest.raises(SystemExit, match=r"--out '.*fastnn-out' holds an earlier run \(.fastnn-train, "
                                         r"checkpoint_epoch_0.npz, .*\); choose another --out or pass --overwrite"):
        main(FAST + ["--out", str(out)])
    assert (out / "summary.json").read_text() == first and (out / "checkpoint_epoch_7.npz").exists()

    assert main(FAST + ["--out", str(out), "--overwrite", "--seed", "4"]) == 0
    assert sorted(os.listdir(out)) == [".fastnn-train", "checkpoint_epoch_0.npz", "checkpoint_epoch_1.npz",
                                       "fastnn-run.json", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["seed"] == 4
    capsys.readouterr()


def test_a_run_that_has_written_nothing_yet_still_holds_its_directory(tmp_path, monkeypatch, capsys):
    """Two runs started together both found ./fastnn-out free (the first had written nothing yet) and the second
    wrote over the first: a run now claims its directory with a file created exclusively."""
    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fastnn-out").mkdir()
    (tmp_path / "fastnn-out" / ".fastnn-train").write_text("another run, still loading its data")
    assert main(FAST) == 0
    assert os.listdir(tmp_path / "fastnn-out") == [".fastnn-train"]
    assert (tmp_path / "fastnn-out-2" / "summary.json").exists()
    with pytest.raises(SystemExit, match=r"--out '.*fastnn-out' holds an earlier run \(.fastnn-train\)"):
        main(FAST + ["--out", str(tmp_path / "fastnn-out")])
    with pytest.raises(SystemExit, match=r"--overwrite needs --out"):
        main(FAST + ["--overwrite"])
    capsys.readouterr()


def test_user_errors_in_out_freeze_and_init_from_are_messages(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    with pytest.raises(SystemExit, match=r"fastnn train: --out '.*a_file' is a file, not a directory"):
        main(FAST + ["--out", str(a_file)])
    with pytest.raises(SystemExit, match=r"fastnn train: --freeze 'bogus' names no parameter; the model has \["):
        main(FAST + ["--out", str(tmp_path / "o1"), "--freeze", "bogus"])
    assert not (tmp_path / "o1").exists()  # a run that did not start leaves no claim behind
    with pytest.raises(SystemExit, match=r"fastnn train: --init-from .*nowhere.npz.: load_params: no file at"):
        main(FAST + ["--out", str(tmp_path / "o2"), "--init-from", str(tmp_path / "nowhere.npz")])
    assert a_file.read_text() == "mine"


def test_freeze_naming_every_param_is_refused_in_the_options_words(tmp_path):
    """The refusal showed the Solver's argument, --freeze=['affine', 'conv'], for what was typed as
    --freeze affine conv."""
    with pytest.raises(SystemExit, match=r"^fastnn train: --freeze affine conv names every parameter of the model; "):
        main(FAST + ["--model", "cnn", "--out", str(tmp_path / "out"), "--freeze", "affine", "conv"])
    assert not (tmp_path / "out").exists()


def test_what_an_out_that_had_written_nothing_holds_is_a_sentence(tmp_path):
    """It followed '... or --reg (was 1e+308). ' without its final period."""
    from argparse import Namespace

    from fastnn.commands.train import _what_out_holds

    assert _what_out_holds(Namespace(out=str(tmp_path)), None) == "It had written nothing."


def test_the_summary_names_the_checkpoint_whose_params_it_measured(tmp_path, monkeypatch, capsys):
    """The accuracies are those of best_params (the Solver leaves them in the model), but summary.json named only
    the last epoch's checkpoint, whose params are the last epoch's. Here the best validation accuracy came at
    epoch 2 of 5."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "fc", "--epochs", "5", "--lr", "0.05", "--quiet", "--out", "o"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    best, last = load_checkpoint(summary["best_checkpoint"]), load_checkpoint(summary["checkpoint"])
    assert summary["best_checkpoint"] != summary["checkpoint"] and best["epoch"] < last["epoch"]
    assert best["val_acc_history"][-1] == summary["best_val_acc"] == last["best_val_acc"]
    for name, value in last["best_params"].items():
        assert np.array_equal(best["params"][name], value), name
    assert f"in {os.path.basename(summary['best_checkpoint'])})" in capsys.readouterr().out
    # measured on the model in best_checkpoint, its batchnorm statistics included (the Solver's swap once left the
    # last epoch's beside best_params, so the summary's val accuracy was 0.9667 against best_val_acc 0.9733)
    assert summary["accuracy"]["val"] == summary["best_val_acc"]


def test_the_summary_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A process killed inside json.dump once left a half-written summary.json."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"

    real_dump = json.dump

    def dying_dump(obj, f, **kwargs):
        if "fastnn_version" not in obj:  # fastnn-run.json
            return real_dump(obj, f, **kwargs)
        f.write('{"fastnn_version": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", dying_dump)
    with pytest.raises(KeyboardInterrupt):
        main(FAST + ["--out", str(out)])
    assert sorted(os.listdir(out)) == [".fastnn-train", "checkpoint_epoch_0.npz", "checkpoint_epoch_1.npz",
                                       "fastnn-run.json"]


def test_init_from_that_fits_no_param_is_refused_and_the_summary_records_it(tmp_path, monkeypatch, capsys):
    """A checkpoint of another model (a `fastnn tune` best.npz, say) loaded nothing and the run trained from
    scratch with exit 0; the summary did not say a run had been initialised from a checkpoint, or frozen."""
    from fastnn.checkpoint import save_checkpoint

    monkeypatch.setattr(plots, "available", lambda: False)
    other = save_checkpoint(tmp_path / "other.npz", {"params": {"W1": np.ones((2, 3)), "gamma9": np.ones(4)}})
    with pytest.raises(SystemExit, match=r"fastnn train: --init-from '.*other.npz': none of its params fits the "
                                         r"FullyConnectedNet of --model fc, so nothing was loaded \(skipped .*W1"):
        main(FAST + ["--out", str(tmp_path / "o1"), "--init-from", str(other)])
    assert not (tmp_path / "o1").exists()

    assert main(FAST + ["--out", str(tmp_path / "plain")]) == 0
    summary = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert summary["init_from"] is None and summary["freeze"] is None
    source = tmp_path / "plain" / "checkpoint_epoch_1.npz"
    assert main(FAST + ["--out", str(tmp_path / "tuned"), "--init-from", str(source), "--freeze", "W1", "b1"]) == 0
    summary = json.loads((tmp_path / "tuned" / "summary.json").read_text())
    assert summary["init_from"] == str(source) and summary["freeze"] == ["W1", "b1"]
    assert "loaded " in capsys.readouterr().out


def test_missing_cifar10_is_a_message(tmp_path):
    """load_data ran outside the Solver's try: a FileNotFoundError traceback."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"fastnn train: --data cifar10: CIFAR-10 python batches not found; "
                                         r"looked in '.*missing'"):
        main(["train", "--data", "cifar10", "--data-dir", str(tmp_path / "missing"), "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_numpy_refuses_is_a_message(seed, tmp_path):
    with pytest.raises(SystemExit, match=rf"fastnn train: --seed must be an integer in \[0, 2\*\*32 - 1\], got {seed}"):
        main(FAST + ["--out", str(tmp_path / "never"), "--seed", seed])
    assert not (tmp_path / "never").exists()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("argv", [["--update-rule", "sgd", "--lr", "1e4"], ["--reg", "1e300"]])
def test_a_diverged_run_is_a_message_and_leaves_no_claim_without_checkpoints(argv, tmp_path, monkeypatch):
    """The Solver's FloatingPointError came out as a traceback, and the run's claim stayed in --out; NumPy's
    overflow warnings, with fastnn's file paths, came before the message."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    argv = ["train", "--model", "fc", "--epochs", "1", "--batch-size", "100", "--quiet", *argv]
    with pytest.raises(SystemExit, match=r"fastnn train: the loss diverged \(it was nan at iteration \d+ of 12, "
                                         r"epoch 1 of 1\); try a smaller --lr \(was .*\) or --reg \(was .*\)\. "):
        main(argv + ["--out", str(out)])
    kept = sorted(os.listdir(out)) if out.exists() else []
    # a checkpoint (with the fastnn-run.json to resume it) after the first step, or none
    assert kept in ([], [".fastnn-train", "checkpoint_epoch_0.npz", "fastnn-run.json"])
    mine = tmp_path / "mine"  # a directory of the user's keeps its own files
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="the loss diverged"):
        main(argv + ["--out", str(mine)])
    assert "notes.txt" in os.listdir(mine)


def _diverge_after_one_epoch(monkeypatch):
    """Make the Solver's second epoch stop as on a NaN loss, after its checkpoints of epochs 0 and 1."""
    from fastnn.solver import Solver

    real_step = Solver._step

    def step(self):
        if self.epoch >= 1:  # as _step does on a NaN loss; the Solver then raises its FloatingPointError
            self.loss_history.append(float("nan"))
            return False
        return real_step(self)

    monkeypatch.setattr(Solver, "_step", step)


def _interrupt_after_one_epoch(monkeypatch):
    """Make the Solver's second epoch raise KeyboardInterrupt (Ctrl-C), after its checkpoints of epochs 0 and 1."""
    from fastnn.solver import Solver

    real_step = Solver._step

    def step(self):
        if self.epoch >= 1:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Solver, "_step", step)


def test_a_run_that_diverges_later_keeps_its_checkpoints_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    _diverge_after_one_epoch(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"the loss diverged .* --out '.*out' keeps this run's checkpoints up to "
                                         r"then: checkpoint_epoch_0.npz, checkpoint_epoch_1.npz"):
        main(FAST[:-4] + ["3", "--batch-size", "500", "--quiet", "--out", str(out)])
    assert sorted(os.listdir(out)) == [".fastnn-train", "checkpoint_epoch_0.npz", "checkpoint_epoch_1.npz",
                                       "fastnn-run.json"]
    assert load_checkpoint(out / "checkpoint_epoch_1.npz")["epoch"] == 1


@pytest.mark.parametrize("stop", ["diverge", "interrupt"])
def test_overwrite_replaces_the_earlier_run_only_with_a_run_that_finishes(stop, tmp_path, monkeypatch):
    """--overwrite removed the earlier run before training; a run that then diverged left neither (the reviewer's
    good run of 4 checkpoints, plots and summary was gone)."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    (out / "checkpoint_epoch_7.npz").write_bytes(b"an earlier, longer run")
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    if stop == "diverge":
        _diverge_after_one_epoch(monkeypatch)
        expected, match = SystemExit, r"--out '.*out' holds the earlier run again, as it was"
    else:
        _interrupt_after_one_epoch(monkeypatch)
        expected, match = KeyboardInterrupt, None
    with pytest.raises(expected, match=match):
        main(FAST[:-4] + ["3", "--batch-size", "500", "--quiet", "--out", str(out), "--overwrite", "--seed", "5"])
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    monkeypatch.undo()
    monkeypatch.setattr(plots, "available", lambda: False)
    assert main(FAST + ["--out", str(out), "--overwrite", "--seed", "5"]) == 0  # a run that finishes replaces it
    assert sorted(os.listdir(out)) == [".fastnn-train", "checkpoint_epoch_0.npz", "checkpoint_epoch_1.npz",
                                       "fastnn-run.json", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["seed"] == 5


def test_a_set_aside_run_left_by_a_killed_run_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    (out / ".fastnn-train-earlier").mkdir()
    (out / ".fastnn-train-earlier" / "summary.json").write_text("the run before")
    with pytest.raises(SystemExit, match=r"holds .fastnn-train-earlier, an earlier run set aside by an --overwrite "
                                         r"run that was killed"):
        main(FAST + ["--out", str(out), "--overwrite"])
    assert (out / ".fastnn-train-earlier" / "summary.json").read_text() == "the run before"
    assert (out / "summary.json").exists()


def test_an_empty_out_is_a_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="fastnn train: --out must name a directory, got an empty string"):
        main(FAST + ["--out", ""])
    assert os.listdir(tmp_path) == []


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path):
    """--batch-size 100000 drew 100000 samples with replacement from the 1200 digits each iteration."""
    with pytest.raises(SystemExit, match=r"fastnn train: --batch-size 100000 is larger than the training set "
                                         r"\(1200 samples of --data digits\)"):
        main(FAST + ["--batch-size", "100000", "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


def test_a_full_disk_is_a_message_saying_what_out_holds(tmp_path, monkeypatch):
    """No space left for a checkpoint (or a plot) ended in an OSError traceback that said nothing of --resume."""
    from fastnn import checkpoint

    save = checkpoint.save_checkpoint
    calls = []

    def full_after_one(path, state):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return save(path, state)

    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.setattr(checkpoint, "save_checkpoint", full_after_one)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"fastnn train: writing to --out '.*out' failed \(No space left on device\)"
                                         r"\. --out '.*out' keeps this run's checkpoints up to then: "
                                         r"checkpoint_epoch_0.npz \(fastnn train --resume .*out continues it\)"):
        main(FAST + ["--out", str(out)])
    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0


class _FullStderr:
    """A stderr on a full disk (or closed, or whose reader has gone): every write fails."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass


def test_a_progress_bar_that_cannot_be_drawn_stops_nothing_and_is_not_blamed_on_out(tmp_path, monkeypatch):
    """A progress bar that could not be drawn (a stderr on a full disk) was reported as 'writing to --out failed':
    the error number alone, not the file, decided; and from a user's code, main([...]) stopped with it. The bar
    is decoration: it goes quiet (and tqdm's lock, which its failed write kept, is never taken so)."""
    import threading

    from tqdm import tqdm

    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.setattr(sys, "stderr", _FullStderr())
    assert main(FAST[:-1] + ["--out", str(tmp_path / "out")]) == 0  # not --quiet: the bar is drawn
    assert (tmp_path / "out" / "summary.json").is_file()
    other = threading.Thread(target=lambda: tqdm(total=1, disable=True).close(), daemon=True)
    other.start()
    other.join(10)
    assert not other.is_alive()


@pytest.mark.parametrize("fails", ["fastnn-run.json", "summary.json", "loss.png"])
def test_a_full_disk_on_any_file_of_out_is_blamed_on_out(fails, tmp_path, monkeypatch):
    """The OSError of a full disk names no file: each write into --out gives it the name of its file."""
    from fastnn import _files

    real_open = _files.atomic_open

    def full(path, *args, **kwargs):
        if os.path.basename(path) == fails:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    if fails.endswith(".png"):
        pytest.importorskip("matplotlib")
    monkeypatch.setattr(plots, "available", lambda: True)
    monkeypatch.setattr("fastnn.commands.train.atomic_open", full)
    monkeypatch.setattr(plots, "atomic_open", full)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"fastnn train: writing to --out '.*out' failed \(No space left on device\)"):
        main(FAST + ["--out", str(out)])


def test_an_empty_init_from_is_refused_not_ignored(tmp_path):
    """--init-from "" trained from scratch and recorded init_from: null, exit 0."""
    with pytest.raises(SystemExit, match=r"fastnn train: --init-from must name a checkpoint file, got ''"):
        main(FAST + ["--init-from", "", "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


def test_a_checkpoint_directory_that_cannot_be_written_is_a_message(tmp_path, monkeypatch):
    """A read-only file system under --out (found by the Solver's probe) ended in an OSError traceback: only
    FileNotFoundError was turned into a message."""
    from fastnn import solver

    def read_only(fn, name, path, probe=False):
        raise OSError(30, f"{fn}: cannot write {name} {path!r} (Read-only file system)")

    monkeypatch.setattr(solver, "check_writable_path", read_only)
    with pytest.raises(SystemExit, match=r"fastnn train: .*Solver: cannot write checkpoint_name .*Read-only"):
        main(FAST + ["--out", str(tmp_path / "ro")])


def test_backend_is_the_runs_alone(tmp_path, monkeypatch):
    """main(['train', '--backend', ...]) called in-process set the backend for the rest of the process (a test
    after `fastnn check --backend reference` trained on the reference)."""
    import fastnn

    monkeypatch.setattr(plots, "available", lambda: False)
    before = fastnn.options().backend
    other = "reference" if before != "reference" else "auto"
    assert main(FAST + ["--out", str(tmp_path / "out"), "--backend", other]) == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["backend"] == other
    assert fastnn.options().backend == before


def test_an_out_that_cannot_be_created_is_a_message(tmp_path):
    """os.makedirs' NotADirectoryError (or a PermissionError) came out as a traceback."""
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit, match=r"fastnn train: cannot write to '.*afile/sub' \(Not a directory\)"):
        main(FAST + ["--out", str(tmp_path / "afile" / "sub")])
    assert os.listdir(tmp_path) == ["afile"]


def test_a_failed_run_removes_only_the_directories_it_created(tmp_path, monkeypatch):
    """release() removed any empty --out, so a directory the user had made (the current one included) went."""
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.chdir(mine)
    for out in (str(mine), "."):
        with pytest.raises(SystemExit, match="larger than the training set"):
            main(FAST + ["--batch-size", "100000", "--out", out])
        assert mine.is_dir() and os.listdir(mine) == []
    with pytest.raises(SystemExit, match="larger than the training set"):
        main(FAST + ["--batch-size", "100000", "--out", str(tmp_path / "a" / "b" / "c")])
    assert sorted(os.listdir(tmp_path)) == ["mine"]  # a/b/c were the run's own: all gone


def test_an_earlier_run_that_cannot_be_set_aside_is_left_whole(tmp_path, monkeypatch):
    """A move that failed half way left the earlier run split between --out and its set-aside directory."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    real_replace = os.replace
    moves = []

    def replace(src, dst):
        if ".fastnn-train-earlier" in os.fspath(dst):
            moves.append(src)
            if len(moves) == 2:
                raise PermissionError(1, "Operation not permitted", os.fspath(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit, match=r"cannot set the earlier run in --out '.*out' aside \(Operation not "
                                         r"permitted: .*\); it is left as it was"):
        main(FAST + ["--out", str(out), "--overwrite"])
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_ctrl_c_says_what_out_holds_and_the_command_exits_130_without_a_traceback(tmp_path, monkeypatch, capsys):
    from fastnn import cli

    monkeypatch.setattr(plots, "available", lambda: False)
    _interrupt_after_one_epoch(monkeypatch)
    monkeypatch.setattr(cli, "_set_up_own_process", lambda: None)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["fastnn"] + FAST[:-4] + ["3", "--batch-size", "500", "--quiet", "--out",
                                                               str(out)])
    assert cli.main() == 130
    err = capsys.readouterr().err
    assert "fastnn train: --out" in err and "keeps this run's checkpoints up to then: " \
        f"checkpoint_epoch_0.npz, checkpoint_epoch_1.npz (fastnn train --resume {out} continues it)" in err
    assert err.rstrip().endswith("fastnn train: interrupted") and "Traceback" not in err


def test_what_out_holds_lists_many_checkpoints_by_their_first_and_last_epoch(tmp_path):
    from argparse import Namespace

    from fastnn.commands.train import _what_out_holds

    for e in range(12):
        (tmp_path / f"checkpoint_epoch_{e}.npz").write_bytes(b"")
    (tmp_path / "fastnn-run.json").write_text("{}")
    said = _what_out_holds(Namespace(out=str(tmp_path)), None)
    assert said.endswith("checkpoints up to then: checkpoint_epoch_0.npz ... checkpoint_epoch_11.npz (12 files) "
                         f"(fastnn train --resume {tmp_path} continues it)")


def test_a_dangling_symlink_out_is_named_as_one_and_a_failed_nested_claim_leaves_nothing(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(SystemExit, match=r"fastnn train: '.*link' is a symlink to nothing"):
        main(FAST + ["--out", str(tmp_path / "link")])
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # was named a symlink to nothing
    with pytest.raises(SystemExit, match=r"fastnn train: '.*loop' is a symlink loop \(it leads back to itself\)"):
        main(FAST + ["--out", str(tmp_path / "loop")])
    with pytest.raises(SystemExit, match=r"cannot write to .*\(File name too long\)"):
        main(FAST + ["--out", str(tmp_path / "new" / ("x" * 300))])
    assert sorted(os.listdir(tmp_path)) == ["link", "loop"]


def test_an_interrupted_run_resumed_ends_as_the_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """Ctrl-C after epoch 1 of 3, then `fastnn train --resume OUT` with no other option: the run continues from
    checkpoint_epoch_1 with the settings of its fastnn-run.json, and its last checkpoint and summary equal those of the
    same run left alone."""
    monkeypatch.setattr(plots, "available", lambda: False)
    argv = ["train", "--model", "fc", "--epochs", "3", "--batch-size", "300", "--lr", "0.01", "--reg", "0.01",
            "--seed", "3", "--quiet"]
    assert main(argv + ["--out", str(tmp_path / "whole")]) == 0
    with monkeypatch.context() as patch:
        _interrupt_after_one_epoch(patch)
        with pytest.raises(KeyboardInterrupt):
            main(argv + ["--out", str(tmp_path / "split")])
    assert json.loads((tmp_path / "split" / "fastnn-run.json").read_text())["reg"] == 0.01
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "split"), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert f"resuming {tmp_path / 'split'} from checkpoint_epoch_1.npz (epoch 1 of 3)" in said
    assert "FullyConnectedNet on digits: epochs 2-3 of 3 in " in said
    whole, split = (load_checkpoint(tmp_path / run / "checkpoint_epoch_3.npz") for run in ("whole", "split"))
    assert split["loss_history"] == whole["loss_history"] and len(whole["loss_history"]) == 12
    for name, value in whole["params"].items():
        assert np.array_equal(split["params"][name], value), name
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in ("whole", "split")]
    assert summaries[1]["resumed_from"] == str(tmp_path / "split" / "checkpoint_epoch_1.npz")
    assert summaries[0]["accuracy"] == summaries[1]["accuracy"] and summaries[0]["resumed_from"] is None


def test_resume_extends_a_finished_run_and_refuses_what_it_cannot_continue(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["batch_size"] == 500 and summary["model_arg"] == "fc"
    assert load_checkpoint(out / "checkpoint_epoch_2.npz")["epoch"] == 2
    assert json.loads((out / "fastnn-run.json").read_text())["epochs"] == 2
    refusals = [
        (["--epochs", "2"], r"has trained 2 epochs already; give --epochs more than 2"),
        (["--epochs", "3", "--lr", "0.1", "--out", "x"], r"only --epochs, --backend and --quiet may be given with "
                                                          r"it, not --lr, --out"),
    ]
    for extra, message in refusals:
        with pytest.raises(SystemExit, match=f"fastnn train: .*{message}"):
            main(["train", "--resume", str(out), *extra])
    for text, why in (('{"model": "fc"}', r"check --batch-size, "), ("5", "not an object"), ("[" * 100000, "")):
        (out / "fastnn-run.json").write_text(text)
        with pytest.raises(SystemExit, match=rf"fastnn train: --resume.*run.json.*{why}"):
            main(["train", "--resume", str(out), "--epochs", "3"])
    (out / "fastnn-run.json").write_text('{"model": "fc"}')
    with pytest.raises(SystemExit, match=r"is not a fastnn train settings file \(check --batch-size, "):
        main(["train", "--resume", str(out), "--epochs", "3"])
    (out / "fastnn-run.json").unlink()
    with pytest.raises(SystemExit, match=r"holds no fastnn-run.json"):
        main(["train", "--resume", str(out), "--epochs", "3"])
    with pytest.raises(SystemExit, match=r"--resume '.*nowhere' does not exist"):
        main(["train", "--resume", str(tmp_path / "nowhere")])
    assert not (out / "checkpoint_epoch_3.npz").exists()


def _files_of(directory):
    return {name: (directory / name).read_bytes() for name in os.listdir(directory)}


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, monkeypatch):
    """A checkpoint copied from another run was resumed with its update rule, learning rate and seed (the
    Solver takes them from it), while summary.json and fastnn-run.json recorded this run's."""
    import shutil

    monkeypatch.setattr(plots, "available", lambda: False)
    out, other = tmp_path / "out", tmp_path / "other"
    assert main(FAST + ["--out", str(out)]) == 0
    assert main(FAST + ["--epochs", "2", "--update-rule", "sgd_momentum", "--lr", "0.01", "--seed", "3",
                        "--out", str(other)]) == 0
    shutil.copy(other / "checkpoint_epoch_2.npz", out)
    before = _files_of(out)
    with pytest.raises(SystemExit) as refused:
        main(["train", "--resume", str(out), "--epochs", "3", "--quiet"])
    assert str(refused.value) == (
        f"fastnn train: --resume {str(out)!r}: checkpoint_epoch_2.npz and fastnn-run.json disagree on "
        "--update-rule (sgd_momentum in the checkpoint, adam in fastnn-run.json), --lr (0.01 in the checkpoint, "
        "0.002 in fastnn-run.json), --seed (3 in the checkpoint, 0 in fastnn-run.json); a resumed run goes on "
        "with its checkpoint's settings: to train on with others, start a new run with --init-from "
        f"{out / 'checkpoint_epoch_2.npz'}")
    assert _files_of(out) == before


def test_resume_refuses_settings_edited_in_run_json(tmp_path, monkeypatch):
    """An edited lr, lr_decay or batch_size in fastnn-run.json was ignored by the Solver, which took the
    checkpoint's, yet recorded in summary.json; an edited seed drew another split of the digits."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    settings = json.loads((out / "fastnn-run.json").read_text())
    edits = {"lr": 0.5, "lr_decay": 0.5, "batch_size": 400, "seed": 7}
    (out / "fastnn-run.json").write_text(json.dumps({**settings, **edits}))
    before = _files_of(out)
    with pytest.raises(SystemExit, match=r"checkpoint_epoch_1.npz and fastnn-run.json disagree on --lr \(0.002 in "
                                         r"the checkpoint, 0.5 in fastnn-run.json\), --lr-decay \(0.9 in the "
                                         r"checkpoint, 0.5 in .*\), --batch-size \(500 in the checkpoint, 400 in "
                                         r".*\), --seed \(0 in the checkpoint, 7 in fastnn-run.json\); "):
        main(["train", "--resume", str(out), "--epochs", "2", "--quiet"])
    assert _files_of(out) == before
    (out / "fastnn-run.json").write_text(json.dumps(settings))
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    used = load_checkpoint(out / "checkpoint_epoch_2.npz")
    assert (summary["learning_rate"], summary["lr_decay"], summary["batch_size"], summary["seed"]) \
        == (used["optim_config"]["learning_rate"], used["lr_decay"], used["batch_size"], used["seed"])


def test_a_run_still_writing_is_neither_resumed_nor_overwritten(tmp_path, monkeypatch):
    """Nothing told a live run from a finished one: a --resume, or an --overwrite, of a run still training was
    accepted, and the two wrote into one directory (a review found a run's files mixed with another's). A run
    holds a lock on its claim file while it writes, which the system drops when the process ends."""
    import fcntl

    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    with open(out / ".fastnn-train", "a") as live:  # as the run still going would hold it
        fcntl.flock(live, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for argv in (["train", "--resume", str(out), "--epochs", "2"], FAST + ["--out", str(out), "--overwrite"]):
            with pytest.raises(SystemExit, match=r"fastnn train: a run is still writing to '.*out'"):
                main(argv)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0  # once it has ended


def test_resume_takes_only_checkpoints_whose_names_and_epochs_agree(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST[:-4] + ["3", "--batch-size", "500", "--quiet", "--out", str(out)]) == 0
    stray = (out / "checkpoint_epoch_1.npz").read_bytes()
    (out / "checkpoint_epoch_07.npz").write_bytes(stray)  # not a name the Solver writes: passed over
    (out / "checkpoint_epoch_\u00b2.npz").write_bytes(stray)  # '²'.isdigit() is True, int('²') raised
    (out / "checkpoint_epoch_5.npz").write_bytes(stray)  # epoch 1 inside
    with pytest.raises(SystemExit, match=r"checkpoint_epoch_5.npz' holds epoch 1, not the epoch its name says"):
        main(["train", "--resume", str(out), "--epochs", "6"])
    (out / "checkpoint_epoch_5.npz").unlink()
    (out / "checkpoint_epoch_3.npz").unlink()
    (out / "checkpoint_epoch_3.npz").symlink_to(tmp_path / "gone.npz")
    with pytest.raises(SystemExit, match=r"fastnn train: --resume: .*no checkpoint at '.*checkpoint_epoch_3.npz'"):
        main(["train", "--resume", str(out), "--epochs", "6"])


def test_best_checkpoint_is_found_by_epoch_and_a_diverged_run_is_not_offered_a_resume(tmp_path, monkeypatch):
    from fastnn.commands.train import _best_checkpoint

    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(["train", "--model", "fc", "--epochs", "5", "--lr", "0.05", "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    best = os.path.basename(summary["best_checkpoint"])
    solver = type("Solver", (), {})()
    state = load_checkpoint(out / "checkpoint_epoch_5.npz")
    solver.X_train, solver.batch_size, solver.epoch = np.zeros((1200, 1)), state["batch_size"], state["epoch"]
    solver.val_acc_history, solver.best_val_acc = state["val_acc_history"], state["best_val_acc"]
    (out / "checkpoint_epoch_1.npz").unlink()  # another checkpoint gone, or a stray one, does not lose it
    (out / "checkpoint_epoch_x.npz").write_bytes(b"")
    assert _best_checkpoint(solver, str(out)) == str(out / best)
    _diverge_after_one_epoch(monkeypatch)
    with pytest.raises(SystemExit, match=r"keeps this run's checkpoints up to then: .* \(a new run there needs "
                                         r"--overwrite\)$"):
        main(FAST[:-4] + ["3", "--batch-size", "500", "--quiet", "--out", str(tmp_path / "diverged")])


def test_a_bad_value_in_run_json_says_where_it_came_from(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    settings = json.loads((out / "fastnn-run.json").read_text())
    (out / "fastnn-run.json").write_text(json.dumps({**settings, "lr": -1}))
    with pytest.raises(SystemExit, match=r"--lr must be a positive number, got -1 \(from '.*run.json'\)"):
        main(["train", "--resume", str(out), "--epochs", "2"])


def test_a_run_stopped_while_writing_its_summary_is_finished_by_resume(tmp_path, monkeypatch, capsys):
    """Ctrl-C after the last epoch, in the final accuracies or plots: --resume said the run had trained all its
    epochs, so the hint it had printed could not be followed. Now it writes the summary."""
    from fastnn.commands import train

    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(train, "_write_plots", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            main(FAST + ["--out", str(out)])
    assert not (out / "summary.json").exists()
    assert "(fastnn train --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1
    said = capsys.readouterr().out
    assert "no epoch left to train (1 of 1 done before)" in said and "epochs 2-1" not in said, said
    with pytest.raises(SystemExit, match="has trained 1 epoch already"):
        main(["train", "--resume", str(out)])


def test_a_resumed_run_stopped_before_its_own_summary_is_finished_by_resume(tmp_path, monkeypatch, capsys):
    """A resume stopped after its last checkpoint but before its summary left the earlier run's summary.json,
    which --resume took for this run's: 'has trained 2 epochs already', and the run could not be finished."""
    from fastnn.commands import train

    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    with monkeypatch.context() as patch:
        patch.setattr(train, "_write_plots", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            main(["train", "--resume", str(out), "--epochs", "2", "--quiet"])
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1  # the earlier run's
    assert (out / "checkpoint_epoch_2.npz").exists()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2
    assert "no epoch left to train (2 of 2 done before)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="has trained 2 epochs already"):
        main(["train", "--resume", str(out)])


def test_a_file_system_without_flock_runs_unlocked(tmp_path, monkeypatch):
    """flock failing with ENOLCK (NFS without lockd) was taken for a live run: every run was refused, and its
    claim stayed behind so that the next was refused as an earlier run."""
    import errno
    import fcntl

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert main(FAST + ["--out", str(tmp_path / "out")]) == 0
    assert main(FAST + ["--out", str(tmp_path / "out"), "--overwrite"]) == 0
    assert main(["train", "--resume", str(tmp_path / "out"), "--epochs", "2"]) == 0


def _step_fails(monkeypatch):
    from fastnn.solver import Solver

    def fail(self):
        raise RuntimeError("stopped")

    monkeypatch.setattr(Solver, "_step", fail)
    return RuntimeError, "stopped"


def _lock_is_held(monkeypatch):
    from fastnn.commands import _outputs

    def held(directory, command, create=False):
        raise SystemExit("fastnn train: a run is still writing")

    monkeypatch.setattr(_outputs, "hold", held)
    return SystemExit, "still writing"


@pytest.mark.parametrize("stop", [_step_fails, _lock_is_held], ids=["before-its-first-checkpoint", "lock-not-taken"])
def test_a_run_stopped_before_it_has_a_checkpoint_leaves_nothing(stop, tmp_path, monkeypatch):
    """A run that fails before its first checkpoint (its fastnn-run.json written), or cannot take its --out's
    lock (its claim made), leaves no directory behind."""
    monkeypatch.setattr(plots, "available", lambda: False)
    error, message = stop(monkeypatch)
    with pytest.raises(error, match=message):
        main(FAST + ["--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_resume_refuses_a_run_left_aside_by_a_killed_overwrite(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    (out / ".fastnn-train-earlier").mkdir()
    with pytest.raises(SystemExit, match="holds .fastnn-train-earlier, an earlier run set aside"):
        main(["train", "--resume", str(out), "--epochs", "2"])


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="needs POSIX signals")
def test_sigterm_stops_an_overwrite_run_as_ctrl_c_does_and_puts_the_earlier_run_back(tmp_path):
    """kill, timeout, SLURM and docker stop send SIGTERM: it ended the process on the spot, leaving the earlier run
    set aside in .fastnn-train-earlier and the new one half-written, which every later command then refused."""
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0

    def files():  # all but the lock, which names its last holder
        return {name: (out / name).read_bytes() for name in os.listdir(out) if name != ".fastnn-train"}

    before = files()
    p = subprocess.Popen([sys.executable, "-m", "fastnn", "train", "--model", "fc", "--epochs", "1000",
                          "--batch-size", "500", "--out", str(out), "--overwrite", "--quiet"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint_epoch_2.npz").exists():  # the new run is training, the earlier one set aside
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    err = err.decode()
    assert p.returncode == 128 + signal.SIGTERM, err
    assert err.rstrip().endswith("fastnn train: terminated") and "Traceback" not in err, err
    assert files() == before


HOLD_IN_ANOTHER_PROCESS = ("import sys; from fastnn.commands import _outputs; "
                           "_outputs._claim(sys.argv[1], 'train', earlier_claim=True) if sys.argv[2] == 'claim' "
                           "else _outputs.hold(sys.argv[1], 'train')")


def _another_process(out, how):
    return subprocess.run([sys.executable, "-c", HOLD_IN_ANOTHER_PROCESS, str(out), how], capture_output=True,
                          text=True, timeout=120)


def test_a_claim_is_locked_from_the_moment_it_is_made(tmp_path):
    """Claim and lock were two steps: a second --overwrite between them removed the first run's claim file, and
    the first, failing to lock, then removed the second's, so a third command could write into a running run."""
    from fastnn.commands import _outputs

    out = tmp_path / "out"
    assert _outputs._claim(str(out), "train")
    try:
        for how in ("claim", "hold"):
            other = _another_process(out, how)
            assert other.returncode == 1 and "a run is still writing to" in other.stderr, other.stderr
        assert f"process {os.getpid()}" in (out / ".fastnn-train").read_text()
    finally:
        _outputs.release(str(out), "train")
    assert not out.exists()


def test_a_resumed_run_without_its_claim_file_is_held_all_the_same(tmp_path, monkeypatch):
    """A run copied without .fastnn-train (cp dir/*) was resumed unlocked: two resumes of it at once both ran,
    and the checkpoints and the summary ended up from different runs."""
    from fastnn.commands import train

    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    (out / ".fastnn-train").unlink()
    seen = []

    def resume(args, checkpoint):
        other = _another_process(out, "hold")
        seen.append((other.returncode, "a run is still writing to" in other.stderr))
        return 0

    monkeypatch.setattr(train, "_resume", resume)
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert seen == [(1, True)] and (out / ".fastnn-train").exists()


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_a_ctrl_c_while_the_plots_are_written_waits_for_them(tmp_path, monkeypatch):
    """Met inside matplotlib (its import, savefig), a SIGTERM or Ctrl-C came out as matplotlib's RuntimeError or
    ValueError traceback. Held until the plots are written, it stops the run as a Ctrl-C."""
    matplotlib = pytest.importorskip("matplotlib")  # noqa: F841
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    plot_loss = plots.plot_loss

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return plot_loss(*args, **kwargs)

    monkeypatch.setattr(plots, "plot_loss", interrupted)
    out = tmp_path / "out"
    try:
        with pytest.raises(KeyboardInterrupt):
            main(FAST + ["--out", str(out)])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (out / "loss.png").exists() and (out / "accuracy.png").exists()  # written before it was delivered
    assert not (out / "summary.json").exists()


def test_a_claim_file_that_is_a_symlink_is_never_written_through(tmp_path, monkeypatch):
    """--overwrite opened the earlier claim file following links, so a .fastnn-train symlink made it empty and
    rewrite the file it pointed to (or create one where it pointed to nothing)."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (out / ".fastnn-train").unlink()
    (out / ".fastnn-train").symlink_to(precious)
    with pytest.raises(SystemExit, match=r"fastnn train: cannot write to .*out"):
        main(FAST + ["--out", str(out), "--overwrite"])
    assert precious.read_text() == "keep me"
    (out / ".fastnn-train").unlink()
    (out / ".fastnn-train").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SystemExit, match=r"fastnn train: cannot write to .*out"):
        main(FAST + ["--out", str(out), "--overwrite"])
    assert not (tmp_path / "elsewhere").exists()


def test_a_lock_taken_on_a_claim_file_removed_meanwhile_is_taken_again_on_the_one_there(tmp_path, monkeypatch):
    """Opened, then removed by its owner's release and made anew by a third run before the lock: the lock went to
    the removed file, and two runs held the directory."""
    from fastnn.commands import _outputs

    path = tmp_path / ".fastnn-train"
    path.write_text("old\n")
    lock = _outputs._lock
    replaced = []

    def replaced_first(f):
        if not replaced:
            path.unlink()
            path.write_text("new\n")
            replaced.append(True)
        return lock(f)

    monkeypatch.setattr(_outputs, "_lock", replaced_first)
    claim, locked = _outputs._open_locked(str(path), take=True)
    try:
        assert locked and _outputs._same_file(claim, str(path)) and replaced == [True]
    finally:
        claim.close()


def test_a_results_json_of_ones_own_does_not_make_a_directory_tunes(tmp_path, monkeypatch):
    """Any results.json was taken for a tune run that had lost its claim file, refusing `fastnn train --out`."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "exp"
    out.mkdir()
    (out / "results.json").write_text('{"my": "notes"}')
    assert main(FAST + ["--out", str(out)]) == 0
    assert (out / "results.json").read_text() == '{"my": "notes"}'
    assert not [name for name in os.listdir(out) if name.startswith(".fastnn-train.")]  # no temporary claim left


def test_a_file_system_whose_inodes_never_match_ends_the_retries(tmp_path, monkeypatch):
    """_open_locked retried while the locked file was not the one at the path: where inode numbers are not
    stable it would have retried for ever."""
    from fastnn.commands import _outputs

    path = tmp_path / ".fastnn-train"
    path.write_text("")
    monkeypatch.setattr(_outputs, "_same_file", lambda f, p: False)
    claim, locked = _outputs._open_locked(str(path), take=True)
    claim.close()
    assert locked in (True, None)


def test_an_init_from_that_overwrite_would_remove_is_refused(tmp_path, monkeypatch):
    """--overwrite --init-from OUT/checkpoint_epoch_1.npz deleted (or replaced with the new run's) the very file
    the new run started from, while fastnn-run.json went on naming it."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    source = out / "checkpoint_epoch_1.npz"
    before = source.read_bytes()
    with pytest.raises(SystemExit, match=r"fastnn train: --init-from '.*checkpoint_epoch_1.npz' is a file of the "
                                         r"earlier run in --out '.*out', which --overwrite replaces"):
        main(FAST + ["--out", str(out), "--overwrite", "--init-from", str(source)])
    assert source.read_bytes() == before
    copy = tmp_path / "start.npz"
    copy.write_bytes(before)
    assert main(FAST + ["--out", str(out), "--overwrite", "--init-from", str(copy)]) == 0


def test_resume_names_a_directory_where_it_would_write_a_file(tmp_path, monkeypatch):
    """A directory named checkpoint_epoch_2.npz (or summary.json) in --out gave save_checkpoint's traceback."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    assert main(FAST + ["--out", str(out)]) == 0
    (out / "checkpoint_epoch_2.npz").mkdir()
    with pytest.raises(SystemExit, match=r"fastnn train: --resume: --out '.*out' holds directories where the run "
                                         r"writes files: checkpoint_epoch_2.npz; move them away"):
        main(["train", "--resume", str(out), "--epochs", "2", "--quiet"])


def test_overwrite_names_a_directory_where_the_earlier_run_had_a_file(tmp_path, monkeypatch):
    """A directory named checkpoint_epoch_9.npz was set aside with the earlier run, then could not be removed
    once the new run had finished: IsADirectoryError, and the set-aside directory then blocked every later run."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "out"
    (out / "checkpoint_epoch_9.npz").mkdir(parents=True)
    (out / "checkpoint_epoch_9.npz" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"fastnn train: --overwrite: --out '.*out' holds directories where the run "
                                         r"writes files: checkpoint_epoch_9.npz; move them away"):
        main(FAST + ["--out", str(out), "--overwrite"])
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_epoch_9.npz"]
    assert (out / "checkpoint_epoch_9.npz" / "notes.txt").read_text() == "mine"


def _broken_matplotlib():
    try:
        raise ImportError("numpy.core.multiarray failed to import")
    except ImportError as cause:
        raise ImportError("fastnn.plots needs matplotlib: pip install 'fastnn[plot]'") from cause


def test_a_matplotlib_that_fails_to_import_skips_the_plots_and_keeps_the_run(tmp_path, monkeypatch, capsys):
    """Installed but broken (an old build under NumPy 2), matplotlib raised once training was done: no summary, a
    traceback telling to install what was installed, and under --overwrite the finished run was thrown away."""
    monkeypatch.setattr(plots, "available", lambda: True)
    monkeypatch.setattr(plots, "_agg", _broken_matplotlib)
    out = tmp_path / "out"
    for overwrite in ([], ["--overwrite"]):
        assert main(FAST + ["--out", str(out), "--seed", str(len(overwrite))] + overwrite) == 0
        assert ("matplotlib cannot be imported (ImportError: numpy.core.multiarray failed to import): skipping the "
                "plots") in capsys.readouterr().out
        summary = json.loads((out / "summary.json").read_text())
        assert summary["plots"] == {} and summary["seed"] == len(overwrite)
        assert not any(name.endswith(".png") for name in os.listdir(out))


def test_a_resume_without_plots_says_the_plots_in_out_are_the_earlier_segments(tmp_path, monkeypatch, capsys):
    """The earlier segment's loss.png and accuracy.png stayed beside a summary of the longer run, unremarked."""
    out = tmp_path / "out"
    monkeypatch.setattr(plots, "available", lambda: False)
    assert main(FAST + ["--out", str(out)]) == 0
    for name in ("loss.png", "accuracy.png"):  # as a first segment run with matplotlib leaves them
        (out / name).write_bytes(b"the first segment's plot")
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert "loss.png, accuracy.png in --out are from before the resume" in capsys.readouterr().out
    assert (out / "loss.png").read_bytes() == b"the first segment's plot"  # the user's to keep


def test_accuracy_is_plotted_at_the_epochs_of_its_checks(tmp_path, monkeypatch):
    """With an epoch of one iteration (batch size 1200 of the digits' 1200) there is no check at epoch 0."""
    calls = []
    monkeypatch.setattr(plots, "available", lambda: True)
    monkeypatch.setattr(plots, "plot_loss", lambda history, path: path)
    monkeypatch.setattr(plots, "plot_accuracy", lambda train, val, path, epochs: calls.append(list(epochs)) or path)
    monkeypatch.setattr(plots, "plot_filters", lambda W, path: path)
    assert main(["train", "--model", "fc", "--epochs", "2", "--batch-size", "1200", "--quiet",
                 "--out", str(tmp_path / "one")]) == 0
    assert main(["train", "--model", "fc", "--epochs", "2", "--batch-size", "500", "--quiet",
                 "--out", str(tmp_path / "two")]) == 0
    assert calls == [[1, 2], [0, 1, 2]]


def test_batch_size_one_with_the_batchnorm_net_is_warned_of(tmp_path, monkeypatch, capsys):
    """Batchnorm over one sample outputs zeros: the run trained to chance without a word."""
    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.setattr(fastnn.commands.train, "_train", lambda *args, **kwargs: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        main(["train", "--model", "fc", "--batch-size", "1", "--epochs", "1", "--quiet", "--out", str(tmp_path / "o")])
    assert "--batch-size 1 with --model fc: batchnorm over a batch of one sample gives zeros" in capsys.readouterr().err


class _SlowReaderStream:
    """A non-blocking pipe whose reader is slow for a moment: the first write fails with EAGAIN, later ones go."""

    def __init__(self):
        self.text, self.fails = "", 1

    def write(self, text):
        if self.fails:
            self.fails -= 1
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        self.text += text
        return len(text)

    def flush(self):
        pass

    def fileno(self):
        raise AssertionError("a moment's error must not redirect the stream")


def test_a_moments_error_on_stderr_drops_one_chunk_and_keeps_the_stream():
    """One EAGAIN pointed fd 2 at /dev/null for good: the command's own error message was then lost."""
    from fastnn._streams import QuietOnFailure
    from fastnn.cli import _DecorationStderr

    for wrap in (_DecorationStderr, QuietOnFailure):
        stream = _SlowReaderStream()
        wrapped = wrap(stream)
        assert wrapped.write("dropped\n") == len("dropped\n")
        wrapped.write("fastnn train: a real error message\n")
        assert stream.text == "fastnn train: a real error message\n"
