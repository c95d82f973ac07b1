"""`fastnn train`: train a classifier on the embedded digits (or CIFAR-10) and write what it learned.

    fastnn train                       # ThreeLayerConvNet on the 8x8 digits, 15 epochs of Adam
    fastnn train --model fc --epochs 5 --out runs/fc
    fastnn train --data cifar10 --data-dir ~/data/cifar-10-batches-py

Writes to --out: fastnn-run.json (its settings), checkpoint_epoch_<e>.npz, loss.png, accuracy.png, filters.png (cnn) and
summary.json; prints the final train/val/test accuracy. A run never writes over an earlier run's files
(fastnn/commands/_outputs.py): without --out it takes the first of ./fastnn-out, ./fastnn-out-2, ... that holds
none; an --out that holds some is refused unless --overwrite, which replaces it only with a run that finishes. A run
whose loss diverges exits with a message saying what --out holds (its checkpoints up to then, or the earlier run it
was to replace). `fastnn train --resume OUT [--epochs N]` continues the run in OUT from its last checkpoint, with
the settings of its fastnn-run.json.
"""

import contextlib
import json
import os
import pickle
import re
import shlex
import sys
import time

import numpy as np

from .._files import atomic_open
from .._signals import deferred
from . import _outputs as outputs
from ._args import add_backend_option, backend_for_the_run, check_seed, counted

MODELS = ("cnn", "fc")
DATASETS = ("digits", "cifar10")
DEFAULT_OUT = "fastnn-out"
RUN_FILE = "fastnn-run.json"
PLOT_FILES = ("loss.png", "accuracy.png", "filters.png")
OUTPUTS = ("summary.json",) + PLOT_FILES + (RUN_FILE,)  # and the checkpoints


# The settings of a run, with their defaults; fastnn-run.json records them, and --resume takes them from there.
SETTINGS = {"model": "cnn", "data": "digits", "data_dir": None, "epochs": 15, "update_rule": "adam", "lr": 2e-3,
            "lr_decay": 0.9, "batch_size": 50, "reg": 0.0, "seed": 0, "init_from": None, "freeze": None}


def configure(parser):
    # default None: a setting not given takes SETTINGS' default, or with --resume the run's own (_settle)
    parser.add_argument("--model", choices=MODELS, default=None,
                        help="cnn: ThreeLayerConvNet (default); fc: FullyConnectedNet with batchnorm")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 15)")
    parser.add_argument("--update-rule", default=None, help="an update rule of fastnn.optim (default adam)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-3)")
    parser.add_argument("--lr-decay", type=float, default=None, help="learning rate factor per epoch (default 0.9)")
    parser.add_argument("--batch-size", type=int, default=None, help="minibatch size (default 50)")
    parser.add_argument("--reg", type=float, default=None, help="L2 regularization strength (default 0)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for the weights, the minibatches and the digits' train/val/test split "
                             "(CIFAR-10's is fixed) (default 0)")
    add_backend_option(parser)
    parser.add_argument("--data", choices=DATASETS, default=None, help="dataset (default: the embedded digits)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 python batches directory (with --data cifar10)")
    parser.add_argument("--out", default=None,
                        help=f"output directory (default ./{DEFAULT_OUT}, or ./{DEFAULT_OUT}-2, -3, ... when that "
                             "holds an earlier run)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --out hold an earlier run: its files are set aside while this run trains, "
                             "removed once it has finished, put back if it stops early")
    parser.add_argument("--resume", metavar="DIR", default=None,
                        help="continue the run in DIR (an earlier run's --out) from its last checkpoint, with the "
                             "settings in its fastnn-run.json, up to --epochs (default: the run's own)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    parser.add_argument("--init-from", metavar="CKPT", default=None,
                        help="start from a checkpoint's params (and batchnorm statistics) where names and shapes "
                             "match, or those of a model.save() .npy or an .npz of named arrays (fine-tuning)")
    parser.add_argument("--freeze", nargs="+", metavar="PATTERN", default=None,
                        help="params to keep unchanged: names (W1), kinds (b: every bias, not beta) or the groups "
                             "conv / affine")


