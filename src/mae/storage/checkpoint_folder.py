"""A checkpoint folder on disk, whole or sharded: its files, reading them back verified, finding the newest."""

import contextlib
import hashlib
import json
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import HuggingFaceStorageReader

from .checksums import CorruptFile, sha256_file
from .tensors import read_safetensors

MODEL_FILE = "model.safetensors"

SHARDED_WEIGHTS = "sharded"  # a sharded checkpoint's parts (engine.sharded_checkpoint)


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint folder in a run directory (whole or sharded)."""
    candidates = sorted(
        p.parent for name in (MODEL_FILE, SHARDED_WEIGHTS) for p in (run_dir / "checkpoints").glob(f"*/{name}")
        if not p.parent.name.startswith(".")
    )
    if not candidates:
        raise ValueError(f"run directory {run_dir} has no checkpoints/*/{MODEL_FILE} (or {SHARDED_WEIGHTS}/) yet")
    return candidates[-1]


STATE_TENSORS = "state.safetensors"

STATE_JSON = "state.json"

STATE_JSON_DIGEST = "mae.state_json_sha256"  # in state.safetensors' metadata


def pack(obj, tensors: dict, path: str = "state"):
    """A JSON-able skeleton of `obj`; its tensors go into `tensors` under their path."""
    if isinstance(obj, torch.Tensor):
        key, n = path, 1
        while key in tensors:  # dict keys with dots could repeat a path
            key, n = f"{path}#{n}", n + 1
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: pack(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, pack(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [pack(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [pack(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {path} in a checkpoint (tensors and plain values only)")


def unpack(obj, tensors: dict):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__items__" in obj:
            return {k: unpack(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(unpack(v, tensors) for v in obj["__tuple__"])
        return {k: unpack(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack(v, tensors) for v in obj]
    return obj


def verifies(path: Path) -> bool:
    try:
        verify_checkpoint(path)
        return True
    except CorruptFile:
        return False


def is_complete(path: Path) -> bool:
    return (
        not path.name.startswith(".")
        and ((path / MODEL_FILE).is_file() or (path / SHARDED_WEIGHTS).is_dir())
        and (path / STATE_JSON).is_file()
        and (path / STATE_TENSORS).is_file()
    )


def load_training_state(path: str | Path) -> dict:
    """The training state saved with a checkpoint (without the model weights), verified."""
    path = Path(path)
    tensors, metadata = read_safetensors(path / STATE_TENSORS)
    raw = (path / STATE_JSON).read_bytes()
    digest = metadata.get(STATE_JSON_DIGEST)
    if digest is not None and hashlib.sha256(raw).hexdigest() != digest:
        raise CorruptFile(f"{path / STATE_JSON} is corrupt: its bytes changed since the checkpoint was written")
    try:
        return unpack(json.loads(raw.decode("utf-8")), tensors)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFile(f"{path / STATE_JSON} is corrupt: not valid JSON ({err})") from None
    except (KeyError, TypeError, AttributeError) as err:
        raise CorruptFile(f"{path / STATE_JSON} does not match {path / STATE_TENSORS} (no tensor {err})") from None


def load_model_state(path: str | Path) -> dict:
    """The model weights of a checkpoint (whole or sharded), as a state dict, verified."""
    if (Path(path) / SHARDED_WEIGHTS).is_dir():
        return read_model_state(path)
    tensors, _ = read_safetensors(Path(path) / MODEL_FILE)
    return tensors


def verify_checkpoint(path: Path) -> None:
    """Read every file of a checkpoint back and check it; CorruptFile naming the file if not."""
    for read in (load_model_state, load_training_state):
        try:
            read(path)
        except OSError as err:  # a file vanished or cannot be read
            raise CorruptFile(f"cannot read checkpoint {path}: {err}") from None


@contextlib.contextmanager
def quiet_single_process():
    """DCP warns on every single-process call that it assumes one process, as intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is .*assuming the intent")
        yield


def check_parts(path: Path) -> dict:
    """The checkpoint's record of its parts, after checking that each one is there, unchanged
    (size and SHA-256 as recorded when it was written); CorruptFile naming the part if not."""
    record = load_training_state(path)["sharded"]
    for name, expected in record["files"].items():
        part = path / SHARDED_WEIGHTS / name
        if not part.is_file() or part.stat().st_size != expected["bytes"]:
            found = f"{part.stat().st_size} bytes" if part.is_file() else "missing"
            raise CorruptFile(f"sharded checkpoint {path} is damaged: {SHARDED_WEIGHTS}/{name} should have "
                              f"{expected['bytes']} bytes ({found}); resume from another checkpoint")
        if sha256_file(part) != expected["sha256"]:
            raise CorruptFile(f"sharded checkpoint {path} is damaged: {SHARDED_WEIGHTS}/{name} changed since it was "
                              "written (SHA-256 differs); resume from another checkpoint")
    return record


def read_model_state(path: str | Path) -> dict:
    """The full weights of a sharded checkpoint, in this process alone (no process group)."""
    path = Path(path)
    check_parts(path)
    reader = HuggingFaceStorageReader(str(path / SHARDED_WEIGHTS))
    shapes = reader.read_metadata().state_dict_metadata
    weights = {key.removeprefix("model."): torch.empty(meta.size, dtype=meta.properties.dtype)
               for key, meta in shapes.items() if key.startswith("model.")}
    with quiet_single_process():
        dcp.load({"model": weights}, storage_reader=HuggingFaceStorageReader(str(path / SHARDED_WEIGHTS)), no_dist=True)
    return weights


def model_metadata(path: str | Path) -> tuple[str, dict]:
    """(kind, constructor config) of the model in a sharded checkpoint."""
    record = load_training_state(path)["sharded"]
    return record["kind"], record["config"]
