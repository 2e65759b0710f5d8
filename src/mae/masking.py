"""Per-sample random masking by argsort of uniform noise (as the official MAE)."""

import torch


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """How many patches each sample keeps: int(L * (1 - mask_ratio)), as the official code."""
    return int(num_patches * (1 - mask_ratio))


def check_mask_ratio(mask_ratio: float) -> None:
    if not 0.0 <= float(mask_ratio) < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")


def mask_plan(n: int, length: int, mask_ratio: float, noise: torch.Tensor | None, device):
    """Which patches each sample keeps: (ids_keep [N, K], ids_restore [N, L]).

    noise: [N, L] uniform noise (drawn here when None); the patches with the smallest
    noise are kept, in order of increasing noise.
    """
    check_mask_ratio(mask_ratio)
    if noise is None:
        noise = torch.rand(n, length, device=device)
    elif tuple(noise.shape) != (n, length):
        raise ValueError(f"noise must have shape (N, L) = {(n, length)}, got {tuple(noise.shape)}")
    ids_shuffle = torch.argsort(noise.to(device), dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle[:, : num_kept(length, mask_ratio)], ids_restore


def removed_mask(ids_restore: torch.Tensor, keep: int, dtype: torch.dtype) -> torch.Tensor:
    """[N, L] mask in patch order: 0 for the `keep` kept patches, 1 for the removed ones."""
    mask = torch.ones(ids_restore.shape, device=ids_restore.device, dtype=dtype)
    mask[:, :keep] = 0  # shuffled order: the kept ones come first
    return torch.gather(mask, 1, ids_restore)


def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
    """Keep a random subset of tokens per sample.

    x: [N, L, D] tokens. noise: [N, L] uniform noise; the tokens with the smallest noise
    are kept (so a fixed noise reproduces a mask exactly).
    Returns (x_kept [N, K, D], mask [N, L] with 1 = removed, ids_restore [N, L]).
    """
    n, length, dim = x.shape
    ids_keep, ids_restore = mask_plan(n, length, mask_ratio, noise, x.device)
    x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))  # [N, K, D]
    mask_dtype = torch.promote_types(x.dtype, torch.float32)  # float32 under bf16 autocast
    return x_kept, removed_mask(ids_restore, ids_keep.shape[1], mask_dtype), ids_restore
