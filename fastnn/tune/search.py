"""The distributed search: connect to (or start) a dask cluster, send the pickled model builder and the data to the
workers, run one task per trial in rounds, and narrow the space between the coarse and the fine round;
random_search and coarse_to_fine are the entry points. dask, cloudpickle and tqdm are imported only when a search
runs.
"""

import collections
import uuid
import warnings
from concurrent.futures import CancelledError

import numpy as np

from .. import _checks as check
from .._options import carried
from ..solver import ARGUMENTS as SOLVER_ARGUMENTS
from .cluster import _distributed, connect
from .result import SearchResult
from .space import check_space, sample_configs
from .trial import TRIAL_OWNED_KEYS, Trial, run_trial, trial_seed


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


def _run_pickled_trial(topic, pickled_builder, *args):
    import cloudpickle

    _announce(topic, "started")
    # The bytes are _pickled_builder's, made in this search's own process from the caller's function and passed to
    # its workers through dask (which unpickles every task payload anyway); never a file. A restricted unpickler
    # cannot rebuild a function, which is the point of sending it.
    result = run_trial(cloudpickle.loads(pickled_builder), *args)
    _announce(topic, "finished")
    return result


def _announce(topic, what):
    """Log (what, this task's key, its worker) under the round's event `topic` on the scheduler, and wait until it
    is logged (an RPC, not the worker's batched stream, which a crash right after would not flush); see
    _died_running. Best effort: a trial is not failed for an event the scheduler did not take."""
    from distributed import get_worker
    from distributed.utils import sync

    try:
        worker = get_worker()
        sync(worker.loop, worker.scheduler.log_event, topic=topic,
             msg=[what, str(worker.get_current_task()), worker.address])
    except Exception:  # noqa: BLE001  (without the event the search only blames less; see EXTRA_DATA_SENDS)
        pass


def _died_running(client, topic, key):
    """Whether the task `key` started its trial on a worker that died before the trial finished there (False if the
    scheduler cannot say). Any other cancellation is not the trial's doing: the data it needed were lost, or its
    finished result with a worker that a crashing trial killed afterwards."""
    try:
        events = [(what, address) for _, (what, task, address) in client.get_events(topic) if task == key]
        alive = client.nthreads()
    except (OSError, RuntimeError):  # the scheduler went away (CommClosedError, "ConnectionPool is closed")
        return False
    finished = {address for what, address in events if what == "finished"}
    return any(what == "started" and address not in alive and address not in finished for what, address in events)


def _check_search_args(fn, build_model, data, space, n_trials, solver_kwargs, seed, trials_name):
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
    n_trials = check.integer(fn, trials_name, n_trials, minimum=1, maximum=MAX_TRIALS)
    solver_kwargs = {} if solver_kwargs is None else solver_kwargs
    if not isinstance(solver_kwargs, dict):
        check.fail(fn, f"solver_kwargs must be a dict, got {type(solver_kwargs).__name__}", TypeError)
    owned = sorted(set(solver_kwargs) & set(TRIAL_OWNED_KEYS))
    if owned:
        check.fail(fn, f"solver_kwargs may not set {owned}: each trial sets its own seed and trains silently")
    unknown = sorted(set(solver_kwargs) - set(SOLVER_ARGUMENTS))
    if unknown:  # else every trial failed with the Solver's own "Unrecognized arguments"
        check.fail(fn, f"solver_kwargs has keys the Solver does not take: {unknown}; it takes "
                       f"{sorted(set(SOLVER_ARGUMENTS) - set(TRIAL_OWNED_KEYS))}")
    if not isinstance(solver_kwargs.get("optim_config", {}), dict):
        check.fail(fn, f"solver_kwargs['optim_config'] must be a dict, got "
                       f"{type(solver_kwargs['optim_config']).__name__}", TypeError)
    seed = check.integer(fn, "seed", seed, minimum=0)  # a numpy integer would not be saved as JSON
    return pickled_builder, space, n_trials, dict(solver_kwargs), seed


