"""The settings every command has, written once: where and how it computes. Each command's
config takes them as fields (`device: str = device_setting()`), in its own order."""

from ...models.options import MATMUL_BACKENDS
from .base import optional, setting

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def device_setting(**extra):
    return setting("auto", "cpu, cuda, cuda:N, or auto (the GPU of this process when there is one, else cpu)",
                   **extra)


def threads_setting(**extra):
    return optional("torch intra-op CPU threads per process (default: torch's choice)", **extra)


def matmul_backend_setting(**extra):
    return setting("auto", "float32 CPU linear layers through torch's BLAS, oneDNN, or auto (a short measured "
                   "probe picks the faster; cached)", choices=MATMUL_BACKENDS, **extra)


def precision_setting(**extra):
    return setting("auto", "fp32, bf16 (autocast), fp16 (autocast with a gradient scaler), or auto: bf16 on a "
                   "GPU that supports it, else fp16 on a GPU, fp32 on CPU", choices=PRECISIONS, **extra)
