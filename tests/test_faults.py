"""Faults: an unusable numba cache, two processes filling one cache, a writer killed mid-checkpoint, a disk that
fills up. Risky runs happen in subprocesses so a crash fails the test instead of killing pytest."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastnn.checkpoint import load_checkpoint, save_checkpoint

FIRST_CONV = textwrap.dedent("""
    import warnings, numpy as np, fastnn
    from fastnn.layer_utils import conv_forward_fast, conv_backward_fast
    warnings.simplefilter("always")
    x = np.ones((1, 2, 5, 5)); w = np.ones((3, 2, 3, 3)); b = np.zeros(3)
    with fastnn.options(backend="jit"):
        out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        conv_backward_fast(out, cache)
    print("ok", float(out.sum()))
""")


def _python(code, timeout=300, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def test_unusable_cache_directory_still_runs(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")  # NUMBA_CACHE_DIR below a regular file cannot be created
    result = _python(FIRST_CONV, FASTNN_CACHE="1", NUMBA_CACHE_DIR=str(blocker / "cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
    # numba moved on to its next location (__pycache__ beside the kernels) without a word; fastnn says where
    # (or, where numba has no location at all, that the kernels compile in memory), once
    moved = f"fastnn: NUMBA_CACHE_DIR={str(blocker / 'cache')!r} cannot be written, so numba caches the kernels in"
    assert result.stderr.count(moved) + result.stderr.count("numba cannot use its cache") == 1, result.stderr


def test_a_cache_numba_refuses_is_one_warning_and_compiles_in_memory(monkeypatch):
    # As root every directory is writable, so make numba's cache set-up fail the way it does for a user
    # with no writable location: at decoration time, with RuntimeError.
    from numba.core import caching

    from fastnn.kernels import _jit

    def refuse(self, py_func):
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(caching.CacheImpl, "__init__", refuse)
    monkeypatch.setattr(_jit, "CACHE", True)
    monkeypatch.setattr(_jit, "_cache_warned", False)
    with pytest.warns(RuntimeWarning, match="the kernel cache is on but numba cannot use its cache"):
        @_jit.kernel
        def double(x):
            return 2 * x

    assert double(21) == 42


def test_missing_cache_directory_is_created(tmp_path):
    cache = tmp_path / "new" / "cache"
    result = _python(FIRST_CONV, FASTNN_CACHE="1", NUMBA_CACHE_DIR=str(cache))
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(name.endswith(".nbi") for _, _, files in os.walk(cache) for name in files)


def test_two_processes_warming_one_cache_at_once(tmp_path):
    env = {**os.environ, "FASTNN_CACHE": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_CONV], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]
    again = _python(FIRST_CONV, FASTNN_CACHE="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))  # reads the cache
    assert again.returncode == 0 and again.stdout == outputs[0][0]


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from fastnn.checkpoint import save_checkpoint
    path = sys.argv[1]
    big = np.random.default_rng(0).standard_normal((2000, 2000))
    save_checkpoint(path, {"params": {"W": big + 1}, "epoch": 1})
    print(1, flush=True)

    class Stalling:  # the file of the next checkpoint, which stops for good half way through
        def __init__(self, f):
            self.f, self.written = f, 0
        def write(self, data):
            n = self.f.write(data)
            self.written += n
            if self.written > big.nbytes // 2:
                self.f.flush()
                print("mid-write", flush=True)
                time.sleep(600)
            return n
        def __getattr__(self, name):
            return getattr(self.f, name)

    real_savez = np.savez
    np.savez = lambda f, **arrays: real_savez(Stalling(f), **arrays)
    save_checkpoint(path, {"params": {"W": big + 2}, "epoch": 2})
""")


