"""First-order update rules, the cs231n.optim API.

Each rule has the interface

    def update(w, dw, config=None):
        Inputs:
        - w: an array of the current weights
        - dw: an array of the same shape and dtype: the gradient of the loss with respect to w
        - config: a dict of hyperparameters (learning rate, momentum, ...) and of the rule's state (velocity,
          moving averages, step count). Missing entries are filled in (defaults, zeros for the state), so the dict
          passed in is updated and returned.

        Returns a tuple of:
        - next_w: the weights after the update
        - config: the config dict to pass to the next call of this rule

`sgd` updates w in place, as the starter's does, whatever its memory layout (a read-only w gets a new array);
the other rules return a new array. next_w and the state are arrays of w's shape, a 0-d w's too (NumPy's
arithmetic would give them as scalars, which the next call refuses as state). The Solver looks rules up by name
in this module (`update_rule='adam'`); UPDATE_RULES lists those names. adam runs a compiled kernel under the
'auto', 'jit' and 'verify' backends, bit for bit the NumPy step; the others are a few NumPy operations each and
run NumPy on every backend.
"""

import numpy as np

from . import _checks as _check

UPDATE_RULES = ("sgd", "sgd_momentum", "nesterov", "adagrad", "rmsprop", "adam")
# The config keys each rule reads (hyperparameters, then state); the Solver warns of others, such as a misspelling.
CONFIG_KEYS = {
    "sgd": ("learning_rate",),
    "sgd_momentum": ("learning_rate", "momentum", "velocity"),
    "nesterov": ("learning_rate", "momentum", "velocity"),
    "adagrad": ("learning_rate", "epsilon", "cache"),
    "rmsprop": ("learning_rate", "decay_rate", "epsilon", "cache"),
    "adam": ("learning_rate", "beta1", "beta2", "epsilon", "m", "v", "t"),
}


def _builtin_name(rule):
    """The name of a rule of this module given by name or as the function, else None (an unknown name, or a rule of
    the user's own)."""
    if isinstance(rule, str):
        return rule if rule in UPDATE_RULES else None
    name = getattr(rule, "__name__", None)
    return name if name in UPDATE_RULES and globals()[name] is rule else None


def _configured(fn, w, dw, config, defaults, state=(), step_count=False):
    """(w, dw, config, hyper) for a rule's call: w and dw checked, every hyperparameter (config's, else its default
    from `defaults`) as a checked Python float in `hyper`, each key of `state` in config checked, and with
    `step_count` (Adam) config's t, all before config gains anything; then the missing defaults, zero state and
    t = 0 are filled in. A refused call leaves the caller's config as it was."""
    w, dw = _check.floats(fn, w=w, dw=dw)
    if w.shape != dw.shape:
        _check.fail(fn, f"dw must have the shape of w {w.shape}, got {dw.shape}")
    if config is None:
        config = {}
    _check.param_dict(fn, "config", config)
    hyper = {key: _hyper(fn, key, config.get(key, default)) for key, default in defaults.items()}
    for key in state:
        if key in config:
            _check_state(fn, key, config[key], w)
    if step_count and "t" in config:
        # t + 1 is a 64-bit integer in the kernel, and beta**t a float (10**400 once overflowed converting)
        _check.integer(fn, "config['t']", config["t"], minimum=0, maximum=2**63 - 2)
    for key, default in defaults.items():
        config.setdefault(key, default)
    for key in state:
        if key not in config:
            # not config.setdefault(key, np.zeros_like(w)): that allocates and zeroes an array of w's size on every
            # call, whether or not the state exists (1.4 ms of a 6 ms Adam step of a 2.4M-parameter
            # FullyConnectedNet, measured here)
            config[key] = np.zeros_like(w)
    if step_count:
        config.setdefault("t", 0)
    return w, dw, config, hyper


# (low, high, low_open, high_open) of each hyperparameter: outside it an update gives NaN (beta1 = 1 divides by
# 1 - beta1**t = 0) or is no descent (a negative rate, beta1 = 1.5). epsilon = 0 stays allowed (worked examples
# use it), though it gives NaN wherever a gradient and its running average are both 0.
RANGES = {
    "learning_rate": (0.0, None, False, False),
    "momentum": (0.0, 1.0, False, False),
    "decay_rate": (0.0, 1.0, False, False),
    "beta1": (0.0, 1.0, False, True),
    "beta2": (0.0, 1.0, False, True),
    "epsilon": (0.0, None, False, False),
}


