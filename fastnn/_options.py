"""Library-wide settings: which backend runs the layers, and how kernels are compiled.

Read from the environment (FASTNN_BACKEND, FASTNN_CACHE, FASTNN_PARALLEL, FASTNN_WINOGRAD) when first consulted,
not at import (a bad value raises then, and a setting made in code first never reads its variable), then settable
in code:

    fastnn.options()                       # the current settings
    fastnn.options(backend="reference")    # set them for the rest of the process
    with fastnn.options(backend="verify"): # ... or only inside the block
        ...
"""

import contextvars
import os
import threading
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

from ._forked import in_child

BACKENDS = ("auto", "jit", "reference", "verify")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """A snapshot of fastnn's settings.

    - backend: 'auto' runs a compiled kernel where one exists and the NumPy reference otherwise; 'jit' runs
      only kernels and raises where none exists; 'reference' runs only the NumPy reference and compiles
      nothing; 'verify' runs both and raises on disagreement beyond the tolerance table.
    - cache: numba's on-disk cache of compiled kernels (FASTNN_CACHE=1). Fixed when the kernels are first
      imported (the first compiled layer, optimizer step or fastnn.warmup(): they are decorated with it);
      changing it later warns and changes nothing.
    - parallel: multi-threaded kernels (FASTNN_PARALLEL=0 selects the serial ones).
    - winograd: 3x3 stride-1 convolutions on the compiled path as Winograd F(4x4, 3x3) where it pays
      (FASTNN_WINOGRAD=0: im2col for every geometry, slower, with each output's rounding error that of its own
      window rather than one scaled by the largest entry of its 6x6 tile).
    """

    backend: str = "auto"
    cache: bool = False
    parallel: bool = True
    winograd: bool = True


def _env_flag(name, default):
    raw = os.environ.get(name)
    if raw is None or not raw.strip():  # set but empty (FASTNN_PARALLEL=): the default, as for FASTNN_BACKEND
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"fastnn.options: environment variable {name}={raw!r} is not a boolean; "
        "use 1, true, yes or on for True, 0, false, no or off for False, or leave it empty for the default"
    )


def _env_backend():
    raw = os.environ.get("FASTNN_BACKEND")
    backend = (raw or "").strip().lower() or "auto"
    if backend not in BACKENDS:
        raise ValueError(
            f"fastnn.options: environment variable FASTNN_BACKEND={raw!r} is an unknown backend; "
            f"choose one of {', '.join(BACKENDS)}"
        )
    return backend


