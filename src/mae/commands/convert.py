"""`mae convert SRC DST --to LAYOUT`: move weights between our format and other ecosystems.

SRC is anything `mae.load_model` reads (our run directory or file, an official .pth, a
Hugging Face folder, timm, mmpretrain or mmsegmentation weights). The model is built and
loaded strictly first, so a conversion never writes weights that do not form a model.
"""

import argparse

from ..engine.config.base import SizeArgument, parse_size
from ..weights.options import EXPORT_LAYOUTS
from .architecture import add_architecture_flags, model_overrides

HELP = "convert weights between ours, official MAE, Hugging Face, timm, mmpretrain and mmsegmentation layouts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="checkpoint to read (any layout mae.load_model knows)")
    parser.add_argument("dst", help="where to write: a folder for hf, a file for the others "
                        "(.safetensors for mae and timm; .pth for official, timm, mmpretrain and mmseg)")
    parser.add_argument("--to", required=True, choices=EXPORT_LAYOUTS, help="target layout")
    parser.add_argument("--encoder-only", action="store_true",
                        help="drop the decoder (timm always does: it has none)")
    add_architecture_flags(parser, "record norm-pix targets (default: as the source says; official "
                           "weights without args say no, and the report says it was inferred)")
    parser.add_argument("--img-size", action=SizeArgument, default=None,
                        help="export at this input size in pixels, one number (a square) or two (height "
                        "width): position tables resampled in 2-D (e.g. 512 for segmentation); also the "
                        "grid of a non-square source saved without a config")


def run(args: argparse.Namespace) -> int:
    from ..weights.export import export_model  # loads torch: only when the command runs
    from ..weights.layouts import DECODER_PREFIXES
    from ..weights.load import load_model_with_guesses

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
