import ctypes
import glob
import json
import os
import re
import subprocess
import sys
from collections import Counter
from contextlib import ExitStack

import numpy as np
import pytest

from fastnn import bench
from fastnn.bench import OPS, format_report, measure, run


def test_fastnn_bench_quick_writes_the_report(tmp_path):
    path = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "bench", "--quick", "--ops", "pool", "--dtypes", "float32",
         "--rounds", "2", "--json", str(path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BLAS:" in result.stdout and "peaks measured now" in result.stdout
    assert "malloc: not changed by this report" in result.stdout
    assert "settings: parallel=" in result.stdout and ", winograd=" in result.stdout
    report = json.loads(path.read_text())
    assert report["environment"]["threads"] == 1
    (row,) = report["results"]
    assert row["op"] == "pool" and row["dtype"] == "float32" and row["unit"] == "GB/s"
    # --quick measures batches 8x smaller, and says so: it once printed and recorded the full shapes
    assert report["quick"] is True and row["shapes"] == {"x": [8, 32, 32, 32]}
    assert row["label"] == "max pool 2x2/2 on (8,32,32,32)" and row["label"] in result.stdout
    assert "(64,32,32,32)" not in result.stdout and "--quick: batches 8x smaller" in result.stdout
    for key in ("reference_ms", "jit_ms", "jit_over_reference", "jit_rate", "fraction_of_peak"):
        assert row[key] > 0


def test_keep_freed_memory_is_applied_and_reported(tmp_path):
    path = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "bench", "--quick", "--ops", "batchnorm", "--dtypes", "float32",
         "--rounds", "2", "--keep-freed-memory", "--json", str(path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    malloc = json.loads(path.read_text())["environment"]["malloc"]
    assert f"malloc: {malloc}" in result.stdout
    from fastnn.allocator import _glibc_mallopt

    assert malloc.startswith("keep_freed_memory() applied" if _glibc_mallopt() else "not changed")


def test_fused_op_is_set_against_its_bare_gemms_in_the_same_rounds():
    report = run(ops=["affine_bn_relu_256"], dtypes=("float32",), quick=True, rounds=2)
    (row,) = report["results"]
    assert row["jit_over_gemms"] > 0 and row["jit_over_reference"] > 0 and row["gemms_ms"] > 0
    assert "jit/GEMMs" in format_report(report)
    assert "  its three bare GEMMs" in format_report(report).splitlines()[-1]  # its time, on the line below
    assert report["quick"] is True and row["shapes"] == {"x": [32, 3072], "w": [3072, 512]}
    assert "affine-BN-ReLU N=32 D=3072 H=512" in format_report(report)


def test_torch_steps_return_their_gradients_instead_of_adding_them_into_grad(monkeypatch):
    """out.backward() added each round's gradients into the .grad kept from the round before: a further pass over
    every input that no other path makes (1.06-1.24x PyTorch's step for pool, dropout and the norms)."""
    torch = pytest.importorskip("torch")

    def backward(*args, **kwargs):
        raise AssertionError("a torch step accumulates into .grad")

    monkeypatch.setattr(torch.Tensor, "backward", backward)
    for op in OPS.values():
        built = op.build(np.float32, op.shapes(True))
        call, _ = bench.paths(built)["torch"]
        call()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_every_path_runs_once_a_round_and_after_every_other_equally_often(n):
    """Rounds that each started one path later kept the cyclic order: with 3 paths over 9 rounds jit ran straight
    after the reference 6 times and after torch 3 (the reference after jit 2), so it mostly inherited the cache
    of the path that had just read its inputs."""
    names = ["reference", "jit", "torch", "gemms", "fifth"][:n]
    cycle = max(1, n - 1)  # rounds after which every ordered pair has occurred once
    for rounds in (1, 3, 9, 2 * cycle, 3 * cycle):
        calls = []
        samples = measure({name: (lambda name=name, calls=calls: calls.append(name)) for name in names}, rounds)
        timed = calls[2 * n:]  # after the warm-up
        assert all(sorted(timed[r * n:(r + 1) * n]) == sorted(names) for r in range(rounds))
        assert all(len(times) == rounds for times in samples.values())
        follows = Counter(zip(timed, timed[1:]))
        pairs = [(a, b) for a in names for b in names if a != b]
        assert set(follows) <= set(pairs) or n == 1  # never straight after itself
        counts = [follows[pair] for pair in pairs]
        assert max(counts, default=0) - min(counts, default=0) <= 1, follows
        if rounds % cycle == 0:
            assert counts.count(rounds // cycle) >= len(pairs) - 1  # the cycle's wrap comes with the next round


def _buffers(inputs):
    return [a.detach().numpy() if hasattr(a, "detach") else a for a in inputs]


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_path_reads_its_own_copies_of_the_inputs(name):
    """The reference, jit and the GEMMs read the same arrays (only torch had its own), so jit ran on inputs the
    reference had just pulled into cache."""
    op = OPS[name]
    built = op.build(np.float32, op.shapes(True))
    paths = bench.paths(built)
    assert {"reference", "jit"} <= set(paths) and ("gemms" in paths) == ("gemms" in built)
    arrays = {path: _buffers(inputs) for path, (_, inputs) in paths.items()}
    for path, inputs in arrays.items():
        assert len(inputs) == len(built["inputs"])
        for mine, original in zip(inputs, built["inputs"]):
            np.testing.assert_array_equal(mine, original)
            assert not np.shares_memory(mine, original)
            for other, theirs in arrays.items():
                if other != path:
                    assert not any(np.shares_memory(mine, a) for a in theirs), (path, other)


def test_unknown_op_is_refused():
    with pytest.raises(ValueError, match="unknown ops"):
        run(ops=["attention"])


def test_report_formats_every_op_name():
    assert set(OPS) >= {"conv_a", "conv_b", "pool", "dropout", "batchnorm", "layernorm"}
    report = {
        "environment": {"machine": "m", "processor": "p", "cpus": 2, "python": "3", "numpy": "2", "torch": "none",
                        "threads": 1, "OPENBLAS_CORETYPE": "(unset)", "OPENBLAS_L2_SIZE": "(unset)",
                        "blas": "threadpoolctl not installed"},
        "peaks": {"gemm_float32_gflops": 1.0, "gemm_float64_gflops": 1.0, "copy_gbs": 1.0},
        "rounds": 1,
        "results": [{"op": "pool", "dtype": "float32", "unit": "GB/s", "reference_ms": 2.0, "jit_ms": 1.0,
                     "jit_over_reference": 0.5, "jit_rate": 1.0, "fraction_of_peak": 1.0}],
    }
    text = format_report(report)
    assert "max pool 2x2/2" in text and "threadpoolctl not installed" in text
    header, row = text.splitlines()[-3], text.splitlines()[-1]
    assert "-ms" not in row  # without torch the column printed "-ms"
    torch_end = header.index("torch") + len("torch")
    assert row[torch_end - 1] == "-" and row[torch_end] == " "  # right-aligned under its header


def test_e2e_report_names_skipped_thread_counts():
    from fastnn import bench_e2e

    report = {
        "first_step_losses": {"ThreeLayerConvNet": (2.302588, 2.302588)},
        "steps": [{"model": "ThreeLayerConvNet", "batch": (64, 3, 32, 32), "threads": 1, "fastnn_ms": 60.0,
                   "torch_ms": 40.0, "fastnn_over_torch": 1.5, "breakdown_ms": {"conv": 50.0}}],
        "train_epoch_seconds": 1.5, "train_epoch_threads": 2,
        "threads_skipped": [2],
    }
    text = bench_e2e.format_report(report)
    assert "2 threads skipped" in text and "1.500" in text and "conv 50.0" in text
    assert "one epoch in 1.50 s (kernels warm, 2 numba thread(s) as `fastnn train` runs)" in text
    assert "(medians, ratio per round)" in text.splitlines()[0]
    assert "(medians of 7 rounds, ratio per round)" in bench_e2e.format_report(dict(report, rounds=7))  # JSON only


def test_e2e_breakdown_is_the_median_steps_own():
    from fastnn.bench_e2e import median_step

    timed = [(3.0, {"conv": 1.0}), (1.0, {"conv": 0.5}), (2.0, {"conv": 1.5, "relu": 0.25})]
    assert median_step(timed) == {"conv": 1.5, "relu": 0.25, "optimizer and python": 0.25}


def test_e2e_without_torch_says_how_to_get_it(monkeypatch):
    from fastnn import bench_e2e

    monkeypatch.setattr(bench_e2e, "_torch", lambda: None)
    report = bench_e2e.run()
    assert "pip install torch" in bench_e2e.format_report(report)


def test_labels_name_the_shapes_measured_with_and_without_quick():
    """--quick rows printed the full shapes while measuring batches 8x smaller."""
    from fastnn.bench import OP_DESCRIPTIONS

    quick = {name: op.describe(quick=True) for name, op in OPS.items()}
    assert quick["conv_a"] == "conv x(8,3,32,32) w(32,3,7,7) pad 3"
    assert quick["conv_b"] == "conv x(8,64,16,16) w(64,64,3,3) pad 1"
    assert quick["pool"] == "max pool 2x2/2 on (8,32,32,32)"
    assert quick["affine_bn_relu_1024"] == "affine-BN-ReLU N=128 D=1024 H=1024"
    assert quick["dropout"] == "dropout keep 0.5 on (128,4096)" and quick["layernorm"] == "layernorm (128,1024)"
    assert OP_DESCRIPTIONS["conv_a"] == "conv x(64,3,32,32) w(32,3,7,7) pad 3"
    assert OP_DESCRIPTIONS["affine_bn_relu_1024"] == "affine-BN-ReLU N=D=H=1024"
    assert OP_DESCRIPTIONS["affine_bn_relu_256"] == "affine-BN-ReLU N=256 D=3072 H=512"
    assert OP_DESCRIPTIONS["pool"] == "max pool 2x2/2 on (64,32,32,32)"
    for op in OPS.values():  # the shapes the builder is given are those it measures
        assert set(op.shapes(True)) <= {"x", "w"} and op.shapes(True)["x"][0] * 8 == op.shapes(False)["x"][0]


@pytest.fixture
def no_bench(monkeypatch):
    """The measuring itself, replaced: a check that comes after it fails the test."""
    import fastnn.bench
    import fastnn.bench_e2e

    def measured(*args, **kwargs):
        raise AssertionError("the benchmark ran before the options were checked")

    monkeypatch.setattr(fastnn.bench, "run", measured)
    monkeypatch.setattr(fastnn.bench_e2e, "run", measured)


def _max_threads():
    import numba

    return numba.config.NUMBA_NUM_THREADS


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], r"--threads must be >= 1 and at most \d+, the threads this process may use \(its CPU "
                         r"affinity, or NUMBA_NUM_THREADS\), got 0"),
    (["--threads", "-3"], r"--threads must be >= 1 and at most \d+, .*got -3"),
    (["--threads", "above"], r"--threads must be >= 1 and at most \d+, .*got \d+"),
    (["--e2e", "--threads", "above"], r"--threads must be >= 1 and at most \d+, .*got \d+"),
    (["--rounds", "0"], r"--rounds must be >= 1, got 0"),
    (["--rounds", "-1"], r"--rounds must be >= 1, got -1"),
    (["--e2e", "--rounds", "0"], r"--rounds must be >= 1, got 0"),
    (["--json", "/nonexistent/dir/r.json"], r"the directory of --json '/nonexistent/dir/r.json' does not exist"),
    (["--json", "."], r"--json '.' names a directory, not a file"),
    (["--e2e", "--ops", "pool"], r"--ops chooses what the per-op report measures; --e2e measures whole float32 "
                                 r"train steps, so give one or the other$"),
    (["--e2e", "--dtypes", "float64"], r"--dtypes chooses what the per-op report measures; --e2e measures whole"),
])
def test_bad_options_are_refused_before_measuring(argv, message, no_bench):
    """Tracebacks, from numba (--threads), only after the whole report (--json), or none at all: --rounds -1
    printed nan and --rounds 0 became the default."""
    from fastnn.cli import main

    argv = [str(_max_threads() + 1) if a == "above" else a for a in argv]
    ops = [] if "--e2e" in argv else ["--ops", "pool"]
    with pytest.raises(SystemExit, match=f"^fastnn bench: {message}"):
        main(["bench", "--quick", *ops, *argv])


