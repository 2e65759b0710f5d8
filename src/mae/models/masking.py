"""Which patches each sample keeps: random (the official argsort of uniform noise), block-wise
(BEiT) or grid-wise, all expressed as noise whose smallest values mark the kept patches.

Every strategy is a function of the uniform noise [N, L] alone, so the (seed, step) noise
streams that fix a random mask fix a block or grid mask too; and every strategy removes
exactly L - int(L * (1 - mask_ratio)) patches per sample, as the official random masking.
"""

import math

import numpy as np
import torch

from .options import check_mask_ratio, check_mask_type, num_kept

BLOCK_MIN_PATCHES = 16  # BEiT's smallest block (in patches) ...
BLOCK_ASPECT = (0.3, 1 / 0.3)  # ... and its range of height / width
BLOCK_TRIES = 10  # tries to place one block before the blocks stop


def block_mask(grid: tuple[int, int], num_removed: int, rng: np.random.Generator):
    """BEiT's block-wise masking, made exact: rectangles of random area (at least
    BLOCK_MIN_PATCHES, or what is left) and aspect (BLOCK_ASPECT) are placed at random, each
    adding no more removed patches than are still wanted; when ten tries in a row fail, the
    last few patches are removed one by one (1x1 blocks) at random among the kept ones.

    Returns (mask [rows, cols] bool, True = removed; blocks [(top, left, height, width)]),
    the mask being the union of the blocks and holding exactly `num_removed` patches.
    """
    rows, cols = grid
    mask = np.zeros(grid, dtype=bool)
    blocks, removed = [], 0
    log_aspect = (math.log(BLOCK_ASPECT[0]), math.log(BLOCK_ASPECT[1]))
    while removed < num_removed:
        wanted = num_removed - removed
        for _ in range(BLOCK_TRIES):
            area = rng.uniform(min(BLOCK_MIN_PATCHES, wanted), wanted)
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if not (1 <= h <= rows and 1 <= w <= cols and BLOCK_ASPECT[0] <= h / w <= BLOCK_ASPECT[1]):
                continue
            top, left = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
            new = int((~mask[top: top + h, left: left + w]).sum())
            if 0 < new <= wanted:
                mask[top: top + h, left: left + w] = True
                blocks.append((top, left, h, w))
                removed += new
                break
        else:
            break
    for index in rng.choice(np.flatnonzero(~mask), num_removed - removed, replace=False):
        top, left = divmod(int(index), cols)
        mask[top, left] = True
        blocks.append((top, left, 1, 1))
    return mask, blocks


def _row_rng(noise_row: torch.Tensor) -> np.random.Generator:
    """A generator seeded by the bits of one sample's noise: a function of the noise alone."""
    return np.random.default_rng(noise_row.float().cpu().numpy().view(np.uint32))