# A trial that comes back as KilledWorker (dask ran it on allowed-failures + 1 workers and each died meanwhile)
# runs once more: it may have been waiting on a worker behind the trial that crashed it; so does one that comes
# back cancelled after it had started (its worker died under it, taking with it the last copy of the data). One
# cancelled otherwise (the data it waited for were lost: every worker holding them died, each running a crashing
# trial, say; or its finished result was, with a worker a crashing trial killed next) is not to blame, and runs
# again on data sent anew. A round sends the data anew at most EXTRA_DATA_SENDS times more than it would if every
# one of its trials crashed: each can kill (allowed-failures + 1) * (KILLED_ATTEMPTS + 1) workers, and each death
# can lose the data once (a worker that replaces a dead one holds none until a trial needs it). A limit of 3 per
# trial gave up on healthy trials: one crashing trial lost a healthy one's data 4 times before its KilledWorker.
EXTRA_DATA_SENDS = 3
KILLED_ATTEMPTS = 1
# Seconds to wait for a worker when every one has died (a nanny restarts its worker in a few seconds), and how
# many times the data are sent to workers that die meanwhile.
WORKER_RESTART_TIMEOUT = 60
SCATTER_ATTEMPTS = 3
# A search holds every config, trial and history in memory: 10**9 trials grew it without end.
MAX_TRIALS = 100_000


class NoWorkers(RuntimeError):
    """No worker of the cluster is running, and none came back (workers without a nanny, say)."""


class _SharedData:
    """The training data, scattered to every worker once, and anew after a trial comes back cancelled on a copy
    that is still the current one (the workers holding it died)."""

    def __init__(self, fn, client, data):
        self.fn, self.client, self.data, self.future = fn, client, data, None
        self.losses = 0  # how many times the data was found lost, and sent anew

    def current(self):
        for _ in range(SCATTER_ATTEMPTS):
            if self.future is not None:
                break
            try:
                [self.future] = self.client.scatter([self.data], broadcast=True, hash=False)  # a key of its own
            except TimeoutError:  # no worker running (the scheduler waits 2 s): every one died; nannies restart
                self._wait_for_a_worker()
            except (OSError, RuntimeError) as exc:  # a worker lost mid-broadcast (CommClosedError), or the
                if getattr(self.client, "status", "running") != "running":  # client lost its scheduler
                    raise self._unreachable(exc) from exc
                self._wait_for_a_worker()
        if self.future is None:
            raise NoWorkers(f"{self.fn}: the workers died each time the training data were sent to them "
                            f"({SCATTER_ATTEMPTS} times)")
        return self.future

    def _wait_for_a_worker(self):
        try:
            self.client.wait_for_workers(1, timeout=WORKER_RESTART_TIMEOUT)
        except TimeoutError:
            raise NoWorkers(f"{self.fn}: no worker of the cluster is running, and none came back within "
                            f"{WORKER_RESTART_TIMEOUT} s to take the training data (workers without a nanny are not "
                            "restarted; a cluster of your own may close its nannies after "
                            "distributed.deploy.lost-worker-timeout)") from None
        except (OSError, RuntimeError) as exc:  # the scheduler went away meanwhile
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc):
        return NoWorkers(f"{self.fn}: the cluster's scheduler cannot be reached ({type(exc).__name__}: {exc})")

    def lost(self, used):
        if used is self.future:
            self.future = None
            self.losses += 1


