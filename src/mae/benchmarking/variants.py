"""The models a benchmark runs side by side, built from one named config.

    ours          MaskedAutoencoder (encoder on visible patches only)
    ours-compiled the same model (shared) through torch.compile, as a long pretraining run
                  runs it by default (mae.engine.compute.compile_plan)
    full-head     ours, its decoder head predicting every patch (return_pred=True), as the
                  step did before the head ran on the removed patches only
    mask-token    the Table 2 baseline: encoder on all patches with mask tokens
                  (MaskedAutoencoder(encoder_mask_tokens=True))
    hf            transformers' ViTMAEForPreTraining, its default (SDPA) attention
    hf-eager      the same with transformers' eager attention
    hf-matmul     hf with its linear layers on our matmul backend (oneDNN where it is faster),
                  so that what is ours alone shows beside it

Variants of one config share their weights where the architecture allows it (ours and
mask-token share everything but the encoder's mask token), so that big models fit
several times in memory; the Hugging Face twin gets a copy of ours' weights.
"""

import torch.nn as nn

from ..engine.config.bench import VARIANTS
from ..models.linear import Linear
from ..models.mae import MaskedAutoencoder
from ..models.vit import Attention
from ..models.zoo import model_config

COMPILED_VARIANTS = ("ours-compiled",)  # compiled by the benchmark whatever its --compile

ENCODER_PARTS = ("patch_embed", "cls_token", "pos_embed", "blocks", "norm")
DECODER_PARTS = ("mask_token", "decoder_pos_embed", "decoder_embed", "decoder_blocks",
                 "decoder_norm", "decoder_pred")


def share_parts(target: nn.Module, source: nn.Module, parts=ENCODER_PARTS + DECODER_PARTS) -> None:
    """Point `target`'s parts at `source`'s modules and parameters (no copy)."""
    mine, theirs = target.state_dict(keep_vars=True), source.state_dict(keep_vars=True)
    for name in parts:
        for key in (k for k in theirs if k == name or k.startswith(name + ".")):
            if key not in mine or mine[key].shape != theirs[key].shape:
                raise ValueError(f"cannot share {key!r}: the two models differ there")
        setattr(target, name, getattr(source, name))


def mask_token_variant(ours: MaskedAutoencoder) -> MaskedAutoencoder:
    """The paper's Table 2 baseline ("encoder w/ [M]") of `ours`, sharing all but the mask token."""
    variant = MaskedAutoencoder(**{**ours.config, "encoder_mask_tokens": True})
    share_parts(variant, ours, ENCODER_PARTS + tuple(p for p in DECODER_PARTS if p != "mask_token"))
    return variant


def set_fused_attention(model: nn.Module, fused: bool | None) -> None:
    """None: each layer picks its path (see Attention); True: SDPA; False: plain."""
    for module in model.modules():
        if isinstance(module, Attention):
            module.fused = fused


class FullHead(nn.Module):
    """Our model (shared, not copied) behind our call, predicting every patch."""

    def __init__(self, model: MaskedAutoencoder):
        super().__init__()
        self.mae = model

    def forward(self, imgs, mask_ratio: float = 0.75, noise=None):
        return self.mae(imgs, mask_ratio, noise, return_pred=True)


class HuggingFaceMAE(nn.Module):
    """transformers' ViTMAEForPreTraining behind our call: model(imgs, mask_ratio, noise).loss"""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, imgs, mask_ratio: float = 0.75, noise=None):
        if mask_ratio != self.hf.config.mask_ratio:
            raise ValueError(f"this Hugging Face model was built for mask ratio "
                             f"{self.hf.config.mask_ratio}, not {mask_ratio}")
        return self.hf(pixel_values=imgs, noise=noise)


def route_linears(model: nn.Module) -> None:
    """Send every plain nn.Linear of `model` through our matmul backend (same parameters)."""
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = Linear


def huggingface_twin(model: MaskedAutoencoder, mask_ratio: float, attention: str = "sdpa") -> HuggingFaceMAE:
    """A ViTMAEForPreTraining with our model's architecture and weights."""
    try:
        import transformers
    except ImportError as err:
        raise ValueError("the Hugging Face comparison needs transformers: pip install transformers") from err
    from ..weights.layouts import hf_config_from_ours, ours_to_hf

    height, width = model.config["img_size"]
    if height != width:
        raise ValueError(f"the Hugging Face ViTMAE builds square images only, not {height}x{width}")
    config = hf_config_from_ours({**model.config, "img_size": height, "mask_ratio": mask_ratio})
    config = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    hf = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**config))
    hf.set_attn_implementation(attention)
    hf.load_state_dict(ours_to_hf(model.state_dict(), spelling="in_memory"), strict=True)
    return HuggingFaceMAE(hf)


def build_variants(names, model: str, mask_ratio: float, fused_attention: bool | None = None,
                   **overrides) -> dict[str, nn.Module]:
    """The named variants of one config, on the CPU; weights shared or copied from ours."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    config = model_config(model, **overrides)
    ours = MaskedAutoencoder(**config)
    built = {}
    for name in names:
        if name in ("ours", "ours-compiled"):
            built[name] = ours
        elif name == "full-head":
            built[name] = FullHead(ours)
        elif name == "mask-token":
            built[name] = mask_token_variant(ours)
        else:
            attention = "eager" if name == "hf-eager" else "sdpa"
            if fused_attention is not None and name == "hf":
                attention = "sdpa" if fused_attention else "eager"
            built[name] = huggingface_twin(ours, mask_ratio, attention)
            if name == "hf-matmul":
                route_linears(built[name])
    for variant in built.values():
        set_fused_attention(variant, fused_attention)
    return built
