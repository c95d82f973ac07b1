"""Where a command's run writes: a directory it claims for itself and never shares with an earlier run.

Without --out a run takes the first of ./<default>, ./<default>-2, ... that holds no run; an --out that holds one
is refused unless --overwrite, and one that holds another command's run (train's, tune's) always. `fastnn train`
sets the earlier run's files aside (set_aside) while it trains and drops them only once it has finished; a run
that stops early (a diverged loss, an error, Ctrl-C, SIGTERM) puts them back (restore). `fastnn tune` writes
nothing before its search is done; it then saves into a hidden subdirectory, sets the earlier files aside and
moves the new ones in (commands/tune.py).
A run claims its directory with a file made exclusively and locked before it appears (two runs started together
both found the default directory free before either had written anything, and the second wrote over the first);
an --overwrite run takes the earlier run's claim file by its lock. The claim file stays once the run ends; while
a run is going it holds the lock (hold), so that a --resume or an --overwrite of a run still going is refused.
"""

import errno
import os
import threading
from contextlib import contextmanager

from .._signals import deferred


def claim_name(command):
    return f".fastnn-{command}"


CLAIMING_COMMANDS = ("train", "tune")
# Files each command's run writes, which together mark a run whose claim file is gone (copied with `cp dir/*`)
RUN_MARKS = {"train": ("fastnn-run.json",), "tune": ("results.json", "results.csv")}


def other_commands_claim(directory, command):
    """(the other command, its claim file or, without one, its marks) for a run of another command in
    `directory` (train's in a tune --out, say), else None: runs of two commands never share a directory, even
    with --overwrite, which replaces only a run of its own command."""
    for other in CLAIMING_COMMANDS:
        if other == command:
            continue
        if os.path.lexists(os.path.join(directory, claim_name(other))):
            return other, claim_name(other)
        if all(os.path.lexists(os.path.join(directory, name)) for name in RUN_MARKS[other]):
            return other, " and ".join(RUN_MARKS[other])
    return None


def earlier_run(directory, command, is_output):
    """The files of an earlier (or running) run of `command` in `directory` (none when it does not exist)."""
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if name == claim_name(command) or is_output(name))


_created = {}  # abspath of a claimed directory -> the directories its claim created, deepest first
_held = {}  # abspath of a directory this process claimed -> its claim file, open and locked from the claim on


def _claim(directory, command, earlier_claim=False):
    """Create `directory` if needed and claim it, locked at once; False when another run holds it. With
    earlier_claim (--overwrite) the earlier run's claim file becomes this run's: taken by its lock, never removed
    and made anew (a second --overwrite then removed the first's claim, and later its own release removed the
    claim of the run that had won). A directory that cannot be created or written is the user's error: a
    message, not a traceback."""
    directory = os.path.abspath(directory)  # so that makedirs creates exactly the `missing` ones (no a/../b)
    missing, d = [], directory
    while not os.path.lexists(d):
        missing.append(d)
        d = os.path.dirname(d)
    if os.path.islink(directory) and not os.path.exists(directory):
        loop = False
        try:
            os.stat(directory)
        except OSError as error:
            loop = error.errno == errno.ELOOP
        why = "a symlink loop (it leads back to itself)" if loop else "a symlink to nothing (its target does not exist)"
        raise SystemExit(f"fastnn {command}: {directory!r} is {why}")
    path = os.path.join(directory, claim_name(command))
    try:
        os.makedirs(directory, exist_ok=True)
        claim, locked = _open_locked(path, take=earlier_claim) if earlier_claim else _create_locked(path)
    except FileExistsError:
        return False
    except OSError as error:
        _remove_empty(missing)
        raise SystemExit(f"fastnn {command}: cannot write to {directory!r} ({error.strerror})") from error
    if locked is False:  # --overwrite: the earlier run is still going
        raise SystemExit(f"fastnn {command}: a run is still writing to {directory!r}; wait for it to end (or "
                         "stop it) first")
    _created[directory] = missing
    claim.truncate(0)
    claim.write(f"fastnn {command}, process {os.getpid()}\n")
    claim.flush()
    if locked:
        _held[directory] = claim
    else:
        claim.close()
    return True


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a claim file that is a symlink is refused, never written through


def _create_locked(path):
    """(file, locked): a new claim file at `path`, locked before it appears there (made and locked under a
    temporary name, then hard-linked into place, which fails with FileExistsError if `path` exists): no other
    process can lock it first, leaving this one without its claim and the file without an owner. Where the file
    system has no hard links, it is created in place with O_EXCL."""
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW, 0o666)
    claim = os.fdopen(fd, "w")
    try:
        locked = _lock(claim)
        os.link(temporary, path)
    except FileExistsError:
        claim.close()
        raise
    except OSError as error:
        claim.close()
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        return os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW, 0o666), "w"), None
    finally:
        os.unlink(temporary)
    return claim, locked


