"""The training loop of cs231n.solver, with a seed, a progress bar, a divergence stop and exact resume.

    solver = Solver(model, data, update_rule='adam', optim_config={'learning_rate': 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100, print_every=100, seed=0)
    solver.train()

Differences from the starter (the README's "Where fastnn differs" lists them all). Additions: `seed` (draws
minibatches and accuracy subsamples from an own np.random.Generator; without it numpy's global RNG is used
exactly as the starter uses it), a tqdm progress bar when verbose (`progress_bar=False` turns it off alone),
FloatingPointError on a non-finite loss, `best_params` never left empty, checkpoints as `.npz`
(fastnn.checkpoint; the starter pickled `.pkl`), `resume(path)`, `restore(path)`, `freeze` and
`lr_multipliers`. Refusals where the starter computed on: `print_every=0`, `lr_decay=0`, an `update_rule` name
that is not one of fastnn.optim's, a gradient of another dtype than its param, labels of the wrong shape.
Losses and accuracies are Python floats.
"""

import copy
import numbers
import operator
import os
import sys
import warnings
from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np

from . import checkpoint, optim
from ._checks import fits_input_dim, native_dtype
from ._files import check_writable_path
from ._streams import QuietOnFailure

# What resume needs besides checkpoint.SOLVER_KEYS (the starter's keys); checkpoint_state writes them all.
RESUME_KEYS = ("iteration", "best_val_acc", "best_params", "optim_configs", "seed", "rng_state", "global_rng_state")


# The keyword arguments Solver(model, data, **kwargs) takes.
ARGUMENTS = ("update_rule", "optim_config", "lr_decay", "batch_size", "num_epochs", "num_train_samples",
             "num_val_samples", "checkpoint_name", "print_every", "verbose", "seed", "progress_bar", "freeze",
             "lr_multipliers")


