"""Position tables: fixed 2-D sin-cos tables and 2-D resampling of any table.

Layout of a table: [1, num_prefix + gh * gw, D], prefix tokens (the cls token) first,
then the patch grid in row-major order (row 0 left to right, then row 1, ...).
"""

import math

import torch
import torch.nn.functional as F


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[M] positions -> [M, dim]: sin of every frequency, then cos of every frequency."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # [dim/2]
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # [M, dim/2]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """The fixed MAE table for a (rows, cols) patch grid, computed in float64.

    Returns [1, cls + rows * cols, dim] in float32. The first half of each vector encodes
    the column index and the second half the row index, which is the layout of the
    official MAE tables (and of every published checkpoint), so tables agree exactly.
    The cls token's row is zero.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding width must be divisible by 4, got {dim}")
    rows, cols = grid
    row_idx, col_idx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    table = torch.cat(
        [sincos_1d(dim // 2, col_idx.flatten()), sincos_1d(dim // 2, row_idx.flatten())], dim=1
    )  # [rows*cols, dim]
    if cls_token:
        table = torch.cat([torch.zeros(1, dim, dtype=table.dtype), table], dim=0)
    return table.float().unsqueeze(0)


def is_sincos(table: torch.Tensor, grid: tuple[int, int], num_prefix: int = 1) -> bool:
    """Whether the patch rows of `table` are the sin-cos table of `grid` (to float32 rounding)."""
    dim = table.shape[-1]
    if dim % 4 or table.shape[1] != num_prefix + grid[0] * grid[1]:
        return False
    reference = sincos_2d(dim, grid, cls_token=False).to(table.device)
    return torch.allclose(table[:, num_prefix:].detach().float(), reference, atol=1e-5, rtol=0)


def resample_pos_embed(
    table: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix: int = 1,
) -> torch.Tensor:
    """Resample a [1, prefix + gh * gw, D] table to another patch grid, in 2-D.

    A sin-cos table is recomputed exactly for the new grid (interpolating it would shift
    every frequency). Any other (learned) table is interpolated bicubically over its 2-D
    grid, never along the flattened sequence, so rows stay rows and columns stay columns.
    Prefix (cls) rows are kept as they are.
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if table.shape[1] != num_prefix + old_grid[0] * old_grid[1]:
        raise ValueError(
            f"position table has {table.shape[1]} rows, expected {num_prefix} prefix rows + "
            f"{old_grid[0]}x{old_grid[1]} patches"
        )
    if old_grid == new_grid:
        return table
    prefix, patches = table[:, :num_prefix], table[:, num_prefix:]
    if is_sincos(table, old_grid, num_prefix):
        resampled = sincos_2d(table.shape[-1], new_grid, cls_token=False)
        resampled = resampled.to(device=table.device, dtype=table.dtype)
    else:
        dim = table.shape[-1]
        image = patches.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # [1, D, gh, gw]
        image = F.interpolate(
            image.float(), size=new_grid, mode="bicubic", align_corners=False, antialias=True
        )
        resampled = image.permute(0, 2, 3, 1).reshape(1, -1, dim).to(table.dtype)
    return torch.cat([prefix, resampled], dim=1)


def grid_from_length(num_patches: int) -> tuple[int, int]:
    """The square grid with `num_patches` cells (what a bare table tells us)."""
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(
            f"cannot infer a square patch grid from {num_patches} positions; pass img_size"
        )
    return side, side
