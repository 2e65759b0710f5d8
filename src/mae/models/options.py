"""What a model may be asked for, as plain Python: the configs and `--help` read these names
without loading torch. The code behind each name is in masking.py, targets.py and linear.py."""

MASK_TYPES = ("random", "block", "grid")  # see masking.py
TARGET_NAMES = ("pixels", "norm_pix", "hog")  # the built-in targets of targets.py
MATMUL_BACKENDS = ("auto", "blas", "onednn")  # see linear.py


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """How many patches each sample keeps: int(L * (1 - mask_ratio)), as the official code."""
    return int(num_patches * (1 - mask_ratio))


def check_mask_ratio(mask_ratio: float) -> None:
    if not 0.0 <= float(mask_ratio) < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")


def check_mask_type(mask_type: str, mask_ratio: float, grid: tuple[int, int]) -> None:
    """Refuse a strategy that cannot remove exactly what the mask ratio asks on this patch grid."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {', '.join(MASK_TYPES)}, got {mask_type!r}")
    if mask_type == "grid":
        if mask_ratio != 0.75:
            raise ValueError(f"grid masking keeps one patch of every 2x2, so mask_ratio must be 0.75, "
                             f"got {mask_ratio}")
        if grid[0] % 2 or grid[1] % 2:
            raise ValueError(f"grid masking needs an even patch grid (rows and columns), got "
                             f"{grid[0]}x{grid[1]}")