def shape_noise(mask_type: str, noise: torch.Tensor, grid: tuple[int, int], mask_ratio: float) -> torch.Tensor:
    """Uniform noise [N, L] -> noise [N, L] whose int(L * (1 - mask_ratio)) smallest values are
    the patches that `mask_type` keeps (random: the noise itself). Kept patches keep their
    noise (in [0, 1)), removed ones get noise + 1, so the official argsort does the rest.

    block: one BEiT block mask per sample (`block_mask`), from a generator seeded by that
    sample's noise. grid: one patch of every 2x2 is kept, at the offset (row, column within
    the 2x2) where the sample's first 2x2 has its smallest noise.
    """
    check_mask_type(mask_type, mask_ratio, grid)
    n, length = noise.shape
    rows, cols = grid
    if rows * cols != length:
        raise ValueError(f"noise has {length} patches per sample, but the patch grid is {rows}x{cols}")
    if mask_type == "random":
        return noise
    if mask_type == "grid":
        offset = noise.view(n, rows, cols)[:, :2, :2].reshape(n, 4).argmin(dim=1)  # [N]
        r = torch.arange(rows, device=noise.device).view(1, rows, 1)
        c = torch.arange(cols, device=noise.device).view(1, 1, cols)
        kept = (r % 2 == (offset // 2).view(n, 1, 1)) & (c % 2 == (offset % 2).view(n, 1, 1))  # [N, rows, cols]
        removed = ~kept.view(n, length)
    else:
        num_removed = length - num_kept(length, mask_ratio)
        masks = [block_mask(grid, num_removed, _row_rng(row))[0] for row in noise]
        removed = torch.from_numpy(np.stack(masks).reshape(n, length)).to(noise.device)
    return noise + removed.to(noise.dtype)


def check_keeps_a_patch(num_patches: int, mask_ratio: float) -> None:
    """The encoder needs at least one visible patch: int(L * (1 - mask_ratio)) >= 1."""
    check_mask_ratio(mask_ratio)
    if num_kept(num_patches, mask_ratio) < 1:
        raise ValueError(
            f"mask_ratio {mask_ratio} leaves no visible patch of the {num_patches} "
            f"(int({num_patches} x (1 - {mask_ratio})) = 0); with {num_patches} patches it can be "
            f"at most {1 - 1 / num_patches:g}"
        )


def mask_plan(n: int, length: int, mask_ratio: float, noise: torch.Tensor | None, device,
              mask_type: str = "random", grid: tuple[int, int] | None = None):
    """Which patches each sample keeps: (ids_keep [N, K], ids_restore [N, L]).

    noise: [N, L] uniform noise (drawn here when None); the patches with the smallest
    noise are kept, in order of increasing noise. mask_type: see `shape_noise` (block and
    grid need the patch `grid`, (rows, cols)).
    """
    check_keeps_a_patch(length, mask_ratio)
    if noise is None:
        noise = torch.rand(n, length, device=device if mask_type == "random" else "cpu")
    elif tuple(noise.shape) != (n, length):
        raise ValueError(f"noise must have shape (N, L) = {(n, length)}, got {tuple(noise.shape)}")
    if mask_type != "random":
        if grid is None:
            raise ValueError(f"{mask_type} masking needs the patch grid (rows, cols)")
        noise = shape_noise(mask_type, noise, grid, mask_ratio)
    ids_shuffle = torch.argsort(noise.to(device), dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle[:, : num_kept(length, mask_ratio)], ids_restore


def removed_mask(ids_restore: torch.Tensor, keep: int, dtype: torch.dtype) -> torch.Tensor:
    """[N, L] mask in patch order: 0 for the `keep` kept patches, 1 for the removed ones."""
    mask = torch.ones(ids_restore.shape, device=ids_restore.device, dtype=dtype)
    mask[:, :keep] = 0  # shuffled order: the kept ones come first
    return torch.gather(mask, 1, ids_restore)


def take_rows(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x [N, L, D], ids [N, K] -> [N, K, D] with row k of sample n = x[n, ids[n, k]].

    torch.gather(x, 1, ids expanded over D), as whole-row copies: an index_select over the
    flattened rows (its backward an index_add) moves each row at once, where gather walks
    every element through its index (7x slower on CPU for [16, 196, 768] float32).
    """
    n, length, dim = x.shape
    rows = ids + torch.arange(n, device=ids.device).unsqueeze(1) * length  # [N, K] into [N * L]
    return x.reshape(n * length, dim).index_select(0, rows.reshape(-1)).view(n, ids.shape[1], dim)


def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None,
                   mask_type: str = "random", grid: tuple[int, int] | None = None):
    """Keep a subset of tokens per sample (random by default; see `shape_noise`): the official
    `MaskedAutoencoderViT.random_masking`, as a public function for code ported from it. The
    model itself calls `mask_plan` and `take_rows`, which this is built from.

    x: [N, L, D] tokens. noise: [N, L] uniform noise; the tokens with the smallest noise
    are kept (so a fixed noise reproduces a mask exactly).
    Returns (x_kept [N, K, D], mask [N, L] with 1 = removed, ids_restore [N, L]).
    """
    n, length, _ = x.shape
    ids_keep, ids_restore = mask_plan(n, length, mask_ratio, noise, x.device, mask_type, grid)
    x_kept = take_rows(x, ids_keep)  # [N, K, D]
    mask_dtype = torch.promote_types(x.dtype, torch.float32)  # float32 under bf16 autocast
    return x_kept, removed_mask(ids_restore, ids_keep.shape[1], mask_dtype), ids_restore
