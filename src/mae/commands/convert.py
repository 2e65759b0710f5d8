"""`mae convert SRC DST --to LAYOUT`: move weights between our format and other ecosystems.

SRC is anything `mae.load_model` reads (our run directory or file, an official .pth, a
Hugging Face folder, timm, mmpretrain or mmsegmentation weights). The model is built and
loaded strictly first, so a conversion never writes weights that do not form a model.
"""

import argparse

from ..engine.config.base import SizeArgument, parse_size
from ..weights.export import EXPORT_LAYOUTS, export_model
from ..weights.layouts import DECODER_PREFIXES
from ..weights.load import load_model_with_guesses

HELP = "convert weights between ours, official MAE, Hugging Face, timm, mmpretrain and mmsegmentation layouts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="checkpoint to read (any layout mae.load_model knows)")
    parser.add_argument("dst", help="where to write: a folder for hf, a file for the others "
                        "(.safetensors for mae and timm; .pth for official, timm, mmpretrain and mmseg)")
    parser.add_argument("--to", required=True, choices=EXPORT_LAYOUTS, help="target layout")
    parser.add_argument("--encoder-only", action="store_true",
                        help="drop the decoder (timm always does: it has none)")
    parser.add_argument("--num-heads", type=int, default=None,
                        help="encoder heads, for official weights of a non-standard size "
                        "(head counts are not in the weights)")
    parser.add_argument("--decoder-num-heads", type=int, default=None, help="decoder heads, likewise")
    parser.add_argument("--norm-pix-loss", action=argparse.BooleanOptionalAction, default=None,
                        help="record norm-pix targets (default: as the source says; official "
                        "weights without args say no, and the report says it was inferred)")
    parser.add_argument("--img-size", action=SizeArgument, default=None,
                        help="export at this input size in pixels, one number (a square) or two (height "
                        "width): position tables resampled in 2-D (e.g. 512 for segmentation); also the "
                        "grid of a non-square source saved without a config")


def model_overrides(args: argparse.Namespace) -> dict:
    """The architecture facts the user supplied (--num-heads, ...), as load_model overrides."""
    for name in ("num_heads", "decoder_num_heads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    names = ("num_heads", "decoder_num_heads", "norm_pix_loss")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    overrides = model_overrides(args)
    if args.img_size is not None:
        overrides["img_size"] = parse_size(args.img_size, "--img-size")
    model, guessed = load_model_with_guesses(args.src, **overrides)
    report = export_model(model, args.dst, args.to, encoder_only=args.encoder_only)
    if any(k.startswith(DECODER_PREFIXES) for k in report.dropped):  # what only the decoder used is gone
        guessed = {k: v for k, v in guessed.items() if k not in ("norm_pix_loss", "decoder_num_heads")}
    report.inferred = [f"{setting}={assumed} [--{setting.replace('_', '-')}]" for setting, assumed in guessed.items()]
    print(report.summary())
    return 0
