"""`mae convert SRC DST --to LAYOUT`: move weights between our format and other ecosystems.

SRC is anything `mae.load_model` reads (our run directory or file, an official .pth, a
Hugging Face folder, timm or mmpretrain weights). The model is built and loaded strictly
first, so a conversion never writes weights that do not form a model.
"""

import argparse

from ..weights import EXPORT_LAYOUTS, export_model, load_model

HELP = "convert weights between ours, official MAE, Hugging Face, timm and mmpretrain layouts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="checkpoint to read (any layout mae.load_model knows)")
    parser.add_argument("dst", help="where to write: a folder for hf, a file for the others "
                        "(.safetensors for mae and timm; .pth for official, timm and mmpretrain)")
    parser.add_argument("--to", required=True, choices=EXPORT_LAYOUTS, help="target layout")
    parser.add_argument("--encoder-only", action="store_true",
                        help="drop the decoder (timm always does: it has none)")
    parser.add_argument("--num-heads", type=int, default=None,
                        help="encoder heads, for official weights of a non-standard size "
                        "(head counts are not in the weights)")
    parser.add_argument("--decoder-num-heads", type=int, default=None, help="decoder heads, likewise")
    parser.add_argument("--norm-pix-loss", action=argparse.BooleanOptionalAction, default=None,
                        help="record norm-pix targets (default: as the source says; official "
                        "weights without args say no)")


def model_overrides(args: argparse.Namespace) -> dict:
    """The architecture facts the user supplied (--num-heads, ...), as load_model overrides."""
    for name in ("num_heads", "decoder_num_heads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    names = ("num_heads", "decoder_num_heads", "norm_pix_loss")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    model = load_model(args.src, **model_overrides(args))
    report = export_model(model, args.dst, args.to, encoder_only=args.encoder_only)
    print(report.summary())
    return 0
