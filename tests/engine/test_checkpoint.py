import json
from pathlib import Path

import pytest
import torch

import mae
from mae.engine.optim.optimizers import adamw, param_groups
from mae.engine.run.checkpoints import CheckpointManager
from mae.storage.checkpoint_folder import load_model_state, load_training_state, pack, unpack

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)


def trained_pair():
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    opt = adamw(param_groups(model, 0.05), 1e-3)
    for _ in range(2):
        model(torch.randn(2, 3, 32, 32)).loss.backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_nested_state_round_trips_exactly():
    state = {"a": 1, "b": (0.9, 0.95), "c": {0: torch.arange(3), 7: {"x": torch.ones(2, 2)}},
             "d": [None, True, "s", 1.5], "e": torch.tensor(3.0)}
    tensors = {}
    skeleton = pack(state, tensors)
    json.dumps(skeleton)  # plain JSON
    back = unpack(json.loads(json.dumps(skeleton)), tensors)
    assert back["b"] == (0.9, 0.95) and set(back["c"]) == {0, 7} and back["d"] == [None, True, "s", 1.5]
    assert torch.equal(back["c"][7]["x"], torch.ones(2, 2)) and torch.equal(back["e"], torch.tensor(3.0))
    with pytest.raises(TypeError, match="cannot store object"):
        pack({"x": object()}, {})


def test_save_load_keeps_weights_and_optimizer_bitwise_and_loads_without_pickle(tmp_path):
    model, opt = trained_pair()
    manager = CheckpointManager(tmp_path / "run" / "checkpoints", keep_last=2)
    path = manager.save(12, model, {"step": 12, "optimizer": opt.state_dict()})
    assert path.name == "ckpt-000000012"
    assert {p.name for p in path.iterdir()} == {"model.safetensors", "state.safetensors", "state.json"}

    state = load_training_state(path)
    torch.manual_seed(1)
    fresh = mae.create_model("mae_vit_tiny_patch16", **TINY)
    fresh.load_state_dict(load_model_state(path))
    fresh_opt = adamw(param_groups(fresh, 0.05), 1e-3)
    fresh_opt.load_state_dict(state["optimizer"])
    assert state["step"] == 12
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    for key, value in opt.state_dict()["state"].items():
        for k, t in value.items():
            assert torch.equal(t, fresh_opt.state_dict()["state"][key][k])
    assert fresh_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    # mae.load_model understands a run directory of ours
    loaded = mae.load_model(tmp_path / "run")
    assert torch.equal(loaded.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)


def test_keeps_the_last_k_and_ignores_incomplete_ones(tmp_path):
    model, _ = trained_pair()
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        manager.save(step, model, {"step": step})
    assert [p.name for p in manager.complete()] == ["ckpt-000000002", "ckpt-000000003"]
    # leftovers of a save that was killed: a dot-named temp dir, a dir without state
    (tmp_path / ".ckpt-000000004.abc").mkdir()
    (tmp_path / "ckpt-000000005").mkdir()
    torch.save({}, tmp_path / "ckpt-000000005" / "junk")
    assert manager.latest().name == "ckpt-000000003"
    assert manager.resolve("auto") == manager.latest()
    manager.clean_incomplete()
    assert not (tmp_path / ".ckpt-000000004.abc").exists()
    manager.save(3, model, {"step": 3, "again": True})  # re-saving a step replaces it
    assert load_training_state(manager.latest())["again"] is True


def test_resolve_resume_targets(tmp_path):
    model, _ = trained_pair()
    run = tmp_path / "run"
    manager = CheckpointManager(run / "checkpoints")
    assert manager.resolve(None) is None and manager.resolve("auto") is None  # nothing yet: fresh start
    saved = manager.save(4, model, {"step": 4})
    assert manager.resolve(str(saved)) == saved
    assert manager.resolve(str(run)) == saved
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        manager.resolve(str(tmp_path / "nope"))
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not a checkpoint"):
        manager.resolve(str(tmp_path / "other"))


def test_atomic_write_gives_the_permissions_of_a_plain_open_and_leaves_no_temporary_on_failure(tmp_path):
    from mae.storage.files import atomic_write

    target = tmp_path / "out.bin"
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"weights"))
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert target.read_bytes() == b"weights"
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777

    def fails(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fails)
    assert target.read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "plain.bin"]
