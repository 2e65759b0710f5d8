"""Key maps between our state dicts and other ecosystems' layouts.

Ours is the official MAE layout (timm ViT names), so official checkpoints (pretraining,
encoder-only and fine-tuned) and timm ViT weights need no renaming; timm has no decoder.
Hugging Face ViTMAE splits qkv into query/key/value and renames every module; it exists in
two spellings: the one published checkpoints use (`vit.encoder.layer.{i}.attention.
attention.query`, ...) and the one transformers >= 5 builds in memory (`vit.layers.{i}.
attention.q_proj`, ...). We read both and write the published one, which every
transformers version loads. mmpretrain (and mmsegmentation, whose converters apply the
same renaming) keeps qkv fused but renames the modules: `backbone.layers.{i}.ln1`,
`ffn.layers.0.0`, ... with the decoder under `neck.` and a linear head under `head.fc`.
"""

import re

import torch

from ..models.vit import LAYER_NORM_EPS

# ---------------------------------------------------------------- layout detection

# What `detect_layout` recognises, for error messages.
KNOWN_LAYOUTS = {
    "mae": "ours / official MAE / timm ViT (cls_token, patch_embed.proj.weight, blocks.{i}...)",
    "hf": "Hugging Face ViTMAE (vit.embeddings.cls_token, vit.encoder.layer.{i}...)",
    "mmpretrain": "mmpretrain (backbone.patch_embed.projection.weight, backbone.layers.{i}.ln1...)",
    "mmseg": "mmsegmentation MAE / VisionTransformer backbone, beit2mmseg or vit2mmseg output "
    "(patch_embed.projection.weight, layers.{i}.ln1...)",
}

# Parameters only the pretraining model has; encoder-only layouts drop them.
DECODER_PREFIXES = ("mask_token", "decoder_")


def strip_prefix(state_dict: dict, prefix: str) -> dict:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def detect_layout(state_dict: dict) -> str:
    """'mae' (official / ours / timm), 'hf' (Hugging Face ViTMAE), 'mmpretrain', or 'unknown'."""
    keys = set(state_dict)
    # before "mae": beit2mmseg output keeps a copy of patch_embed.proj beside its projection
    if keys & {"backbone.patch_embed.projection.weight", "patch_embed.projection.weight"}:
        return "mmpretrain"
    if "cls_token" in keys and "patch_embed.proj.weight" in keys:
        return "mae"
    hf_markers = ("embeddings.cls_token", "vit.embeddings.cls_token")
    if keys & set(hf_markers):
        return "hf"
    return "unknown"


def unknown_layout_message(name: str, state_dict: dict) -> str:
    known = "; ".join(f"{k}: {v}" for k, v in KNOWN_LAYOUTS.items())
    return (
        f"{name}: unknown checkpoint layout (known: our safetensors, official MAE .pth, "
        f"Hugging Face ViTMAE, timm ViT, mmpretrain/mmsegmentation MAE backbone; by keys: "
        f"{known}); first keys: {list(state_dict)[:5]}"
    )


def to_ours(state_dict: dict, name: str = "checkpoint") -> dict:
    """Any layout `detect_layout` knows -> our keys; a clear error for any other."""
    layout = detect_layout(state_dict)
    if layout == "mae":
        return dict(state_dict)
    if layout == "hf":
        return hf_to_ours(state_dict)
    if layout == "mmpretrain":
        return mm_to_ours(state_dict)
    raise ValueError(unknown_layout_message(name, state_dict))


def split_decoder(state_dict: dict) -> tuple[dict, list[str]]:
    """(encoder and head tensors, names of the dropped pretraining-only tensors)."""
    kept = {k: v for k, v in state_dict.items() if not k.startswith(DECODER_PREFIXES)}
    return kept, [k for k in state_dict if k not in kept]


# ---------------------------------------------------------------- Hugging Face

# (our block suffix, HF published suffix, HF in-memory (transformers >= 5) suffix)
_BLOCK_KEYS = [
    ("norm1", "layernorm_before", "layernorm_before"),
    ("norm2", "layernorm_after", "layernorm_after"),
    ("attn.proj", "attention.output.dense", "attention.o_proj"),
    ("mlp.fc1", "intermediate.dense", "mlp.fc1"),
    ("mlp.fc2", "output.dense", "mlp.fc2"),
]
_QKV_PUBLISHED = ("attention.attention.query", "attention.attention.key", "attention.attention.value")
_QKV_IN_MEMORY = ("attention.q_proj", "attention.k_proj", "attention.v_proj")