class Solver:
    """Trains a classification model with minibatch SGD-style updates from fastnn.optim.

    Inputs:
    - model: an object with `params` (a dict of name -> array) and `loss(X, y=None)` returning scores (N, C)
      when y is None and (loss, grads) otherwise, grads with the keys of params
    - data: a dict (or any mapping, such as np.load of an .npz) with 'X_train', 'y_train', 'X_val', 'y_val'
      (other keys are ignored)

    Optional keyword arguments:
    - update_rule: the name of a rule in fastnn.optim (default 'sgd'), or a function with the same interface
    - optim_config: hyperparameters for the update rule, copied for every parameter (default {})
    - lr_decay: the learning rate is multiplied by this after every epoch (default 1.0)
    - batch_size: minibatch size (default 100)
    - num_epochs: epochs to train (default 10)
    - num_train_samples: training points on which to check accuracy (default 1000; None for all)
    - num_val_samples: validation points on which to check accuracy (default None for all)
    - checkpoint_name: if given, write '<checkpoint_name>_epoch_<epoch>.npz' at each accuracy check
    - print_every: print the training loss every this many iterations (default 10)
    - verbose: print progress (default True); False prints nothing at all
    - seed: an int seeding the Solver's own RNG for minibatches and subsamples (default None: numpy's global RNG)
    - progress_bar: show a tqdm bar with epoch, loss and accuracy (default: the value of verbose)
    - freeze: param names, kinds ('b': every bias, not beta) or the groups 'conv' / 'affine' to keep unchanged
      (see fastnn.transfer; default None)
    - lr_multipliers: a dict of such patterns -> a factor > 0 on the learning rate of the params they name
      (default None)

    Attributes after train(): loss_history (one loss per iteration), train_acc_history and val_acc_history
    (one per accuracy check: the first iteration and every epoch end), best_val_acc, best_params (also put in
    model.params), epoch, optim_configs.
    """

    def __init__(self, model, data, **kwargs):
        if not isinstance(getattr(model, "params", None), dict) or not callable(getattr(model, "loss", None)):
            raise TypeError(f"Solver: model must have a params dict and a loss(X, y=None) method, as the "
                            f"classifiers do; got {type(model).__name__}")
        self.model = model
        self._set_data(data)
        self.update_rule = kwargs.pop("update_rule", "sgd")
        self.optim_config = kwargs.pop("optim_config", {})
        self.lr_decay = kwargs.pop("lr_decay", 1.0)
        self.batch_size = kwargs.pop("batch_size", 100)
        self.num_epochs = kwargs.pop("num_epochs", 10)
        self.num_train_samples = kwargs.pop("num_train_samples", 1000)
        self.num_val_samples = kwargs.pop("num_val_samples", None)
        self.checkpoint_name = kwargs.pop("checkpoint_name", None)
        self.print_every = _whole(kwargs.pop("print_every", 10))  # the notebooks' print_every=1e2 is a float
        self.verbose = kwargs.pop("verbose", True)
        self.seed = kwargs.pop("seed", None)
        self.progress_bar = kwargs.pop("progress_bar", None)
        self.freeze = kwargs.pop("freeze", None)
        self.lr_multipliers = kwargs.pop("lr_multipliers", None)
        if len(kwargs) > 0:
            extra = ", ".join('"%s"' % k for k in list(kwargs.keys()))
            raise ValueError("Unrecognized arguments %s" % extra)
        self._check_settings()
        self.update_rule = self._resolve_update_rule(self.update_rule)
        self._warn_of_unread_config_keys()
        self.rng = None if self.seed is None else np.random.default_rng(self.seed)
        self._frozen_names = self._frozen()
        self._warned_of_cast = False
        self._reset()

    # -- set-up -------------------------------------------------------------------------------------------

    def _set_data(self, data):
        if not isinstance(data, Mapping):  # a dict, or np.load's NpzFile of a saved data dict
            raise TypeError(
                f"Solver: data must be a dict (or another mapping) with X_train, y_train, X_val, y_val, got "
                f"{type(data).__name__}"
            )
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"Solver: data is missing {missing}; got keys {sorted(map(str, data))}")
        data = {k: data[k] for k in ("X_train", "y_train", "X_val", "y_val")}  # an NpzFile reads each once
        for split in ("train", "val"):
            X, y = data[f"X_{split}"], data[f"y_{split}"]
            if (not (isinstance(X, np.ndarray) and isinstance(y, np.ndarray)) or X.ndim == 0 or y.ndim == 0
                    or len(X) != len(y) or len(X) == 0):
                shapes = (getattr(X, "shape", type(X).__name__), getattr(y, "shape", type(y).__name__))
                raise ValueError(f"Solver: X_{split} and y_{split} must be non-empty arrays of equal length, "
                                 f"got shapes {shapes[0]} and {shapes[1]}")
            _check_labels("Solver", f"y_{split}", y, len(X))
            # A NaN in X makes the loss NaN, which the Solver would blame on the learning rate. The float64 sum
            # finds one without a mask the size of X (150 MB for CIFAR-10); the mask only locates it.
            if X.dtype.kind == "f" and not np.isfinite(np.sum(X, dtype=np.float64)) and not np.isfinite(X).all():
                bad = np.argwhere(~np.isfinite(X))
                raise ValueError(f"Solver: X_{split} holds {len(bad)} NaN or infinite values, the first at index "
                                 f"{tuple(int(i) for i in bad[0])}")
            _check_row_size(self.model, f"X_{split}", X)
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]

    def _check_settings(self, settings=None, fn="Solver"):
        """Check the settings on `settings` (default self: the constructor's), an object with their attributes."""
        s = self if settings is None else settings
        for name, allow_none, minimum in (("batch_size", False, 1), ("num_epochs", False, 0), ("print_every", False, 1),
                                          ("num_train_samples", True, 1), ("num_val_samples", True, 1)):
            _check_count(fn, name, getattr(s, name), allow_none, minimum)
        if (isinstance(s.lr_decay, bool) or not isinstance(s.lr_decay, numbers.Real)
                or not 0 < s.lr_decay < float("inf")):
            raise ValueError(f"{fn}: lr_decay must be a finite number > 0, got {s.lr_decay!r}")
        if not isinstance(s.optim_config, dict):
            raise TypeError(f"{fn}: optim_config must be a dict, got {type(s.optim_config).__name__}")
        if s.seed is not None and (isinstance(s.seed, bool) or not isinstance(s.seed, numbers.Integral)):
            raise TypeError(f"{fn}: seed must be an int or None, got {s.seed!r}")
        if s.seed is not None and s.seed < 0:  # numpy's generators take none
            raise ValueError(f"{fn}: seed must be >= 0, got {s.seed}")
        if s.checkpoint_name is not None:  # found now, not after the first epoch's work
            if not isinstance(s.checkpoint_name, (str, os.PathLike)):
                raise TypeError(f"{fn}: checkpoint_name must be a str or os.PathLike, got "
                                f"{type(s.checkpoint_name).__name__}")
            check_writable_path(fn, "checkpoint_name", f"{os.fspath(s.checkpoint_name)}_epoch_0.npz", probe=True)
            try:  # every checkpoint holds optim_config: a value it cannot store fails now, not after an epoch
                checkpoint.check_storable(s.optim_config, "optim_config")
            except TypeError as error:
                raise TypeError(f"{fn}: with checkpoint_name, {error}") from None

    @staticmethod
    def _resolve_update_rule(rule):
        if callable(rule):
            return rule
        if not isinstance(rule, str) or rule not in optim.UPDATE_RULES:
            raise ValueError('Invalid update_rule "%s": name one of fastnn.optim\'s rules %s, or pass a rule of '
                             'your own as the function itself (update_rule=my_rule)' % (rule, list(optim.UPDATE_RULES)))
        return getattr(optim, rule)

    def _warn_of_unread_config_keys(self):
        """A key of optim_config that a built-in rule does not read ('lr' for 'learning_rate') would train at the
        rule's default without a word: warn of it."""
        name = optim._builtin_name(self.update_rule)
        if name is None:
            return
        unread = sorted(set(self.optim_config) - set(optim.CONFIG_KEYS[name]), key=str)
        if unread:
            warnings.warn(f"Solver: update rule {name!r} does not read optim_config {unread}; it reads "
                          f"{list(optim.CONFIG_KEYS[name])} (the rest take their defaults)", UserWarning,
                          stacklevel=3)

    def _reset(self):
        """Set up the book-keeping variables for an optimization. Don't call this manually."""
        self.epoch = 0
        self._restored = False
        self._best_model_state = None  # the batchnorm statistics beside best_params
        self.best_val_acc = 0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}
        self._apply_lr_multipliers()

    def _apply_lr_multipliers(self):
        """lr_multipliers={pattern: factor}: those params train at factor x the learning rate."""
        from .transfer import select

        for pattern, factor in (self.lr_multipliers or {}).items():
            if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not factor > 0:
                raise ValueError(f"Solver: lr_multipliers[{pattern!r}] must be a number > 0, got {factor!r}")
            for name in select(self.model.params, [pattern], "Solver: lr_multipliers key"):
                config = self.optim_configs[name]
                if "learning_rate" not in config:  # the rule's own default, read off one call on a dummy
                    try:
                        config["learning_rate"] = self.update_rule(np.zeros(1), np.zeros(1), {})[1]["learning_rate"]
                    except Exception as error:  # a rule of the user's own that sets none, or takes no dummy
                        raise ValueError(f"Solver: lr_multipliers[{pattern!r}] scales optim_config's learning_rate, "
                                         f"which the update rule sets no default for: give one ({type(error).__name__}"
                                         f": {error})") from error
                config["learning_rate"] = config["learning_rate"] * factor  # not *=: a 0-d rate may be shared

    def _frozen(self):
        """The names of the params that `freeze=` keeps unchanged."""
        from .transfer import select

        if not self.freeze:
            return set()
        frozen = select(self.model.params, self.freeze, "Solver: freeze")
        if frozen == set(self.model.params):
            raise ValueError(f"Solver: freeze={self.freeze!r} names every parameter of the model; nothing would train")
        return frozen

    # -- randomness ---------------------------------------------------------------------------------------

    def _choice(self, n, size):
        """`size` indices in [0, n) drawn with replacement, as the starter's np.random.choice(n, size)."""
        if self.rng is None:
            return np.random.choice(n, size)
        return self.rng.choice(n, size)

    # -- one update ---------------------------------------------------------------------------------------

    def _step(self):
        """Make a single gradient update. This is called by train() and should not be called manually.
        A loss that is not finite changes no parameter (train() then stops)."""
        batch_mask = self._choice(self.X_train.shape[0], self.batch_size)
        X_batch = self.X_train[batch_mask]
        y_batch = self.y_train[batch_mask]

        loss, grads = _loss_and_grads(self.model.loss(X_batch, y_batch))
        self.loss_history.append(loss)
        if not np.isfinite(loss):
            return

        trained = [p for p in self.model.params if p not in self._frozen_names]
        self._check_gradients(trained, grads)
        # all made and checked before any is set (sgd alone changes w in place, as the starter's)
        updates = {}
        for p in trained:  # a loop, not a comprehension: its own frame on Python < 3.12 would shift stacklevel
            updates[p] = self._update(p, grads[p])
        for p, (next_w, next_config) in updates.items():
            self.model.params[p] = next_w
            self.optim_configs[p] = next_config

    def _update(self, p, dw):
        # on a copy of the config: the built-in rules set its t, m, v... in place, which a later param's failure
        # would have left advanced for this one
        w = self.model.params[p]
        result = self.update_rule(w, dw, dict(self.optim_configs[p]))
        rule = _rule_name(self.update_rule)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            raise TypeError(f"Solver: the update rule {rule!r} must return (next_w, config), "
                            f"got {type(result).__name__} for {p!r}")
        next_w, config = result
        if not isinstance(next_w, np.ndarray) or next_w.shape != w.shape:
            error = ValueError if isinstance(next_w, np.ndarray) else TypeError
            raise error(f"Solver: the update rule {rule!r} returned next_w {_described(next_w)} for {p!r}, "
                        f"whose value is {_described(w)}; it must be an array of that shape")
        if w.dtype.kind == "f" and next_w.dtype.newbyteorder("=") != w.dtype.newbyteorder("="):
            next_w = self._cast_back(rule, p, w, next_w)
        return next_w, config

    def _cast_back(self, rule, p, w, next_w):
        """next_w in w's float dtype, once it holds real numbers: the model refuses a param of another float dtype
        at its next loss(). A rule of one's own gives float64 for float32 params through any NumPy float64 scalar
        (np.sqrt(1 - beta2**t), a rate from np.logspace), which NumPy 2 no longer casts down."""
        if next_w.dtype.kind not in "biuf":
            raise TypeError(f"Solver: the update rule {rule!r} returned next_w of dtype {next_w.dtype} for {p!r}, "
                            f"whose dtype is {w.dtype}")
        if not self._warned_of_cast:
            self._warned_of_cast = True
            warnings.warn(f"Solver: the update rule {rule!r} returned {next_w.dtype} for the {w.dtype} param {p!r} "
                          f"(a NumPy float64 scalar in the rule or its config promotes {w.dtype} arrays); each such "
                          f"result is cast back to the param's dtype (warned once)", RuntimeWarning, stacklevel=5)
        return next_w.astype(w.dtype)

    def _check_gradients(self, names, grads):
        """Every gradient there and, for a built-in rule (which would refuse it), an array of its parameter's shape
        and dtype, before any parameter changes (a bad one found halfway through left the model half updated)."""
        if not isinstance(grads, dict):
            raise TypeError(f"Solver: model.loss must return (loss, grads) with grads a dict, got "
                            f"{type(grads).__name__}")
        builtin = optim._builtin_name(self.update_rule) is not None
        for p in names:
            if p not in grads:
                raise ValueError(f"Solver: model.loss returned no gradient for parameter {p!r}; got {sorted(grads)}")
            w, dw = self.model.params[p], grads[p]
            if builtin and native_dtype(w) not in (np.float32, np.float64):
                raise TypeError(f"Solver: parameter {p!r} must be a float32 or float64 array for update rule "
                                f"{optim._builtin_name(self.update_rule)!r}, got "
                                f"{getattr(w, 'dtype', type(w).__name__)}")
            if builtin and (not isinstance(dw, np.ndarray) or dw.shape != np.shape(w)
                            or native_dtype(dw) != native_dtype(w)):
                raise ValueError(f"Solver: the gradient of {p!r} must be an array of its parameter's shape "
                                 f"{np.shape(w)} and dtype {getattr(w, 'dtype', type(w).__name__)}, got "
                                 f"{getattr(dw, 'shape', type(dw).__name__)} {getattr(dw, 'dtype', '')}".rstrip())

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Check accuracy of the model on the provided data.

        Inputs:
        - X: array of data, of shape (N, d_1, ..., d_k)
        - y: array of labels, of shape (N,)
        - num_samples: if not None, subsample the data (with replacement) and only test on num_samples points
        - batch_size: split X and y into batches of this size to avoid using too much memory

        Returns:
        - acc: scalar giving the fraction of instances that were correctly classified by the model
        """
        fn = "Solver.check_accuracy"
        if not isinstance(X, np.ndarray):
            raise TypeError(f"{fn}: X must be a numpy.ndarray (N, ...), got {type(X).__name__}")
        if X.ndim < 1 or len(X) == 0:
            raise ValueError(f"{fn}: X must hold at least one row (N, ...), got shape {X.shape}")
        if isinstance(y, (list, tuple)):  # the starter compared a list of labels with its predictions as well
            y = np.asarray(y)
        _check_labels(fn, "y", y, len(X))
        top_label = y.max()
        _check_count(fn, "num_samples", num_samples, allow_none=True)
        _check_count(fn, "batch_size", batch_size)
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            mask = self._choice(N, num_samples)
            N = num_samples
            X = X[mask]
            y = y[mask]

        num_batches = N // batch_size
        if N % batch_size != 0:
            num_batches += 1
        y_pred = []
        for i in range(num_batches):
            start = i * batch_size
            end = (i + 1) * batch_size
            scores = self.model.loss(X[start:end])
            if not isinstance(scores, np.ndarray) or scores.ndim != 2 or len(scores) != len(X[start:end]):
                raise ValueError(f"{fn}: model.loss(X) must return scores of shape (N, C) for X of N = "
                                 f"{len(X[start:end])} rows, got {getattr(scores, 'shape', type(scores).__name__)}")
            predicted = np.argmax(scores, axis=1)
            predicted[np.isnan(scores).any(axis=1)] = -1  # a NaN score is no prediction (argmax picks the first NaN)
            y_pred.append(predicted)
        y_pred = np.hstack(y_pred)
        if top_label >= scores.shape[1]:
            raise ValueError(f"{fn}: y must lie in [0, {scores.shape[1]}) for the model's {scores.shape[1]} "
                             f"classes, got values up to {top_label}")
        return float(np.mean(y_pred == y))

    # -- the loop -----------------------------------------------------------------------------------------

    def train(self):
        """Run optimization to train the model; at the end model.params holds best_params.

        Trains from the last iteration done up to num_epochs. On a run already there, a second call trains
        num_epochs more (num_epochs grows by its value), as the starter's second call did; after resume() it
        finishes the checkpoint's run.

        Raises FloatingPointError naming the iteration when the loss is not finite; model.params then holds
        the best parameters found so far (the current ones if no accuracy check had run).
        """
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        start = len(self.loss_history)
        if start and start >= self.num_epochs * iterations_per_epoch and not self._restored:
            self.num_epochs = self.epoch + self.num_epochs  # a finished run trains num_epochs more, as the starter's
        self._restored = False
        num_iterations = self.num_epochs * iterations_per_epoch
        if self.model.params is self.best_params:  # after an earlier train(): updates must not reach the best
            self.model.params = {k: v.copy() for k, v in self.best_params.items()}

        with self._progress(num_iterations, start) as bar:
            for t in range(start, num_iterations):
                self._step()
                if self._diverged():
                    self._keep_best_params()
                    raise FloatingPointError(
                        f"Solver: the loss is {self.loss_history[-1]} at iteration {t + 1} / {num_iterations} "
                        f"(epoch {self.epoch}); the training diverged, so model.params holds the best parameters "
                        "so far. Lower the learning rate or the weight scale."
                    )
                bar.update(1)

                if self.verbose and t % self.print_every == 0:
                    self._print("(Iteration %d / %d) loss: %f" % (t + 1, num_iterations, self.loss_history[-1]))

                epoch_end = (t + 1) % iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    self._decay_learning_rates()

                first_it = t == 0
                last_it = t == num_iterations - 1
                if first_it or last_it or epoch_end:
                    train_acc = self.check_accuracy(self.X_train, self.y_train, num_samples=self.num_train_samples)
                    val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
                    self.train_acc_history.append(train_acc)
                    self.val_acc_history.append(val_acc)
                    # Keep track of the best model before the checkpoint, so the checkpoint holds it too.
                    if val_acc > self.best_val_acc:
                        self.best_val_acc = val_acc
                        self.best_params = {k: v.copy() for k, v in self.model.params.items()}
                        self._best_model_state = _copied(checkpoint.model_state(self.model))
                    self._save_checkpoint()
                    if self.verbose:
                        self._print(
                            "(Epoch %d / %d) train acc: %f; val_acc: %f"
                            % (self.epoch, self.num_epochs, train_acc, val_acc)
                        )
                bar.set_postfix(epoch=self.epoch, loss=f"{self.loss_history[-1]:.4f}",
                                val_acc=f"{self.val_acc_history[-1]:.3f}" if self.val_acc_history else "-",
                                refresh=False)

        # At the end of training swap the best params into the model
        self._keep_best_params()

    def _diverged(self):
        """Whether the last loss _step recorded is not finite. Read from the history, not from _step's return
        value: a subclass's _step written as the starter's returns None."""
        return bool(self.loss_history) and not np.isfinite(self.loss_history[-1])

    def _decay_learning_rates(self):
        for k, config in self.optim_configs.items():
            if k in self._frozen_names:  # a frozen param's rule never ran to set its rate
                continue
            if "learning_rate" in config:
                config["learning_rate"] = config["learning_rate"] * self.lr_decay  # not *=, as above
            elif self.lr_decay != 1:
                name = getattr(self.update_rule, "__name__", repr(self.update_rule))
                raise ValueError(f"Solver: lr_decay={self.lr_decay} needs a learning rate to decay, but the update "
                                 f"rule {name} left no 'learning_rate' in the config of {k!r}")

    def _keep_best_params(self):
        """The starter's swap of best_params into the model (the same dict; train() detaches it again), with the
        batchnorm running statistics of the same check: the starter left the last epoch's beside them, so a
        check_accuracy after training disagreed with best_val_acc."""
        if not self.best_params:
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        elif self._best_model_state is not None:
            checkpoint.restore_model_state(self.model, _copied(self._best_model_state))
        self.model.params = self.best_params

    def _progress(self, total, initial):
        """The progress bar. Its stream goes quiet once it fails, and training goes on: a bar is decoration. The
        error had stopped training, and tqdm, raising from inside its write, kept its lock held, so any later bar
        in another thread waited for it forever."""
        show = self.verbose if self.progress_bar is None else self.progress_bar
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, disable=not show, unit="it", desc="train", leave=True,
                    dynamic_ncols=True, mininterval=0.5, file=QuietOnFailure(sys.stderr))

    def _print(self, line):
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)  # above the progress bar, not through it

    # -- checkpoints and resume ---------------------------------------------------------------------------

    def checkpoint_state(self, iteration=None):
        """Everything needed to continue this run, as the dict fastnn.checkpoint.save_checkpoint writes."""
        name = _rule_name(self.update_rule)
        return {
            "params": dict(self.model.params),
            "update_rule": name,
            "lr_decay": self.lr_decay,
            "optim_config": self.optim_config,
            "batch_size": self.batch_size,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "epoch": self.epoch,
            "loss_history": self.loss_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
            "iteration": len(self.loss_history) if iteration is None else iteration,
            "best_val_acc": self.best_val_acc,
            "best_params": self.best_params,
            "optim_configs": self.optim_configs,
            "frozen": sorted(self._frozen_names),
            "model_state": checkpoint.model_state(self.model),
            "best_model_state": self._best_model_state,
            "seed": self.seed,
            "num_train": int(self.X_train.shape[0]),  # epochs count iterations of num_train // batch_size
            "rng_state": None if self.rng is None else self.rng.bit_generator.state,
            "global_rng_state": list(np.random.get_state()),
        }

    def checkpoint_file(self):
        """The file the checkpoint of the current epoch goes to: checkpoint_name + '_epoch_<epoch>.npz'."""
        return "%s_epoch_%d.npz" % (self.checkpoint_name, self.epoch)

    def _save_checkpoint(self):
        if self.checkpoint_name is None:
            return
        filename = self.checkpoint_file()
        if self.verbose:
            self._print('Saving checkpoint to "%s"' % filename)
        checkpoint.save_checkpoint(filename, self.checkpoint_state())

    def restore(self, path):
        """Load the state of a run from a checkpoint written by this class (see resume).

        Everything is checked before anything is set: a checkpoint that does not fit the model, or holds a bad
        setting, history or RNG state, raises ValueError naming it and leaves the Solver and model as they were.
        """
        fn = "Solver.restore"
        state = checkpoint.load_checkpoint(path)
        source = repr(os.fspath(path))
        where = f"{fn}: {source}"
        missing = [k for k in checkpoint.SOLVER_KEYS + RESUME_KEYS if k not in state]
        if missing:
            raise ValueError(f"{where} is not a Solver checkpoint (missing {missing})")
        params = _fitting_params(where, "params", state["params"], self.model.params)
        best_params = state["best_params"]
        if best_params != {}:  # empty until an accuracy check beats 0
            best_params = _fitting_params(where, "best_params", best_params, self.model.params)
        update_rule = self.update_rule
        # A checkpoint names its rule; an unnamed callable of this Solver's (functools.partial) is written as its
        # str, which holds an address, so such a rule is taken as the one the checkpoint was written with.
        unnamed = not hasattr(update_rule, "__name__") and state["update_rule"] not in optim.UPDATE_RULES
        if state["update_rule"] != _rule_name(update_rule) and not unnamed:
            if state["update_rule"] not in optim.UPDATE_RULES:
                raise ValueError(f"{where} was written with the update rule {state['update_rule']!r}, not one of "
                                 "fastnn.optim's: pass that function as this Solver's update_rule to continue it")
            update_rule = self._resolve_update_rule(state["update_rule"])
        restored = {k: state[k] for k in ("lr_decay", "optim_config", "batch_size", "num_train_samples",
                                          "num_val_samples", "epoch", "loss_history", "train_acc_history",
                                          "val_acc_history", "best_val_acc", "optim_configs")}
        # this Solver's own settings were checked by its constructor; checkpoint_name's directory need not be again
        settings = {"num_epochs": self.num_epochs, "print_every": self.print_every, "checkpoint_name": None,
                    "seed": state["seed"]}
        try:
            self._check_settings(SimpleNamespace(**settings, **restored), fn="the settings")
            _check_progress(restored, state["iteration"])
            _check_epoch_length(state.get("num_train"), len(self.X_train), restored["batch_size"])
            _check_optim_configs(restored["optim_configs"], params, update_rule)
            rng = None if state["rng_state"] is None else _generator_from_state(state["rng_state"])
            global_rng_state = tuple(state["global_rng_state"])
            np.random.RandomState().set_state(global_rng_state)  # checked on a scratch generator first
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as error:
            raise ValueError(f"{where} holds a state this Solver cannot continue from: {error}") from error
        frozen = self._frozen_names if state.get("frozen") is None else _frozen_names(where, state["frozen"], params)
        best_model_state = state.get("best_model_state")  # None in checkpoints of earlier versions
        if best_model_state is not None:  # checked on copies of the model's dicts, for the end of training
            scratch = SimpleNamespace(params=self.model.params,
                                      normalization=getattr(self.model, "normalization", None),
                                      bn_params=[dict(p) for p in getattr(self.model, "bn_params", None) or []])
            checkpoint.restore_model_state(scratch, best_model_state, source=f"{source} (best_model_state)")
        checkpoint.restore_model_state(self.model, state.get("model_state"), source=source)
        # Nothing below can fail.
        self.update_rule = update_rule
        for key, value in restored.items():
            setattr(self, key, value)
        self.model.params = params
        self.best_params = best_params
        self._best_model_state = best_model_state
        if frozen != self._frozen_names:  # the run goes on keeping what it kept
            self.freeze, self._frozen_names = sorted(frozen) or None, frozen
        self.seed = state["seed"]
        self.rng = rng
        np.random.set_state(global_rng_state)
        self._restored = True  # the next train() finishes this run, even one already at num_epochs
        return self

    def resume(self, path):
        """Continue training from the checkpoint at `path` up to this Solver's num_epochs.

        The checkpoint restores the model's params and batchnorm statistics, the update rule and its
        per-parameter state, the settings it was written with (the frozen params among them), the histories and
        the RNG states (the Solver's own and numpy's global one), so an interrupted run and an uninterrupted run
        with the same seed give the same loss history. Returns self.
        """
        self.restore(path)
        self.train()
        return self


def _loss_and_grads(result):
    """model.loss(X, y)'s (loss, grads), the loss as a Python float."""
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"Solver: model.loss(X, y) must return (loss, grads), got {type(result).__name__}")
    loss, grads = result
    try:
        return float(loss), grads
    except (TypeError, ValueError) as error:
        raise TypeError(f"Solver: model.loss(X, y) must return a number as its loss, got {loss!r:.60}") from error


