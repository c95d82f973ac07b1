"""Hyperparameter search the CS231n way: random search in log space, coarse then fine, on dask.distributed.

    from fastnn.data_utils import load_digits
    from fastnn.tune import build_fc_net, choice, coarse_to_fine, loguniform, random_search

    space = {"learning_rate": loguniform(1e-4, 1e-1), "reg": loguniform(1e-6, 1e-1), "hidden_size": choice([32, 64])}
    result = random_search(build_fc_net, load_digits(), space, n_trials=20,
                           solver_kwargs={"update_rule": "adam", "num_epochs": 5})
    print(result.table())
    result.save("tune-out")          # results.json, results.csv, scatter.png, best.npz

Every trial is one dask task: it builds a model with `build_model(config, data)`, trains it with
fastnn.solver.Solver(verbose=False) and reports its best validation accuracy, final loss and histories. Configs
and per-trial seeds are all drawn up front from the search seed, and each trial runs with numba and BLAS pinned
to one thread, so the results are the same whatever the number of workers. A trial that raises or diverges is
recorded as failed with its error; it never stops the search.

`build_model` travels to the workers pickled with cloudpickle: make it a module-level function of a module the
workers can import (fastnn itself, your installed package) or of the script or notebook you run (those travel by
value). fastnn must be installed where the dask scheduler and workers run.
"""

import contextlib
import csv
import io
import json
import logging
import math
import os
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _checks as check
from ._options import options

# Config keys the Solver takes (everything else in a config is the model builder's).
SOLVER_KEYS = ("update_rule", "lr_decay", "batch_size", "num_epochs")
OPTIM_KEYS = ("learning_rate", "momentum", "beta1", "beta2", "decay_rate", "epsilon")
# solver_kwargs a trial sets itself.
TRIAL_OWNED_KEYS = ("seed", "verbose", "progress_bar", "checkpoint_name")


# ----------------------------------------------------------------------------------------------------------
# The search space: named parameters, each sampling from a np.random.Generator it is given.


def _bounds(fn, low, high, positive=False, integer=False):
    for name, value in (("low", low), ("high", high)):
        if integer:
            check.integer(fn, name, value)
        else:
            check.number(fn, name, value)
    if not low < high or (positive and not low > 0):
        need = "0 < low < high" if positive else "low < high"
        check.fail(fn, f"the range needs {need}, got low={low!r}, high={high!r}")
    return (int(low), int(high)) if integer else (float(low), float(high))


@dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform in [log(low), log(high)]: learning rates, regularisation strengths."""

    low: float
    high: float
    log_scale = True

    def __post_init__(self):
        low, high = _bounds("loguniform", self.low, self.high, positive=True)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng):
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return min(max(value, self.low), self.high)  # exp(log(x)) may round one ulp outside

    def narrowed(self, values, widen):
        lo, hi = _widened(np.log(values), widen, math.log(self.low), math.log(self.high))
        return LogUniform(math.exp(lo), math.exp(hi))

    def describe(self):
        return {"type": "loguniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Uniform:
    """A float uniform in [low, high]: dropout keep ratios, momentum."""

    low: float
    high: float
    log_scale = False

    def __post_init__(self):
        low, high = _bounds("uniform", self.low, self.high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def narrowed(self, values, widen):
        return Uniform(*_widened(np.asarray(values, dtype=float), widen, self.low, self.high))

    def describe(self):
        return {"type": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class RandInt:
    """An integer uniform in [low, high) (high excluded, as numpy's integers): hidden sizes, batch sizes."""

    low: int
    high: int
    log_scale = False

    def __post_init__(self):
        low, high = _bounds("randint", self.low, self.high, integer=True)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng):
        return int(rng.integers(self.low, self.high))

    def narrowed(self, values, widen):
        # The top values as the half-open range [min, max + 1), widened and clipped like the float ranges.
        lo, hi = _widened(np.array([min(values), max(values) + 1], dtype=float), widen, self.low, self.high)
        return RandInt(math.floor(lo), math.ceil(hi))

    def describe(self):
        return {"type": "randint", "low": self.low, "high": self.high}


_JSON_SCALARS = (type(None), bool, int, float, str)


