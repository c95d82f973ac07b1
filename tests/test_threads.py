import gc
import os
import subprocess
import sys
import textwrap
import warnings

import numba
import numpy as np
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


def test_num_threads_names_where_its_limit_comes_from():
    with pytest.raises(ValueError, match=r"n must be between 1 and \d+ \(numba's limit: NUMBA_NUM_THREADS, by "
                                         r"default the CPUs this process may use\), got 0"):
        fastnn.num_threads(0)


def test_a_num_threads_call_outside_a_with_block_warns_that_it_changed_nothing():
    before = fastnn.num_threads()
    with pytest.warns(RuntimeWarning, match=r"fastnn.num_threads\(1\) changed nothing: the count applies inside "
                                            r"`with fastnn.num_threads\(1\):` only"):
        fastnn.num_threads(1)
        gc.collect()  # the call's result is dropped at once in CPython; elsewhere when collected
    assert fastnn.num_threads() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fastnn.num_threads(1):
            pass
        block = fastnn.num_threads(1)
        with block:
            pass
        del block
        gc.collect()


def test_num_threads_decorates_a_function():
    """As a contextmanager it could; the block class that warns of a call never entered at first could not."""
    before = fastnn.num_threads()

    @fastnn.num_threads(1)
    def inside():
        return fastnn.num_threads()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [inside(), inside()] == [1, 1]
        gc.collect()
    assert fastnn.num_threads() == before


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two distinct thread counts")
def test_one_block_object_entered_in_two_threads_restores_each_threads_count():
    """The object kept one stack of entered blocks: the thread that left first popped the other's block and
    took its count (a's 1 came back as b's 2, and b's 2 as a's 1)."""
    import threading

    shared = fastnn.num_threads(2)
    a_entered, b_entered, a_left = threading.Event(), threading.Event(), threading.Event()
    after = {}

    def a():
        with fastnn.num_threads(1):
            with shared:
                a_entered.set()
                b_entered.wait(10)
            after["a"] = fastnn.num_threads()
            a_left.set()

    def b():
        with fastnn.num_threads(2):
            a_entered.wait(10)
            with shared:
                b_entered.set()
                a_left.wait(10)
            after["b"] = fastnn.num_threads()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert after == {"a": 1, "b": 2}


def test_warmup_rejects_unknown_families_and_dtypes():
    with pytest.raises(ValueError, match="unknown op families"):
        fastnn.warmup(ops=["attention"])
    with pytest.raises(ValueError, match="float32 or float64"):
        fastnn.warmup(dtypes=("int8",))
    with pytest.raises(ValueError, match=r"unknown op families \['attention'\]"):  # not ['a', 'e', 'i', ...]
        fastnn.warmup(ops="attention")
    with pytest.raises(ValueError, match=r"float32 or float64, got \['int8'\]"):
        fastnn.warmup(dtypes=np.int8)
    with pytest.raises(ValueError, match=r"float32 or float64, got \['>f8'\]"):  # was ['float64']
        fastnn.warmup(dtypes=[np.dtype(">f8")])
    with pytest.raises(ValueError, match=r"float32 or float64, got \[',4'\]"):  # numpy's parser: a SyntaxError
        fastnn.warmup(dtypes=[",4"])


def test_warmup_takes_one_family_and_one_dtype_as_given():
    """ops="conv" was iterated letter by letter, dtypes=np.float32 (a type) was not iterable."""
    assert fastnn.warmup(dtypes=np.float64, ops="activations") >= 0
    assert fastnn.warmup(dtypes=np.dtype("float64"), ops="activations") >= 0


def test_warmup_compiles_the_fused_conv_relu_pool_backward():
    from fastnn._options import current
    from fastnn.kernels import pool
    from fastnn.kernels._jit import variant

    fastnn.warmup(dtypes=("float64",), ops=["fused"])
    built = variant(pool.max_pool_relu_backward_2x2, current().parallel)
    assert any(sig[0].dtype == numba.float64 for sig in built.signatures)


def _compiled_signatures():
    """How many signatures each kernel dispatcher holds, compiled or loaded from the cache."""
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    from fastnn import kernels
    from fastnn.kernels import _jit

    dispatchers = {f"serial build of {build.py_func.__qualname__}": build for build in _jit._serial_builds.values()}
    for module_info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"fastnn.kernels.{module_info.name}")
        dispatchers.update({f"{module_info.name}.{name}": obj for name, obj in vars(module).items()
                            if isinstance(obj, CPUDispatcher)})
    return {name: len(dispatcher.signatures) for name, dispatcher in dispatchers.items()}


