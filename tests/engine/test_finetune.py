"""Fine-tuning end to end on tiny synthetic data: run directory, resume, partial fine-tuning, bad input."""

import json
import shutil

import pytest
import torch

import mae
from helpers import TINY
from mae.engine.config.classifier import FinetuneConfig
from mae.engine.loops.finetune import finetune
from mae.engine.run.checkpoints import CheckpointManager
from mae.storage.checkpoint_folder import load_model_state, load_training_state
from mae.weights.format import save_model

RUN = dict(synthetic_size=16, synthetic_val_size=8, batch_size=8, epochs=2, warmup_epochs=1,
           num_workers=0, log_every=2, keep_last=3, blr=1e-2)


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def untimed(records) -> list[dict]:
    """The records without what depends on the clock."""
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "time", "wall_s")} for r in records]


@pytest.fixture(scope="module")
def reference_run(encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "ref"
    return out, finetune(FinetuneConfig(checkpoint=str(encoder), output_dir=str(out), **RUN))


def test_finetune_writes_run_directory_and_learns_a_classifier(encoder, reference_run):
    out, result = reference_run
    assert result.step == 4
    epochs = [r for r in records(out) if "val_top1" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(0 <= r["val_top1"] <= r["val_top5"] <= 100 for r in epochs)
    assert result.best_top1 == max(r["val_top1"] for r in epochs)
    assert (out / "config.yaml").is_file()
    model = mae.load_model(out / "checkpoints" / "best" / "model.safetensors")
    assert model.num_classes == 8 and model.global_pool == "avg"
    # the encoder moved away from the pretrained weights
    pretrained = mae.load_model(encoder).state_dict()
    assert not torch.equal(model.state_dict()["blocks.0.attn.qkv.weight"], pretrained["blocks.0.attn.qkv.weight"])


def test_resume_gives_the_same_result_as_an_uninterrupted_run(encoder, reference_run, tmp_path):
    config = dict(checkpoint=str(encoder), **RUN)
    ref_dir = reference_run[0]
    out = tmp_path / "resumed"
    finetune(FinetuneConfig(output_dir=str(out), **config))
    # as if the run had stopped after the first epoch: drop its final checkpoint
    manager = CheckpointManager(out / "checkpoints")
    shutil.rmtree(manager.latest())
    assert load_training_state(manager.latest())["step"] == 2
    finetune(FinetuneConfig(output_dir=str(out), resume="auto", **config))

    ref, resumed = (CheckpointManager(d / "checkpoints").latest() for d in (ref_dir, out))
    ref_state, state = load_training_state(ref), load_training_state(resumed)
    assert state["step"] == ref_state["step"] == 4
    ref_model, model = load_model_state(ref), load_model_state(resumed)
    for key in ref_model:
        assert torch.equal(ref_model[key], model[key]), key
    assert untimed(records(out)) == untimed(records(ref_dir))
    walls = [r["wall_s"] for r in records(out)]
    assert walls == sorted(walls) and all(r["time"] > 1.7e9 for r in records(out))  # counted on after the resume
    assert (out / "curves.png").stat().st_size > 0


def test_partial_finetuning_trains_only_the_last_blocks(encoder, tmp_path):
    out = tmp_path / "partial"
    finetune(FinetuneConfig(checkpoint=str(encoder), output_dir=str(out), finetune_blocks=1,
                            **dict(RUN, epochs=1, warmup_epochs=0)))
    pretrained = mae.load_model(encoder).state_dict()
    tuned = mae.load_model(out).state_dict()
    assert torch.equal(tuned["blocks.0.mlp.fc1.weight"], pretrained["blocks.0.mlp.fc1.weight"])
    assert torch.equal(tuned["patch_embed.proj.weight"], pretrained["patch_embed.proj.weight"])
    assert not torch.equal(tuned["blocks.1.mlp.fc1.weight"], pretrained["blocks.1.mlp.fc1.weight"])


def test_checkpoint_without_an_encoder_is_refused_before_training(tmp_path):
    bad = tmp_path / "decoder_only.safetensors"
    from safetensors.torch import save_file
    save_file({"decoder_embed.weight": torch.zeros(4, 4)}, bad)
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="holds no ViT encoder weights"):
        finetune(FinetuneConfig(checkpoint=str(bad), output_dir=str(out), **RUN))
    assert not out.exists()


def test_head_with_another_class_count_is_refused_unless_dropped(encoder, tmp_path):
    torch.manual_seed(0)
    classifier = mae.models.vit.VisionTransformer(**{k: TINY[k] for k in ("img_size", "patch_size", "depth",
                                                     "embed_dim", "num_heads")}, num_classes=5, global_pool="avg")
    path = tmp_path / "five.safetensors"
    save_model(classifier, path)
    with pytest.raises(ValueError, match="head for 5 classes but 8"):
        finetune(FinetuneConfig(checkpoint=str(path), output_dir=str(tmp_path / "a"), **RUN))
    result = finetune(FinetuneConfig(checkpoint=str(path), output_dir=str(tmp_path / "b"), drop_head=True,
                                     **dict(RUN, epochs=1, warmup_epochs=0)))
    assert result.step == 2


def test_validation_classes_that_differ_from_training_are_refused(encoder, tmp_path):
    from PIL import Image
    for split, classes in (("train", ("cat", "dog")), ("val", ("cat", "fox"))):
        for name in classes:
            (tmp_path / "data" / split / name).mkdir(parents=True)
            Image.new("RGB", (40, 40), (9, 99, 199)).save(tmp_path / "data" / split / name / "a.png")
    with pytest.raises(ValueError, match="only in the validation data.*fox"):
        finetune(FinetuneConfig(checkpoint=str(encoder), data=str(tmp_path / "data"),
                                output_dir=str(tmp_path / "never"), **RUN))


def test_a_sigterm_mid_epoch_saves_and_the_resumed_run_ends_as_the_uninterrupted_one(
        encoder, reference_run, tmp_path, monkeypatch):
    import os
    import signal

    import mae.engine.loops.classifier as downstream
    from mae.engine.run.stops import TrainingStopped

    real, steps = downstream.optimizer_step, {"n": 0}

    def step_then_preempt(*args):
        real(*args)
        steps["n"] += 1
        if steps["n"] == 3:  # in the middle of the second epoch
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(downstream, "optimizer_step", step_then_preempt)
    config = dict(checkpoint=str(encoder), output_dir=str(tmp_path / "run"), **RUN)
    with pytest.raises(TrainingStopped, match="stopped by SIGTERM after step 3 of 4") as stopped:
        finetune(FinetuneConfig(**config))
    assert stopped.value.exit_code == 143
    assert load_training_state(CheckpointManager(tmp_path / "run" / "checkpoints").latest())["step"] == 3
    monkeypatch.undo()
    finetune(FinetuneConfig(**config, resume="auto"))

    ref, resumed = (CheckpointManager(d / "checkpoints").latest() for d in (reference_run[0], tmp_path / "run"))
    ref_model, model = load_model_state(ref), load_model_state(resumed)
    for key in ref_model:
        assert torch.equal(ref_model[key], model[key]), key
    epochs = [untimed(r for r in records(d) if "val_top1" in r) for d in (reference_run[0], tmp_path / "run")]
    assert epochs[0] == epochs[1]  # the second epoch's train loss includes the steps before the stop
