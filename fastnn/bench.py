"""The side-by-side speed report behind `fastnn bench`: NumPy reference, fastnn jit and PyTorch CPU in one process.

Each op runs forward + backward. Every path is warmed up first (the jit path compiles then); samples are taken
round-robin so a drift of the machine's speed hits every path alike. The rounds' orders (round_orders) put every
path straight after every other equally often, so that none keeps inheriting the same one's freed memory and
evicted cache; and every path reads its own copies of the inputs, made before the timing, never arrays another
path has just pulled into cache. The report gives medians, and ratios taken per round then their median.
Achieved GFLOP/s (conv, affine) or GB/s (the rest) are set against peaks measured at start: a large GEMM and a
large copy (one thread: NumPy copies on one). GB/s count the op's compulsory traffic, each array
the step must read or write counted once. PyTorch's gradients are returned, not added into .grad, where they would
cost it a pass over memory per tensor that no other path makes. A convolution's rate counts the direct
convolution's multiply-adds, so a 3x3 one (Winograd F(4x4, 3x3): 4x fewer) can show a share above what its GEMMs
reach. A fused affine-BN-ReLU op also times its three bare GEMMs in the same rounds and reports jit/GEMMs per round, and
their time on a line of their own below it.
"""

import functools
import json
import os
import platform
import time
from contextlib import ExitStack

import numpy as np

from . import _checks, options
from . import layer_utils as L
from ._cpus import available_cpus
from ._options import carried


def _rng():
    return np.random.default_rng(0)


# ------------------------------------------------------------------------------------------------ the ops
# Each op is an Op: shapes(quick) gives the arrays' shapes it measures ({name: shape}; --quick takes batches 8x
# smaller), label(shapes) the row's name in the report, and build(dtype, shapes) a dict of
#   inputs: the arrays a step reads; every path gets its own copies of them (paths()),
#   step(*inputs): runs forward + backward through the public API under the active backend,
#   torch(*tensors): the same in PyTorch on tensors of the inputs (None without torch),
#   leaves (optional): how many leading inputs torch differentiates (default all),
#   work, unit: the FLOPs or bytes one step moves, 'GFLOP/s' or 'GB/s',
#   gemms(*inputs) (fused ops only): their three bare GEMMs, the floor they are measured against.


class Op:
    def __init__(self, shapes, label, build):
        self.shapes, self.label, self.build = shapes, label, build

    def describe(self, quick=False):
        """The row's name for the shapes measured with or without --quick."""
        return self.label(self.shapes(quick))


def shape_text(shape):
    return "(" + ",".join(str(int(n)) for n in shape) + ")"


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _torch_backward(torch, out, grad, leaves):
    """The gradients of every leaf, returned: out.backward() would add them into each leaf's .grad kept from the
    round before, a further read and write of every input (measured: 1.06-1.24x the step of the memory-bound ops)."""
    torch.autograd.grad(out, leaves, grad)


def _conv_op(x_shape, w_shape, pad):
    def shapes(quick):
        N = max(1, x_shape[0] // 8) if quick else x_shape[0]
        return {"x": (N,) + x_shape[1:], "w": w_shape}

    def label(shapes):
        return f"conv x{shape_text(shapes['x'])} w{shape_text(shapes['w'])} pad {pad}"

    def build(dtype, shapes):
        g = _rng()
        x = g.standard_normal(shapes["x"]).astype(dtype)
        w = (g.standard_normal(shapes["w"]) * 0.1).astype(dtype)
        b = np.zeros(w.shape[0], dtype)
        param = {"stride": 1, "pad": pad}

        def step(x, w, b):
            out, cache = L.conv_forward_fast(x, w, b, param)
            L.conv_backward_fast(out, cache)

        H_out = x.shape[2] + 2 * pad - w.shape[2] + 1
        W_out = x.shape[3] + 2 * pad - w.shape[3] + 1
        flops = 3 * 2 * x.shape[0] * w.shape[0] * int(np.prod(w.shape[1:])) * H_out * W_out  # forward, dx, dw
        torch = _torch()
        torch_step = None
        if torch is not None:
            def torch_step(tx, tw, tb):
                out = torch.nn.functional.conv2d(tx, tw, tb, padding=pad)
                _torch_backward(torch, out, out, (tx, tw, tb))

        return {"inputs": (x, w, b), "step": step, "torch": torch_step, "work": flops, "unit": "GFLOP/s"}

    return Op(shapes, label, build)


def _pool_shapes(quick):
    return {"x": (8 if quick else 64, 32, 32, 32)}


def _pool_build(dtype, shapes):
    x = _rng().standard_normal(shapes["x"]).astype(dtype)
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}

    def step(x):
        out, cache = L.max_pool_forward_fast(x, param)
        L.max_pool_backward_fast(out, cache)

    torch = _torch()
    torch_step = None
    if torch is not None:
        def torch_step(tx):
            out = torch.nn.functional.max_pool2d(tx, 2, 2)
            _torch_backward(torch, out, out, (tx,))

    moved = 2 * x.nbytes + 2 * x.nbytes // 4 + 2 * x.size // 4  # x in, dx out, out and dout, argmax
    return {"inputs": (x,), "step": step, "torch": torch_step, "work": moved, "unit": "GB/s"}


