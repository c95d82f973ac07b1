"""`fastnn tune`: a coarse-to-fine random search for a FullyConnectedNet on the embedded digits, on dask.

    fastnn tune                                    # LocalCluster on the CPUs this process may use, 30 + 15 trials
    fastnn tune --trials 40 --epochs 10 --workers 2 --out runs/tune
    fastnn tune --scheduler tcp://10.0.0.5:8786    # a running cluster (dask scheduler / dask worker)

Searches learning rate, regularisation and weight scale in log space and the hidden size (fastnn.tune.default_space),
with Adam. Prints the result table; writes results.json, results.csv, scatter.png and best.npz to --out, which it
claims before the search and never shares with an earlier run (fastnn/commands/_outputs.py: without --out the
first of ./fastnn-tune, ./fastnn-tune-2, ... that holds none; an --out that holds one only with --overwrite).
"""

import contextlib
import os
import sys
import tempfile
import time
import warnings

from .._signals import deferred
from ..tune.result import SAVED_FILES
from ..tune.search import MAX_TRIALS
from . import _outputs as outputs
from ._args import add_backend_option, backend_for_the_run, check_seed, counted

DEFAULT_OUT = "fastnn-tune"
OUTPUTS = tuple(SAVED_FILES.values())
CONNECT_TIMEOUT = 10  # seconds to reach --scheduler before giving up (dask's own default is 30)
MAX_WORKERS_PER_CPU = 8  # a LocalCluster's worker processes: more only oversubscribe the machine


def configure(parser):
    parser.add_argument("--trials", type=int, default=30, help="trials of the coarse round (default 30)")
    parser.add_argument("--fine-trials", type=int, default=15,
                        help="trials of the fine round around the best coarse ones; 0 for none (default 15)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="coarse trials the fine round narrows to (default 3)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per trial (default 10)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="a running dask scheduler (tcp://host:8786); default: start a LocalCluster")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the LocalCluster (default: the CPUs this process may use)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the configs, inits and minibatches, and of the digits' train/val/test split "
                             "as `fastnn train --seed` takes it: train from best.npz with the same seed, or its "
                             "test set holds images the search trained on (default 0)")
    add_backend_option(parser, "the trials")
    parser.add_argument("--out", default=None,
                        help=f"output directory (default ./{DEFAULT_OUT}, or ./{DEFAULT_OUT}-2, -3, ... when that "
                             "holds an earlier run)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --out hold an earlier search: its results are replaced once this one's are saved")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_args(args):
    if args.top_k is not None and args.fine_trials == 0:
        raise SystemExit("fastnn tune: --top-k chooses what the fine round narrows to, and --fine-trials 0 runs none")
    args.top_k = 3 if args.top_k is None else args.top_k
    for name, value, minimum in (("--trials", args.trials, 1), ("--fine-trials", args.fine_trials, 0),
                                 ("--top-k", args.top_k, 1), ("--epochs", args.epochs, 1)):
        if value < minimum:
            raise SystemExit(f"fastnn tune: {name} must be >= {minimum}, got {value}")
    for name, value in (("--trials", args.trials), ("--fine-trials", args.fine_trials)):
        if value > MAX_TRIALS:  # every trial is held in memory: 10**9 grew the process without end
            raise SystemExit(f"fastnn tune: {name} must be at most {MAX_TRIALS}, got {value}")
    check_seed("tune", args.seed)
    if args.scheduler == "":
        raise SystemExit("fastnn tune: --scheduler must name a running scheduler (tcp://HOST:8786), got an empty "
                         "string")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"fastnn tune: --workers must be >= 1, got {args.workers}")
    from .._cpus import available_cpus

    most = MAX_WORKERS_PER_CPU * available_cpus()
    if args.workers is not None and args.workers > most:  # 100000 processes took 7 GB and never started
        raise SystemExit(f"fastnn tune: --workers must be at most {most} ({MAX_WORKERS_PER_CPU} per CPU this "
                         f"process may use; each worker is a process), got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise SystemExit("fastnn tune: --workers starts a LocalCluster; with --scheduler the running cluster's "
                         "workers are used, so give one or the other")


def _distributed():
    """dask.distributed, checked before anything else runs."""
    from ..tune.cluster import _distributed as imported

    try:
        return imported("fastnn tune: the search")
    except ImportError as error:
        raise SystemExit(str(error)) from error


def _connect(address):
    """A Client of the running cluster at --scheduler; a bad or unreachable address is a message."""
    from ..tune.cluster import client_at

    try:
        return client_at("fastnn tune", address, f"--scheduler {address!r}", CONNECT_TIMEOUT)
    except (ConnectionError, ValueError) as error:
        raise SystemExit(str(error)) from None


def run(args):
    _check_args(args)
    _distributed()
    with backend_for_the_run("tune", args.backend):
        return _run(args)


