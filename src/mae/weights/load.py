"""Reading and writing model weights safely: `load_model` for every known layout, and
`export_model` to write a model in another ecosystem's layout.

Nothing here unpickles code: safetensors files are plain tensors, and `.pth` files go
through `torch.load(weights_only=True)`, which refuses any pickle that holds more than
tensors and plain containers (argparse.Namespace, which official checkpoints carry as
`args`, is allowed: it holds no code).
"""

import argparse
import functools
import inspect
import json
import os
import pickle
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import hub, layouts as interop
from ..storage.checksums import CHECKSUMS_KEY, CorruptFile, tensor_checksums, verify_tensors
from ..models import MaskedAutoencoder, VisionTransformer
from ..models.classifier import fold_batchnorm_head_state
from ..models.pos_embed import grid_from_length, resample_pos_embed
from ..models.vit import to_2tuple
from ..models.zoo import CONFIGS

FORMAT_KEY = "mae.format"
KIND_KEY = "mae.kind"  # "mae" (with decoder) or "vit" (encoder / classifier)
CONFIG_KEY = "mae.config"
MODEL_FILE = "model.safetensors"
PTH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


# ---------------------------------------------------------------- files


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it (once, at the first write)
    os.umask(mask)
    return mask


def umask_mode(mode: int) -> int:
    """`mode` less the umask: what open() (0o666) or mkdir() (0o777) would give."""
    return mode & ~_umask()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), fsync, then rename over `path`: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)  # some writers (safetensors) replace the file, with their own mode
        os.chmod(tmp, umask_mode(0o666))  # mkstemp makes 0600; the file gets what open() would give
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


def write_tensors(state: dict, path, metadata: dict | None = None) -> None:
    """A safetensors file whose metadata also holds the tensors' checksums, written atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    metadata = dict(metadata or {}, **{CHECKSUMS_KEY: json.dumps(tensor_checksums(tensors))})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _opened(path):
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as err:  # safetensors' own error type: a torn, truncated or foreign file
        raise CorruptFile(f"cannot read {path} as safetensors ({err}): not a safetensors file, or a "
                          "truncated one") from None


def safetensors_keys(path: str | os.PathLike) -> list[str]:
    """The tensor names of a safetensors file (only its header is read)."""
    with _opened(path) as f:
        return list(f.keys())


def read_safetensors(path: str | os.PathLike) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file, checked against its checksums when it has them."""
    tensors = {}
    with _opened(path) as f:
        metadata = f.metadata() or {}
        try:
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
        except Exception as err:
            raise CorruptFile(f"cannot read {path}: {err} (a truncated or damaged file)") from None
    if CHECKSUMS_KEY in metadata:
        try:
            manifest = json.loads(metadata[CHECKSUMS_KEY])
        except json.JSONDecodeError:
            raise CorruptFile(f"{path} is corrupt: its checksum manifest is not valid JSON") from None
        verify_tensors(tensors, manifest, str(path))
    return tensors, metadata


def read_pth(path: str | os.PathLike) -> dict:
    """torch.load without executing code; a pickle with anything else is refused.

    Only tensors, plain containers and numbers/strings are rebuilt (and argparse.Namespace,
    which official checkpoints carry as `args`: it holds no code). A pickle that names any
    other callable, os.system say, is refused before anything in it runs.
    """
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace]):
            warnings.simplefilter("ignore")  # pickle-protocol notes on files we refuse anyway
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found:
            raise ValueError(
                f"refusing to load {path}: it references {found.group(1)}; only tensors and plain "
                "containers are accepted (unpickling anything else could run code from the file), "
                "so nothing in it was run"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
        raise ValueError(
            f"cannot read {path} as a PyTorch checkpoint of tensors "
            f"({detail.group(1) if detail else str(err).splitlines()[0]}); nothing in it was run"
        ) from None
    except Exception as err:  # not a PyTorch file at all: zip or pickle framing broken
        raise ValueError(
            f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {err}); nothing in it was run"
        ) from None


