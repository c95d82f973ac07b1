import os
import subprocess
import sys
import textwrap

import numba
import pytest

import fastnn

THREAD_POOL_SCRIPT = textwrap.dedent("""
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    import fastnn
    from fastnn.layer_utils import conv_relu_pool_forward, conv_relu_pool_backward, affine_bn_relu_forward

    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8))
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
    b = np.zeros(4)
    conv, pool = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}

    def step(_):
        out, cache = conv_relu_pool_forward(x, w, b, conv, pool)
        dx, dw, db = conv_relu_pool_backward(np.ones_like(out), cache)
        a, _ = affine_bn_relu_forward(out, np.ones((64, 5)), np.zeros(5), np.ones(5), np.zeros(5), {"mode": "train"})
        return out.sum() + dx.sum() + dw.sum() + a.sum()

    with fastnn.options(backend="jit"):
        serial = step(None)
        with ThreadPoolExecutor(max_workers=8) as pool_:
            results = list(pool_.map(step, range(32)))
    assert all(r == serial for r in results), (serial, results)
    print("ok")
""")


def _omp_layer_available():
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


def _run_with_layer(script, layer):
    """Run `script` in a fresh interpreter with NUMBA_THREADING_LAYER=layer (unset for None)."""
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer:
        env["NUMBA_THREADING_LAYER"] = layer
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)


OMP = pytest.param("omp", marks=pytest.mark.skipif(not _omp_layer_available(), reason="numba has no omp layer here"))


@pytest.mark.parametrize("layer", [
    None,  # fastnn's choice, workqueue: calls off the main thread run the serial kernels
    OMP,
])
def test_kernels_called_from_eight_threads_do_not_abort(layer):
    result = _run_with_layer(THREAD_POOL_SCRIPT, layer)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_num_threads_reads_sets_and_restores():
    before = fastnn.num_threads()
    assert before == numba.get_num_threads()
    with fastnn.num_threads(1) as n:
        assert n == 1 and numba.get_num_threads() == 1
    assert fastnn.num_threads() == before
    with pytest.raises(RuntimeError):
        with fastnn.num_threads(1):
            raise RuntimeError("boom")
    assert fastnn.num_threads() == before


@pytest.mark.parametrize("bad,error", [(0, ValueError), (10**6, ValueError), (1.5, TypeError), (True, TypeError)])
def test_num_threads_rejects_bad_counts(bad, error):
    with pytest.raises(error, match="num_threads"):
        fastnn.num_threads(bad)


def test_warmup_rejects_unknown_families_and_dtypes():
    with pytest.raises(ValueError, match="unknown op families"):
        fastnn.warmup(ops=["attention"])
    with pytest.raises(ValueError, match="float32 or float64"):
        fastnn.warmup(dtypes=("int8",))


def test_warmup_compiles_the_fused_conv_relu_pool_backward():
    from fastnn._options import current
    from fastnn.kernels import pool
    from fastnn.kernels._jit import variant

    fastnn.warmup(dtypes=("float64",), ops=["fused"])
    built = variant(pool.max_pool_relu_backward_2x2, current().parallel)
    assert any(sig[0].dtype == numba.float64 for sig in built.signatures)


LAYER_SCRIPT = textwrap.dedent("""
    import numpy as np, numba
    from fastnn.layers import relu_forward
    import fastnn
    with fastnn.options(backend="jit"):
        relu_forward(np.ones(1000))
    print(numba.threading_layer())
""")


@pytest.mark.parametrize("chosen", [None, "workqueue", OMP])
def test_threading_layer_is_workqueue_unless_the_user_chose_one(chosen):
    result = _run_with_layer(LAYER_SCRIPT, chosen)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == (chosen or "workqueue")


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_one_thread_runs_the_serial_build_and_more_run_the_parallel_kernel():
    from fastnn.kernels import norm
    from fastnn.kernels._jit import variant

    with fastnn.num_threads(1):
        one = variant(norm.normalise_rows, True)
    with fastnn.num_threads(2):
        two = variant(norm.normalise_rows, True)  # the suite lets two threads run parallel builds (conftest)
    assert two is norm.normalise_rows
    assert one is not two and not one.targetoptions.get("parallel")


def test_parallel_pays_from_two_threads_except_under_workqueue(monkeypatch):
    from fastnn.kernels import _jit

    monkeypatch.setattr(_jit, "WORKQUEUE_MIN_THREADS", 3)  # the default, which the suite's fixture lowers
    for layer, two_pays in (("workqueue", False), ("omp", True), ("tbb", True)):
        monkeypatch.setattr(numba, "threading_layer", lambda layer=layer: layer)
        assert not _jit.parallel_pays(1)
        assert _jit.parallel_pays(2) is two_pays
        assert _jit.parallel_pays(3) and _jit.parallel_pays(8)
