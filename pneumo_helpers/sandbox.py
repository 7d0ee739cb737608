"""The process a user's ``pneumo`` command runs in: quiet at start-up, and off the home folder.

TensorFlow, absl and LiteRT print start-up lines that are not errors; Keras and matplotlib
write caches into the home folder on first import. A command run on a few files should show
only what concerns the user and leave the home folder as it found it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["without_library_noise", "private_library_homes"]

# What TensorFlow, absl and LiteRT print at start-up on a machine without a GPU: not errors,
# and no environment variable silences all of it (TF_CPP_MIN_LOG_LEVEL=3 leaves some).
_NOISE = re.compile(r"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl"
                    r"|To enable the following instructions|INFO: Created TensorFlow Lite)")


@contextlib.contextmanager
def without_library_noise():
    """Route file descriptor 2 through a temporary file for the block and replay every line
    that is not known start-up noise, so warnings and errors still reach the user."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _NOISE.match(line):
                    print(line, file=sys.stderr)


def _scratch() -> Path:
    """This user's private folder for library caches: ``$TMPDIR/pneumo-<uid>``, used only if
    it is a real folder (not a link) owned by this user and closed to others; anyone can make
    that name in a shared /tmp first, so otherwise a new private folder is made."""
    scratch = Path(tempfile.gettempdir()) / f"pneumo-{os.getuid()}"
    try:
        os.mkdir(scratch, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return _throwaway_folder()
    info = os.lstat(scratch)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() \
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return scratch
    return _throwaway_folder()


def _throwaway_folder() -> Path:
    """A new private folder, removed when the command ends."""
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="pneumo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def private_library_homes() -> None:
    """Keras writes ~/.keras/keras.json and matplotlib a font cache on first import; a command
    run on a few files should leave the home folder alone. Both go to a private temporary
    folder (:func:`_scratch`) unless the user chose theirs."""
    if all(variable in os.environ for variable in ("KERAS_HOME", "MPLCONFIGDIR")):
        return
    scratch = _scratch()
    for variable, sub in (("KERAS_HOME", "keras"), ("MPLCONFIGDIR", "matplotlib")):
        if variable not in os.environ:
            (scratch / sub).mkdir(exist_ok=True)
            os.environ[variable] = str(scratch / sub)