def load_data(name, data_dir=None, seed=0, dtype=np.float32):
    """The named dataset as the Solver's data dict (plus X_test, y_test), in `dtype`."""
    from .. import data_utils

    if name == "digits":
        return data_utils.load_digits(seed=seed, dtype=dtype)
    data = data_utils.get_CIFAR10_data(cifar10_dir=data_dir)
    return {k: (v.astype(dtype) if k.startswith("X_") else v) for k, v in data.items()}


def build_model(name, input_shape, num_classes, reg=0.0, weight_scale="he", dtype=np.float32):
    """The model `fastnn train` and `fastnn check` use for `name` ('cnn' or 'fc') on inputs (C, H, W)."""
    from ..classifiers import FullyConnectedNet, ThreeLayerConvNet

    input_shape = tuple(int(s) for s in input_shape)
    if name == "cnn":
        small = input_shape[1] <= 16  # 8x8 digits: fewer, smaller filters; CIFAR-10: the starter's defaults
        return ThreeLayerConvNet(input_dim=input_shape, num_filters=16 if small else 32,
                                 filter_size=3 if small else 7, hidden_dim=64 if small else 100,
                                 num_classes=num_classes, weight_scale=weight_scale, reg=reg, dtype=dtype)
    return FullyConnectedNet([128, 64], input_dim=int(np.prod(input_shape)), num_classes=num_classes,
                             normalization="batchnorm", weight_scale=weight_scale, reg=reg, dtype=dtype)


def _check_args(args):
    for name, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise SystemExit(f"fastnn train: {name} must be >= 1, got {value}")
    if not (args.lr > 0 and np.isfinite(args.lr)):
        raise SystemExit(f"fastnn train: --lr must be a positive number, got {args.lr}")
    from .. import optim

    if args.update_rule not in optim.UPDATE_RULES:
        raise SystemExit(f"fastnn train: --update-rule must be one of {', '.join(optim.UPDATE_RULES)}, "
                         f"got {args.update_rule!r}")
    if args.data_dir is not None and args.data != "cifar10":
        raise SystemExit("fastnn train: --data-dir is only used with --data cifar10")
    if not (args.lr_decay > 0 and np.isfinite(args.lr_decay)):
        raise SystemExit(f"fastnn train: --lr-decay must be a positive number, got {args.lr_decay}")
    if not (args.reg >= 0 and np.isfinite(args.reg)):
        raise SystemExit(f"fastnn train: --reg must be a number >= 0, got {args.reg}")
    check_seed("train", args.seed)
    if args.init_from is not None and not args.init_from:  # an empty name was taken as no --init-from at all
        raise SystemExit("fastnn train: --init-from must name a checkpoint file, got ''")


def is_output(name):
    """Whether a file of that name is one a run writes."""
    return name in OUTPUTS or (name.startswith("checkpoint_epoch_") and name.endswith(".npz"))


def run(args):
    if args.resume is None:
        for name, default in SETTINGS.items():  # the settings not given
            if getattr(args, name) is None:
                setattr(args, name, default)
        _check_args(args)
        with backend_for_the_run("train", args.backend):
            return _run(args)
    _refuse_settings_given_with_resume(args)
    _check_is_directory(args.resume)
    is_run = os.path.isfile(os.path.join(args.resume, RUN_FILE))
    lost_claim = is_run and not outputs.other_commands_claim(args.resume, "train")
    # before reading: a run still going is refused as such
    with outputs.running(args.resume, "train", mark_claimed=lost_claim):
        checkpoint = _resumed_settings(args)
        try:
            _check_args(args)
        except SystemExit as error:
            raise SystemExit(f"{error} (from {os.path.join(args.resume, RUN_FILE)!r})") from None
        _refuse_settings_the_checkpoint_overrides(args, checkpoint)
        with backend_for_the_run("train", args.backend):
            return _resume(args, checkpoint)


def _refuse_settings_given_with_resume(args):
    given = [name for name in SETTINGS if name != "epochs" and getattr(args, name) is not None]
    given += [name for name in ("out", "overwrite") if getattr(args, name)]
    if given:
        raise SystemExit(f"fastnn train: --resume continues a run with the settings in its {RUN_FILE}; only "
                         f"--epochs, --backend and --quiet may be given with it, not {_flags(given)}")


