"""Sharded (--fsdp) checkpoints as whole ones: files and folders follow the umask, and a save
the disk has no room for stops before any part is written, naming the checkpoint."""

import os
import shutil
import stat

import pytest

import mae.engine.run.sharded_checkpoints as sharded_checkpoint
import mae.storage.disk as disk
import mae.storage.files as storage_files
from helpers import TINY
from mae.engine import PretrainConfig, pretrain
from mae.engine.run.checkpoints import CheckpointManager
from mae.storage.disk import DiskFull

RUN = dict(model="mae_vit_tiny_patch16", **TINY, synthetic_size=32, batch_size=16, epochs=2, warmup_epochs=1,
           num_workers=0, preview_images=1, fsdp=True, threads=1)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    storage_files._umask.cache_clear()
    yield
    os.umask(old)
    storage_files._umask.cache_clear()


def test_a_sharded_checkpoint_follows_the_umask_as_a_whole_one(tmp_path, umask_027):
    for name, fsdp in (("sharded", True), ("whole", False)):
        pretrain(PretrainConfig(**{**RUN, "fsdp": fsdp}, output_dir=str(tmp_path / name)))
    latest = CheckpointManager(tmp_path / "sharded" / "checkpoints").latest()
    assert (latest / "sharded").is_dir() and (latest / "state.safetensors").is_file()
    for name in ("sharded", "whole"):
        found = [p for p in (tmp_path / name).rglob("*")]
        assert len([p for p in found if p.suffix == ".safetensors"]) >= 4
        wrong = {str(p.relative_to(tmp_path)): oct(mode(p)) for p in found
                 if mode(p) != (0o750 if p.is_dir() else 0o640)}
        assert wrong == {}


def test_a_save_without_room_for_its_parts_stops_before_writing_them(tmp_path, monkeypatch):
    usage, full, written = shutil.disk_usage(tmp_path), [], []
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: usage._replace(free=0) if full else usage)
    real_state, real_save = sharded_checkpoint.get_state_dict, sharded_checkpoint.dcp.save

    def state_when_full(*args):  # the disk fills up after the first checkpoint
        if CheckpointManager(tmp_path / "run" / "checkpoints").latest() is not None:
            full.append(True)
        return real_state(*args)

    monkeypatch.setattr(sharded_checkpoint, "get_state_dict", state_when_full)
    monkeypatch.setattr(sharded_checkpoint.dcp, "save", lambda *a, **k: written.append(1) or real_save(*a, **k))
    out = tmp_path / "run"
    with pytest.raises(DiskFull, match=f"not enough free space in {out / 'checkpoints'} for checkpoint "
                                       r"ckpt-000000002 \(the parts of 1 process\(es\)\): needs about "
                                       r"\d+\.\d MB, 0.0 MB free"):
        pretrain(PretrainConfig(**RUN, save_every_steps=1, output_dir=str(out)))
    assert written == [1]  # the first checkpoint's parts only
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["ckpt-000000001"]
