"""`mae visualize --checkpoint CKPT IMAGE|FOLDER ...`: a grid of MAE reconstructions (PNG, JPEG, PDF, ...).

One row per image: original / masked / reconstruction / reconstruction with the visible
patches pasted back, at the model's input size (each image resized to cover it, aspect
ratio kept, then centre-cropped). Each image's mask is drawn from (seed, image index).
"""

import argparse
from pathlib import Path

from ..engine.config.base import check_seed
from ..models.options import MASK_TYPES
from ..util.text import plural
from .architecture import add_architecture_flags, model_overrides

HELP = "reconstruct images with an MAE checkpoint and save them as a picture grid"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="a run directory or file of ours, an official full pretraining .pth, "
                        "or a Hugging Face ViTMAE folder (the decoder is needed)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads), or "
                        "folders of them (searched recursively)")
    parser.add_argument("--mask-ratio", type=float, default=0.75, help="fraction of patches removed")
    parser.add_argument("--mask-type", choices=MASK_TYPES, default="random",
                        help="how the removed patches are chosen: at random, in BEiT-style blocks, or "
                        "one kept of every 2x2 (grid: mask ratio 0.75)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the masks (per image: seed, index)")
    parser.add_argument("--out", default="reconstructions.png", metavar="FILE",
                        help="picture to write: .png, .jpg, .pdf, .svg, ... (any format matplotlib writes)")
    add_architecture_flags(parser, "whether the model predicts per-patch normalised pixels (default: as "
                           "the checkpoint says; official weights without args say no)")


def picture_formats() -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return sorted(Figure().canvas.get_supported_filetypes())


def image_files(paths: list[str]) -> list[str]:
    """The images given; a folder stands for the image files under it, in sorted order."""
    from ..data.images import image_extensions

    files = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(str(path))
            continue
        found = sorted(str(f) for f in path.rglob("*") if f.is_file() and f.suffix.lower() in image_extensions())
        if not found:
            raise ValueError(f"folder {path} holds no image files (looked recursively)")
        files += found
    return files


def run(args: argparse.Namespace) -> int:
    extension = Path(args.out).suffix.lower().lstrip(".")
    if extension not in picture_formats():
        raise ValueError(f"--out {args.out}: unknown picture format {extension!r}; use one of "
                         f"{', '.join(picture_formats())}")
    check_seed(args.seed)
    from ..viz import visualize  # loads torch: only when the command runs

    rec = visualize(args.checkpoint, image_files(args.images), mask_ratio=args.mask_ratio, seed=args.seed,
                    out=args.out, mask_type=args.mask_type, **model_overrides(args))
    note = " (norm-pix predictions mapped back with each patch's own mean and std)" if rec.norm_pix else ""
    if rec.pasted is None:
        note = f" (the model predicts {rec.target} features, not pixels: the grid shows the masked input only)"
    print(f"wrote {args.out}: {plural(len(rec.original), 'image')}, {args.mask_type} mask, ratio {args.mask_ratio}, "
          f"loss {rec.loss:.4f}{note}")
    return 0