def _validated(settings):
    if settings.backend not in BACKENDS:
        raise ValueError(
            f"fastnn.options: unknown backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    for name in (f.name for f in fields(Settings) if f.type is bool):
        if not isinstance(getattr(settings, name), bool):
            raise TypeError(f"fastnn.options: {name} must be True or False, got {getattr(settings, name)!r}")
    return settings


_FROM_ENVIRONMENT = {
    "backend": _env_backend,
    "cache": lambda: _env_flag("FASTNN_CACHE", False),
    "parallel": lambda: _env_flag("FASTNN_PARALLEL", True),
    "winograd": lambda: _env_flag("FASTNN_WINOGRAD", True),
}

_lock = threading.RLock()
_known = {}  # the process's settings (what plain calls set), by name; a name not here is read from the environment
# when first needed, so a bad variable raises on use, not on import, and never once the name is set in code
_base = None  # Settings(**_known) once every name is known
_setters = {}  # name -> weakref to the options() call that last set it in _known (see options.__init__)
_blocks = ()  # [options, changes, thread] of each open `with` block, in the order entered: the settings each one
# makes (a dict), over the process's (a tuple, replaced whole under the lock)
_UNSET = object()  # a block's setting that was not set
_merged = None  # the settings in force, once worked out: the process's with each open block's changes on top, in
# the order entered; None when a change has made it stale (current() reads it without the lock)


@in_child
def _fresh_lock():
    """A forked child keeps the settings in force at the fork, every thread's open blocks included (they never end
    there: a pool's workers run under the block its map was called in, whichever thread forks them), but gets a
    fresh lock: another thread may have held this one at the fork, and the child hung at its first options().
    The lock is not held across the fork instead: code under it may warn, and a warning can take logging's lock,
    which logging holds across a fork, so a fork and a warning deadlocked."""
    global _lock
    _lock = threading.RLock()
    _set_base()  # worked out again here: another thread may have been between changing them and marking them stale


def _set_base(**values):
    """Set process settings (under _lock); a value of None forgets the name, to be read from the environment."""
    global _base, _merged
    _merged = None
    for name, value in values.items():
        if value is None:
            _known.pop(name, None)
        else:
            _known[name] = value
    _base = Settings(**_known) if len(_known) == len(_FROM_ENVIRONMENT) else None


def _process_settings(given=None):
    """The process's Settings: the names set in code, the others read from the environment (raising on a bad
    value); a name in the dict `given` takes its value from there and reads nothing."""
    base = _base
    if base is not None and not given:
        return base
    given = given or {}
    with _lock:
        missing = [name for name in _FROM_ENVIRONMENT if name not in _known and name not in given]
        _set_base(**{name: _FROM_ENVIRONMENT[name]() for name in missing})
        return Settings(**{**_known, **given})


_cache_fixed = None  # the cache setting the kernels were decorated with, once they were


def fix_cache():
    """The `cache` setting in force, fixed from now on for the process (also once a block that set it has ended):
    kernels/_jit.py calls it when the kernels are first imported. Reads only FASTNN_CACHE, and only when the
    setting was not made in code."""
    global _cache_fixed
    with _lock:
        set_by_block = [changes["cache"] for _, changes, _ in _blocks if "cache" in changes]
        if set_by_block:
            _cache_fixed = set_by_block[-1]
        elif "cache" in _known:
            _cache_fixed = _known["cache"]
        else:
            _cache_fixed = _FROM_ENVIRONMENT["cache"]()
        _set_base(cache=_cache_fixed)
        return _cache_fixed


def _cache_too_late(changes):
    """Warn of a cache change made after the kernels were set up; True when there was one (it is dropped)."""
    if "cache" in changes and _cache_fixed is not None and changes["cache"] != _cache_fixed:
        warnings.warn(
            f"fastnn.options: cache={changes['cache']} changes nothing now: the kernels were set up with "
            f"cache={_cache_fixed} when they were first imported (the first compiled layer, optimizer step or "
            "fastnn.warmup()); set it (or FASTNN_CACHE) before that",
            RuntimeWarning,
            stacklevel=3,
        )
        return True
    return False


def current():
    """The settings in force (a frozen Settings): the process's with every open block's changes on top; with the
    backend of an enclosing `backend_here` of this thread."""
    settings = _merged or _merge()
    here = _backend_here.get()
    return settings if here is None else replace(settings, backend=here)


def _merge(given=None):
    """The process's settings with every open block's changes on top, in the order the blocks were entered; a
    name some block sets, or the dict `given` names, is not read from the environment (given's values show where
    no block sets the name; only the settings without one are kept as the ones in force)."""
    global _merged
    with _lock:
        made = {k: v for _, changes, _ in _blocks for k, v in changes.items()}
        settings = replace(_process_settings({**made, **(given or {})}), **made)
        if not given:
            _merged = settings
        return settings


_backend_here = contextvars.ContextVar("fastnn_backend_here", default=None)


@contextmanager
def backend_here(backend):
    """`backend` for this thread (and context) alone inside the block, whatever options() says: fastnn.warmup()
    compiles through the layers without changing, for the duration, which path every other thread takes (nor
    can another thread's `with options(...)` turn its compiling into reference calls)."""
    token = _backend_here.set(backend)
    try:
        yield
    finally:
        _backend_here.reset(token)


def carried():
    """The settings in force that another process running this one's work takes on (tune's workers), by name:
    every setting but `cache`, which each process fixes when it first imports its kernels."""
    settings = current()
    return {f.name: getattr(settings, f.name) for f in fields(Settings) if f.name != "cache"}


class options:
    """Read or change fastnn's settings; usable as a context manager.

    options() -> the current settings (attributes backend, cache, parallel, winograd).
    options(backend='jit') -> sets them now for the process; inside a `with` block of the calling thread, until
    that block ends.
    with options(backend='jit'): -> in force until the block ends, then the settings from before it.
    The settings are process-wide: an open block applies to every thread. The settings in force are the
    process's with the changes of every open block on top, in the order the blocks were entered; a block's end
    removes its own changes and no other block's, whichever thread opened it.
    Unknown names raise TypeError, unknown backends ValueError.
    """

    def __init__(self, **changes):
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"fastnn.options: unknown setting(s) {unknown}; known: {sorted(known)}")
        if "backend" in changes and isinstance(changes["backend"], str):
            changes["backend"] = changes["backend"].lower()
        thread = threading.get_ident()
        with _lock:
            # a name set here is not read from the environment (a bad FASTNN_BACKEND does not stop backend='jit')
            in_force = _merge(changes)
            self._settings = _validated(replace(in_force, **changes)) if changes else in_force
            if _cache_too_late(changes):  # options() goes on showing the cache the kernels use
                changes = {name: value for name, value in changes.items() if name != "cache"}
                self._settings = replace(self._settings, cache=_cache_fixed)
            # Applied now, as a plain call must be: to this thread's innermost open block, else to the process.
            # A `with` takes it back in __enter__ (only the fields changed here) and opens a block of its own.
            self._undo, self._changes = None, changes
            if changes:
                mine = [block for block in _blocks if block[2] == thread]
                if mine:
                    block = mine[-1]
                    self._undo = (block, {k: block[1].get(k, _UNSET) for k in changes})
                    block[1] = {**block[1], **changes}
                    _set_base()  # makes the merged settings stale
                else:
                    # The value and the call it replaces, for __enter__ to take back (see _take_back).
                    self._previous = {k: (_known.get(k), _setters.get(k)) for k in changes}
                    self._undo = (None, self._previous)
                    _set_base(**changes)
                    _setters.update(dict.fromkeys(changes, weakref.ref(self)))

    def __getattr__(self, name):
        return getattr(self._settings, name)

    def __enter__(self):
        global _blocks
        with _lock:
            if self._undo is not None:
                block, previous = self._undo
                if block is None:
                    self._take_back(previous)
                else:  # this thread's own block: no other thread changes it
                    restored = dict(block[1])
                    for k, before in previous.items():
                        if restored.get(k, _UNSET) == getattr(self._settings, k):  # not set again since
                            if before is _UNSET:
                                restored.pop(k, None)
                            else:
                                restored[k] = before
                    block[1] = restored
                self._undo = None
            _blocks = _blocks + ([self, dict(self._changes), threading.get_ident()],)
            _set_base()  # makes the merged settings stale
        return self._settings

    def _take_back(self, previous):
        """Each process setting this call made, back as it was before it. Where another call has set it since,
        that call (or the one after it) would take it back to this call's value: it is told the value before this
        call instead, so this call is gone from the chain. Interleaved `with options(...)` of two threads left
        the first one's setting in force for good. A call that has been dropped (a plain call's result) can no
        longer be entered, and ends the chain: its value stands."""
        # By identity: weak references to two live calls compare by the calls' __eq__, that is by their settings,
        # and a block of the same settings as this one was taken for it.
        def is_me(ref):
            return ref is not None and ref() is self

        for name, (value, setter) in previous.items():
            latest = _setters.get(name)
            if is_me(latest):
                _set_base(**{name: value})
                _setters[name] = setter
                continue
            call = latest() if latest is not None else None
            while call is not None:
                before, by = call._previous[name]
                if is_me(by):
                    call._previous[name] = (value, setter)
                    break
                call = by() if by is not None else None

    def __exit__(self, *exc_info):
        global _blocks
        with _lock:
            mine = [i for i, block in enumerate(_blocks) if block[0] is self]
            if mine:
                _blocks = _blocks[:mine[-1]] + _blocks[mine[-1] + 1:]
                _set_base()  # makes the merged settings stale
        return False

    def __eq__(self, other):
        return self._settings == (other._settings if isinstance(other, options) else other)

    def __repr__(self):
        s = self._settings
        return (f"fastnn.options(backend={s.backend!r}, cache={s.cache}, parallel={s.parallel}, "
                f"winograd={s.winograd})")


_input_gradient = contextvars.ContextVar("fastnn_input_gradient", default=True)


def input_gradient_wanted():
    """False inside `input_gradient(False)`: the backward need not compute dx."""
    return _input_gradient.get()


@contextmanager
def input_gradient(wanted):
    """`with input_gradient(False):` the GEMM-based backwards (affine, conv fast, the fused sandwiches) return
    dx = None instead of computing it. The models use it for their first layer, whose dx (the gradient of the
    input images) they discard; PyTorch likewise skips the gradient of data. dw, db are unchanged."""
    token = _input_gradient.set(bool(wanted))
    try:
        yield
    finally:
        _input_gradient.reset(token)
