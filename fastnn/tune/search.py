"""The distributed search: connect to (or start) a dask cluster, send the pickled model builder and the data to the
workers, run one task per trial in rounds, and narrow the space between the coarse and the fine round;
random_search and coarse_to_fine are the entry points. dask, cloudpickle and tqdm are imported only when a search
runs.
"""

import contextlib
import logging
import signal
import uuid
import warnings

import numpy as np

from .. import _checks as check
from .._cpus import available_cpus
from .._options import carried
from .result import SearchResult
from .space import check_space, sample_configs
from .trial import TRIAL_OWNED_KEYS, Trial, run_trial, trial_seed


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
    ('tcp://host:8786'); else a LocalCluster of `n_workers` processes (default: the CPUs this process may use) with one
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
        n_workers = available_cpus()
    check.integer(fn, "n_workers", n_workers, minimum=1)
    with contextlib.ExitStack() as stack:
        stack.callback(logging.disable, logging.root.manager.disable)  # runs last, once the cluster is closed
        try:
            with _sigint_blocked():
                # No dashboard; the scheduler's HTTP endpoints (always served) on a free port, not on a busy 8787.
                # Logs: only what is critical (the workers' errors at shutdown are noise; a trial's are recorded).
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.CRITICAL))
            yield stack.enter_context(distributed.Client(cluster))
        except KeyboardInterrupt:  # closing a cluster amid its tasks logs closed comms and cancelled tasks
            logging.disable(logging.CRITICAL)
            raise


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread while it starts a LocalCluster. The cluster's threads inherit the mask, and
    so do the worker processes they start: a Ctrl-C, which a terminal sends to the whole process group, reaches
    this process alone (each worker printed a KeyboardInterrupt traceback), which then closes the cluster. A
    Ctrl-C meanwhile waits until the cluster is up."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # started later, by the cluster's thread, it would unblock SIGINT there
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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

    # The bytes are _pickled_builder's, made in this search's own process from the caller's function and passed to
    # its workers through dask (which unpickles every task payload anyway); never a file. A restricted unpickler
    # cannot rebuild a function, which is the point of sending it.
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
    settings = carried()  # the caller's, in every worker
    tag = uuid.uuid4().hex[:8]
    futures = {}
    for offset, config in enumerate(configs):
        index = first_index + offset
        s = trial_seed(seed, index)
        future = client.submit(_run_pickled_trial, pickled_builder, data_future, config, index, round, s, solver_kwargs,
                               settings, key=f"fastnn-trial-{tag}-{index}", pure=False)
        futures[future] = (index, config, s)

    trials, best, best_params = [], None, None
    with _progress_bar(len(futures), round, progress) as bar:  # closed (its line ended) on Ctrl-C too
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
    return trials, best_params


def _progress_bar(total, round, show):
    from tqdm import tqdm

    return tqdm(total=total, disable=not show, unit="trial", desc=("coarse", "fine")[round], leave=True)


def _warn_of_unread_optim_keys(fn, space, solver_kwargs):
    """A searched optim key that no built-in rule of the search reads (momentum with update_rule 'adam') trains
    nothing: each trial leaves it out of its optim_config (solver_settings), so say so once, here."""
    from ..optim import CONFIG_KEYS, builtin_name
    from .space import Choice
    from .trial import OPTIM_KEYS

    rule = space.get("update_rule", solver_kwargs.get("update_rule", "sgd"))
    rules = rule.options if isinstance(rule, Choice) else (rule,)
    names = [builtin_name(r) for r in rules]
    if None in names:  # a rule of the user's own reads what it likes
        return
    read = {key for name in names for key in CONFIG_KEYS[name]}
    unread = [key for key in space if key in OPTIM_KEYS and key not in read]
    if unread:
        warnings.warn(f"{fn}: no update rule of this search ({', '.join(names)}) reads {unread}; the trials "
                      "draw and record them, but they train nothing", UserWarning, stacklevel=4)


def _search_rounds(fn, build_model, data, space, n_trials, solver_kwargs, seed, client, n_workers, progress,
                   fine=None):
    """Run a coarse round and, if `fine` = (n_fine, top_k, widen), a fine round around its best trials."""
    builder, space, solver_kwargs = _check_search_args(fn, build_model, data, space, n_trials, solver_kwargs, seed)
    _warn_of_unread_optim_keys(fn, space, solver_kwargs)
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
      `n_workers` processes (default: the CPUs this process may use), one thread each
    - progress: show a progress bar over finished trials

    The trials run with the caller's fastnn.options() (all but cache: _options.carried()), numba and BLAS pinned
    to one thread, one trial at a time per worker process (start external workers with `--nthreads 1`).

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
    coarse round alone. Every argument is checked before the first trial runs.
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
    ranges the same in linear space, each padded by `widen` times its width on both sides (equal values: by
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
