"""Writing a user's file so that it is never half-written: a temporary file in the same directory, flushed,
fsynced, then renamed over the target. A crash, a full disk or Ctrl-C leaves the previous file or the new one.
A device or FIFO (/dev/null, /dev/stdout, a named pipe) is written in place: renaming over it would replace it
with a regular file (as root, /dev/null itself)."""

import os
import re
import stat
import sys
import tempfile
from contextlib import contextmanager


def check_writable_path(fn, name, path, probe=False):
    """The path as a str; a ValueError naming `fn` and `name` when it names a directory, a FileNotFoundError when
    its directory does not exist. probe: also create and remove a temporary file there, so that a directory the
    process may not write to is found now (PermissionError or the OSError met), not when the file is written."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: {name} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.basename(path) or os.path.isdir(path):
        raise ValueError(f"{fn}: {name} {path!r} names a directory, not a file")
    if writes_in_place(path):
        if probe and not os.access(path, os.W_OK):
            raise PermissionError(f"{fn}: cannot write {name} {path!r} (permission denied)")
        return path
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{fn}: the directory of {name} {path!r} does not exist: {directory!r}")
    if probe:
        fd, temporary = _temporary_file(fn, name, os.path.realpath(path))
        os.close(fd)
        os.remove(temporary)
    return path


_DESCRIPTOR_ALIASES = re.compile(r"^/(dev/(stdin|stdout|stderr|fd/\d+)|proc/(self|\d+)/fd/\d+)$")


def writes_in_place(path):
    """Whether `path` is written in place rather than replaced: an existing file that is not a regular one
    (through symlinks), or a name of an open descriptor (/dev/stdout, /dev/fd/N, /proc/self/fd/N), which may
    stand for a redirected regular file that a rename would cut off from what was printed before."""
    if _names_a_descriptor(path):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # does not exist (yet), or cannot be inspected: the ordinary checks report it
        return False


def _names_a_descriptor(path, hops=40):
    """Whether `path`, or a symlink on the way from it to its target, is a descriptor alias. The final target
    itself will not tell: /dev/stdout resolves to the file stdout is redirected to."""
    path = os.path.abspath(path)
    for _ in range(hops):
        if _DESCRIPTOR_ALIASES.match(path):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return False


def _temporary_file(fn, name, path):
    """(fd, name) of a new temporary file beside `path`; the OSError of a directory that cannot take one names
    `fn` and `name` (mkstemp's own names only the temporary file)."""
    try:
        return tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as e:
        raise type(e)(e.errno, f"{fn}: cannot write {name} {path!r} ({e.strerror})") from e


def _new_file_mode(path):
    """The mode a plain open() would give the file: the existing file's, else 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    try:  # Linux reports the umask without changing it (os.umask would, for every thread, for a moment)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_open(path, mode="wb", fn="write", name="path", **open_kwargs):
    """Open a temporary file for writing; when the block ends without error it replaces `path`.

    On any error (or KeyboardInterrupt) the temporary file is removed and a file already at `path` is left as it
    was. The new file gets the mode open() would have given it (mkstemp's own is 0o600); a symlink at `path` is
    followed, so its target is replaced and the link kept, as open() would. A device or FIFO is opened and
    written in place (writes_in_place).
    """
    path = check_writable_path(fn, name, path)
    if writes_in_place(path):
        # appending: /dev/stdout redirected to a file must not truncate it, nor write over what came before
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        with open(path, mode.replace("w", "a"), **open_kwargs) as f:
            yield f
        return
    path = os.path.realpath(path)  # through a symlink, as open() writes
    directory = os.path.dirname(path)
    fd, temporary = _temporary_file(fn, name, path)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _new_file_mode(path))
        f = os.fdopen(fd, mode, **open_kwargs)
    except BaseException:
        os.close(fd)
        os.remove(temporary)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable where the platform allows it (POSIX); elsewhere this is a no-op."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