def epochs_of_checks(solver):
    """The epoch of each of a Solver's accuracy checks in val_acc_history (one checkpoint each): the first
    iteration's (epoch 0, or epoch 1's own when an epoch is a single iteration) and each epoch end's."""
    per_epoch = max(solver.X_train.shape[0] // solver.batch_size, 1)
    return ([0] if per_epoch > 1 else []) + list(range(1, solver.epoch + 1))


def _copied(model_state):
    """A model_state dict whose arrays are copies: the model's own may change in place."""
    return {"bn_params": [{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in p.items()}
                          for p in model_state["bn_params"]]}


def _frozen_names(where, frozen, params):
    """The set of a checkpoint's frozen param names, once they name some of the model's params, not all."""
    if not isinstance(frozen, list) or not all(isinstance(name, str) for name in frozen):
        raise ValueError(f"{where} holds frozen={frozen!r:.80}; it must be a list of param names")
    unknown = sorted(set(frozen) - set(params))
    if unknown or (frozen and set(frozen) == set(params)):
        what = f"names params the model lacks: {unknown}" if unknown else "names every param of the model"
        raise ValueError(f"{where} holds frozen={frozen!r:.80}, which {what}")
    return set(frozen)


def _described(value):
    """'of shape S and dtype D' for an array, else the value's type."""
    if isinstance(value, np.ndarray):
        return f"of shape {value.shape} and dtype {value.dtype}"
    return f"of type {type(value).__name__}"


def _rule_name(rule):
    """The name a checkpoint gives an update rule: its __name__, else its str."""
    return getattr(rule, "__name__", str(rule))


def _whole(value):
    """A float holding a whole number (1e2) as that int; anything else as it is (for the checks to judge)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _check_count(fn, name, value, allow_none=False, minimum=1):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an integer >= {minimum}{' or None' if allow_none else ''}, "
                         f"got {value!r}")


def _check_row_size(model, name, X):
    """Rows of X fit the model's input_dim, where it declares one (fastnn's models do; one's own may take any
    size), as the model's own door checks them: checked here, not at the first accuracy check, after the first
    update (fastnn._checks.fits_input_dim)."""
    dim = getattr(model, "input_dim", None)
    try:
        dims = tuple(map(operator.index, dim if isinstance(dim, (tuple, list)) else [dim]))
    except TypeError:  # none declared, or not counts: the model's own check stands
        return
    if fits_input_dim(X.shape[1:], dims):
        return
    if len(dims) == 1:
        raise ValueError(f"Solver: each row of {name} must hold the model's input_dim={dim!r} ({dims[0]} values), "
                         f"got shape {X.shape}")
    raise ValueError(f"Solver: {name} must have shape (N, {', '.join(map(str, dims))}) for the model's "
                     f"input_dim={dim!r}, got {X.shape}")


def _check_labels(fn, name, y, n):
    """Integer class labels of shape (n,), none negative (the model knows the number of classes)."""
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":  # not bool, nor timedelta64
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray of integer class labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)}")
    y = np.asarray(y)  # a masked array's min skips masked entries
    if y.shape != (n,):
        raise ValueError(f"{fn}: {name} must have shape ({n},) to match X, got {y.shape}")
    if n and y.min() < 0:
        raise ValueError(f"{fn}: {name} must hold class labels >= 0, got {y.min()}")


def _fitting_params(where, key, saved, mine):
    """The checkpoint's params if their names, shapes and dtypes are the model's (as a new dict)."""
    if not isinstance(saved, dict) or set(saved) != set(mine) or any(
            not isinstance(saved[k], np.ndarray) or saved[k].shape != np.shape(mine[k]) for k in mine):
        shapes = ({k: getattr(v, "shape", type(v).__name__) for k, v in saved.items()} if isinstance(saved, dict)
                  else type(saved).__name__)
        raise ValueError(f"{where} holds {key} {shapes}, which do not fit the model's "
                         f"{ {k: np.shape(v) for k, v in mine.items()} }")
    wrong = {k: (str(saved[k].dtype), str(np.asarray(mine[k]).dtype)) for k in mine
             if saved[k].dtype != np.asarray(mine[k]).dtype}
    if wrong:
        raise ValueError(f"{where} holds {key} of other dtypes than the model's (saved, model): {wrong}")
    return dict(saved)


def _is_count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _check_progress(restored, iteration):
    """The epoch, histories and best accuracy a checkpoint holds: counts, lists of numbers and a number, and
    consistent: one loss per iteration done, and no more epochs than iterations."""
    epoch = restored["epoch"]
    if not _is_count(epoch):
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
    for key in ("loss_history", "train_acc_history", "val_acc_history"):
        values = restored[key]
        if not isinstance(values, list) or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            raise TypeError(f"{key} must be a list of numbers")
    if not _is_count(iteration) or iteration != len(restored["loss_history"]):
        raise ValueError(f"iteration must be the number of losses in loss_history "
                         f"({len(restored['loss_history'])}), got {iteration!r}")
    if epoch > iteration:
        raise ValueError(f"epoch {epoch} is more than the iterations done ({iteration})")
    best = restored["best_val_acc"]
    if isinstance(best, bool) or not isinstance(best, numbers.Real) or not 0 <= best <= 1:
        raise ValueError(f"best_val_acc must be an accuracy in [0, 1], got {best!r}")


def _check_epoch_length(saved, num_train, batch_size):
    """A run continues with the iterations an epoch took when it was written (num_train // batch_size): on a
    training set of another length its epochs, learning-rate decay and checkpoint names would part from its
    iterations. Checkpoints of earlier versions hold no num_train (None)."""
    if saved is None:
        return
    if not _is_count(saved):
        raise ValueError(f"num_train must be an integer >= 0, got {saved!r}")
    if max(saved // batch_size, 1) != max(num_train // batch_size, 1):
        raise ValueError(f"it was written for a training set of {saved} samples, {max(saved // batch_size, 1)} "
                         f"iterations an epoch; this Solver's X_train has {num_train}, "
                         f"{max(num_train // batch_size, 1)} (to train on other data, load its params instead: "
                         "fastnn.transfer.load_params)")


def _check_optim_configs(configs, params, update_rule):
    """One dict per param; for a built-in rule, an array in it (its state: velocity, cache, m, v) shaped and typed
    as the param, and the rule takes it (one update of a copy of the param with a zero gradient, on a copy of the
    config, so that the rule's own checks of its hyperparameters and state run now). A rule of the user's own is
    not called (it may have side effects, or refuse a zero gradient), and its arrays are its own."""
    if not isinstance(configs, dict) or set(configs) != set(params):
        raise ValueError(f"optim_configs must hold one dict per param {sorted(params)}, got "
                         f"{sorted(configs) if isinstance(configs, dict) else type(configs).__name__}")
    builtin = optim._builtin_name(update_rule)
    for name, config in configs.items():
        if not isinstance(config, dict):
            raise TypeError(f"optim_configs[{name!r}] must be a dict, got {type(config).__name__}")
        if builtin is None:  # its arrays are its own (a schedule, say), of any shape
            continue
        param = params[name]
        for key, value in config.items():  # a 0-d array is a hyperparameter (the rule checks it below)
            if isinstance(value, np.ndarray) and value.ndim and (value.shape != param.shape
                                                                 or native_dtype(value) != native_dtype(param)):
                raise ValueError(f"optim_configs[{name!r}][{key!r}] has shape {value.shape} and dtype {value.dtype}"
                                 f"; the param has {params[name].shape} and {params[name].dtype}")
        try:
            update_rule(params[name].copy(), np.zeros_like(params[name]), copy.deepcopy(config))
        except (TypeError, ValueError) as error:
            raise ValueError(f"optim_configs[{name!r}]: {error}") from error


BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")  # numpy's; a checkpoint names one


def _generator_from_state(state):
    name = state["bit_generator"]
    if name not in BIT_GENERATORS:  # never any other attribute of np.random: np.random.seed would reseed it
        raise ValueError(f"rng_state names bit generator {name!r}, not one of {list(BIT_GENERATORS)}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
