"""Whether a run compiles: the decision rule, the flags that override it, the kernel cache."""

import os

import pytest
import torch

import mae
from helpers import TINY
from mae.engine import pretrain
from mae.engine.compute import compile_plan
from mae.engine.compute.compile_plan import COMPILE_SHARE, decide_compile, inductor_cache_dir, measured_pass_s
from mae.models import linear
from test_pretrain import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_compile_turns_on_only_when_the_cold_compile_is_a_small_share_of_the_run():
    cold = 60.0
    at_share = round(cold / COMPILE_SHARE / 0.5)  # passes of 0.5 s whose eager time is cold / share
    assert decide_compile(None, at_share, 0.5, cold)[0]
    assert not decide_compile(None, at_share - 1, 0.5, cold)[0]
    on, why = decide_compile(None, 100_000, 0.5, cold)
    assert on and why.startswith("on: 100000 forward + backward passes ahead x 0.5 s") and "60 s" in why
    off, why = decide_compile(None, 50, 0.5, cold)
    assert not off and why.startswith("off:") and "--compile" in why
    assert decide_compile(None, 0, None, cold) == (False, "off: no step left to run")


@pytest.mark.parametrize("requested", [True, False])
def test_the_flags_override_the_rule(requested):
    assert decide_compile(requested, 10**9, 1.0, 60.0)[0] is requested
    assert decide_compile(requested, 1, 1.0, 60.0)[0] is requested
    assert decide_compile(requested, 1, None, 60.0)[1] == ("--compile" if requested else "--no-compile")


def test_the_kernel_cache_is_kept_under_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inductor_cache_dir() == tmp_path / "xdg" / "mae" / "inductor"
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # torch's own, set by torch
    assert inductor_cache_dir() == tmp_path / "xdg" / "mae" / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert inductor_cache_dir() == tmp_path / "mine"


def test_timing_a_pass_changes_no_weight_and_leaves_no_gradient():
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = measured_pass_s(model, 2, 0.75, "fp32", torch.device("cpu"))
    assert 0 < seconds < 60
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def compile_calls(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: calls.append(model) or model)
    return calls


def test_a_short_run_stays_eager_and_says_why(tmp_path, monkeypatch, capsys):
    calls = compile_calls(monkeypatch)
    pretrain(tiny_config(tmp_path, epochs=1))
    assert calls == []
    assert "compile: off: 4 forward + backward passes ahead" in capsys.readouterr().err


def test_a_long_enough_run_compiles_with_the_persistent_cache(tmp_path, monkeypatch, capsys):
    calls = compile_calls(monkeypatch)
    monkeypatch.setattr(compile_plan, "COLD_COMPILE_S_PER_BLOCK", 1e-9)  # as if compiling were free
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    pretrain(tiny_config(tmp_path, epochs=1))
    assert len(calls) == 1
    err = capsys.readouterr().err
    assert "compile: on: 4 forward + backward passes ahead" in err and str(tmp_path / "xdg") in err
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "xdg" / "mae" / "inductor")


def test_no_compile_skips_the_timed_passes(tmp_path, monkeypatch, capsys):
    calls = compile_calls(monkeypatch)
    monkeypatch.setattr(compile_plan, "measured_pass_s", lambda *a: pytest.fail("timed a pass"))
    pretrain(tiny_config(tmp_path / "a", epochs=1, compile=False))
    assert calls == [] and "compile: --no-compile" in capsys.readouterr().err
    monkeypatch.setattr(compile_plan, "COLD_COMPILE_S_PER_BLOCK", 1e9)  # the flag wins over the rule
    resolved = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: resolved.append(linear._resolved) or model)
    pretrain(tiny_config(tmp_path / "b", epochs=1, compile=True))
    assert "compile: --compile" in capsys.readouterr().err
    # the matmul backend's probe (file reads, a graph break if traced) ran before compiling
    assert len(resolved) == 1 and resolved[0] in ("blas", "onednn")
