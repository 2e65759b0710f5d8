"""Checkpoints that are complete or absent, never half-written.

    OUT/checkpoints/ckpt-000001200/model.safetensors    weights + model config (mae.load_model reads it)
                                  /state.safetensors    training-state tensors (optimizer moments, ...)
                                  /state.json           the rest of the training state (step, epoch, ...)

A sharded checkpoint (`--fsdp`, see `sharded_checkpoint`) holds sharded/ (one safetensors
file per process) in place of model.safetensors.

A checkpoint is written into a temporary directory whose name starts with "." (which no
reader takes for a checkpoint), each file fsynced, then renamed into place in one step.
Loading never unpickles: tensors come from safetensors, everything else from JSON.
Nested training state (dicts with int keys, tuples, lists, tensors, numbers) round-trips
exactly through `pack` / `unpack`.

Each safetensors file carries the checksums of its tensors (mae.storage.checksums), and
state.safetensors the SHA-256 of state.json; `load_checkpoint` checks all of them, so a
torn, truncated or bit-flipped checkpoint is reported (CorruptFile, naming the file)
instead of loading. Resuming from a run directory skips such a checkpoint, with a warning,
for the newest one that verifies.
"""

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from ...storage.checkpoint_folder import (
    MODEL_FILE,
    STATE_JSON,
    STATE_JSON_DIGEST,
    STATE_TENSORS,
    is_complete,
    pack,
    verifies,
    verify_checkpoint,
)
from ...storage.checksums import CorruptFile
from ...storage.disk import reporting_full_disk, require_free
from ...storage.files import atomic_write, fsync_dir, umask_mode
from ...storage.tensors import write_tensors
from ...weights.format import save_model

SET_ASIDE = ".set-aside-"  # checkpoints a resumed run left behind: kept, never read, never cleaned
HEADERS = 2**20  # bytes allowed for the files' headers and state.json when checking free space


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped or set aside; the message names it."""


# ---------------------------------------------------------------- nested state <-> JSON + tensors


class CheckpointManager:
    """Numbered checkpoints in one directory: save atomically, keep the last K, find the newest."""

    def __init__(self, directory: str | Path, keep_last: int = 3, prefix: str = "ckpt"):
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.directory, self.keep_last, self.prefix = Path(directory), keep_last, prefix

    def name_for(self, step: int) -> str:
        return f"{self.prefix}-{step:09d}"  # zero-padded: name order is step order

    def complete(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.iterdir() if p.name.startswith(self.prefix + "-") and is_complete(p)
        )

    def latest(self) -> Path | None:
        found = self.complete()
        return found[-1] if found else None

    def newest_verified(self) -> Path | None:
        """The newest checkpoint that verifies (None if there is none)."""
        return next((p for p in reversed(self.complete()) if verifies(p)), None)

    def clean_incomplete(self) -> None:
        """Remove temporary directories left by a save that was killed."""
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                if p.name.startswith(".") and not p.name.startswith(SET_ASIDE) and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)

    def set_aside_after(self, kept: Path) -> list[Path]:
        """Hide the checkpoints newer than `kept` (the one a run resumes from: newer ones failed
        to verify, or belong to the stretch of the run being redone) as .set-aside-NAME."""
        moved = []
        for path in self.complete():
            if path.name > kept.name:
                target = self.directory / f"{SET_ASIDE}{path.name}"
                shutil.rmtree(target, ignore_errors=True)
                os.replace(path, target)
                moved.append(target)
        return moved

    def save(self, step: int, model: torch.nn.Module, state: dict) -> Path:
        """Write weights + training state as checkpoint `step`, then drop the oldest beyond K.
        A full disk is reported (DiskFull) before writing when it can be foreseen; the older
        checkpoints stay intact either way."""
        weight_bytes = sum(t.nbytes for t in model.state_dict().values())
        return self.save_with(step, state, lambda folder: save_model(model, folder / MODEL_FILE), weight_bytes)

    def save_with(self, step: int, state: dict, write_weights, weight_bytes: int = 0) -> Path:
        """As `save`, with the weights (`weight_bytes` of them still to write) written by
        `write_weights(folder)` into the checkpoint's folder before it is renamed into place."""
        final = self.directory / self.name_for(step)
        tensors = {}
        text = json.dumps(pack(state, tensors))
        needed = HEADERS + weight_bytes + sum(t.nbytes for t in tensors.values())
        what = f"checkpoint {final.name}"
        with reporting_full_disk(self.directory, needed, what):
            self.directory.mkdir(parents=True, exist_ok=True)
            require_free(self.directory, needed, what)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=self.directory))
            try:
                write_weights(tmp)
                digest = {STATE_JSON_DIGEST: hashlib.sha256(text.encode()).hexdigest()}
                write_tensors(tensors, tmp / STATE_TENSORS, digest)
                atomic_write(tmp / STATE_JSON, lambda p: Path(p).write_text(text))
                os.chmod(tmp, umask_mode(0o777))  # mkdtemp makes it owner-only
                if final.exists():  # the same step saved again: move the old one aside first
                    os.replace(final, tempfile.mkdtemp(prefix=f".old-{final.name}.", dir=self.directory))
                os.replace(tmp, final)
                fsync_dir(self.directory)
            finally:
                self.clean_incomplete()
        self.prune()
        return final

    def prune(self) -> None:
        for old in self.complete()[: -self.keep_last]:
            # hide it first, so an interrupted delete never leaves a partial "complete" one
            hidden = self.directory / f".deleting-{old.name}"
            os.replace(old, hidden)
            shutil.rmtree(hidden, ignore_errors=True)

    def newest_good(self) -> Path | None:
        """The newest checkpoint that verifies; each newer one that does not is named in a
        warning. None when there is no checkpoint; CorruptFile when none verifies."""
        failures = []
        for path in reversed(self.complete()):
            try:
                verify_checkpoint(path)
            except CorruptFile as err:
                failures.append(str(err))
                continue
            for failure in failures:
                warnings.warn(f"skipping a checkpoint that does not verify: {failure}; resuming from "
                              f"{path.name}", CheckpointWarning, stacklevel=2)
            return path
        if failures:
            raise CorruptFile(f"no checkpoint in {self.directory} verifies: " + "; ".join(failures))
        return None

    def resolve(self, resume: str | None) -> Path | None:
        """`--resume` -> a verified checkpoint directory: None, "auto" (the newest good one here,
        if any), or a path to a checkpoint or to a run directory (its newest good one)."""
        if resume is None:
            return None
        if resume == "auto":
            return self.newest_good()
        path = Path(resume)
        if is_complete(path):
            verify_checkpoint(path)
            return path
        if (path / "checkpoints").is_dir():
            found = CheckpointManager(path / "checkpoints", prefix=self.prefix).newest_good()
            if found is None:
                raise ValueError(f"--resume {resume}: the run directory has no complete checkpoint")
            return found
        if not path.exists():
            raise FileNotFoundError(f"--resume {resume}: no such checkpoint or run directory")
        raise ValueError(
            f"--resume {resume}: not a checkpoint (expected {MODEL_FILE}, {STATE_JSON} and "
            f"{STATE_TENSORS}) nor a run directory with checkpoints/"
        )
