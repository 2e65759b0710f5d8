"""Writing a model in another ecosystem's layout: official, Hugging Face, timm, mmpretrain, mmseg."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from ..models import VisionTransformer
from ..models.zoo import CONFIGS
from ..storage.checkpoint_folder import MODEL_FILE
from ..storage.files import atomic_write
from . import layouts as interop
from .format import CONFIG_KEY, KIND_KEY, PTH_SUFFIXES, constructor_kwargs, model_kind_and_config, write_safetensors
from .options import EXPORT_LAYOUTS


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