def test_a_json_path_that_cannot_be_written_is_named_as_given(tmp_path, monkeypatch, no_bench):
    """A read-only directory's message began with '[Errno 30] ', and a symlink to nothing named its target."""
    import tempfile

    from fastnn.cli import main

    link = tmp_path / "r.json"
    link.symlink_to("/nonexistent/x.json")
    with pytest.raises(SystemExit, match=rf"^fastnn bench: the directory of --json '{link}' does not exist: "
                                         r"'/nonexistent'$"):
        main(["bench", "--json", str(link)])

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    path = tmp_path / "s.json"
    with pytest.raises(SystemExit, match=rf"^fastnn bench: cannot write --json '{path}' \(Read-only file system\)$"):
        main(["bench", "--json", str(path)])


@pytest.fixture
def small_reports(monkeypatch):
    """The measuring replaced by reports made at once; returns the thread counts each --e2e run was given."""
    import fastnn.bench
    import fastnn.bench_e2e

    given = []

    def e2e(threads=(1, 2), **kwargs):
        given.append(threads)
        return {"skipped": "the e2e report"}

    monkeypatch.setattr(fastnn.bench_e2e, "run", e2e)
    monkeypatch.setattr(fastnn.bench, "run", lambda **kwargs: {"results": []})
    monkeypatch.setattr(fastnn.bench, "format_report", lambda report: "the report")
    return given


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("e2e", [[], ["--e2e"]])
def test_a_json_file_that_cannot_take_the_report_is_a_message(e2e, small_reports, capsys):
    """The OSError of a full disk came out as a traceback, after the whole measurement."""
    from fastnn.cli import main

    with pytest.raises(SystemExit, match=r"^fastnn bench: cannot write --json '/dev/full' \(No space left on "
                                         r"device\); the report printed above is not saved$"):
        main(["bench", *e2e, "--json", "/dev/full"])
    assert "report" in capsys.readouterr().out


