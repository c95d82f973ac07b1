"""The `fastnn` command: train, check, tune, bench.

Each sub-command lives in fastnn/commands/<name>.py with two functions, `configure(parser)` (adds its
arguments) and `run(args) -> int` (the exit status). They are imported only when their command runs.
"""

import _thread
import argparse
import atexit
import contextlib
import importlib
import os
import signal
import sys
import threading

from ._signals import Terminated, stop_on_sigterm
from ._streams import TRANSIENT, GuardedStream

COMMANDS = {
    "train": "train a model on the embedded digits (or CIFAR-10), with plots and checkpoints",
    "check": "run the course's sanity checks on a model (initial loss, gradients, overfitting)",
    "tune": "random hyperparameter search in log space, on dask.distributed",
    "bench": "side-by-side speed report: NumPy reference, fastnn jit, PyTorch CPU",
}


def _command_module(name):
    return importlib.import_module(f"fastnn.commands.{name}")


def build_parser(argv):
    from . import __version__

    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn: fast CS231n-style layers on the CPU.")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    requested = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == requested:  # import only the module of the command that runs
            _command_module(name).configure(command_parser)
    return parser


TRAINING_COMMANDS = ("train", "tune")


def _set_up_own_process():
    """Process-wide settings the `fastnn` command may make because the process is its own (never on import,
    nor when main() is called from a user's code): glibc keeps freed memory (fastnn/allocator.py), and the
    compiled kernels go to numba's disk cache for the next run unless FASTNN_CACHE says otherwise."""
    from .allocator import keep_freed_memory

    keep_freed_memory()
    os.environ.setdefault("FASTNN_CACHE", "1")


def _check_numba_threads(command):
    """A NUMBA_NUM_THREADS below 1 is a message now: numba refuses it with a traceback when it is imported, which
    every command does (a value that is not a number, numba warns of and replaces with its default)."""
    value = os.environ.get("NUMBA_NUM_THREADS")
    if value is None or "numba" in sys.modules:  # numba, imported already, has read it
        return
    try:
        count = int(value)
    except ValueError:
        return
    if count < 1:
        raise SystemExit(f"fastnn {command}: environment variable NUMBA_NUM_THREADS={value!r} must be >= 1")


def main(argv=None):
    own_process = argv is None  # the console script
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _check_numba_threads(args.command)
    if own_process and args.command in TRAINING_COMMANDS:
        _set_up_own_process()
    stdout, stderr, unraisablehook = sys.stdout, sys.stderr, sys.unraisablehook
    stdout_errors = getattr(stdout, "errors", None)
    interrupt_again = _InterruptAgain(unraisablehook)
    sigterm = None
    if own_process:
        # a stdout closed before the command started (`fastnn train >&-`) is None: its output goes nowhere; a
        # strict one (PYTHONIOENCODING=utf-8) raised UnicodeEncodeError mid-run at an --out name that is not UTF-8
        sys.stdout = _CheckedStdout(_with_errors(stdout, "backslashreplace") if stdout is not None
                                    else open(os.devnull, "w"))
        sys.stderr = _DecorationStderr(stderr if stderr is not None else open(os.devnull, "w"))
        sys.unraisablehook = interrupt_again
        sigterm = stop_on_sigterm()
    try:
        status = _command_module(args.command).run(args)
        if own_process:
            _flush_stdout(quiet=False)  # a full disk is found now, not in Python's own flush at exit
        return status
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: each command has cleaned up and said what its output
        if not own_process:  # holds; no traceback. main([...]) called from a user's code: theirs to handle
            raise
        terminated = isinstance(stop, Terminated)
        print(f"fastnn {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except StdoutFailed as failed:
        print(f"fastnn {args.command}: stopped: {failed}", file=sys.stderr)
        return 1
    finally:
        if own_process:
            interrupt_again.cancel()
            if sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
            _flush_stdout(quiet=True)
            sys.stderr.flush()
            _with_errors(stdout, stdout_errors)
            sys.stdout, sys.stderr, sys.unraisablehook = stdout, stderr, unraisablehook


def console():
    """The `fastnn` command's entry point: main(); then, while Python exits, a Ctrl-C or SIGTERM ends the process
    at once with the command's own status. The command has finished by then (its output flushed): the signal had
    reported the finished run as stopped (exit 130 or 143, after an --overwrite had already dropped the earlier
    run), or printed a traceback from an exit handler. Once the exit handlers have run, the two signals are
    ignored: Python's teardown puts its handlers back to the system's default, and a signal in that last moment
    killed the finished run (exit -2 or -15). The price: a teardown that hangs (a __del__) yields only to
    SIGKILL."""
    atexit.register(_ignore_signals)  # registered first, so it runs after the exit handlers of the command
    status = main()

    def leave(signum, frame):
        os._exit(status if isinstance(status, int) else 1)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, leave)
    return status


