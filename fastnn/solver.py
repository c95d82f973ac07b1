"""The training loop of cs231n.solver, with a seed, a progress bar, a divergence stop and exact resume.

    solver = Solver(model, data, update_rule='adam', optim_config={'learning_rate': 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100, print_every=100, seed=0)
    solver.train()

Differences from the starter, all additive: `seed` (draws minibatches and accuracy subsamples from an own
np.random.Generator; without it numpy's global RNG is used exactly as the starter uses it), a tqdm progress bar
when verbose (`progress_bar=False` turns it off alone), FloatingPointError on a non-finite loss, `best_params`
never left empty, checkpoints as `.npz` (fastnn.checkpoint; the starter pickled `.pkl`) and `resume(path)`.
"""

import numbers
import sys

import numpy as np

from . import checkpoint, optim


class Solver:
    """Trains a classification model with minibatch SGD-style updates from fastnn.optim.

    Inputs:
    - model: an object with `params` (a dict of name -> array) and `loss(X, y=None)` returning scores (N, C)
      when y is None and (loss, grads) otherwise, grads with the keys of params
    - data: a dict with 'X_train', 'y_train', 'X_val', 'y_val' (other keys are ignored)

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

    Attributes after train(): loss_history (one loss per iteration), train_acc_history and val_acc_history
    (one per accuracy check: the first iteration and every epoch end), best_val_acc, best_params (also put in
    model.params), epoch, optim_configs.
    """

    def __init__(self, model, data, **kwargs):
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
        self.print_every = kwargs.pop("print_every", 10)
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
        self.rng = None if self.seed is None else np.random.default_rng(self.seed)
        self._frozen_names = self._frozen()
        self._reset()

    # -- set-up -------------------------------------------------------------------------------------------

    def _set_data(self, data):
        if not isinstance(data, dict):
            raise TypeError(
                f"Solver: data must be a dict with X_train, y_train, X_val, y_val, got {type(data).__name__}"
            )
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"Solver: data is missing {missing}; got keys {sorted(data)}")
        for split in ("train", "val"):
            X, y = data[f"X_{split}"], data[f"y_{split}"]
            if not (hasattr(X, "shape") and hasattr(y, "shape")) or len(X) != len(y) or len(X) == 0:
                shapes = (getattr(X, "shape", type(X).__name__), getattr(y, "shape", type(y).__name__))
                raise ValueError(f"Solver: X_{split} and y_{split} must be non-empty arrays of equal length, "
                                 f"got shapes {shapes[0]} and {shapes[1]}")
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]

    def _check_settings(self):
        def positive_int(name, allow_none=False, minimum=1):
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                raise ValueError(f"Solver: {name} must be an integer >= {minimum}, got {value!r}")

        positive_int("batch_size")
        positive_int("num_epochs", minimum=0)
        positive_int("print_every")
        positive_int("num_train_samples", allow_none=True)
        positive_int("num_val_samples", allow_none=True)
        if isinstance(self.lr_decay, bool) or not isinstance(self.lr_decay, numbers.Real) or not self.lr_decay > 0:
            raise ValueError(f"Solver: lr_decay must be a number > 0, got {self.lr_decay!r}")
        if not isinstance(self.optim_config, dict):
            raise TypeError(f"Solver: optim_config must be a dict, got {type(self.optim_config).__name__}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral)):
            raise TypeError(f"Solver: seed must be an int or None, got {self.seed!r}")

    @staticmethod
    def _resolve_update_rule(rule):
        if callable(rule):
            return rule
        if not isinstance(rule, str) or rule not in optim.UPDATE_RULES:
            raise ValueError('Invalid update_rule "%s"' % (rule,))
        return getattr(optim, rule)

    def _reset(self):
        """Set up the book-keeping variables for an optimization. Don't call this manually."""
        self.epoch = 0
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
                    config["learning_rate"] = self.update_rule(np.zeros(1), np.zeros(1), {})[1]["learning_rate"]
                config["learning_rate"] *= factor

    def _frozen(self):
        """The names of the params that `freeze=` keeps unchanged."""
        from .transfer import select

        if not self.freeze:
            return set()
        return select(self.model.params, self.freeze, "Solver: freeze")

    # -- randomness ---------------------------------------------------------------------------------------

    def _choice(self, n, size):
        """`size` indices in [0, n) drawn with replacement, as the starter's np.random.choice(n, size)."""
        if self.rng is None:
            return np.random.choice(n, size)
        return self.rng.choice(n, size)

    # -- one update ---------------------------------------------------------------------------------------

    def _step(self):
        """Make a single gradient update. This is called by train() and should not be called manually."""
        batch_mask = self._choice(self.X_train.shape[0], self.batch_size)
        X_batch = self.X_train[batch_mask]
        y_batch = self.y_train[batch_mask]

        loss, grads = self.model.loss(X_batch, y_batch)
        self.loss_history.append(float(loss))
        if not np.isfinite(loss):
            return False

        for p, w in self.model.params.items():
            if p in self._frozen_names:
                continue
            if p not in grads:
                raise ValueError(f"Solver: model.loss returned no gradient for parameter {p!r}; got {sorted(grads)}")
            next_w, next_config = self.update_rule(w, grads[p], self.optim_configs[p])
            self.model.params[p] = next_w
            self.optim_configs[p] = next_config
        return True

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
            y_pred.append(np.argmax(scores, axis=1))
        y_pred = np.hstack(y_pred)
        return float(np.mean(y_pred == y))

    # -- the loop -----------------------------------------------------------------------------------------

    def train(self):
        """Run optimization to train the model; at the end model.params holds best_params.

        Raises FloatingPointError naming the iteration when the loss is not finite; model.params then holds
        the best parameters found so far (the current ones if no accuracy check had run).
        """
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = self.num_epochs * iterations_per_epoch
        start = len(self.loss_history)

        with self._progress(num_iterations, start) as bar:
            for t in range(start, num_iterations):
                if not self._step():
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
                    for k in self.optim_configs:
                        if k not in self._frozen_names:  # a frozen param's rule never ran to set its rate
                            self.optim_configs[k]["learning_rate"] *= self.lr_decay

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
                    self._save_checkpoint(t + 1)
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

    def _keep_best_params(self):
        if not self.best_params:
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        self.model.params = self.best_params

    def _progress(self, total, initial):
        show = self.verbose if self.progress_bar is None else self.progress_bar
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, disable=not show, unit="it", desc="train", leave=True,
                    dynamic_ncols=True, mininterval=0.5, file=sys.stderr)

    def _print(self, line):
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)  # above the progress bar, not through it

    # -- checkpoints and resume ---------------------------------------------------------------------------

    def checkpoint_state(self, iteration=None):
        """Everything needed to continue this run, as the dict fastnn.checkpoint.save_checkpoint writes."""
        name = getattr(self.update_rule, "__name__", str(self.update_rule))
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
            "model_state": checkpoint.model_state(self.model),
            "seed": self.seed,
            "rng_state": None if self.rng is None else self.rng.bit_generator.state,
            "global_rng_state": list(np.random.get_state()),
        }

    def _save_checkpoint(self, iteration):
        if self.checkpoint_name is None:
            return
        filename = "%s_epoch_%d.npz" % (self.checkpoint_name, self.epoch)
        if self.verbose:
            self._print('Saving checkpoint to "%s"' % filename)
        checkpoint.save_checkpoint(filename, self.checkpoint_state(iteration))

    def restore(self, path):
        """Load the state of a run from a checkpoint written by this class (see resume)."""
        state = checkpoint.load_checkpoint(path)
        missing = [k for k in checkpoint.SOLVER_KEYS + ("iteration", "optim_configs") if k not in state]
        if missing:
            raise ValueError(f"Solver.resume: {path!r} is not a Solver checkpoint (missing {missing})")
        params = state["params"]
        mine = self.model.params
        if set(params) != set(mine) or any(params[k].shape != np.shape(mine[k]) for k in mine):
            saved = {k: v.shape for k, v in params.items()}
            raise ValueError(f"Solver.resume: {path!r} holds params {saved}, which do not fit the model's "
                             f"{ {k: np.shape(v) for k, v in mine.items()} }")
        name = getattr(self.update_rule, "__name__", None)
        if state["update_rule"] != name:
            self.update_rule = self._resolve_update_rule(state["update_rule"])
        for key in ("lr_decay", "optim_config", "batch_size", "num_train_samples", "num_val_samples", "epoch",
                    "loss_history", "train_acc_history", "val_acc_history", "best_val_acc", "optim_configs"):
            setattr(self, key, state[key])
        self.model.params = dict(params)
        self.best_params = dict(state["best_params"])
        checkpoint.restore_model_state(self.model, state.get("model_state"), source=repr(path))
        self.seed = state["seed"]
        self.rng = None if state["rng_state"] is None else _generator_from_state(state["rng_state"])
        np.random.set_state(tuple(state["global_rng_state"]))
        return self

    def resume(self, path):
        """Continue training from the checkpoint at `path` up to this Solver's num_epochs.

        The checkpoint restores the model's params and batchnorm statistics, the update rule and its
        per-parameter state, the settings it was written with, the histories and the RNG states (the Solver's
        own and numpy's global one), so an interrupted run and an uninterrupted run with the same seed give the
        same loss history. Returns self.
        """
        self.restore(path)
        self.train()
        return self


def _generator_from_state(state):
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
