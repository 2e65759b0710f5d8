"""A folder of images: one subfolder per class, or a flat (recursive) folder without labels.

    data/                       data/
      cat/a.jpg  cat/x/b.png      a.jpg
      dog/c.webp                  2019/b.png      (no images directly in data/ needed)

Layout "auto": when the top level holds only subfolders, each is a class (labels are
indices into the sorted class names, as torchvision's ImageFolder); otherwise every image
below the root is one unlabelled sample. Files are found recursively, in every format the
installed Pillow opens; names starting with "." are skipped. Symlinks are followed, but
each real folder is searched once: a link to a folder already searched (a loop such as
`ln -s .. up`) is skipped with a warning naming it.
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ..util.text import plural
from .images import DataWarning, image_extensions, listing, open_image, probe_file, warn_skipped
from .source import ImageSource

LAYOUTS = ("auto", "classes", "flat")


class _Walk:
    """Finds images below folders, entering each real folder once however many symlinks
    lead to it (a link to a parent or to itself would otherwise loop or count twice)."""

    def __init__(self, root: Path, extensions: frozenset[str]):
        self.root, self.extensions = root, extensions
        stat = root.stat()
        self.seen = {(stat.st_dev, stat.st_ino)}  # the real folders entered
        self.skipped: list[tuple[str, str]] = []  # (link below the root, the folder it leads to)

    def _enter(self, folder: Path) -> bool:
        """Whether to search `folder`: not when its real folder already was (then noted)."""
        stat = folder.stat()
        if (stat.st_dev, stat.st_ino) in self.seen:
            self.skipped.append((str(folder.relative_to(self.root)), f"-> {folder.resolve()}"))
            return False
        self.seen.add((stat.st_dev, stat.st_ino))
        return True

    def images_below(self, folder: Path) -> list[Path]:
        """Images below `folder` (the root, or one of its class folders)."""
        if folder != self.root and not self._enter(folder):
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            here = Path(dirpath)
            dirnames[:] = [d for d in sorted(dirnames) if not d.startswith(".") and self._enter(here / d)]
            found += [
                here / f
                for f in sorted(filenames)
                if not f.startswith(".") and Path(f).suffix.lower() in self.extensions
            ]
        return found

    def warn_skipped(self) -> None:
        if self.skipped:
            warnings.warn(
                f"{self.root}: {len(self.skipped)} symlinked folder(s) lead to folders already "
                f"searched and were skipped (each folder is read once): "
                + listing(self.skipped),
                DataWarning,
                stacklevel=3,
            )


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
        walk = _Walk(self.root, extensions)
        if layout == "classes":
            self.classes = [d.name for d in subfolders]
            for label, folder in enumerate(subfolders):
                found = walk.images_below(folder)
                files += found
                labels += [label] * len(found)
        else:
            self.classes = []
            files = walk.images_below(self.root)
            labels = [-1] * len(files)
        walk.warn_skipped()
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

    def encoded(self, index: int) -> bytes:
        return self.files[index].read_bytes()

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
        return f"ImageFolder({str(self.root)!r}, {plural(len(self), 'image')}, {kind})"