ATTEMPTS = 5  # _open_locked's tries at a claim file that is replaced while it locks it


def _open_locked(path, take=False):
    """(file, locked) for the claim file at `path`, opened (created if missing, with take) and locked: True,
    False when another process holds it, None where there is no flock. A lock taken on a file that its owner
    removed meanwhile (its run released the directory) is not the claim: it is taken again on what is there, a
    few times (a file system whose inode numbers are not stable would otherwise never let it end)."""
    flags = os.O_WRONLY | os.O_APPEND | NOFOLLOW | (os.O_CREAT if take else 0)
    for attempt in range(ATTEMPTS):
        claim = os.fdopen(os.open(path, flags, 0o666), "a")
        locked = _lock(claim)
        if not locked or attempt == ATTEMPTS - 1 or _same_file(claim, path):
            if locked is False:
                claim.close()
            return claim, locked
        claim.close()


def _same_file(f, path):
    try:
        here, there = os.fstat(f.fileno()), os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _lock(f):
    """Lock the open file f without waiting: True; False when another process holds it; None where there is no
    flock (not POSIX; a file system without it, as NFS without lockd: runs there are not told apart)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, ENOSYS, EOPNOTSUPP
        return None
    return True


def _remove_empty(directories):
    """Remove these directories, deepest first, while they are empty (one that does not exist is passed over)."""
    for d in directories:
        if not os.path.isdir(d):
            continue
        if os.listdir(d):
            return
        os.rmdir(d)


def output_directory(command, out, overwrite, default, is_output):
    """(directory, earlier): the directory this run writes to, claimed for it, and the files of an earlier run
    in it (only with overwrite; without it such a directory is refused), which the caller removes once the new
    run is set to write."""
    where = f"fastnn {command}"
    if out == "":
        raise SystemExit(f"{where}: --out must name a directory, got an empty string")
    if out is None:
        if overwrite:
            raise SystemExit(f"{where}: --overwrite needs --out (without it a run takes a new directory)")
        out, n = default, 2
        while earlier_run(out, command, is_output) or other_commands_claim(out, command) or not _claim(out, command):
            out, n = f"{default}-{n}", n + 1
        return out, []
    if os.path.exists(out) and not os.path.isdir(out):
        raise SystemExit(f"{where}: --out {out!r} is a file, not a directory")
    other = other_commands_claim(out, command)
    if other:
        other_command, shown = other
        raise SystemExit(f"{where}: --out {out!r} holds a run of fastnn {other_command} ({shown}); choose "
                         f"another --out (--overwrite replaces only an earlier run of fastnn {command})")
    earlier = earlier_run(out, command, is_output)
    if earlier:  # a run still going is no earlier run (--overwrite, suggested below, would be refused)
        _refuse_a_live_run(out, command)
    if earlier and not overwrite:
        shown = ", ".join(earlier[:4]) + (", ..." if len(earlier) > 4 else "")
        raise SystemExit(f"{where}: --out {out!r} holds an earlier run ({shown}); choose another --out or pass "
                         "--overwrite to replace it")
    if overwrite:
        refuse_a_run_left_aside(out, command)
        # a directory of an output's name is no earlier run's file: set aside, it could not be removed at the end
        refuse_directories_in_the_way(f"{where}: --overwrite", out, earlier)
    if not _claim(out, command, earlier_claim=claim_name(command) in earlier):
        raise SystemExit(f"{where}: another run claimed --out {out!r} just now; choose another --out")
    return out, [name for name in earlier if name != claim_name(command)]


def refuse_directories_in_the_way(where, directory, names):
    """Refuse `directory` when any of `names` in it (files a run writes) is a directory."""
    blocking = sorted(name for name in names if os.path.isdir(os.path.join(directory, name)))
    if blocking:
        raise SystemExit(f"{where}: --out {directory!r} holds directories where the run writes files: "
                         f"{', '.join(blocking)}; move them away")


def aside_name(command):
    return f".fastnn-{command}-earlier"


def refuse_a_run_left_aside(directory, command):
    """A set-aside subdirectory left by a run that was killed is the user's to sort out, never overwritten."""
    if os.path.lexists(os.path.join(directory, aside_name(command))):
        raise SystemExit(f"fastnn {command}: --out {directory!r} holds {aside_name(command)}, an earlier run set "
                         "aside by an --overwrite run that was killed: move its files back (or delete it) first")


