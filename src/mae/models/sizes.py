"""Checks of a model's constructor sizes, so that a bad size is a ValueError naming it
(not a ZeroDivisionError or a degenerate model with zero-width tensors)."""

import math


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(name: str, value, minimum: int = 1) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_img_size(img_size, patch_size: int) -> None:
    """An int or (height, width) of ints >= 1, each divisible by the patch size."""
    sides = [img_size] if not isinstance(img_size, (list, tuple)) else list(img_size)
    if len(sides) not in (1, 2) or not all(_is_int(s) and s >= 1 for s in sides):
        raise ValueError(f"img_size must be an integer >= 1 or (height, width) of them, got {img_size!r}")
    if any(s % patch_size for s in sides):
        raise ValueError(f"img_size {img_size!r} is not divisible by patch_size {patch_size}")


def check_width(name: str, width, heads_name: str, heads) -> None:
    """A width and its attention heads: integers >= 1, the width a multiple of the heads."""
    check_count(name, width)
    check_count(heads_name, heads)
    if width % heads:
        raise ValueError(f"{name} {width} is not divisible by {heads_name} {heads}")


def check_encoder(img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio) -> None:
    check_count("patch_size", patch_size)
    check_img_size(img_size, patch_size)
    check_count("in_chans", in_chans)
    check_width("embed_dim", embed_dim, "num_heads", num_heads)
    check_count("depth", depth)
    if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or not (
        math.isfinite(mlp_ratio) and int(embed_dim * mlp_ratio) >= 1
    ):
        raise ValueError(f"mlp_ratio must be a finite number giving an MLP at least 1 wide, got {mlp_ratio!r}")


def check_decoder(decoder_embed_dim, decoder_depth, decoder_num_heads) -> None:
    check_width("decoder_embed_dim", decoder_embed_dim, "decoder_num_heads", decoder_num_heads)
    check_count("decoder_depth", decoder_depth)
