"""One pretraining step as the training loop runs it: forward, backward, AdamW step.

bf16 runs under autocast with float32 master weights; `compile` wraps the model in
torch.compile (shapes are static: one batch size and mask ratio per run). The loss is
returned as a tensor, never read on the host, so a CUDA step queues without waiting.
"""

import torch
import torch.nn as nn

from ..engine.optim.optimizers import adamw, param_groups
from .variants import HuggingFaceMAE

STEP_PRECISIONS = ("fp32", "bf16")


def shared_optimizer(models: list[nn.Module], lr: float = 1.5e-4, weight_decay: float = 0.05):
    """One fused AdamW over the parameters of several models, each counted once.

    Models in one benchmark may share their big weights; a shared optimizer then keeps
    one state per weight. Parameters without a gradient (another model's) are skipped
    by the step, so each model's step updates exactly its own weights.
    """
    groups, seen = [], set()
    for model in models:
        for group in param_groups(model, weight_decay):
            params = [p for p in group["params"] if id(p) not in seen]
            seen.update(id(p) for p in params)
            if params:
                groups.append({**group, "params": params})
    return adamw(groups, lr)


def huggingface_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """What transformers' Trainer (5.x, torch >= 2.8) builds by default: optim="adamw_torch_fused",
    learning_rate 5e-5, adam betas (0.9, 0.999), eps 1e-8, weight_decay 0 (in its two groups)."""
    return torch.optim.AdamW(param_groups(model, 0.0), lr=5e-5, betas=(0.9, 0.999), eps=1e-8, fused=True)


def default_optimizers(variants: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    """Each side with its own default optimizer: ours (and the variants sharing its weights) one
    AdamW as our pretraining builds it; each Hugging Face twin the one its Trainer builds."""
    ours = [model for model in variants.values() if not isinstance(model, HuggingFaceMAE)]
    shared = shared_optimizer(ours) if ours else None
    return {name: huggingface_optimizer(model) if isinstance(model, HuggingFaceMAE) else shared
            for name, model in variants.items()}


class TrainStep:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 precision: str = "fp32", compile: bool = False):
        if precision not in STEP_PRECISIONS:
            raise ValueError(f"precision must be one of {STEP_PRECISIONS}, got {precision!r}")
        self.model = model
        self.forward = torch.compile(model) if compile else model
        self.optimizer = optimizer
        self.device = device
        self.precision = precision

    def loss(self, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio: float,
             eager: bool = False) -> torch.Tensor:
        """The forward pass; `eager=True` bypasses torch.compile (for memory hooks)."""
        forward = self.model if eager else self.forward
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return forward(imgs, mask_ratio, noise).loss

    def __call__(self, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio: float) -> torch.Tensor:
        loss = self.loss(imgs, noise, mask_ratio)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()