_TOP_KEYS = [  # ours -> HF (without the "vit." / "decoder." split below)
    ("cls_token", "vit.embeddings.cls_token"),
    ("pos_embed", "vit.embeddings.position_embeddings"),
    ("patch_embed.proj", "vit.embeddings.patch_embeddings.projection"),
    ("norm", "vit.layernorm"),
    ("mask_token", "decoder.mask_token"),
    ("decoder_pos_embed", "decoder.decoder_pos_embed"),
    ("decoder_embed", "decoder.decoder_embed"),
    ("decoder_norm", "decoder.decoder_norm"),
    ("decoder_pred", "decoder.decoder_pred"),
]


def _split_param(key: str) -> tuple[str, str]:
    """'a.b.weight' -> ('a.b', '.weight'); parameters without a suffix stay whole."""
    for suffix in (".weight", ".bias"):
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    return key, ""


def ours_to_hf(state_dict: dict, spelling: str = "published") -> dict:
    """Our (official) keys -> Hugging Face ViTMAEForPreTraining keys.

    spelling="published" writes the names of published checkpoints (loadable by every
    transformers version through from_pretrained); "in_memory" writes the names a
    transformers >= 5 model has in memory (for load_state_dict on a live model).
    """
    if spelling not in ("published", "in_memory"):
        raise ValueError(f"spelling must be 'published' or 'in_memory', got {spelling!r}")
    published = spelling == "published"
    qkv_names = _QKV_PUBLISHED if published else _QKV_IN_MEMORY
    block_names = {ours: (pub if published else mem) for ours, pub, mem in _BLOCK_KEYS}
    layer_prefix = "vit.encoder.layer." if published else "vit.layers."
    out = {}
    for key, value in state_dict.items():
        module, suffix = _split_param(key)
        block = re.fullmatch(r"(blocks|decoder_blocks)\.(\d+)\.(.+)", module)
        if block:
            stack, index, rest = block.groups()
            base = f"{layer_prefix}{index}." if stack == "blocks" else f"decoder.decoder_layers.{index}."
            if rest == "attn.qkv":
                for name, part in zip(qkv_names, value.chunk(3, dim=0)):
                    out[base + name + suffix] = part.clone()
                continue
            if rest not in block_names:
                raise ValueError(f"no Hugging Face name for key {key!r}")
            out[base + block_names[rest] + suffix] = value
            continue
        names = dict(_TOP_KEYS)
        if module not in names:
            raise ValueError(f"no Hugging Face name for key {key!r}")
        out[names[module] + suffix] = value
    return out


def hf_to_ours(state_dict: dict) -> dict:
    """Hugging Face ViTMAE keys (either spelling, with or without `vit.`) -> ours.

    transformers 5's save_pretrained writes the decoder's layers as
    `decoder.decoder_encoder.layer.{i}` (its renaming back to the published spelling also
    hits `decoder_layers`); that spelling is read too.
    """
    if "embeddings.cls_token" in state_dict:  # a bare ViTMAEModel
        state_dict = {"vit." + k: v for k, v in state_dict.items()}
    top = {hf: ours for ours, hf in _TOP_KEYS}
    block_names = {}
    for ours, published, in_memory in _BLOCK_KEYS:
        block_names[published] = block_names[in_memory] = ours
    qkv_names = {name: i for names in (_QKV_PUBLISHED, _QKV_IN_MEMORY) for i, name in enumerate(names)}

    out, qkv_parts = {}, {}
    for key, value in state_dict.items():
        module, suffix = _split_param(key)
        block = re.fullmatch(
            r"(vit\.encoder\.layer|vit\.layers|decoder\.decoder_layers|decoder\.decoder_encoder\.layer)"
            r"\.(\d+)\.(.+)",
            module,
        )
        if block:
            stack, index, rest = block.groups()
            base = f"decoder_blocks.{index}." if stack.startswith("decoder") else f"blocks.{index}."
            if rest in qkv_names:
                qkv_parts.setdefault(base + "attn.qkv" + suffix, [None] * 3)[qkv_names[rest]] = value
            elif rest in block_names:
                out[base + block_names[rest] + suffix] = value
            else:
                raise ValueError(f"unknown Hugging Face ViTMAE key {key!r}")
            continue
        if module not in top:
            raise ValueError(f"unknown Hugging Face ViTMAE key {key!r}")
        out[top[module] + suffix] = value
    for key, parts in qkv_parts.items():
        if any(p is None for p in parts):
            raise ValueError(f"incomplete query/key/value weights for {key!r}")
        out[key] = torch.cat(parts, dim=0)
    return out


