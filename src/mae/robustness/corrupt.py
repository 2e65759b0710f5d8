"""A corrupted copy of a labelled image folder in the ImageNet-C layout, for `mae eval --imagenet-c`.

    write_corrupted(ImageFolder("birds/test"), "birds-c", names=benchmark_names(), severities=(1, 2, 3, 4, 5))
    # -> birds-c/<corruption>/<severity>/<class>/<image>.png

As ImageNet-C was made: each image is resized and centre-cropped to `size` (the 224 of 256
evaluation view), then corrupted with the corruptions of Hendrycks & Dietterich (2019) as
the `imagecorruptions` package implements them (the `[corruptions]` extra). Every
corruption's randomness is a function of (seed, corruption, severity, image index), so a
copy is the same whatever the number of workers, and an interrupted run continues where it
stopped (files are written under a dot-name, then renamed; finished ones are kept).
"""

import inspect
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data import ImageFolder, ResizeCenterCrop
from ..data.transforms import STANDARD_CROP
from .benchmarks import SEVERITIES, alexnet_errors

INSTALL = "pip install 'mae[corruptions]' (the imagecorruptions-imaug package, which runs on current numpy)"
_STREAM = 0xC0AA


def backend():
    """The imagecorruptions module: {name: function}, or a ValueError saying how to install it."""
    try:
        from imagecorruptions import corruption_dict
    except ImportError:
        raise ValueError(f"corrupted copies need the imagecorruptions package: {INSTALL}") from None
    return corruption_dict


def benchmark_names() -> list[str]:
    """The 15 corruptions of ImageNet-C (those its mCE averages), in the benchmark's order."""
    return list(alexnet_errors())


def resolve_names(spec: str) -> list[str]:
    """'benchmark' (the 15), 'all' (+ the 4 held-out ones) or comma-separated names -> names, checked."""
    known = list(backend())
    if spec == "benchmark":
        return benchmark_names()
    if spec == "all":
        return known
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"--corruptions: unknown corruption(s) {', '.join(unknown) or repr(spec)}; "
                         f"known: benchmark, all, or any of {', '.join(known)}")
    return names


def _seed(seed: int, name: str, severity: int, index: int) -> int:
    key = [seed, _STREAM, int.from_bytes(name.encode(), "little") % 2**31, severity, index]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def corrupted(pixels: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """uint8 [H, W, 3] -> the same image corrupted; all randomness from `seed`."""
    function = backend()[name]
    np.random.seed(seed)  # the package draws from numpy's global generator ...
    extra = {"seed": seed} if "seed" in inspect.signature(function).parameters else {}  # ... or from its own
    out = function(Image.fromarray(pixels), severity, **extra)
    return np.uint8(np.clip(np.asarray(out, dtype=np.float64), 0, 255))


def check_backend(names: list[str], severities: tuple[int, ...]) -> None:
    """Every corruption at every severity on a small image: a clear error before the real work."""
    probe = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    failed = []
    for name in names:
        for severity in severities:
            try:
                corrupted(probe, name, severity, 0)
            except Exception as err:  # a broken install: numpy / scikit-image API drift
                failed.append(f"{name} ({type(err).__name__}: {str(err)[:80]})")
                break
    if failed:
        raise ValueError(f"the installed imagecorruptions cannot run {len(failed)} corruption(s): "
                         f"{'; '.join(failed)}; {INSTALL}, or leave them out with --corruptions")


class _Job:
    """Per image: crop once, then every (corruption, severity) not yet on disk. Picklable."""

    def __init__(self, source: ImageFolder, out: Path, names, severities, size: int, seed: int):
        self.source, self.out, self.names, self.severities = source, out, names, severities
        self.view = ResizeCenterCrop(size, STANDARD_CROP, channels=3)  # as ImageNet-C: 224 of 256
        self.seed = seed

    def target(self, index: int, name: str, severity: int) -> Path:
        path = self.source.files[index].relative_to(self.source.root).with_suffix(".png")
        return self.out / name / str(severity) / path

    def __call__(self, index: int) -> int:
        todo = [(n, s) for n in self.names for s in self.severities if not self.target(index, n, s).exists()]
        if not todo:
            return 0
        pixels = self.view(self.source.open(index)).permute(1, 2, 0).numpy()  # [S, S, 3] uint8
        for name, severity in todo:
            image = corrupted(pixels, name, severity, _seed(self.seed, name, severity, index))
            path = self.target(index, name, severity)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            Image.fromarray(image).save(partial, format="PNG")
            os.replace(partial, path)
        return len(todo)


def write_corrupted(source: ImageFolder, out: str | Path, names: list[str], severities=SEVERITIES,
                    size: int = 224, seed: int = 0, workers: int = 0, progress: bool = False) -> int:
    """Write the corrupted copy of `source`; returns the number of files written (0 when all were there)."""
    if size < 32:
        raise ValueError(f"--size {size}: the corruptions need images of at least 32 pixels")
    wrong = [s for s in severities if s not in SEVERITIES]
    if wrong:
        raise ValueError(f"--severities must be among 1-5, got {wrong}")
    data = source.root
    if not source.classes:
        raise ValueError(f"--data {data} has no class subfolders: a corrupted copy keeps the labels, "
                         "so it needs one subfolder per class")
    stems: dict[Path, Path] = {}
    for file in source.files:
        stem = file.relative_to(source.root).with_suffix("")
        if stem in stems:
            raise ValueError(f"--data {data}: {stems[stem].name} and {file.name} would both be written "
                             f"as {stem}.png; rename one")
        stems[stem] = file
    check_backend(names, tuple(severities))
    job = _Job(source, Path(out), list(names), tuple(severities), size, seed)
    with ProcessPoolExecutor(workers) if workers else nullcontext() as pool:
        counts = pool.map(job, range(len(source)), chunksize=4) if workers else map(job, range(len(source)))
        return sum(tqdm(counts, total=len(source), unit="img", desc="corrupt", disable=not progress))