def _check_is_directory(directory):
    if not os.path.isdir(directory):
        raise SystemExit(f"fastnn train: --resume {directory!r} "
                         + ("is not a directory" if os.path.exists(directory) else "does not exist"))


def _resumed_settings(args):
    """Set args from the run's settings file (--epochs, if given, wins); returns the checkpoint to resume from:
    the last one, once the run has trained fewer epochs than --epochs, or has trained them all but was stopped
    before its summary was written (the resumed run then only writes it)."""
    outputs.refuse_a_run_left_aside(args.resume, "train")
    epochs = args.epochs
    vars(args).update(_read_settings(args.resume))
    args.epochs = args.epochs if epochs is None else epochs
    args.out = args.resume
    checkpoints = _checkpoints(args.resume)
    if not checkpoints:
        raise SystemExit(f"fastnn train: --resume {args.resume!r} holds no checkpoint to continue from")
    trained = _epoch_of(checkpoints[-1])
    if trained > args.epochs or (trained == args.epochs and _summarised_epochs(args.resume) == trained):
        raise SystemExit(f"fastnn train: the run in --resume {args.resume!r} has trained "
                         f"{counted(trained, 'epoch')} already; give --epochs more than {trained}")
    return os.path.join(args.resume, checkpoints[-1])


# The settings a checkpoint fixes, by the state key that holds each: Solver.restore takes them from it
FIXED_BY_THE_CHECKPOINT = {"update_rule": "update_rule", "lr": "optim_config", "lr_decay": "lr_decay",
                           "batch_size": "batch_size", "seed": "seed"}


def _refuse_settings_the_checkpoint_overrides(args, checkpoint):
    """The resumed run goes on with its checkpoint's update rule, learning rate, lr_decay, batch size and seed: a
    fastnn-run.json that says otherwise (edited, or beside another run's checkpoint) is refused, or the summary
    would record settings the run did not use (and another --seed draws another split of the digits, so the test
    accuracy would be measured partly on images the first segment trained on)."""
    from ..checkpoint import load_checkpoint

    try:
        state = load_checkpoint(checkpoint)
    except (OSError, ValueError) as error:
        raise SystemExit(f"fastnn train: --resume: {error}") from error
    if not set(FIXED_BY_THE_CHECKPOINT.values()) <= set(state) or not isinstance(state["optim_config"], dict):
        return  # no Solver checkpoint: Solver.restore names what it lacks
    held = {name: state[key] for name, key in FIXED_BY_THE_CHECKPOINT.items()}
    held["lr"] = state["optim_config"].get("learning_rate")
    differ = [f"{_flags([name])} ({_shown(value)} in the checkpoint, {_shown(getattr(args, name))} in {RUN_FILE})"
              for name, value in held.items() if value != getattr(args, name)]
    if differ:
        raise SystemExit(f"fastnn train: --resume {args.resume!r}: {os.path.basename(checkpoint)} and {RUN_FILE} "
                         f"disagree on {', '.join(differ)}; a resumed run goes on with its checkpoint's settings: "
                         f"to train on with others, start a new run with --init-from {shlex.quote(checkpoint)}")


def _shown(value):
    return value if isinstance(value, str) else repr(value)


def _summarised_epochs(directory):
    """The epochs of the run that `directory`'s summary.json describes (None without a readable one): a resumed
    run stopped between its last checkpoint and its own summary leaves the earlier run's there."""
    try:
        with open(os.path.join(directory, "summary.json")) as f:
            epochs = json.load(f).get("epochs")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def _flags(names):
    return ", ".join("--" + name.replace("_", "-") for name in names)


def _read_settings(directory):
    """The settings in `directory`'s fastnn-run.json, checked; a directory without a readable one is a message."""
    path = os.path.join(directory, RUN_FILE)
    try:
        with open(path) as f:
            settings = json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"fastnn train: --resume {directory!r} holds no {RUN_FILE} (every run writes one when it "
                         "starts, since fastnn had --resume; an earlier run's --out does not have it)") from None
    except (OSError, ValueError, RecursionError) as error:
        raise SystemExit(f"fastnn train: --resume cannot read {path!r} ({error})") from error
    if not isinstance(settings, dict):
        raise SystemExit(f"fastnn train: --resume: {path!r} is not a fastnn train settings file (not an object)")
    wrong = sorted(set(SETTINGS) ^ set(settings))
    wrong += [name for name in SETTINGS if name in settings and not _fits(name, settings[name])]
    if wrong:
        raise SystemExit(f"fastnn train: --resume: {path!r} is not a fastnn train settings file "
                         f"(check {_flags(wrong)})")
    return settings


