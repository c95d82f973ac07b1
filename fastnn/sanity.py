"""The course's babysitting checks for a model, behind `fastnn check`.

Before a long run, CS231n checks that (1) the initial loss at reg 0 is about log(C), the loss of uniform
scores, and rises with reg; (2) analytic gradients match numeric ones (float64, a few sampled entries per
parameter); (3) the model can overfit a small subset to 100% training accuracy. Each check returns a Verdict.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from . import _checks
from .gradient_check import rel_error


@dataclass
class Verdict:
    """The outcome of one check: its name, whether it passed, and the measured numbers in words."""

    name: str
    passed: bool
    detail: str

    def __str__(self):
        return f"[{'PASS' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


def check_initial_loss(make_model, X, y, num_classes, reg=1.0, tolerance=0.05):
    """Initial loss at reg 0 within `tolerance` (relative) of log(num_classes), and higher at `reg`.

    make_model(reg) must build a fresh model with small initial weights; both models start from the same
    numpy RNG state so they share their weights. num_classes is an integer >= 2 (log 1 = 0 leaves no tolerance).
    """
    fn = "check_initial_loss"
    num_classes = _checks.integer(fn, "num_classes", num_classes, minimum=2)
    reg = _checks.number(fn, "reg", reg, low=0, low_open=True)
    tolerance = _checks.number(fn, "tolerance", tolerance, low=0)
    if not callable(make_model):
        _checks.fail(fn, f"make_model must be callable (reg -> model), got {type(make_model).__name__}", TypeError)
    state = np.random.get_state()
    loss_0, _ = _loss(fn, _built(fn, make_model, 0.0), X, y)
    np.random.set_state(state)
    loss_reg, _ = _loss(fn, _built(fn, make_model, reg), X, y)
    expected = np.log(num_classes)
    near = abs(loss_0 - expected) <= tolerance * expected
    rises = loss_reg > loss_0
    detail = (f"loss {loss_0:.4f} at reg 0 (log {num_classes} = {expected:.4f}, "
              f"{'within' if near else 'outside'} {tolerance:.0%}); {loss_reg:.4f} at reg {reg:g} "
              f"({'rises' if rises else 'does not rise'})")
    return Verdict("initial loss", bool(near and rises), detail)


def _built(fn, make_model, reg):
    """make_model(reg), which must have a loss method."""
    model = make_model(reg)
    if not callable(getattr(model, "loss", None)):
        _checks.fail(fn, f"make_model({reg!r}) must return a model with a loss method, got {type(model).__name__}",
                     TypeError)
    return model


def _real_number(value):
    """A Python or numpy real number, or a 0-d array of one; not a bool."""
    value = _checks._scalar(value)
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _loss(fn, model, X, y):
    """model.loss(X, y), which must be (loss, grads): a real number and a dict."""
    result = model.loss(X, y)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        _checks.fail(fn, f"model.loss(X, y) must return (loss, grads), got {type(result).__name__}", TypeError)
    loss, grads = result
    if not _real_number(loss):
        shape = f" with shape {loss.shape}" if isinstance(loss, np.ndarray) else ""
        _checks.fail(fn, f"model.loss(X, y) must return a real number as its loss, got {type(loss).__name__}{shape}",
                     TypeError)
    if not isinstance(grads, dict):
        _checks.fail(fn, f"model.loss(X, y) must return (loss, grads) with grads a dict, got {type(grads).__name__}",
                     TypeError)
    return loss, grads


# A centred difference (f(w + h) - f(w - h)) / 2h resolves a gradient only to about eps |f| / h: the rounding of
# the two losses. Measured on correct float64 models (the course's FullyConnectedNet, TwoLayerNet and
# ThreeLayerConvNet settings, 2,160 sampled entries), |numeric - analytic| stayed below 0.9 of that away from
# ReLU and max-pool kinks; an entry whose gradient is too small for a relative error (the convnet's b1, 3.5e-7,
# was 1.4e-4 off at h = 1e-6) is held to RESOLUTIONS of it instead.
RESOLUTIONS = 4


def _checked_arguments(fn, model, num_checks, h, seed):
    """num_checks and h as numbers, after checking that model.params is a dict of writeable floating arrays."""
    params = getattr(model, "params", None)
    if not isinstance(params, dict) or not callable(getattr(model, "loss", None)):
        _checks.fail(fn, f"model must have a params dict and a loss method, got {type(model).__name__}", TypeError)
    if not params:
        _checks.fail(fn, f"model.params is empty: {type(model).__name__} has no parameters to check")
    for name, param in params.items():
        if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
            got = f"dtype {param.dtype}" if isinstance(param, np.ndarray) else type(param).__name__
            _checks.fail(fn, f"model.params[{name!r}] must be a floating numpy array, got {got}", TypeError)
        if not param.flags.writeable:  # each entry is perturbed in place
            _checks.fail(fn, f"model.params[{name!r}] is read-only; the check perturbs it in place")
    num_checks = _checks.integer(fn, "num_checks", num_checks, minimum=1)
    h = _checks.number(fn, "h", h, low=0, low_open=True)
    try:  # anything np.random.default_rng takes: None, an integer >= 0, a SeedSequence, a Generator
        np.random.default_rng(seed)
    except (TypeError, ValueError) as error:
        _checks.fail(fn, f"seed must be what np.random.default_rng takes (an integer >= 0, say), got {seed!r} "
                         f"({error})", type(error))
    return num_checks, h


def _checked_grads(fn, model, grads):
    """grads (a dict, by _loss), with an entry of its param's shape for each param."""
    for name, param in model.params.items():
        grad = grads.get(name)
        if getattr(grad, "shape", None) != param.shape:
            got = "no entry" if grad is None else f"shape {getattr(grad, 'shape', type(grad).__name__)}"
            _checks.fail(fn, f"model.loss's grads[{name!r}] must have the shape of its param, {param.shape}; "
                             f"got {got}")
    return grads


