"""Optimisers as the official recipe: parameter groups (no weight decay on norms, biases and
tables), AdamW (fused where the device has it), and one optimizer step with clipping and the
fp16 scaler. The batch and lr scaling is in scaling.py, the lr schedules in schedules.py."""

import inspect

import torch


def param_groups(model: torch.nn.Module, weight_decay: float, no_decay: tuple[str, ...] = ()) -> list[dict]:
    """Two groups as the official code: biases and 1-D parameters (norms) get no weight decay.

    Frozen parameters (the fixed sin-cos position tables) are left out. `no_decay` names
    further parameters to exempt. Each group carries "lr_scale" (1.0), which `set_lr` honours.
    """
    decay, plain = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or name in no_decay:
            plain.append(param)
        else:
            decay.append(param)
    return [
        {"params": plain, "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
    ]


def adamw(groups: list[dict], lr: float, betas=(0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step where this torch build has it for the device."""
    fused = "fused" in inspect.signature(torch.optim.AdamW).parameters
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True)
        except RuntimeError:  # no fused kernel for this device / dtype
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def optimizer_step(optimizer: torch.optim.Optimizer, scaler, parameters, clip_grad: float | None) -> None:
    """The end of a step, once the gradients are accumulated: optional clipping of their norm
    (after unscaling fp16 gradients), the step through the gradient scaler, zeroed grads."""
    if clip_grad:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
