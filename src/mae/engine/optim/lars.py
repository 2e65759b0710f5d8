"""LARS (layer-wise adaptive rate scaling), the linear-probing optimizer of MoCo v3 / MAE.

For a parameter p with gradient g, per step:

    if p.ndim > 1:                       # weights; biases and norm parameters are left alone
        u = g + weight_decay * p
        q = trust_coefficient * |p| / |u|   (1 when |p| or |u| is 0)
        u = q * u
    else:
        u = g
    mu = momentum * mu + u               # mu starts at zero
    p  = p - lr * mu
"""

import torch


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr=0.0, weight_decay=0.0, momentum=0.9, trust_coefficient=0.001):
        for name, value in (("lr", lr), ("weight_decay", weight_decay), ("momentum", momentum),
                            ("trust_coefficient", trust_coefficient)):
            if value < 0:
                raise ValueError(f"LARS {name} must be >= 0, got {value}")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                        trust_coefficient=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:
                    update = update.add(p, alpha=group["weight_decay"])
                    param_norm = torch.linalg.vector_norm(p)
                    update_norm = torch.linalg.vector_norm(update)
                    # stays on the device: no host sync for the zero checks
                    trust = torch.where(
                        (param_norm > 0) & (update_norm > 0),
                        group["trust_coefficient"] * param_norm / update_norm,
                        torch.ones_like(param_norm),
                    )
                    update = update.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(update)
                p.add_(mu, alpha=-group["lr"])
        return loss
