"""One live run per run directory: an OS lock on OUT/.lock, held for as long as the run lives.

    lock_run_dir(Path("runs/vitb"))     # RunDirectoryBusy naming the owner's pid if another run holds it
    ...
    unlock_run_dir(Path("runs/vitb"))

The lock is a POSIX record lock (fcntl.lockf): the operating system drops it when the process
that holds it ends, however it ends (SIGKILL included), so a killed run never leaves its
directory locked. It belongs to that process alone: loader workers it forks do not hold it,
so a worker that outlives its parent for a moment does not keep the directory locked. The
file keeps the owner's pid and host, for the message a second run gets.
"""

import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = ".lock"

_held: dict[Path, int] = {}  # run directory (resolved) -> descriptor of its locked file


class RunDirectoryBusy(ValueError):
    """Another live run owns the run directory."""


def _owner(fd: int) -> str:
    text = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
    return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "a process that is starting"


def lock_run_dir(run_dir: Path) -> None:
    """Create `run_dir` if needed and lock it for this process (again: a no-op)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if key in _held:
        return
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = _owner(fd)
        os.close(fd)
        raise RunDirectoryBusy(
            f"{run_dir} is in use by another run ({owner}); wait for it to end or stop it, or "
            "choose another --output-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    _held[key] = fd


def unlock_run_dir(run_dir: Path) -> None:
    fd = _held.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the lock
