"""Reading the user's input files and writing output files, safely.

Inputs: only regular files are read (a FIFO or a device would block or never end), up to a
size limit, opened without blocking on the open itself.

Outputs: never written through a link. A new file is written under a temporary name in the
target's own directory (created exclusively, O_EXCL, so nothing planted there is followed),
then renamed over the target: a symbolic link planted at the target is refused, and a hard
link to an input keeps the input's content (the rename replaces the name, not the file).
An output that is one of the command's inputs is refused outright.
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import UserError

KIND = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
        stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def read_regular(path: str | Path, what: str, limit: int, instead: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; else a one-line UserError naming
    the file. `what` names the file in messages ("spec", "trace file"); `instead` says what
    to give."""
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"no such file; {instead}", path=where) from None
    except IsADirectoryError:
        raise UserError(f"is a directory; {instead}", path=where) from None
    except OSError as e:
        raise UserError(f"cannot read the {what}: {e.strerror}; {instead}", path=where) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise UserError(f"is {kind}, not a regular file; {instead}", path=where)
        if st.st_size > limit:
            raise UserError(f"the {what} is {st.st_size:,} bytes, more than klpmodel reads ({limit:,}); "
                            f"{instead}", path=where)
        chunks, size = [], 0
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:         # a regular file never blocks; be safe anyway
                break
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UserError(f"the {what} is more than {limit:,} bytes, more than klpmodel reads; {instead}",
                                path=where)
        return b"".join(chunks)
    except OSError as e:
        raise UserError(f"cannot read the {what}: {e.strerror}; {instead}", path=where) from None
    finally:
        os.close(fd)


def same_file(a: Path, b: Path) -> bool:
    """a and b are the same file (the same name, a symbolic link to it or a hard link)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_link(path: Path, option: str) -> None:
    """A symbolic link where an output goes is refused (nothing is written through it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise UserError(f"{option} {path}: cannot check it: {e.strerror}; give another path") from None
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{option} {path}: is a symbolic link; klpmodel does not write through links: "
                        f"remove it or give another path")
    if not stat.S_ISREG(st.st_mode):
        kind = KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise UserError(f"{option} {path}: is {kind}; give the path of a regular file to write")


def check_writable(path: Path, option: str, protect: Sequence[Path | None] = ()) -> None:
    """Before the work: the output file can be written (its directory exists and takes a new
    file), is not a link, and is none of the inputs."""
    for p in protect:
        if p is not None and (same_file(path, p) or Path(os.path.abspath(path)) == Path(os.path.abspath(p))):
            raise UserError(f"{option} names a file that is an input of this command ({p}); write the output "
                            f"to another file", path=str(path))
    refuse_link(path, option)
    probe_dir(path.parent if str(path.parent) else Path("."), option, f"{path}")


def probe_dir(folder: Path, option: str, shown: str) -> None:
    """The folder exists and a file can be created in it (tried: create and remove one)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".klpmodel-probe-", dir=folder)
    except OSError as e:
        raise UserError(f"cannot write: {e.strerror}; give a writable "
                        f"{'directory' if option == '--out' else 'path'} for {option}", path=shown) from None
    os.close(fd)
    os.unlink(tmp)


def write_new(path: Path, text: str, option: str, protect: Sequence[Path | None] = ()) -> None:
    """Write text to path through a temporary file renamed over it (see the module docstring)."""
    check_writable(path, option, protect)
    folder = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(f"cannot write: {e.strerror}; give a writable path for {option}", path=str(path)) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