def _worker_threads(client):
    """The threads of the cluster's workers now (at least 1: a cluster still starting has none)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # the scheduler went away: the next submit says so
        return 1


def _run_round(client, pickled_builder, shared, configs, first_index, round, seed, solver_kwargs, progress):
    """Run one task per config, no more at once than the workers have threads, and collect the Trials, keeping
    only the best trial's params. With no trial waiting on a worker, a worker that dies takes with it only the
    trial it was running (dask blames every trial queued there: KilledWorker). When no worker is left (NoWorkers),
    every trial not yet done fails with that reason and the round ends with the trials it has."""
    distributed = _distributed("random_search")
    settings = carried()  # the caller's, in every worker
    tag = uuid.uuid4().hex[:8]
    topic = f"fastnn-trial-{tag}"  # this round's own events: see _announce
    waiting = collections.deque((first_index + offset, config) for offset, config in enumerate(configs))
    futures, completed = {}, distributed.as_completed()

    def submit(index, config, s, tries):
        data = shared.current()
        future = client.submit(_run_pickled_trial, topic, pickled_builder, data, config, index, round, s,
                               solver_kwargs, settings, key=f"fastnn-trial-{tag}-{index}-{sum(tries)}", pure=False)
        futures[future] = (index, config, s, tries, data)
        completed.add(future)

    def submit_waiting():
        threads = _worker_threads(client) if waiting else 0
        while waiting and len(futures) < threads:
            index, config = waiting[0]
            submit(index, config, trial_seed(seed, index), (0, 0))
            waiting.popleft()  # only once submitted: NoWorkers leaves it waiting

    import dask  # installed with distributed; its config is loaded now

    allowed_failures = int(dask.config.get("distributed.scheduler.allowed-failures", 3))
    loss_limit = shared.losses + EXTRA_DATA_SENDS + (allowed_failures + 1) * (KILLED_ATTEMPTS + 1) * len(waiting)
    trials, best, best_kept = [], None, None
    with _progress_bar(len(waiting), round, progress) as bar:  # closed (its line ended) on Ctrl-C too
        try:
            submit_waiting()
            for future in completed:
                index, config, s, (lost, killed), data = futures.pop(future)
                again, kept = None, None
                try:
                    trial, kept = future.result()
                except distributed.KilledWorker as exc:
                    again = (lost, killed + 1) if killed < KILLED_ATTEMPTS else None
                    trial = _failed(index, round, config, s, f"KilledWorker: the worker process running it died each "
                                    f"time it ran (a crash, os._exit or running out of memory): {exc}")
                except CancelledError as exc:  # lost with its worker or its data, or the cluster went away
                    shared.lost(data)
                    if _died_running(client, topic, future.key):
                        again = (lost, killed + 1) if killed < KILLED_ATTEMPTS else None
                        trial = _failed(index, round, config, s, f"{type(exc).__name__}: the worker process running it "
                                        f"died each time it ran, with the last copy of the data (a crash, os._exit or "
                                        f"running out of memory): {exc}")
                    else:
                        again = (lost + 1, killed) if shared.losses <= loss_limit else None
                        trial = _failed(index, round, config, s, f"{type(exc).__name__}: the data it needed, or its "
                                        f"finished result, went with a worker {lost + 1} time(s), and this round sent "
                                        f"the data anew {shared.losses} time(s) (worker processes died: a crash, "
                                        f"os._exit or running out of memory): {exc}")
                except Exception as exc:  # raised by the task itself: a worker could not unpickle the builder, say
                    trial = _failed(index, round, config, s, f"{type(exc).__name__}: {exc}")
                future.release()
                if again is not None and client.status == "running":
                    try:
                        submit(index, config, s, again)
                        continue
                    except NoWorkers:
                        trials.append(trial)
                        bar.update(1)
                        raise
                trials.append(trial)
                if trial.ok and (best is None or trial.rank_key() < best.rank_key()):
                    best, best_kept = trial, kept
                bar.update(1)
                submit_waiting()
        except NoWorkers as exc:
            for future, (index, config, s, _, _) in futures.items():
                future.cancel()
                trials.append(_failed(index, round, config, s, str(exc)))
            trials += [_failed(index, round, config, trial_seed(seed, index), str(exc)) for index, config in waiting]
            bar.update(len(futures) + len(waiting))
    return trials, best_kept


def _failed(index, round, config, seed, error):
    return Trial(index=index, round=round, config=config, seed=seed, status="failed", error=error)


def _progress_bar(total, round, show):
    from tqdm import tqdm

    return tqdm(total=total, disable=not show, unit="trial", desc=("coarse", "fine")[round], leave=True)


def _warn_of_unread_optim_keys(fn, space, solver_kwargs):
    """A searched optim key that no built-in rule of the search reads (momentum with update_rule 'adam') trains
    nothing: each trial leaves it out of its optim_config (solver_settings), so say so once, here."""
    from ..optim import CONFIG_KEYS, _builtin_name
    from .space import Choice
    from .trial import OPTIM_KEYS

    rule = space.get("update_rule", solver_kwargs.get("update_rule", "sgd"))
    rules = rule.options if isinstance(rule, Choice) else (rule,)
    names = [_builtin_name(r) for r in rules]
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
    trials_name = "n_coarse" if fine is not None else "n_trials"
    builder, space, n_trials, solver_kwargs, seed = _check_search_args(
        fn, build_model, data, space, n_trials, solver_kwargs, seed, trials_name)
    _warn_of_unread_optim_keys(fn, space, solver_kwargs)
    training_data = {k: data[k] for k in ("X_train", "y_train", "X_val", "y_val")}
    with connect(client, n_workers, fn) as c:
        shared = _SharedData(fn, c, training_data)
        spaces = [space]
        configs = sample_configs(space, n_trials, np.random.default_rng([seed, 0]))
        trials, best_kept = _run_round(c, builder, shared, configs, 0, 0, seed, solver_kwargs, progress)
        if fine is not None and not any(t.ok for t in trials):
            warnings.warn(f"{fn}: every coarse trial failed, so there is no fine round; see the errors in "
                          "result.table()", RuntimeWarning, stacklevel=3)
        elif fine is not None and getattr(c, "status", "running") != "running":  # the scheduler went away
            warnings.warn(f"{fn}: the cluster went away during the coarse round, so there is no fine round; the "
                          "trials it had not finished failed, saying so", RuntimeWarning, stacklevel=3)
        elif fine is not None:
            n_fine, top_k, widen = fine
            spaces.append(narrow(space, trials, top_k, widen))
            configs = sample_configs(spaces[1], n_fine, np.random.default_rng([seed, 1]))
            fine_trials, fine_kept = _run_round(c, builder, shared, configs, n_trials, 1, seed,
                                                solver_kwargs, progress)
            best_before = min((t for t in trials if t.ok), key=Trial.rank_key, default=None)
            best_fine = min((t for t in fine_trials if t.ok), key=Trial.rank_key, default=None)
            if best_fine is not None and (best_before is None or best_fine.rank_key() < best_before.rank_key()):
                best_kept = fine_kept
            trials += fine_trials
    best_kept = best_kept or {}
    return SearchResult(sorted(trials, key=Trial.rank_key), spaces, seed, best_kept.get("params"),
                        best_kept.get("model_state"))


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
    n_fine = check.integer(fn, "n_fine", n_fine, minimum=1, maximum=MAX_TRIALS)
    top_k = check.integer(fn, "top_k", top_k, minimum=1)
    widen = check.number(fn, "widen", widen, low=0)
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
    top_k = check.integer(fn, "top_k", top_k, minimum=1)
    widen = check.number(fn, "widen", widen, low=0)
    if not isinstance(trials, (list, tuple)) or not all(isinstance(t, Trial) for t in trials):
        check.fail(fn, "trials must be a list of Trials (a SearchResult's .trials)", TypeError)
    best = sorted((t for t in trials if t.ok), key=Trial.rank_key)[:top_k]
    unknown = sorted({name for t in best for name in space if name not in t.config})
    if unknown:
        check.fail(fn, f"the best trials' configs have no value for {unknown}: were they drawn from this space?")
    if not best:
        check.fail(fn, f"none of the {len(trials)} trials succeeded, so there is nothing to narrow around; "
                       "see their errors in the result table")
    return {name: param.narrowed([t.config[name] for t in best], widen) for name, param in space.items()}
