"""Pictures: reconstruction grids (original / masked / reconstruction / + visible) and curves."""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.preprocess import check_image_path, load_images
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .models.mae import MaskedAutoencoder
from .models.options import MASK_TYPES, check_mask_ratio
from .weights.load import load_model

COLUMNS = ("original", "masked", "reconstruction", "reconstruction + visible")
# axis labels of the metrics that runs plot (others: the metric's own name)
CURVE_LABELS = {"step": "optimizer step", "loss": "training loss", "lr": "learning rate",
                "val_loss": "val loss", "val_top1": "val top-1 (%)"}


@dataclass
class Reconstruction:
    """Images as float arrays [N, H, W, C] in [0, 1] (C = 1 or 3), plus the mask and loss."""

    original: np.ndarray
    masked: np.ndarray  # removed patches shown grey
    reconstruction: np.ndarray | None  # the decoder's prediction for every patch (None: not pixels)
    pasted: np.ndarray | None  # prediction on removed patches, the input on visible ones
    mask: np.ndarray  # [N, L], 1 = removed
    loss: float
    norm_pix: bool  # predictions were mapped back from per-patch normalised pixels
    mask_type: str = "random"
    target: str = "pixels"  # what the decoder predicts (mae.models.targets)

    def rows(self) -> list[list[np.ndarray]]:
        """Per image: original, masked, and (for pixel targets) reconstruction, pasted."""
        columns = [self.original, self.masked] + ([self.reconstruction, self.pasted] if self.pasted is not None else [])
        return [[column[i] for column in columns] for i in range(len(self.original))]

    def grid(self, gap: int = 2) -> np.ndarray:
        """The rows as one RGB image [H, W, 3] in [0, 1], `gap` white pixels between cells (for TensorBoard)."""
        rows = self.rows()
        height, width, _ = rows[0][0].shape
        out = np.ones((len(rows) * (height + gap) - gap, len(rows[0]) * (width + gap) - gap, 3), dtype=np.float32)
        for r, row in enumerate(rows):
            for c, image in enumerate(row):
                top, left = r * (height + gap), c * (width + gap)
                out[top: top + height, left: left + width] = image  # a gray image's one channel spreads to three
        return out


def _to_display(imgs: torch.Tensor, mean, std) -> np.ndarray:
    """[N, C, H, W] normalised -> [N, H, W, C] in [0, 1]."""
    chans = imgs.shape[1]
    mean = torch.tensor(mean[:chans] if len(mean) >= chans else [mean[0]] * chans).view(1, -1, 1, 1)
    std = torch.tensor(std[:chans] if len(std) >= chans else [std[0]] * chans).view(1, -1, 1, 1)
    pixels = imgs.float().cpu() * std + mean
    return pixels.clamp(0, 1).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def reconstruct(
    model: MaskedAutoencoder,
    imgs: torch.Tensor,
    mask_ratio: float = 0.75,
    noise: torch.Tensor | None = None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    mask_type: str = "random",
) -> Reconstruction:
    """Run the model on normalised images [N, C, H, W] and return displayable arrays.

    mask_type: random, block or grid (see mae.models.masking), drawn from `noise` like the ratio.

    With norm_pix_loss the decoder predicts each patch normalised by its own mean and
    variance; those are taken from the input patch to map the prediction back to pixels.
    A target that is not pixels (HOG) gives the original and masked images only.
    """
    if not isinstance(model, MaskedAutoencoder):
        raise ValueError(
            "reconstructions need the MAE decoder, but this checkpoint holds an encoder only "
            f"({type(model).__name__}); use a full pretraining checkpoint"
        )
    was_training = model.training
    model.eval()
    try:
        out = model(imgs, mask_ratio=mask_ratio, noise=noise, mask_type=mask_type, return_pred=True)
    finally:
        model.train(was_training)
    grid = model.patch_embed.grid_for(imgs)
    imgs = imgs.float()
    patches = model.patchify(imgs)  # [N, L, p*p*C]
    mask = out.mask.float()  # [N, L]
    mask_img = model.unpatchify(mask.unsqueeze(-1).expand_as(patches), grid)  # [N, C, H, W]
    original = _to_display(imgs, mean, std)
    keep = (1 - mask_img).permute(0, 2, 3, 1).numpy()  # [N, H, W, C], 1 = visible
    masked = original * keep + 0.5 * (1 - keep)
    reconstruction = pasted = None
    if model.target.pixels:
        pred = out.pred.float()  # [N, L, p*p*C]
        if model.norm_pix_loss:
            mean_p = patches.mean(dim=-1, keepdim=True)
            var_p = patches.var(dim=-1, keepdim=True)
            pred = pred * (var_p + 1.0e-6) ** 0.5 + mean_p
        reconstruction = _to_display(model.unpatchify(pred, grid), mean, std)
        pasted = original * keep + reconstruction * (1 - keep)
    return Reconstruction(
        original=original,
        masked=masked,
        reconstruction=reconstruction,
        pasted=pasted,
        mask=out.mask.cpu().numpy(),
        loss=float(out.loss),
        norm_pix=bool(model.norm_pix_loss),
        mask_type=mask_type,
        target=model.config["target"],
    )


