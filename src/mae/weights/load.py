"""Reading and writing model weights safely: `load_model` for every known layout, and
`export_model` to write a model in another ecosystem's layout.

Nothing here unpickles code: safetensors files are plain tensors, and `.pth` files go
through `torch.load(weights_only=True)`, which refuses any pickle that holds more than
tensors and plain containers (argparse.Namespace, which official checkpoints carry as
`args`, is allowed: it holds no code).
"""

import argparse
import inspect
import json
import warnings
from pathlib import Path

import torch

from ..models import MaskedAutoencoder, VisionTransformer
from ..models.classifier import fold_batchnorm_head_state
from ..models.pos_embed import grid_from_length, resample_pos_embed
from ..storage.checkpoint_folder import MODEL_FILE, SHARDED_WEIGHTS, latest_checkpoint, model_metadata, read_model_state
from ..storage.tensors import read_pth, read_safetensors, safetensors_keys
from . import hub
from . import layouts as interop
from .format import CONFIG_KEY, KIND_KEY, constructor_kwargs, embedded_config
from .infer import InferredSettingWarning, infer_config

# ---------------------------------------------------------------- files


def unwrap_checkpoint(obj) -> tuple[dict, dict]:
    """A loaded .pth -> (state_dict, training args as a dict)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of tensors, got {type(obj).__name__}")
    args = obj.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else (args if isinstance(args, dict) else {})
    if not args and isinstance(obj.get("meta"), dict):  # mmengine / mmcv: the config as text
        args = interop.mm_training_args(obj["meta"])
    for key in ("model", "state_dict", "model_state"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError("the checkpoint holds no tensors")
    for prefix in ("module.", "_orig_mod."):
        state = interop.strip_prefix(state, prefix)
    return state, args


# ---------------------------------------------------------------- architecture inference


# ---------------------------------------------------------------- loading


def load_weights(model: torch.nn.Module, state: dict, source: str = "checkpoint") -> None:
    """load_state_dict(strict=True) with an error that names what does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        def listing(items):
            return ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {listing(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches: {listing(mismatched)}")
        raise ValueError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def _fit_tables(state: dict, config: dict) -> dict:
    """Resample position tables in 2-D when the weights were saved at another grid."""
    state = dict(state)
    patch = config["patch_size"]
    img = config["img_size"]
    rows, cols = (img, img) if isinstance(img, int) else img
    grid = (rows // patch, cols // patch)
    for key in ("pos_embed", "decoder_pos_embed"):
        if key in state and state[key].shape[1] != 1 + grid[0] * grid[1]:
            old = grid_from_length(state[key].shape[1] - 1)
            state[key] = resample_pos_embed(state[key], old, grid)
    return state


def _read_weights(src) -> tuple[dict, dict, dict | None, str]:
    """Any accepted source -> (state_dict, training args, our metadata or None, name)."""
    if isinstance(src, dict):
        state, args = unwrap_checkpoint(src)
        config = embedded_config(src)
        return state, args, {CONFIG_KEY: json.dumps(config)} if config else None, "state dict"
    path = Path(hub.local_path(src))
    if not path.exists():
        raise ValueError(f"checkpoint {path} does not exist")
    if path.is_dir():
        if (path / "checkpoints").is_dir():  # a run directory of ours
            path = latest_checkpoint(path)
        if (path / SHARDED_WEIGHTS).is_dir():  # a sharded checkpoint of ours
            return _read_sharded(path)
        if (path / "config.json").exists():  # a Hugging Face folder
            return _read_hf_folder(path), {}, {"hf_config": json.loads((path / "config.json").read_text())}, str(path)
        elif (path / MODEL_FILE).exists():
            path = path / MODEL_FILE
        else:
            raise ValueError(
                f"{path} is neither a run directory (checkpoints/), a Hugging Face folder "
                f"(config.json), nor a folder with {MODEL_FILE}"
            )
    if path.suffix == ".safetensors":
        state, metadata = read_safetensors(path)
        if CONFIG_KEY not in metadata and path.name in _hf_weight_files(path.parent):
            return _read_weights(path.parent)  # a Hugging Face folder's weights: with its config.json
        return state, {}, metadata, str(path)
    if path.name in _hf_weight_files(path.parent):
        return _read_weights(path.parent)
    obj = read_pth(path)
    try:
        state, args = unwrap_checkpoint(obj)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    config = embedded_config(obj)
    return state, args, {CONFIG_KEY: json.dumps(config)} if config else None, str(path)


HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # whole, or sharded with HF_WEIGHTS[i] + ".index.json"


def _hf_weight_files(folder: Path) -> list[str]:
    """The weight files of a Hugging Face ViTMAE folder, safetensors first (none when it is not one)."""
    try:
        if json.loads((folder / "config.json").read_text()).get("model_type", "vit_mae") != "vit_mae":
            return []
    except (OSError, ValueError, AttributeError):
        return []
    for weights in HF_WEIGHTS:
        index = folder / f"{weights}.index.json"
        if index.exists():
            return sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if (folder / weights).exists():
            return [weights]
    return []


def _read_hf_folder(folder: Path) -> dict:
    """The tensors of a Hugging Face folder: model.safetensors or pytorch_model.bin, whole or in shards."""
    names = _hf_weight_files(folder)
    if not names:
        raise ValueError(
            f"{folder} has config.json but no ViTMAE weights ({' or '.join(HF_WEIGHTS)}, whole or with "
            "an .index.json of shards), or its config.json is not a vit_mae config"
        )
    state = {}
    for name in names:
        if name.endswith(".safetensors"):
            state.update(read_safetensors(folder / name)[0])
        else:
            state.update(unwrap_checkpoint(read_pth(folder / name))[0])
    return state


def read_checkpoint(src, img_size=None) -> tuple[dict, dict, str, dict]:
    """Any accepted source -> (state dict in our keys, model config, name for messages, guessed).

    The config is the one saved with the weights when there is one (ours, Hugging Face's
    config.json), else inferred from the weights and the run's args (official .pth);
    `guessed` names the settings that were assumed (see `infer_config`). `img_size`, the
    size asked for, tells the grid of a non-square table saved without a config.
    """
    state, args, metadata, name = _read_weights(src)
    metadata = metadata or {}
    if "hf_config" in metadata:
        return interop.hf_to_ours(state), interop.ours_config_from_hf(metadata["hf_config"]), name, {}
    state = interop.to_ours(state, name)
    if CONFIG_KEY in metadata:
        return state, json.loads(metadata[CONFIG_KEY]), name, {}
    try:
        config, guessed = infer_config(state, args, img_size)
        return state, config, name, guessed
    except KeyError as err:  # a layout we know with a tensor missing
        raise ValueError(f"{name} is not a complete ViT checkpoint: no {err}") from None


def load_model(src, **overrides) -> torch.nn.Module:
    """Load a model from any checkpoint we know, in eval mode.

    `src` may be: a run directory of ours (its newest checkpoint), our safetensors file,
    an official `.pth` (full pretraining -> MaskedAutoencoder; encoder-only or fine-tuned
    -> VisionTransformer), a Hugging Face ViTMAE folder or safetensors file, timm ViT
    weights, an mmpretrain / mmsegmentation MAE checkpoint, or a state dict. `overrides`
    are constructor kwargs (unknown ones are an error); `img_size` may differ from the
    checkpoint's (position tables are resampled in 2-D). A setting the checkpoint does not
    record and no override gives is inferred with an InferredSettingWarning that names the
    override. Loading draws nothing from torch's global random generator.
    """
    model, guessed = load_model_with_guesses(src, **overrides)
    for setting, assumed in guessed.items():
        warnings.warn(f"{setting}={assumed} was inferred, not read from the checkpoint; "
                      f"if it is wrong, pass {setting}= to load_model", InferredSettingWarning, stacklevel=2)
    return model


def load_model_with_guesses(src, **overrides) -> tuple[torch.nn.Module, dict]:
    """load_model without the warnings: (model, the settings inferred rather than read)."""
    target_img = overrides.pop("img_size", None)
    state, config, name, guessed = read_checkpoint(src, target_img)
    cls = MaskedAutoencoder if "decoder_embed.weight" in state else VisionTransformer
    unknown = set(overrides) - set(inspect.signature(cls).parameters)
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)} for {name} (a {cls.__name__}); "
                         f"known: {', '.join(inspect.signature(cls).parameters)}")
    guessed = {k: v for k, v in guessed.items() if k not in overrides}
    config.update(overrides)
    if cls is VisionTransformer:
        config.setdefault("num_classes", state["head.weight"].shape[0] if "head.weight" in state else 0)
        config.setdefault("global_pool", "avg" if "fc_norm.weight" in state else "token")
    # the initial weights are overwritten: drawing them from a forked generator leaves the
    # caller's random stream (a new head's init, say) the same whatever the checkpoint's layout
    with torch.random.fork_rng(devices=[]):
        model = cls(**constructor_kwargs(cls, config))
    load_weights(model, _fit_tables(state, model.config), name)
    if target_img is not None:
        model.set_img_size(target_img)
    return model.eval(), guessed