HF_LAYER_NORM_EPS = 1e-12  # ViTMAEConfig's default, for a config.json that does not say


def hf_config_from_ours(config: dict) -> dict:
    """Our model config -> a Hugging Face ViTMAEConfig dict (config.json).

    An encoder-only config (no decoder) becomes a ViTMAEModel config; its decoder fields
    keep ViTMAEConfig's defaults, which ViTMAEModel does not use.
    """
    img_size = config["img_size"]
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    hidden = int(config["embed_dim"] * config["mlp_ratio"])
    has_decoder = "decoder_embed_dim" in config
    decoder_dim = config.get("decoder_embed_dim", 512)
    return {
        "model_type": "vit_mae",
        "architectures": ["ViTMAEForPreTraining" if has_decoder else "ViTMAEModel"],
        "image_size": height if height == width else [height, width],
        "patch_size": config["patch_size"],
        "num_channels": config["in_chans"],
        "hidden_size": config["embed_dim"],
        "num_hidden_layers": config["depth"],
        "num_attention_heads": config["num_heads"],
        "intermediate_size": hidden,
        "decoder_hidden_size": decoder_dim,
        "decoder_num_hidden_layers": config.get("decoder_depth", 8),
        "decoder_num_attention_heads": config.get("decoder_num_heads", 16),
        "decoder_intermediate_size": int(decoder_dim * config["mlp_ratio"]),
        "hidden_act": "gelu",
        "layer_norm_eps": float(config.get("layer_norm_eps", LAYER_NORM_EPS)),
        "qkv_bias": bool(config.get("qkv_bias", True)),
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "norm_pix_loss": bool(config.get("norm_pix_loss", False)),
        "mask_ratio": float(config.get("mask_ratio", 0.75)),
    }


def ours_config_from_hf(hf: dict) -> dict:
    """A Hugging Face ViTMAEConfig dict -> our constructor kwargs."""
    if hf.get("model_type", "vit_mae") != "vit_mae":
        raise ValueError(f"not a ViTMAE config: model_type={hf.get('model_type')!r}")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported activation {hf['hidden_act']!r}; only exact gelu is built")
    mlp_ratio = hf.get("intermediate_size", 4 * hf["hidden_size"]) / hf["hidden_size"]
    decoder_ratio = hf.get("decoder_intermediate_size", 4 * hf["decoder_hidden_size"]) / hf["decoder_hidden_size"]
    if decoder_ratio != mlp_ratio:
        raise ValueError("encoder and decoder MLP ratios differ; this layout is not supported")
    img_size = hf.get("image_size", 224)
    return dict(
        img_size=img_size if isinstance(img_size, int) else list(img_size),
        patch_size=hf.get("patch_size", 16),
        in_chans=hf.get("num_channels", 3),
        embed_dim=hf["hidden_size"],
        depth=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        decoder_embed_dim=hf["decoder_hidden_size"],
        decoder_depth=hf["decoder_num_hidden_layers"],
        decoder_num_heads=hf["decoder_num_attention_heads"],
        mlp_ratio=mlp_ratio,
        norm_pix_loss=bool(hf.get("norm_pix_loss", False)),
        layer_norm_eps=float(hf.get("layer_norm_eps", HF_LAYER_NORM_EPS)),
        mask_ratio=float(hf.get("mask_ratio", 0.75)),
    )


# ---------------------------------------------------------------- mmpretrain / mmsegmentation

