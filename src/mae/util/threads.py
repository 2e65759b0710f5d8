"""The CPU this process runs on: its name, its cores, and threads that hold up when shared.

Imported by `mae/__init__.py` before torch: OpenMP reads its wait policy once, when torch
loads it. With OpenMP's default, a thread that finishes its share of a parallel region
spins for a while before it sleeps; when another process holds the core that a sibling
thread needs, every region waits for it while the spinning threads keep the cores busy,
and steps slowed 5-40x (docs/benchmarks.md). PASSIVE threads sleep at once, so a busy
machine costs about its share of the cores and no more. A wait policy set by the user
(OMP_WAIT_POLICY in the environment) is kept.
"""

import os
import platform
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MAX_DEFAULT_WORKERS = 8


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, cgroups, Slurm), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_workers() -> int:
    """Loader workers: one core is left to the training process, at most 8 (0 on one core)."""
    return min(MAX_DEFAULT_WORKERS, available_cores() - 1)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