def image_noise(seed: int, index: int, num_patches: int) -> torch.Tensor:
    """The masking noise [L] of the `index`-th image: a function of (seed, index) only,
    so an image's mask does not change when other images are added or removed."""
    state = np.random.SeedSequence([seed, index]).generate_state(2)
    generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.rand(num_patches, generator=generator)


def visualize(
    checkpoint,
    image_paths,
    mask_ratio: float = 0.75,
    seed: int = 0,
    out=None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    mask_type: str = "random",
    **overrides,
) -> Reconstruction:
    """Reconstructions of image files by a checkpoint's MAE, as arrays (and a PNG if `out`).

    `checkpoint`: anything `mae.load_model` reads that has the decoder (ours, an official
    full pretraining .pth, a Hugging Face ViTMAE folder), or a MaskedAutoencoder. Images are
    resized and centre-cropped to the model's input size (see mae.data.preprocess). `overrides`
    go to load_model (e.g. norm_pix_loss=True for official weights whose args are gone).
    """
    check_mask_ratio(mask_ratio)
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {', '.join(MASK_TYPES)}, got {mask_type!r}")
    paths = [check_image_path(p) for p in image_paths]  # before the model is loaded
    if not paths:
        raise ValueError("no images given")
    if isinstance(checkpoint, torch.nn.Module):
        model, name = checkpoint, type(checkpoint).__name__
    else:
        model, name = load_model(checkpoint, **overrides), str(checkpoint)
    if not isinstance(model, MaskedAutoencoder):
        raise ValueError(
            f"{name} holds an encoder only ({type(model).__name__}): reconstructions need the "
            "MAE decoder; use a full pretraining checkpoint (ours, official *_full.pth / "
            "visualize weights, or a Hugging Face ViTMAEForPreTraining folder)"
        )
    embed = model.patch_embed
    imgs = load_images(paths, embed.img_size, embed.in_chans, mean, std, min_side=embed.patch_size)  # [N, C, H, W]
    noise = torch.stack([image_noise(seed, i, embed.num_patches) for i in range(len(paths))])  # [N, L]
    device = next(model.parameters()).device
    imgs, noise = imgs.to(device), noise.to(device)
    rec = reconstruct(model, imgs, mask_ratio, noise, mean, std, mask_type)
    if out is not None:
        save_reconstruction_png(rec, out, title=name, row_labels=[p.name for p in paths])
    return rec


def save_reconstruction_png(
    rec: Reconstruction, path, title: str | None = None, row_labels: list[str] | None = None
) -> Path:
    """One row per image, the columns of COLUMNS (the first two without pixel predictions), written to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rec.rows()
    height, width = rows[0][0].shape[:2]
    cell = 2.2
    columns = len(rows[0])
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(columns * cell * max(1.0, width / height), len(rows) * cell + 0.6), squeeze=False,
        layout="constrained",  # leaves room for the two-line title above the column titles
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r][c]
            gray = image.shape[-1] == 1
            ax.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None,
                      vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMNS[c], fontsize=9)
        if row_labels:
            axes[r][0].set_ylabel(row_labels[r], fontsize=8)
    ratio = rec.mask.mean()
    note = f"{rec.mask_type} mask, ratio {ratio:.2f}, loss {rec.loss:.4f}"
    if rec.norm_pix:
        note += "; norm-pix predictions mapped back to pixels with each patch's own mean/std"
    if rec.pasted is None:
        note += f"; the model predicts {rec.target} features, not pixels: no reconstruction to show"
    fig.suptitle((title + "\n" if title else "") + note, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_curves(records: list[dict], path, keys=("loss",), x_key: str = "step") -> Path:
    """Plot metrics (dicts from metrics.jsonl) against `x_key`, one panel per key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(k in r for r in records)]
    if not keys:
        raise ValueError(f"no records carry any of {keys}")
    cols = min(3, len(keys))
    fig, axes = plt.subplots(math.ceil(len(keys) / cols), cols, figsize=(4.5 * cols, 3.2), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r[x_key], r[key]) for r in records if key in r and x_key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_xlabel(CURVE_LABELS.get(x_key, x_key))
        ax.set_ylabel(CURVE_LABELS.get(key, key))
        ax.set_title(key)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
