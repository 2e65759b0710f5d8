"""Small text files of a run directory, written atomically and readable by everyone."""

import os
from pathlib import Path

from ..weights import atomic_write


def write_text_atomic(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # the temporary file was created owner-only