def _hyper(fn, key, value):
    # A Python float keeps float32 weights float32; an np.float64 learning rate (as from a random search with
    # 10 ** np.random.uniform(...)) would promote them to float64 under NumPy 2's casting rules.
    low, high, low_open, high_open = RANGES[key]
    return _check.number(fn, f"config['{key}']", value, low, high, low_open, high_open)


def _check_state(fn, key, state, w):
    """config[key], a rule's state, must be an array of w's shape and dtype (either byte order: the numbers are
    the same, as for w)."""
    if not isinstance(state, np.ndarray) or state.shape != w.shape:
        got = state.shape if isinstance(state, np.ndarray) else type(state).__name__
        _check.fail(fn, f"config['{key}'] must be an array of w's shape {w.shape}, got {got}")
    if _check.native_dtype(state) != w.dtype:
        _check.fail(fn, f"config['{key}'] has dtype {state.dtype} but w has dtype {w.dtype}", TypeError)


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent, in place: w -= learning_rate * dw (a read-only w gets a new array).

    config format:
    - learning_rate: scalar learning rate (default 1e-2)
    """
    checked, dw, config, hyper = _configured("sgd", w, dw, config, {"learning_rate": 1e-2})
    if w.flags.writeable:
        checked = w  # the caller's own array, also when the checks made a C-contiguous copy of it
    checked -= hyper["learning_rate"] * dw
    return checked, config


def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with momentum: v = momentum * v - learning_rate * dw; next_w = w + v.

    config format:
    - learning_rate: scalar learning rate (default 1e-2)
    - momentum: scalar between 0 and 1 giving the momentum value (default 0.9); 0 reduces to sgd
    - velocity: an array of w's shape holding a moving average of the gradients (default zeros)
    """
    w, dw, config, hyper = _configured("sgd_momentum", w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9},
                                       ("velocity",))
    v = np.asarray(hyper["momentum"] * config["velocity"] - hyper["learning_rate"] * dw)
    next_w = np.asarray(w + v)
    config["velocity"] = v
    return next_w, config


def nesterov(w, dw, config=None):
    """Nesterov momentum in the CS231n-notes form, with dw the gradient at the current w:

        v_prev = v
        v = momentum * v - learning_rate * dw
        next_w = w - momentum * v_prev + (1 + momentum) * v

    config format: learning_rate (1e-2), momentum (0.9), velocity (zeros), as in sgd_momentum.
    """
    w, dw, config, hyper = _configured("nesterov", w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9},
                                       ("velocity",))
    mu = hyper["momentum"]
    v_prev = config["velocity"]
    v = np.asarray(mu * v_prev - hyper["learning_rate"] * dw)
    next_w = np.asarray(w - mu * v_prev + (1 + mu) * v)
    config["velocity"] = v
    return next_w, config


def adagrad(w, dw, config=None):
    """Adagrad: cache += dw**2; next_w = w - learning_rate * dw / (sqrt(cache) + epsilon).

    config format:
    - learning_rate: scalar learning rate (default 1e-2)
    - epsilon: small scalar used for smoothing to avoid dividing by zero (default 1e-8)
    - cache: the running sum of squared gradients (default zeros)
    """
    w, dw, config, hyper = _configured("adagrad", w, dw, config, {"learning_rate": 1e-2, "epsilon": 1e-8}, ("cache",))
    cache = np.asarray(config["cache"] + dw * dw)
    next_w = np.asarray(w - hyper["learning_rate"] * dw / (np.sqrt(cache) + hyper["epsilon"]))
    config["cache"] = cache
    return next_w, config


def rmsprop(w, dw, config=None):
    """RMSProp: a moving average of squared gradients sets per-parameter learning rates.

        cache = decay_rate * cache + (1 - decay_rate) * dw**2
        next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)

    config format:
    - learning_rate: scalar learning rate (default 1e-2)
    - decay_rate: scalar between 0 and 1 giving the decay rate for the squared gradient cache (default 0.99)
    - epsilon: small scalar used for smoothing to avoid dividing by zero (default 1e-8)
    - cache: moving average of second moments of gradients (default zeros)
    """
    w, dw, config, hyper = _configured("rmsprop", w, dw, config,
                                       {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}, ("cache",))
    decay = hyper["decay_rate"]
    cache = np.asarray(decay * config["cache"] + (1 - decay) * (dw * dw))  # the square first, as dw**2
    next_w = np.asarray(w - hyper["learning_rate"] * dw / (np.sqrt(cache) + hyper["epsilon"]))
    config["cache"] = cache
    return next_w, config