# Our block suffix -> mmpretrain's TransformerEncoderLayer suffix (qkv stays fused).
_MM_BLOCK_KEYS = [
    ("norm1", "ln1"),
    ("attn.qkv", "attn.qkv"),
    ("attn.proj", "attn.proj"),
    ("norm2", "ln2"),
    ("mlp.fc1", "ffn.layers.0.0"),
    ("mlp.fc2", "ffn.layers.1"),
]
# Our module -> mmpretrain's: the encoder is the `backbone` (final norm `ln1`; the
# global-pool norm of a fine-tuned model is `ln2`, out_type="avg_featmap"), the decoder
# the `neck` (MAEPretrainDecoder, whose norm is `ln1`), a linear head `head.fc`.
_MM_TOP_KEYS = [
    ("patch_embed.proj", "backbone.patch_embed.projection"),
    ("cls_token", "backbone.cls_token"),
    ("pos_embed", "backbone.pos_embed"),
    ("norm", "backbone.ln1"),
    ("fc_norm", "backbone.ln2"),
    ("head", "head.fc"),
    ("mask_token", "neck.mask_token"),
    ("decoder_pos_embed", "neck.decoder_pos_embed"),
    ("decoder_embed", "neck.decoder_embed"),
    ("decoder_norm", "neck.ln1"),
    ("decoder_pred", "neck.decoder_pred"),
]
# Other spellings read back: mmsegmentation's beit2mmseg keeps the final `norm`;
# vit2mmseg writes nn.MultiheadAttention names; VisionTransformerClsHead's linear layer.
_MM_TOP_ALIASES = {"backbone.norm": "norm", "head.layers.head": "head"}
_MM_BLOCK_ALIASES = {"attn.attn.out_proj": "attn.proj"}
_MM_PARAM_ALIASES = {"attn.attn.in_proj_weight": "attn.qkv.weight", "attn.attn.in_proj_bias": "attn.qkv.bias"}


def ours_to_mm(state_dict: dict) -> dict:
    """Our keys -> mmpretrain's MAE (backbone + neck) / ImageClassifier keys."""
    blocks = dict(_MM_BLOCK_KEYS)
    top = dict(_MM_TOP_KEYS)
    out = {}
    for key, value in state_dict.items():
        module, suffix = _split_param(key)
        block = re.fullmatch(r"(blocks|decoder_blocks)\.(\d+)\.(.+)", module)
        if block:
            stack, index, rest = block.groups()
            base = f"backbone.layers.{index}." if stack == "blocks" else f"neck.decoder_blocks.{index}."
            if rest not in blocks:
                raise ValueError(f"no mmpretrain name for key {key!r}")
            out[base + blocks[rest] + suffix] = value
        elif module in top:
            out[top[module] + suffix] = value
        else:
            raise ValueError(f"no mmpretrain name for key {key!r}")
    return out


def mm_to_ours(state_dict: dict) -> dict:
    """mmpretrain / mmsegmentation keys (with or without `backbone.`) -> ours.

    Also read: beit2mmseg output, which renames the encoder's blocks only (the decoder and
    the final `norm` keep the official names, and `patch_embed.proj` stays as a copy beside
    `patch_embed.projection`), and `ours_to_mmseg` output (layer scale at one and
    relative-position tables at zero are neutral and dropped; any other value is refused).
    """
    if not any(k.startswith("backbone.") for k in state_dict):  # a bare backbone's state dict
        state_dict = {"backbone." + k: v for k, v in state_dict.items()}
    blocks = {mm: ours for ours, mm in _MM_BLOCK_KEYS}
    blocks.update(_MM_BLOCK_ALIASES)
    top = {mm: ours for ours, mm in _MM_TOP_KEYS}
    top.update(_MM_TOP_ALIASES)
    out = {}

    def put(ours: str, key: str, value: torch.Tensor) -> None:
        if ours in out and not torch.equal(out[ours], value):
            raise ValueError(f"mmpretrain key {key!r} disagrees with another spelling of {ours!r}")
        out[ours] = value

    for key, value in state_dict.items():
        block = re.fullmatch(r"(backbone\.layers|neck\.decoder_blocks)\.(\d+)\.(.+)", key)
        if block:
            stack, index, rest = block.groups()
            base = f"blocks.{index}." if stack.startswith("backbone") else f"decoder_blocks.{index}."
            if rest in _MMSEG_NEUTRAL:
                _check_neutral(key, _MMSEG_NEUTRAL[rest], value)
            elif rest in _MM_PARAM_ALIASES:
                put(base + _MM_PARAM_ALIASES[rest], key, value)
            else:
                module, suffix = _split_param(rest)
                if module not in blocks:
                    raise ValueError(f"unknown mmpretrain key {key!r}")
                put(base + blocks[module] + suffix, key, value)
            continue
        official = key.removeprefix("backbone.")  # beit2mmseg leaves these with the official names
        if official.startswith(DECODER_PREFIXES) or official.startswith("patch_embed.proj."):
            put(official, key, value)
            continue
        module, suffix = _split_param(key)
        if module not in top:
            raise ValueError(f"unknown mmpretrain key {key!r}")
        put(top[module] + suffix, key, value)
    return out


