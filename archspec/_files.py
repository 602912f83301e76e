"""Every file archspec reads or writes goes through here: one safe read, one safe write.

Reading (:func:`open_regular`, :func:`read_bytes`): only regular files are read. The path
is looked at first (``stat``, following symlinks) and anything else is refused without
being opened: a folder, a FIFO (whose open would wait for a writer forever), a device
(opening some has effects; ``/dev/zero`` never ends), a socket, a symlink loop. The file is
then opened without waiting (``O_NONBLOCK``) and looked at again, so that a file swapped
for a FIFO in between cannot hang the read either.

Writing (:func:`write_file`): ``write(f)`` produces the whole content into a binary file
object; what happens to the path depends on what is there:

- nothing, or a regular file: the content goes to a temporary file beside it, which is
  flushed to disk and renamed over it only once complete. A failure (a full disk, an
  exporter's error, Ctrl-C) leaves no temporary file and the previous file as it was. An
  existing file keeps its permission bits; a new one gets ``0o666`` less the umask.
- a symlink: followed. The file it leads to is replaced as above, beside itself, so the
  link stays a link and shows the new content (a dangling link's target is created).
- a character device or a FIFO: written through, as ``cp`` and compilers do
  (``-o /dev/null``, ``-o /dev/stdout``, a named pipe a reader has open). The content is
  made completely first, in an anonymous temporary file, so a failure writes nothing into
  the pipe. A FIFO that no process is reading is refused at once instead of waiting.
- a folder, a name ending in ``/``, a block device (a disk), a socket or a symlink loop:
  refused, and nothing is touched.

Errors are :class:`FileProblem` (an ``OSError`` whose ``strerror`` is one whole sentence
naming the path the user gave, never a temporary one): ``cannot write model.pt: no space
left on device``. Writers that wrap an I/O failure in an error of their own (``torch.save``
reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc...]``) are seen
through: the file object handed to ``write`` remembers the first ``OSError``.

What this module deliberately does not do: keep the owner of a replaced file, keep other
hard links to it in step (a rename makes a new file), or lock anything.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["FileProblem", "check_output", "open_regular", "read_bytes", "shown_path", "write_file", "write_stdout"]

_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)
_CHUNK = 1 << 20


class FileProblem(OSError):
    """A file that cannot be read or written. ``strerror`` is the whole message (what the
    command line prints after ``archspec: error:``); ``errno`` the cause's code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(code if code is not None else errno.EIO, message)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):
        return (FileProblem, (self.strerror, self.errno))


def shown_path(path: str | os.PathLike[str], width: int = 255) -> str:
    """``path`` for a message: as given, or, past ``width`` characters (longer than any file
    name may be), its two ends and its length."""
    text = os.fspath(path)
    if len(text) <= width:
        return text
    return f"{text[:width // 2 - 2]}...{text[-(width // 2 - 1):]} ({len(text):,} characters)"


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, as a noun phrase."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device (a disk)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


_WHY = {
    errno.ENOENT: "no such file",
    errno.ELOOP: "it is a symlink loop (a link that leads, through links, back to itself)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "the name is too long for the file system",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "the file system is read-only",
    errno.EFBIG: "the file is too large for the file system",
    errno.EPIPE: "the process reading it closed it",
    errno.EIO: "input/output error",
}
if hasattr(errno, "EDQUOT"):
    _WHY[errno.EDQUOT] = "disk quota exceeded"


def why(e: OSError) -> str:
    """The reason an ``OSError`` gives, in the words of these messages."""
    if isinstance(e, FileProblem):
        return e.strerror
    text = _WHY.get(e.errno) if e.errno is not None else None
    return text or (e.strerror or str(e) or type(e).__name__).lower()


