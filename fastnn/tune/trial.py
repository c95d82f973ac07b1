"""One trial, run inside a dask task: the Trial record, the per-trial seed, the split of a config into Solver
arguments, the one-thread and seeded-RNG contexts, and run_trial, which builds, trains and scores one model and
turns any error into a failed Trial; nothing here imports dask.
"""

import contextlib
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _checks as check
from .._options import options

# Config keys the Solver takes (everything else in a config is the model builder's).
SOLVER_KEYS = ("update_rule", "lr_decay", "batch_size", "num_epochs")
OPTIM_KEYS = ("learning_rate", "momentum", "beta1", "beta2", "decay_rate", "epsilon")
# solver_kwargs a trial sets itself.
TRIAL_OWNED_KEYS = ("seed", "verbose", "progress_bar", "checkpoint_name")


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
    search_seed = check.integer("trial_seed", "search_seed", search_seed, minimum=0)
    index = check.integer("trial_seed", "index", index, minimum=0)
    return int(np.random.SeedSequence([search_seed, index]).generate_state(1)[0])


def solver_settings(solver_kwargs, config):
    """The Solver keyword arguments of one trial: solver_kwargs with the config's Solver and optim keys on top.
    A built-in update rule gets only the optim keys it reads: a search over update_rule and momentum gives adam's
    trials no momentum (which the Solver would warn of, trial after trial)."""
    from ..optim import CONFIG_KEYS, _builtin_name

    kwargs = dict(solver_kwargs)
    kwargs["optim_config"] = dict(kwargs.get("optim_config", {}))
    for key in SOLVER_KEYS:
        if key in config:
            kwargs[key] = config[key]
    read = CONFIG_KEYS.get(_builtin_name(kwargs.get("update_rule", "sgd")), OPTIM_KEYS)
    for key in OPTIM_KEYS:
        if key in config and key in read:
            kwargs["optim_config"][key] = config[key]
    return kwargs


@contextlib.contextmanager
def single_threaded():
    """Numba and BLAS (through threadpoolctl, when installed) at one thread inside the block, restored after.

    One trial per core: a trial that also spread over every core would oversubscribe the machine.
    """
    from ..kernels._threads import threads

    with threads(1):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            blas = contextlib.nullcontext()
        else:
            blas = threadpool_limits(limits=1)
        with blas:
            yield


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
    - best: None when the trial failed, else a dict with the Solver's best params ('params') and the model's
      batchnorm running statistics of the same check ('model_state', as fastnn.checkpoint.model_state gives it)

    The builder and the Solver get read-only views of `data`: an in-place edit (data['X_train'] -= mean) is an
    error of that trial, not a change every later trial on the worker would see.
    """
    from ..checkpoint import model_state
    from ..solver import Solver

    start = time.perf_counter()
    solver, error = None, None
    # a diverging trial is a result ('failed', the Solver's FloatingPointError): NumPy's overflow warnings on the
    # way there only cluttered the workers' output
    with _TRIAL_LOCK, single_threaded(), options(**settings), _seeded_global_rng(seed), \
            np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            trial_data = _read_only(data)
            model = build_model(dict(config), trial_data)
            solver = Solver(model, trial_data, verbose=False, seed=seed, **solver_settings(solver_kwargs, config))
            solver.train()
        except (Exception, SystemExit) as exc:  # a failed trial is a result, never the end of the search (or worker)
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
    if error is not None:
        return trial, None
    return trial, {"params": dict(solver.best_params), "model_state": model_state(model)}  # train() put them in


def _read_only(data):
    """A new dict of read-only views of data's arrays (other values as they are)."""
    views = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray):
            value = value.view()
            value.flags.writeable = False
        views[key] = value
    return views