def test_e2e_measures_the_threads_it_is_given_and_says_where_its_json_went(tmp_path, small_reports, capsys):
    """--e2e --threads 1 measured 2 threads too, and --e2e --json did not say where the JSON went."""
    from fastnn.cli import main

    path = tmp_path / "e2e.json"
    assert main(["bench", "--e2e", "--threads", "1", "--json", str(path)]) == 0
    assert json.loads(path.read_text()) == {"skipped": "the e2e report"}
    assert capsys.readouterr().out == f"the e2e report\n\nJSON written to {path}\n"
    if _max_threads() >= 2:
        main(["bench", "--e2e", "--threads", "2"])
    assert small_reports == [[1]] + ([[1, 2]] if _max_threads() >= 2 else [])


@pytest.mark.parametrize("command", [["bench", "--quick", "--ops", "pool"], ["check", "--model", "fc"]])
def test_numba_threads_below_one_is_a_message(command, tmp_path):
    """numba refused NUMBA_NUM_THREADS=0 with a ValueError traceback when the command first imported it."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "0"}
    result = subprocess.run([sys.executable, "-m", "fastnn", *command], capture_output=True, text=True, env=env,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"fastnn {command[0]}: environment variable NUMBA_NUM_THREADS='0' must be >= 1\n"


def test_a_repeated_dtype_or_op_is_measured_once(monkeypatch, capsys):
    """`fastnn bench --dtypes float32 float32` once measured and printed every row twice."""
    import fastnn.bench
    from fastnn.cli import main

    measured = []

    def measure_op(op, dtype, *args):
        measured.append((op, dtype.name))
        return {"op": op, "dtype": dtype.name}

    monkeypatch.setattr(fastnn.bench, "_measure_op", measure_op)
    monkeypatch.setattr(fastnn.bench, "peaks", lambda quick: {})
    monkeypatch.setattr(fastnn.bench, "format_report", lambda report: f"{len(report['results'])} rows")
    assert main(["bench", "--quick", "--rounds", "1", "--ops", "pool", "dropout", "pool",
                 "--dtypes", "float64", "float32", "float64"]) == 0
    assert measured == [("pool", "float64"), ("dropout", "float64"), ("pool", "float32"), ("dropout", "float32")]
    assert capsys.readouterr().out.strip() == "4 rows"
    measured.clear()
    report = run(ops=["pool"], dtypes=("float32", np.float32, np.dtype("float32")), quick=True, rounds=1)
    assert measured == [("pool", "float32")] and len(report["results"]) == 1


def test_rounds_below_one_are_refused_by_the_library_too(monkeypatch):
    from fastnn import bench_e2e

    monkeypatch.setattr(bench_e2e, "_torch", lambda: None)
    for bad, error, says in ((0, ValueError, "must be >= 1"), (-1, ValueError, "must be >= 1"),
                             (1.5, TypeError, "must be an integer"), (True, TypeError, "must be an integer")):
        with pytest.raises(error, match=rf"fastnn bench --e2e: rounds {says}"):
            bench_e2e.run(rounds=bad, quick=True)
        with pytest.raises(error, match=rf"fastnn bench: rounds {says}"):
            run(ops=["pool"], dtypes=("float32",), quick=True, rounds=bad)


def test_a_bad_fastnn_environment_variable_is_a_message_before_measuring(tmp_path):
    env = {**os.environ, "FASTNN_PARALLEL": "maybe"}
    result = subprocess.run([sys.executable, "-m", "fastnn", "bench", "--quick", "--ops", "pool"],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.startswith("fastnn bench: environment variable FASTNN_PARALLEL='maybe' is not a boolean")


def test_the_report_names_the_cpu_model_where_platform_does_not(monkeypatch):
    """platform.processor() is empty on Linux: the report's header said "x86_64 (unknown)" on an AMD EPYC."""
    monkeypatch.setattr(bench.platform, "processor", lambda: "")
    if not os.path.isfile("/proc/cpuinfo"):
        assert bench.processor_name() == "unknown"
        return
    with open("/proc/cpuinfo") as cpuinfo:
        models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    assert bench.processor_name() == (models[0] if models else "unknown")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_the_json_is_written_when_stdout_cannot_take_the_table(tmp_path, small_reports):
    """`fastnn bench --json r.json > /dev/full` stopped at the table and never wrote r.json."""
    path = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-c", "import fastnn.bench, fastnn.cli, sys; "
                           "fastnn.bench.run = lambda **k: {'results': []}; "
                           "fastnn.bench.format_report = lambda r: 'the report ' * 10000; "
                           f"sys.argv = ['fastnn', 'bench', '--ops', 'dropout', '--json', {str(path)!r}]; "
                           "sys.exit(fastnn.cli.console())"],
                          stdout=open("/dev/full", "w"), stderr=subprocess.PIPE, text=True, timeout=120)
    assert json.loads(path.read_text()) == {"results": []}
    assert done.returncode == 1 and "No space left on device" in done.stderr


