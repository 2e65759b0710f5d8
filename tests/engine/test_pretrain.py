import json

import pytest
import torch

import mae
from helpers import assert_same_trained_weights
from mae import cli
from mae.engine import PretrainConfig, TrainingDiverged, load_config, load_training_state, pretrain
from mae.models import MaskedAutoencoder
from mae.storage.checkpoint_folder import load_model_state

TINY = dict(model="mae_vit_tiny_patch16", img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4, synthetic_size=128,
            warmup_epochs=1, num_workers=0, preview_images=2)


def tiny_config(tmp_path, **overrides):
    values = dict(TINY, output_dir=str(tmp_path / "run"), epochs=2, batch_size=32, blr=1e-2, log_every=1)
    values.update(overrides)
    return PretrainConfig(**values)


def test_loss_falls_and_the_run_directory_is_complete(tmp_path):
    config = tiny_config(tmp_path, epochs=6, synthetic_size=256, save_every_epochs=3)
    result = pretrain(config)
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == result.step == 48
    assert sum(losses[-8:]) / 8 < 0.85 * sum(losses[:4]) / 4, losses
    assert [r["epoch"] for r in records if "epoch_loss" in r] == [1, 2, 3, 4, 5, 6]
    assert {"step", "epoch", "loss", "lr", "images_per_s"} <= set(records[0])
    assert (run / "reconstruction.png").stat().st_size > 0 and (run / "loss.png").stat().st_size > 0
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["ckpt-000000024", "ckpt-000000048"]
    assert load_config(PretrainConfig, run / "config.yaml") == config
    assert (run / "config.yaml").read_text().startswith("# resolved at start: 1 process(es) on cpu, precision fp32")
    state = load_training_state(result.checkpoint)
    assert state["step"] == 48 and state["global_batch"] == 32 and state["lr"] < 1e-5
    model = mae.load_model(run)
    assert isinstance(model, MaskedAutoencoder) and model.config["embed_dim"] == 64


def test_accumulation_matches_the_full_batch(tmp_path):
    full = pretrain(tiny_config(tmp_path / "a", epochs=1, batch_size=32))
    accumulated = pretrain(tiny_config(tmp_path / "b", epochs=1, batch_size=16, accum_iter=2))
    a, b = load_model_state(full.checkpoint), load_model_state(accumulated.checkpoint)
    assert_same_trained_weights(a, b)


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    original = MaskedAutoencoder.removed_loss

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(MaskedAutoencoder, "removed_loss", poisoned)
    # --no-compile: the compile decision's timed passes would count as calls
    config = tiny_config(tmp_path, epochs=3, save_every_steps=2, log_every=100, compile=False)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 5 .*ckpt-000000004"):
        pretrain(config)
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["ckpt-000000002", "ckpt-000000004"]
    state = load_model_state(tmp_path / "run" / "checkpoints" / "ckpt-000000004")
    assert all(torch.isfinite(t).all() for t in state.values())

    # the command says the same in one line and exits with status 1
    calls["n"] = 0
    args = ["pretrain", "--output-dir", str(tmp_path / "cli"), "--epochs", "3", "--batch-size", "32",
            "--log-every", "100", "--no-compile"]
    args += [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "mae pretrain: stopped: loss is nan at step 5" in err and "Traceback" not in err


def test_cli_reports_bad_input_before_training(tmp_path, capsys):
    base = ["pretrain", "--output-dir", str(tmp_path / "run"), "--model", "mae_vit_tiny_patch16",
            "--img-size", "32", "--patch-size", "8", "--warmup-epochs", "0"]
    cases = [
        (["--mask-ratio", "1.0"], "--mask-ratio must be in [0, 1)"),
        (["--blr", "-0.1"], "--blr must be positive"),
        (["--data", str(tmp_path / "missing")], "does not exist"),
        (["--effective-batch", "100", "--batch-size", "64"], "not divisible by --batch-size 64"),
        (["--synthetic-size", "10", "--batch-size", "64"], "fewer than one global batch"),
    ]
    for extra, message in cases:
        assert cli.main(base + extra) == 2
        err = capsys.readouterr().err
        assert "mae pretrain: error:" in err and message in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(base + ["--learning-rate", "1"])
    assert exit_info.value.code == 2
    assert "unknown flag --learning-rate" in capsys.readouterr().err


def test_cli_help_explains_the_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--help"])
    out = capsys.readouterr().out
    assert "--accum-iter" in out and "gradient accumulation" in out and "--resume auto" in out


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_and_keeps_the_scaler_state(tmp_path, precision):
    result = pretrain(tiny_config(tmp_path, epochs=1, precision=precision, clip_grad=1.0))
    state = load_training_state(result.checkpoint)
    assert result.step == 4 and result.loss == result.loss  # finite, not NaN
    assert bool(state["scaler"]) == (precision == "fp16")  # fp16 scales the loss, bf16 needs no scaler
    assert "precision " + precision in (tmp_path / "run" / "config.yaml").read_text()


def test_a_fresh_run_refuses_a_directory_with_checkpoints_and_tensorboard_needs_its_package(tmp_path):
    pretrain(tiny_config(tmp_path, epochs=1))
    with pytest.raises(ValueError, match="already holds checkpoints of an earlier run.*--resume auto"):
        pretrain(tiny_config(tmp_path, epochs=1))
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs the tensorboard package"):
            pretrain(tiny_config(tmp_path / "tb", epochs=1, tensorboard=True))


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tmp_path):
    eager = pretrain(tiny_config(tmp_path / "eager", epochs=1))
    compiled = pretrain(tiny_config(tmp_path / "compiled", epochs=1, compile=True))
    assert abs(eager.loss - compiled.loss) < 1e-3


