"""Hugging Face Hub ids, read offline from a locally built cache folder (never the network)."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import mae
from helpers import TINY
from mae.weights.hub import hub_id

pytest.importorskip("huggingface_hub")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_what_counts_as_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "model").mkdir()
    assert hub_id("facebook/vit-mae-base") == ("facebook/vit-mae-base", None)
    assert hub_id("hf://facebook/vit-mae-base@v1.0") == ("facebook/vit-mae-base", "v1.0")
    assert hub_id("hf://runs/demo") == ("runs/demo", None)  # the prefix says so
    for local in ("runs/dmeo", "owner/model", "./a/b", "/a/b", "~/a/b", "a/b/c", "model.pth", "a/"):
        assert hub_id(local) is None, local
    assert hub_id({"x": 1}) is None


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """HF_HUB_CACHE holding owner/tiny-mae as huggingface_hub lays it out, and the model it holds."""
    root = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    mae.export_model(model, root / "hf", "hf")
    repo = root / "cache" / "models--owner--tiny-mae"
    shutil.copytree(root / "hf", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    mae.save_model(model, root / "reference.safetensors")
    return root


def run_offline(hub_cache, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub_cache / "cache"), HF_HOME=str(hub_cache / "home"))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=hub_cache,
                          capture_output=True, text=True, timeout=300)


def test_load_model_and_the_cli_read_a_hub_id_from_the_cache_offline(hub_cache):
    done = run_offline(hub_cache, """
        import torch, mae
        from mae import cli
        reference = mae.load_model("reference.safetensors").state_dict()
        for src in ("owner/tiny-mae", "hf://owner/tiny-mae", "hf://owner/tiny-mae@main"):
            state = mae.load_model(src).state_dict()
            assert state.keys() == reference.keys(), src
            assert all(torch.equal(state[k], reference[k]) for k in state), src
        assert cli.main(["convert", "hf://owner/tiny-mae", "out.safetensors", "--to", "mae"]) == 0
        print("ok")
    """)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr


def test_a_hub_id_missing_from_the_offline_cache_is_a_clear_error(hub_cache):
    done = run_offline(hub_cache, """
        import mae
        try:
            mae.load_model("owner/not-there")
        except ValueError as err:
            print("error:", err)
    """)
    assert "error: Hugging Face Hub model owner/not-there is not in the cache" in done.stdout, done.stderr
    assert str(hub_cache / "cache") in done.stdout
