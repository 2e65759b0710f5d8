"""Reconstruction targets: what the decoder learns to predict for each removed patch.

A target is a callable from patches to per-patch targets, batched on the patches' device:

    target(patches [..., p*p*C], patch_size, in_chans) -> [..., target.dim(patch_size, in_chans)]

with the patches flattened as `mae.models.patchify` does, (row, column, channel), in float32
or wider. Built in: "pixels" (the patch itself), "norm_pix" (each patch normalised by its own
mean and variance, the paper's best) and "hog" (histograms of oriented gradients, MaskFeat's
target). `register_target(name, target)` adds one; a model built with `target=name` then
predicts it (its decoder head has `target.dim(...)` outputs).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .options import TARGET_NAMES


class PixelTarget:
    pixels = True  # predictions are pixel values (a reconstruction can be pictured)
    # the target of a patch with its pixels reordered is the target reordered alike: the
    # loss may then read each patch in any fixed order of its pixels (mae.models.mae)
    any_pixel_order = True

    def dim(self, patch_size: int, in_chans: int) -> int:
        return patch_size * patch_size * in_chans

    def __call__(self, patches: torch.Tensor, patch_size: int, in_chans: int) -> torch.Tensor:
        return patches


class NormPixTarget(PixelTarget):
    """Each patch minus its mean, over its standard deviation (unbiased variance + 1e-6)."""

    def __call__(self, patches: torch.Tensor, patch_size: int, in_chans: int) -> torch.Tensor:
        mean = patches.mean(dim=-1, keepdim=True)
        var = patches.var(dim=-1, keepdim=True)
        return (patches - mean) / (var + 1.0e-6) ** 0.5


@dataclass(frozen=True)
class HOGTarget:
    """Histograms of oriented gradients of each patch, per channel (MaskFeat's target).

    Within each patch and channel: central-difference gradients (zero on the patch's border
    rows and columns), unsigned orientations in [0, 180) degrees in `bins` equal bins, each
    pixel voting its gradient magnitude into its bin; the votes are averaged over cells of
    `cell` x `cell` pixels and each cell's histogram is L2-normalised (v / sqrt(|v|^2 + eps^2)).
    cell=None: 8 pixels (MaskFeat's; 2x2 cells in a 16-pixel patch) for patches of 16 pixels or
    more, else the whole patch. Output per patch: (channel, cell row, cell column, bin).
    """

    bins: int = 9
    cell: int | None = None
    eps: float = 1e-5
    pixels = False
    any_pixel_order = False

    def cell_size(self, patch_size: int) -> int:
        cell = self.cell or (8 if patch_size >= 16 else patch_size)
        if patch_size % cell:
            raise ValueError(f"HOG cells of {cell} pixels do not tile {patch_size}-pixel patches")
        return cell

    def dim(self, patch_size: int, in_chans: int) -> int:
        return in_chans * (patch_size // self.cell_size(patch_size)) ** 2 * self.bins

    def __call__(self, patches: torch.Tensor, patch_size: int, in_chans: int) -> torch.Tensor:
        lead, p = patches.shape[:-1], patch_size
        x = patches.reshape(-1, p, p, in_chans).permute(0, 3, 1, 2)  # [B, C, p, p]
        g_row, g_col = torch.zeros_like(x), torch.zeros_like(x)
        g_row[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
        g_col[:, :, :, 1:-1] = x[:, :, :, 2:] - x[:, :, :, :-2]
        magnitude = torch.hypot(g_row, g_col)  # [B, C, p, p]
        degrees = torch.rad2deg(torch.atan2(g_row, g_col)) % 180
        bin_of = (degrees * (self.bins / 180)).floor().clamp_(max=self.bins - 1)  # [B, C, p, p]
        cell = self.cell_size(p)
        hist = torch.stack([F.avg_pool2d(magnitude * (bin_of == b), cell) for b in range(self.bins)], dim=-1)
        hist = hist / (hist.square().sum(dim=-1, keepdim=True) + self.eps**2).sqrt()  # [B, C, p/c, p/c, bins]
        return hist.reshape(*lead, -1)


TARGETS = dict(zip(TARGET_NAMES, (PixelTarget(), NormPixTarget(), HOGTarget())))


def register_target(name: str, target) -> None:
    """Make `target` (dim(patch_size, in_chans), __call__(patches, patch_size, in_chans), and a
    `pixels` flag: whether its predictions are pixels to picture) buildable as target=name.
    An optional `any_pixel_order = True` says the target commutes with reordering a patch's
    pixels (as pixels and norm_pix do), which lets the loss skip a transposition of the image."""
    if not (callable(target) and callable(getattr(target, "dim", None))):
        raise ValueError(f"a target needs dim(patch_size, in_chans) and __call__(patches, patch_size, "
                         f"in_chans); got {target!r}")
    TARGETS[name] = target


def get_target(name: str):
    if name not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {name!r}")
    return TARGETS[name]


def model_target(target: str, norm_pix_loss: bool) -> str:
    """The target a model predicts: `norm_pix_loss` (the official flag) is target="norm_pix"."""
    get_target(target)
    if norm_pix_loss and target not in ("pixels", "norm_pix"):
        raise ValueError(f"norm_pix_loss normalises pixel targets; it cannot go with target={target!r}")
    return "norm_pix" if norm_pix_loss else target