def _affine_bn_relu_op(N, D, H):
    def shapes(quick):
        return {"x": (max(8, N // 8) if quick else N, D), "w": (D, H)}

    def label(shapes):
        (n, d), (_, h) = shapes["x"], shapes["w"]
        return f"affine-BN-ReLU N=D=H={n}" if n == d == h else f"affine-BN-ReLU N={n} D={d} H={h}"

    def build(dtype, shapes):
        g = _rng()
        x = g.standard_normal(shapes["x"]).astype(dtype)
        w = (g.standard_normal(shapes["w"]) / np.sqrt(D)).astype(dtype)
        b, gamma, beta = np.zeros(H, dtype), np.ones(H, dtype), np.zeros(H, dtype)
        dout = g.standard_normal((x.shape[0], H)).astype(dtype)
        flops = 3 * 2 * x.shape[0] * D * H

        def gemms(x, w, b, gamma, beta, dout):  # the floor the fused layer is measured against: its three GEMMs
            x @ w
            dout @ w.T
            x.T @ dout

        def step(x, w, b, gamma, beta, dout):
            out, cache = L.affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"})
            L.affine_bn_relu_backward(dout, cache)

        torch = _torch()
        torch_step = None
        if torch is not None:
            def torch_step(tx, tw, tb, tg, tbeta, tdout):
                a = tx @ tw + tb
                out = torch.relu(torch.nn.functional.batch_norm(a, None, None, tg, tbeta, training=True))
                _torch_backward(torch, out, tdout, (tx, tw, tb, tg, tbeta))

        return {"inputs": (x, w, b, gamma, beta, dout), "leaves": 5, "step": step, "torch": torch_step,
                "work": flops, "unit": "GFLOP/s", "gemms": gemms}

    return Op(shapes, label, build)


def _dropout_shapes(quick):
    return {"x": (128 if quick else 1024, 4096)}


def _dropout_build(dtype, shapes):
    x = _rng().standard_normal(shapes["x"]).astype(dtype)
    param = {"mode": "train", "p": 0.5, "seed": 0}

    def step(x):
        out, cache = L.dropout_forward(x, param)
        L.dropout_backward(out, cache)

    torch = _torch()
    torch_step = None
    if torch is not None:
        def torch_step(tx):
            out = torch.nn.functional.dropout(tx, 0.5, training=True)
            _torch_backward(torch, out, out, (tx,))

    moved = 4 * x.nbytes + 2 * x.size  # x, out, dout, dx and the bool mask twice
    return {"inputs": (x,), "step": step, "torch": torch_step, "work": moved, "unit": "GB/s"}


def _norm_op(kind):
    def shapes(quick):
        return {"x": (128 if quick else 1024, 1024)}

    def label(shapes):
        return f"{kind} {shape_text(shapes['x'])}"

    def build(dtype, shapes):
        g = _rng()
        x = g.standard_normal(shapes["x"]).astype(dtype)
        D = x.shape[1]
        gamma, beta = np.ones(D, dtype), np.zeros(D, dtype)
        forward, backward = {"batchnorm": (L.batchnorm_forward, L.batchnorm_backward),
                             "layernorm": (L.layernorm_forward, L.layernorm_backward)}[kind]

        def step(x, gamma, beta):
            out, cache = forward(x, gamma, beta, {"mode": "train"})
            backward(out, cache)

        torch = _torch()
        torch_step = None
        if torch is not None:
            def torch_step(tx, tg, tb):
                if kind == "batchnorm":
                    out = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True)
                else:
                    out = torch.nn.functional.layer_norm(tx, (D,), tg, tb)
                _torch_backward(torch, out, out, (tx, tg, tb))

        moved = 5 * x.nbytes  # x read and out written; dout and x read and dx written
        return {"inputs": (x, gamma, beta), "step": step, "torch": torch_step, "work": moved, "unit": "GB/s"}

    return Op(shapes, label, build)


OPS = {
    "conv_a": _conv_op((64, 3, 32, 32), (32, 3, 7, 7), 3),
    "conv_b": _conv_op((64, 64, 16, 16), (64, 64, 3, 3), 1),
    "pool": Op(_pool_shapes, lambda shapes: f"max pool 2x2/2 on {shape_text(shapes['x'])}", _pool_build),
    "affine_bn_relu_256": _affine_bn_relu_op(256, 3072, 512),
    "affine_bn_relu_1024": _affine_bn_relu_op(1024, 1024, 1024),
    "dropout": Op(_dropout_shapes, lambda shapes: f"dropout keep 0.5 on {shape_text(shapes['x'])}", _dropout_build),
    "batchnorm": _norm_op("batchnorm"),
    "layernorm": _norm_op("layernorm"),
}
OP_DESCRIPTIONS = {name: op.describe(quick=False) for name, op in OPS.items()}  # the full report's row names


def _under(backend, step):
    def call(*arrays):
        with options(backend=backend):
            step(*arrays)

    return call


def _bound(fn, inputs):
    return (lambda: fn(*inputs)), inputs


def paths(built):
    """{path: (call, the inputs it reads)} for a built op: reference, jit, torch (where installed) and the fused
    op's bare GEMMs, each bound to its own copies of the op's inputs, made here, outside the timing."""
    def own():
        return [a.copy() for a in built["inputs"]]

    result = {"reference": _bound(_under("reference", built["step"]), own()),
              "jit": _bound(_under("jit", built["step"]), own())}
    if built["torch"] is not None:
        torch = _torch()
        leaves = built.get("leaves", len(built["inputs"]))
        tensors = [torch.tensor(a, requires_grad=i < leaves) for i, a in enumerate(built["inputs"])]  # copies
        result["torch"] = _bound(built["torch"], tensors)
    if "gemms" in built:
        result["gemms"] = _bound(built["gemms"], own())
    return result


# ------------------------------------------------------------------------------------------------ timing


def _time_once(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@functools.lru_cache
def round_orders(n):
    """n - 1 orderings of range(n) (one for n < 3) which, run back to back and over again, put every i straight
    after every other j exactly once per cycle and never after itself (for n > 1): found by a depth-first search,
    instant for the few paths a report times."""
    if n < 3:
        return (tuple(range(n)),)
    total, sequence, used = n * (n - 1), [], set()

    def extend():
        if len(sequence) == total:
            return (sequence[-1], sequence[0]) not in used  # the cycle's wrap, into its next run
        this_round = sequence[len(sequence) - len(sequence) % n:]
        for i in range(n):
            pair = (sequence[-1], i) if sequence else None
            if i in this_round or pair in used or (sequence and sequence[-1] == i):
                continue
            sequence.append(i)
            used.add(pair)
            if extend():
                return True
            sequence.pop()
            used.discard(pair)
        return False

    if not extend():
        raise RuntimeError(f"fastnn bench: no balanced round order for {n} paths")
    return tuple(tuple(sequence[k:k + n]) for k in range(0, total, n))


def measure(candidates, rounds):
    """Round-robin samples of every candidate, each round running each once in the next of round_orders: every
    candidate runs straight after every other about equally often. Returns {name: [seconds per round]}."""
    for fn in candidates.values():  # warm-up: compiles the jit path, touches the memory
        fn()
        fn()
    names = list(candidates)
    orders = round_orders(len(names))
    samples = {name: [] for name in names}
    for r in range(rounds):
        for i in orders[r % len(orders)]:
            samples[names[i]].append(_time_once(candidates[names[i]]))
    return samples


def peaks(quick):
    """Machine peaks measured now: GEMM GFLOP/s per dtype and copy GB/s (bytes read + written)."""
    n = 1024 if quick else 2048
    result = {}
    for dtype in (np.float32, np.float64):
        a = _rng().standard_normal((n, n)).astype(dtype)
        samples = measure({"gemm": lambda a=a: a @ a}, 3 if quick else 5)["gemm"]
        result[f"gemm_{np.dtype(dtype).name}_gflops"] = 2 * n**3 / np.median(samples) / 1e9
    src = np.ones(32 * 2**20 if quick else 128 * 2**20, dtype=np.uint8)
    dst = np.empty_like(src)
    samples = measure({"copy": lambda: np.copyto(dst, src)}, 5)["copy"]
    result["copy_gbs"] = 2 * src.nbytes / np.median(samples) / 1e9
    return result


def processor_name():
    """The CPU's model name: platform.processor() is empty on Linux, where /proc/cpuinfo has it."""
    if platform.processor():
        return platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return "unknown"


def environment(threads):
    info = {
        "machine": platform.machine(),
        "processor": processor_name(),
        "cpus": os.cpu_count(),
        "cpus_available": available_cpus(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threads": threads,
        "settings": {k: v for k, v in carried().items() if k != "backend"},  # each path sets its backend
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "(unset)"),
    }
    try:
        import numba

        from .kernels._threads import num_threads  # not numba's own: it would start numba's threads unchosen

        info["numba"] = numba.__version__
        info["numba_threads"] = num_threads()
    except ImportError:
        pass
    torch = _torch()
    info["torch"] = torch.__version__ if torch else "not installed"
    if torch:
        info["torch_threads"] = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed: BLAS kernel unknown (pip install fastnn[bench])"
    return info


def _thread_limits(stack, threads):
    """Pin numba, BLAS and torch to `threads` for the whole report (restored on exit)."""
    from . import num_threads

    stack.enter_context(num_threads(threads))
    torch = _torch()
    if torch is not None:
        # before threadpool_limits: that lowers a torch already loaded, so torch's count read after it was the
        # lowered one, and restoring that left torch's MKL at it
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        stack.callback(torch.set_num_threads, previous)
    try:
        from threadpoolctl import threadpool_limits

        stack.enter_context(threadpool_limits(threads))
    except ImportError:
        pass


def malloc_setting(keep_freed=False):
    """Apply fastnn.allocator.keep_freed_memory() if keep_freed (process-wide, for good) and describe the
    allocator every path of the report then runs under."""
    if not keep_freed:
        return ("not changed by this report (keep_freed_memory() not applied): freed arrays of a few MB may go back "
                "to the OS and fault again")
    from .allocator import keep_freed_memory

    if keep_freed_memory():
        return ("keep_freed_memory() applied, as `fastnn train` does: freed arrays up to 32 MB stay in the heap "
                "for every path, larger ones still go back to the OS")
    return "not changed: keep_freed_memory() returned False (not glibc, or mallopt refused)"


def check_rounds(rounds, quick, fn="fastnn bench"):
    """The rounds to take: the default (9, or 3 when quick) for None, else an integer >= 1."""
    if rounds is None:
        return 3 if quick else 9
    return _checks.integer(fn, "rounds", rounds, 1)


def run(ops=None, dtypes=("float32", "float64"), threads=1, quick=False, rounds=None, keep_freed=False):
    """Measure `ops` (names of OPS) for `dtypes`, each once in the order first given (a repeat is measured once);
    returns the report as a dict (see format_report).
    keep_freed: apply fastnn.allocator.keep_freed_memory() first (to the whole process, for good)."""
    ops = list(OPS) if not ops else list(dict.fromkeys([ops] if isinstance(ops, str) else ops))
    unknown = sorted(set(ops) - set(OPS), key=str)
    if unknown:
        raise ValueError(f"fastnn bench: unknown ops {unknown}; choose from {list(OPS)}")
    dtypes = list(dict.fromkeys(_bench_dtype(d) for d in ([dtypes] if isinstance(dtypes, str) else dtypes)))
    rounds = check_rounds(rounds, quick)
    import numba  # its thread limit: the process's CPU affinity, or NUMBA_NUM_THREADS

    # checked before keep_freed changes the process
    threads = _checks.integer("fastnn bench", "threads", threads, 1, numba.config.NUMBA_NUM_THREADS)
    malloc = malloc_setting(keep_freed)
    with ExitStack() as stack:
        _thread_limits(stack, threads)
        report = {"environment": dict(environment(threads), malloc=malloc), "peaks": peaks(quick), "quick": bool(quick),
                  "rounds": rounds, "results": []}
        for dtype in dtypes:
            for op in ops:
                report["results"].append(_measure_op(op, dtype, quick, rounds, report["peaks"]))
    return report


def _bench_dtype(dtype):
    """float32 or float64 (in native byte order), the dtypes every op and PyTorch take."""
    checked = _checks.compiled_float_dtype(dtype)
    if checked is None:
        raise ValueError(f"fastnn bench: dtypes must be float32 or float64, got {dtype!r}")
    return checked


def _measure_op(op, dtype, quick, rounds, machine_peaks):
    shapes = OPS[op].shapes(quick)
    built = OPS[op].build(dtype.type, shapes)
    work, unit = built["work"], built["unit"]
    # the GEMMs in the same rounds too, so the fused layer's ratio to them is taken per round
    samples = measure({name: call for name, (call, _) in paths(built).items()}, rounds)
    medians = {name: float(np.median(s)) for name, s in samples.items()}
    row = {"op": op, "label": OPS[op].label(shapes), "shapes": {k: list(v) for k, v in shapes.items()},
           "dtype": dtype.name, "unit": unit, "work": work}
    row.update({f"{name}_ms": 1e3 * t for name, t in medians.items()})
    row["jit_over_reference"] = float(np.median(np.divide(samples["jit"], samples["reference"])))
    if "torch" in samples:
        row["jit_over_torch"] = float(np.median(np.divide(samples["jit"], samples["torch"])))
    if "gemms" in samples:
        row["jit_over_gemms"] = float(np.median(np.divide(samples["jit"], samples["gemms"])))
    scale = 1e9
    row["jit_rate"] = work / medians["jit"] / scale
    peak = machine_peaks[f"gemm_{dtype.name}_gflops"] if unit == "GFLOP/s" else machine_peaks["copy_gbs"]
    row["fraction_of_peak"] = row["jit_rate"] / peak
    return row


def _threads_label(threads):
    return "one thread" if threads == 1 else f"{threads} threads"


def environment_lines(env, machine=True, malloc=True):
    """The report's lines on an environment(): the machine (unless machine=False), thread counts, malloc (unless
    malloc=False), fastnn settings and the BLAS libraries with their kernels."""
    available = env.get("cpus_available")
    available = f" ({available} available to this process)" if available not in (None, env["cpus"]) else ""
    lines = [
        f"fastnn bench — {env['machine']} ({env['processor']}), {env['cpus']} CPUs{available}, python {env['python']}, "
        f"numpy {env['numpy']}, numba {env.get('numba', '?')}, torch {env['torch']}",
    ] if machine else []
    lines.append(f"threads: {env['threads']} (numba {env.get('numba_threads', '?')}, torch "
                 f"{env.get('torch_threads', '-')}); OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} "
                 f"OPENBLAS_L2_SIZE={env['OPENBLAS_L2_SIZE']}")
    if malloc:
        lines.append(f"malloc: {env.get('malloc', 'not recorded')}")
    if "settings" in env:
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in env["settings"].items()))
    blas = env["blas"]
    if isinstance(blas, str):
        lines.append(f"BLAS: {blas}")
    else:
        for pool in blas:
            lines.append(f"BLAS: {pool['internal_api']} {pool['version']} kernel {pool['architecture']}, "
                         f"{pool['num_threads']} thread(s) ({os.path.basename(pool['filepath'] or '')})")
    return lines


def format_report(report):
    env = report["environment"]
    lines = environment_lines(env)
    p = report["peaks"]
    lines.append(f"peaks measured now: sgemm {p['gemm_float32_gflops']:.1f} GFLOP/s, dgemm "
                 f"{p['gemm_float64_gflops']:.1f} GFLOP/s on {_threads_label(env['threads'])}, "
                 f"copy {p['copy_gbs']:.1f} GB/s on one thread; "
                 f"medians of {report['rounds']} round-robin rounds, forward + backward")
    if report.get("quick"):
        lines.append("--quick: batches 8x smaller than the full report's (the shapes below are those measured)")
    header = (f"{'op':<40} {'dtype':<8} {'reference':>10} {'jit':>9} {'torch':>9} {'jit/torch':>9} "
              f"{'jit/ref':>8} {'jit rate':>14} {'of peak':>8} {'jit/GEMMs':>9}")
    lines += ["", header, "-" * len(header)]
    for r in report["results"]:
        torch_ms = f"{r['torch_ms']:>7.2f}ms" if "torch_ms" in r else f"{'-':>9}"
        vs_torch = f"{r['jit_over_torch']:.3f}" if "jit_over_torch" in r else "-"
        vs_gemms = f"{r['jit_over_gemms']:.3f}" if "jit_over_gemms" in r else "-"
        label = r.get("label") or OP_DESCRIPTIONS[r["op"]]  # reports written before rows had labels
        lines.append(
            f"{label:<40} {r['dtype']:<8} {r['reference_ms']:>8.2f}ms {r['jit_ms']:>7.2f}ms "
            f"{torch_ms} {vs_torch:>9} {r['jit_over_reference']:>8.3f} "
            f"{r['jit_rate']:>7.1f} {r['unit']:<7}{r['fraction_of_peak']:>7.0%} {vs_gemms:>9}"
        )
        if "gemms_ms" in r:  # timed in the same rounds as the fused layer above
            lines.append(f"{'  its three bare GEMMs':<40} {r['dtype']:<8} {'-':>10} {r['gemms_ms']:>7.2f}ms")
    return "\n".join(lines)


def write_json(report, path):
    from ._files import atomic_open

    with atomic_open(path, "w", fn="fastnn bench", name="--json") as f:
        json.dump(report, f, indent=2)
