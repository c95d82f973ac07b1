"""Ctrl-C and SIGTERM held back while a run's files move (fastnn._signals.deferred, commands._outputs)."""

import os
import signal

import pytest

from fastnn._signals import Terminated, deferred, raise_terminated
from fastnn.commands import _outputs as outputs

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")


@pytest.fixture
def signals_raise():
    """SIGINT raising KeyboardInterrupt and SIGTERM Terminated, as in the fastnn command's own process (a test run
    in the background of a shell without job control starts with SIGINT ignored)."""
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                signal.SIGTERM: signal.signal(signal.SIGTERM, raise_terminated)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum, error", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_inside_the_block_is_raised_when_it_ends(signum, error, signals_raise):
    steps = []
    with pytest.raises(error):
        with deferred():
            os.kill(os.getpid(), signum)
            steps.append("after the signal")  # the block goes on
            steps.append("to its end")
        steps.append("never")
    assert steps == ["after the signal", "to its end"]
    assert signal.getsignal(signum) is not None and signal.getsignal(signum) != signal.SIG_IGN  # put back


def _run_dir(tmp_path, n=6):
    out = tmp_path / "out"
    out.mkdir()
    for i in range(n):
        (out / f"checkpoint_epoch_{i}.npz").write_bytes(bytes([i]))
    (out / ".fastnn-train").write_text("claim\n")
    return out


def _contents(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


@pytest.mark.parametrize("signum, error", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_while_the_earlier_run_moves_aside_puts_it_all_back(signum, error, tmp_path, monkeypatch,
                                                                     signals_raise):
    """A SIGTERM between a move and its note left one file in .fastnn-train-earlier, os.rmdir failed with a
    traceback, and every later --overwrite or --resume was refused."""
    out = _run_dir(tmp_path)
    before = _contents(out)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        real_replace(src, dst)
        calls.append(src)
        if len(calls) == 3:
            os.kill(os.getpid(), signum)  # just after a move, before set_aside notes it

    monkeypatch.setattr(os, "replace", replace)
    names = sorted(name for name in os.listdir(out) if name.startswith("checkpoint"))
    with pytest.raises(error):
        outputs.set_aside(str(out), "train", names)
    assert _contents(out) == before  # every file back, no .fastnn-train-earlier left


def test_a_signal_while_the_earlier_run_is_dropped_waits_until_it_is_gone(tmp_path, monkeypatch, signals_raise):
    """Cut half-way, the drop left a finished run beside part of the earlier one in .fastnn-train-earlier."""
    out = _run_dir(tmp_path)
    aside = outputs.set_aside(str(out), "train", sorted(n for n in os.listdir(out) if n.startswith("checkpoint")))
    real_remove, calls = os.remove, []

    def remove(path):
        real_remove(path)
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "remove", remove)
    with pytest.raises(Terminated):
        outputs.drop(aside)
    assert not os.path.exists(aside) and len(calls) == 6


def test_a_signal_as_a_checkpoint_file_is_created_leaves_no_temporary_file(tmp_path, monkeypatch, signals_raise):
    """A signal between mkstemp and the try that removes its file on error left an empty .tmp beside the
    checkpoints."""
    import tempfile

    from fastnn import _files

    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as mkstemp returns
        return made

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    (tmp_path / "ckpt.npz").write_bytes(b"earlier")
    with pytest.raises(Terminated):
        with _files.atomic_open(tmp_path / "ckpt.npz") as f:
            f.write(b"new")
    assert os.listdir(tmp_path) == ["ckpt.npz"] and (tmp_path / "ckpt.npz").read_bytes() == b"earlier"


@pytest.mark.parametrize("error, signum", [(KeyboardInterrupt(), signal.SIGINT), (Terminated(), signal.SIGTERM)])
def test_a_signal_met_in_a_weakref_callback_is_raised_again_as_the_signal_it_was(monkeypatch, error, signum):
    """A SIGTERM that landed in a callback (a WeakKeyDictionary's) came back as a plain Ctrl-C: the command said
    'interrupted' and exited 130 instead of 'terminated' and 143."""
    from types import SimpleNamespace

    from fastnn import cli

    raised = []
    monkeypatch.setattr(cli._thread, "interrupt_main", lambda *args: raised.append(args))
    hook = cli._InterruptAgain(lambda unraisable: None)
    hook(SimpleNamespace(exc_value=error))
    hook.timers[-1].join(5)
    assert raised == [(signum,)]
