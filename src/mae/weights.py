"""Reading and writing model weights safely, and `load_model` for every known layout.

Nothing here unpickles code: safetensors files are plain tensors, and `.pth` files go
through `torch.load(weights_only=True)`, which refuses any pickle that holds more than
tensors and plain containers (argparse.Namespace, which official checkpoints carry as
`args`, is allowed: it holds no code).
"""

import argparse
import inspect
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import interop
from .models import MaskedAutoencoder, VisionTransformer
from .models.pos_embed import grid_from_length, resample_pos_embed
from .models.zoo import CONFIGS

FORMAT_KEY = "mae.format"
KIND_KEY = "mae.kind"  # "mae" (with decoder) or "vit" (encoder / classifier)
CONFIG_KEY = "mae.config"
MODEL_FILE = "model.safetensors"


# ---------------------------------------------------------------- files


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), fsync, then rename over `path`: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def model_kind_and_config(model: torch.nn.Module) -> tuple[str, dict]:
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"cannot save a {type(model).__name__}; expected an mae model")
    return ("mae" if isinstance(model, MaskedAutoencoder) else "vit"), dict(model.config)


def save_model(model: torch.nn.Module, path: str | os.PathLike, extra_metadata: dict | None = None):
    """Write a model's weights and config as one safetensors file, atomically."""
    kind, config = model_kind_and_config(model)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {FORMAT_KEY: "1", KIND_KEY: kind, CONFIG_KEY: json.dumps(config)}
    metadata.update(extra_metadata or {})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_safetensors(path: str | os.PathLike) -> tuple[dict, dict]:
    tensors = {}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = f.metadata() or {}
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    return tensors, metadata


def read_pth(path: str | os.PathLike) -> dict:
    """torch.load without executing code; a pickle with anything else is refused."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError and friends
        raise ValueError(
            f"refusing to load {path}: it is not a plain checkpoint of tensors and containers "
            f"(loading it would run code from the file). Details: {err}"
        ) from None


def unwrap_checkpoint(obj) -> tuple[dict, dict]:
    """A loaded .pth -> (state_dict, training args as a dict)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of tensors, got {type(obj).__name__}")
    args = obj.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else (args if isinstance(args, dict) else {})
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


def latest_model_file(run_dir: Path) -> Path:
    """The newest complete checkpoint's weights in a run directory."""
    candidates = sorted(
        p for p in (run_dir / "checkpoints").glob(f"*/{MODEL_FILE}") if not p.parent.name.startswith(".")
    )
    if not candidates:
        raise ValueError(f"run directory {run_dir} has no checkpoints/*/{MODEL_FILE} yet")
    return candidates[-1]


# ---------------------------------------------------------------- architecture inference


def _count_blocks(state: dict, prefix: str) -> int:
    indices = {int(k.split(".")[1]) for k in state if k.startswith(prefix + ".")}
    return max(indices) + 1 if indices else 0


