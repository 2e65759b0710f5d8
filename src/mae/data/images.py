"""Opening images with Pillow: which files are images, cheap header checks, channel conversion."""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# what a failed open or decode raises (truncated data surfaces as OSError from Pillow)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)


class DataWarning(UserWarning):
    """Skipped or suspicious input data (the run continues)."""


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions of every format this Pillow build can open."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def open_image(src: str | Path | bytes) -> Image.Image:
    """A lazily decoded image from a path or encoded bytes (only the header is read)."""
    return Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)


def probe_file(path: Path) -> tuple[int, int] | str:
    """(width, height) from the header, or why the file is not a usable image.

    Besides the header, the last bytes of JPEG and PNG files are checked for the end marker,
    which catches the usual truncated download without decoding the whole file.
    """
    try:
        with Image.open(path) as img:
            size, fmt = img.size, img.format
        if fmt in ("JPEG", "PNG"):
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 1024))
                tail = f.read()
            end_marker = b"\xff\xd9" if fmt == "JPEG" else b"IEND"
            if end_marker not in tail:
                return f"truncated {fmt} (no end marker)"
        if min(size) < 1:
            return f"empty image {size[0]}x{size[1]}"
        return size
    except DECODE_ERRORS as err:
        return str(err) or type(err).__name__


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Grayscale, palette, CMYK, 16-bit or alpha images -> RGB (channels=3) or L (channels=1).

    Transparent pixels are composited onto white, so a logo on a transparent background
    does not turn into a black square.
    """
    if channels not in (1, 3):
        raise ValueError(f"images can be read with 1 or 3 channels, not {channels}")
    target = "RGB" if channels == 3 else "L"
    if img.mode == target:
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    elif img.mode.startswith("I") or img.mode == "F":
        # 16-bit / 32-bit grayscale: map the 16-bit range onto 8 bits before converting
        values = np.asarray(img, dtype=np.float32)
        if img.mode.startswith("I;16") or values.max() > 255:
            values = values / 257.0
        img = Image.fromarray(values.clip(0, 255).round().astype(np.uint8), mode="L")
    return img.convert(target)


def listing(problems: list[tuple[str, str]], limit: int = 10) -> str:
    """'a.jpg (why); b.png (why); ... and 3 more' for messages."""
    shown = "; ".join(f"{name} ({why})" for name, why in problems[:limit])
    return shown + (f"; ... and {len(problems) - limit} more" if len(problems) > limit else "")


def warn_skipped(where: str, problems: list[tuple[str, str]]) -> None:
    warnings.warn(
        f"skipping {len(problems)} unreadable image file(s) in {where}: {listing(problems)}"
        " (use --strict-data to stop instead)",
        DataWarning,
        stacklevel=3,
    )
