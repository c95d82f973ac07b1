import os
import subprocess
import sys
import threading

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
    """code in a fresh python, under the environment's variables but none of fastnn's, then those of `env`."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("FASTNN_")}, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_environment_sets_the_start_value():
    result = _run("import fastnn; print(fastnn.options().backend)", FASTNN_BACKEND="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reference"


NOT_A_BOOLEAN = ("is not a boolean; use 1, true, yes or on for True, 0, false, no or off for False, or leave it empty "
                 "for the default")
BAD_ENVIRONMENT = [
    ("FASTNN_BACKEND", "cuda", "is an unknown backend; choose one of auto, jit, reference, verify"),
    ("FASTNN_PARALLEL", "maybe", NOT_A_BOOLEAN),
    ("FASTNN_CACHE", "sometimes", NOT_A_BOOLEAN),
    ("FASTNN_WINOGRAD", "F4", NOT_A_BOOLEAN),
]


@pytest.mark.parametrize("name, value, message", BAD_ENVIRONMENT)
def test_a_bad_environment_value_raises_when_the_options_are_first_used_not_on_import(name, value, message):
    """It once raised inside `import fastnn`, so even `fastnn --help` printed a traceback."""
    code = (
        "import fastnn\n"
        "for attempt in range(2):  # on every use, not only the first\n"
        "    try:\n"
        "        fastnn.options()\n"
        "    except ValueError as error:\n"
        "        print(error)\n"
    )
    result = _run(code, **{name: value})
    assert result.returncode == 0, result.stderr
    expected = f"fastnn.options: environment variable {name}={value!r} {message}"
    assert result.stdout.splitlines() == [expected] * 2, result.stdout
    help_text = subprocess.run([sys.executable, "-m", "fastnn", "--help"], capture_output=True, text=True,
                               env={**os.environ, name: value}, timeout=120)
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: fastnn"), help_text.stderr


def test_a_setting_made_in_code_does_not_read_its_bad_environment_variable():
    """backend='reference' set in code wins over FASTNN_BACKEND=cuda (in a block, then for the process); the
    names not set in code are still read from the environment, and a bad one raises when the options are used."""
    code = (
        "import numpy as np, fastnn\n"
        "from fastnn.layers import affine_forward\n"
        "with fastnn.options(backend='reference'):\n"
        "    print(fastnn.options().backend, affine_forward(np.ones((1, 2)), np.ones((2, 1)), np.zeros(1))[0][0, 0])\n"
        "try:\n"
        "    fastnn.options()\n"
        "except ValueError as error:\n"
        "    print('after the block:', error)\n"
        "fastnn.options(backend='reference')\n"
        "print(fastnn.options())\n"
    )
    result = _run(code, FASTNN_BACKEND="cuda", FASTNN_PARALLEL="0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "reference 2.0",
        "after the block: fastnn.options: environment variable FASTNN_BACKEND='cuda' is an unknown backend; "
        "choose one of auto, jit, reference, verify",
        "fastnn.options(backend='reference', cache=False, parallel=False, winograd=True)",
    ]
    result = _run("import fastnn; fastnn.options(backend='reference')", FASTNN_BACKEND="cuda", FASTNN_PARALLEL="2")
    assert result.returncode != 0 and "FASTNN_PARALLEL='2' is not a boolean" in result.stderr


def test_a_commands_backend_option_wins_over_a_bad_environment_variable():
    env = {**os.environ, "FASTNN_BACKEND": "cuda", "NUMBA_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "fastnn", "check", "--backend", "reference"], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "(backend reference)" in result.stdout and "all checks passed" in result.stdout


@pytest.mark.parametrize("variable, value, argv", [
    ("FASTNN_BACKEND", "cuda", ["check"]),
    ("FASTNN_PARALLEL", "maybe", ["check", "--backend", "reference"]),
])
def test_a_bad_environment_variable_is_a_commands_message_not_a_traceback(variable, value, argv, tmp_path):
    env = {**os.environ, variable: value}
    result = subprocess.run([sys.executable, "-m", "fastnn", *argv], capture_output=True, text=True, env=env,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"fastnn {argv[0]}: environment variable {variable}={value!r} ")


def test_the_parallel_setting_in_code_wins_over_fastnn_parallel():
    """kernels/_jit.py once read FASTNN_PARALLEL itself: with it 0, options(parallel=True) still ran serial builds
    (and FASTNN_PARALLEL=maybe meant False there, silently)."""
    code = (
        "import numba, fastnn\n"
        "fastnn.options(parallel=True)\n"
        "from fastnn.kernels import pool as K\n"
        "from fastnn.kernels._jit import variant\n"
        "numba.set_num_threads(3)\n"
        "print(variant(K.max_pool_backward_2x2, fastnn.options().parallel) is K.max_pool_backward_2x2)\n"
        "fastnn.options(parallel=False)\n"
        "print(variant(K.max_pool_backward_2x2, fastnn.options().parallel) is K.max_pool_backward_2x2)\n"
    )
    for value in ("0", "maybe"):
        result = _run(code, FASTNN_PARALLEL=value, NUMBA_NUM_THREADS="3")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["True", "False"]


def test_the_cache_setting_is_fixed_when_the_kernels_are_first_imported():
    """options(cache=True) before the first compiled layer turns numba's cache on (the kernels once read only
    FASTNN_CACHE); set afterwards, it warns that it changes nothing, and options() still shows the cache in use."""
    code = (
        "import warnings, fastnn\n"
        "fastnn.options(cache=True)\n"
        "from fastnn.kernels import _jit, pool as K\n"
        "print(_jit.CACHE, type(K.max_pool_backward_2x2._cache).__name__)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    fastnn.options(cache=True)\n"
        "    fastnn.options(cache=False)\n"
        "print(len(caught), caught[-1].filename == '<string>', caught[-1].message)\n"
        "print(fastnn.options().cache)\n"
        "with fastnn.options(cache=False) as settings:\n"
        "    print(settings.cache, fastnn.options().cache)\n"
    )
    result = _run(code, FASTNN_CACHE="sometimes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "True FunctionCache"
    assert lines[1] == ("1 True fastnn.options: cache=False changes nothing now: the kernels were set up with "
                        "cache=True when they were first imported (the first compiled layer, optimizer step or "
                        "fastnn.warmup()); set it (or FASTNN_CACHE) before that")
    assert lines[2:] == ["True", "True True"]  # options() showed cache=False, which the kernels do not use
    result = _run("from fastnn.kernels import _jit", FASTNN_CACHE="sometimes")
    assert "FASTNN_CACHE='sometimes' is not a boolean" in result.stderr


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


def test_modules_are_attributes_of_fastnn_imported_on_first_use():
    """The README writes fastnn.allocator.keep_freed_memory() after `import fastnn`: it raised AttributeError."""
    result = _run("import sys, fastnn\n"
                  "print('fastnn.checkpoint' in sys.modules, 'numba' in sys.modules)\n"
                  "print(callable(fastnn.allocator.keep_freed_memory), callable(fastnn.checkpoint.load_checkpoint))\n"
                  "print(all(hasattr(fastnn, name) for name in fastnn.SUBMODULES), 'solver' in dir(fastnn))\n"
                  "fastnn.no_such_module")
    assert result.stdout.split() == ["False", "False", "True", "True", "True", "True"], result.stderr
    assert "AttributeError: module 'fastnn' has no attribute 'no_such_module'" in result.stderr


def test_verify_backend_returns_results_equal_to_reference():
    x, w, b = np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0)
    with fastnn.options(backend="verify"):
        out, _ = affine_forward(x, w, b)
    np.testing.assert_array_equal(out, x @ w + b)


def test_verify_accepts_param_dicts_carrying_objects_that_cannot_be_copied():
    """The layers ignore a param dict's extra keys; verify copied whole dicts for its reference run (deepcopy), so
    a lock there raised TypeError where auto and reference ran."""
    from fastnn.fast_layers import conv_forward_fast
    from fastnn.layers import batchnorm_forward, dropout_forward

    lock = threading.Lock()
    x = np.random.default_rng(0).standard_normal((4, 3))
    bn_param = {"mode": "train", "lock": lock}
    with fastnn.options(backend="verify"):
        out, _ = batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
        dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1, "lock": lock})
        conv_param = {"stride": 1, "pad": 0, "lock": lock}
        conv_forward_fast(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), np.zeros(1), conv_param)
    assert bn_param["lock"] is lock and bn_param["running_mean"].shape == (3,)
    with fastnn.options(backend="reference"):
        expected, _ = batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_a_cache_fixed_inside_a_block_stays_the_process_setting_after_it():
    """The kernels first imported inside `with options(cache=True)` cache for good: options() said cache=False
    once the block had ended, and options(cache=options().cache) then warned."""
    code = (
        "import warnings, fastnn\n"
        "with fastnn.options(cache=True):\n"
        "    from fastnn.kernels import _jit\n"
        "warnings.simplefilter('error')\n"
        "print(_jit.CACHE, fastnn.options().cache)\n"
        "fastnn.options(cache=fastnn.options().cache)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_interleaved_with_blocks_of_two_threads_leave_the_settings_as_they_were():
    """A `with options(...)` sets the value in __init__ and takes it back in __enter__: a second thread's call in
    between recorded the first one's value as the one to go back to, and left it in force for good."""
    import sys
    import threading

    def blocks(backend):
        for _ in range(20000):
            with fastnn.options(backend=backend):
                pass

    before = fastnn.options().backend
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often enough to interleave __init__ and __enter__
    try:
        threads = [threading.Thread(target=blocks, args=(b,)) for b in ("reference", "jit")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert fastnn.options().backend == before


def test_blocks_of_equal_settings_each_take_back_only_their_own():
    """Two threads' `with options(backend='jit')` blocks, interleaved: the take-back compared weak references with
    ==, which compares live calls by their settings, so another block of the same settings was taken for this one
    and 'jit' stayed in force after every block had ended (a reviewer's order, in one thread)."""
    before = fastnn.options().backend
    first, second = fastnn.options(backend="jit"), fastnn.options(backend="jit")
    with first:
        pass
    del first
    third = fastnn.options(backend="jit")
    with second:
        pass
    with third:
        pass
    assert fastnn.options().backend == before


def test_with_blocks_made_before_they_are_entered_take_back_only_their_own():
    from fastnn import _options

    before, known = fastnn.options().backend, _options._known.get("backend")
    try:
        outer, inner = fastnn.options(backend="reference"), fastnn.options(backend="jit")
        assert fastnn.options().backend == "jit"  # both applied as plain calls, the later last
        with outer:
            with inner:
                assert fastnn.options().backend == "jit"
            assert fastnn.options().backend == "reference"
        assert fastnn.options().backend == before  # it was left at 'reference'
        fastnn.options(backend="verify")  # a plain call stands
        with fastnn.options(backend="jit"):
            pass
        assert fastnn.options().backend == "verify"
    finally:
        with _options._lock:
            _options._set_base(backend=known)
            _options._setters.pop("backend", None)


def test_an_empty_environment_variable_means_the_default():
    """FASTNN_PARALLEL= turned parallel kernels off, while FASTNN_BACKEND= meant the default backend."""
    names = ["FASTNN_PARALLEL", "FASTNN_WINOGRAD", "FASTNN_CACHE", "FASTNN_BACKEND"]
    result = _run("import fastnn\nprint(fastnn.options())\n", **dict.fromkeys(names, " "))
    assert result.returncode == 0, result.stderr
    assert "backend='auto', cache=False, parallel=True, winograd=True" in result.stdout


def test_a_block_of_another_thread_leaves_with_its_own_end():
    """A block copied the settings of the latest block open, another thread's included: that thread's
    winograd=False stayed in force inside this block after that thread's block had ended."""
    opened, closed, done = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def other():
        with fastnn.options(winograd=False):
            opened.set()
            closed.wait()
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    opened.wait()
    with fastnn.options(backend="reference"):
        seen["both"] = fastnn.options()
        closed.set()
        done.wait()
        seen["mine"] = fastnn.options()
    thread.join()
    assert (seen["both"].backend, seen["both"].winograd) == ("reference", False)  # every open block applies
    assert (seen["mine"].backend, seen["mine"].winograd) == ("reference", True)


_FORK_SCRIPTS = {
    "another thread changing the settings": """
import os, signal, threading, fastnn
stop = False
def churn():
    while not stop:
        with fastnn.options(backend="reference"):
            pass
t = threading.Thread(target=churn); t.start()
seen = []
for _ in range(100):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a hung child dies of it, and writes nothing
        with fastnn.options(backend="jit"):
            pass
        os.write(w, fastnn.options().backend.encode()); os._exit(0)
    os.close(w); seen.append(os.read(r, 100).decode()); os.close(r); os.waitpid(pid, 0)
stop = True; t.join()
assert len(seen) == 100 and set(seen) <= {"auto", "reference"}, sorted(set(seen))
""",
    "workers forked by the pool's own thread": """
import multiprocessing as mp, fastnn
def child_backend(_):
    return fastnn.options().backend
if __name__ == "__main__":
    with fastnn.options(backend="reference"):
        with mp.get_context("fork").Pool(1, maxtasksperchild=1) as pool:  # later workers: the pool's thread forks
            seen = pool.map(child_backend, range(4), chunksize=1)
    assert seen == ["reference"] * 4, seen
""",
    "another thread's block open": """
import multiprocessing as mp, threading, fastnn
inside, leave = threading.Event(), threading.Event()
def evaluator():
    with fastnn.options(backend="reference"):
        inside.set(); leave.wait()
def child_backend(_):
    return fastnn.options().backend
if __name__ == "__main__":
    t = threading.Thread(target=evaluator); t.start(); inside.wait()
    pool = mp.get_context("fork").Pool(1)
    leave.set(); t.join()
    seen = pool.map(child_backend, range(2))
    pool.close(); pool.join()
    assert fastnn.options().backend == "auto" and seen == ["reference"] * 2, seen
""",
}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("case", list(_FORK_SCRIPTS))
def test_a_forked_child_keeps_the_settings_in_force_at_the_fork_and_a_free_lock(case):
    """A child forked while another thread was changing the settings hung at its first options() (the lock was
    held at the fork). It keeps the settings in force at the fork, every thread's open blocks included: a pool's
    workers run under the block its map was called in, whichever thread forks them (the pool's own thread, for
    maxtasksperchild)."""
    done = subprocess.run([sys.executable, "-c", _FORK_SCRIPTS[case]], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_fastnn_imports_and_runs_where_the_platform_cannot_fork():
    """The fork handlers made `import fastnn` an AttributeError where os.register_at_fork is missing (Windows)."""
    code = ("import os\n"
            "del os.register_at_fork\n"
            "import numpy as np, fastnn\n"
            "from fastnn.layers import relu_forward\n"
            "with fastnn.options(backend='jit'):\n"
            "    assert relu_forward(-np.ones(3))[0].max() == 0\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
