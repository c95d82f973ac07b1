"""End-to-end train-step timing behind `fastnn bench --e2e`: the same architecture, initial weights and batches in
fastnn and in PyTorch CPU, a forward, backward and Adam update per step, float32.

The two are first checked to compute the same loss and the same gradients on the first step (dropout off, since
the libraries draw different masks; the loss alone is ln 10 for any small weights), then timed round-robin at each
thread count. A per-layer-family breakdown of the fastnn step comes from timing every compiled layer call, and the
epoch time of the `fastnn train` default is measured too. The report names the machine, BLAS and thread counts at
each thread count measured, as the per-op report does.
"""

import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager

import numpy as np

from . import optim, options
from .bench import _thread_limits, _torch, check_rounds, environment, environment_lines, malloc_setting, measure

BREAKDOWN_STEPS = 5  # timed layer by layer after the round-robin samples; the median one is reported
LOSS_TOLERANCE = 1e-4  # relative, on the first step's loss
GRADIENT_TOLERANCE = 1e-3  # gradient_error's: the float32 models agree to ~1e-5, unrelated weights differ by ~1
FAMILIES = ("conv", "max_pool", "affine_bn_relu", "affine", "relu", "dropout", "batchnorm", "softmax")


def _family(name):
    return next((f for f in FAMILIES if name.startswith(f)), "other")


@contextmanager
def layer_timer(totals):
    """Add the seconds spent in each compiled layer call to totals[family] while the block runs."""
    from . import compiled

    originals = {}
    names = [n for n in dir(compiled) if "_forward" in n or "_backward" in n or n.endswith("_loss")]
    for name in names:
        fn = getattr(compiled, name)
        family = _family(name)

        def timed(*args, _fn=fn, _family=family):
            start = time.perf_counter()
            try:
                return _fn(*args)
            finally:
                totals[_family] += time.perf_counter() - start

        originals[name] = fn
        setattr(compiled, name, timed)
    try:
        yield totals
    finally:
        for name, fn in originals.items():
            setattr(compiled, name, fn)


# ------------------------------------------------------------------------------------------------ the models
# Each builder returns (fastnn model, torch net, batch shape, links): links pairs every fastnn parameter with its
# torch twin, [(name, torch parameter, transposed)], a Linear's weight being the transpose of fastnn's W.


def _tie(torch, model, links):
    """Copy every fastnn parameter into its torch twin."""
    with torch.no_grad():
        for name, param, transposed in links:
            value = model.params[name]
            param.copy_(torch.from_numpy(value.T.copy() if transposed else value))


def _threelayer(torch, quick):
    from .classifiers.cnn import ThreeLayerConvNet

    np.random.seed(0)
    model = ThreeLayerConvNet(dtype=np.float32)  # the starter's defaults: 32 7x7 filters, hidden 100, 10 classes
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 7, padding=3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(32 * 16 * 16, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10),
    )
    links = [("W1", net[0].weight, False), ("b1", net[0].bias, False), ("W2", net[4].weight, True),
             ("b2", net[4].bias, False), ("W3", net[6].weight, True), ("b3", net[6].bias, False)]
    _tie(torch, model, links)
    return model, net, (16 if quick else 64, 3, 32, 32), links


def _fc5(torch, quick, keep=0.5):
    from .classifiers.fc_net import FullyConnectedNet

    np.random.seed(0)
    hidden = [512] * 4
    model = FullyConnectedNet(hidden, input_dim=3072, num_classes=10, dropout=keep, normalization="batchnorm",
                              weight_scale="he", dtype=np.float32, seed=None)
    layers, dims = [], [3072] + hidden
    for i in range(4):
        layers += [torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.BatchNorm1d(dims[i + 1], eps=1e-5, momentum=0.1),
                   torch.nn.ReLU()]
        if keep < 1:
            layers.append(torch.nn.Dropout(1 - keep))
    layers.append(torch.nn.Linear(512, 10))
    net = torch.nn.Sequential(*layers)
    links = []
    for i, linear in enumerate((m for m in net if isinstance(m, torch.nn.Linear)), start=1):
        links += [(f"W{i}", linear.weight, True), (f"b{i}", linear.bias, False)]
    for i, norm in enumerate((m for m in net if isinstance(m, torch.nn.BatchNorm1d)), start=1):
        links += [(f"gamma{i}", norm.weight, False), (f"beta{i}", norm.bias, False)]
    _tie(torch, model, links)
    return model, net, (32 if quick else 256, 3072), links


MODELS = {"threelayer_convnet": _threelayer, "fc5_batchnorm_dropout": _fc5}