def set_aside(directory, command, names):
    """--overwrite: move the earlier run's files into a hidden subdirectory while the new run writes; returns it
    (None when there are none). A subdirectory left by a run that was killed is refused, not overwritten."""
    if not names:
        return None
    aside = os.path.join(directory, aside_name(command))
    try:
        os.mkdir(aside)
    except FileExistsError:
        refuse_a_run_left_aside(directory, command)
    moved = []
    try:
        # A Ctrl-C or SIGTERM between a move and its note left the earlier run split in two: held back, it comes
        # once every file has moved, and then they all go back.
        with deferred():
            for name in names:
                os.replace(os.path.join(directory, name), os.path.join(aside, name))
                moved.append(name)
    except BaseException as error:  # put back what moved, so the earlier run is never left split in two
        with deferred():
            for name in moved:
                os.replace(os.path.join(aside, name), os.path.join(directory, name))
            os.rmdir(aside)  # the claim stays: --out holds a run, the earlier one
        if isinstance(error, OSError):
            raise SystemExit(f"fastnn {command}: cannot set the earlier run in --out {directory!r} aside "
                             f"({error.strerror}: {error.filename!r}); it is left as it was") from error
        raise
    return aside


def restore(directory, aside, is_output):
    """Undo set_aside for a run that did not finish: its own outputs go and the earlier run's come back (a second
    Ctrl-C or SIGTERM meanwhile waits until it has)."""
    with deferred():
        for name in os.listdir(directory):
            if is_output(name):
                os.remove(os.path.join(directory, name))
        for name in os.listdir(aside):
            os.replace(os.path.join(aside, name), os.path.join(directory, name))
        os.rmdir(aside)


def drop(aside):
    """The new run finished: the earlier run's files set aside go (a Ctrl-C or SIGTERM meanwhile waits: cut
    half-way, it left a finished run beside part of the earlier one)."""
    if aside is not None:
        with deferred():
            remove(aside, os.listdir(aside))
            os.rmdir(aside)


def remove(directory, names):
    """Remove these files of `directory` (an earlier run's, once the new run is done with them)."""
    for name in names:
        os.remove(os.path.join(directory, name))


def release(directory, command):
    """Undo the claim of a run that wrote nothing: the claim goes, and so do the directories the claim created
    if nothing else is in them (a directory the user made stays)."""
    os.remove(os.path.join(directory, claim_name(command)))
    let_go(_held.pop(os.path.abspath(directory), None))
    _remove_empty(_created.pop(os.path.abspath(directory), []))


@contextmanager
def released_if_it_fails(directory, command, earlier):
    """Inside the block a run writes nothing yet: if it raises (Ctrl-C included), the claim is released, unless
    the directory holds an earlier run of the command (`earlier`, with --overwrite), whose claim stays."""
    try:
        yield
    except BaseException:
        if not earlier:
            release(directory, command)
        raise


@contextmanager
def running(directory, command, just_claimed=False, mark_claimed=False):
    """Hold `directory` while a run writes to it (hold, let_go): the lock this process took with its claim, or
    one taken now (--resume). just_claimed: the run claimed it a moment ago, and a failure here undoes that claim.
    mark_claimed: a directory whose run lost its claim file (it was copied without it) gets one, so that it is
    held as well."""
    try:
        lock = hold(directory, command, create=mark_claimed)
    except BaseException:
        if just_claimed:
            release(directory, command)
        raise
    try:
        yield
    finally:
        let_go(lock)


def hold(directory, command, create=False):
    """An exclusive lock on the directory's claim file, which the system drops when the process ends however it
    ends (no stale marker after a kill): a --resume or --overwrite of a run still going finds it taken and is
    refused. Returns the open, locked file (the one this process took when it claimed the directory; None where
    the file system or platform has no flock). create: make the claim file if it is missing (otherwise a --resume
    of a directory that is no run, or another command's, would leave one)."""
    held = _held.get(os.path.abspath(directory))
    if held is not None and not held.closed:
        return held
    try:
        lock, locked = _open_locked(os.path.join(directory, claim_name(command)), take=create)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SystemExit(f"fastnn {command}: cannot write to {directory!r} ({error.strerror})") from error
    if locked is False:
        raise SystemExit(f"fastnn {command}: a run is still writing to {directory!r}; wait for it to end (or "
                         "stop it) first")
    if not locked:
        lock.close()
    return lock if locked else None


def let_go(lock):
    if lock is not None:
        lock.close()
        for directory, held in list(_held.items()):
            if held is lock:
                del _held[directory]


def _refuse_a_live_run(directory, command):
    """A directory whose run is still going is refused (its claim file is locked)."""
    if os.path.isfile(os.path.join(directory, claim_name(command))):
        let_go(hold(directory, command))
