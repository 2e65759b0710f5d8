"""From a `--data` value to batches: choosing the source, checking it, the keyed dataset, the loader."""

import atexit
import ctypes
import multiprocessing.util
import signal
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .folder import ImageFolder
from .images import DECODE_ERRORS, DataWarning
from .remote_shards import RemoteShards, is_url
from .shards import TarShards
from .source import ImageSource
from .synthetic import SyntheticShapes

SYNTHETIC = "synthetic"
COMPRESSED = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst", ".zip", ".7z", ".rar")
SPLITS = ("train", "val", "valid", "validation", "test")
_STREAM = 0xA06  # keeps the augmentation draws apart from the other streams seeded from `seed`


def build_source(
    data: str | None,
    strict: bool = False,
    synthetic_size: int = 4096,
    synthetic_resolution: int = 64,
    seed: int = 0,
) -> ImageSource:
    """None or "synthetic": the built-in dataset. A URL: shards written by `mae shards`, read
    through fsspec. A .tar, a brace pattern or a folder of .tar files: tar shards. Any other
    folder: an image folder."""
    if data is None or data == SYNTHETIC:
        return SyntheticShapes(synthetic_size, synthetic_resolution, seed)
    if is_url(data):
        return RemoteShards(data)
    path = Path(data).expanduser()  # "~" also works from YAML, where no shell expands it
    if data.endswith(".tar") or "{" in data or (path.is_dir() and any(path.glob("*.tar"))):
        return TarShards(path, strict=strict)
    if path.is_file():
        compressed = path.name.lower().endswith(COMPRESSED)
        raise ValueError(f"--data {data} is {'a compressed archive' if compressed else 'a file'}: give a folder "
                         "of images or uncompressed .tar shards" + ("; unpack it into a folder (tar -xf / unzip), "
                         "or re-pack it as .tar shards" if compressed else ""))
    return ImageFolder(path, strict=strict)


def warn_split_folders(source: ImageSource, data: str | None) -> None:
    """Pretraining on a folder that holds train/ and val/ would read both, as two classes: say so."""
    splits = [name for name in SPLITS if name in (source.classes or [])]
    if len(splits) >= 2:
        warnings.warn(DataWarning(
            f"--data {data} holds {' and '.join(f'{s}/' for s in splits)}: pretraining reads the images of "
            f"all of them (as {len(source.classes)} classes); to pretrain on the training split only, give "
            f"--data {Path(data) / splits[0]}"))


def check_image_sizes(source: ImageSource, min_side: int, strict: bool = False) -> int:
    """Report images whose shorter side is below the training crop (they get upscaled).

    Returns how many there are; raises under `strict`. Sources that do not know their
    sizes without decoding (tar shards) are not checked.
    """
    small = []
    for i in range(len(source)):
        size = source.size_of(i)
        if size is not None and min(size) < min_side:
            small.append(f"{source.name(i)} ({size[0]}x{size[1]})")
    if small:
        message = (
            f"{len(small)} of {len(source)} images are smaller than the {min_side}-pixel crop "
            f"and will be upscaled: {', '.join(small[:5])}" + (" ..." if len(small) > 5 else "")
        )
        if strict:
            raise ValueError(message + " (--strict-data)")
        warnings.warn(message, DataWarning, stacklevel=2)
    return len(small)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample `index`'s augmentation in `epoch`."""
    return np.random.default_rng([seed, _STREAM, epoch, index])


class KeyedImages(Dataset):
    """An ImageSource through a transform, indexed by (epoch, index) keys from a sampler.

    Sample `index` of epoch `epoch` is augmented with a generator seeded from
    (seed, epoch, index). An image that fails to decode (say, truncated) is reported and
    replaced by the next one, or is an error when `strict`.
    Returns (uint8 image [C, H, W], label).
    """

    def __init__(self, source: ImageSource, transform, seed: int = 0, strict: bool = False):
        self.source, self.transform, self.seed, self.strict = source, transform, seed, strict
        self.failed: set[int] = set()  # per process (each loader worker keeps its own)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = sample_rng(self.seed, epoch, index)
        for attempt in range(min(len(self.source), 16)):
            i = (index + attempt) % len(self.source)
            try:
                return self.sample(i, rng), self.source.label(i)
            except DECODE_ERRORS as err:
                if self.strict:
                    raise ValueError(f"cannot decode {self.source.name(i)}: {err} (--strict-data)") from None
                if i not in self.failed:
                    self.failed.add(i)
                    warnings.warn(
                        f"cannot decode {self.source.name(i)} ({err}); using the next image instead "
                        f"({len(self.failed)} such file(s) so far in this process)",
                        DataWarning,
                        stacklevel=2,
                    )
        raise ValueError(f"16 images in a row from {self.source.name(index)} on failed to decode")

    def sample(self, i: int, rng: np.random.Generator):
        """Image `i` through the transform."""
        with self.source.open(i) as img:
            return self.transform(img, rng)


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process when the process that forked it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: torch's own watchdog ends the worker soon after
        pass


def _single_threaded_worker(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers decode with Pillow; torch threads would only compete
    # A stop is the training process's business: it finishes its step and saves, then ends
    # the workers. Ctrl-C reaches the whole process group, so workers must not die of it first.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _die_with_parent()


@atexit.register  # after multiprocessing's own exit hook, so it runs before that one
def _end_workers_at_exit() -> None:
    """Kill the loader workers still alive at exit (a loop left by an exception keeps its loader's
    workers): they ignore the SIGTERM that multiprocessing ends them with, and its join would wait
    for them forever. torch's SIGCHLD handler, which reports a worker's death, is dropped first."""
    workers = [child for child in multiprocessing.active_children() if child.daemon]
    if workers:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for worker in workers:
        worker.kill()


def make_loader(dataset: Dataset, batches, num_workers: int = 0, pin_memory: bool = False,
                collate=None) -> DataLoader:
    """A DataLoader over a batch sampler (TrainBatches / EvalBatches): (images, labels), or what
    `collate` makes of the samples."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_single_threaded_worker if num_workers else None,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=num_workers > 0,  # an evaluation loader, iterated again, keeps its workers
    )
