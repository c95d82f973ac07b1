"""Writing a user's file so that it is never half-written: a temporary file in the same directory, flushed,
fsynced, then renamed over the target. A crash, a full disk or Ctrl-C leaves the previous file or the new one.
A device or FIFO (/dev/null, /dev/stdout, a named pipe) is written in place: renaming over it would replace it
with a regular file (as root, /dev/null itself). A name of one of this process's descriptors (/dev/stdout) is
written through that descriptor, after what was printed to it and before what is printed next."""

import os
import re
import stat
import sys
import tempfile
import tokenize
import zipfile
import zlib
from contextlib import contextmanager

from ._signals import deferred

# What numpy raises on a damaged .npy header: mostly ValueError, but tokenize.TokenError for some bytes (it
# tokenizes the header before its literal_eval) and SyntaxError from the literal_eval itself
NPY_HEADER_ERRORS = (ValueError, SyntaxError, tokenize.TokenError)
# What reading a member of a damaged .npz (a zip archive) raises besides those: a cut or corrupted deflate stream
# (EOFError, zlib.error, OSError), a bad CRC or directory (BadZipFile), a garbled compression method
# (NotImplementedError), and a header that declares a huge shape (MemoryError, OverflowError)
NPZ_MEMBER_ERRORS = (*NPY_HEADER_ERRORS, OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError,
                     MemoryError, OverflowError)


def check_writable_path(fn, name, path, probe=False):
    """The path as a str; a ValueError naming `fn` and `name` when it names a directory, a FileNotFoundError when
    its directory does not exist. probe: also create and remove a temporary file there, so that a directory the
    process may not write to is found now (PermissionError or the OSError met), not when the file is written."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: {name} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{fn}: {name} is empty; give a file name")
    if not os.path.basename(path) or os.path.isdir(path):
        raise ValueError(f"{fn}: {name} {path!r} names a directory, not a file")
    if writes_in_place(path):
        if probe and not os.access(path, os.W_OK):
            raise PermissionError(f"{fn}: cannot write {name} {path!r} (permission denied)")
        return path
    target = os.path.realpath(path)  # where open() writes: through a symlink, its target
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{fn}: the directory of {name} {path!r} does not exist: {directory!r}")
    if probe:
        fd, temporary = _temporary_file(fn, name, target, shown=path)
        os.close(fd)
        os.remove(temporary)
    return path


def error_text(error):
    """The message of an error raised here, without the '[Errno N] ' that str() puts before an OSError's."""
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        return error.strerror
    return str(error)


_DESCRIPTOR_ALIASES = re.compile(r"^/(dev/(?P<standard>stdin|stdout|stderr)|dev/fd/(?P<fd>\d+)|"
                                 r"proc/(?P<pid>self|\d+)/fd/(?P<proc_fd>\d+))$")
_STANDARD = {"stdin": 0, "stdout": 1, "stderr": 2}


def writes_in_place(path):
    """Whether `path` is written in place rather than replaced: an existing file that is not a regular one
    (through symlinks), or a name of an open descriptor (/dev/stdout, /dev/fd/N, /proc/self/fd/N), which may
    stand for a redirected regular file that a rename would cut off from what was printed before."""
    if _descriptor_alias(path) is not None:
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # does not exist (yet), or cannot be inspected: the ordinary checks report it
        return False


def _descriptor_alias(path, hops=40):
    """The match of `path`, or of a symlink on the way from it to its target, against the descriptor aliases
    (None when neither is one). The final target itself will not tell: /dev/stdout resolves to the file stdout
    is redirected to."""
    path = os.path.abspath(path)
    for _ in range(hops):
        alias = _DESCRIPTOR_ALIASES.match(path)
        if alias or not os.path.islink(path):
            return alias
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return None


def _own_descriptor(path):
    """The number of this process's descriptor that `path` names, if it is open for writing; else None (another
    process's descriptor, or one this process reads)."""
    alias = _descriptor_alias(path)
    if alias is None:
        return None
    if alias["pid"] not in (None, "self", str(os.getpid())):
        return None
    fd = _STANDARD[alias["standard"]] if alias["standard"] else int(alias["fd"] or alias["proc_fd"])
    try:
        import fcntl

        writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
    except (ImportError, OSError):  # no fcntl, or no such descriptor
        return None
    return fd if writable else None


def _temporary_file(fn, name, path, shown=None):
    """(fd, name) of a new temporary file beside `path`; the OSError of a directory that cannot take one names
    `fn`, `name` and the path as the user gave it, `shown` (mkstemp's own names only the temporary file)."""
    try:
        return tempfile.mkstemp(dir=os.path.dirname(path), prefix=_temporary_prefix(path), suffix=".tmp")
    except OSError as e:
        raise type(e)(e.errno, f"{fn}: cannot write {name} {shown or path!r} ({e.strerror})") from e


def _temporary_prefix(path):
    """'.NAME.' for the temporary file beside `path`, NAME cut short where the whole temporary name (mkstemp adds
    8 characters and the '.tmp' suffix) would pass the file system's limit: a name of 242-255 bytes, itself
    allowed, was refused as too long."""
    directory, base = os.path.split(path)
    try:
        limit = os.pathconf(directory or ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no such directory (reported by mkstemp), or no pathconf
        limit = None
    room = (limit if limit and limit > 0 else 255) - len("..") - 8 - len(".tmp")
    encoded = os.fsencode(base)
    if len(encoded) > room:
        base = os.fsdecode(encoded[:room])  # bytes cut mid-character stay bytes (surrogateescape)
    return f".{base}."


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
    shown = check_writable_path(fn, name, path)
    if writes_in_place(shown):
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        own = _own_descriptor(shown)
        if own is not None:
            # A copy of the descriptor shares its offset: a new open of /dev/stdout redirected to a file would
            # write at offset 0 (or appending, at the end), and what is printed next would land over it.
            with os.fdopen(os.dup(own), mode, **open_kwargs) as f:
                yield f
            return
        # appending: a device or FIFO takes it as it is; a file another process has open is not truncated
        with open(shown, mode.replace("w", "a"), **open_kwargs) as f:
            yield f
        return
    path = os.path.realpath(shown)  # through a symlink, as open() writes
    directory = os.path.dirname(path)
    temporary = f = None
    try:
        # a Ctrl-C or SIGTERM between creating the temporary file and noting it left the file behind: held back,
        # it is raised here, inside the try that removes the file
        with deferred():
            fd, temporary = _temporary_file(fn, name, path, shown=shown)
            f = _opened(fd, temporary, path, mode, open_kwargs)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if f is not None:
            f.close()
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def _opened(fd, temporary, path, mode, open_kwargs):
    """The temporary file's descriptor as a file object, with the mode open() would have given `path`; on failure
    the file is closed and removed."""
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _new_file_mode(path))
        return os.fdopen(fd, mode, **open_kwargs)
    except BaseException:
        os.close(fd)
        os.remove(temporary)
        raise


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