def _sampled_entries(fn, model, X, y, num_checks, h, seed):
    """(name, index, numeric, analytic, resolution) for num_checks random entries of each parameter; the params
    are perturbed in place and restored, even when model.loss raises."""
    _, grads = _loss(fn, model, X, y)
    grads = _checked_grads(fn, model, grads)
    rng = np.random.default_rng(seed)
    for name, param in model.params.items():
        eps = np.finfo(param.dtype).eps  # params are floating (_checked_arguments)
        for flat in rng.choice(param.size, size=min(num_checks, param.size), replace=False):
            index = np.unravel_index(flat, param.shape)
            saved = param[index]
            try:
                param[index] = saved + h
                plus, _ = _loss(fn, model, X, y)
                param[index] = saved - h
                minus, _ = _loss(fn, model, X, y)
            finally:
                param[index] = saved
            resolution = eps * max(abs(plus), abs(minus)) / h
            yield name, tuple(int(i) for i in index), (plus - minus) / (2 * h), grads[name][index], resolution


def _relative_error(numeric, analytic):
    """gradient_check.rel_error of the two, infinite where either is NaN or infinite (a NaN compares below every
    error, so it would have read as a match)."""
    if not (np.isfinite(numeric) and np.isfinite(analytic)):
        return float("inf")
    return rel_error(numeric, analytic)


def sampled_gradient_errors(model, X, y, num_checks=5, h=1e-6, seed=0):
    """The largest relative error |numeric - analytic| / max(|numeric| + |analytic|, 1e-8) per parameter,
    from centred differences at `num_checks` random entries of each. The model should be float64. Returns a
    dict name -> (error, index). The params are perturbed in place and restored, even when model.loss raises."""
    fn = "sampled_gradient_errors"
    num_checks, h = _checked_arguments(fn, model, num_checks, h, seed)
    errors = {name: (0.0, None) for name in model.params}
    for name, index, numeric, analytic, _ in _sampled_entries(fn, model, X, y, num_checks, h, seed):
        error = _relative_error(numeric, analytic)
        if error >= errors[name][0]:
            errors[name] = (error, index)
    return errors


