"""A full disk as one clear line: which directory, how much is free, how much is needed."""

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """Not enough free space in a run directory for what had to be written."""


def free_bytes(directory: Path) -> int:
    directory = Path(directory)
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # the space of the file system it will be created on
    return shutil.disk_usage(directory).free


def megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def disk_full(directory: Path, needed: int, what: str) -> DiskFull:
    return DiskFull(errno.ENOSPC, f"not enough free space in {directory} for {what}: needs about "
                    f"{megabytes(needed)}, {megabytes(free_bytes(directory))} free; free some space or "
                    "choose another --output-dir")


def require_free(directory: Path, needed: int, what: str) -> None:
    """Refuse before writing when the file system has less than `needed` bytes free."""
    if free_bytes(directory) < needed:
        raise disk_full(directory, needed, what)


@contextmanager
def reporting_full_disk(directory: Path, needed: int, what: str):
    """Turn a write that failed because the disk filled up (an OSError with ENOSPC / EDQUOT, or
    any error while less than `needed` is free, as safetensors reports it) into DiskFull."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as err:
        full = isinstance(err, OSError) and err.errno in FULL_ERRNOS
        if full or free_bytes(directory) < needed:
            raise disk_full(directory, needed, what) from None
        raise