def _fits(name, value):
    """Whether a fastnn-run.json value has the type of its setting (_check_args checks the values themselves)."""
    default = SETTINGS[name]
    if name in ("model", "data"):
        return value in (MODELS if name == "model" else DATASETS)
    if name == "freeze":
        return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    if default is None or isinstance(default, str):
        return value is None and default is None or isinstance(value, str)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if isinstance(default, int) else isinstance(value, (int, float))


def _write_settings(args):
    """fastnn-run.json: the run's settings, for --resume."""
    settings = {name: getattr(args, name) for name in SETTINGS}
    for name in ("data_dir", "init_from"):  # to be found from wherever the run is resumed
        settings[name] = settings[name] and os.path.abspath(settings[name])
    path = os.path.join(args.out, RUN_FILE)
    with _into_out(path), atomic_open(path, "w", fn="fastnn train") as f:
        json.dump(settings, f, indent=2)


@contextlib.contextmanager
def _into_out(path):
    """An OSError of the block, which writes `path` (a file in --out), names that file: a full disk's names none,
    and _stopped blames --out only for the errors of files inside it (a stderr that cannot be written is no fault
    of --out)."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = path
        raise


def _solver_class():
    """fastnn's Solver, whose failed checkpoint writes name their file (_into_out)."""
    from ..solver import Solver

    class RunSolver(Solver):
        def _save_checkpoint(self):
            with _into_out(self.checkpoint_file()):
                super()._save_checkpoint()

    return RunSolver


_CHECKPOINT = re.compile(r"checkpoint_epoch_(0|[1-9][0-9]*)\.npz", re.ASCII)  # as the Solver names them


def _epoch_of(name):
    """The epoch of a checkpoint file name (checkpoint_epoch_12.npz: 12); None for other names (..._012.npz)."""
    match = _CHECKPOINT.fullmatch(name)
    return int(match.group(1)) if match else None


def _checkpoint_name(epoch):
    return f"checkpoint_epoch_{epoch}.npz"


def _checkpoints(directory):
    """The checkpoint files in `directory` (not directories of such names), by epoch."""
    names = os.listdir(directory) if os.path.isdir(directory) else []
    written = [name for name in names if _epoch_of(name) is not None
               and not os.path.isdir(os.path.join(directory, name))]
    return sorted(written, key=_epoch_of)


def _run(args):
    args.out, earlier = outputs.output_directory("train", args.out, args.overwrite, DEFAULT_OUT, is_output)
    with outputs.running(args.out, "train", just_claimed=True):
        return _run_in(args, earlier, _solver_class())


def _run_in(args, earlier, Solver):
    """_run in its claimed --out."""
    with outputs.released_if_it_fails(args.out, "train", earlier):
        _refuse_an_init_from_it_replaces(args, earlier)
        solver, model, data = _set_up(args, Solver)
    aside = outputs.set_aside(args.out, "train", earlier)
    try:
        _write_settings(args)
        summary = _train(solver, model, data, args, aside)
    except BaseException as error:
        if aside is not None:
            outputs.restore(args.out, aside, is_output)
        elif not _checkpoints(args.out):  # nothing to resume: the run leaves nothing, its fastnn-run.json included
            outputs.remove(args.out, [name for name in os.listdir(args.out) if is_output(name)])
            outputs.release(args.out, "train")
        _stopped(error, args, aside)
        raise
    outputs.drop(aside)
    return _report(args, summary)


def _refuse_an_init_from_it_replaces(args, earlier):
    """--overwrite removes the earlier run's files once the new run has finished: an --init-from among them would
    have gone (or, with the same name, become the new run's checkpoint) while fastnn-run.json still named it."""
    if not args.init_from or not earlier:
        return
    source = os.path.realpath(args.init_from)
    if source in {os.path.realpath(os.path.join(args.out, name)) for name in earlier}:
        raise SystemExit(f"fastnn train: --init-from {args.init_from!r} is a file of the earlier run in --out "
                         f"{args.out!r}, which --overwrite replaces; copy it out of --out first, or choose another "
                         "--out")


