"""Checkpoints carry checksums; a corrupt one is named, skipped by --resume auto, and refused by
eval / finetune / linprobe with a clear message."""

import json
import math
import warnings

import pytest
import torch

import mae
from helpers import TINY
from mae.cli import main
from mae.engine.compute import distributed
from mae.engine.run.checkpoints import CheckpointManager, CheckpointWarning
from mae.engine.run.plan import TrainingDiverged, read_losses
from mae.models.vit import VisionTransformer
from mae.storage.checkpoint_folder import load_model_state, load_training_state
from mae.storage.checksums import CorruptFile
from mae.weights.format import save_model


def flip_byte(path, offset_from_end=100):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble_header_key(path):
    data = path.read_bytes()
    path.write_bytes(data.replace(b"exp_avg", b"exp_xyz", 1))  # same length: the header still parses


def garble_json(path):
    text = path.read_text()
    path.write_text(text.replace('"step": 8', '"step": 9'))  # valid JSON, other bytes


CORRUPTIONS = {
    "flipped model byte": ("model.safetensors", flip_byte),
    "truncated model": ("model.safetensors", truncate),
    "renamed state tensor": ("state.safetensors", garble_header_key),
    "edited state.json": ("state.json", garble_json),
    "torn state.json": ("state.json", truncate),
}


@pytest.fixture
def two_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 3, 32, 32)).loss.backward()
    opt.step()
    manager = CheckpointManager(tmp_path / "run" / "checkpoints")
    for step in (4, 8):
        manager.save(step, model, {"step": step, "optimizer": opt.state_dict()})
    return manager


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupt_newest_checkpoint_is_named_and_resume_auto_takes_the_newest_good_one(two_checkpoints, kind):
    name, corrupt = CORRUPTIONS[kind]
    newest = two_checkpoints.latest()
    corrupt(newest / name)
    with pytest.raises(CorruptFile, match=str(newest / name)):
        load_training_state(newest) if name != "model.safetensors" else load_model_state(newest)
    with pytest.warns(CheckpointWarning, match=f"{newest / name}.*resuming from ckpt-000000004"):
        assert two_checkpoints.resolve("auto").name == "ckpt-000000004"
    assert two_checkpoints.newest_verified().name == "ckpt-000000004"
    with pytest.raises(CorruptFile, match=str(newest / name)):
        two_checkpoints.resolve(str(newest))  # asked for by name: an error, not a fallback


def test_when_no_checkpoint_verifies_resume_stops_instead_of_starting_afresh(two_checkpoints):
    for path in two_checkpoints.complete():
        flip_byte(path / "model.safetensors")
    with pytest.raises(CorruptFile, match="no checkpoint in .* verifies"):
        two_checkpoints.resolve("auto")


def test_the_divergence_message_names_the_newest_verified_checkpoint_as_last_good(two_checkpoints):
    newest = two_checkpoints.latest()
    flip_byte(newest / "model.safetensors")
    window = [torch.tensor(1.0), torch.tensor(math.nan)]
    with pytest.raises(TrainingDiverged) as err:
        read_losses(window, distributed.DistEnv(), step=10, epoch_steps=4, checkpoints=two_checkpoints)
    assert "ckpt-000000004" in str(err.value) and newest.name not in str(err.value)


def test_resume_auto_continues_past_a_corrupt_checkpoint_and_sets_it_aside(tmp_path, one_thread):
    from mae.engine import PretrainConfig, pretrain

    settings = dict(model="mae_vit_tiny_patch16", **TINY, synthetic_size=32, batch_size=16, epochs=4,
                    warmup_epochs=1, num_workers=0, preview_images=1, save_every_steps=2,
                    output_dir=str(tmp_path / "run"))
    pretrain(PretrainConfig(**settings))
    checkpoints = tmp_path / "run" / "checkpoints"
    flip_byte(checkpoints / "ckpt-000000008" / "model.safetensors")
    (checkpoints / "ckpt-000000006" / "state.json").write_text("{")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pretrain(PretrainConfig(**settings, resume="auto"))
    messages = [str(w.message) for w in caught if issubclass(w.category, CheckpointWarning)]
    assert any("ckpt-000000008/model.safetensors" in m for m in messages), messages
    assert any("ckpt-000000006/state.json" in m for m in messages), messages
    assert result.step == 8 and load_training_state(result.checkpoint)["step"] == 8
    # the corrupt ones are kept aside (for a look), and no reader takes them any more
    assert (checkpoints / ".set-aside-ckpt-000000006").is_dir()
    assert isinstance(mae.load_model(tmp_path / "run"), mae.models.MaskedAutoencoder)


@pytest.fixture
def classifier_run(tmp_path):
    """A fine-tune-like run directory whose newest checkpoint (and best model) is corrupt."""
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4, num_classes=6)
    manager = CheckpointManager(tmp_path / "ft" / "checkpoints")
    path = manager.save(2, model, {"step": 2})
    flip_byte(path / "model.safetensors")
    return path / "model.safetensors"


@pytest.mark.parametrize("command", ["eval", "finetune", "linprobe"])
def test_eval_finetune_and_linprobe_name_a_corrupt_checkpoint(classifier_run, tmp_path, command, capsys):
    extra = [] if command == "eval" else ["--epochs", "1", "--warmup-epochs", "0", "--output-dir",
                                           str(tmp_path / "out"), "--num-workers", "0"]
    assert main([command, "--checkpoint", str(classifier_run), *extra]) == 2
    err = capsys.readouterr().err
    assert f"{classifier_run} is corrupt" in err and "Traceback" not in err
    assert main([command, "--checkpoint", str(classifier_run.parent.parent.parent), *extra]) == 2
    assert f"{classifier_run} is corrupt" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["eval", "finetune", "linprobe"])
def test_files_that_are_not_checkpoints_are_named(tmp_path, command, capsys):
    fake = tmp_path / "weights.safetensors"
    fake.write_text("not safetensors at all")
    bare = tmp_path / "bare.pth"
    torch.save(torch.ones(3), bare)
    extra = [] if command == "eval" else ["--epochs", "1", "--warmup-epochs", "0", "--output-dir",
                                           str(tmp_path / "out"), "--num-workers", "0"]
    for path, what in ((fake, "as safetensors"), (bare, "holds a bare Tensor")):
        assert main([command, "--checkpoint", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and what in err and "Traceback" not in err


def test_our_safetensors_files_carry_checksums_of_every_tensor(tmp_path):
    model = VisionTransformer(img_size=32, patch_size=8, depth=1, embed_dim=32, num_heads=2)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        manifest = json.loads(f.metadata()["mae.checksums"])
        assert set(manifest) == set(f.keys())
    flip_byte(path)
    with pytest.raises(CorruptFile, match="bytes changed"):
        mae.load_model(path)
