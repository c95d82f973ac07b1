"""The `fastnn` command: train, check, tune, bench."""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("train", help="train a model on the embedded digits (or CIFAR-10)")
    sub.add_parser("check", help="run the course's sanity checks on a model")
    sub.add_parser("tune", help="random hyperparameter search in log space (dask.distributed)")
    sub.add_parser("bench", help="side-by-side speed report: reference, jit, PyTorch CPU")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print(f"fastnn {args.command}: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