def _refuse_directories_in_the_way(args):
    """--resume writes the later checkpoints, summary.json and the plots into --out: a directory of one of those
    names would stop it at that write (a fresh run refuses such an --out, or moves it aside)."""
    outputs.refuse_directories_in_the_way("fastnn train: --resume", args.out,
                                          [name for name in os.listdir(args.out) if is_output(name)])


def _stopped(error, args, aside):
    """Say what --out holds after a Ctrl-C, SIGTERM or a failed write of a file in --out (a full disk: a message,
    not a traceback); any other error stays as it is."""
    if isinstance(error, KeyboardInterrupt):
        print(f"fastnn train: {_what_out_holds(args, aside)}", file=sys.stderr, flush=True)
    elif isinstance(error, OSError) and _is_in(error.filename, args.out):
        raise SystemExit(f"fastnn train: writing to --out {args.out!r} failed ({error.strerror or error}). "
                         + _what_out_holds(args, aside)) from error


def _is_in(path, directory):
    try:
        return path is not None and os.path.commonpath([os.path.abspath(path), os.path.abspath(directory)]) \
            == os.path.abspath(directory)
    except (TypeError, ValueError):
        return False


def _resume(args, checkpoint):
    """Continue the run in args.out from `checkpoint` (its latest), writing the later epochs' checkpoints and a
    new summary beside the earlier ones."""
    _refuse_directories_in_the_way(args)
    init_from, args.init_from = args.init_from, None  # the checkpoint holds the params
    solver, model, data = _set_up(args, _solver_class())
    args.init_from = init_from
    try:
        solver.restore(checkpoint)
    except (ValueError, OSError) as error:
        raise SystemExit(f"fastnn train: --resume: {error}") from error
    if solver.epoch != _epoch_of(os.path.basename(checkpoint)):
        raise SystemExit(f"fastnn train: --resume: {checkpoint!r} holds epoch {solver.epoch}, not the epoch its "
                         f"name says; rename or remove it")
    resumed_at = solver.epoch
    try:
        _write_settings(args)
        print(f"resuming {args.out} from {os.path.basename(checkpoint)} (epoch {resumed_at} of {args.epochs})")
        summary = _train(solver, model, data, args, None, resumed_from=checkpoint)
    except (KeyboardInterrupt, OSError) as error:
        _stopped(error, args, None)
        raise
    return _report(args, summary, resumed_at)


def _train(solver, model, data, args, aside, resumed_from=None):
    """Train; the summary of the finished run (a diverged loss is a message)."""
    start = time.perf_counter()
    try:
        # overflow on the way to a non-finite loss: NumPy's warnings (with fastnn's file paths) came before the
        # message below that says it all
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            solver.train()
    except FloatingPointError as error:  # the Solver's stop on a non-finite loss
        raise SystemExit(_diverged(solver, args, aside)) from error
    return _finish(args, solver, model, data, time.perf_counter() - start, resumed_from)


def _epochs_trained(resumed_at, last):
    """What a run trained, for its report: all its epochs, or those after the checkpoint it resumed from."""
    first = resumed_at + 1
    if not resumed_at:
        return counted(last, "epoch")
    if first == last:
        return f"epoch {last} of {last}"
    if first < last:
        return f"epochs {first}-{last} of {last}"
    return f"no epoch left to train ({last} of {last} done before)"  # it stopped while writing its summary


def _report(args, summary, resumed_at=0):
    accuracy = summary["accuracy"]
    epochs = _epochs_trained(resumed_at, args.epochs)
    print(f"{summary['model']} on {args.data}: {epochs} in {summary['train_seconds']:.1f} s "
          f"(backend {summary['backend']})")
    print("final accuracy: train %.4f  val %.4f  test %.4f" % (accuracy["train"], accuracy["val"], accuracy["test"]))
    best = summary["best_checkpoint"]
    if best and best != summary["checkpoint"]:
        print(f"(with the params of the best validation accuracy, in {os.path.basename(best)})")
    print(f"outputs in {os.path.abspath(args.out)}")
    return 0


