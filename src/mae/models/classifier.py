"""Classifiers from an MAE encoder, for fine-tuning, linear probing and evaluation.

    encoder = load_encoder("runs/pretrain")   # mae.weights.load.load_encoder: any checkpoint, or a model
    model, report = build_classifier(encoder, num_classes=1000)                # fine-tune
    model, report = build_classifier(encoder, num_classes=1000, global_pool="token",
                                     head="linprobe")                          # linear probe
    model, report = build_classifier(load_encoder("mae_finetuned_vit_base.pth"),
                                     num_classes=None, global_pool=None)       # evaluate

As the official fine-tuning code:
  * global_pool="avg": mean of the patch tokens through a fresh `fc_norm`; the encoder's
    final `norm` is not used. global_pool="token": the cls token through the loaded `norm`.
  * the head is a linear layer, weight trunc-normal with std 2e-5, bias zero;
  * the position table is loaded and trainable (the official fine-tuning ViT has a learned
    `pos_embed`, initialised from the checkpoint), and resampled in 2-D for another
    resolution;
  * drop path (stochastic depth) grows linearly to `drop_path_rate` over the blocks.
As the official linear probing: head = BatchNorm1d(affine=False, eps=1e-6) then a linear
layer with weight trunc-normal std 0.01; everything but the head is frozen.
"""

import logging
from copy import deepcopy
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..util.sizes import to_2tuple
from .vit import VisionTransformer

log = logging.getLogger(__name__)

HEADS = ("linear", "linprobe")
HEAD_INIT_STD = {"linear": 2e-5, "linprobe": 0.01}
DROP_PATH_DEFAULT = {"linear": 0.1, "linprobe": 0.0}
ARCH_KEYS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias",
             "layer_norm_eps")
PRETRAIN_ONLY_PREFIXES = ("decoder_", "mask_token")


@dataclass
class LoadReport:
    """What loading the encoder into the classifier did, as data."""

    source: str
    loaded: list[str] = field(default_factory=list)  # classifier tensors taken from the checkpoint
    missing: list[str] = field(default_factory=list)  # classifier tensors freshly initialised
    unexpected: list[str] = field(default_factory=list)  # checkpoint tensors not used
    notes: list[str] = field(default_factory=list)  # decisions taken (head dropped, table resampled)

    def summary(self) -> str:
        pretrain_only = [k for k in self.unexpected if k.startswith(PRETRAIN_ONLY_PREFIXES)]
        others = [k for k in self.unexpected if k not in pretrain_only]
        lines = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        lines.append("missing (freshly initialised): " + (", ".join(self.missing) or "none"))
        unexpected = others + ([f"{len(pretrain_only)} decoder tensors"] if pretrain_only else [])
        lines.append("unexpected (not used): " + (", ".join(unexpected) or "none"))
        lines += self.notes
        return "\n".join(lines)


# ---------------------------------------------------------------- official heads


def fold_batchnorm_head_state(state: dict) -> dict:
    """An official linear-probe state (head.0 = BatchNorm, head.1 = Linear) -> a plain head.

    In eval mode BatchNorm without affine is x -> (x - mean) / sqrt(var + eps), so the pair
    is one linear layer: W' = W / sqrt(var + eps) (per input), b' = b - W' @ mean.
    """
    if "head.1.weight" not in state or "head.0.running_mean" not in state:
        return state
    state = dict(state)
    mean, var = state.pop("head.0.running_mean"), state.pop("head.0.running_var")
    state.pop("head.0.num_batches_tracked", None)
    weight, bias = state.pop("head.1.weight"), state.pop("head.1.bias")
    state["head.weight"], state["head.bias"] = _fold(weight, bias, mean, var, eps=1e-6)
    return state


def _fold(weight, bias, mean, var, eps):
    inv_std = (var.double() + eps).rsqrt()  # [D]
    folded_weight = weight.double() * inv_std[None, :]  # [K, D]
    folded_bias = bias.double() - folded_weight @ mean.double()  # [K]
    return folded_weight.to(weight.dtype), folded_bias.to(bias.dtype)


# ---------------------------------------------------------------- building


