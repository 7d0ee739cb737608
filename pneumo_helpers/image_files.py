"""Finding the image files a user names: files as given, folders searched recursively."""

from __future__ import annotations

import os
from pathlib import Path

from .images import IMAGE_SUFFIXES, ImageError

__all__ = ["collect_images"]


def _search(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted, hidden files and folders (``.git/``) left
    out; a subfolder that cannot be listed, or a symbolic link to a folder (not followed), is
    returned too, so that it gets a row saying why its images are missing."""
    found, unlisted, errors = [], [], []

    def refused(exc: OSError):
        unlisted.append(Path(exc.filename))
        errors.append(exc)
    for root, dirs, names in os.walk(folder, onerror=refused):
        base = Path(root)
        found += [base / d for d in dirs if not d.startswith(".") and (base / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (base / d).is_symlink())
        found += [base / n for n in names
                  if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES]
    if unlisted and unlisted[0] == folder:
        raise ImageError(f"{folder}: folder cannot be read ({errors[0].strerror or errors[0]}); "
                         "check its permissions")
    return sorted(found + unlisted)


def collect_images(inputs) -> list[str]:
    """Image files named in ``inputs`` (files, or folders searched recursively).

    A file named directly is kept as written (``./-scan.jpeg`` stays that, not ``-scan.jpeg``);
    files found in a folder come sorted, as paths under it (see :func:`_search`: hidden files
    and folders are left out; a subfolder that cannot be read is listed, and gets an error
    row when predicted).

    Raises:
        ImageError: a path that does not exist, or a folder holding no image files.
    """
    files: list[str] = []
    for text in map(os.fspath, inputs):
        item = Path(text)
        if item.is_dir():
            found = _search(item)
            if not found:
                raise ImageError(f"{item}: folder holds no image files "
                                 f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += [os.fspath(p) for p in found]
        elif item.exists() or item.is_symlink():
            files.append(text)
        else:
            raise ImageError(f"{item}: no such file or folder")
    return files