def adam(w, dw, config=None):
    """Adam: moving averages of the gradient and its square, with bias correction.

        t += 1                                  (before use, as the 2018+ starter fixes it)
        m = beta1 * m + (1 - beta1) * dw
        v = beta2 * v + (1 - beta2) * dw**2
        next_w = w - learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + epsilon)

    config format:
    - learning_rate: scalar learning rate (default 1e-3)
    - beta1: decay rate for the moving average of the first moment of the gradient (default 0.9)
    - beta2: decay rate for the moving average of the second moment of the gradient (default 0.999)
    - epsilon: small scalar used for smoothing to avoid dividing by zero (default 1e-8)
    - m: moving average of the gradient (default zeros)
    - v: moving average of the squared gradient (default zeros)
    - t: iteration number (default 0)
    """
    defaults = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    backend = _backend()  # before the config is filled in: a 'jit' without kernels is a refused call
    w, dw, config, hyper = _configured("adam", w, dw, config, defaults, ("m", "v"), step_count=True)
    beta1, beta2, lr, eps = hyper["beta1"], hyper["beta2"], hyper["learning_rate"], hyper["epsilon"]
    t = int(config["t"]) + 1

    def reference(w, dw, m, v):
        m = np.asarray(beta1 * m + (1 - beta1) * dw)
        v = np.asarray(beta2 * v + (1 - beta2) * (dw * dw))  # the square first, as dw**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        return np.asarray(w - lr * m_hat / (np.sqrt(v_hat) + eps)), m, v

    def compiled(w, dw, m, v):
        return _adam_kernel(w, dw, m, v, beta1, beta2, lr, eps, t)

    if backend == "verify":  # both, each result against its own scale (raises VerificationError)
        from ._dispatch import _verify

        def with_step(update):  # the step as a result of its own: next_w is of w's scale, where a step 5% long hid
            def run(w, dw, m, v):
                next_w, m, v = update(w, dw, m, v)
                return next_w, next_w - w, m, v
            return run

        next_w, _, m, v = _verify("adam", with_step(reference), with_step(compiled), (w, dw, config["m"], config["v"]),
                                  direction="update")
    else:
        next_w, m, v = (compiled if backend in ("auto", "jit") else reference)(w, dw, config["m"], config["v"])
    config["t"], config["m"], config["v"] = t, m, v
    return next_w, config


def _backend():
    """The backend for adam's step: as the layers, 'auto' and 'verify' run the reference alone, with the layers'
    warning, where the compiled kernels cannot be imported (numba missing or broken); 'jit' says why it cannot."""
    from . import _dispatch
    from ._options import current

    backend = current().backend
    if backend != "reference" and _dispatch._compiled() is None:
        if backend == "jit":
            raise NotImplementedError(f"adam: the compiled kernels failed to import ({_dispatch._compiled_failed}); "
                                      "use fastnn.options(backend='auto') to fall back to the NumPy reference")
        _dispatch._warn_fallback_once(_dispatch._compiled_failed)
        return "reference"
    return backend


def _adam_kernel(w, dw, m, v, beta1, beta2, lr, eps, t):
    """The same update in one pass (fastnn.kernels.optim.adam); new arrays, nothing written in place."""
    from ._options import current
    from .kernels import optim as K
    from .kernels._jit import variant

    m_in = np.ascontiguousarray(m, dtype=w.dtype)  # native byte order: numba compiles no other
    v_in = np.ascontiguousarray(v, dtype=w.dtype)
    next_w, m, v = np.empty_like(w), np.empty_like(w), np.empty_like(w)
    variant(K.adam, current().parallel)(w.reshape(-1), dw.reshape(-1), m_in.reshape(-1), v_in.reshape(-1), beta1,
                                        beta2, lr, eps, 1 - beta1**t, 1 - beta2**t, next_w.reshape(-1),
                                        m.reshape(-1), v.reshape(-1))
    return next_w, m, v
