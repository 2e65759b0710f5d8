"""Whether a run compiles: the decision rule, the flags that override it, the kernel cache."""

import os
from pathlib import Path

import pytest
import torch
from test_pretrain import tiny_config

import mae
from helpers import TINY
from mae.engine import pretrain
from mae.engine.compute import compile_plan
from mae.engine.compute.compile_plan import (
    COLD_COMPILE_S_PER_BLOCK,
    COMPILE_SHARE,
    decide_compile,
    inductor_cache_dir,
    measured_pass_s,
    plan_compile,
)
from mae.engine.compute.distributed import DistEnv
from mae.engine.config.base import CONFIG_DIR, load_config
from mae.engine.config.pretrain import PretrainConfig
from mae.models import linear

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


def plan_on_a_machine(monkeypatch, pass_s: float, slowdown: float, passes: int):
    """plan_compile for the tiny model (3 blocks) where one eager pass takes `pass_s` and the CPU
    takes `slowdown` times the reference's time for the same fixed work."""
    monkeypatch.setattr(compile_plan, "measured_pass_s", lambda *a: pass_s)
    monkeypatch.setattr(compile_plan, "cpu_slowdown", lambda: slowdown)
    monkeypatch.setattr(compile_plan, "matmul_backend", lambda: "blas")
    monkeypatch.setattr(compile_plan, "use_persistent_cache", lambda: Path("cache"))
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    return plan_compile(PretrainConfig(**TINY), model, passes, "fp32", torch.device("cpu"), DistEnv())


def test_a_busy_machine_slows_the_estimated_compile_as_much_as_the_eager_pass(monkeypatch):
    """The reported case: load made eager passes look slow against a fixed compile estimate, so a
    run too short for it compiled. Slowed alike, both sides give the idle machine's decision."""
    cold_idle = 3 * COLD_COMPILE_S_PER_BLOCK
    passes = round(cold_idle / COMPILE_SHARE / 0.5 * 0.8)  # the cold compile is 1.25x the share
    idle = plan_on_a_machine(monkeypatch, 0.5, 1.0, passes)
    busy = plan_on_a_machine(monkeypatch, 4 * 0.5, 4.0, passes)
    assert not idle.on and not busy.on
    assert f"estimated at {4 * cold_idle:.0f} s" in busy.why
    assert "would be 6.2% of that" in idle.why and "would be 6.2% of that" in busy.why
    fast = plan_on_a_machine(monkeypatch, 0.5, 0.5, passes)  # a CPU twice the reference's speed
    assert fast.on and fast.cold_compile_s == pytest.approx(cold_idle / 2)
    assert fast.notice() == f"compiling the model (~{cold_idle / 2:.0f} s, once; cached in cache)"


def test_the_cpu_slowdown_is_measured_fresh_and_positive():
    assert compile_plan.cpu_slowdown() > 0


def test_the_demo_stays_eager():
    """`make demo` is a new user's first run, often on a busy laptop: it must not spend minutes compiling."""
    config = load_config(PretrainConfig, CONFIG_DIR / "demo.yaml")
    assert config.compile is False


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
    err = capsys.readouterr().err
    assert "compile: off: 4 forward + backward passes ahead" in err and "compiling the model" not in err


def test_a_long_enough_run_compiles_with_the_persistent_cache(tmp_path, monkeypatch, capsys):
    calls = compile_calls(monkeypatch)
    monkeypatch.setattr(compile_plan, "COLD_COMPILE_S_PER_BLOCK", 1e-9)  # as if compiling were free
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    pretrain(tiny_config(tmp_path, epochs=1))
    assert len(calls) == 1
    err = capsys.readouterr().err
    assert "compile: on: 4 forward + backward passes ahead" in err
    lines = err.splitlines()
    notice = [i for i, line in enumerate(lines) if line.startswith("compiling the model (~")]
    cache = tmp_path / "xdg" / "mae" / "inductor"
    assert len(notice) == 1 and lines[notice[0]].endswith(f"s, once; cached in {cache})")
    assert notice[0] > next(i for i, line in enumerate(lines) if line.startswith("compile: on:"))
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
    err = capsys.readouterr().err
    assert "compile: --compile" in err and "compiling the model (~" in err
    # the matmul backend's probe (file reads, a graph break if traced) ran before compiling
    assert len(resolved) == 1 and resolved[0] in ("blas", "onednn")