def test_repeated_ops_and_dtypes_add_up(monkeypatch, capsys):
    """`--ops batchnorm --ops layernorm` measured layernorm alone (argparse kept the last list)."""
    import fastnn.bench
    from fastnn.cli import main

    given = {}
    monkeypatch.setattr(fastnn.bench, "run", lambda **kwargs: given.update(kwargs) or {"results": []})
    monkeypatch.setattr(fastnn.bench, "format_report", lambda report: "the report")
    main(["bench", "--ops", "batchnorm", "--ops", "layernorm", "--dtypes", "float32", "--dtypes", "float64"])
    assert given["ops"] == ["batchnorm", "layernorm"] and given["dtypes"] == ["float32", "float64"]


@pytest.mark.parametrize("kwargs, message", [
    ({"ops": "pool2"}, r"unknown ops \['pool2'\]"),  # a string was taken letter by letter: ['2', 'l', 'o', 'p']
    ({"dtypes": "float16"}, r"dtypes must be float32 or float64, got 'float16'"),  # "data type 'o' not understood"
    ({"dtypes": ["int32"]}, r"dtypes must be float32 or float64, got 'int32'"),  # only after the peaks, from a layer
    ({"dtypes": [">f8"]}, r"dtypes must be float32 or float64, got '>f8'"),
    ({"dtypes": ["nonsense"]}, r"dtypes must be float32 or float64, got 'nonsense'"),
    ({"dtypes": [",4"]}, r"dtypes must be float32 or float64, got ',4'"),  # numpy's parser: a bare SyntaxError
    ({"dtypes": [None]}, r"dtypes must be float32 or float64, got None"),  # np.dtype(None) is float64
    ({"threads": 0}, r"threads must be >= 1, got 0"),  # named fastnn.num_threads, after keep_freed had applied
])
def test_run_refuses_bad_arguments_before_measuring(kwargs, message, monkeypatch):
    from fastnn import bench

    def measured(*args):
        raise AssertionError("measured before the arguments were checked")

    monkeypatch.setattr(bench, "peaks", measured)
    monkeypatch.setattr(bench, "malloc_setting", measured)
    with pytest.raises(ValueError, match=f"^fastnn bench: {message}"):
        bench.run(keep_freed=True, **kwargs)