# -- reading ------------------------------------------------------------------------------------


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """``path`` opened for reading, if it is a regular file (see the module docstring).

    Raises :class:`FileProblem`: ``no <what> at 'x'`` (``errno`` ENOENT), ``'x' is a folder,
    not a <what>``, ``'x' is a pipe (FIFO), not a regular file``, ``cannot read 'x': ...``.
    """
    name = shown_path(path)
    try:
        info = os.stat(path)
    except OSError as e:
        raise _read_problem(e, name, what, path) from None
    _require_regular(info.st_mode, name, what)
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)
    except OSError as e:
        raise _read_problem(e, name, what, path) from None
    try:
        _require_regular(os.fstat(fd).st_mode, name, what)  # swapped since the stat: still never a FIFO
        if _O_NONBLOCK:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path`` (one more than ``limit``
    says the file is longer than that, however it grew since it was looked at)."""
    with open_regular(path, what) as f:
        try:
            return f.read(limit + 1)
        except OSError as e:
            raise FileProblem(f"cannot read '{shown_path(path)}': {why(e)}", e.errno) from None


def _require_regular(mode: int, name: str, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise FileProblem(f"'{name}' is a folder, not a {what}", errno.EISDIR)
    raise FileProblem(f"'{name}' is {kind_of(mode)}, not a regular file (archspec reads only regular files)", errno.EINVAL)


def _read_problem(e: OSError, name: str, what: str, path: str | os.PathLike[str]) -> FileProblem:
    if e.errno == errno.ENOENT:
        if os.path.islink(path):
            return FileProblem(f"'{name}' is a symlink to '{shown_path(os.readlink(path))}', which does not exist", e.errno)
        return FileProblem(f"no {what} at '{name}'", e.errno)
    return FileProblem(f"cannot read '{name}': {why(e)}", e.errno)


# -- writing ------------------------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """The binary file a writer writes into: every write completes or raises, and the first
    ``OSError`` is kept, so that a writer that reports it as an error of its own (torch's
    C++ serialisers) cannot hide it. Closing it leaves the descriptor to its owner."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.error: OSError | None = None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:done + _CHUNK])
        except OSError as e:
            self.error = self.error or e
            raise
        return done

    def fileno(self) -> int:
        return self._fd

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, offset, whence)

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False


Write = Callable[[BinaryIO], None]


def check_output(path: str | os.PathLike[str]) -> None:
    """Refuse now what :func:`write_file` would refuse (a folder, a block device, a missing
    folder, ...), so that a command fails before its work, not after it."""
    target, info = _target(os.fspath(path))
    if info is None or stat.S_ISREG(info.st_mode):
        folder = os.path.dirname(target) or "."
        if not os.path.isdir(folder):
            raise FileProblem(f"cannot write {shown_path(path)}: no such folder", errno.ENOENT)


