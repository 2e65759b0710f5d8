"""The built-in dataset: one coloured shape on a textured gradient, labelled by its kind.

Every image is a pure function of (seed, index), rendered on demand, so the dataset needs
no download and no disk and is identical everywhere. There is enough structure to judge a
reconstruction by eye (edges, colours, gradients, stripes) and for a linear probe to tell
the classes apart; position, size, rotation, colours and textures vary within a class.
The shape is drawn from a mask, which is also a segmentation target (`render_with_mask`:
background 0, the shape 1 + its class).
"""

import numpy as np
from PIL import Image

from ..util.text import plural
from .source import ImageSource

SHAPES = ("circle", "square", "triangle", "ring", "cross", "star", "semicircle", "bar")
SUPERSAMPLE = 2  # render at 2x and average: anti-aliased edges
_STREAM = 0x5A17  # keeps these draws apart from the other streams seeded from `seed`


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in the shape's own frame (unit size, centred at 0)."""
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    if kind == "circle":
        return rho <= 1.0
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85
    if kind == "triangle":  # equilateral: three half-planes, inradius 0.55
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        return np.all([u * np.cos(a) + v * np.sin(a) <= 0.55 for a in angles], axis=0)
    if kind == "ring":
        return (rho <= 1.0) & (rho >= 0.55)
    if kind == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    if kind == "star":  # five points
        return rho <= 0.4 + 0.7 * np.abs(np.cos(2.5 * theta)) ** 3
    if kind == "semicircle":
        return (u**2 + (v + 0.45) ** 2 <= 1.2) & (v >= -0.45)
    if kind == "bar":
        return (np.abs(u) <= 1.1) & (np.abs(v) <= 0.28)
    raise ValueError(f"unknown shape {kind!r}")


def render(seed: int, index: int, size: int) -> tuple[np.ndarray, int]:
    """One image [size, size, 3] uint8 and its label; classes cycle with the index."""
    image, _, label = render_with_mask(seed, index, size)
    return image, label


def render_with_mask(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The image, its segmentation mask [size, size] uint8 and its label.

    Mask: 0 = background, 1 + label where the shape covers at least half of the pixel.
    """
    rng = np.random.default_rng([seed, _STREAM, index])
    label = index % len(SHAPES)
    n = size * SUPERSAMPLE
    y, x = np.mgrid[0:n, 0:n]
    x, y = (x + 0.5) / n, (y + 0.5) / n  # pixel centres in [0, 1]

    # background: a linear gradient between two colours, sometimes striped or chequered
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)) / 0.7 + 0.5, 0, 1)
    image = c0 + (c1 - c0) * t[..., None]  # [n, n, 3]
    texture = rng.integers(3)
    if texture == 1:
        freq, phi, phase = rng.uniform(2.5, 5), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(phi) + y * np.sin(phi)) + phase)
        image = image * (1 - 0.3 * stripes[..., None])
    elif texture == 2:
        cells = rng.integers(3, 6)
        checker = (np.floor(x * cells) + np.floor(y * cells)) % 2
        image = image * (1 - 0.25 * checker[..., None])

    # the object: position, size, rotation and a colour that stands out from the background
    cx, cy = rng.uniform(0.32, 0.68, 2)
    radius = rng.uniform(0.24, 0.34)
    rot = rng.uniform(0, 2 * np.pi)
    behind = image[int(cy * n), int(cx * n)]
    colour = rng.uniform(0, 1, 3)
    for _ in range(20):
        if np.linalg.norm(colour - behind) > 0.6:
            break
        colour = rng.uniform(0, 1, 3)
    du, dv = (x - cx) / radius, (y - cy) / radius
    u = du * np.cos(rot) + dv * np.sin(rot)
    v = -du * np.sin(rot) + dv * np.cos(rot)
    inside = _shape_mask(SHAPES[label], u, v)
    fill = np.broadcast_to(colour, image.shape)
    if rng.random() < 0.5:  # two-tone stripes across the object
        bands = (np.floor((u + 2) * rng.uniform(1.5, 3)) % 2)[..., None]
        fill = colour * (1 - 0.45 * bands)
    image = np.where(inside[..., None], fill, image)

    image = image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    coverage = inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    mask = np.where(coverage >= 0.5, 1 + label, 0).astype(np.uint8)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), mask, label


def rendered_side(img_size) -> int:
    """The side the built-in dataset renders for a model of `img_size` (a side, or (height, width)):
    twice the longer side, so that the crop always has pixels to take."""
    return 2 * (img_size if isinstance(img_size, int) else max(img_size))


class SyntheticShapes(ImageSource):
    """`num_images` labelled images of `size` x `size` pixels, a function of (seed, index).

    Rendered images are kept in memory (per process) when they all fit in `cache_bytes`,
    since rendering costs more than the crop and resize that follow.
    """

    def __init__(self, num_images: int = 4096, size: int = 64, seed: int = 0, cache_bytes: int = 512 << 20):
        if num_images < 1 or size < 4:
            raise ValueError(f"synthetic dataset needs num_images >= 1 and size >= 4, got {num_images}, {size}")
        self.num_images, self.size, self.seed = num_images, size, seed
        self.classes = list(SHAPES)
        self._cache = {} if num_images * size * size * 3 <= cache_bytes else None

    def __len__(self) -> int:
        return self.num_images

    def pixels(self, index: int) -> np.ndarray:
        """Image `index` as uint8 [size, size, 3]."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        if self._cache is None:
            return render(self.seed, index, self.size)[0]
        if index not in self._cache:
            self._cache[index] = render(self.seed, index, self.size)[0]
        return self._cache[index]

    def open(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels(index))

    def label(self, index: int) -> int:
        return index % len(SHAPES)

    def name(self, index: int) -> str:
        return f"synthetic(seed={self.seed})#{index}"

    def size_of(self, index: int) -> tuple[int, int]:
        return self.size, self.size

    def __repr__(self) -> str:
        return (f"SyntheticShapes({plural(self.num_images, 'image')} of {self.size} x {self.size} px before the crop, "
                f"{len(SHAPES)} classes, seed={self.seed})")
