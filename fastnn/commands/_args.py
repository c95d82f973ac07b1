"""Checks of options that several commands share; a bad value is the user's error, so a one-line message."""

import contextlib

SEED_MAX = 2**32 - 1  # numpy's legacy seeding (np.random.seed) takes [0, 2**32 - 1]


def check_seed(command, seed):
    if not 0 <= seed <= SEED_MAX:
        raise SystemExit(f"fastnn {command}: --seed must be an integer in [0, 2**32 - 1], got {seed}")


def backend_for_the_run(backend):
    """--backend, in force while the command runs: main([...]) called from a user's code (or a test) leaves the
    process's setting as it was."""
    if backend is None:
        return contextlib.nullcontext()
    from .._options import options

    return options(backend=backend)
