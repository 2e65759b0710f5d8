"""Per-sample random masking by argsort of uniform noise (as the official MAE)."""

import torch


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """How many patches each sample keeps: int(L * (1 - mask_ratio)), as the official code."""
    return int(num_patches * (1 - mask_ratio))


def check_mask_ratio(mask_ratio: float) -> None:
    if not 0.0 <= float(mask_ratio) < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")


def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
    """Keep a random subset of tokens per sample.

    x: [N, L, D] tokens. noise: [N, L] uniform noise; the tokens with the smallest noise
    are kept (so a fixed noise reproduces a mask exactly).
    Returns (x_kept [N, K, D], mask [N, L] with 1 = removed, ids_restore [N, L]).
    """
    check_mask_ratio(mask_ratio)
    n, length, dim = x.shape
    if noise is None:
        noise = torch.rand(n, length, device=x.device)
    elif tuple(noise.shape) != (n, length):
        raise ValueError(f"noise must have shape (N, L) = {(n, length)}, got {tuple(noise.shape)}")
    keep = num_kept(length, mask_ratio)

    ids_shuffle = torch.argsort(noise.to(x.device), dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]  # [N, K]
    x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))  # [N, K, D]

    # 0 for the first `keep` in shuffled order, 1 after; then back to patch order
    mask_dtype = torch.promote_types(x.dtype, torch.float32)  # float32 under bf16 autocast
    mask = torch.ones(n, length, device=x.device, dtype=mask_dtype)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # [N, L]
    return x_kept, mask, ids_restore
