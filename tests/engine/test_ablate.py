import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import mae
from helpers import TINY
from mae import cli
from mae.engine.config.ablate import AblateConfig
from mae.engine.loops import ablate as ablate_module
from mae.engine.loops.ablate import ablate, plan

BASE = dict(model="mae_vit_tiny_patch16", **TINY, synthetic_size=64, epochs=1, warmup_epochs=0, batch_size=32,
            num_workers=0, preview_images=2, blr=1e-2, log_every=1, mask_ratio=0.75)


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


def grid(tmp_path, base, **axes):
    values = dict(base=str(base), knn_images=32, output_dir=str(tmp_path / "out"), threads=1)
    return AblateConfig(**{**values, **axes})


def test_a_grid_runs_each_setting_once_probes_it_and_writes_the_table(tmp_path, base, one_thread):
    config = grid(tmp_path, base, mask_ratios=(0.5, 0.75), mask_types=("random", "grid"),
                  mask_tokens=("decoder", "encoder"))
    table = ablate(config)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "base", "encoder_mask_tokens=True", "mask_ratio=0.5", "mask_type=grid", "random-init"]
    rows = [(r["axis"], r["value"], r["run"]) for r in table["rows"]]
    assert rows == [("mask_ratios", 0.5, "mask_ratio=0.5"), ("mask_ratios", 0.75, "base"),
                    ("mask_tokens", "decoder", "base"), ("mask_tokens", "encoder", "encoder_mask_tokens=True"),
                    ("mask_types", "random", "base"), ("mask_types", "grid", "mask_type=grid")]
    for r in table["rows"]:
        assert 0 <= r["knn_top1"] <= r["knn_top5"] <= 100 and r["steps"] == 2
    assert json.loads((out / "ablation.json").read_text()) == table
    text = (out / "ablation.md").read_text()
    assert "### mask ratio (Figure 5)" in text and "### (f) mask sampling" in text and "| 0.75 (base) |" in text
    assert "### (c) mask token" in text and "| decoder (base) |" in text and "| encoder |" in text
    assert mae.load_model(out / "encoder_mask_tokens=True").encoder_mask_tokens
    assert set(table["reference"]) == {"knn_top1", "knn_top5"}  # random weights, k-NN only
    assert f"Random weights, not pretrained (the same probes): k-NN top-1 {table['reference']['knn_top1']:.1f}%" in text
    assert (out / "ablation.png").stat().st_size > 0
    assert (out / "mask_type=grid" / "reconstruction.png").exists()
    saved = yaml.safe_load((out / "mask_type=grid" / "config.yaml").read_text())
    assert saved["mask_type"] == "grid" and saved["mask_ratio"] == 0.75 and saved["epochs"] == 1


def test_a_fine_tuning_probe_adds_a_column_and_a_line_to_the_plot(tmp_path, base, one_thread):
    table = ablate(grid(tmp_path, base, mask_ratios=(0.5, 0.75), finetune_epochs=1))
    for r in table["rows"]:
        assert 0 <= r["finetune_top1"] <= 100
        saved = yaml.safe_load((tmp_path / "out" / r["run"] / "finetune" / "config.yaml").read_text())
        assert saved["epochs"] == 1 and saved["mixup"] == 0 and saved["randaug_ops"] == 0
        assert saved["checkpoint"] == str(tmp_path / "out" / r["run"])
    text = (tmp_path / "out" / "ablation.md").read_text()
    assert "| mask_ratio | k-NN top-1 (%) | k-NN top-5 (%) | fine-tune top-1 (%) | loss |" in text
    assert "fine-tuning 1 epoch" in table["probe"] and "Every run: 1 epoch, seed" in text
    assert 0 <= table["reference"]["finetune_top1"] <= 100 and "fine-tune top-1" in text.split("###")[0]
    saved = yaml.safe_load((tmp_path / "out" / "random-init" / "finetune" / "config.yaml").read_text())
    assert saved["random_init"] is True and saved["epochs"] == 1


def test_the_fine_tuning_probe_of_a_folder_reads_its_train_and_val_halves(tmp_path, base):
    for split in ("train", "val"):
        (tmp_path / "photos" / split).mkdir(parents=True)
    runs, _ = plan(grid(tmp_path, base, mask_ratios=(0.5,), data=str(tmp_path / "photos" / "train"),
                        knn_val_data=str(tmp_path / "photos" / "val"), finetune_epochs=2))
    assert [(r.finetune.data, r.finetune.checkpoint) for r in runs] == [
        (str(tmp_path / "photos"), r.config.output_dir) for r in runs]
    assert plan(grid(tmp_path, base, mask_ratios=(0.5,)))[0][0].finetune is None


def test_an_interrupted_grid_resumes_run_by_run(tmp_path, base, monkeypatch, one_thread):
    calls = []
    original = ablate_module.pretrain

    def counting(config):
        calls.append(config.output_dir)
        if len(calls) == 2 and not (tmp_path / "stop").exists():
            (tmp_path / "stop").touch()
            raise KeyboardInterrupt
        return original(config)

    monkeypatch.setattr(ablate_module, "pretrain", counting)
    config = grid(tmp_path, base, decoder_depths=(1, 2))
    with pytest.raises(KeyboardInterrupt):
        ablate(config)
    first = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert [("knn_top1" in r) for r in first["rows"]] == [True, False]
    assert "| 2 | not run yet |" in (tmp_path / "out" / "ablation.md").read_text()
    table = ablate(config)
    assert [c.rsplit("/", 1)[1] for c in calls] == ["base", "decoder_depth=2", "decoder_depth=2"]
    assert table["rows"][0] == first["rows"][0]  # the finished run is read back, not run again
    ablate(config)
    assert len(calls) == 3


