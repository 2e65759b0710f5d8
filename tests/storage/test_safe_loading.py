"""A checkpoint whose pickle would run code is refused, and the code never runs."""

import os
import pickle

import pytest
import torch

import mae
from mae.cli import main
from mae.storage.tensors import read_pth


class RunsCode:
    """Unpickling this calls os.system(command): what a malicious checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def malicious_checkpoint(path, marker, raw_pickle: bool):
    obj = {"model": {"cls_token": torch.zeros(1, 1, 8)}, "args": RunsCode(f"touch {marker}")}
    if raw_pickle:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    else:
        torch.save(obj, path)


@pytest.mark.parametrize("raw_pickle", [False, True], ids=["torch-save", "raw-pickle"])
def test_code_in_a_pickle_is_refused_and_never_run(tmp_path, raw_pickle):
    marker = tmp_path / "code-ran"
    path = tmp_path / "checkpoint.pth"
    malicious_checkpoint(path, marker, raw_pickle)

    # a torch.save file names the callable; a raw pickle is not a PyTorch file at all
    message = "refusing to load" if not raw_pickle else "cannot read"
    with pytest.raises(ValueError, match=f"{message} .*checkpoint.pth.*nothing in it was run"):
        mae.load_model(path)
    assert not marker.exists()

    # the file really is malicious: an unsafe load runs the command
    if raw_pickle:
        with open(path, "rb") as f:
            pickle.load(f)
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


def test_the_refusal_names_what_the_pickle_calls(tmp_path):
    malicious_checkpoint(tmp_path / "c.pth", tmp_path / "code-ran", raw_pickle=False)
    with pytest.raises(ValueError, match=r"it references posix\.system|it references nt\.system"):
        read_pth(tmp_path / "c.pth")


def test_every_entry_point_refuses(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    malicious_checkpoint(tmp_path / "c.pth", marker, raw_pickle=False)
    hf = tmp_path / "hf"  # a Hugging Face folder with a pickled pytorch_model.bin
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    malicious_checkpoint(hf / "pytorch_model.bin", marker, raw_pickle=False)
    image = tmp_path / "x.png"
    image.write_bytes(b"")  # the checkpoint is read first

    assert main(["convert", str(tmp_path / "c.pth"), str(tmp_path / "o.pth"), "--to", "official"]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert main(["visualize", "--checkpoint", str(hf), str(image)]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "o.pth").exists()


def test_a_file_that_is_no_checkpoint_gets_a_clear_message(tmp_path):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read .*notes.pth as a PyTorch checkpoint"):
        mae.load_model(tmp_path / "notes.pth")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="cannot read .*broken.safetensors as safetensors"):
        mae.load_model(tmp_path / "broken.safetensors")
