"""`fastnn check`: its options are checked before the checks run."""

import os
import subprocess
import sys

import pytest

from fastnn.cli import main


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_numpy_refuses_is_a_message(seed):
    """numpy's ValueError came out as a traceback."""
    with pytest.raises(SystemExit, match=rf"fastnn check: --seed must be an integer in \[0, 2\*\*32 - 1\], got {seed}"):
        main(["check", "--model", "fc", "--seed", seed])


def test_more_overfit_samples_than_the_training_set_is_refused():
    """--num-overfit 100000 silently overfit the 1200 training samples and reported FAIL."""
    with pytest.raises(SystemExit, match=r"fastnn check: --num-overfit must be at most the 1200 training samples of "
                                         r"the digits, got 100000"):
        main(["check", "--model", "fc", "--backend", "reference", "--num-overfit", "100000"])


def test_one_overfit_sample_is_refused_for_the_batchnorm_model():
    """--model fc --num-overfit 1 reported FAIL (0% train accuracy): a minibatch of copies of one sample is all
    beta after batchnorm, so the model cannot fit it, and test-mode statistics then classify it wrongly."""
    with pytest.raises(SystemExit, match="--num-overfit must be at least 2 with --model fc"):
        main(["check", "--model", "fc", "--backend", "reference", "--num-overfit", "1"])


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_reader_that_goes_away_ends_the_command_without_a_traceback(unbuffered):
    """`fastnn check | head -1` printed a BrokenPipeError traceback (and Python's own at exit). Unbuffered, the
    first print meets the closed pipe and the command stops; buffered, the command finishes and its output goes
    nowhere."""
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    process = subprocess.Popen([sys.executable, "-m", "fastnn", "check", "--backend", "reference"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()
    err = process.stderr.read().decode()
    if unbuffered:
        assert process.wait(timeout=300) == 1 and err == "fastnn check: stopped: the reader of its output has gone\n"
    else:
        assert process.wait(timeout=300) == 0 and err == ""


def test_a_broken_pipe_that_is_not_stdout_is_not_hidden(monkeypatch, capsys):
    """Any BrokenPipeError ended the command silently with status 1: a dask worker's pipe dying looked like
    `| head`."""
    from fastnn import cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe (a socket)")

    stub = type("Command", (), {"configure": staticmethod(lambda parser: None), "run": staticmethod(broken)})
    monkeypatch.setattr(cli, "_command_module", lambda name: stub)
    monkeypatch.setattr(sys, "argv", ["fastnn", "check"])
    with pytest.raises(BrokenPipeError, match="a socket"):
        cli.main()


def test_version(capsys):
    import fastnn

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"fastnn {fastnn.__version__}"


@pytest.mark.skipif(os.name != "posix", reason="closes the child's file descriptor 1")
def test_a_stdout_closed_before_the_command_started_takes_its_output_nowhere():
    """`fastnn check >&-`: Python's sys.stdout is then None, and the command ended in an AttributeError traceback
    about 'NoneType' has no attribute 'write'."""
    process = subprocess.run([sys.executable, "-m", "fastnn", "check", "--backend", "reference"],
                             preexec_fn=lambda: os.close(1), stderr=subprocess.PIPE, timeout=300)
    assert process.returncode == 0 and process.stderr.decode() == ""


FINISHED_THEN_SIGNALLED = """
import atexit, os, signal, sys
from fastnn import cli
signum = getattr(signal, sys.argv[1])
atexit.register(lambda: os.kill(os.getpid(), signum))  # a signal while Python exits
sys.argv = ["fastnn", "check", "--backend", "reference"]
sys.exit(cli.console())
"""


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_after_the_command_finished_does_not_report_it_stopped(signame):
    """Ctrl-C or SIGTERM while the process exited, its outputs complete, ended it with 130/143 (or a
    KeyboardInterrupt traceback from an exit handler)."""
    process = subprocess.run([sys.executable, "-c", FINISHED_THEN_SIGNALLED, signame], capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0 and process.stderr == "", process.stderr[-2000:]


SIGNALLED_IN_THE_TEARDOWN = """
import os, signal, sys
from fastnn import cli


class SignalWhileTornDown:  # a global of __main__: deleted in Python's teardown, after the exit handlers
    def __del__(self, kill=os.kill, pid=os.getpid(), signum=getattr(signal, sys.argv[1])):
        kill(pid, signum)


late = SignalWhileTornDown()
sys.argv = ["fastnn", "check", "--model", "fc", "--backend", "reference"]
sys.exit(cli.console())
"""


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_in_pythons_teardown_does_not_kill_the_finished_command(signame):
    """Python's teardown puts the signal handlers back to the system's default after the exit handlers: a Ctrl-C
    or SIGTERM then killed the finished command (status -2 or -15, "all checks passed" printed)."""
    process = subprocess.run([sys.executable, "-c", SIGNALLED_IN_THE_TEARDOWN, signame], capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0 and process.stderr == "", (process.returncode, process.stderr[-2000:])
    assert process.stdout.endswith("all checks passed\n")


@pytest.mark.parametrize("command", ["check", "train", "tune"])
def test_backend_is_taken_in_any_case_and_a_bad_setting_names_the_command(command, monkeypatch):
    """--backend JIT was refused (fastnn.options and FASTNN_BACKEND take it); a bad FASTNN_* value began 'fastnn:'
    (test_options runs `fastnn check` with one; the environment is read once a process, so here the prefix)."""
    from fastnn.commands import _args

    parser = __import__("argparse").ArgumentParser()
    _args.add_backend_option(parser)
    assert parser.parse_args(["--backend", "JIT"]).backend == "jit"
    prefixes = []
    monkeypatch.setattr(_args, "settings_checked", lambda prefix, read: prefixes.append(prefix))
    _args.backend_for_the_run(command, "jit")
    assert prefixes == [f"fastnn {command}"]
