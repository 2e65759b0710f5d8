"""Per-tensor checksums: a manifest written with the tensors and checked when they are read.

    manifest = tensor_checksums(tensors)          # {name: "float32[64,3,8,8]:1a2b3c4d"}
    verify_tensors(tensors, manifest, "ckpt-8/model.safetensors")   # ValueError naming what differs

The manifest is plain JSON, one entry per tensor (dtype, shape, CRC-32 of its bytes), so a
writer that stores one file per shard can keep a manifest per shard and check each alone.
CRC-32 catches flipped bytes and torn writes; it is not meant to resist tampering.
"""

import hashlib
import zlib
from pathlib import Path

import torch

CHECKSUMS_KEY = "mae.checksums"  # where our safetensors files keep the manifest (as JSON)


class CorruptFile(ValueError):
    """A file that cannot be read back as written (torn, truncated, flipped bytes)."""


def tensor_checksum(tensor: torch.Tensor) -> str:
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    shape = ",".join(map(str, tensor.shape))
    return f"{str(tensor.dtype).removeprefix('torch.')}[{shape}]:{zlib.crc32(data):08x}"


def tensor_checksums(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    return {name: tensor_checksum(t) for name, t in tensors.items()}


def verify_tensors(tensors: dict[str, torch.Tensor], manifest: dict[str, str], source: str) -> None:
    """Raise CorruptFile naming `source` and the first tensors that do not match `manifest`."""
    missing = sorted(set(manifest) - set(tensors))
    extra = sorted(set(tensors) - set(manifest))
    wrong = [name for name in manifest if name in tensors and tensor_checksum(tensors[name]) != manifest[name]]
    problems = [f"{what}: {', '.join(names[:4])}" for what, names in (
        ("missing tensors", missing), ("tensors not in its manifest", extra),
        (f"{len(wrong)} tensor(s) whose bytes changed since they were written", wrong)) if names]
    if problems:
        raise CorruptFile(f"{source} is corrupt: " + "; ".join(problems))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()