def _every_compiled_entry_point(dtype):
    """The public layers, sandwiches, optimizers and models, each geometry with its own kernels among them."""
    from fastnn import fast_layers as FL
    from fastnn import layer_utils as LU
    from fastnn import layers as L
    from fastnn import optim
    from fastnn.classifiers.cnn import ThreeLayerConvNet
    from fastnn.classifiers.fc_net import FullyConnectedNet

    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    for x_shape, w_shape, conv in [((2, 8, 6, 6), (4, 8, 3, 3), {"stride": 1, "pad": 1}),  # Winograd
                                   ((2, 3, 8, 8), (4, 3, 7, 7), {"stride": 1, "pad": 3}),
                                   ((1, 3, 8, 8), (4, 3, 7, 7), {"stride": 1, "pad": 3}),  # one-image blocks
                                   ((2, 3, 8, 8), (4, 3, 1, 1), {"stride": 1, "pad": 0}),
                                   ((2, 3, 9, 9), (4, 3, 3, 3), {"stride": 2, "pad": 0})]:
        x, w, b = r(*x_shape), r(*w_shape), r(w_shape[0])
        for forward, backward in [(FL.conv_forward_fast, FL.conv_backward_fast),
                                  (L.conv_forward_naive, L.conv_backward_naive),
                                  (LU.conv_relu_forward, LU.conv_relu_backward)]:
            out, cache = forward(x, w, b, conv)
            backward(out, cache)
        out, cache = LU.conv_bn_relu_forward(x, w, b, r(w_shape[0]), r(w_shape[0]), conv, {"mode": "train"})
        LU.conv_bn_relu_backward(out, cache)
    for size, stride in [(2, 2), (3, 1), (2, 1)]:
        out, cache = FL.max_pool_forward_fast(r(2, 3, 6, 6), {"pool_height": size, "pool_width": size,
                                                              "stride": stride})
        FL.max_pool_backward_fast(out, cache)
        out, cache = LU.conv_relu_pool_forward(r(2, 3, 6, 6), r(4, 3, 3, 3), r(4), {"stride": 1, "pad": 1},
                                               {"pool_height": size, "pool_width": size, "stride": stride})
        LU.conv_relu_pool_backward(out, cache)
    for forward, backward, x_shape in [(L.batchnorm_forward, L.batchnorm_backward, (4, 5)),
                                       (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward, (2, 5, 3, 3))]:
        bn_param = {"mode": "train"}
        out, cache = forward(r(*x_shape), r(5), r(5), bn_param)
        backward(out, cache)
        forward(r(*x_shape), r(5), r(5), {**bn_param, "mode": "test"})
    bn_param = {"mode": "train"}
    out, cache = LU.affine_bn_relu_forward(r(4, 3), r(3, 5), r(5), r(5), r(5), bn_param)
    LU.affine_bn_relu_backward(out, cache)
    LU.affine_bn_relu_forward(r(4, 3), r(3, 5), r(5), r(5), r(5), {**bn_param, "mode": "test"})
    out, cache = LU.affine_ln_relu_forward(r(4, 3), r(3, 5), r(5), r(5), r(5), {})
    LU.affine_ln_relu_backward(out, cache)
    out, cache = L.layernorm_forward(r(1, 5), r(5), r(5), {})
    L.layernorm_backward(out, cache)
    out, cache = L.spatial_groupnorm_forward(r(2, 6, 3, 3), r(6), r(6), 3, {})
    L.spatial_groupnorm_backward(out, cache)
    for dropout_param in [{"mode": "train", "p": 0.3}, {"mode": "train", "p": 0.3, "seed": 1}, {"mode": "test"}]:
        out, cache = L.dropout_forward(r(4, 5), {"p": 0.3, **dropout_param})
        L.dropout_backward(out, cache)
    for forward, backward in [(L.relu_forward, L.relu_backward), (L.sigmoid_forward, L.sigmoid_backward),
                              (L.tanh_forward, L.tanh_backward), (L.leaky_relu_forward, L.leaky_relu_backward)]:
        out, cache = forward(r(2, 3, 4))
        backward(out, cache)
    L.softmax_loss(r(3, 4), np.array([0, 1, 2]))
    L.svm_loss(r(3, 4), np.array([0, 1, 2]))
    out, cache = LU.affine_relu_forward(r(2, 3, 2), r(6, 4), r(4))
    LU.affine_relu_backward(out, cache)
    for rule in ["sgd", "sgd_momentum", "rmsprop", "adam", "nesterov", "adagrad"]:
        w, config = r(3, 4), None
        for _ in range(2):
            w, config = getattr(optim, rule)(w, r(3, 4), config)
    for normalization in [None, "batchnorm", "layernorm"]:
        model = FullyConnectedNet([5, 4], input_dim=6, num_classes=3, normalization=normalization, dropout=0.5,
                                  dtype=dtype, seed=0)
        model.loss(r(4, 6), np.array([0, 1, 2, 0]))
        model.loss(r(4, 6))
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=7, hidden_dim=5, dtype=dtype)
    model.loss(r(2, 3, 8, 8), np.array([0, 1]))
    model.loss(r(2, 3, 8, 8))


