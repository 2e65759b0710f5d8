"""The recipe chosen from the data for the settings a user leaves out, and the warning about an lr
too small to learn with: no default may turn a user's own flag into an error."""

import dataclasses
import json
import math
import re
import warnings

import pytest

from mae import cli
from mae.data import steps_per_epoch
from mae.engine.config.base import CONFIG_DIR, find_config, load_config
from mae.engine.config.classifier import FinetuneConfig, LinprobeConfig
from mae.engine.config.from_data import (
    PAPER,
    RecipeWarning,
    choose_recipe,
    movement,
    resumed_settings,
    schedule_change,
    warn_low_lr,
    warn_short_run,
)
from mae.engine.config.pretrain import PretrainConfig
from mae.engine.loops.finetune import finetune
from mae.engine.loops.linprobe import linprobe
from mae.engine.loops.pretrain import pretrain
from mae.engine.optim.scaling import scaled_lr

CONFIGS = (PretrainConfig, FinetuneConfig, LinprobeConfig)
TINY = ["--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
        "--depth", "2", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
        "--decoder-num-heads", "4", "--num-workers", "0", "--preview-images", "2"]


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("epochs", [1, 2, 4, 39])
def test_a_short_run_gets_the_papers_share_of_warm_up(cls, epochs):
    config, lines = choose_recipe(cls(epochs=epochs), 1000)
    paper = PAPER[cls]
    assert config.epochs == epochs
    assert config.warmup_epochs == pytest.approx(epochs * paper.warmup_epochs / paper.epochs, abs=1e-4)
    assert any("warm-up" in line for line in lines)


def test_pretrain_with_a_few_epochs_from_the_command_line_runs(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["pretrain", *TINY, "--data", "synthetic", "--synthetic-size", "64", "--epochs", "1",
                     "--output-dir", str(out)])
    printed = "".join(capsys.readouterr())
    assert code == 0, printed
    config = load_config(PretrainConfig, out / "config.yaml")  # resolved: re-runnable as --config
    assert (config.epochs, config.warmup_epochs, config.batch_size) == (1, 0.05, 8)
    assert "recipe for 64 training images" in printed and "batch size 8" in printed
    assert "trainable parameters" in printed
    assert any(line.startswith("done:") and line.endswith(" in all") for line in printed.splitlines())


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_setting_given_is_kept(cls):
    given = cls(epochs=3, warmup_epochs=1, batch_size=5, blr=1e-3, **({"mixup": 0.2, "cutmix": 0.0}
                                                                       if cls is FinetuneConfig else {}))
    assert choose_recipe(given, 400) == (given, [])
    given = cls(lr=0.5)
    assert choose_recipe(given, 400)[0].lr == 0.5 and choose_recipe(given, 400)[0].blr is None


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("images", [2, 10, 100, 400, 5000, 1_281_167])
@pytest.mark.parametrize("world", [1, 4])
def test_the_chosen_batch_fits_the_data_and_the_lr_can_learn(cls, images, world):
    if images < PAPER[cls].min_batch * world:
        return
    config, _ = choose_recipe(cls(), images, world)
    paper = PAPER[cls]
    global_batch = config.batch_size * world
    assert global_batch <= images and config.batch_size <= paper.batch_size
    epoch_steps = images // global_batch
    assert epoch_steps >= 8 or config.batch_size == paper.min_batch
    assert 1 <= config.epochs <= paper.epochs and 0 < config.warmup_epochs <= config.epochs
    lr = scaled_lr(config.blr, global_batch)
    assert scaled_lr(paper.blr, global_batch) * 0.999 <= lr <= paper.peak_lr * 1.001
    steps = epoch_steps * config.epochs
    assert movement(lr, steps, paper.trust) >= 0.99 or lr >= paper.peak_lr * 0.999
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_low_lr(config, lr, global_batch, steps)  # the recipe's own lr is never warned about
        warn_short_run(config, epoch_steps)  # nor its own schedule


def test_a_given_warm_up_longer_than_the_chosen_epochs_raises_the_epochs():
    config, _ = choose_recipe(PretrainConfig(warmup_epochs=500), 100_000)
    assert config.epochs == 500 and config.warmup_epochs == 500


