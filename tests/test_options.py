import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.layers import affine_forward


def test_options_reports_and_context_manager_restores():
    before = fastnn.options().backend
    with fastnn.options(backend="reference") as settings:
        assert settings.backend == "reference"
        assert fastnn.options().backend == "reference"
        with fastnn.options(backend="verify"):
            assert fastnn.options().backend == "verify"
        assert fastnn.options().backend == "reference"
    assert fastnn.options().backend == before


def test_blocks_of_two_threads_that_overlap_leave_the_process_as_it_was():
    """Thread A's block entered, then thread B's, then A's ended and B's: each restored what it had found, so
    the process stayed on A's backend ('reference') for good."""
    import threading

    before = fastnn.options().backend
    a_entered, b_entered, a_exited = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        with fastnn.options(backend="reference"):
            a_entered.set()
            b_entered.wait(10)
        a_exited.set()

    def thread_b():
        a_entered.wait(10)
        with fastnn.options(backend="verify"):
            b_entered.set()
            a_exited.wait(10)
            seen["inside b after a ended"] = fastnn.options().backend

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"inside b after a ended": "verify"}
    assert fastnn.options().backend == before


def test_a_plain_call_between_a_blocks_creation_and_its_entry_does_not_keep_the_block_on():
    """options(...) applies at once (a plain call must); `with` takes it back on entry. When another thread had
    set something in between, the block's backend stayed on for good after it ended."""
    import threading

    before = fastnn.options()
    try:
        block = fastnn.options(backend="reference")  # what `with` evaluates before entering
        other = threading.Thread(target=lambda: fastnn.options(parallel=not before.parallel))
        other.start()
        other.join(10)
        with block:
            assert fastnn.options().backend == "reference"
        assert fastnn.options().backend == before.backend  # the block's change is gone
        assert fastnn.options().parallel == (not before.parallel)  # the other thread's plain call stays
    finally:
        fastnn.options(backend=before.backend, parallel=before.parallel)


def test_a_plain_call_from_a_thread_outside_any_block_sets_the_process():
    """It once went into another thread's open block and was lost when that block ended."""
    import threading

    before = fastnn.options()
    try:
        with fastnn.options(backend="reference"):
            other = threading.Thread(target=lambda: fastnn.options(backend="verify"))
            other.start()
            other.join(10)
            assert fastnn.options().backend == "reference"  # the open block is in force
        assert fastnn.options().backend == "verify"
    finally:
        fastnn.options(backend=before.backend)


def test_a_plain_call_inside_a_block_lasts_until_the_block_ends():
    before = fastnn.options().backend
    with fastnn.options(backend="reference"):
        fastnn.options(backend="verify")
        assert fastnn.options().backend == "verify"
        with fastnn.options(parallel=False):
            assert fastnn.options().backend == "verify" and not fastnn.options().parallel
        assert fastnn.options().parallel
    assert fastnn.options().backend == before


def test_context_manager_restores_after_an_exception():
    before = fastnn.options().backend
    with pytest.raises(RuntimeError):
        with fastnn.options(backend="reference"):
            raise RuntimeError("boom")
    assert fastnn.options().backend == before


def test_setting_without_a_block_persists():
    before = fastnn.options().backend
    try:
        fastnn.options(backend="reference")
        assert fastnn.options().backend == "reference"
    finally:
        fastnn.options(backend=before)


def test_unknown_backend_and_setting_are_rejected():
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        fastnn.options(backend="gpu")
    with pytest.raises(TypeError, match="unknown setting"):
        fastnn.options(speed="max")
    with pytest.raises(TypeError, match="parallel"):
        fastnn.options(parallel="yes")


def _run(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_environment_sets_the_start_value():
    result = _run("import fastnn; print(fastnn.options().backend)", FASTNN_BACKEND="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reference"
    result = _run("import fastnn", FASTNN_BACKEND="cuda")
    assert result.returncode != 0 and "unknown backend 'cuda'" in result.stderr


def test_reference_backend_runs_without_compiled_kernels():
    code = (
        "import sys, numpy as np, fastnn\n"
        "from fastnn.layers import affine_forward\n"
        "affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.ones(4))\n"
        "print('numba' in sys.modules)\n"
    )
    result = _run(code, FASTNN_BACKEND="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_import_fastnn_imports_no_numba():
    result = _run("import sys, fastnn, fastnn.layers, fastnn.layer_utils; print('numba' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


def test_verify_backend_returns_results_equal_to_reference():
    x, w, b = np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0)
    with fastnn.options(backend="verify"):
        out, _ = affine_forward(x, w, b)
    np.testing.assert_array_equal(out, x @ w + b)