def test_after_warmup_no_layer_optimizer_or_model_compiles_a_kernel():
    """warmup() compiled neither the Winograd kernels (its 3x3 case once had too few input channels for them), nor
    the pool kernels of geometries other than 2x2/2, nor test-mode batchnorm's or adam's: their first real call
    compiled them, up to 40 s for Winograd."""
    fastnn.warmup(dtypes=("float64",))
    before = _compiled_signatures()
    with fastnn.options(backend="jit"):
        _every_compiled_entry_point(np.float64)
    after = _compiled_signatures()
    assert {name: count for name, count in after.items() if count != before.get(name, 0)} == {}


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


@pytest.mark.parametrize("first", [
    "fastnn.num_threads()",
    "fastnn.num_threads(1).__enter__()",
    "fastnn.bench.environment(1)",
    "fastnn.bench_e2e.default_threads()",
    "fastnn.tune.trial.single_threaded().__enter__()",
])
def test_fastnn_calls_that_start_numbas_threads_choose_workqueue_first(first):
    """Reading or setting numba's thread count starts its threads and fixes the layer: each of these once left
    numba's own choice (omp where libgomp exists) for every kernel after, `fastnn bench --threads 2` included."""
    script = "import fastnn, fastnn.bench, fastnn.bench_e2e, fastnn.tune.trial\n" + first + "\n" + LAYER_SCRIPT
    result = _run_with_layer(script, None)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "workqueue"


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


@pytest.mark.parametrize("kwargs, message", [
    ({"dtypes": None}, r"fastnn.warmup: dtypes must be a name or a list of names, got None"),
    ({"dtypes": 5}, r"fastnn.warmup: dtypes must be a name or a list of names, got 5"),
    ({"ops": 5}, r"fastnn.warmup: ops must be a name or a list of names, got 5"),
])
def test_warmup_names_arguments_that_are_no_names(kwargs, message):
    with pytest.raises(TypeError, match=message):
        fastnn.warmup(**kwargs)
    with pytest.raises(ValueError, match=r"float32 or float64, got \['nope'\]"):
        fastnn.warmup(dtypes=["nope"])


def test_warmup_leaves_the_backend_of_every_other_thread_alone():
    """warmup() opened a process-wide `with options(backend='jit')`: a reference or verify run in another thread
    took the compiled path meanwhile; and another thread's `with options(backend='reference')` made the warmup
    compile nothing."""
    import threading

    from fastnn import _options

    seen, go, done = [], threading.Event(), threading.Event()

    def watch():
        go.wait()
        while not done.is_set():
            seen.append(_options.current().backend)

    with fastnn.options(backend="reference"):
        watcher = threading.Thread(target=watch)
        watcher.start()
        go.set()
        try:
            with _options.backend_here("jit"):
                assert _options.current().backend == "jit"
                fastnn.warmup(dtypes="float32", ops="activations")
        finally:
            done.set()
            watcher.join()
    assert seen and set(seen) == {"reference"}


_STARTS_NUMBAS_THREADS = {
    "fastnn.num_threads()": "fastnn.num_threads()\n",
    "numba.get_num_threads()": "import numba\nnumba.get_num_threads()\n",
    "a user's prange": ("import numba\n"
                        "@numba.njit(parallel=True)\n"
                        "def users_own(a):\n"
                        "    total = 0.0\n"
                        "    for i in numba.prange(a.size):\n"
                        "        total += a[i]\n"
                        "    return total\n"
                        "users_own(np.ones(1000))\n"),
}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("layer", ["workqueue", "omp"])
@pytest.mark.parametrize("started_by", list(_STARTS_NUMBAS_THREADS))
def test_a_child_forked_after_numbas_threads_started_runs_serial_kernels(layer, started_by):
    """A child forked after the parent's numba threads started ran parallel kernels on its copy of the pool (GNU
    OpenMP killed it: 'fork() called from a process already using GNU OpenMP'): after fastnn.num_threads() read
    the count, until only a parallel kernel marked the threads started; and where the user's own code started
    them before fastnn had imported its kernels, which were first imported in the child."""
    script = (
        "import multiprocessing, numpy as np, fastnn\n"
        "from fastnn.layers import relu_forward\n"
        + _STARTS_NUMBAS_THREADS[started_by] +
        "def child():\n"
        "    assert fastnn._forked.numba_pool_inherited\n"
        "    assert relu_forward(-np.ones((1000, 1000)))[0].max() == 0\n"
        "if __name__ == '__main__':\n"
        "    p = multiprocessing.get_context('fork').Process(target=child)\n"
        "    p.start(); p.join(60)\n"
        "    raise SystemExit(p.exitcode)\n"
    )
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    if layer == "omp" and "No threading layer could be loaded" in done.stderr:
        pytest.skip("numba's omp layer is not available here")
    assert done.returncode == 0, done.stderr[-2000:]
