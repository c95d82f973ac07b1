"""The fastnn command's signals: SIGTERM raised as Terminated (a KeyboardInterrupt) in its own process, and
Ctrl-C and SIGTERM held back across a few steps that must not stop half-way (moving a run's files aside and
back), then delivered."""

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, a batch scheduler, docker stop) in the command's own process: a KeyboardInterrupt,
    so that every clean-up a Ctrl-C runs runs for it too (an --overwrite run puts the earlier run back; killed
    outright, it left that run set aside and its own half-written)."""


def raise_terminated(signum, frame):
    raise Terminated()


def stop_on_sigterm():
    """Make SIGTERM raise Terminated in the main thread, where its default would end the process on the spot;
    returns the handler to put back, or None where SIGTERM was not at its default (ignored, or the caller's)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, raise_terminated)


SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


@contextlib.contextmanager
def deferred():
    """Inside the block, SIGINT and SIGTERM are only noted; when it ends, the first one noted goes to the handler
    it would have met (a Ctrl-C raises KeyboardInterrupt there, after the block). Python-level handlers, so the
    signal is held whichever thread the system gives it to. Off the main thread (where handlers cannot be set) and
    for a signal that is ignored, it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted = []

    def note(signum, frame):
        noted.append(signum)

    previous = {}
    for signum in SIGNALS:
        handler = signal.getsignal(signum)
        if handler not in (signal.SIG_IGN, None):
            previous[signum] = signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if noted:
            handler = previous[noted[0]]
            if callable(handler):
                handler(noted[0], None)
            else:  # SIG_DFL: end the process as the signal would have
                signal.raise_signal(noted[0])
