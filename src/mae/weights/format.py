"""Our weights format: one safetensors file of tensors with the model's kind and config in its metadata."""

import inspect
import json
import os
from pathlib import Path

import torch

from ..models import MaskedAutoencoder, VisionTransformer
from ..storage.files import atomic_write
from ..storage.tensors import write_tensors

FORMAT_KEY = "mae.format"

KIND_KEY = "mae.kind"  # "mae" (with decoder) or "vit" (encoder / classifier)

CONFIG_KEY = "mae.config"

PTH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def model_kind_and_config(model: torch.nn.Module) -> tuple[str, dict]:
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"cannot save a {type(model).__name__}; expected an mae model")
    return ("mae" if isinstance(model, MaskedAutoencoder) else "vit"), dict(model.config)


def save_model(model: torch.nn.Module, path: str | os.PathLike, extra_metadata: dict | None = None):
    """Write a model's weights and config as one file, atomically: safetensors, or for a
    PyTorch suffix (.pth, .pt, .bin, .ckpt) {"model": weights, "mae.config": ...}.
    `load_model` reads either back."""
    kind, config = model_kind_and_config(model)
    suffix = Path(path).suffix
    if suffix == ".safetensors":
        write_safetensors(model.state_dict(), path, kind, config, extra_metadata)
    elif suffix in PTH_SUFFIXES:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        obj = {"model": state, KIND_KEY: kind, CONFIG_KEY: json.dumps(config), **(extra_metadata or {})}
        atomic_write(path, lambda tmp: torch.save(obj, tmp))
    else:
        raise ValueError(f"save_model writes .safetensors or a PyTorch file ({', '.join(PTH_SUFFIXES)}), "
                         f"got {path}")


def write_safetensors(state: dict, path, kind: str, config: dict, extra_metadata: dict | None = None):
    """Tensors plus our metadata (format, kind, config) as one safetensors file, atomically."""
    metadata = {FORMAT_KEY: "1", KIND_KEY: kind, CONFIG_KEY: json.dumps(config)}
    metadata.update(extra_metadata or {})
    write_tensors(state, path, metadata)


def embedded_config(obj) -> dict | None:
    """Our model config, when a .pth we wrote carries it next to the weights."""
    if isinstance(obj, dict) and isinstance(obj.get(CONFIG_KEY), str):
        return json.loads(obj[CONFIG_KEY])
    return None


def constructor_kwargs(cls, config: dict) -> dict:
    """The entries of `config` that `cls` takes."""
    return {k: v for k, v in config.items() if k in inspect.signature(cls).parameters}