def test_mixup_and_cutmix_only_with_enough_images_per_class():
    small, lines = choose_recipe(FinetuneConfig(), 400, num_classes=10)
    assert (small.mixup, small.cutmix) == (0.0, 0.0) and any("40 training images per class" in x for x in lines)
    large, _ = choose_recipe(FinetuneConfig(), 1_281_167, num_classes=1000)
    assert (large.mixup, large.cutmix) == (0.8, 1.0)
    mixed, _ = choose_recipe(FinetuneConfig(mixup=0.3), 400, num_classes=10)
    assert (mixed.mixup, mixed.cutmix) == (0.3, 0.0)


def test_an_lr_far_below_what_the_run_trains_with_is_warned_about():
    # the reported case: --batch-size 5 with the paper's blr, 100 epochs of 80 steps
    config = PretrainConfig(batch_size=5, epochs=100, blr=1.5e-4)
    with pytest.warns(RecipeWarning, match=r"lr 2.93e-06 is \d+x below .* Try --lr 0.00025"):
        warn_low_lr(config, scaled_lr(1.5e-4, 5), 5, 8000)
    with pytest.warns(RecipeWarning, match="0.001 x lr x steps / 2 for LARS"):
        warn_low_lr(LinprobeConfig(), scaled_lr(0.1, 32), 32, 240)


@pytest.mark.parametrize("name, cls", [("demo", PretrainConfig), ("finetune_demo", FinetuneConfig),
                                       ("linprobe_demo", LinprobeConfig)])