def test_run_takes_one_op_and_one_dtype_as_strings(monkeypatch):
    from fastnn import bench

    monkeypatch.setattr(bench, "peaks", lambda quick: {"gemm_float32_gflops": 1.0, "gemm_float64_gflops": 1.0,
                                                        "copy_gbs": 1.0})
    monkeypatch.setattr(bench, "_measure_op", lambda op, dtype, *args: {"op": op, "dtype": dtype.name})
    report = bench.run(ops="pool", dtypes="float64", quick=True)
    assert report["results"] == [{"op": "pool", "dtype": "float64"}]


def test_the_peaks_line_names_the_threads_the_gemms_ran_on():
    """The GEMM peaks run on --threads BLAS threads; the line said '(one thread)' for every report."""
    from fastnn import bench

    report = {"environment": {"machine": "m", "processor": "p", "cpus": 2, "python": "3", "numpy": "2", "torch": "-",
                              "threads": 2, "OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None, "blas": "none"},
              "peaks": {"gemm_float32_gflops": 1.0, "gemm_float64_gflops": 1.0, "copy_gbs": 1.0}, "rounds": 3,
              "results": []}
    text = bench.format_report(report)
    assert "dgemm 1.0 GFLOP/s on 2 threads, copy 1.0 GB/s on one thread" in text
    report["environment"]["threads"] = 1
    assert "dgemm 1.0 GFLOP/s on one thread, copy 1.0 GB/s on one thread" in bench.format_report(report)


def test_an_empty_json_path_is_named_as_empty(no_bench):
    """--json '' was said to name a directory."""
    from fastnn.cli import main

    with pytest.raises(SystemExit, match=r"^fastnn bench: --json is empty; give a file name$"):
        main(["bench", "--quick", "--ops", "pool", "--json", ""])


def _mkl_threads(torch):
    """MKL's thread count in torch's own library, or None where it cannot be read."""
    try:
        (library,) = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        return ctypes.CDLL(library).mkl_get_max_threads()
    except (ValueError, OSError, AttributeError):
        return None


def _thread_state(torch):
    from threadpoolctl import threadpool_info

    pools = {(pool["user_api"], pool["filepath"]): pool["num_threads"] for pool in threadpool_info()}
    return {"torch": torch.get_num_threads(), "mkl": _mkl_threads(torch), "pools": pools}


def test_thread_limits_restore_torchs_threads_when_torch_was_imported_first():
    """Entered after threadpool_limits, which had already lowered a loaded torch's OpenMP count, the limit read
    that lowered count as torch's own and left torch's MKL at 1 thread while torch said 2."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("threadpoolctl")
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before = _thread_state(torch)
        assert before["torch"] == 2
        with ExitStack() as stack:
            bench._thread_limits(stack, 1)
            assert torch.get_num_threads() == 1
        assert _thread_state(torch) == before
    finally:
        torch.set_num_threads(original)


@pytest.fixture
def e2e_without_timing(monkeypatch):
    """bench_e2e.run with its timed parts replaced by instant ones; the first-step check is left as it is."""
    from fastnn import bench_e2e

    monkeypatch.setattr(bench_e2e, "train_epoch_seconds", lambda: 1.0)
    monkeypatch.setattr(bench_e2e, "time_model", lambda name, n, quick, rounds: {
        "model": name, "threads": n, "batch": (1,), "fastnn_ms": 1.0, "torch_ms": 1.0, "fastnn_over_torch": 1.0,
        "breakdown_ms": {"conv": 1.0}})
    return bench_e2e


def test_e2e_report_and_json_name_the_machine_blas_and_threads(e2e_without_timing):
    """The --e2e report and its JSON said nothing of the machine, the BLAS library and kernel, or the threads."""
    pytest.importorskip("torch")
    e2e = e2e_without_timing
    report = json.loads(json.dumps(e2e.run(threads=(1,), quick=True)))
    (env,) = report["environment"]
    assert env["threads"] == 1 and env["numba_threads"] == 1 and env["torch_threads"] == 1
    assert env["processor"] == bench.processor_name() and "blas" in env
    text = e2e.format_report(report)
    assert f"({env['processor']})" in text and "threads: 1 (numba 1, torch 1)" in text and "BLAS: " in text


def test_e2e_first_step_check_tells_unrelated_weights_apart(e2e_without_timing, monkeypatch):
    """ThreeLayerConvNet's first loss is ln 10 to within 5e-6 for any weights of its 1e-3 scale: the check on it
    alone passed a fastnn side with unrelated weights."""
    pytest.importorskip("torch")
    e2e = e2e_without_timing
    built = e2e.MODELS["threelayer_convnet"]

    def unrelated(torch, quick, **kwargs):
        result = built(torch, quick, **kwargs)
        params = result[0].params
        for name in ("W1", "W2", "W3"):
            params[name] = (np.random.default_rng(5).standard_normal(params[name].shape) * 1e-3).astype(np.float32)
        return result

    monkeypatch.setitem(e2e.MODELS, "threelayer_convnet", unrelated)
    with pytest.raises(AssertionError, match="threelayer_convnet: first-step gradients differ"):
        e2e.run(threads=(1,), quick=True)
    monkeypatch.setitem(e2e.MODELS, "threelayer_convnet", built)
    report = e2e.run(threads=(1,), quick=True)
    assert set(report["first_step_gradient_error"]) == set(e2e.MODELS)
    assert all(error <= e2e.GRADIENT_TOLERANCE for error in report["first_step_gradient_error"].values())


@pytest.mark.parametrize("e2e", [[], ["--e2e"]])
def test_a_json_path_that_becomes_a_directory_during_the_run_is_a_message(e2e, tmp_path, monkeypatch, capsys):
    """atomic_open's second look at the path raised a ValueError for a directory: a traceback, and the report
    that was to be printed after the JSON was lost."""
    import fastnn.bench
    import fastnn.bench_e2e
    from fastnn.cli import main

    path = tmp_path / "r.json"

    def measured(**kwargs):
        path.mkdir()
        return {"results": []}

    monkeypatch.setattr(fastnn.bench_e2e if e2e else fastnn.bench, "run", measured)
    monkeypatch.setattr(fastnn.bench_e2e if e2e else fastnn.bench, "format_report", lambda report: "the report")
    shown = re.escape(str(path))
    with pytest.raises(SystemExit, match=rf"^fastnn bench: --json '{shown}' names a directory, not a file; the "
                                         r"report printed above is not saved$"):
        main(["bench", *e2e, "--json", str(path)])
    assert capsys.readouterr().out == "the report\n"


def test_asv_cold_start_keeps_its_numba_cache_where_asv_removes_it(tmp_path, monkeypatch):
    """ColdStart made a /tmp/fastnn-asv-cache-* directory per asv run and never removed it; asv runs setup_cache
    in a directory of its own, removed after the benchmarks that use it."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "asv_bench"))
    from benchmarks import bench_cold_start

    monkeypatch.setattr(bench_cold_start, "_run", lambda code, env=None: 0.0)
    monkeypatch.chdir(tmp_path)
    cache_dir = bench_cold_start.ColdStart().setup_cache()
    assert os.path.isdir(cache_dir) and os.path.commonpath([cache_dir, str(tmp_path)]) == str(tmp_path)