def _plain(value, fn):
    """`value` as plain Python (numpy scalars unwrapped, tuples as lists), refusing what JSON cannot hold."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, fn) for v in value]
    if not isinstance(value, _JSON_SCALARS):
        check.fail(fn, f"options must be numbers, strings, None or lists of them (results are saved as JSON), "
                       f"got {value!r} of type {type(value).__name__}", TypeError)
    return value


@dataclass(frozen=True)
class Choice:
    """One of a list of options, each equally likely: update rules, normalisations, layer sizes."""

    options: tuple
    log_scale = False

    def __post_init__(self):
        if isinstance(self.options, (str, bytes)) or not isinstance(self.options, (list, tuple)):
            check.fail("choice", f"options must be a list, got {self.options!r}", TypeError)
        if len(self.options) == 0:
            check.fail("choice", "options must not be empty")
        object.__setattr__(self, "options", tuple(_plain(v, "choice") for v in self.options))

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def narrowed(self, values, widen):
        return self  # options have no order to narrow along; every one stays possible

    def describe(self):
        return {"type": "choice", "options": list(self.options)}


def loguniform(low, high):
    """A float whose log is uniform between log(low) and log(high); needs 0 < low < high."""
    return LogUniform(low, high)


def uniform(low, high):
    """A float uniform between low and high; needs low < high."""
    return Uniform(low, high)


def randint(low, high):
    """An integer uniform in [low, high), high excluded; needs integers low < high."""
    return RandInt(low, high)


def choice(options):
    """One of `options` (a non-empty list of numbers, strings, None or lists of them), each equally likely."""
    return Choice(options)


PARAM_TYPES = (LogUniform, Uniform, RandInt, Choice)


def _widened(values, widen, low, high):
    """[min, max] of `values` padded by `widen` times its width on each side, clipped to [low, high].

    A single value (zero width) is padded by `widen` times the whole range instead.
    """
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = widen * ((hi - lo) if hi > lo else (high - low))
    return max(lo - pad, low), min(hi + pad, high)


def check_space(fn, space):
    """A dict of parameter name -> loguniform/uniform/randint/choice."""
    if not isinstance(space, dict):
        check.fail(fn, f"space must be a dict of name -> loguniform/uniform/randint/choice, "
                       f"got {type(space).__name__}", TypeError)
    for name, param in space.items():
        if not isinstance(name, str):
            check.fail(fn, f"space keys must be strings, got {name!r}", TypeError)
        if not isinstance(param, PARAM_TYPES):
            check.fail(fn, f"space[{name!r}] must be made by loguniform, uniform, randint or choice, "
                           f"got {param!r}", TypeError)
    return dict(space)


def sample_configs(space, n_trials, rng):
    """`n_trials` configs (dicts of name -> value) drawn in order from the np.random.Generator `rng`."""
    return [{name: param.sample(rng) for name, param in space.items()} for _ in range(n_trials)]


def describe_space(space):
    """The space as JSON-able dicts, e.g. {'learning_rate': {'type': 'loguniform', 'low': 1e-4, 'high': 0.1}}."""
    return {name: param.describe() for name, param in space.items()}


# ----------------------------------------------------------------------------------------------------------
# One trial, run inside a dask task.


@dataclass
class Trial:
    """The outcome of one trial.

    - index: its position in the search (fixes its seed); round: 0 coarse, 1 fine
    - config: the sampled hyperparameters; seed: the seed of its model init and Solver
    - status: 'ok' or 'failed' (error then holds "ExceptionType: message")
    - val_acc: the Solver's best validation accuracy (for a failed trial, the best before it failed, if any)
    - final_loss: the last training loss; loss_history, train_acc_history, val_acc_history as in the Solver
    - seconds: the trial's wall time on its worker
    """

    index: int
    round: int
    config: dict
    seed: int
    status: str
    val_acc: float | None = None
    final_loss: float | None = None
    loss_history: list = field(default_factory=list)
    train_acc_history: list = field(default_factory=list)
    val_acc_history: list = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self):
        return self.status == "ok"

    def rank_key(self):
        """Successful trials first, by best validation accuracy (highest first), ties by index."""
        return (not self.ok, -(self.val_acc or 0.0), self.index)


def trial_seed(search_seed, index):
    """The seed of trial `index`: a function of the search seed and the index only (not of scheduling)."""
    return int(np.random.SeedSequence([search_seed, index]).generate_state(1)[0])


def solver_settings(solver_kwargs, config):
    """The Solver keyword arguments of one trial: solver_kwargs with the config's Solver and optim keys on top."""
    kwargs = dict(solver_kwargs)
    kwargs["optim_config"] = dict(kwargs.get("optim_config", {}))
    for key in SOLVER_KEYS:
        if key in config:
            kwargs[key] = config[key]
    for key in OPTIM_KEYS:
        if key in config:
            kwargs["optim_config"][key] = config[key]
    return kwargs