# ---------------------------------------------------------------- mmsegmentation

# mmsegmentation's MAE backbone is a BEiT: per block a layer scale (gamma_1, gamma_2) and a
# relative-position bias table our ViT does not have. Ones and zeros make them no-ops.
_MMSEG_NEUTRAL = {"gamma_1": 1.0, "gamma_2": 1.0, "attn.relative_position_bias_table": 0.0,
                  "attn.relative_position_index": None}  # the index is a buffer, rebuilt by mmseg
# Its VisionTransformer names attention as nn.MultiheadAttention does.
_MMSEG_VIT_ATTENTION = {"attn.qkv.weight": "attn.attn.in_proj_weight", "attn.qkv.bias": "attn.attn.in_proj_bias",
                        "attn.proj.weight": "attn.attn.out_proj.weight", "attn.proj.bias": "attn.attn.out_proj.bias"}


def _check_neutral(key: str, neutral: float | None, value: torch.Tensor) -> None:
    if neutral is not None and not torch.all(value == neutral):
        raise ValueError(f"mmsegmentation key {key!r} is not {neutral} everywhere: a layer-scale or "
                         "relative-position model (BEiT), which this ViT cannot hold")


def ours_to_mmseg(state_dict: dict) -> dict:
    """Our encoder keys -> what mmsegmentation's MAE backbone and VisionTransformer load.

    Bare keys (as `pretrained=` / init_cfg Pretrained read them): the mmpretrain block
    names under `layers.{i}`, each block's layer scale written as ones, and the attention
    a second time under VisionTransformer's nn.MultiheadAttention names (the same tensors).
    The relative-position tables are left out: mmseg's MAE starts them at zero.
    """
    out = {key.removeprefix("backbone."): value for key, value in ours_to_mm(state_dict).items()}
    cls = out["cls_token"]  # [1, 1, D]
    for index in sorted({k.split(".")[1] for k in out if k.startswith("layers.")}, key=int):
        for name in ("gamma_1", "gamma_2"):
            out[f"layers.{index}.{name}"] = torch.ones(cls.shape[-1], dtype=cls.dtype)
        for ours, vit in _MMSEG_VIT_ATTENTION.items():
            if f"layers.{index}.{ours}" in out:
                out[f"layers.{index}.{vit}"] = out[f"layers.{index}.{ours}"]
    return out


def mm_training_args(meta: dict) -> dict:
    """What an mmengine / mmcv checkpoint's `meta` says of the MAE recipe, as official args.

    Their runners store the whole config as text (`meta["cfg"]`, older `meta["config"]`);
    the MAE head's `norm_pix` and the backbone's `mask_ratio` are read from it.
    """
    text = next((meta[k] for k in ("cfg", "config") if isinstance(meta.get(k), str)), "")
    args = {}
    norm_pix = re.search(r"""\bnorm_pix['"]?\s*[=:]\s*(True|False)\b""", text)
    if norm_pix:
        args["norm_pix_loss"] = norm_pix.group(1) == "True"
    mask_ratio = re.search(r"""\bmask_ratio['"]?\s*[=:]\s*([0-9.]+)""", text)
    if mask_ratio:
        args["mask_ratio"] = float(mask_ratio.group(1))
    return args
