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

__all__ = ["sha256", "atomic_write", "MANIFEST", "write_manifest", "read_manifest"]

#: The file in a folder listing the sha256 of every other file (``sha256sum -c`` reads it).
MANIFEST = "manifest.sha256"


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
    # The temporary's name must fit the 255 bytes a name may have wherever the target's fits:
    # the target's name is cut to leave room for the dot, mkstemp's 8 letters and the suffix.
    stem = os.fsdecode(os.fsencode(target.name)[:240])
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{stem}.", suffix=".tmp")
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


def _listed(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))


def write_manifest(folder: str | Path) -> Path:
    """Write ``folder/manifest.sha256``: one ``<sha256>  <name>`` line per regular file in
    it (hidden files and the manifest itself excepted), as ``sha256sum`` writes them."""
    folder = Path(folder)
    with atomic_write(folder / MANIFEST) as handle:
        for name in _listed(folder):
            handle.write(f"{sha256(folder / name)}  {name}\n")
    return folder / MANIFEST


def read_manifest(folder: str | Path) -> dict[str, str] | None:
    """``{name: sha256}`` of ``folder``'s manifest after checking every file against it, or
    ``None`` when the folder has no manifest.

    Raises:
        ValueError: a listed file missing or changed, a file not listed, or a malformed
            manifest; the message names the file.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        return None
    listed = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or "/" in name:
            raise ValueError(f"{path}: line {number} is not '<sha256>  <file name>'")
        listed[name] = digest
    extra = sorted(set(_listed(folder)) - set(listed))
    if extra:
        raise ValueError(f"{folder / extra[0]}: not listed in {MANIFEST}; remove it, or "
                         "write the manifest again if it belongs to the model")
    for name, digest in listed.items():
        if not (folder / name).is_file():
            raise ValueError(f"{folder / name}: listed in {MANIFEST} but missing")
        if sha256(folder / name) != digest:
            raise ValueError(f"{folder / name}: its sha256 differs from {MANIFEST} (changed or "
                             "replaced since the model was made)")
    return listed