# ---------------------------------------------------------------- encoders for classifiers

ENCODER_KEYS = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight")


def _require_encoder(state: dict, name: str) -> None:
    layout = interop.detect_layout(state)
    if layout not in ("mae", "unknown"):
        return  # another ecosystem's layout: load_model maps and checks it
    absent = [k for k in ENCODER_KEYS if k not in state]
    if absent:
        raise ValueError(
            f"{name} holds no ViT encoder weights: expected {', '.join(ENCODER_KEYS)} (official / "
            f"ours) or vit.embeddings.* (Hugging Face); missing {', '.join(absent)}; "
            f"it has {len(state)} tensors, first: {', '.join(list(state)[:5]) or 'none'}"
        )


def load_encoder(source) -> VisionTransformer:
    """The model `build_classifier` starts from: anything `load_model` accepts, or an mae
    model as it is. A checkpoint without ViT encoder weights is refused naming what it
    holds; an official linear-probe head (BatchNorm + linear) is folded into one linear layer."""
    if isinstance(source, torch.nn.Module):
        if not isinstance(source, VisionTransformer):
            raise ValueError(f"cannot build a classifier from a {type(source).__name__}; expected an mae model")
        return source
    name = "state dict" if isinstance(source, dict) else str(source)
    source = hub.local_path(source)
    obj = source
    if not isinstance(source, dict):
        path = Path(source)
        if not path.exists():
            raise ValueError(f"checkpoint {path} does not exist")
        if path.is_file() and path.suffix == ".safetensors":
            _require_encoder(dict.fromkeys(safetensors_keys(path)), name)  # keys only, no tensors read
        elif path.is_file():
            obj = read_pth(path)  # read once, checked, then handed to load_model with its args
            if not isinstance(obj, dict):
                raise ValueError(f"{name} holds a bare {type(obj).__name__}, not a checkpoint: expected a "
                                 "dict of named weights (a state dict, or one under 'model')")
    if isinstance(obj, dict):
        try:
            state, _ = unwrap_checkpoint(obj)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        _require_encoder(state, name)
        folded = fold_batchnorm_head_state(state)
        if folded is not state:  # keep the run's args and config beside the new weights
            obj = {k: v for k, v in obj.items() if not isinstance(v, (torch.Tensor, dict))}
            obj["model"] = folded
    try:
        return load_model(obj)
    except KeyError as err:  # a layout we know with a tensor missing
        raise ValueError(f"{name} is not a complete ViT encoder checkpoint: no {err}") from None


def _read_sharded(path: Path) -> tuple[dict, dict, dict, str]:
    kind, config = model_metadata(path)
    return read_model_state(path), {}, {KIND_KEY: kind, CONFIG_KEY: json.dumps(config)}, str(path)