def _finish(args, solver, model, data, seconds, resumed_from=None):
    """The accuracies, plots and summary.json of a finished run; returns the summary."""
    import fastnn

    best = _best_checkpoint(solver, args.out)  # the Solver left its params and batchnorm statistics in the model
    accuracy = {s: solver.check_accuracy(data[f"X_{s}"], data[f"y_{s}"]) for s in ("train", "val", "test")}
    plots = _write_plots(solver, model, args)
    summary = {
        "fastnn_version": fastnn.__version__,
        "backend": fastnn.options().backend,
        "winograd": fastnn.options().winograd,  # 3x3 convolutions' rounding depends on it
        "data": args.data,
        "model": type(model).__name__,
        "model_arg": args.model,
        "num_params": int(sum(v.size for v in model.params.values())),
        "epochs": args.epochs,
        "update_rule": args.update_rule,
        "learning_rate": args.lr,
        "lr_decay": args.lr_decay,
        "batch_size": args.batch_size,
        "reg": args.reg,
        "seed": args.seed,
        "init_from": os.path.abspath(args.init_from) if args.init_from else None,
        "resumed_from": os.path.abspath(resumed_from) if resumed_from else None,
        "freeze": list(args.freeze) if args.freeze else None,
        "train_seconds": round(seconds, 3),
        "best_val_acc": solver.best_val_acc,
        "accuracy": accuracy,  # of the model in best_checkpoint
        "best_checkpoint": best,
        "final_loss": solver.loss_history[-1],
        "checkpoint": os.path.abspath(solver.checkpoint_file()),
        "plots": plots,
    }
    path = os.path.join(args.out, "summary.json")
    with _into_out(path), atomic_open(path, "w", fn="fastnn train") as f:
        json.dump(summary, f, indent=2)
    return summary


def _best_checkpoint(solver, out):
    """The checkpoint whose params are best_params: the one written at the first accuracy check that reached
    best_val_acc, else the last (None if it is not there). The Solver writes a checkpoint at each check."""
    from ..solver import epochs_of_checks

    epochs = epochs_of_checks(solver)
    history = solver.val_acc_history
    if len(epochs) != len(history) or (solver.best_val_acc > 0 and solver.best_val_acc not in history):
        return None
    best = history.index(solver.best_val_acc) if solver.best_val_acc > 0 else len(history) - 1  # never beat 0
    path = os.path.join(out, _checkpoint_name(epochs[best]))
    return os.path.abspath(path) if os.path.isfile(path) else None