def _ignore_signals():
    """Ignore SIGINT and SIGTERM from now on: what is left of the exit is Python's teardown, which keeps an
    ignored signal ignored (a handler of Python's, it resets to the default, which ends the process)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


class _InterruptAgain:
    """sys.unraisablehook for the command's own process: a Ctrl-C that Python met in a __del__ or a weakref
    callback (dask's, while the cluster closes) is raised again in the main thread, where it stops the command;
    Python printed it as "Exception ignored" and the command went on."""

    def __init__(self, hook):
        self.hook, self.timers = hook, []

    def __call__(self, unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            return self.hook(unraisable)
        # a moment later, from another thread: raised in this hook, it would be ignored in its turn; as the
        # signal it was, so that a SIGTERM is still reported (and exits) as one
        signum = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        self.timers.append(threading.Timer(0.05, _thread.interrupt_main, (signum,)))
        self.timers[-1].start()

    def cancel(self):
        """The command has ended: a Ctrl-C still to be raised again would only meet Python's shutdown."""
        for timer in self.timers:
            timer.cancel()


class StdoutFailed(Exception):
    """Writing the command's standard output failed: its reader has gone (`fastnn bench | head`), or the file it
    goes to cannot take it (a full disk, /dev/full)."""

    def __init__(self, error):
        gone = isinstance(error, BrokenPipeError)
        super().__init__("the reader of its output has gone" if gone else
                         f"cannot write its output ({error.strerror or error})")


class _CheckedStdout(GuardedStream):
    """sys.stdout while the `fastnn` command runs in its own process: an OSError writing it is a StdoutFailed, so
    that main() says so in one line, while an OSError of any other file or pipe (a dask worker's) stays an error
    with its traceback."""

    def failed(self, error, size):
        raise StdoutFailed(error) from error


class _DecorationStderr(GuardedStream):
    """sys.stderr while the `fastnn` command runs in its own process. What goes there (the progress bar,
    warnings) is decoration: a stderr closed, full or whose reader has gone is pointed at /dev/null and the
    command goes on (the bar's first OSError stopped the training, and the run was reported as failed). A
    moment's error (EAGAIN) drops only its chunk."""

    caught = (OSError, ValueError)

    def failed(self, error, size):
        if not isinstance(error, TRANSIENT):
            self._to_devnull()
        return size

    def _to_devnull(self):
        """Its descriptor, so that what the stream still holds goes there too (Python flushes sys.stderr at exit,
        and a failed flush made the exit status 120); a stream without one is replaced."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
            self._stream.flush()
        except (AttributeError, OSError, ValueError):
            self._stream = open(os.devnull, "w")


def _with_errors(stream, errors):
    """`stream`, set to encode with the error handler `errors` where it can be (a TextIOWrapper)."""
    if errors is not None:
        with contextlib.suppress(AttributeError, LookupError, ValueError):
            stream.reconfigure(errors=errors)
    return stream


def _flush_stdout(quiet):
    """Flush stdout now. If that fails, point it at /dev/null, so that Python's own flush at exit does not print
    a traceback, and raise StdoutFailed unless `quiet` or its reader has gone (`fastnn check | head`: the rest
    of the output was not wanted)."""
    try:
        sys.stdout.flush()
    except StdoutFailed as failed:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if not (quiet or isinstance(failed.__cause__, BrokenPipeError)):
            raise
    except (AttributeError, ValueError):  # no stdout (None), or a closed one
        pass


if __name__ == "__main__":
    sys.exit(console())
