"""Tar shards in the webdataset layout, read by random access.

A shard is a plain (uncompressed) tar; a sample is the group of members that share a key,
the member path up to the first dot of its file name:

    train-000000.tar:  n01440764_10026.jpg  n01440764_10026.cls   (.cls: the label as text)
                       n01440764_10029.png  n01440764_10029.json  (.json: {"label": 3, ...})

`spec` is one .tar file, a folder of .tar files, or a brace pattern such as
"data/train-{000000..000146}.tar". The shards are indexed once (member offsets), then
each image is read with one positioned read, so any sampler order works and the
randomness stays a function of the sample index, exactly as for an image folder.
Indexing checks each shard whole (not empty, not compressed, every member inside the
file, the end-of-archive block present): a shard that fails is skipped with a warning
naming it and what is wrong, or stops the run under --strict-data.
A folder written by `mae shards` has a manifest.json with every offset and every
shard's size: it is read instead (no scan).
"""

import json
import os
import re
import tarfile
import warnings
from pathlib import Path

from PIL import Image

from ..util.text import plural
from .images import DataWarning, image_extensions, listing, open_image
from .shard_writer import MANIFEST, read_manifest
from .source import ImageSource

_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_braces(pattern: str) -> list[str]:
    """'a-{00..02}.tar' -> ['a-00.tar', 'a-01.tar', 'a-02.tar'] (zero padding kept)."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.group(1), match.group(2)
    if int(last) < int(first):
        raise ValueError(f"empty shard range {match.group(0)} in {pattern!r}")
    width = len(first)
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [
        name
        for i in range(int(first), int(last) + 1)
        for name in expand_braces(f"{head}{i:0{width}d}{tail}")
    ]


def shard_paths(spec: str | Path) -> list[Path]:
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        paths = sorted(path.glob("*.tar"))
        if not paths:
            raise ValueError(f"folder {path} holds no .tar shards")
        return paths
    paths = [Path(p) for p in expand_braces(spec)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"shard file(s) not found: {', '.join(missing[:5])}"
            + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        )
    return paths


def split_key(member_name: str) -> tuple[str, str]:
    """'dir/n0144_1.seg.png' -> ('dir/n0144_1', 'seg.png'), as webdataset groups members."""
    folder, _, base = member_name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _index_shard(path: Path, extensions: set[str]) -> list[tuple[int, int, str, int]]:
    """(offset, size, key, label) of each image sample of one shard; a ValueError says what
    is wrong with a shard that is not a complete plain tar."""
    size = path.stat().st_size
    problem = shard_problem(path, size)
    if problem:
        raise ValueError(problem)
    try:
        tar = tarfile.open(path, "r:")  # uncompressed only: members are read by offset
    except tarfile.TarError as err:
        raise ValueError(f"not a tar file ({err})") from None
    samples: dict[str, dict] = {}
    with tar:
        last, error = None, None
        try:
            for member in tar:
                last = member
                if not member.isfile():
                    continue
                key, ext = split_key(member.name)
                sample = samples.setdefault(key, {})
                if ext in extensions and "image" not in sample:
                    sample["image"] = (member.offset_data, member.size)
                elif ext in ("cls", "json"):
                    payload = tar.extractfile(member).read()
                    sample["label"] = _label_from(ext, payload, f"{path}:{member.name}")
        except (tarfile.TarError, EOFError) as err:
            error = f"damaged ({err})"
        problem = end_problem(tar, size, last) or error
    if problem:
        raise ValueError(problem)
    return [(*s["image"], key, s.get("label", -1)) for key, s in samples.items() if "image" in s]


def _label_from(ext: str, payload: bytes, where: str) -> int:
    try:
        if ext == "cls":
            return int(payload.decode().strip())
        return int(json.loads(payload)["label"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: cannot read a label from .{ext} ({err})") from None


# the first bytes of the compressed files a shard may be by mistake
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def shard_problem(path: Path, size: int) -> str | None:
    """Why a `size`-byte file cannot be a plain tar shard (before tarfile tries), or None."""
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            return (f"{kind}-compressed, not an uncompressed tar file; compressed shards cannot be "
                    "read by offset, recompress as plain .tar")
    return None


def end_problem(tar: tarfile.TarFile, size: int, last: tarfile.TarInfo | None) -> str | None:
    """A tar's last member lies inside the file and is followed by a zero block; without one,
    tarfile quietly stops early (a truncated or damaged shard)."""
    if last is not None and last.offset_data + last.size > size:
        return (f"truncated: member {last.name} needs bytes up to {last.offset_data + last.size} "
                f"of a {size}-byte file")
    tar.fileobj.seek(tar.offset)
    if tar.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
        after = f"after member {last.name}" if last is not None else "at its start"
        return f"truncated or damaged {after}: no end-of-archive block at byte {tar.offset}"
    return None


class TarShards(ImageSource):
    """The samples of every readable shard. A shard that is empty, truncated or not a plain
    tar is skipped with a warning naming it and what is wrong, or is an error when `strict`."""

    def __init__(self, spec: str | Path, strict: bool = False):
        self._pid, self._fds = None, {}
        if (Path(spec) / MANIFEST).is_file():  # written by `mae shards`: no scan needed
            paths, self.entries, self.targets, self.classes = read_manifest(str(spec))
            self.paths = [Path(p) for p in paths]
            return
        paths = shard_paths(spec)
        extensions = {e.lstrip(".") for e in image_extensions()}
        self.paths: list[Path] = []
        self.entries: list[tuple[int, int, int, str]] = []  # (shard, offset, size, key)
        self.targets: list[int] = []
        problems = []
        for path in paths:
            try:
                samples = _index_shard(path, extensions)
            except ValueError as err:
                if strict:
                    raise ValueError(f"shard {path}: {err} (--strict-data)") from None
                problems.append((str(path), str(err)))
                continue
            for offset, size, key, label in samples:
                self.entries.append((len(self.paths), offset, size, key))
                self.targets.append(label)
            self.paths.append(path)
        if not self.paths:
            raise ValueError(f"no readable shard among the {len(paths)} from {spec}: {listing(problems)}")
        if problems:
            warnings.warn(f"skipping {len(problems)} of {len(paths)} shard(s) that cannot be read: "
                          f"{listing(problems)} (use --strict-data to stop instead)", DataWarning, stacklevel=2)
        if not self.entries:
            raise ValueError(f"no image samples found in {len(self.paths)} shard(s) from {spec}")
        labelled = [t for t in self.targets if t >= 0]
        self.classes = [str(i) for i in range(max(labelled) + 1)] if labelled else []
        self.skipped = problems

    def _read(self, index: int) -> bytes:
        # descriptors are opened per process (forked loader workers get their own);
        # os.pread reads at an offset without moving any shared file position
        if self._pid != os.getpid():
            self._pid, self._fds = os.getpid(), {}
        shard, offset, size, _ = self.entries[index]
        if shard not in self._fds:
            self._fds[shard] = os.open(self.paths[shard], os.O_RDONLY)
        return os.pread(self._fds[shard], size, offset)

    def __del__(self):
        for fd in self._fds.values():
            os.close(fd)

    def __len__(self) -> int:
        return len(self.entries)

    def open(self, index: int) -> Image.Image:
        return open_image(self._read(index))

    def encoded(self, index: int) -> bytes:
        return self._read(index)

    def label(self, index: int) -> int:
        return self.targets[index]

    def labels(self) -> list[int]:
        return list(self.targets)

    def name(self, index: int) -> str:
        shard, _, _, key = self.entries[index]
        return f"{self.paths[shard]}:{key}"

    def __repr__(self) -> str:
        return f"TarShards({plural(len(self.paths), 'shard')}, {plural(len(self), 'image')})"