def embedded_config(obj) -> dict | None:
    """Our model config, when a .pth we wrote carries it next to the weights."""
    if isinstance(obj, dict) and isinstance(obj.get(CONFIG_KEY), str):
        return json.loads(obj[CONFIG_KEY])
    return None


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


SHARDED_WEIGHTS = "sharded"  # a sharded checkpoint's parts (engine.sharded_checkpoint)


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint folder in a run directory (whole or sharded)."""
    candidates = sorted(
        p.parent for name in (MODEL_FILE, SHARDED_WEIGHTS) for p in (run_dir / "checkpoints").glob(f"*/{name}")
        if not p.parent.name.startswith(".")
    )
    if not candidates:
        raise ValueError(f"run directory {run_dir} has no checkpoints/*/{MODEL_FILE} (or {SHARDED_WEIGHTS}/) yet")
    return candidates[-1]


def _read_sharded(path: Path) -> tuple[dict, dict, dict, str]:
    from ..engine.run.sharded_checkpoints import model_metadata, read_model_state

    kind, config = model_metadata(path)
    return read_model_state(path), {}, {KIND_KEY: kind, CONFIG_KEY: json.dumps(config)}, str(path)


# ---------------------------------------------------------------- architecture inference


def _count_blocks(state: dict, prefix: str) -> int:
    indices = {int(k.split(".")[1]) for k in state if k.startswith(prefix + ".")}
    return max(indices) + 1 if indices else 0


class InferredSettingWarning(UserWarning):
    """A setting the checkpoint does not record was inferred; the warning names the override."""


def _table_img_size(positions: int, patch_size: int, img_size) -> list[int]:
    """The image size a position table of `positions` patches was saved at.

    A table alone tells only its length: a square grid is assumed, unless the size asked
    for (`img_size`) gives a grid of exactly that length.
    """
    if img_size is not None:
        rows, cols = to_2tuple(img_size)
        if (rows // patch_size) * (cols // patch_size) == positions:
            return [rows, cols]
    try:
        rows, cols = grid_from_length(positions)
    except ValueError:
        asked = f"; img_size={img_size} gives {(rows // patch_size) * (cols // patch_size)}" if img_size else ""
        raise ValueError(
            f"cannot infer the patch grid of a {positions}-position table (not a square){asked}; "
            "pass img_size=(height, width) of the grid the weights were saved at"
        ) from None
    return [rows * patch_size, cols * patch_size]


def infer_config(state: dict, args: dict | None = None, img_size=None) -> tuple[dict, dict]:
    """Constructor kwargs from official-layout weights (and the run's args, if any).

    Returns (config, guessed): `guessed` maps each setting that was not read but assumed
    to what was assumed and why (head counts of a size no named model has; norm-pix
    targets of a pretraining checkpoint that does not say).
    """
    args = args or {}
    guessed = {}
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
        config["img_size"] = _table_img_size(state["pos_embed"].shape[1] - 1, patch_size, img_size)
    if "mask_ratio" in args:
        config["mask_ratio"] = float(args["mask_ratio"])
    if "norm_pix_loss" in args:
        config["norm_pix_loss"] = bool(args["norm_pix_loss"])
    elif "decoder_embed.weight" in state:
        config["norm_pix_loss"] = False
        guessed["norm_pix_loss"] = "False (the checkpoint does not say which targets it was trained on)"

    # Head counts are not in the weights: take them from the matching named model.
    named = args.get("model") if args.get("model") in CONFIGS else None
    for name, known in CONFIGS.items():
        if named is None and (known["embed_dim"], known["depth"], known["patch_size"]) == (
            embed_dim, depth, patch_size,
        ):
            named = name
    known = CONFIGS.get(named, {})
    config["num_heads"] = known.get("num_heads", max(1, embed_dim // 64))
    if not known:
        guessed["num_heads"] = (f"{config['num_heads']} (one per 64 channels: no named model is "
                                f"{embed_dim} wide and {depth} deep with {patch_size}-pixel patches)")
    if "decoder_embed.weight" in state:
        dec_dim = state["decoder_embed.weight"].shape[0]
        config.update(decoder_embed_dim=dec_dim, decoder_depth=_count_blocks(state, "decoder_blocks"))
        if known.get("decoder_embed_dim") == dec_dim:
            config["decoder_num_heads"] = known["decoder_num_heads"]
        else:
            config["decoder_num_heads"] = max(1, dec_dim // 32)
            guessed["decoder_num_heads"] = f"{config['decoder_num_heads']} (one per 32 channels of the {dec_dim}-wide decoder)"
    return config, guessed


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
            return _read_source(path.parent)  # a Hugging Face folder's weights: with its config.json
        return state, {}, metadata, str(path)
    if path.name in _hf_weight_files(path.parent):
        return _read_source(path.parent)
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
    state, args, metadata, name = _read_source(src)
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


def constructor_kwargs(cls, config: dict) -> dict:
    """The entries of `config` that `cls` takes."""
    return {k: v for k, v in config.items() if k in inspect.signature(cls).parameters}


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


# ---------------------------------------------------------------- exporting to other layouts

EXPORT_LAYOUTS = ("mae", "official", "hf", "timm", "mmpretrain", "mmseg")


@dataclass
class ExportReport:
    """What `export_model` wrote and what the target layout could not hold."""

    layout: str
    files: list[Path] = field(default_factory=list)
    written: int = 0  # tensors written
    dropped: list[str] = field(default_factory=list)  # our tensor names not written
    notes: list[str] = field(default_factory=list)
    inferred: list[str] = field(default_factory=list)  # settings the source did not record

    def summary(self) -> str:
        lines = [f"wrote {self.written} tensors ({self.layout} layout): " + ", ".join(map(str, self.files))]
        if self.dropped:
            decoder = [k for k in self.dropped if k.startswith(interop.DECODER_PREFIXES)]
            others = [k for k in self.dropped if k not in decoder]
            parts = ([f"the decoder ({len(decoder)} tensors: mask_token, decoder_*)"] if decoder else []) + others
            lines.append("dropped: " + ", ".join(parts))
        else:
            lines.append("dropped: nothing")
        if self.inferred:
            lines.append("inferred, not read from the source (give the flag if wrong): " + "; ".join(self.inferred))
        return "\n".join(lines + self.notes)


def export_model(model: torch.nn.Module, dst, layout: str, encoder_only: bool = False) -> ExportReport:
    """Write `model` in another ecosystem's layout; the report says what was dropped.

    layout: "mae" (our safetensors + config), "official" (the official MAE .pth:
    {"model": ..., "args": ...}), "hf" (a Hugging Face folder: config.json +
    model.safetensors), "timm" (timm ViT keys, encoder only), "mmpretrain" (mmpretrain
    keys in {"state_dict": ...}), "mmseg" (the encoder as mmsegmentation's MAE and
    VisionTransformer backbones load it). encoder_only drops the decoder. Files
    other than Hugging Face's also carry our config, so they load back losslessly.
    """
    if layout not in EXPORT_LAYOUTS:
        raise ValueError(f"unknown target layout {layout!r}; choose from {', '.join(EXPORT_LAYOUTS)}")
    kind, config = model_kind_and_config(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    report = ExportReport(layout)
    target = config.get("target", "pixels")
    if kind == "mae" and not encoder_only:  # what the layout's decoder cannot carry
        if layout in ("official", "hf") and target not in ("pixels", "norm_pix"):
            raise ValueError(f"the {layout} layout's decoder predicts pixels, but this model's predicts "
                             f"{target}: export the encoder only (--encoder-only)")
        if layout in ("official", "hf", "mmpretrain") and config.get("encoder_mask_tokens"):
            raise ValueError(f"the {layout} layout's MAE has its mask token in the decoder, but this model's "
                             "is in its encoder (encoder_mask_tokens): export the encoder only "
                             "(--encoder-only), or use the mae layout")
    if kind == "mae" and (encoder_only or layout in ("timm", "mmseg")):
        state, report.dropped = interop.split_decoder(state)
        kind, config = "vit", constructor_kwargs(VisionTransformer, config)
        if layout in ("timm", "mmseg"):
            target = {"timm": "timm's ViT has", "mmseg": "mmsegmentation's backbones have"}[layout]
            report.notes.append(f"{target} no MAE decoder: encoder only")
    dst = Path(dst)
    writer = {"mae": _export_ours, "official": _export_official, "hf": _export_hf,
              "timm": _export_timm, "mmpretrain": _export_mm, "mmseg": _export_mmseg}[layout]
    writer(state, kind, config, dst, report)
    return report


def _pth_target(dst: Path, layout: str) -> Path:
    if dst.is_dir() or dst.suffix not in PTH_SUFFIXES:
        raise ValueError(f"the {layout} layout is a PyTorch file: DST must end with one of "
                         f"{', '.join(PTH_SUFFIXES)}, got {dst}")
    return dst


def _save_pth(obj: dict, path: Path, report: ExportReport, tensors: int) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    report.files.append(path)
    report.written = tensors


def _export_ours(state, kind, config, dst: Path, report: ExportReport) -> None:
    if dst.suffix in PTH_SUFFIXES:
        raise ValueError(f"our layout is a .safetensors file (or a folder for {MODEL_FILE}), got {dst}")
    path = dst if dst.suffix == ".safetensors" else dst / MODEL_FILE
    _refuse_other_layout(dst, path)
    write_safetensors(state, path, kind, config)
    report.files.append(path)
    report.written = len(state)


def _is_ours(path: Path) -> bool:
    """Whether `path` is a safetensors file with our metadata (read without its tensors)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return KIND_KEY in (f.metadata() or {})
    except Exception:  # safetensors' own error types: not a safetensors file at all
        return False


def _refuse_other_layout(dst: Path, path: Path) -> None:
    """Our layout replaces only a file of ours: writing model.safetensors into a Hugging Face
    folder or a run directory, or over another layout's file, would make it unloadable."""
    if dst.is_dir():
        others = sorted(e.name for e in dst.iterdir() if e.name != MODEL_FILE and not e.name.startswith("."))
        if others:
            raise ValueError(f"{dst} is a folder of another layout (it holds {', '.join(others[:5])}); "
                             f"refusing to write {MODEL_FILE} into it: give a new or empty folder")
    if path.exists() and not _is_ours(path):
        raise ValueError(f"{path} exists and is not a weights file of ours; refusing to overwrite "
                         "it: give a new path")


def _zoo_name(config: dict) -> str | None:
    for name, known in CONFIGS.items():
        if all(config.get(k) == v for k, v in known.items() if k in config):
            return name
    return None


def _export_official(state, kind, config, dst: Path, report: ExportReport) -> None:
    """{"model": weights, "args": what the official scripts record}, plus our config."""
    height, width = config["img_size"]
    args = {"input_size": height} if height == width else {}
    name = _zoo_name(config)
    if kind == "mae":
        args["norm_pix_loss"] = bool(config.get("norm_pix_loss", False))
        if name:
            args["model"] = name
    else:
        args.update(global_pool=config.get("global_pool") == "avg", nb_classes=config.get("num_classes", 0))
        if name:
            args["model"] = name.removeprefix("mae_")  # models_vit names: vit_base_patch16
    # args is a plain dict (not argparse.Namespace) so that weights_only loaders accept it
    obj = {"model": state, "args": args, CONFIG_KEY: json.dumps(config)}
    _save_pth(obj, _pth_target(dst, "official"), report, len(state))


def _export_timm(state, kind, config, dst: Path, report: ExportReport) -> None:
    """Our encoder keys are timm's: a plain state dict (safetensors or .pth)."""
    if dst.suffix == ".safetensors":
        write_safetensors(state, dst, kind, config, {"format": "pt"})
        report.files.append(dst)
        report.written = len(state)
        return
    obj = {"state_dict": state, CONFIG_KEY: json.dumps(config)}  # timm reads "state_dict"
    _save_pth(obj, _pth_target(dst, "timm"), report, len(state))


def _export_mm(state, kind, config, dst: Path, report: ExportReport) -> None:
    mm = interop.ours_to_mm(state)
    obj = {"state_dict": mm, CONFIG_KEY: json.dumps(config)}  # mmengine reads "state_dict"
    _save_pth(obj, _pth_target(dst, "mmpretrain"), report, len(mm))
    report.notes.append("mmpretrain: encoder under backbone.*" + (", decoder under neck.*" if kind == "mae" else ""))


def _export_mmseg(state, kind, config, dst: Path, report: ExportReport) -> None:
    """A backbone file for mmsegmentation's MAE (and VisionTransformer): `pretrained=` loads it."""
    extra = [k for k in state if k.startswith(("head.", "fc_norm."))]
    if extra:
        state = {k: v for k, v in state.items() if k not in extra}
        report.dropped += extra
        report.notes.append("mmseg's backbones have no classification head or global-pool norm: "
                            + ", ".join(sorted({k.split(".")[0] for k in extra})) + " dropped")
    mm = interop.ours_to_mmseg(state)
    obj = {"state_dict": mm, CONFIG_KEY: json.dumps(config)}
    _save_pth(obj, _pth_target(dst, "mmseg"), report, len(mm))
    rows, cols = config["img_size"]
    report.notes += [
        f"mmseg: bare backbone keys, position table for {rows}x{cols} inputs (--img-size sets it); "
        "layer scale gamma_1/gamma_2 written as ones; relative-position tables not written "
        "(mmseg's MAE starts them at zero): both are then no-ops, as in this ViT",
        f"mmseg: build MAE(..., norm_cfg=dict(type='LN', eps={config.get('layer_norm_eps', 1e-6)})); "
        "the final norm is ln1 (final_norm=True); VisionTransformer also needs patch_bias=True",
    ]


def _export_hf(state, kind, config, dst: Path, report: ExportReport) -> None:
    """A folder ViTMAEForPreTraining (or, without decoder, ViTMAEModel).from_pretrained loads."""
    if dst.is_file() or dst.suffix in PTH_SUFFIXES + (".safetensors",):  # "hf-vit-mae-1.0" is a folder
        raise ValueError(f"the hf layout is a folder (config.json + model.safetensors); got {dst}")
    height, width = config["img_size"]
    if height != width:
        raise ValueError(f"Hugging Face's ViTMAE builds square models only; this one is {height}x{width}")
    if config.get("global_pool") == "avg":
        raise ValueError(
            "Hugging Face's ViTMAE has no global-pool norm (fc_norm) and this model has no final "
            "norm; convert a global-pool classifier to official, timm or mmpretrain instead"
        )
    head = [k for k in state if k.startswith("head.")]
    if head:
        state = {k: v for k, v in state.items() if k not in head}
        report.dropped += head
        report.notes.append("Hugging Face's ViTMAE has no classification head: head dropped")
    hf = interop.ours_to_hf(state)
    if kind != "mae":  # ViTMAEModel: no `vit.` prefix
        hf = {k.removeprefix("vit."): v for k, v in hf.items()}
    hf_config = interop.hf_config_from_ours(config)
    write_safetensors(hf, dst / "model.safetensors", kind, config, {"format": "pt"})
    atomic_write(dst / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(hf_config, indent=2) + "\n"))
    report.files += [dst / "config.json", dst / "model.safetensors"]
    report.written = len(hf)
