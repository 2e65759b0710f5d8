"""Files written atomically (a reader sees the old file or the new one, never half of one),
with the mode open() would give, and the folder entries fsynced."""

import functools
import os
import tempfile
from pathlib import Path


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


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it (once, at the first write)
    os.umask(mask)
    return mask


def umask_mode(mode: int) -> int:
    """`mode` less the umask: what open() (0o666) or mkdir() (0o777) would give."""
    return mode & ~_umask()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), fsync, then rename over `path`: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)  # some writers (safetensors) replace the file, with their own mode
        os.chmod(tmp, umask_mode(0o666))  # mkstemp makes 0600; the file gets what open() would give
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
