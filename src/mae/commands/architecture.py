"""The flags that say what a checkpoint's weights cannot (head counts, the target), shared by
`mae convert` and `mae visualize`, and the load_model overrides they make."""

import argparse

ARCHITECTURE_FLAGS = ("num_heads", "decoder_num_heads", "norm_pix_loss")


def add_architecture_flags(parser: argparse.ArgumentParser, norm_pix_help: str) -> None:
    parser.add_argument("--norm-pix-loss", action=argparse.BooleanOptionalAction, default=None, help=norm_pix_help)
    parser.add_argument("--num-heads", type=int, default=None,
                        help="encoder heads, for official weights of a non-standard size "
                        "(head counts are not in the weights)")
    parser.add_argument("--decoder-num-heads", type=int, default=None, help="decoder heads, likewise")


def model_overrides(args: argparse.Namespace) -> dict:
    """The architecture facts the user supplied (--num-heads, ...), as load_model overrides."""
    for name in ("num_heads", "decoder_num_heads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    return {name: getattr(args, name) for name in ARCHITECTURE_FLAGS if getattr(args, name) is not None}