def check_gradients(model, X, y, num_checks=5, threshold=1e-5, seed=0, h=1e-6):
    """Sampled numeric gradient check of a float64 model at its current reg; num_checks entries per parameter.

    An entry passes at a relative error within threshold, or within RESOLUTIONS times what the centred
    difference can resolve (eps |loss| / h) where its gradient is too small for a relative error to mean much.
    """
    fn = "check_gradients"
    num_checks, h = _checked_arguments(fn, model, num_checks, h, seed)
    threshold = _checks.number(fn, "threshold", threshold, low=0)
    single = _not_float64(model.params)
    if single:
        return single
    worst = {True: (0.0, None), False: (0.0, None)}  # the largest relative error of the entries passed, failed
    failed = by_resolution = 0
    for name, index, numeric, analytic, resolution in _sampled_entries(fn, model, X, y, num_checks, h, seed):
        error = _relative_error(numeric, analytic)
        within_resolution = bool(np.isfinite(error) and abs(numeric - analytic) <= RESOLUTIONS * resolution)
        passed = error <= threshold or within_resolution
        failed += not passed
        by_resolution += error > threshold and within_resolution
        if error >= worst[passed][0]:
            worst[passed] = (error, f"{name}{list(index) if index else ''}")
    worst, where = worst[failed == 0]
    detail = (f"max relative error {worst:.2e} ({where}) over {num_checks} entries of each of {len(model.params)} "
              f"parameters at reg {_shown(getattr(model, 'reg', 0))}; threshold {threshold:.0e}")
    if by_resolution:
        detail += (f"; {by_resolution} entries above it are within {RESOLUTIONS} x the numeric difference's "
                   f"resolution (eps |loss| / h), too small a gradient for a relative error")
    if failed:
        detail += f"; {failed} entries fail"
    return Verdict("gradient check", failed == 0, detail)


def _not_float64(params):
    """A failed gradient check naming the first param that is not float64 (each is perturbed by h), else None."""
    for name, param in params.items():
        if param.dtype != np.float64:
            return Verdict("gradient check", False, f"the model is {param.dtype} in model.params[{name!r}]; "
                                                    "gradient checks need float64")
    return None


def _shown(value):
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else repr(value)


def check_overfit(model, X, y, num_epochs=20, batch_size=25, update_rule="adam", learning_rate=1e-2, seed=0):
    """Train on the small set (X, y) alone; pass if the training accuracy reaches 100% at an epoch's check.

    The accuracy is the Solver's best_val_acc: its validation set is the small set itself, measured whole in test
    mode at each epoch's check, and the model ends with the params and batchnorm statistics of the best check.
    """
    from .solver import Solver, epochs_of_checks

    num_epochs = _checks.integer("check_overfit", "num_epochs", num_epochs, minimum=1)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    solver = Solver(model, data, update_rule=update_rule, optim_config={"learning_rate": learning_rate},
                    num_epochs=num_epochs, batch_size=batch_size, num_train_samples=None, verbose=False, seed=seed)
    solver.train()
    accuracy = solver.best_val_acc
    first = epochs_of_checks(solver)[solver.val_acc_history.index(accuracy)] if accuracy == 1.0 else None
    reached = f" (first at epoch {first})" if first is not None else ""
    detail = (f"train accuracy {accuracy:.1%}{reached} on {_counted(len(y), 'sample')} in "
              f"{_counted(num_epochs, 'epoch')} of {update_rule} (lr {learning_rate:g}); final loss "
              f"{solver.loss_history[-1]:.4f}")
    return Verdict("overfit small subset", accuracy == 1.0, detail)


def _counted(number, noun):
    """'1 sample', '50 samples'."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