def write_file(path: str | os.PathLike[str], write: Write) -> None:
    """Write ``path`` with ``write(f)`` (``f`` a binary file object), safely: see the module
    docstring for what is done with a regular file, a symlink, a device or a FIFO."""
    path = os.fspath(path)
    target, info = _target(path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        _write_through(path, write)
    else:
        _replace(path, target, info, write)


def write_stdout(write: Write) -> None:
    """Write to standard output with ``write(f)``: the content is made whole first (in
    memory: this is for text a person reads or pipes on), so that a failure writes nothing."""
    made = io.BytesIO()
    write(made)
    sys.stdout.flush()  # after what was printed before
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text-only stream standing in for stdout
        sys.stdout.write(made.getvalue().decode("utf-8"))
    else:
        out.write(made.getvalue())
    sys.stdout.flush()


def _target(path: str) -> tuple[str, os.stat_result | None]:
    """The file to replace (``path``, or where its symlink leads) and what is there now
    (``None``: nothing); refuses what is never written."""
    if not path:
        raise FileProblem("cannot write to an empty file name", errno.ENOENT)
    name = shown_path(path)
    if os.path.isdir(path):
        raise FileProblem(f"cannot write {name}: it is a folder", errno.EISDIR)
    if path.endswith(_SEPARATORS):
        raise FileProblem(f"cannot write {name}: a name ending in '/' names a folder; give a file name", errno.EISDIR)
    try:
        info = os.stat(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise FileProblem(f"cannot write {name}: {why(e)}", e.errno) from None
        info = None
    if info is not None and not (stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise FileProblem(f"cannot write {name}: it is {kind_of(info.st_mode)}; archspec writes regular files, "
                          "and through character devices (such as /dev/null) and pipes", errno.EINVAL)
    target = os.path.realpath(path) if os.path.islink(path) else path
    return target, info


def _replace(path: str, target: str, info: os.stat_result | None, write: Write) -> None:
    name = shown_path(path)
    folder, base = os.path.split(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base[:100]}.", suffix=".tmp", dir=folder or ".")
    except OSError as e:  # name the file the user asked for, not the temporary one
        reason = "no such folder" if e.errno == errno.ENOENT else why(e)
        raise FileProblem(f"cannot write {name}: {reason}", e.errno) from None
    try:
        try:
            _fill(fd, write, name)
        finally:
            os.close(fd)
        if info is not None:
            mode = stat.S_IMODE(info.st_mode) & 0o777  # an existing file keeps its permissions
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp makes owner-only files; an output is an ordinary file
        try:
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except OSError as e:
            raise FileProblem(f"cannot write {name}: {why(e)}", e.errno) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fill(fd: int, write: Write, name: str, where: str = "") -> None:
    """Run ``write`` into ``fd`` and flush it to disk. An ``OSError`` met on the
    way (a full disk may show only at the flush) is a :class:`FileProblem` naming ``name``,
    whatever error the writer turned it into; the writer's other errors pass unchanged."""
    sink = _Sink(fd)
    try:
        write(sink)
    except Exception:
        if sink.error is None:
            raise
    else:
        try:
            os.fsync(fd)
        except OSError as e:
            sink.error = e
    if sink.error is not None:
        raise FileProblem(f"cannot write {name}: {why(sink.error)}{where}", sink.error.errno) from None


def _write_through(path: str, write: Write) -> None:
    """Write into a device or FIFO: the content first, whole, into an anonymous temporary
    file; then copied through."""
    name = shown_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".archspec.", suffix=".tmp")
    except OSError as e:
        raise FileProblem(f"cannot write {name}: the temporary folder {tempfile.gettempdir()}: {why(e)}", e.errno) from None
    try:
        os.unlink(tmp)  # anonymous: nothing is left behind, whatever happens
        tmp = None
    except OSError:  # pragma: no cover - where an open file cannot be unlinked
        pass
    try:
        _fill(fd, write, name, f" (in the temporary folder {tempfile.gettempdir()}, where the content is made first)")
        out = _open_through(path, name)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            while chunk := os.read(fd, _CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        except OSError as e:
            raise FileProblem(f"cannot write {name}: {why(e)}", e.errno) from None
        finally:
            os.close(out)
    finally:
        os.close(fd)
        if tmp is not None:  # pragma: no cover
            os.unlink(tmp)


def _open_through(path: str, name: str) -> int:
    try:
        out = os.open(path, os.O_WRONLY | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)  # a FIFO without a reader: ENXIO
    except OSError as e:
        reason = "it is a pipe (FIFO) that no process is reading" if e.errno == errno.ENXIO else why(e)
        raise FileProblem(f"cannot write {name}: {reason}", e.errno) from None
    try:
        mode = os.fstat(out).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # replaced since it was looked at
            raise FileProblem(f"cannot write {name}: it changed while the output was made (now {kind_of(mode)})", errno.EAGAIN)
        if _O_NONBLOCK:
            import fcntl

            fcntl.fcntl(out, fcntl.F_SETFL, fcntl.fcntl(out, fcntl.F_GETFL) & ~_O_NONBLOCK)
    except BaseException:
        os.close(out)
        raise
    return out
