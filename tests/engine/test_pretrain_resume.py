"""A run killed with SIGKILL at a random moment and resumed ends bitwise equal to an uninterrupted one."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from mae.engine import CheckpointManager, load_training_state
from mae.storage.checkpoint_folder import load_model_state

ARGS = [
    "--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
    "--depth", "2", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
    "--decoder-num-heads", "4", "--synthetic-size", "96", "--batch-size", "16", "--epochs", "8",
    "--warmup-epochs", "1", "--blr", "1e-2", "--num-workers", "0", "--threads", "1",
    "--save-every-steps", "2", "--keep-last", "2", "--log-every", "3", "--preview-images", "2",
]
TOTAL_STEPS = 48


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mae.cli", "pretrain", *ARGS, "--output-dir", str(out), *extra]


def final_state(out: Path):
    latest = CheckpointManager(out / "checkpoints").latest()
    return load_model_state(latest), load_training_state(latest)


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    rng = random.Random()
    kill_after, extra_delay = rng.randint(2, TOTAL_STEPS - 18), rng.uniform(0, 0.05)
    note = f"killed after checkpoint {kill_after} + {extra_delay:.3f}s"

    subprocess.run(command(tmp_path / "ref"), check=True, capture_output=True, timeout=300)

    run = tmp_path / "killed"
    victim = subprocess.Popen(command(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manager = CheckpointManager(run / "checkpoints")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and victim.poll() is None:
        latest = manager.latest()
        if latest is not None and int(latest.name.split("-")[1]) >= kill_after:
            break
        time.sleep(0.005)
    time.sleep(extra_delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, f"the run ended before it was killed ({note})"
    stopped_at = load_training_state(manager.latest())["step"]
    assert stopped_at < TOTAL_STEPS, note

    resumed = subprocess.run(command(run, "--resume", "auto"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"(step {stopped_at})" in resumed.stderr

    (ref_model, ref_state), (model, state) = final_state(tmp_path / "ref"), final_state(run)
    assert state["step"] == ref_state["step"] == TOTAL_STEPS
    for key in ref_model:
        assert torch.equal(ref_model[key], model[key]), f"{key} differs ({note})"
    for index, moments in ref_state["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, state["optimizer"]["state"][index][name]), f"{name} differs ({note})"

    def losses(out):
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]

    assert losses(run) == losses(tmp_path / "ref"), note
