"""Mixed precision: choosing it per device, the autocast context and the fp16 gradient scaler."""

import contextlib

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 on a GPU that supports it, fp16 on an older GPU, fp32 elsewhere."""
    if precision != "auto":
        if precision not in ("fp32", *DTYPES):
            raise ValueError(f"--precision must be auto, fp32, bf16 or fp16, got {precision!r}")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    """The forward pass's context: autocast to bf16 / fp16, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, active only for fp16 (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
