"""Checks of options that several commands share; a bad value is the user's error, so a one-line message."""

import contextlib

from .._options import BACKENDS

SEED_MAX = 2**32 - 1  # numpy's legacy seeding (np.random.seed) takes [0, 2**32 - 1]


def counted(number, noun):
    """'1 epoch', '5 epochs'."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def check_seed(command, seed):
    if not 0 <= seed <= SEED_MAX:
        raise SystemExit(f"fastnn {command}: --seed must be an integer in [0, 2**32 - 1], got {seed}")


def add_backend_option(parser, used_by="the layers"):
    """--backend, in any case (as fastnn.options and FASTNN_BACKEND take it)."""
    parser.add_argument("--backend", type=str.lower, choices=BACKENDS, default=None,
                        help=f"fastnn backend for {used_by} (default: FASTNN_BACKEND or auto)")


def backend_for_the_run(command, backend):
    """--backend, in force while the command runs: main([...]) called from a user's code (or a test) leaves the
    process's setting as it was. The settings the environment gives (FASTNN_*) are read now, so a bad value is a
    message before the run starts, not a traceback from its first layer."""
    from .._options import options

    def in_force():
        if backend is not None:
            return options(backend=backend)  # reads the other FASTNN_* variables, never FASTNN_BACKEND
        options()
        return contextlib.nullcontext()

    return settings_checked(f"fastnn {command}", in_force)


def settings_checked(prefix, read):
    """read() (fastnn.options or a call of it); a bad FASTNN_* value it meets is a one-line message beginning with
    `prefix` (SystemExit), not a traceback."""
    try:
        return read()
    except ValueError as error:
        raise SystemExit(str(error).replace("fastnn.options:", f"{prefix}:", 1)) from error
