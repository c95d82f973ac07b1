"""Inverted dropout with a counter-based mask, pure NumPy.

p is the KEEP probability (CS231n 2018+). The mask of element i (flat C order) is a pure function of a 64-bit
key and i — splitmix64 over (key, i) — so the compiled kernel reproduces it bit for bit at any thread count.
The key is dropout_param['seed'] when given (numpy's global RNG is not touched, unlike the starter, which
reseeds it on every call), else one draw from numpy's global RNG, so np.random.seed makes runs repeatable.
"""

import numpy as np

__all__ = ["dropout_forward", "dropout_backward", "dropout_key", "dropout_keep_mask"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_MINUS_53 = 2.0**-53


def _mix(z):
    """splitmix64's finaliser on uint64 values (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def dropout_key(dropout_param):
    """The 64-bit mask key: the seed if given (mod 2**64), else one draw from numpy's global RNG."""
    if "seed" in dropout_param and dropout_param["seed"] is not None:
        return int(dropout_param["seed"]) % 2**64
    return int(np.random.randint(0, 2**63 - 1, dtype=np.int64))


def dropout_keep_mask(key, shape, p):
    """Bool mask of `shape`: element i is kept when u_i < p, u_i = (mix(mix(key) + (i+1)*golden) >> 11) * 2**-53."""
    with np.errstate(over="ignore"):
        base = _mix(np.array(key, dtype=np.uint64))
        index = np.arange(1, int(np.prod(shape)) + 1, dtype=np.uint64)
        z = _mix(base + index * _GOLDEN)
    u = (z >> np.uint64(11)).astype(np.float64) * _TWO_POW_MINUS_53
    return (u < p).reshape(shape)


def dropout_forward(x, dropout_param):
    """Inverted dropout.

    Inputs:
    - x: any shape
    - dropout_param: 'p' keep probability in (0, 1], 'mode' ('train' or 'test'), optional 'seed'.

    Returns a tuple of:
    - out: train: x / p where kept, else 0 (x.dtype); test: x itself
    - cache: (dropout_param, mask), mask a bool keep-mask (None in test mode)
    """
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "train":
        mask = dropout_keep_mask(dropout_key(dropout_param), x.shape, p)
        out = np.where(mask, x / x.dtype.type(p), x.dtype.type(0))
    elif mode == "test":
        mask, out = None, x
    else:
        raise ValueError('Invalid forward dropout mode "%s"' % mode)
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    """Inputs: dout (shape of x), cache (dropout_param, mask). Returns dx: dout / p where kept (train), dout (test)."""
    dropout_param, mask = cache
    if dropout_param["mode"] == "train":
        return np.where(mask, dout / dout.dtype.type(dropout_param["p"]), dout.dtype.type(0))
    return dout