def test_the_demo_recipes_are_not_warned_about(name, cls):
    config = load_config(cls, CONFIG_DIR / f"{name}.yaml")
    global_batch = config.batch_size
    steps = config.synthetic_size // global_batch * config.epochs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_low_lr(config, scaled_lr(config.blr, global_batch), global_batch, steps)
        warn_short_run(config, config.synthetic_size // global_batch)


def test_paper_recipes_are_found_by_name():
    assert find_config("vit_base_800ep", "pretrain") == CONFIG_DIR / "pretrain_vit_base_800ep.yaml"
    assert find_config("vit_large", "finetune") == CONFIG_DIR / "finetune_vit_large.yaml"
    assert find_config("demo", "pretrain") == CONFIG_DIR / "demo.yaml"
    assert find_config("demo", "linprobe") == CONFIG_DIR / "linprobe_demo.yaml"
    with pytest.raises(FileNotFoundError, match=r"recipes: .*vit_base_800ep"):
        find_config("vit_base_8000ep", "pretrain")


def test_a_batch_larger_than_the_data_says_which_batch_fits(tmp_path, capsys):
    code = cli.main(["pretrain", *TINY, "--data", "synthetic", "--synthetic-size", "20", "--batch-size", "64",
                     "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "use --batch-size 20 or less (or leave it out" in err, err


@pytest.mark.parametrize("command, extra, default_fits", [
    ("finetune", ["--epochs", "1"], True), ("linprobe", ["--epochs", "1"], True),
    ("segment", ["--iters", "2", "--warmup-iters", "1"], False)])
def test_every_command_says_which_batch_fits_a_small_dataset(encoder, tmp_path, capsys, command, extra, default_fits):
    """finetune and linprobe choose a batch that fits when none is given; segment's default is fixed."""
    code = cli.main([command, "--checkpoint", str(encoder), "--synthetic-size", "6", "--synthetic-val-size", "2",
                     "--batch-size", "64", "--threads", "1", "--num-workers", "0", "--output-dir", str(tmp_path),
                     *extra])
    err = capsys.readouterr().err
    assert code == 2 and "the dataset has 6 images, fewer than one global batch of 64" in err, err
    assert "use --batch-size 6 or less" in err and ("leave it out: the default fits" in err) == default_fits


def test_defaults_learn_where_the_papers_lr_would_not(tmp_path):
    """On 64 images, 40 steps: the chosen lr makes the loss fall; the paper's scaled lr barely moves it."""
    values = dict(model="mae_vit_tiny_patch16", img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                  decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4, synthetic_size=64, epochs=5,
                  num_workers=0, preview_images=2, log_every=1)
    drops = {}
    for name, extra in (("chosen", {}), ("paper", {"blr": 1.5e-4})):
        out = tmp_path / name
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pretrain(PretrainConfig(output_dir=str(out), **values, **extra))
        losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
                  if '"loss"' in line]
        drops[name] = sum(losses[:4]) / 4 - sum(losses[-4:]) / 4
        low_lr = [w for w in caught if issubclass(w.category, RecipeWarning) and "below what" in str(w.message)]
        assert bool(low_lr) == (name == "paper")
    assert drops["chosen"] > 3 * max(drops["paper"], 1e-3), drops
    assert math.isfinite(drops["chosen"])


@pytest.mark.parametrize("cls", [PretrainConfig, FinetuneConfig])
def test_a_run_whose_warm_up_lasts_to_its_end_is_warned_about(cls):
    """As `mae finetune --config finetune_demo --epochs 1`: the lr rises to the last step."""
    with pytest.warns(RecipeWarning, match=re.escape(
            "--epochs 1 is as long as the warm-up (--warmup-epochs 1): the lr rises for the whole run, to its peak "
            "at the last step, and never decays; give --epochs above 1 or a shorter --warmup-epochs")):
        warn_short_run(cls(epochs=1, warmup_epochs=1), 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_short_run(cls(epochs=2, warmup_epochs=1), 1000)


def test_a_run_of_under_a_tenth_of_the_automatic_steps_is_warned_about():
    """The reported case: 20 steps on 42 photos, where the automatic schedule would run 2000."""
    config, _ = choose_recipe(PretrainConfig(epochs=2), 42)
    epoch_steps = steps_per_epoch(42, config.batch_size)
    with pytest.warns(RecipeWarning, match=re.escape(
            "20 steps (2 epochs of 10) are under 1/10 of the 2000 steps (200 epochs) that the automatic "
            "schedule chooses for this data at this batch")):
        warn_short_run(config, epoch_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_short_run(dataclasses.replace(config, epochs=20), epoch_steps)  # a tenth: enough not to be warned


def test_the_short_run_warning_is_one_line_of_the_command(tmp_path, capsys):
    code = cli.main(["pretrain", *TINY, "--data", "synthetic", "--synthetic-size", "42", "--epochs", "2",
                     "--threads", "1", "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0, err
    (line,) = [line for line in err.splitlines() if "automatic schedule" in line]
    assert line.startswith("mae pretrain: warning: 20 steps (2 epochs of 10) are under 1/10 of the 2000 steps")


def test_on_resume_the_settings_left_out_are_the_runs_own_and_those_given_are_kept():
    saved = {"epochs": 4, "warmup_epochs": 0.2, "batch_size": 8, "blr": 0.1, "lr": None}
    config, lines = resumed_settings(PretrainConfig(epochs=9, batch_size=16), saved, "run/ckpt-8")
    assert (config.epochs, config.batch_size, config.warmup_epochs, config.blr, config.lr) == (9, 16, 0.2, 0.1, None)
    assert lines == ["resuming: the run's own settings from run/ckpt-8, as none is given: warmup epochs 0.2, blr 0.1"]
    assert resumed_settings(PretrainConfig(blr=1.0, epochs=1, warmup_epochs=0, batch_size=2), saved, "c") == (
        PretrainConfig(blr=1.0, epochs=1, warmup_epochs=0, batch_size=2), [])


def test_a_shorter_schedule_on_resume_is_said_too():
    config = PretrainConfig(epochs=2, warmup_epochs=0.1, blr=1.0)
    assert schedule_change(config, {"epochs": 2}, 8, 4, 0.5) == []
    (line,) = schedule_change(config, {"epochs": 4}, 4, 4, 0.5)
    assert "--epochs 4 -> 2: the warm-up + cosine lr schedule is shortened over 2 epochs (8 steps)" in line
    (line,) = schedule_change(config, {"epochs": 4}, 12, 4, 0.5)
    assert "already 2 epochs; nothing is trained" in line


def test_the_schedule_change_is_said_right_wherever_the_run_ends_against_its_warm_up():
    """The reported case first: --epochs 1 on resume of a run with a 1-epoch warm-up said the lr
    jumps from 0.000984 to 0.000984 and decays to 0 at step 128, while it only rises."""
    at_end, after = (schedule_change(PretrainConfig(epochs=epochs, warmup_epochs=1, blr=1.0), {"epochs": 4},
                                     63, 128, 0.002)[0] for epochs in (1, 8))
    assert at_end.endswith("not restarted: at step 63 the lr is 0.000984 under both schedules, then rises to its "
                           "peak 0.002 at step 128, where its 1-epoch warm-up and the run end together: the lr never "
                           "decays"), at_end
    assert after.endswith("at step 63 the lr is 0.000984 under both schedules, then rises to its peak 0.002 at "
                          "step 128 and decays to 0 at step 1024"), after
    (line,) = schedule_change(PretrainConfig(epochs=8, warmup_epochs=1, blr=1.0), {"epochs": 4}, 300, 128, 0.002)
    assert "at step 300 the lr jumps from " in line and line.endswith(", then decays to 0 at step 1024")


def test_a_resume_that_would_end_inside_the_warm_up_is_refused_and_one_at_its_end_is_warned(tmp_path, capsys):
    run = ["pretrain", *TINY, "--data", "synthetic", "--synthetic-size", "32", "--threads", "1",
           "--output-dir", str(tmp_path / "run")]
    assert cli.main([*run, "--epochs", "4", "--warmup-epochs", "2", "--save-every-steps", "4",
                     "--keep-last", "8"]) == 0
    capsys.readouterr()
    assert cli.main([*run, "--epochs", "1", "--resume", str(tmp_path / "run" / "checkpoints" / "ckpt-000000004")]) == 2
    err = capsys.readouterr().err
    assert "--epochs 1 would end the run inside its own warm-up of 2 epochs (from " in err, err
    assert "resume with --epochs 2 or more" in err
    assert cli.main([*run, "--epochs", "2", "--resume", str(tmp_path / "run" / "checkpoints" / "ckpt-000000004")]) == 0
    err = capsys.readouterr().err
    assert "--epochs 4 -> 2: the warm-up + cosine lr schedule is shortened over 2 epochs (16 steps)" in err, err
    assert "where its 2-epoch warm-up and the run end together: the lr never decays" in err
    assert "mae pretrain: warning: --epochs 2 is as long as the warm-up (--warmup-epochs 2)" in err


def test_a_resume_that_raises_epochs_keeps_the_chosen_recipe_and_says_the_lr_jumps(tmp_path, capsys):
    """The recipe's lr depends on the step count; a resume with more --epochs must not choose it anew
    (the resume check would refuse the other lr) but keep the run's, and say what the schedule does."""
    out = tmp_path / "run"
    first = ["pretrain", *TINY, "--data", "synthetic", "--synthetic-size", "32", "--log-every", "1", "--threads", "1",
             "--output-dir", str(out)]
    assert cli.main([*first, "--epochs", "2"]) == 0
    first_config = load_config(PretrainConfig, out / "config.yaml")
    capsys.readouterr()
    assert cli.main([*first, "--epochs", "4", "--resume", "auto"]) == 0
    err = capsys.readouterr().err
    assert "resuming: the run's own settings from" in err and "batch size 4" in err, err
    jump = re.search(r"--epochs 2 -> 4: the warm-up \+ cosine lr schedule is stretched over 4 epochs \(32 steps\), "
                     r"not restarted: at step 16 the lr jumps from (\S+) \(the old schedule's\) to (\S+),", err)
    assert jump, err
    resumed = load_config(PretrainConfig, out / "config.yaml")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lr_of = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert float(jump.group(1)) < 0.01 * float(jump.group(2))  # the old schedule had ended
    assert f"{lr_of[17]:.3g}" == jump.group(2) and lr_of[32] < lr_of[17]
    assert (resumed.epochs, resumed.blr, resumed.batch_size) == (4, first_config.blr, first_config.batch_size)


@pytest.mark.parametrize("train, cls", [(finetune, FinetuneConfig), (linprobe, LinprobeConfig)])
def test_a_downstream_resume_that_raises_epochs_keeps_the_chosen_recipe(encoder, tmp_path, capsys, train, cls):
    run = dict(checkpoint=str(encoder), output_dir=str(tmp_path / "run"), synthetic_size=16, synthetic_val_size=8,
               num_workers=0, threads=1)
    train(cls(epochs=1, **run))
    first = load_config(cls, tmp_path / "run" / "config.yaml")
    capsys.readouterr()
    train(cls(epochs=3, resume="auto", **run))
    err = capsys.readouterr().err
    resumed = load_config(cls, tmp_path / "run" / "config.yaml")
    assert "--epochs 1 -> 3: the warm-up + cosine lr schedule is stretched over 3 epochs" in err, err
    assert (resumed.epochs, resumed.blr, resumed.batch_size, resumed.warmup_epochs) == (
        3, first.blr, first.batch_size, first.warmup_epochs)