@contextlib.contextmanager
def single_threaded():
    """Numba and BLAS (through threadpoolctl, when installed) at one thread inside the block, restored after.

    One trial per core: a trial that also spread over every core would oversubscribe the machine.
    """
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            blas = contextlib.nullcontext()
        else:
            blas = threadpool_limits(limits=1)
        with blas:
            yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def _seeded_global_rng(seed):
    """numpy's global RNG seeded with `seed` (model init and unseeded dropout draw from it), restored after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# One trial at a time per process: numpy's global RNG, fastnn.options and the BLAS limit are process-wide.
_TRIAL_LOCK = threading.Lock()


def run_trial(build_model, data, config, index, round, seed, solver_kwargs, settings):
    """Build, train and score one model; runs inside a dask task.

    Returns a tuple of:
    - trial: a Trial (status 'failed' with the error when building or training raised or diverged)
    - best_params: the Solver's best params (None when the trial failed)
    """
    from .solver import Solver

    start = time.perf_counter()
    solver, error = None, None
    with _TRIAL_LOCK, single_threaded(), options(**settings), _seeded_global_rng(seed):
        try:
            model = build_model(dict(config), data)
            solver = Solver(model, data, verbose=False, seed=seed, **solver_settings(solver_kwargs, config))
            solver.train()
        except Exception as exc:  # a failed trial is a result, never the end of the search
            error = f"{type(exc).__name__}: {exc}"
    trial = Trial(index=index, round=round, config=dict(config), seed=seed,
                  status="ok" if error is None else "failed", error=error,
                  seconds=time.perf_counter() - start)
    if solver is not None:
        trial.loss_history = [float(v) for v in solver.loss_history]
        trial.train_acc_history = [float(v) for v in solver.train_acc_history]
        trial.val_acc_history = [float(v) for v in solver.val_acc_history]
        trial.final_loss = trial.loss_history[-1] if trial.loss_history else None
        trial.val_acc = float(solver.best_val_acc) if solver.val_acc_history else None
    return trial, (dict(solver.best_params) if error is None else None)


# ----------------------------------------------------------------------------------------------------------
# The default model: a FullyConnectedNet sized for the data.

FC_NET_KEYS = ("hidden_size", "num_layers", "dropout", "normalization", "reg", "weight_scale", "dtype")


def build_fc_net(config, data):
    """A FullyConnectedNet for `data` (input size and class count are read from it), from the config keys
    hidden_size (default 64), num_layers (hidden layers, default 1), dropout (keep ratio, default 1),
    normalization (None), reg (0.0), weight_scale (1e-2, or 'xavier' / 'he') and dtype ('float32').

    Keys that are neither these nor Solver keys (SOLVER_KEYS, OPTIM_KEYS) raise a ValueError, so a misspelt
    parameter fails its trials instead of being searched for nothing.
    """
    from .classifiers.fc_net import FullyConnectedNet

    unknown = sorted(set(config) - set(FC_NET_KEYS) - set(SOLVER_KEYS) - set(OPTIM_KEYS))
    if unknown:
        check.fail("build_fc_net", f"unknown config keys {unknown}; it reads {list(FC_NET_KEYS)} and the Solver "
                                   f"reads {list(SOLVER_KEYS + OPTIM_KEYS)}")
    input_dim = int(np.prod(np.shape(data["X_train"])[1:]))
    num_classes = int(max(np.max(data["y_train"]), np.max(data["y_val"]))) + 1
    return FullyConnectedNet(
        [config.get("hidden_size", 64)] * config.get("num_layers", 1),
        input_dim=input_dim,
        num_classes=num_classes,
        dropout=config.get("dropout", 1),
        normalization=config.get("normalization"),
        reg=config.get("reg", 0.0),
        weight_scale=config.get("weight_scale", 1e-2),
        dtype=np.dtype(config.get("dtype", "float32")).type,
    )


def default_space():
    """The search `fastnn tune` runs: learning rate, regularisation and weight scale in log space, hidden size."""
    return {
        "learning_rate": loguniform(1e-4, 1e-1),
        "reg": loguniform(1e-6, 1e-1),
        "weight_scale": loguniform(1e-3, 1e-1),
        "hidden_size": choice([32, 64, 128]),
    }


# ----------------------------------------------------------------------------------------------------------
# Running trials on a dask.distributed client.


def _distributed(fn):
    try:
        import distributed
    except ImportError as error:
        raise ImportError(f"{fn} runs on dask.distributed, which is not installed: pip install 'fastnn[tune]'") \
            from error
    return distributed


@contextlib.contextmanager
def connect(client=None, n_workers=None, fn="random_search"):
    """A dask client for the search: `client` itself; a Client connected to `client` when it is an address
    ('tcp://host:8786'); else a LocalCluster of `n_workers` processes (default: this machine's cores) with one
    thread each, no dashboard and quiet logs. Clients and clusters started here are closed on exit."""
    if client is not None and not isinstance(client, str):
        if not (hasattr(client, "submit") and hasattr(client, "scatter")):
            check.fail(fn, f"client must be a distributed.Client or a scheduler address, got {client!r}", TypeError)
        if n_workers is not None:
            check.fail(fn, "n_workers applies only to the LocalCluster started when client is None")
        yield client
        return
    distributed = _distributed(fn)
    if isinstance(client, str):
        if n_workers is not None:
            check.fail(fn, "n_workers applies only to the LocalCluster started when client is None")
        with distributed.Client(client) as connected:
            yield connected
        return
    if n_workers is None:
        n_workers = os.cpu_count() or 1
    check.integer(fn, "n_workers", n_workers, minimum=1)
    # No dashboard; the scheduler's HTTP endpoints (always served) on a free port, not on a busy 8787.
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                                  silence_logs=logging.ERROR) as cluster:
        with distributed.Client(cluster) as local:
            yield local


def _pickled_builder(fn, build_model):
    """build_model as cloudpickle bytes, so that what cloudpickle sends by value (functions of __main__ and of
    modules registered with cloudpickle.register_pickle_by_value) reaches the workers whatever dask's own
    choice of pickler for the task; anything else must be importable on the workers."""
    import cloudpickle

    try:
        return cloudpickle.dumps(build_model)
    except Exception as error:
        check.fail(fn, f"build_model {build_model!r} cannot be pickled for the dask workers ({error}); define it "
                       "as a module-level function", TypeError)


def _run_pickled_trial(pickled_builder, *args):
    import cloudpickle

    return run_trial(cloudpickle.loads(pickled_builder), *args)


def _check_search_args(fn, build_model, data, space, n_trials, solver_kwargs, seed):
    if not callable(build_model):
        check.fail(fn, f"build_model must be a function (config, data) -> model, got {build_model!r}", TypeError)
    _distributed(fn)
    pickled_builder = _pickled_builder(fn, build_model)
    if not isinstance(data, dict):
        check.fail(fn, f"data must be a dict with X_train, y_train, X_val, y_val, got {type(data).__name__}",
                   TypeError)
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
    if missing:
        check.fail(fn, f"data is missing {missing}; got keys {sorted(data)}")
    space = check_space(fn, space)
    check.integer(fn, "n_trials", n_trials, minimum=1)
    solver_kwargs = {} if solver_kwargs is None else solver_kwargs
    if not isinstance(solver_kwargs, dict):
        check.fail(fn, f"solver_kwargs must be a dict, got {type(solver_kwargs).__name__}", TypeError)
    owned = sorted(set(solver_kwargs) & set(TRIAL_OWNED_KEYS))
    if owned:
        check.fail(fn, f"solver_kwargs may not set {owned}: each trial sets its own seed and trains silently")
    check.integer(fn, "seed", seed, minimum=0)
    return pickled_builder, space, dict(solver_kwargs)


def _run_round(client, pickled_builder, data_future, configs, first_index, round, seed, solver_kwargs, progress):
    """Submit one task per config and collect the Trials, keeping only the best trial's params."""
    distributed = _distributed("random_search")
    settings = {"backend": options().backend, "parallel": options().parallel}  # the caller's, in every worker
    tag = uuid.uuid4().hex[:8]
    futures = {}
    for offset, config in enumerate(configs):
        index = first_index + offset
        s = trial_seed(seed, index)
        future = client.submit(_run_pickled_trial, pickled_builder, data_future, config, index, round, s, solver_kwargs,
                               settings, key=f"fastnn-trial-{tag}-{index}", pure=False)
        futures[future] = (index, config, s)

    trials, best, best_params = [], None, None
    bar = _progress_bar(len(futures), round, progress)
    for future in distributed.as_completed(list(futures)):
        index, config, s = futures.pop(future)
        try:
            trial, params = future.result()
        except Exception as exc:  # the task itself was lost (a worker died, the cluster went away)
            trial, params = Trial(index=index, round=round, config=config, seed=s, status="failed",
                                  error=f"{type(exc).__name__}: {exc}"), None
        future.release()
        trials.append(trial)
        if trial.ok and (best is None or trial.rank_key() < best.rank_key()):
            best, best_params = trial, params
        bar.update(1)
    bar.close()
    return trials, best_params


def _progress_bar(total, round, show):
    from tqdm import tqdm

    return tqdm(total=total, disable=not show, unit="trial", desc=("coarse", "fine")[round], leave=True)


def _search_rounds(fn, build_model, data, space, n_trials, solver_kwargs, seed, client, n_workers, progress,
                   fine=None):
    """Run a coarse round and, if `fine` = (n_fine, top_k, widen), a fine round around its best trials."""
    builder, space, solver_kwargs = _check_search_args(fn, build_model, data, space, n_trials, solver_kwargs, seed)
    training_data = {k: data[k] for k in ("X_train", "y_train", "X_val", "y_val")}
    with connect(client, n_workers, fn) as c:
        [data_future] = c.scatter([training_data], broadcast=True, hash=False)  # a key of its own
        spaces = [space]
        configs = sample_configs(space, n_trials, np.random.default_rng([seed, 0]))
        trials, best_params = _run_round(c, builder, data_future, configs, 0, 0, seed, solver_kwargs, progress)
        if fine is not None and not any(t.ok for t in trials):
            warnings.warn(f"{fn}: every coarse trial failed, so there is no fine round; see the errors in "
                          "result.table()", RuntimeWarning, stacklevel=3)
        elif fine is not None:
            n_fine, top_k, widen = fine
            spaces.append(narrow(space, trials, top_k, widen))
            configs = sample_configs(spaces[1], n_fine, np.random.default_rng([seed, 1]))
            fine_trials, fine_params = _run_round(c, builder, data_future, configs, n_trials, 1, seed,
                                                  solver_kwargs, progress)
            best_before = min((t for t in trials if t.ok), key=Trial.rank_key, default=None)
            best_fine = min((t for t in fine_trials if t.ok), key=Trial.rank_key, default=None)
            if best_fine is not None and (best_before is None or best_fine.rank_key() < best_before.rank_key()):
                best_params = fine_params
            trials += fine_trials
    return SearchResult(sorted(trials, key=Trial.rank_key), spaces, seed, best_params)


def random_search(build_model, data, space, n_trials, solver_kwargs=None, seed=0, client=None, n_workers=None,
                  progress=False):
    """Random search: `n_trials` configs drawn from `space`, each trained as one dask task.

    Inputs:
    - build_model: a picklable function (config, data) -> model, e.g. build_fc_net; define it at module level
    - data: a dict with X_train, y_train, X_val, y_val (sent once to every worker)
    - space: a dict of name -> loguniform / uniform / randint / choice. The config keys update_rule, lr_decay,
      batch_size and num_epochs go to the Solver, learning_rate, momentum, beta1, beta2, decay_rate and epsilon
      to its optim_config; build_model sees the whole config
    - n_trials: how many configs to try
    - solver_kwargs: fixed Solver arguments for every trial (num_epochs, batch_size, update_rule, ...); seed and
      verbose are the trial's own
    - seed: fixes every config and every trial's model init and Solver, whatever the number of workers
    - client: a distributed.Client, a scheduler address, or None to start (and close) a LocalCluster of
      `n_workers` processes (default: this machine's cores), one thread each
    - progress: show a progress bar over finished trials

    The trials run with the caller's fastnn.options() backend and parallel settings, numba and BLAS pinned to one
    thread, one trial at a time per worker process (start external workers with `--nthreads 1`).

    Returns a SearchResult: trials sorted by best validation accuracy, failed trials last with their errors,
    and the best trial's params.
    """
    return _search_rounds("random_search", build_model, data, space, n_trials, solver_kwargs, seed, client,
                          n_workers, progress)


def coarse_to_fine(build_model, data, space, n_coarse, n_fine, top_k=3, widen=0.25, solver_kwargs=None, seed=0,
                   client=None, n_workers=None, progress=False):
    """A coarse random search of `n_coarse` trials over `space`, then `n_fine` trials over the space narrowed
    around the best `top_k` coarse trials (see narrow). Arguments otherwise as random_search, on one cluster.

    Returns a SearchResult holding the trials of both rounds (Trial.round 0 and 1) and both spaces. When every
    coarse trial fails there is nothing to narrow around: a RuntimeWarning says so and the result holds the
    coarse round alone.
    """
    fn = "coarse_to_fine"
    check.integer(fn, "n_fine", n_fine, minimum=1)
    check.integer(fn, "top_k", top_k, minimum=1)
    check.number(fn, "widen", widen, low=0)
    return _search_rounds(fn, build_model, data, space, n_coarse, solver_kwargs, seed, client, n_workers,
                          progress, fine=(n_fine, top_k, widen))


def narrow(space, trials, top_k=3, widen=0.25):
    """The space narrowed around the best `top_k` successful trials.

    Each loguniform range becomes the [min, max] of those trials' values in log space, uniform and randint
    ranges the same in linear space, each padded by `widen` times its width on both sides (a single value: by
    `widen` times the original width) and clipped to the original range. Choices stay as they are.
    """
    fn = "narrow"
    space = check_space(fn, space)
    check.integer(fn, "top_k", top_k, minimum=1)
    check.number(fn, "widen", widen, low=0)
    best = sorted((t for t in trials if t.ok), key=Trial.rank_key)[:top_k]
    if not best:
        check.fail(fn, f"none of the {len(trials)} trials succeeded, so there is nothing to narrow around; "
                       "see their errors in the result table")
    return {name: param.narrowed([t.config[name] for t in best], widen) for name, param in space.items()}


# ----------------------------------------------------------------------------------------------------------
# Results


def _atomic_write_text(path, text):
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def _format_value(value, log_scale):
    if isinstance(value, float):
        return f"{value:.2e}" if log_scale else f"{value:.4g}"
    return str(value)


@dataclass
class SearchResult:
    """The trials of a search, best first.

    - trials: Trials sorted by best validation accuracy (failed trials last)
    - spaces: the space of each round (one for random_search, coarse and fine for coarse_to_fine)
    - seed: the search seed
    - best_params: the params of the best trial (None if every trial failed)
    """

    trials: list
    spaces: list
    seed: int
    best_params: dict | None = None

    @property
    def best(self):
        """The best successful Trial, or None."""
        return next((t for t in self.trials if t.ok), None)

    @property
    def failed(self):
        return [t for t in self.trials if not t.ok]

    def _param_names(self):
        return list(dict.fromkeys(name for space in self.spaces for name in space))

    def _log_scale(self, name):
        return any(getattr(space.get(name), "log_scale", False) for space in self.spaces)

    def table(self, top=None):
        """The trials as a text table, best first (only the first `top` when given)."""
        names = self._param_names()
        header = ["rank", "trial", "round", "val_acc", "final_loss"] + names + ["status"]
        rows = []
        for rank, t in enumerate(self.trials[:top] if top else self.trials, start=1):
            status = "ok" if t.ok else f"failed: {t.error}"
            if len(status) > 60:
                status = status[:57] + "..."
            rows.append([str(rank), str(t.index), ("coarse", "fine")[t.round],
                         "-" if t.val_acc is None else f"{t.val_acc:.4f}",
                         "-" if t.final_loss is None else f"{t.final_loss:.4g}"]
                        + [_format_value(t.config.get(n, ""), self._log_scale(n)) for n in names] + [status])
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]
        ok = sum(t.ok for t in self.trials)
        lines.append(f"{ok} of {len(self.trials)} trials succeeded (seed {self.seed})")
        return "\n".join(lines)

    def to_dict(self):
        """Everything but the params, as JSON-able dicts."""
        return {"seed": self.seed, "spaces": [describe_space(s) for s in self.spaces],
                "trials": [asdict(t) for t in self.trials]}

    def to_json(self, path):
        """Write to_dict() as JSON (atomically); returns the path."""
        return _atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def to_csv(self, path):
        """One row per trial, best first: rank, index, round, seed, status, val_acc, final_loss, seconds, one
        column per parameter (lists as JSON), error. Written atomically; returns the path."""
        names = self._param_names()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["rank", "index", "round", "seed", "status", "val_acc", "final_loss", "seconds"] + names
                        + ["error"])
        for rank, t in enumerate(self.trials, start=1):
            values = [json.dumps(v) if isinstance(v, list) else v for v in (t.config.get(n, "") for n in names)]
            writer.writerow([rank, t.index, t.round, t.seed, t.status, t.val_acc, t.final_loss, f"{t.seconds:.3f}"]
                            + values + [t.error or ""])
        return _atomic_write_text(path, out.getvalue())

    def plot(self, path):
        """A PNG scatter of best validation accuracy against each log-scale parameter (log x axis), the
        course's picture; failed trials are left out. Needs matplotlib (pip install 'fastnn[plot]'); leaves
        matplotlib's global backend alone. Returns the path."""
        names = [n for n in self._param_names() if self._log_scale(n)]
        if not names:
            check.fail("SearchResult.plot", "the space has no loguniform parameter to plot against")
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as error:
            raise ImportError("SearchResult.plot needs matplotlib: pip install 'fastnn[plot]'") from error
        fig = Figure(figsize=(4.2 * len(names), 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        ok = [t for t in self.trials if t.ok]
        accs = [t.val_acc or 0.0 for t in ok]
        for i, name in enumerate(names):
            ax = fig.add_subplot(1, len(names), i + 1)
            for round, marker, label in ((0, "o", "coarse"), (1, "^", "fine")):
                picked = [(t.config[name], a) for t, a in zip(ok, accs) if t.round == round]
                if picked:
                    ax.scatter(*zip(*picked), c=[a for _, a in picked], cmap="viridis", vmin=min(accs),
                               vmax=max(accs), marker=marker, label=label, edgecolors="k", linewidths=0.3)
            ax.set_xscale("log")
            ax.set_xlabel(name)
            ax.set_ylabel("best val accuracy")
            ax.grid(True, which="both", alpha=0.3)
            if len(self.spaces) > 1:
                ax.legend(loc="best", fontsize="small")
        n_failed = len(self.trials) - len(ok)
        fig.suptitle(f"{len(ok)} trials" + (f" ({n_failed} failed, not shown)" if n_failed else ""))
        fig.savefig(os.fspath(path), format="png", dpi=100)
        return path

    def save_best(self, path):
        """The best trial's params, config and score as a fastnn checkpoint (.npz, atomic); returns the path.

        fastnn.checkpoint.load_checkpoint(path)['params'] gives the params back."""
        from .checkpoint import save_checkpoint

        best = self.best
        if best is None or self.best_params is None:
            check.fail("SearchResult.save_best", f"none of the {len(self.trials)} trials succeeded")
        return save_checkpoint(path, {"params": self.best_params, "config": best.config, "val_acc": best.val_acc,
                                      "trial": best.index, "seed": best.seed, "search_seed": self.seed})

    def save(self, directory):
        """Write results.json, results.csv, scatter.png (when matplotlib is installed and the space has a
        log-scale parameter) and best.npz (when a trial succeeded) into `directory`, created if needed.

        Returns a dict of what -> path, and 'skipped' -> the reasons for anything not written."""
        os.makedirs(directory, exist_ok=True)
        written = {"json": self.to_json(os.path.join(directory, "results.json")),
                   "csv": self.to_csv(os.path.join(directory, "results.csv"))}
        skipped = []
        if self.best is not None:
            written["best"] = self.save_best(os.path.join(directory, "best.npz"))
        else:
            skipped.append("best.npz: no trial succeeded")
        try:
            written["scatter"] = self.plot(os.path.join(directory, "scatter.png"))
        except (ImportError, ValueError) as error:
            skipped.append(f"scatter.png: {error}")
        if skipped:
            written["skipped"] = skipped
        return written
