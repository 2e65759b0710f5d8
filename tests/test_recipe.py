"""The recipe chosen from the data for the settings a user leaves out, and the warning about an lr
too small to learn with: no default may turn a user's own flag into an error."""

import json
import math
import warnings

import pytest

from mae import cli
from mae.engine.config import CONFIG_DIR, find_config, load_config
from mae.engine.downstream_config import FinetuneConfig, LinprobeConfig
from mae.engine.optim import scaled_lr
from mae.engine.pretrain import pretrain
from mae.engine.pretrain_config import PretrainConfig
from mae.engine.recipe import PAPER, RecipeWarning, choose_recipe, movement, warn_low_lr

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
        assert any(issubclass(w.category, RecipeWarning) for w in caught) == (name == "paper")
    assert drops["chosen"] > 3 * max(drops["paper"], 1e-3), drops
    assert math.isfinite(drops["chosen"])