def infer_config(state: dict, args: dict | None = None) -> dict:
    """Constructor kwargs from official-layout weights (and the run's args, if any)."""
    args = args or {}
    embed_dim = state["cls_token"].shape[-1]
    proj = state["patch_embed.proj.weight"]  # [D, C, p, p]
    patch_size, in_chans = proj.shape[-1], proj.shape[1]
    depth = _count_blocks(state, "blocks")
    config = dict(
        patch_size=patch_size,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depth=depth,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
    )
    if isinstance(args.get("input_size"), int):
        config["img_size"] = args["input_size"]
    else:
        rows, cols = grid_from_length(state["pos_embed"].shape[1] - 1)
        config["img_size"] = [rows * patch_size, cols * patch_size]
    if "norm_pix_loss" in args:
        config["norm_pix_loss"] = bool(args["norm_pix_loss"])

    # Head counts are not in the weights: take them from the matching named model.
    named = args.get("model") if args.get("model") in CONFIGS else None
    for name, known in CONFIGS.items():
        if named is None and (known["embed_dim"], known["depth"], known["patch_size"]) == (
            embed_dim, depth, patch_size,
        ):
            named = name
    known = CONFIGS.get(named, {})
    config["num_heads"] = known.get("num_heads", max(1, embed_dim // 64))
    if "decoder_embed.weight" in state:
        dec_dim = state["decoder_embed.weight"].shape[0]
        config.update(
            decoder_embed_dim=dec_dim,
            decoder_depth=_count_blocks(state, "decoder_blocks"),
            decoder_num_heads=known.get("decoder_num_heads", 16)
            if known.get("decoder_embed_dim") == dec_dim else max(1, dec_dim // 32),
        )
    return config


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


def _read_source(src) -> tuple[dict, dict, dict | None, str]:
    """Any accepted source -> (state_dict, training args, our metadata or None, name)."""
    if isinstance(src, dict):
        state, args = unwrap_checkpoint(src)
        return state, args, None, "state dict"
    path = Path(src)
    if not path.exists():
        raise ValueError(f"checkpoint {path} does not exist")
    if path.is_dir():
        if (path / "checkpoints").is_dir():  # a run directory of ours
            path = latest_model_file(path)
        elif (path / "config.json").exists():  # a Hugging Face folder
            hf_config = json.loads((path / "config.json").read_text())
            weights = path / "model.safetensors"
            if weights.exists():
                state, _ = read_safetensors(weights)
            elif (path / "pytorch_model.bin").exists():
                state, _ = unwrap_checkpoint(read_pth(path / "pytorch_model.bin"))
            else:
                raise ValueError(f"{path} has config.json but no model.safetensors or pytorch_model.bin")
            return state, {}, {"hf_config": hf_config}, str(path)
        elif (path / MODEL_FILE).exists():
            path = path / MODEL_FILE
        else:
            raise ValueError(
                f"{path} is neither a run directory (checkpoints/), a Hugging Face folder "
                f"(config.json), nor a folder with {MODEL_FILE}"
            )
    if path.suffix == ".safetensors":
        state, metadata = read_safetensors(path)
        return state, {}, metadata, str(path)
    state, args = unwrap_checkpoint(read_pth(path))
    return state, args, None, str(path)


def load_model(src, **overrides) -> torch.nn.Module:
    """Load a model from any checkpoint we know, in eval mode.

    `src` may be: a run directory of ours (its newest checkpoint), our safetensors file,
    an official `.pth` (full pretraining -> MaskedAutoencoder; encoder-only or fine-tuned
    -> VisionTransformer), a Hugging Face ViTMAE folder or safetensors file, or a state
    dict. `overrides` are constructor kwargs; `img_size` may differ from the checkpoint's
    (position tables are resampled in 2-D).
    """
    state, args, metadata, name = _read_source(src)
    metadata = metadata or {}
    if "hf_config" in metadata:
        state = interop.hf_to_ours(state)
        config = interop.ours_config_from_hf(metadata["hf_config"])
    else:
        layout = interop.detect_layout(state)
        if layout == "hf":
            state = interop.hf_to_ours(state)
        elif layout != "mae":
            raise ValueError(
                f"{name}: unknown checkpoint layout (known: our safetensors, official MAE .pth, "
                f"Hugging Face ViTMAE); first keys: {list(state)[:5]}"
            )
        config = json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else infer_config(state, args)

    target_img = overrides.pop("img_size", None)
    config.update(overrides)
    if "decoder_embed.weight" in state:
        model = MaskedAutoencoder(**constructor_kwargs(MaskedAutoencoder, config))
    else:
        config.setdefault("num_classes", state["head.weight"].shape[0] if "head.weight" in state else 0)
        config.setdefault("global_pool", "avg" if "fc_norm.weight" in state else "token")
        model = VisionTransformer(**constructor_kwargs(VisionTransformer, config))
    load_weights(model, _fit_tables(state, model.config), name)
    if target_img is not None:
        model.set_img_size(target_img)
    return model.eval()


def constructor_kwargs(cls, config: dict) -> dict:
    """The entries of `config` that `cls` takes."""
    return {k: v for k, v in config.items() if k in inspect.signature(cls).parameters}
