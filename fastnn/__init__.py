"""fastnn: the CS231n layer API, compiled with Numba, checked against a NumPy reference.

`import fastnn` imports NumPy and nothing slow; kernels compile lazily on first use (or in `warmup()`). Its
modules are attributes too, imported on first use: `fastnn.allocator.keep_freed_memory()` needs no import of
its own.
"""

import importlib

from . import _forked  # noqa: F401  (importing it watches for a fork after numba's threads started)
from ._dispatch import VerificationError
from ._options import BACKENDS, options

__version__ = "0.1.0"

__all__ = ["options", "num_threads", "warmup", "VerificationError", "BACKENDS", "__version__"]

# layers binds fast_layers and layer_utils at its end; importing it here first keeps that order whichever
# fastnn module a user imports first. It imports NumPy only.
from . import layers as _layers  # noqa: E402,F401


def num_threads(n=None):
    """Numba's thread count for fastnn's kernels: num_threads() reads it; `with num_threads(n):` sets it
    inside the block and restores it afterwards (also when the block raises)."""
    from .kernels._threads import num_threads as _num_threads

    return _num_threads(n)


def warmup(dtypes=("float32", "float64"), ops=None):
    """Compile the kernels for `dtypes` (and only `ops`, a list of family names among "affine", "activations",
    "conv", "pool", "norm", "dropout", "losses", "fused" and "optim", if given) on tiny inputs, so the first
    real call does not pay the compile time. Returns the seconds it took."""
    from .compiled._warmup import warmup as _warmup

    return _warmup(dtypes=dtypes, ops=ops)


# The public modules, imported when first named as fastnn.<name> (PEP 562), so `import fastnn` stays light.
SUBMODULES = ("allocator", "checkpoint", "classifiers", "data_utils", "fast_layers", "gradient_check", "init",
              "layer_utils", "layers", "optim", "plots", "reference", "sanity", "solver", "testing", "transfer",
              "tune", "vis_utils", "bench")


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBMODULES))
