"""Shards written by `mae shards`, read from a URL or object store through fsspec
(http(s)://, s3://, gs://, ... : whatever protocols the installed fsspec plugins know).

    mae pretrain --data https://example.org/imagenet-256/ ...      (the folder of manifest.json)

The manifest gives every sample's byte range, so each image is one ranged read: the same
random access as local shards, hence the same (seed, epoch, index) sample order and
augmentation, and a mid-epoch resume that starts at the exact next sample. Nothing is
downloaded ahead; every loader worker opens its own connection.
"""

from .shard_writer import read_manifest
from .shards import TarShards


def is_url(data: str) -> bool:
    return "://" in data


class RemoteShards(TarShards):
    def __init__(self, url: str):
        try:
            import fsspec
        except ImportError:
            raise ValueError(f"--data {url}: reading shards from a URL needs the 'fsspec' package "
                             "(pip install fsspec, plus s3fs / gcsfs for object stores)") from None
        self.url = url.rstrip("/")
        self._pid, self._fds = None, {}
        self.fs, root = fsspec.core.url_to_fs(self.url)

        def size(path: str) -> int | None:
            return self.fs.size(path) if self.fs.exists(path) else None

        try:
            self.paths, self.entries, self.targets, self.classes = read_manifest(root, self.fs.cat_file, size)
        except FileNotFoundError:
            raise ValueError(f"--data {url}: no manifest.json there (only folders written by `mae shards` "
                             "can be read from a URL)") from None

    def _read(self, index: int) -> bytes:
        shard, offset, size, _ = self.entries[index]
        return self.fs.cat_file(self.paths[shard], start=offset, end=offset + size)

    def name(self, index: int) -> str:
        shard, _, _, key = self.entries[index]
        return f"{self.url}/{self.paths[shard].rsplit('/', 1)[-1]}:{key}"

    def __repr__(self) -> str:
        return f"RemoteShards({self.url!r}, {len(self.paths)} shard(s), {len(self)} images)"
