"""Small text files of a run directory, written atomically and readable by everyone."""

import os
from pathlib import Path

from ..weights.load import atomic_write


def write_text_atomic(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_output_file(path: str | Path, option: str) -> None:
    """Refuse, before any work, an output file that could not be written: a directory, or a
    place whose nearest existing folder is a file or not writable."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot create a file there ({parent} is not a writable folder)")
