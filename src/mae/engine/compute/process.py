"""What every command does to its process before it computes, in one place: torch's CPU
threads (when given), the float32 matmul backend (measured on those threads), and keeping
freed memory in the process (util/allocator.py)."""

import torch

from ...models.linear import set_matmul_backend
from ...util.allocator import keep_freed_memory


def set_up_process(threads: int | None = None, matmul_backend: str = "auto") -> None:
    if threads:
        torch.set_num_threads(threads)
    set_matmul_backend(matmul_backend)  # after the threads: the probe runs on them
    keep_freed_memory()
