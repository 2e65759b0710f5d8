"""Image sizes: a square's side or (height, width), as a pair."""

def to_2tuple(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"expected an int or (height, width), got {size}")
    return size