def _batches(shape, count=4):
    rng = np.random.default_rng(1)
    return [(rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0])) for _ in range(count)]


def _fastnn_step(model, configs):
    def step(X, y):
        loss, grads = model.loss(X, y)
        for name, w in model.params.items():
            model.params[name], configs[name] = optim.adam(w, grads[name], configs[name])
        return loss

    return step


def _torch_step(torch, net):
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    net.train()

    def step(X, y):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def gradient_error(ours, theirs):
    """The largest over parameters of max |ours - theirs| over the gradient's scale: its largest |entry| or, where
    that is smaller, a hundredth of the model's largest (a bias before batchnorm has gradient 0 up to rounding)."""
    floor = max(1e-2 * max(float(np.max(np.abs(g))) for g in theirs.values()), np.finfo(np.float32).tiny)
    return max(float(np.max(np.abs(ours[name] - g))) / max(float(np.max(np.abs(g))), floor)
               for name, g in theirs.items())


def first_step(name, quick=False):
    """The first step's forward + backward in fastnn and torch from the same weights and batch, dropout off:
    {"losses": (fastnn, torch), "gradient_error": gradient_error(fastnn's, torch's)}."""
    torch = _torch()
    build = MODELS[name]
    model, net, shape, links = build(torch, quick, keep=1.0) if name.startswith("fc5") else build(torch, quick)
    X, y = _batches(shape, 1)[0]
    with options(backend="jit"):
        ours, grads = model.loss(X, y)
    net.train()
    theirs = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y))
    theirs.backward()
    torch_grads = {n: p.grad.numpy().T if transposed else p.grad.numpy() for n, p, transposed in links}
    return {"losses": (float(ours), float(theirs.item())), "gradient_error": gradient_error(grads, torch_grads)}


def check_first_step(name, quick=False):
    """first_step(name), or an AssertionError when the two sides' loss or gradients differ."""
    check = first_step(name, quick)
    ours, theirs = check["losses"]
    if not abs(ours - theirs) <= LOSS_TOLERANCE * max(1.0, abs(theirs)):
        raise AssertionError(f"{name}: first-step losses differ, fastnn {ours!r} vs torch {theirs!r}")
    if not check["gradient_error"] <= GRADIENT_TOLERANCE:
        raise AssertionError(f"{name}: first-step gradients differ from torch's by {check['gradient_error']:.3g} "
                             f"of their scale (tolerance {GRADIENT_TOLERANCE:g})")
    return check


def median_step(timed):
    """From (seconds, {family: seconds}) per step: the median step's own breakdown, plus "optimizer and python",
    the rest of that step, so the parts add up to one step (a single timed step was often an outlier)."""
    seconds, families = sorted(timed, key=lambda step: step[0])[len(timed) // 2]
    return dict(families, **{"optimizer and python": seconds - sum(families.values())})


def time_model(name, threads, quick=False, rounds=None):
    torch = _torch()
    model, net, shape, _ = MODELS[name](torch, quick)
    batches = _batches(shape)
    torch_batches = [(torch.from_numpy(X), torch.from_numpy(y)) for X, y in batches]
    configs = {k: {"learning_rate": 1e-3} for k in model.params}
    ours, theirs = _fastnn_step(model, configs), _torch_step(torch, net)
    counter = {"ours": 0, "theirs": 0}

    def run_ours():
        with options(backend="jit"):
            ours(*batches[counter["ours"] % len(batches)])
        counter["ours"] += 1

    def run_theirs():
        theirs(*torch_batches[counter["theirs"] % len(torch_batches)])
        counter["theirs"] += 1

    with ExitStack() as stack:
        _thread_limits(stack, threads)
        samples = measure({"fastnn": run_ours, "torch": run_theirs}, rounds or (3 if quick else 9))
        timed = []
        for _ in range(BREAKDOWN_STEPS):
            totals = defaultdict(float)
            with layer_timer(totals):
                start = time.perf_counter()
                run_ours()
                timed.append((time.perf_counter() - start, dict(totals)))
    breakdown = median_step(timed)
    return {
        "model": name, "threads": threads, "batch": shape,
        "fastnn_ms": 1e3 * float(np.median(samples["fastnn"])), "torch_ms": 1e3 * float(np.median(samples["torch"])),
        "fastnn_over_torch": float(np.median(np.divide(samples["fastnn"], samples["torch"]))),
        "breakdown_ms": {k: 1e3 * v for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1])},
    }


