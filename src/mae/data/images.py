"""Opening and decoding images with Pillow: which files are images, cheap header checks, and
the one decoding (orientation, bit depth, alpha, channels) that every command uses."""

import io
import struct
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


# EXIF orientation (tag 0x0112) -> the transposition that makes the stored pixels upright
ORIENTATION_TAG = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8; 1: stored upright). Unreadable EXIF counts as upright."""
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, TypeError, struct.error):
        return 1
    return value if value in _UPRIGHT else 1


def turn_upright(img: Image.Image, turn: int) -> Image.Image:
    """Stored pixels (an image, a mask) turned as EXIF orientation `turn` says (1: as they are)."""
    upright = _UPRIGHT.get(turn)
    return img.transpose(upright) if upright is not None else img


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as shown, after its EXIF orientation."""
    width, height = img.size
    return (height, width) if orientation(img) in (5, 6, 7, 8) else (width, height)


def decode_image(img: Image.Image, channels: int) -> Image.Image:
    """The one decoding of every command: an opened image -> 8-bit RGB (channels=3) or L (1).

    - EXIF orientation is applied (a phone photo comes out upright);
    - 16-bit and 32-bit integer images map 0..65535 onto 0..255; float images map 0..1
      onto 0..255 (values outside are clipped);
    - transparent pixels are composited onto white (a logo on a transparent background
      does not turn into a black square);
    - palette, CMYK, grey and the rest are converted by Pillow.
    """
    if channels not in (1, 3):
        raise ValueError(f"images can be read with 1 or 3 channels, not {channels}")
    img.load()  # decoded now: an image that needs no conversion is returned as is, and must outlive its file
    turn = orientation(img)
    target = "RGB" if channels == 3 else "L"
    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, dtype=np.float32)
        values = values * 255.0 if img.mode == "F" else values / 257.0
        img = Image.fromarray(values.clip(0, 255).round().astype(np.uint8), mode="L")
    elif img.has_transparency_data:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != target:
        img = img.convert(target)
    return turn_upright(img, turn)


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
