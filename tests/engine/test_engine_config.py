import argparse
import dataclasses

import pytest
import yaml

from mae.engine.config.ablate import AblateConfig
from mae.engine.config.base import (
    CONFIG_DIR,
    add_config_arguments,
    config_from_args,
    find_config,
    load_config,
    recipe_names,
    save_config,
)
from mae.engine.config.classifier import EvalConfig, FinetuneConfig
from mae.engine.config.pretrain import PretrainConfig
from mae.engine.config.segment import SegmentConfig


def parse(argv):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_arguments(parser, PretrainConfig)
    return config_from_args(PretrainConfig, parser.parse_args(argv))


def test_every_field_has_a_hyphenated_flag_with_help():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, PretrainConfig)
    text = parser.format_help()
    for field in dataclasses.fields(PretrainConfig):
        flag = "--" + field.name.replace("_", "-")
        assert flag in text, flag
        assert field.metadata.get("help"), field.name
    for required in ("--data", "--model", "--epochs", "--batch-size", "--accum-iter", "--blr", "--mask-ratio",
                     "--norm-pix-loss", "--img-size", "--output-dir", "--resume", "--seed", "--num-workers",
                     "--precision", "--compile"):
        assert required in text


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\nwarmup_epochs: 1\nblr: 1e-3\nbatch_size: 16\nnorm_pix_loss: true\n"
                    "crop_scale: [0.3, 0.9]\n")
    config = parse(["--config", str(path), "--batch-size", "8", "--no-norm-pix-loss", "--clip-grad", "1.5"])
    assert (config.epochs, config.blr, config.batch_size) == (5, 1e-3, 8)  # "1e-3" is a string to YAML
    assert config.norm_pix_loss is False and config.clip_grad == 1.5
    assert config.crop_scale == (0.3, 0.9) and config.mask_ratio == 0.75


def test_config_round_trips_through_yaml(tmp_path):
    config = parse(["--epochs", "3", "--warmup-epochs", "0.5", "--resume", "auto", "--lr", "0.01",
                    "--betas", "0.8", "0.9", "--precision", "bf16", "--depth", "2", "--compile"])
    save_config(config, tmp_path / "config.yaml", comment="resolved: something\nsecond line")
    text = (tmp_path / "config.yaml").read_text()
    assert text.startswith("# resolved: something\n# second line\n")
    again = load_config(PretrainConfig, tmp_path / "config.yaml")
    assert again == config
    assert parse(["--config", str(tmp_path / "config.yaml")]) == config
    assert yaml.safe_load(text)["betas"] == [0.8, 0.9]


def test_optional_values_accept_none():
    config = parse(["--lr", "0.1", "--lr", "none"])
    assert config.lr is None


@pytest.mark.parametrize("argv, message", [
    (["--blr", "-1"], r"--blr must be positive"),
    (["--mask-ratio", "1.0"], r"--mask-ratio must be in \[0, 1\)"),
    (["--epochs", "0"], r"--epochs must be at least 1"),
    (["--batch-size", "many"], r"batch_size \(--batch-size\) must be an integer, got 'many'"),
    (["--precision", "fp8"], r"must be one of auto, fp32, bf16, fp16"),
    (["--model", "vit_giant"], r"must be one of"),
    (["--warmup-epochs", "12", "--epochs", "10"], r"--warmup-epochs must not exceed --epochs 10"),
    (["--warmup-epochs", "-1"], r"--warmup-epochs must not be negative"),
    (["--crop-scale", "0.5", "0.2"], r"--crop-scale must satisfy"),
])
def test_invalid_values_name_the_flag(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(argv)


def test_unknown_yaml_keys_and_bad_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epoch: 5\n")
    with pytest.raises(ValueError, match=r"unknown setting 'epoch'; did you mean 'epochs'"):
        parse(["--config", str(path)])
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        parse(["--config", str(path)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse(["--config", str(tmp_path / "missing.yaml")])
    path.write_text("epochs: 1.5\n")
    with pytest.raises(ValueError, match=r"c.yaml: epochs \(--epochs\) must be an integer"):
        parse(["--config", str(path)])


def test_unknown_flag_is_an_argparse_error():
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_arguments(parser, PretrainConfig)
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochz", "3"])


def test_model_kwargs_take_only_given_architecture_fields():
    config = PretrainConfig(model="mae_vit_tiny_patch16", img_size=32, depth=2, norm_pix_loss=True)
    assert config.model_kwargs() == dict(img_size=32, in_chans=3, norm_pix_loss=True, mask_ratio=0.75, target="pixels",
                                         encoder_mask_tokens=False, depth=2)


def test_recipe_names_are_the_recipes_of_that_command():
    assert recipe_names(PretrainConfig) == ["demo", "vit_base_1600ep", "vit_base_800ep", "vit_huge_1600ep",
                                            "vit_huge_800ep", "vit_large_1600ep", "vit_large_800ep"]
    assert recipe_names(FinetuneConfig) == ["demo", "vit_base", "vit_huge", "vit_large"]  # not linprobe_demo
    assert recipe_names(EvalConfig) == []
    assert recipe_names(AblateConfig) == ["demo"]  # ablate_base.yaml holds pretrain settings: a base, not a grid
    assert find_config("demo", SegmentConfig.RECIPE_PREFIX) == CONFIG_DIR / "segment_demo.yaml"
    assert find_config("demo", AblateConfig.RECIPE_PREFIX) == CONFIG_DIR / "ablate_demo.yaml"