def _run(args):
    from .. import tune
    from .._cpus import available_cpus
    from ..data_utils import load_digits

    data = load_digits(seed=args.seed)
    solver_kwargs = {"update_rule": "adam", "num_epochs": args.epochs, "batch_size": 100, "lr_decay": 0.95}
    n_workers = None if args.scheduler is not None else (args.workers or available_cpus())
    search = dict(build_model=tune.build_fc_net, data=data, space=tune.default_space(), solver_kwargs=solver_kwargs,
                  seed=args.seed, n_workers=n_workers, progress=not args.quiet)
    if args.scheduler is not None:
        where = args.scheduler
    else:
        where = f"a LocalCluster of {n_workers} worker process{'es' if n_workers > 1 else ''}"
    # claimed before the search, so a bad --out is found now and not after minutes of trials
    args.out, earlier = outputs.output_directory("tune", args.out, args.overwrite, DEFAULT_OUT,
                                                 OUTPUTS.__contains__)
    with outputs.running(args.out, "tune", just_claimed=True):  # an --overwrite meanwhile is refused
        return _search_and_save(args, tune, search, where, earlier)


def _search_and_save(args, tune, search, where, earlier):
    """Run the search, save it into the claimed --out (holding the files `earlier` of an earlier search, with
    --overwrite) and print its table."""
    with outputs.released_if_it_fails(args.out, "tune", earlier):
        client = _connect(args.scheduler) if args.scheduler is not None else None
        try:
            print(f"fastnn tune: {args.trials} + {args.fine_trials} trials of {counted(args.epochs, 'epoch')} "
                  f"on {where}", flush=True)
            start = time.perf_counter()
            with _search_warnings_as_messages():
                if args.fine_trials:
                    result = tune.coarse_to_fine(n_coarse=args.trials, n_fine=args.fine_trials, top_k=args.top_k,
                                                 client=client, **search)
                else:
                    result = tune.random_search(n_trials=args.trials, client=client, **search)
            seconds = time.perf_counter() - start
        finally:
            if client is not None:
                client.close()

    try:  # saved before the table is printed: a reader that has gone (`| head -1`) loses no results
        written = _save(result, args.out)
    except SystemExit:  # saving failed: the table is the one whole copy of the search
        print(result.table())
        raise
    print(result.table())
    print(f"search wall time: {seconds:.1f} s")
    if result.best is not None:
        print(f"best val accuracy: {result.best.val_acc:.4f} (trial {result.best.index})")
    for what in ("json", "csv", "scatter", "best"):
        if what in written:
            print(f"wrote {written[what]}")
    for reason in written.get("skipped", []):
        print(f"not written: {reason}")
    return 0 if result.best is not None else 1


@contextlib.contextmanager
def _search_warnings_as_messages():
    """The search's own warnings (no fine round, say) shown as the command's lines on stderr, not as Python
    warnings naming a source line; every warning still goes through the filters as it would have."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        ours = next((p for p in ("coarse_to_fine: ", "random_search: ") if text.startswith(p)), None)
        if ours is None:
            shown(message, category, filename, lineno, file, line)
        else:
            print(f"fastnn tune: {text[len(ours):]}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():  # puts showwarning back
        warnings.showwarning = show
        yield


def _save(result, out):
    """Write the results into a new hidden subdirectory of `out`, then set the earlier search's files aside, move
    the new ones into place and drop the earlier ones. A finished search is never lost: if saving fails or is
    interrupted, or the earlier files cannot be set aside, what was written stays in that subdirectory and the
    message says where."""
    is_output = OUTPUTS.__contains__
    staged = tempfile.mkdtemp(dir=out, prefix=".fastnn-tune-new-")
    try:
        written = result.save(staged)
    except BaseException as error:
        _kept_in(staged, "saving was interrupted" if isinstance(error, KeyboardInterrupt) else
                 f"saving failed ({type(error).__name__}: {error})", error)
    earlier = sorted(name for name in os.listdir(out) if is_output(name))
    if result.best is None and earlier:  # --overwrite: a search with no trial that succeeded replaces none
        print(f"fastnn tune: no trial succeeded, so the earlier search in --out {out!r} is kept; this search's "
              f"results are in {staged!r}", file=sys.stderr, flush=True)
        return {what: os.path.join(staged, os.path.basename(path)) if what != "skipped" else path
                for what, path in written.items()}
    try:
        aside = outputs.set_aside(out, "tune", earlier)
    except BaseException as error:
        _kept_in(staged, "the earlier search could not be set aside", error)
    with deferred():  # a Ctrl-C here had left the new files split between --out and `staged`
        for name in os.listdir(staged):
            os.replace(os.path.join(staged, name), os.path.join(out, name))
        os.rmdir(staged)
    outputs.drop(aside)
    return {what: os.path.join(out, os.path.basename(path)) if what != "skipped" else path
            for what, path in written.items()}


def _kept_in(staged, what, error):
    """Stop with a message saying where the finished search's results are (a KeyboardInterrupt stays one)."""
    print(f"fastnn tune: {what}; the search's results written so far are in {staged!r}", file=sys.stderr,
          flush=True)
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        raise error
    raise SystemExit(1) from error
