"""Safetensors and PyTorch files read and written safely: checksummed tensors, atomic writes, no code unpickled."""

import argparse
import json
import os
import pickle
import re
import warnings

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .checksums import CHECKSUMS_KEY, CorruptFile, tensor_checksums, verify_tensors
from .files import atomic_write


def write_tensors(state: dict, path, metadata: dict | None = None) -> None:
    """A safetensors file whose metadata also holds the tensors' checksums, written atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    metadata = dict(metadata or {}, **{CHECKSUMS_KEY: json.dumps(tensor_checksums(tensors))})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _opened(path):
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as err:  # safetensors' own error type: a torn, truncated or foreign file
        raise CorruptFile(f"cannot read {path} as safetensors ({err}): not a safetensors file, or a "
                          "truncated one") from None


def safetensors_keys(path: str | os.PathLike) -> list[str]:
    """The tensor names of a safetensors file (only its header is read)."""
    with _opened(path) as f:
        return list(f.keys())


def read_safetensors(path: str | os.PathLike) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file, checked against its checksums when it has them."""
    tensors = {}
    with _opened(path) as f:
        metadata = f.metadata() or {}
        try:
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
        except Exception as err:
            raise CorruptFile(f"cannot read {path}: {err} (a truncated or damaged file)") from None
    if CHECKSUMS_KEY in metadata:
        try:
            manifest = json.loads(metadata[CHECKSUMS_KEY])
        except json.JSONDecodeError:
            raise CorruptFile(f"{path} is corrupt: its checksum manifest is not valid JSON") from None
        verify_tensors(tensors, manifest, str(path))
    return tensors, metadata


def read_pth(path: str | os.PathLike) -> dict:
    """torch.load without executing code; a pickle with anything else is refused.

    Only tensors, plain containers and numbers/strings are rebuilt (and argparse.Namespace,
    which official checkpoints carry as `args`: it holds no code). A pickle that names any
    other callable, os.system say, is refused before anything in it runs.
    """
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace]):
            warnings.simplefilter("ignore")  # pickle-protocol notes on files we refuse anyway
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found:
            raise ValueError(
                f"refusing to load {path}: it references {found.group(1)}; only tensors and plain "
                "containers are accepted (unpickling anything else could run code from the file), "
                "so nothing in it was run"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
        raise ValueError(
            f"cannot read {path} as a PyTorch checkpoint of tensors "
            f"({detail.group(1) if detail else str(err).splitlines()[0]}); nothing in it was run"
        ) from None
    except Exception as err:  # not a PyTorch file at all: zip or pickle framing broken
        raise ValueError(
            f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {err}); nothing in it was run"
        ) from None