def _diverged(solver, args, aside):
    """The message of a run the Solver stopped on a non-finite loss, with what --out holds now."""
    per_epoch = max(solver.X_train.shape[0] // solver.batch_size, 1)
    message = (f"fastnn train: the loss diverged (it was {solver.loss_history[-1]} at iteration "
               f"{len(solver.loss_history)} of {args.epochs * per_epoch}, epoch {solver.epoch + 1} of {args.epochs}); "
               f"try a smaller --lr (was {args.lr:g}) or --reg (was {args.reg:g})"
               + (f" or an --lr-decay of at most 1 (was {args.lr_decay:g})" if args.lr_decay > 1 else "") + ". ")
    return message + _what_out_holds(args, aside, resumable=False)  # resumed, it would diverge again


def _what_out_holds(args, aside, resumable=True):
    """What --out holds after a run that stopped early (cleaned up by _run)."""
    if aside is not None:
        return f"--out {args.out!r} holds the earlier run again, as it was (--overwrite replaces it only with a " \
               "run that finishes)"
    kept = _checkpoints(args.out)
    if not kept:
        return "It had written nothing."
    shown = ", ".join(kept) if len(kept) <= 4 else f"{kept[0]} ... {kept[-1]} ({len(kept)} files)"
    then = f"fastnn train --resume {shlex.quote(args.out)} continues it" if resumable else \
        "a new run there needs --overwrite"
    return f"--out {args.out!r} keeps this run's checkpoints up to then: {shown} ({then})"


def _set_up(args, Solver):
    """(solver, model, data) for the run; missing data, a bad --init-from or --freeze, or a --batch-size larger
    than the training set is the user's error: a message."""
    try:
        data = load_data(args.data, args.data_dir, seed=args.seed)
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        raise SystemExit(f"fastnn train: --data {args.data}: {error}") from error
    num_train = len(data["y_train"])
    if args.batch_size > num_train:
        raise SystemExit(f"fastnn train: --batch-size {args.batch_size} is larger than the training set "
                         f"({num_train} samples of --data {args.data})")
    num_classes = int(max(data["y_train"].max(), data["y_val"].max(), data["y_test"].max())) + 1
    np.random.seed(args.seed)  # the models draw their initial weights from numpy's global RNG, as the starter's
    model = build_model(args.model, data["X_train"].shape[1:], num_classes, reg=args.reg)
    try:
        if args.init_from:
            from ..transfer import load_params

            try:
                report = load_params(model, args.init_from)
            except (OSError, ValueError, TypeError) as error:
                raise SystemExit(f"fastnn train: --init-from {args.init_from!r}: {error}") from error
            if not report.loaded:
                raise SystemExit(f"fastnn train: --init-from {args.init_from!r}: none of its params fits the "
                                 f"{type(model).__name__} of --model {args.model}, so nothing was loaded ("
                                 + "; ".join(str(report).splitlines()[1:]) + ")")
            print(f"initialising from {args.init_from}:\n{report}")
        solver = Solver(model, data, update_rule=args.update_rule, optim_config={"learning_rate": args.lr},
                        lr_decay=args.lr_decay, num_epochs=args.epochs, batch_size=args.batch_size,
                        print_every=10**9, num_train_samples=None, verbose=not args.quiet, seed=args.seed,
                        checkpoint_name=os.path.join(args.out, "checkpoint"), freeze=args.freeze)
    except (ValueError, TypeError, OSError) as error:  # OSError: checkpoint_name's directory cannot be written
        raise SystemExit(f"fastnn train: {_as_typed(str(error), args.freeze)}") from error
    if args.batch_size == 1 and args.model == "fc":
        print("fastnn train: warning: --batch-size 1 with --model fc: batchnorm over a batch of one sample gives "
              "zeros, so the net cannot learn", file=sys.stderr)
    return solver, model, data


def _as_typed(message, freeze):
    """A Solver error about freeze=, in the option's words: `--freeze affine conv`, not freeze=['affine', 'conv']."""
    if not freeze or not message.startswith("Solver: freeze"):
        return message
    listed = f"Solver: freeze={freeze!r}"
    if message.startswith(listed):
        return f"--freeze {shlex.join(freeze)}" + message[len(listed):]
    return "--freeze" + message[len("Solver: freeze"):]


def _write_plots(solver, model, args):
    """The loss, accuracy and filter plots, with Ctrl-C and SIGTERM held until they are written: met inside
    matplotlib (its import, savefig) they came out as its RuntimeError or ValueError tracebacks."""
    from .. import plots

    if not plots.available():
        return _plots_skipped(args, "matplotlib is not installed: skipping the plots (pip install 'fastnn[plot]')")
    try:
        with deferred():
            plots._agg()  # the import
    except ImportError as error:  # installed but broken (built for another NumPy, say): the run itself is done
        cause = error.__cause__ or error
        return _plots_skipped(args, f"matplotlib cannot be imported ({type(cause).__name__}: {cause}): skipping "
                                    "the plots")
    with deferred():
        return _plots_written(plots, solver, model, args)


def _plots_skipped(args, message):
    """Say why there are no plots, and that those in --out (a resumed run's earlier segment's) stop where it did."""
    earlier = [name for name in PLOT_FILES if os.path.isfile(os.path.join(args.out, name))]
    if earlier:
        message += f"; {', '.join(earlier)} in --out are from before the resume"
    print(message)
    return {}


def _plots_written(plots, solver, model, args):
    from ..solver import epochs_of_checks

    draw = {
        "loss": lambda path: plots.plot_loss(solver.loss_history, path),
        "accuracy": lambda path: plots.plot_accuracy(solver.train_acc_history, solver.val_acc_history, path,
                                                     epochs=epochs_of_checks(solver)),
    }
    first_layer = model.params["W1"]
    if first_layer.ndim == 4:
        draw["filters"] = lambda path: plots.plot_filters(first_layer, path)
    written = {}
    for name, plot in draw.items():
        path = os.path.join(args.out, f"{name}.png")
        with _into_out(path):
            written[name] = os.path.abspath(plot(path))
    return written
