"""The interface every dataset offers: a list of images with optional integer labels."""

from PIL import Image


class ImageSource:
    """Images by index, decoded lazily, each with a label (-1 when the data has none).

    `classes` holds the class names; a label is an index into it. Subclasses:
    ImageFolder, TarShards, SyntheticShapes.
    """

    classes: list[str] = []

    def __len__(self) -> int:
        raise NotImplementedError

    def open(self, index: int) -> Image.Image:
        """The image, with only its header read (a context manager: close it after use)."""
        raise NotImplementedError

    def label(self, index: int) -> int:
        raise NotImplementedError

    def name(self, index: int) -> str:
        """Where the image comes from, for messages (a path, a shard member)."""
        raise NotImplementedError

    def encoded(self, index: int) -> bytes | None:
        """The image file's bytes as stored, for sources that hold files (else None)."""
        return None

    def size_of(self, index: int) -> tuple[int, int] | None:
        """(width, height) when known without decoding, else None."""
        return None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labels(self) -> list[int]:
        return [self.label(i) for i in range(len(self))]
