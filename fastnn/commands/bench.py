"""`fastnn bench`: the side-by-side speed report (fastnn.bench)."""


def configure(parser):
    from ..bench import OPS

    parser.add_argument("--threads", type=int, default=1,
                        help="threads for numba, BLAS and torch (default 1; at most the CPUs this process may use)")
    parser.add_argument("--ops", nargs="+", choices=sorted(OPS), metavar="OP",
                        help=f"ops to measure (default all): {', '.join(OPS)}")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--quick", action="store_true",
                        help="batches 8x smaller and fewer rounds (a smoke run; the report names the shapes measured)")
    parser.add_argument("--rounds", type=int, default=None, help="round-robin samples per op (default 9, quick 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="first apply fastnn.allocator.keep_freed_memory(), as `fastnn train` does: freed arrays "
                             "up to 32 MB then stay in the heap for every path (reference, jit, torch) instead of "
                             "page-faulting again")
    parser.add_argument("--e2e", action="store_true",
                        help="end to end instead: a train step of ThreeLayerConvNet and a 5-layer FullyConnectedNet "
                             "against the same model in PyTorch, at 1 and --threads threads")


def _check_args(args):
    """Everything the report needs from the user, checked before minutes of measuring."""
    from ..bench_e2e import max_threads

    limit = max_threads()
    if not 1 <= args.threads <= limit:
        raise SystemExit(f"fastnn bench: --threads must be >= 1 and at most {limit}, the threads this process may "
                         f"use (its CPU affinity, or NUMBA_NUM_THREADS), got {args.threads}")
    if args.rounds is not None and args.rounds < 1:
        raise SystemExit(f"fastnn bench: --rounds must be >= 1, got {args.rounds}")
    from .._options import options
    from ._args import settings_checked

    settings_checked("fastnn bench", options)  # the FASTNN_* settings, read now: not after minutes of measuring
    if args.json is not None:
        from .._files import check_writable_path

        try:
            check_writable_path("fastnn bench", "--json", args.json, probe=True)
        except (ValueError, OSError) as error:
            raise SystemExit(str(error)) from error


def run(args):
    from ..bench import format_report, write_json
    from ..bench import run as run_bench

    _check_args(args)
    if args.e2e:
        from .. import bench_e2e

        threads = sorted({1, max(args.threads, 2)})
        report = bench_e2e.run(threads=threads, quick=args.quick, rounds=args.rounds,
                               keep_freed=args.keep_freed_memory)
        print(bench_e2e.format_report(report))
        if args.json:
            write_json(report, args.json)
        return 0
    report = run_bench(ops=args.ops, dtypes=args.dtypes, threads=args.threads, quick=args.quick, rounds=args.rounds,
                       keep_freed=args.keep_freed_memory)
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
        print(f"\nJSON written to {args.json}")
    return 0
