"""Are these the files, under the labels, that the dataset was published with?

A dataset folder may come with a ``sha256sum`` list beside it (the bundled sample does; so does
the shared copy of the real training split). A file changed, or moved to another class folder,
would quietly teach a model wrong labels, so 01 checks every file against the list.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .dataset import DatasetError

__all__ = ["checksum_file", "verify_checksums"]


def checksum_file(root: str | Path) -> Path | None:
    """The sha256 list shipped beside a dataset folder, or ``None``.

    Looked for as ``<root>.sha256`` or ``<root>_*.sha256`` next to ``root`` (the bundled sample
    has ``chest_xray.sha256``; the shared copy of the real data ``chest_xray_train.sha256``).
    """
    root = Path(root)
    found = sorted(root.parent.glob(f"{root.name}.sha256")) + \
        sorted(root.parent.glob(f"{root.name}_*.sha256"))
    # chest_xray_external.sha256 also matches chest_xray_*: keep lists of this folder's files.
    return next((path for path in found if _lists_folder(path, root.name)), None)


def _lists_folder(sums_file: Path, folder: str) -> bool:
    """Whether the first entry of a sha256 list lies under ``folder/``."""
    with open(sums_file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                rel = line.split(maxsplit=1)[-1].strip().lstrip("*")
                return rel.split("/", 1)[0] == folder
    return False


def verify_checksums(manifest: pd.DataFrame, root: str | Path) -> str:
    """Check every listed file is present, unchanged and under its listed split and class.

    A moved file (say from ``train/NORMAL`` to ``train/PNEUMONIA``) keeps its hash, so a
    swapped label is named as such rather than as "one missing, one extra". Files of the
    manifest in splits the list does not cover are ignored (the shared copy lists only
    ``train``).

    Args:
        manifest: from :func:`pneumo_helpers.obtain.build_manifest` (``path``, ``sha256``).
        root: the dataset folder the manifest was built from; its list is
            :func:`checksum_file`'s, lines ``<sha256>  <folder>/<split>/<class>/<name>``
            (``sha256sum`` format), paths relative to the folder that holds ``root``.

    Returns:
        One line: ``"<n> files match <list name>"``, or that there is no list to check.

    Raises:
        DatasetError: any file missing, changed, moved or unlisted; the message names up to
            five and says what to do.
    """
    root = Path(root)
    sums_file = checksum_file(root)
    if sums_file is None:
        return f"no checksum list beside {root.name}/: files not verified"
    listed: dict[str, str] = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            listed[rel.strip().lstrip("*")] = digest
    if not listed:
        raise DatasetError(f"{sums_file.name} lists no files")
    covered = {rel.split("/")[1] for rel in listed}  # the splits the list covers
    found = {f"{root.name}/{Path(p).relative_to(root).as_posix()}": h
             for p, h in zip(manifest["path"], manifest["sha256"])
             if Path(p).relative_to(root).parts[0] in covered}
    where_listed = {digest: rel for rel, digest in listed.items()}
    problems = []
    for rel, digest in found.items():
        if listed.get(rel) == digest:
            continue
        if digest in where_listed and where_listed[digest] != rel:
            problems.append(f"{rel} is listed as {where_listed[digest]} (moved: its label "
                            "or split changed)")
        elif rel in listed:
            problems.append(f"{rel} differs from the listed file (changed or damaged)")
        else:
            problems.append(f"{rel} is not in the list")
    moved_from = {where_listed[d] for r, d in found.items()
                  if d in where_listed and where_listed[d] != r}
    problems += [f"{rel} is missing" for rel in listed
                 if rel not in found and rel not in moved_from]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DatasetError(f"{len(problems)} files do not match {sums_file.name}: "
                           + "; ".join(problems[:5]) + more + ". Restore the original files "
                           "(git checkout for the bundled sample), or pass a dataset without "
                           "a checksum list if the changes are intended")
    return f"{len(found)} files match {sums_file.name}"
