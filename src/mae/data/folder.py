"""A folder of images: one subfolder per class, or a flat (recursive) folder without labels.

    data/                       data/
      cat/a.jpg  cat/x/b.png      a.jpg
      dog/c.webp                  2019/b.png      (no images directly in data/ needed)

Layout "auto": when the top level holds only subfolders, each is a class (labels are
indices into the sorted class names, as torchvision's ImageFolder); otherwise every image
below the root is one unlabelled sample. Files are found recursively, in every format the
installed Pillow opens; names starting with "." are skipped.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from .images import image_extensions, listing, open_image, probe_file, warn_skipped
from .source import ImageSource

LAYOUTS = ("auto", "classes", "flat")


def _images_below(folder: Path, extensions: frozenset[str]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and Path(f).suffix.lower() in extensions
        ]
    return found


class ImageFolder(ImageSource):
    """Every readable image below `root`; unreadable ones are skipped with a warning.

    Each file's header is read once up front (threaded), so corrupt files and images
    smaller than the training crop are reported before training starts. With
    strict=True an unreadable file is an error instead.
    """

    def __init__(self, root: str | Path, layout: str = "auto", strict: bool = False, threads: int = 16):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"data folder {self.root} does not exist")
        if not self.root.is_dir():
            raise ValueError(f"data path {self.root} is not a folder")
        extensions = image_extensions()
        entries = [e for e in sorted(self.root.iterdir()) if not e.name.startswith(".")]
        subfolders = [e for e in entries if e.is_dir()]
        if layout == "auto":
            layout = "classes" if subfolders and len(subfolders) == len(entries) else "flat"
        self.layout = layout

        files, labels = [], []
        if layout == "classes":
            self.classes = [d.name for d in subfolders]
            for label, folder in enumerate(subfolders):
                found = _images_below(folder, extensions)
                files += found
                labels += [label] * len(found)
        else:
            self.classes = []
            files = _images_below(self.root, extensions)
            labels = [-1] * len(files)
        if not files:
            what = "is empty" if not entries else "holds no image files"
            raise ValueError(
                f"data folder {self.root} {what} (looked recursively for .jpg, .png, .webp, "
                ".bmp, .tif and every other format Pillow opens)"
            )

        with ThreadPoolExecutor(threads) as pool:
            probes = list(pool.map(probe_file, files))
        problems = [(str(f.relative_to(self.root)), p) for f, p in zip(files, probes) if isinstance(p, str)]
        if problems and strict:
            raise ValueError(f"{len(problems)} unreadable image file(s) in {self.root}: {listing(problems)}")
        if len(problems) == len(files):
            raise ValueError(f"data folder {self.root} has no readable images: {listing(problems)}")
        if problems:
            warn_skipped(str(self.root), problems)
        keep = [i for i, p in enumerate(probes) if not isinstance(p, str)]
        self.files = [files[i] for i in keep]
        self.targets = [labels[i] for i in keep]
        self.sizes = [probes[i] for i in keep]
        self.skipped = problems

    def __len__(self) -> int:
        return len(self.files)

    def open(self, index: int) -> Image.Image:
        return open_image(self.files[index])

    def label(self, index: int) -> int:
        return self.targets[index]

    def labels(self) -> list[int]:
        return list(self.targets)

    def name(self, index: int) -> str:
        return str(self.files[index])

    def size_of(self, index: int) -> tuple[int, int]:
        return self.sizes[index]

    def __repr__(self) -> str:
        kind = f"{len(self.classes)} classes" if self.classes else "unlabelled"
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {kind})"