def test_knn_monitor_logs_the_accuracy_of_the_encoder_at_those_epochs(tmp_path):
    from mae.data import SHAPES, Normalize, build_source, default_mean_std
    from mae.engine.eval.knn import knn_evaluate
    from mae.engine.loops.pretrain import make_knn_loaders

    config = tiny_config(tmp_path, epochs=4, knn_every_epochs=2, knn_images=64)
    pretrain(config)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    knn = [r for r in records if "knn_top1" in r]
    assert [r["epoch"] for r in knn] == [2, 4]
    assert all(0 <= r["knn_top1"] <= r["knn_top5"] <= 100 for r in knn)
    # the last figure is exactly what the final weights give on the same images
    model = mae.load_model(tmp_path / "run")
    normalize = Normalize(*default_mean_std(3))
    train, val = ([(normalize(x), y) for x, y in loader]
                  for loader in make_knn_loaders(config, build_source(None, synthetic_size=128), False))
    assert knn_evaluate(model, train, val, num_classes=len(SHAPES))["top1"] == knn[-1]["knn_top1"]


def test_knn_monitor_needs_labelled_data_checked_before_training(tmp_path):
    from PIL import Image

    def folder(root, classes):
        for name in classes:
            (root / name).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (40, 40), (60 * i, 20, 200)).save(root / name / f"{i}.png")
        return str(root)

    train = folder(tmp_path / "train", ["cat", "dog"])
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (40, 40)).save(flat / "a.png")
    cases = [
        (dict(data=str(flat)), "needs labelled training data"),
        (dict(data=train), "needs --knn-val-data"),
        (dict(data=train, knn_val_data=folder(tmp_path / "val", ["cat", "emu"])), "only in the --knn-val-data"),
    ]
    for overrides, message in cases:
        with pytest.raises(ValueError, match=message):
            pretrain(tiny_config(tmp_path, knn_every_epochs=1, batch_size=2, **overrides))
    assert not (tmp_path / "run").exists()


def test_resume_refuses_another_schedule_naming_both(tmp_path):
    pretrain(tiny_config(tmp_path, epochs=1, batch_size=32))
    with pytest.raises(ValueError, match=r"global batch of 32 and 4 steps per epoch, this run has 16 and 8"):
        pretrain(tiny_config(tmp_path, epochs=2, batch_size=16, resume="auto"))
