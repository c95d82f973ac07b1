"""`fastnn check`: the course's babysitting checks on the `fastnn train` model, on the embedded digits.

    fastnn check                 # the ThreeLayerConvNet of `fastnn train`
    fastnn check --model fc

Prints one verdict per check (initial loss, gradient check, overfitting 50 samples); exit status 1 if one fails.
"""

import numpy as np

from ._args import add_backend_option, backend_for_the_run, check_seed
from .train import MODELS, build_model


def configure(parser):
    parser.add_argument("--model", choices=MODELS, default="cnn", help="the model to check (default cnn)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and samples (default 0)")
    add_backend_option(parser)
    parser.add_argument("--num-overfit", type=int, default=50, help="samples to overfit (default 50)")


def run(args):
    if args.num_overfit < 1:
        raise SystemExit(f"fastnn check: --num-overfit must be >= 1, got {args.num_overfit}")
    if args.model == "fc" and args.num_overfit < 2:  # every minibatch would hold copies of one sample
        raise SystemExit("fastnn check: --num-overfit must be at least 2 with --model fc: its batchnorm "
                         "normalises each feature over the minibatch, so copies of one sample all become beta")
    check_seed("check", args.seed)
    with backend_for_the_run("check", args.backend):
        return _run(args)


def _run(args):
    import fastnn

    from .. import sanity
    from ..data_utils import load_digits

    data = load_digits(seed=args.seed)
    X, y = data["X_train"], data["y_train"]
    if args.num_overfit > len(y):
        raise SystemExit(f"fastnn check: --num-overfit must be at most the {len(y)} training samples of the digits, "
                         f"got {args.num_overfit}")
    shape, num_classes = X.shape[1:], 10
    np.random.seed(args.seed)

    def small_model(reg, dtype=np.float64):
        # small initial weights, so the initial scores are near uniform and the loss near log(C)
        return build_model(args.model, shape, num_classes, reg=reg, weight_scale=1e-3, dtype=dtype)

    verdicts = [sanity.check_initial_loss(small_model, X[:100], y[:100], num_classes)]
    grad_model = build_model(args.model, shape, num_classes, reg=0.1, weight_scale=0.1, dtype=np.float64)
    verdicts.append(sanity.check_gradients(grad_model, X[:4], y[:4], seed=args.seed))
    overfit_model = build_model(args.model, shape, num_classes, weight_scale="he", dtype=np.float32)
    n = args.num_overfit
    verdicts.append(sanity.check_overfit(overfit_model, X[:n], y[:n], seed=args.seed))

    print(f"fastnn check: {type(grad_model).__name__} on the digits (backend {fastnn.options().backend})")
    for verdict in verdicts:
        print(verdict)
    failed = [v.name for v in verdicts if not v.passed]
    print("all checks passed" if not failed else f"failed: {', '.join(failed)}")
    return 1 if failed else 0
