"""Precision per device: auto's choice, and a warning where a CPU only emulates bf16 / fp16."""

import warnings

import pytest
import torch

import mae.engine.compute.precision as precision
from mae import cli
from mae.engine.compute.precision import PrecisionWarning, resolve_precision

CPU, GPU = torch.device("cpu"), torch.device("cuda")
TINY = ["--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
        "--depth", "1", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
        "--decoder-num-heads", "4", "--num-workers", "0", "--preview-images", "1"]


@pytest.fixture
def emulating_cpu(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native", lambda name: False)


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_a_precision_the_cpu_only_emulates_is_kept_with_a_warning(emulating_cpu, name):
    with pytest.warns(PrecisionWarning, match=f"--precision {name}: this CPU has no {name} matmul .* "
                                              "--precision fp32 .* is faster here"):
        assert resolve_precision(name, CPU) == name


@pytest.mark.parametrize("name, device", [("fp32", CPU), ("auto", CPU), ("bf16", GPU), ("fp16", GPU)])
def test_no_warning_where_nothing_is_emulated(emulating_cpu, name, device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_precision(name, device)


def test_no_warning_on_a_cpu_with_its_own_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native", lambda name: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", CPU) == "bf16"


def test_auto_is_fp32_on_cpu_and_a_bad_name_is_an_error():
    assert resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(ValueError, match="--precision must be auto, fp32, bf16 or fp16, got 'fp8'"):
        resolve_precision("fp8", CPU)


def test_the_command_shows_the_warning_as_one_line_and_trains(emulating_cpu, tmp_path, capsys):
    code = cli.main(["pretrain", *TINY, "--data", "synthetic", "--synthetic-size", "16", "--epochs", "1",
                     "--precision", "bf16", "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0, err
    lines = [line for line in err.splitlines() if "this CPU has no bf16 matmul" in line]
    assert len(lines) == 1 and lines[0].startswith("mae pretrain: warning: --precision bf16:"), err
