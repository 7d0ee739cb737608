"""Files on disk: their sha256, and writing them so that nobody ever sees half of one.

Two needs every other module shares: naming a file's exact content (a dataset image in the
manifest, the model an evaluation belongs to, the ``model.keras`` a LiteRT export was made
from) and writing outputs that other processes read or a failure could interrupt (image
caches, predictions, metrics). Kept free of heavy imports: ``pneumo predict`` loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["sha256", "atomic_write", "OutputError", "check_output"]


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (memory flat whatever the size)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class OutputError(ValueError):
    """An output path that will not be written; the message names it and what to do."""


def _existing(target: Path) -> os.stat_result | None:
    """``lstat`` of ``target``, ``None`` when absent; a folder, a symbolic link, a device or
    a FIFO is refused: replacing it would turn a device into a file or leave a link's target
    stale, and writing through it would write somewhere not named."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{target}: is a folder; give a file name, e.g. {target / 'out.csv'}")
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"{target}: is a symbolic link; write to the file it points to "
                          f"({os.path.realpath(target)}) or to a new name")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{target}: is a device, FIFO or socket, not a regular file; give "
                          "the name of a file to write")
    return info


def _temporary(target: Path) -> tuple[int, str]:
    """A new private file beside ``target``, named so that it fits the 255 bytes a name may
    have wherever the target's fits: the target's name is cut to leave room for the dot,
    mkstemp's 8 letters and the suffix."""
    stem = os.fsdecode(os.fsencode(target.name)[:240])
    return tempfile.mkstemp(dir=target.parent, prefix=f".{stem}.", suffix=".tmp")


def check_output(target: str | Path, *, inputs=()) -> Path:
    """Refuse, before any work, an output that could not or should not be written.

    The one output policy of ``pneumo``: a regular file (or a new name) in a folder it can
    create files in, never one of ``inputs``, never a read-only file (its mode would be lost).
    Parent folders are created; a temporary file is made and removed there, so a read-only
    folder or a name too long shows now, not after the work.

    Raises:
        OutputError: one line naming the path and what to do.
    """
    target = Path(target)
    if len(os.fsencode(target.name)) > 255:
        raise OutputError(f"{target}: a file name longer than 255 bytes; shorten it")
    info = _existing(target)
    if info is not None and not info.st_mode & stat.S_IWUSR:
        raise OutputError(f"{target}: is read-only (mode {stat.S_IMODE(info.st_mode):o}); make it "
                          "writable or choose another name")
    if info is not None:
        for item in inputs:
            try:
                other = os.stat(item)
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino):
                raise OutputError(f"{target}: is an input ({item}); choose another output name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = _temporary(target)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write there ({exc.strerror or exc}); choose a "
                          "folder you can write to") from None
    os.close(fd)
    os.unlink(temporary)
    return target


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: str = "w", **open_kwargs):
    """Write ``target`` through a temporary file beside it, renamed into place on success.

    A reader never sees a half-written file, and a failure (an exception in the block, a
    full disk) leaves the previous file, or none, and no temporary behind. Parent folders are
    created. A file replaced keeps its mode; a new one is 0644.

    Args:
        mode: ``"w"`` (text; UTF-8 and ``newline=""`` unless given) or ``"wb"``.

    Yields:
        The open file object to write to.

    Raises:
        OutputError: ``target`` is a folder, a symbolic link, a device or a FIFO.
    """
    target = Path(target)
    info = _existing(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        open_kwargs = {"encoding": "utf-8", "newline": "", **open_kwargs}
    fd, temporary = _temporary(target)
    # mkstemp makes the file private (0600); a file shipped in the package or shared in a run
    # folder must stay readable by others (0644, what open() gives under the usual umask).
    os.chmod(temporary, stat.S_IMODE(info.st_mode) if info else 0o644)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
