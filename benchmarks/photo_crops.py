"""A small real labelled folder from the photos that ship inside scikit-image: each class is
one photo; training crops come from its left three quarters, held-out crops from its right
quarter, so no held-out pixel is ever trained on.

    python benchmarks/photo_crops.py --out runs/photo-crops     # -> train/<photo>/*.png, val/<photo>/*.png
    mae ablate --config configs/ablate_demo.yaml --data runs/photo-crops/train \\
        --knn-val-data runs/photo-crops/val --output-dir runs/ablate-photos
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick", "grass")


def photo(name: str, short_side: int) -> Image.Image:
    """A bundled scikit-image photo (no download), as RGB with its shorter side `short_side` pixels."""
    from skimage import data

    img = Image.fromarray(getattr(data, name)()).convert("RGB")
    scale = short_side / min(img.size)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)


def write_crops(img: Image.Image, left: int, right: int, count: int, size: int, rng, folder: Path) -> None:
    """`count` random size x size crops whose columns lie in [left, right)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        x = int(rng.integers(left, right - size + 1))
        y = int(rng.integers(0, img.height - size + 1))
        img.crop((x, y, x + size, y + size)).save(folder / f"{i:04d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/photo-crops", help="folder to write train/ and val/ into")
    parser.add_argument("--train-per-class", type=int, default=128, help="training crops per photo")
    parser.add_argument("--val-per-class", type=int, default=32, help="held-out crops per photo")
    parser.add_argument("--crop", type=int, default=64, help="crop side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crop positions")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    for name in PHOTOS:
        img = photo(name, short_side=4 * args.crop)
        split = img.width * 3 // 4
        write_crops(img, 0, split, args.train_per_class, args.crop, rng, out / "train" / name)
        write_crops(img, split, img.width, args.val_per_class, args.crop, rng, out / "val" / name)
    print(f"wrote {len(PHOTOS)} classes to {out}/train ({args.train_per_class} each) and {out}/val "
          f"({args.val_per_class} each)")


if __name__ == "__main__":
    main()
