"""The dask client of a search: one given, one connected to a scheduler's address (refusing, by name and within a
timeout, an address that is no dask scheduler), or a LocalCluster started and closed around the search.
"""

import contextlib
import gc
import logging
import signal
import threading

from .. import _checks as check
from .._cpus import available_cpus

CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before giving up (dask's own default is 30)
KEEP_NANNIES = "30 days"  # the LocalCluster's lost-worker-timeout: longer than any search


def _distributed(fn):
    try:
        import distributed
    except ImportError as error:
        raise ImportError(f"{fn} runs on dask.distributed, which is not installed: pip install 'fastnn[tune]'") \
            from error
    return distributed


@contextlib.contextmanager
def connect(client=None, n_workers=None, fn="random_search"):
    """A dask client for the search: `client` itself; a Client connected to `client` when it is an address
    ('tcp://host:8786'); else a LocalCluster of `n_workers` processes (default: the CPUs this process may use) with one
    thread each, no dashboard and quiet logs. Clients and clusters started here are closed on exit."""
    if client is not None and not isinstance(client, str):
        if not (hasattr(client, "submit") and hasattr(client, "scatter")):
            check.fail(fn, f"client must be a distributed.Client or a scheduler address, got {client!r}", TypeError)
        if n_workers is not None:
            check.fail(fn, "n_workers applies only to the LocalCluster started when client is None")
        yield client
        return
    distributed = _distributed(fn)
    if isinstance(client, str):
        if n_workers is not None:
            check.fail(fn, "n_workers applies only to the LocalCluster started when client is None")
        with client_at(fn, client) as connected:
            yield connected
        return
    if n_workers is None:
        n_workers = available_cpus()
    n_workers = check.integer(fn, "n_workers", n_workers, minimum=1)
    with contextlib.ExitStack() as stack:
        stack.callback(logging.disable, logging.root.manager.disable)  # runs last, once the cluster is closed
        stack.enter_context(_nannies_kept())
        stack.enter_context(_logs_quiet())
        try:
            with _sigint_blocked():
                # No dashboard; the scheduler's HTTP endpoints (always served) on a free port, not on a busy 8787.
                # Logs: only what is critical (the workers' errors at shutdown are noise; a trial's are recorded).
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.CRITICAL))
            yield stack.enter_context(distributed.Client(cluster))
        except KeyboardInterrupt:  # closing a cluster amid its tasks logs closed comms and cancelled tasks
            logging.disable(logging.CRITICAL)
            raise


class _WhileAnySearch:
    """A process-wide setting held while any search's LocalCluster runs: the first search to start applies it
    (`apply()` returns what undoes it), the last to end undoes it. Overlapping searches in threads each saving and
    restoring the setting themselves would put back each other's values."""

    def __init__(self, apply):
        self._apply, self._undo, self._users, self._lock = apply, None, 0, threading.Lock()

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            if self._users == 0:
                self._undo = self._apply()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    undo, self._undo = self._undo, None
                    undo()


_LOST_WORKER_TIMEOUT = "distributed.deploy.lost-worker-timeout"


def _keep_nannies():
    """dask's lost-worker-timeout at KEEP_NANNIES. A LocalCluster closes a worker's nanny for good when, that long
    (15 s) after the worker died, no worker of its name is registered: a worker killed again and again by crashing
    trials was caught restarting, and the search was left with no worker."""
    import dask
    import distributed  # noqa: F401  (its import loads the setting's default)

    saved = dask.config.get(_LOST_WORKER_TIMEOUT)
    dask.config.set({_LOST_WORKER_TIMEOUT: KEEP_NANNIES})
    return lambda: dask.config.set({_LOST_WORKER_TIMEOUT: saved})


def _quiet_logs():
    """The distributed and bokeh loggers' stream handlers at CRITICAL, as a LocalCluster's silence_logs sets them.
    Its own setting, and each nanny's, restores the level it found when it closes, which let a second search's logs
    through once the first had ended; held around the cluster, this leaves theirs nothing to change."""
    import distributed  # noqa: F401  (its import configures the handlers)

    changed = [(handler, handler.level) for root in ("distributed", "bokeh")
               for handler in logging.getLogger(root).handlers
               if isinstance(handler, logging.StreamHandler) and handler.level != logging.CRITICAL]
    for handler, _ in changed:
        handler.setLevel(logging.CRITICAL)

    def undo():
        for handler, level in changed:
            handler.setLevel(level)

    return undo


_nannies_kept = _WhileAnySearch(_keep_nannies)
_logs_quiet = _WhileAnySearch(_quiet_logs)


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread while it starts a LocalCluster. The cluster's threads inherit the mask, and
    so do the worker processes they start: a Ctrl-C, which a terminal sends to the whole process group, reaches
    this process alone (each worker printed a KeyboardInterrupt traceback), which then closes the cluster. A
    Ctrl-C meanwhile waits until the cluster is up."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # started later, by the cluster's thread, it would unblock SIGINT there
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _silent(address, timeout):
    """Whether a tcp:// address accepts connections but sends nothing for `timeout` seconds. A dask
    scheduler sends its handshake first; distributed.Client waited for it without end (an HTTP server given as
    --scheduler hung `fastnn tune`). Anything else (no such host, a refusal, a reply) the Client itself reports."""
    import socket

    host_port = _tcp_host_port(address)
    if host_port is None:
        return False
    try:
        probe = socket.create_connection(host_port, timeout=timeout)
    except (OSError, ValueError):  # no answer to the connection itself (a wrong host): not this case
        return False
    with probe:
        try:
            probe.recv(1)
        except socket.timeout:
            return True
        except OSError:
            return False
    return False


def client_at(fn, address, shown=None, timeout=None):
    """A distributed.Client connected to the scheduler at `address` within `timeout` seconds (CONNECT_TIMEOUT by
    default). Anything else is a ConnectionError naming `fn` and the address (as `shown`, default
    "client 'ADDRESS'"), dask's reason, and what to give instead; a ValueError where it is no address at all."""
    distributed = _distributed(fn)
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    shown = shown or f"client {address!r}"
    hint = "give the address a running `dask scheduler` printed, such as tcp://HOST:8786"
    port = (_tcp_host_port(address) or (None, None))[1]
    if port is not None and not 0 < port < 65536:  # dask tried to reach it for the whole timeout
        raise ConnectionError(f"{fn}: {shown} names port {port}, which no TCP port is (1-65535); {hint}")
    if _silent(address, timeout):
        raise ConnectionError(f"{fn}: {shown} accepted a connection but sent nothing in {timeout} s, as a dask "
                              f"scheduler does at once; {hint}")
    try:
        return distributed.Client(address, timeout=timeout)
    except Exception as error:  # ValueError (not an address), OSError (timed out), or a reply that is not dask's
        message = f"{fn}: cannot connect to {shown} ({type(error).__name__}: {error}); {hint}"
        refused = ValueError if isinstance(error, ValueError) else ConnectionError
    # The half-made Client, which the error's traceback held, is collected now: collected later inside another
    # Client's event-loop thread it deadlocked that Client's start (seen in the tests, in one order of files).
    gc.collect()
    raise refused(message)


def _tcp_host_port(address):
    """(host, port) of a tcp address (HOST:PORT is tcp to dask too), or None: another protocol, or no address at
    all (distributed.Client says why)."""
    from distributed.comm import get_address_host_port

    if "://" in address and not address.startswith("tcp://"):
        return None
    try:
        host, port = get_address_host_port(address)
        return host, int(port)
    except (ValueError, TypeError):
        return None
