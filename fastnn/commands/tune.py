"""`fastnn tune`: a coarse-to-fine random search for a FullyConnectedNet on the embedded digits, on dask.

    fastnn tune                                    # LocalCluster of this machine's cores, 30 + 15 trials of 10 epochs
    fastnn tune --trials 40 --epochs 10 --workers 2 --out runs/tune
    fastnn tune --scheduler tcp://10.0.0.5:8786    # a running cluster (dask scheduler / dask worker)

Searches learning rate, regularisation and weight scale in log space and the hidden size (fastnn.tune.default_space),
with Adam. Prints the result table; writes results.json, results.csv, scatter.png and best.npz to --out, which it
claims before the search and never shares with an earlier run (fastnn/commands/_outputs.py: without --out the
first of ./fastnn-tune, ./fastnn-tune-2, ... that holds none; an --out that holds one only with --overwrite).
"""

import time

from . import _outputs as outputs

DEFAULT_OUT = "fastnn-tune"
OUTPUTS = ("results.json", "results.csv", "scatter.png", "best.npz")


def configure(parser):
    parser.add_argument("--trials", type=int, default=30, help="trials of the coarse round (default 30)")
    parser.add_argument("--fine-trials", type=int, default=15,
                        help="trials of the fine round around the best coarse ones; 0 for none (default 15)")
    parser.add_argument("--top-k", type=int, default=3, help="coarse trials the fine round narrows to (default 3)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per trial (default 10)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="a running dask scheduler (tcp://host:8786); default: start a LocalCluster")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the LocalCluster (default: this machine's cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the configs, inits and minibatches (default 0)")
    parser.add_argument("--backend", choices=("auto", "jit", "reference", "verify"), default=None,
                        help="fastnn backend in the trials (default: FASTNN_BACKEND or auto)")
    parser.add_argument("--out", default=None,
                        help=f"output directory (default ./{DEFAULT_OUT}, or ./{DEFAULT_OUT}-2, -3, ... when that "
                             "holds an earlier run)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --out hold an earlier run: its results are removed once this search is done")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_args(args):
    for name, value, minimum in (("--trials", args.trials, 1), ("--fine-trials", args.fine_trials, 0),
                                 ("--top-k", args.top_k, 1), ("--epochs", args.epochs, 1), ("--seed", args.seed, 0)):
        if value < minimum:
            raise SystemExit(f"fastnn tune: {name} must be >= {minimum}, got {value}")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"fastnn tune: --workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise SystemExit("fastnn tune: --workers starts a LocalCluster; with --scheduler the running cluster's "
                         "workers are used, so give one or the other")


def run(args):
    import fastnn

    from .. import tune
    from ..data_utils import load_digits

    _check_args(args)
    if args.backend is not None:
        fastnn.options(backend=args.backend)
    data = load_digits(seed=args.seed)
    solver_kwargs = {"update_rule": "adam", "num_epochs": args.epochs, "batch_size": 100, "lr_decay": 0.95}
    search = dict(build_model=tune.build_fc_net, data=data, space=tune.default_space(), solver_kwargs=solver_kwargs,
                  seed=args.seed, client=args.scheduler, n_workers=args.workers, progress=not args.quiet)
    if args.scheduler:
        where = args.scheduler
    elif args.workers:
        where = f"a LocalCluster of {args.workers} worker process{'es' if args.workers > 1 else ''}"
    else:
        where = "a LocalCluster of one worker process per core"
    # claimed before the search, so a bad --out is found now and not after minutes of trials
    args.out, earlier = outputs.output_directory("tune", args.out, args.overwrite, DEFAULT_OUT, OUTPUTS.__contains__)
    print(f"fastnn tune: {args.trials} + {args.fine_trials} trials of {args.epochs} epochs on {where}", flush=True)

    start = time.perf_counter()
    try:
        if args.fine_trials:
            result = tune.coarse_to_fine(n_coarse=args.trials, n_fine=args.fine_trials, top_k=args.top_k, **search)
        else:
            result = tune.random_search(n_trials=args.trials, **search)
    except BaseException:
        outputs.release(args.out, "tune")
        raise
    seconds = time.perf_counter() - start

    print(result.table())
    outputs.remove(args.out, earlier)
    written = result.save(args.out)
    print(f"search wall time: {seconds:.1f} s")
    if result.best is not None:
        print(f"best val accuracy: {result.best.val_acc:.4f} (trial {result.best.index})")
    for what in ("json", "csv", "scatter", "best"):
        if what in written:
            print(f"wrote {written[what]}")
    for reason in written.get("skipped", []):
        print(f"not written: {reason}")
    return 0 if result.best is not None else 1
