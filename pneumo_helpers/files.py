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
import tempfile
from pathlib import Path

__all__ = ["sha256", "atomic_write"]


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (memory flat whatever the size)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: str = "w", **open_kwargs):
    """Write ``target`` through a temporary file beside it, renamed into place on success.

    A reader never sees a half-written file, and a failure (an exception in the block, a
    full disk) leaves the previous file, or none, and no temporary behind. Parent folders are
    created.

    Args:
        mode: ``"w"`` (text; UTF-8 and ``newline=""`` unless given) or ``"wb"``.

    Yields:
        The open file object to write to.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        open_kwargs = {"encoding": "utf-8", "newline": "", **open_kwargs}
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    # mkstemp makes the file private (0600); a file shipped in the package or shared in a run
    # folder must stay readable by others (0644, what open() gives under the usual umask).
    os.chmod(temporary, 0o644)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
