"""The `fastnn` command: train, check, tune, bench.

Each sub-command lives in fastnn/commands/<name>.py with two functions, `configure(parser)` (adds its
arguments) and `run(args) -> int` (the exit status). They are imported only when their command runs.
"""

import argparse
import importlib
import os
import select
import sys

COMMANDS = {
    "train": "train a model on the embedded digits (or CIFAR-10), with plots and checkpoints",
    "check": "run the course's sanity checks on a model (initial loss, gradients, overfitting)",
    "tune": "random hyperparameter search in log space, on dask.distributed",
    "bench": "side-by-side speed report: NumPy reference, fastnn jit, PyTorch CPU",
}


def _command_module(name):
    return importlib.import_module(f"fastnn.commands.{name}")


def build_parser(argv):
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn: fast CS231n-style layers on the CPU.")
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


def main(argv=None):
    own_process = argv is None  # the console script
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if own_process and args.command in TRAINING_COMMANDS:
        _set_up_own_process()
    try:
        return _command_module(args.command).run(args)
    except KeyboardInterrupt:  # Ctrl-C: each command has cleaned up and said what its output holds; no traceback
        if not own_process:  # main([...]) called from a user's code: theirs to handle
            raise
        print(f"fastnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not (own_process and _stdout_is_gone()):  # another pipe (a dask worker's, say) is an error to show
            raise
        print(f"fastnn {args.command}: stopped: the reader of its output has gone", file=sys.stderr)
        return 1
    finally:
        if own_process:
            _flush_stdout()


def _stdout_is_gone():
    """Whether stdout is a pipe whose reader has closed it (`fastnn bench | head` once head has its lines)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows) or no descriptor
        return False


def _flush_stdout():
    """Flush stdout now; if its reader has gone, point it at /dev/null so that Python's own flush at exit does not
    print a BrokenPipeError (after a message or a Ctrl-C too)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
