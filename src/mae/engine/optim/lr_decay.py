"""Layer-wise learning-rate decay for fine-tuning a ViT (ELECTRA / BEiT, as the MAE recipe).

Every parameter gets a layer id: the embedding (cls_token, pos_embed, patch_embed) is
layer 0, block i is layer i + 1, everything after the blocks (norm, fc_norm, head) is
layer depth + 1. Its lr is scaled by

    layer_decay ** (depth + 1 - layer_id)

so the head trains at the full lr and each block below it at `layer_decay` times the one
above. 1-D parameters (biases, norm weights) and the named tokens get no weight decay.
Groups carry `lr_scale`; the schedule sets each group's lr to `lr * lr_scale`
(`mae.engine.optim.optimizers.set_lr`).
"""

import torch

# timm's ViT.no_weight_decay(), which the official fine-tuning passes on
NO_WEIGHT_DECAY = ("pos_embed", "cls_token", "dist_token")

# wrappers that prefix parameter names (DDP, torch.compile)
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _unwrapped_name(name: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix):], True
    return name


def layer_id_for_vit(name: str, num_layers: int) -> int:
    """Layer id of a ViT parameter; `num_layers` is depth + 1 (the id of the head)."""
    name = _unwrapped_name(name)
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return num_layers


def param_groups_lrd(
    model: torch.nn.Module,
    weight_decay: float = 0.05,
    no_weight_decay_list=NO_WEIGHT_DECAY,
    layer_decay: float = 0.75,
) -> list[dict]:
    """Optimizer param groups, one per (layer, decay or not), trainable parameters only.

    Each group: {"params", "param_names", "weight_decay", "lr_scale", "name"}; extra keys
    are kept by torch optimizers and saved with their state.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    if not hasattr(model, "blocks"):
        raise ValueError(f"layer-wise lr decay needs a ViT with .blocks, got {type(model).__name__}")
    num_layers = len(model.blocks) + 1
    no_decay = set(no_weight_decay_list)
    groups: dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim == 1 or _unwrapped_name(name) in no_decay:
            kind, decay = "no_decay", 0.0
        else:
            kind, decay = "decay", weight_decay
        layer_id = layer_id_for_vit(name, num_layers)
        group_name = f"layer_{layer_id}_{kind}"
        if group_name not in groups:
            groups[group_name] = {
                "name": group_name,
                "lr_scale": layer_decay ** (num_layers - layer_id),
                "weight_decay": decay,
                "params": [],
                "param_names": [],
            }
        groups[group_name]["params"].append(param)
        groups[group_name]["param_names"].append(name)
    return list(groups.values())
