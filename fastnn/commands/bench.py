"""`fastnn bench`: the side-by-side speed report (fastnn.bench)."""


DTYPES = ("float32", "float64")


def configure(parser):
    from ..bench import OPS

    parser.add_argument("--threads", type=int, default=1,
                        help="threads for numba, BLAS and torch (default 1; at most the CPUs this process may use)")
    parser.add_argument("--ops", nargs="+", action="extend", choices=sorted(OPS), metavar="OP",
                        help=f"ops to measure (default all): {', '.join(OPS)}")
    parser.add_argument("--dtypes", nargs="+", action="extend", choices=DTYPES, help="dtypes to measure (default both)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller batches (8x; 4x for the --e2e convnet) and fewer rounds (a smoke run; the report "
                             "names the shapes measured)")
    parser.add_argument("--rounds", type=int, default=None, help="round-robin samples per op (default 9, quick 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="first apply fastnn.allocator.keep_freed_memory(), as `fastnn train` does: freed arrays "
                             "up to 32 MB then stay in the heap for every path (reference, jit, torch) instead of "
                             "page-faulting again")
    parser.add_argument("--e2e", action="store_true",
                        help="end to end instead: a float32 train step of ThreeLayerConvNet and a 5-layer "
                             "FullyConnectedNet against the same model in PyTorch, at 1 thread and at --threads "
                             "threads (with --threads 1, at 1 only); takes no --ops or --dtypes")


def _check_args(args):
    """Everything the report needs from the user, checked before minutes of measuring."""
    from .._files import check_writable_path, error_text
    from .._options import options
    from ..bench_e2e import max_threads
    from ._args import settings_checked

    limit = max_threads()
    if not 1 <= args.threads <= limit:
        raise SystemExit(f"fastnn bench: --threads must be >= 1 and at most {limit}, the threads this process may "
                         f"use (its CPU affinity, or NUMBA_NUM_THREADS), got {args.threads}")
    if args.rounds is not None and args.rounds < 1:
        raise SystemExit(f"fastnn bench: --rounds must be >= 1, got {args.rounds}")
    for name, value in (("--ops", args.ops), ("--dtypes", args.dtypes)):
        if args.e2e and value is not None:
            raise SystemExit(f"fastnn bench: {name} chooses what the per-op report measures; --e2e measures whole "
                             "float32 train steps, so give one or the other")
    settings_checked("fastnn bench", options)  # the FASTNN_* settings, read now: not after minutes of measuring
    if args.json is not None:
        try:
            check_writable_path("fastnn bench", "--json", args.json, probe=True)
        except (ValueError, OSError) as error:
            raise SystemExit(error_text(error)) from error


def run(args):
    from .. import bench

    _check_args(args)
    if args.e2e:
        from .. import bench_e2e

        report = bench_e2e.run(threads=sorted({1, args.threads}), quick=args.quick, rounds=args.rounds,
                               keep_freed=args.keep_freed_memory)
        text = bench_e2e.format_report(report)
    else:
        report = bench.run(ops=args.ops, dtypes=args.dtypes or DTYPES, threads=args.threads, quick=args.quick,
                           rounds=args.rounds, keep_freed=args.keep_freed_memory)
        text = bench.format_report(report)
    # --json first: a stdout that cannot take the table (a full disk under `> file`) must not lose the file asked for
    failure = _write_json(report, args.json) if args.json else None
    print(text)
    if failure:
        raise SystemExit(failure)
    if args.json:
        print(f"\nJSON written to {args.json}")
    return 0


def _write_json(report, path):
    """Write --json; returns None, or the message for a file that could not take it (a full disk, a path that
    became a directory during the run)."""
    from .._files import error_text
    from ..bench import write_json

    try:
        write_json(report, path)
    except (OSError, ValueError) as error:  # atomic_open checks the path again: ValueError for a directory now
        reason = error_text(error)
        if reason.startswith("fastnn bench:"):  # already the whole message (the directory went away, or came)
            return f"{reason}; the report printed above is not saved"
        if isinstance(error, ValueError):  # not about the path: json could not encode the report, a bug to show
            raise
        return f"fastnn bench: cannot write --json {path!r} ({reason}); the report printed above is not saved"
    return None
