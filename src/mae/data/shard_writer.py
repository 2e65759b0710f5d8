"""An image folder -> tar shards in the webdataset layout, with a manifest (`mae shards`).

    OUT/train-000000.tar    samples 0 .. size-1: 000000000.jpg (+ 000000000.cls, the label)
    OUT/train-000001.tar    ...
    OUT/manifest.json       counts, classes, options, every shard's sha256 and every
                            sample's offset, size and label; the digest of it all

Samples keep the folder's order (sorted, class by class). Each image is copied as it is,
or, with `short_side`, decoded, shrunk so that its shorter side is `short_side` (never
enlarged) and stored as JPEG of `quality`. Shards are written by `processes` worker
processes, each to a hidden file renamed into place when complete, so an interrupted run
continues where it stopped: shards already there are kept (after checking they hold what
the plan says), the rest written. The manifest comes last; readers (`TarShards`) take the
offsets from it instead of scanning every tar header.
"""

import hashlib
import io
import json
import os
import tarfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from .folder import ImageFolder
from .images import open_image

MANIFEST = "manifest.json"
FORMAT = "mae-shards/1"


@dataclass(frozen=True)
class ShardPlan:
    source: str
    count: int
    shard_size: int
    prefix: str
    short_side: int | None
    quality: int

    def shard_name(self, shard: int) -> str:
        return f"{self.prefix}-{shard:06d}.tar"

    @property
    def shards(self) -> int:
        return -(-self.count // self.shard_size)


def encode(path: Path, short_side: int | None, quality: int) -> tuple[bytes, str]:
    """The bytes stored for one image and their extension: the file itself, or a shrunk JPEG."""
    if short_side is None:
        return path.read_bytes(), path.suffix.lower().lstrip(".")
    with open_image(path) as img:
        scale = short_side / min(img.size)
        if scale < 1:
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img.draft("RGB", size)  # JPEG: decode at the largest DCT reduction still >= size
            img = img.convert("RGB").resize(size, Image.BICUBIC, reducing_gap=3.0)
        else:
            img = img.convert("RGB")
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue(), "jpg"


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(payload), 0o644, 0  # mtime 0: same input, same bytes
    tar.addfile(info, io.BytesIO(payload))


def write_shard(plan: ShardPlan, files: list[str], labels: list[int], shard: int, out: str) -> dict:
    """Write shard `shard` (samples of `files`, numbered from shard x size) unless it is there."""
    path = Path(out) / plan.shard_name(shard)
    first = shard * plan.shard_size
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for i, (file, label) in enumerate(zip(files, labels)):
                    payload, ext = encode(Path(file), plan.short_side, plan.quality)
                    _add(tar, f"{first + i:09d}.{ext}", payload)
                    if label >= 0:
                        _add(tar, f"{first + i:09d}.cls", str(label).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return index_shard(path, first, len(files))


def index_shard(path: Path, first: int, count: int) -> dict:
    """A written shard's entry in the manifest: sha256, and each sample's offset, size, label."""
    offsets, sizes, labels = [], [], []
    with tarfile.open(path, "r:") as tar:
        members = [m for m in tar if m.isfile()]
        cls = {m.name.split(".")[0]: int(tar.extractfile(m).read()) for m in members if m.name.endswith(".cls")}
    for m in members:
        if not m.name.endswith(".cls"):
            offsets.append(m.offset_data)
            sizes.append(m.size)
            labels.append(cls.get(m.name.split(".")[0], -1))
    keys = [m.name.split(".")[0] for m in members if not m.name.endswith(".cls")]
    if keys != [f"{first + i:09d}" for i in range(count)]:
        raise ValueError(f"{path} does not hold samples {first}..{first + count - 1} of this plan (another "
                         "source, shard size or interrupted write?); delete it and run again")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"name": path.name, "count": count, "bytes": path.stat().st_size, "sha256": digest,
            "offsets": offsets, "sizes": sizes, "labels": labels}


def write_shards(source: str | Path, out: str | Path, shard_size: int = 1000, prefix: str = "train",
                 short_side: int | None = None, quality: int = 90, processes: int = 1, progress=None) -> dict:
    """Write (or finish writing) the shards of an image folder, then the manifest; returns it."""
    if shard_size < 1 or processes < 1 or not 1 <= quality <= 100 or (short_side is not None and short_side < 1):
        raise ValueError(f"--shard-size and --processes must be at least 1, --quality in [1, 100], --short-side "
                         f"at least 1; got {shard_size}, {processes}, {quality}, {short_side}")
    folder = ImageFolder(source)
    out = Path(out)
    plan = ShardPlan(str(Path(source).resolve()), len(folder), shard_size, prefix, short_side, quality)
    out.mkdir(parents=True, exist_ok=True)
    plan_file = out / ".mae-shards-plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()) != asdict(plan):
        raise ValueError(f"{out} holds shards of another plan ({plan_file.read_text()}); this run asks for "
                         f"{json.dumps(asdict(plan))}: choose another output folder or delete it")
    plan_file.write_text(json.dumps(asdict(plan)))
    for stale in out.glob(".*.tmp"):  # a write that was killed
        stale.unlink()

    files = [str(f) for f in folder.files]
    jobs = [(s, slice(s * shard_size, (s + 1) * shard_size)) for s in range(plan.shards)]
    with ProcessPoolExecutor(processes) as pool:
        futures = [pool.submit(write_shard, plan, files[part], folder.targets[part], s, str(out)) for s, part in jobs]
        shards = []
        for done, future in enumerate(futures, 1):
            shards.append(future.result())
            if progress:
                progress(done, plan.shards)
    body = {"format": FORMAT, **asdict(plan), "classes": folder.classes, "shards": shards}
    manifest = {**body, "digest": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, out / MANIFEST)
    return manifest


def read_manifest(folder: str, read=None, size=None) -> tuple[list[str], list[tuple[int, int, int, str]],
                                                              list[int], list[str]]:
    """(shard paths, (shard, offset, size, key) per sample, labels, classes) from a manifest,
    after checking that every shard is there with the size it had when written. `read(path)`
    and `size(path)` (None: absent) reach the storage: local files by default, or a URL's
    filesystem (`remote_shards`)."""
    read = read or (lambda path: Path(path).read_bytes())
    size = size or (lambda path: Path(path).stat().st_size if Path(path).is_file() else None)
    where = f"{folder}/{MANIFEST}"
    manifest = json.loads(read(where))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{where} is not a manifest of `mae shards` (format {manifest.get('format')!r})")
    paths, entries, labels = [], [], []
    for shard_id, shard in enumerate(manifest["shards"]):
        path = f"{folder}/{shard['name']}"
        found = size(path)
        if found != shard["bytes"]:
            found = "missing" if found is None else f"{found} bytes"
            raise ValueError(f"shard {path} should have {shard['bytes']} bytes as {MANIFEST} says ({found}); "
                             "write the shards again with `mae shards` (it keeps the complete ones)")
        first = shard_id * manifest["shard_size"]
        paths.append(path)
        entries += [(shard_id, offset, length, f"{first + i:09d}")
                    for i, (offset, length) in enumerate(zip(shard["offsets"], shard["sizes"]))]
        labels += shard["labels"]
    return paths, entries, labels, manifest["classes"]