def build_classifier(
    encoder: VisionTransformer,
    num_classes: int | None,
    global_pool: str | None = "avg",
    drop_path_rate: float | None = None,
    img_size=None,
    head: str = "linear",
    drop_head: bool = False,
    name: str | None = None,
) -> tuple[VisionTransformer, LoadReport]:
    """A ViT classifier with `encoder`'s weights loaded, and a report of what loaded.

    encoder: an mae model (a MaskedAutoencoder or VisionTransformer), as
        `mae.weights.load.load_encoder` reads it from any checkpoint.
    num_classes: classes of the head; None takes the checkpoint's head (for evaluation).
    global_pool: "avg" (official fine-tuning), "token" (official linear probing), or None
        for the checkpoint's own ("avg" when it has `fc_norm`).
    drop_path_rate: None means 0.1 for head="linear" and 0 for "linprobe".
    img_size: input resolution; the position table is resampled in 2-D when it differs.
    head: "linear" (fine-tuning: everything trainable) or "linprobe" (frozen encoder,
        BatchNorm + linear head, always freshly initialised).
    drop_head: start from a fresh head when the checkpoint's has another class count
        (otherwise that is an error).
    name: where the encoder comes from, for messages (default: its class name).
    """
    if not isinstance(encoder, VisionTransformer):
        raise ValueError(f"cannot build a classifier from a {type(encoder).__name__}; expected an mae model")
    name = name or type(encoder).__name__
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if global_pool not in ("avg", "token", None):
        raise ValueError(f"global_pool must be 'avg', 'token' or None, got {global_pool!r}")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    drop_path_rate = DROP_PATH_DEFAULT[head] if drop_path_rate is None else drop_path_rate
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")

    state = dict(encoder.state_dict())
    report = LoadReport(source=name)

    # the checkpoint's head: kept for evaluation / continued fine-tuning when it fits
    has_head = "head.weight" in state
    ckpt_classes = state["head.weight"].shape[0] if has_head else None
    if num_classes is None:
        if ckpt_classes is None:
            raise ValueError(f"{name} has no classification head (a pretraining or encoder-only checkpoint), "
                             "so it cannot be evaluated as a classifier: train one first (mae finetune or "
                             f"mae linprobe --checkpoint {name}), then evaluate that run directory (from "
                             "Python, num_classes= builds a fresh head)")
        num_classes = ckpt_classes
    if has_head and head == "linear" and ckpt_classes != num_classes and not drop_head:
        raise ValueError(
            f"{name} has a head for {ckpt_classes} classes but {num_classes} were asked for; "
            f"ask for {ckpt_classes} classes, or set drop_head to train a fresh head"
        )
    if has_head and (head == "linprobe" or ckpt_classes != num_classes):
        state.pop("head.weight")
        state.pop("head.bias", None)
        report.notes.append(
            f"the checkpoint's {ckpt_classes}-class head was not used: a fresh head is trained"
        )
    if global_pool is None:
        global_pool = "avg" if "fc_norm.weight" in state else "token"

    arch = {k: encoder.config[k] for k in ARCH_KEYS if k in encoder.config}
    model = VisionTransformer(
        **arch, num_classes=num_classes, global_pool=global_pool, drop_path_rate=drop_path_rate
    )
    nn.init.trunc_normal_(model.head.weight, std=HEAD_INIT_STD[head])
    nn.init.zeros_(model.head.bias)
    _load_state(model, state, report)
    if global_pool == "avg" and "norm.weight" in state:
        report.notes.append("global_pool='avg': the encoder's final norm is replaced by a fresh fc_norm")

    if img_size is not None and to_2tuple(img_size) != tuple(model.config["img_size"]):
        old_grid = model.grid_size
        model.set_img_size(img_size)
        report.notes.append(f"position table resampled in 2-D from {old_grid} to {model.grid_size} patches")

    if head == "linear":
        model.pos_embed.requires_grad_(True)  # learned while fine-tuning, as the official ViT
    else:
        linear = model.head
        model.head = nn.Sequential(nn.BatchNorm1d(linear.in_features, affine=False, eps=1e-6), linear)
        model.requires_grad_(False)
        model.head.requires_grad_(True)
    log.info("classifier from %s\n%s", name, report.summary())
    return model, report


def _load_state(model: VisionTransformer, state: dict, report: LoadReport) -> None:
    own = model.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs classifier {tuple(own[k].shape)}"
        for k in own if k in state and state[k].shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(f"{report.source} does not fit the classifier: " + "; ".join(mismatched))
    usable = {k: v for k, v in state.items() if k in own}
    result = model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(result.missing_keys)
    report.unexpected = sorted(set(state) - set(own))


# ---------------------------------------------------------------- after building


def freeze_all_but_last_blocks(model: VisionTransformer, num_blocks: int) -> list[str]:
    """Partial fine-tuning: train only the last `num_blocks` blocks, the final norm and the head.

    Returns the names of the parameters left trainable.
    """
    depth = len(model.blocks)
    if not 0 <= num_blocks <= depth:
        raise ValueError(f"can fine-tune 0 to {depth} last blocks of this model, not {num_blocks}")
    model.requires_grad_(False)
    for block in list(model.blocks)[depth - num_blocks:]:
        block.requires_grad_(True)
    for module_name in ("norm", "fc_norm", "head"):
        if hasattr(model, module_name):
            getattr(model, module_name).requires_grad_(True)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def fold_linprobe_head(model: VisionTransformer) -> VisionTransformer:
    """A copy of a linear-probe classifier whose BatchNorm + linear head is one linear layer.

    The copy computes the same eval-mode logits and saves / loads like any classifier
    (`mae.save_model`, `mae.load_model`, `build_classifier`).
    """
    if not isinstance(model.head, nn.Sequential):
        raise ValueError("the model has no BatchNorm + linear probe head to fold")
    norm, linear = model.head
    folded = deepcopy(model)
    weight, bias = _fold(
        linear.weight.detach(), linear.bias.detach(), norm.running_mean, norm.running_var, norm.eps
    )
    folded.head = nn.Linear(linear.in_features, linear.out_features).to(weight.device)
    with torch.no_grad():
        folded.head.weight.copy_(weight)
        folded.head.bias.copy_(bias)
    return folded.eval()