def test_after_each_run_the_grid_says_runs_done_and_left_and_the_time_to_go(tmp_path, base, monkeypatch, capsys):
    clock = {"now": 0.0}

    def run_for_a_minute(run):  # on a fake clock; a run finished before is read back at once
        if not (Path(run.config.output_dir) / "probe.json").is_file():
            clock["now"] += 60
        return dict(knn_top1=50.0, knn_top5=90.0, final_epoch_loss=1.0, steps=2, seconds=60)

    monkeypatch.setattr(ablate_module, "_run_and_probe", run_for_a_minute)
    monkeypatch.setattr(ablate_module, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(ablate_module, "_reference", lambda base, out: dict(knn_top1=10.0, knn_top5=50.0))
    (tmp_path / "out" / "base").mkdir(parents=True)
    (tmp_path / "out" / "base" / "probe.json").write_text("{}")  # finished by an earlier call
    ablate(grid(tmp_path, base, mask_ratios=(0.5, 0.75), decoder_depths=(2,)))
    lines = [line for line in capsys.readouterr().out.splitlines() if "runs done" in line]
    assert lines == ["mae ablate: 1/3 runs done, 2 left",  # nothing trained yet: no pace to go by
                     "mae ablate: 2/3 runs done, 1 left, about 1m00s to go",
                     "mae ablate: 3/3 runs done, 0 left"]


def test_settings_are_checked_before_anything_runs(tmp_path, base):
    with pytest.raises(ValueError, match="--base is needed"):
        plan(AblateConfig(mask_ratios=(0.5,)))
    with pytest.raises(ValueError, match="nothing to compare: give at least one of --mask-ratios"):
        plan(grid(tmp_path, base))
    with pytest.raises(ValueError, match="--mask-ratios 0.6: .*--mask-type grid"):
        plan(grid(tmp_path, yaml_base(tmp_path, mask_type="grid"), mask_ratios=(0.6,)))
    with pytest.raises(ValueError, match="--decoder-widths 30: .*divisible"):
        ablate(grid(tmp_path, base, decoder_widths=(30,)))
    unlabelled = tmp_path / "flat"
    unlabelled.mkdir()
    from PIL import Image
    for i in range(4):
        Image.new("RGB", (40, 40), (i * 40, 0, 0)).save(unlabelled / f"{i}.png")
    with pytest.raises(ValueError, match="needs labelled training data"):
        ablate(grid(tmp_path, base, mask_ratios=(0.5,), data=str(unlabelled)))
    with pytest.raises(ValueError, match="--finetune-epochs needs `mae finetune`'s layout: --data DIR/train"):
        plan(grid(tmp_path, base, mask_ratios=(0.5,), data=str(unlabelled), knn_val_data=str(unlabelled),
                  finetune_epochs=1))
    with pytest.raises(ValueError, match="--finetune-epochs must not be negative"):
        grid(tmp_path, base, mask_ratios=(0.5,), finetune_epochs=-1)
    assert not (tmp_path / "out").exists()


def yaml_base(tmp_path, **changes):
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


def test_a_run_directory_of_other_settings_is_refused(tmp_path, base, one_thread):
    ablate(grid(tmp_path, base, mask_ratios=(0.75,)))
    with pytest.raises(ValueError, match=r"out/base holds a run of other settings than this grid's 'base'"):
        ablate(grid(tmp_path, yaml_base(tmp_path, blr=2e-2), mask_ratios=(0.75,)))


def test_a_grid_whose_base_leaves_settings_to_the_recipe_runs_again(tmp_path, one_thread):
    base = tmp_path / "chosen.yaml"
    base.write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "blr"}))  # chosen at the run's start
    config = grid(tmp_path, base, mask_ratios=(0.75,))
    first = ablate(config)
    assert yaml.safe_load((tmp_path / "out" / "base" / "config.yaml").read_text())["blr"] is not None
    assert ablate(config)["rows"] == first["rows"]


def test_cli_reads_lists_from_flags_and_yaml(tmp_path, base, capsys):
    config_file = tmp_path / "ablate.yaml"
    config_file.write_text(yaml.safe_dump(dict(base=str(base), mask_types=["random", "block"])))
    parser = cli.build_parser({"ablate": "mae.commands.ablate"})
    from mae.engine.config.base import config_from_args

    args = parser.parse_args(["ablate", "--config", str(config_file), "--mask-ratios", "0.5", "0.9"])
    config = config_from_args(AblateConfig, args)
    assert config.mask_ratios == (0.5, 0.9) and config.mask_types == ("random", "block")
    assert cli.main(["ablate", "--base", str(base), "--targets", "depth"]) == 2
    assert "targets (--targets) items must be among pixels, norm_pix, hog; got 'depth'" in capsys.readouterr().err
