"""Numbers in messages: `plural(1, "image")` -> "1 image", `format_count(1540)` -> "1.54k",
`format_size((32, 48))` -> "32x48 px", `format_duration(75)` -> "1m15s"."""

import math


def plural(count: float, noun: str) -> str:
    """`count` and the noun, singular for 1: "1 epoch", "1.5 epochs" (three significant digits, whole
    numbers from 1000 on)."""
    number = f"{count:.3g}" if abs(count) < 1000 else f"{count:.0f}"
    return f"{number} {noun}" if number == "1" else f"{number} {noun}s"


def format_count(n: int) -> str:
    """A parameter or image count in three significant digits: 840, 1.54k, 5.53M, 1.2B."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def format_size(size) -> str:
    """An image size (a side, or (height, width)) as "32 px" or "32x48 px" (height x width)."""
    if isinstance(size, int):
        return f"{size} px"
    height, width = size
    return f"{height} px" if height == width else f"{height}x{width} px"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