def train_epoch_seconds():
    """Seconds of one epoch of the `fastnn train` default (ThreeLayerConvNet on the digits), kernels warm, at the
    thread counts `fastnn train` itself runs with (numba's and BLAS's defaults), not the report's."""
    from .commands.train import build_model, load_data
    from .solver import Solver

    data = load_data("digits")
    num_classes = int(data["y_train"].max()) + 1
    model = build_model("cnn", data["X_train"].shape[1:], num_classes)
    with options(backend="jit"):
        warm = Solver(model, data, update_rule="adam", num_epochs=1, batch_size=50, verbose=False, seed=0,
                      num_train_samples=200)
        warm._step()
        solver = Solver(model, data, update_rule="adam", num_epochs=1, batch_size=50, verbose=False, seed=0,
                        num_train_samples=None)
        start = time.perf_counter()
        solver.train()
        return time.perf_counter() - start


def default_threads():
    """numba's thread count outside any fastnn.num_threads block: the one `fastnn train` runs with."""
    from .kernels._threads import num_threads  # not numba's own: it would start numba's threads unchosen

    return num_threads()


def max_threads():
    """Threads numba may use in this process (CPU affinity and NUMBA_NUM_THREADS bound it)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


def environment_at(threads):
    """fastnn.bench.environment(threads), taken with numba, BLAS and torch pinned to `threads` as the steps run."""
    with ExitStack() as stack:
        _thread_limits(stack, threads)
        return environment(threads)


def run(threads=(1, 2), quick=False, rounds=None, keep_freed=False):
    """keep_freed: apply fastnn.allocator.keep_freed_memory() first (see fastnn.bench.malloc_setting)."""
    rounds = check_rounds(rounds, quick, fn="fastnn bench --e2e")
    torch = _torch()
    if torch is None:
        return {"skipped": "PyTorch is not installed: `pip install torch` (CPU) to compare end to end"}
    limit = max_threads()
    usable = [n for n in threads if n <= limit]
    malloc = malloc_setting(keep_freed)
    report = {"quick": bool(quick), "rounds": rounds, "environment": [environment_at(n) for n in usable],
              "first_step_losses": {}, "first_step_gradient_error": {}, "steps": [],
              "train_epoch_seconds": train_epoch_seconds(), "train_epoch_threads": default_threads(),
              "threads_skipped": [n for n in threads if n not in usable], "max_threads": limit, "malloc": malloc}
    for name in MODELS:
        check = check_first_step(name, quick)
        report["first_step_losses"][name] = check["losses"]
        report["first_step_gradient_error"][name] = check["gradient_error"]
    for name in MODELS:
        for n in usable:
            report["steps"].append(time_model(name, n, quick, rounds))
    return report


def format_report(report):
    if "skipped" in report:
        return report["skipped"]
    rounds = f"medians of {report['rounds']} rounds" if "rounds" in report else "medians"
    lines = [f"end to end, float32, one train step = forward + backward + Adam update ({rounds}, ratio per round)"]
    for i, env in enumerate(report.get("environment", [])):  # one per thread count measured
        lines += environment_lines(env, machine=i == 0, malloc=False)
    lines.append(f"malloc: {report.get('malloc', 'not recorded')}")
    if report.get("quick"):
        lines.append("--quick: smaller batches (the batch column gives those measured)")
    errors = report.get("first_step_gradient_error", {})
    for name, (ours, theirs) in report["first_step_losses"].items():
        gradients = f", gradients within {errors[name]:.1e} of torch's" if name in errors else ""
        lines.append(f"  first-step loss {name}: fastnn {ours:.6f}, torch {theirs:.6f}{gradients} (dropout off)")
    lines.append(f"{'model':<24} {'batch':<18} {'threads':>7} {'fastnn':>10} {'torch':>10} {'fastnn/torch':>13}")
    for r in report["steps"]:
        lines.append(f"{r['model']:<24} {str(tuple(r['batch'])):<18} {r['threads']:>7} {r['fastnn_ms']:>8.1f}ms "
                     f"{r['torch_ms']:>8.1f}ms {r['fastnn_over_torch']:>13.3f}")
    for r in report["steps"]:
        if r["threads"] == 1:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in r["breakdown_ms"].items())
            lines.append(f"where a 1-thread fastnn step of {r['model']} goes (ms): {parts}")
    for n in report.get("threads_skipped", []):
        limit = report.get("max_threads") or max_threads()
        lines.append(f"{n} threads skipped: this process may use {limit} (CPU affinity or NUMBA_NUM_THREADS)")
    threads = report.get("train_epoch_threads")
    threads = f", {threads} numba thread(s) as `fastnn train` runs" if threads else ""
    lines.append(f"`fastnn train` default: one epoch in {report['train_epoch_seconds']:.2f} s (kernels warm{threads})")
    return "\n".join(lines)
