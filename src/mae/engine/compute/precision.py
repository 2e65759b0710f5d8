"""Mixed precision: choosing it per device, the autocast context and the fp16 gradient scaler."""

import contextlib
import warnings

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionWarning(UserWarning):
    """A precision this device only emulates: the run is correct but many times slower."""


def cpu_has_native(precision: str) -> bool:
    """Whether oneDNN has this CPU's own bf16 / fp16 matmuls (AVX-512, AMX). Without them torch
    falls back to a reference kernel: a ViT-T step in bf16 took 16x as long as in fp32 on an
    AVX2-only EPYC (docs/pretraining.md)."""
    check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast kernel either
        return False


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bf16 matmuls natively (a GPU that supports bf16, or a CPU with
    AVX-512 bf16 or AMX): where a bf16 step is the fast one."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_native("bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 on a GPU that supports it, fp16 on an older GPU, fp32 elsewhere.
    An explicit bf16 / fp16 on a CPU that only emulates it is kept, with a PrecisionWarning."""
    if precision != "auto":
        if precision not in ("fp32", *DTYPES):
            raise ValueError(f"--precision must be auto, fp32, bf16 or fp16, got {precision!r}")
        if device.type == "cpu" and precision in DTYPES and not cpu_has_native(precision):
            warnings.warn(PrecisionWarning(
                f"--precision {precision}: this CPU has no {precision} matmul of its own (AVX-512 or AMX), so "
                f"{precision} is emulated and a step takes many times as long as in fp32; "
                "--precision fp32 (the default on CPU) is faster here"), stacklevel=2)
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