def test_every_kernel_can_be_written_to_the_cache(tmp_path):
    """A kernel numba cannot cache (one calling numba.get_num_threads, say) would recompile in every process
    with FASTNN_CACHE=1 and say so only in a NumbaWarning."""
    code = "import warnings, fastnn\nwarnings.simplefilter('always')\nfastnn.warmup(dtypes=('float64',))\nprint('ok')"
    result = _python(code, timeout=600, FASTNN_CACHE="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    assert "Cannot cache" not in result.stderr, result.stderr[-2000:]


SERIAL_BUILD_STATS = textwrap.dedent("""
    import numpy as np, fastnn
    from fastnn.kernels import conv
    from fastnn.kernels._jit import variant
    from fastnn.layer_utils import conv_forward_fast, conv_backward_fast
    x = np.ones((1, 2, 5, 5)); w = np.ones((3, 2, 2, 2)); b = np.zeros(3)  # 2x2: im2col, never Winograd
    with fastnn.options(backend="jit"):
        out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        conv_backward_fast(out, cache)
    stats = variant(conv.im2col, True).stats
    print(variant(conv.im2col, True) is not conv.im2col, len(stats.cache_hits), len(stats.cache_misses))
""")


def test_serial_builds_are_cached_apart_from_the_parallel_ones(tmp_path):
    """On one numba thread the serial builds run; with FASTNN_CACHE=1 a second process loads them from the cache
    (it compiled them again before), under their own names, so a parallel build never loads serial code."""
    env = {"FASTNN_CACHE": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_NUM_THREADS": "1"}
    first = _python(SERIAL_BUILD_STATS, **env)
    second = _python(SERIAL_BUILD_STATS, **env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:] + second.stderr[-2000:]
    assert first.stdout.split() == ["True", "0", "1"]  # compiled, and written to the cache
    assert second.stdout.split() == ["True", "1", "0"]  # read back
    names = [name for _, _, files in os.walk(tmp_path / "cache") for name in files if name.endswith(".nbi")]
    assert any("im2col_serial-" in name for name in names)
    assert not any(".im2col-" in name for name in names)  # the parallel build never ran


NORM_DIGESTS = textwrap.dedent("""
    import hashlib, numpy as np, fastnn
    from fastnn import layers as L, layer_utils as U
    rng = np.random.default_rng(5)
    x4, g4 = rng.standard_normal((16, 32, 8, 8)), rng.standard_normal(32)
    x2, g2 = rng.standard_normal((64, 100)), rng.standard_normal(100)
    w, b = rng.standard_normal((100, 50)), rng.standard_normal(50)
    results = []
    with fastnn.options(backend="jit"):
        for forward, backward, args in [
                (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward, (x4, g4, g4, {"mode": "train"})),
                (L.spatial_groupnorm_forward, L.spatial_groupnorm_backward, (x4, g4, g4, 4, {})),
                (L.batchnorm_forward, L.batchnorm_backward, (x2, g2, g2, {"mode": "train"})),
                (L.layernorm_forward, L.layernorm_backward, (x2, g2, g2, {})),
                (U.affine_ln_relu_forward, U.affine_ln_relu_backward, (x2, w, b, g2[:50], g2[:50], {}))]:
            out, cache = forward(*args)
            results += [out, *backward(out, cache)]
    print(hashlib.sha256(b"".join(r.tobytes() for r in results)).hexdigest())
""")


def test_kernels_loaded_from_the_cache_give_the_bits_of_freshly_compiled_ones(tmp_path):
    """With 'nsz' among the fast-math flags, the float64 norms' sums came out otherwise (1e-17 to 3e-14) from a
    kernel loaded from numba's cache than from the same kernel compiled in the process that wrote it: a run
    was not bit-identical to the next one with FASTNN_CACHE=1."""
    env = {"FASTNN_CACHE": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    compiled, loaded = _python(NORM_DIGESTS, **env), _python(NORM_DIGESTS, **env)
    assert compiled.returncode == 0 and loaded.returncode == 0, compiled.stderr[-2000:] + loaded.stderr[-2000:]
    assert compiled.stdout == loaded.stdout


def test_a_writer_killed_mid_checkpoint_leaves_a_loadable_checkpoint(tmp_path):
    """Killed (SIGKILL: nothing runs after it) half way through writing its second checkpoint, the writer leaves
    the first one whole at the path; only its temporary file, half written, is left beside it."""
    path = tmp_path / "ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "1"  # one complete checkpoint exists
        assert proc.stdout.readline().strip() == "mid-write"  # half of the next one is on disk
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "ckpt.npz")
    assert len(left) == 1 and (tmp_path / left[0]).stat().st_size > 16e6  # the kill did land mid-write
    state = load_checkpoint(path)
    assert state["epoch"] == 1
    np.testing.assert_array_equal(state["params"]["W"], np.random.default_rng(0).standard_normal((2000, 2000)) + 1)


def test_disk_full_leaves_no_partial_file_and_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"params": {"W": np.ones(3)}, "epoch": 1})
    real_savez = np.savez

    def full_disk(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"params": {"W": np.zeros(3)}, "epoch": 2})
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]
    assert load_checkpoint(path)["epoch"] == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_names_the_file(tmp_path, damage):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"params": {"W": np.arange(1000.0)}, "epoch": 3})
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 50, "empty": b""}[damage])
    with pytest.raises(ValueError, match="ckpt.npz"):
        load_checkpoint(path)
