"""Two processes (torchrun, gloo) with half the batch each match one process with the full batch
(the two-process runs also accumulate over two micro-steps, skipping the gradient sync on the
first): under DDP, and under FSDP2 with sharded checkpoints, which resume on one process."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import assert_same_trained_weights
from mae.engine import CheckpointManager, load_training_state
from mae.engine.compute.fsdp import mixed_precision
from mae.storage.checkpoint_folder import load_model_state
from mae.storage.checksums import CorruptFile
from mae.storage.tensors import read_safetensors

ARGS = [
    "--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
    "--depth", "2", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
    "--decoder-num-heads", "4", "--synthetic-size", "128", "--epochs", "2", "--warmup-epochs", "1",
    "--blr", "1e-2", "--num-workers", "0", "--threads", "1", "--log-every", "1", "--preview-images", "2",
]


def pretrain_command(out, batch_size, processes, accum_iter=1, *extra):
    tail = ["mae.cli", "pretrain", *ARGS, "--batch-size", str(batch_size), "--accum-iter", str(accum_iter),
            "--output-dir", str(out), *extra]
    if processes == 1:
        return [sys.executable, "-m", *tail]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", *tail]


def run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def losses(out):
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def final_weights(out):
    return load_model_state(CheckpointManager(out / "checkpoints").latest())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, the full batch of 16: 2 epochs of 8 steps."""
    out = tmp_path_factory.mktemp("one")
    run(pretrain_command(out, 16, 1))
    return out


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    """Two FSDP processes, 4 images x 2 micro-steps each; sharded checkpoints after each epoch."""
    out = tmp_path_factory.mktemp("fsdp")
    run(pretrain_command(out, 4, 2, 2, "--fsdp"))
    return out


def test_two_gloo_processes_match_one_process_with_the_full_batch(tmp_path, reference):
    run(pretrain_command(tmp_path / "two", 4, 2, accum_iter=2))
    assert "2 process(es) on cpu" in (tmp_path / "two" / "config.yaml").read_text()
    assert "global batch 16 (4 x 2 process(es) x 2 accumulation)" in (tmp_path / "two" / "config.yaml").read_text()

    one, two = losses(reference), losses(tmp_path / "two")
    assert len(one) == len(two) == 16
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4, (one, two)
    assert_same_trained_weights(final_weights(reference), final_weights(tmp_path / "two"))


def test_two_fsdp_processes_match_one_process_and_write_one_part_each(reference, fsdp_run):
    one, two = losses(reference), losses(fsdp_run)
    assert len(one) == len(two) == 16
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4, (one, two)
    assert_same_trained_weights(final_weights(reference), final_weights(fsdp_run))
    checkpoints = CheckpointManager(fsdp_run / "checkpoints").complete()
    assert [p.name for p in checkpoints] == ["ckpt-000000008", "ckpt-000000016"]
    for path in checkpoints:
        assert not (path / "model.safetensors").exists()
        parts = sorted(p.name for p in (path / "sharded").iterdir())
        assert len(parts) == 2 and load_training_state(path)["sharded"]["processes"] == 2, parts
    assert not any(p.name.startswith(".") for p in (fsdp_run / "checkpoints").iterdir())


def test_a_two_process_sharded_checkpoint_resumes_on_one_process(tmp_path, reference, fsdp_run):
    halfway = CheckpointManager(fsdp_run / "checkpoints").complete()[0]
    result = run(pretrain_command(tmp_path / "resumed", 16, 1, 1, "--fsdp", "--resume", str(halfway)))
    assert "(step 8)" in result.stderr
    assert_same_trained_weights(final_weights(reference), final_weights(tmp_path / "resumed"))
    one, resumed = losses(reference)[8:], losses(tmp_path / "resumed")
    assert max(abs(a - b) for a, b in zip(one, resumed)) < 1e-4, (one, resumed)


@pytest.mark.slow
def test_a_run_without_fsdp_resumes_a_sharded_checkpoint(tmp_path, reference, fsdp_run):
    halfway = CheckpointManager(fsdp_run / "checkpoints").complete()[0]
    run(pretrain_command(tmp_path / "plain", 16, 1, 1, "--resume", str(halfway)))
    assert_same_trained_weights(final_weights(reference), final_weights(tmp_path / "plain"))
    assert (CheckpointManager(tmp_path / "plain" / "checkpoints").latest() / "model.safetensors").is_file()


def test_mae_convert_exports_a_sharded_run_as_one_file(tmp_path, fsdp_run):
    out = tmp_path / "vit.safetensors"
    run([sys.executable, "-m", "mae.cli", "convert", str(fsdp_run), str(out), "--to", "mae"])
    exported, metadata = read_safetensors(out)
    assert json.loads(metadata["mae.config"])["embed_dim"] == 64
    full = final_weights(fsdp_run)
    assert exported.keys() == full.keys()
    assert all(torch.equal(exported[k], full[k]) for k in full)


def test_a_damaged_sharded_checkpoint_is_refused_by_name(tmp_path, fsdp_run):
    copy = tmp_path / "run"
    shutil.copytree(fsdp_run, copy)
    part = sorted((CheckpointManager(copy / "checkpoints").latest() / "sharded").iterdir())[1]
    part.write_bytes(part.read_bytes()[:1000])
    result = subprocess.run([sys.executable, "-m", "mae.cli", "convert", str(copy), str(tmp_path / "x.safetensors"),
                             "--to", "mae"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"sharded/{part.name} should have" in result.stderr and "(1000 bytes)" in result.stderr
    # a flipped bit, same size: the SHA-256 recorded at save time tells
    shutil.copytree(fsdp_run, tmp_path / "flipped")
    part = sorted((CheckpointManager(tmp_path / "flipped" / "checkpoints").latest() / "sharded").iterdir())[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match=f"sharded/{part.name} changed since it was written"):
        load_model_state(CheckpointManager(tmp_path / "flipped" / "checkpoints").latest())


def test_fsdp_refuses_fp16():
    with pytest.raises(ValueError, match="--fsdp supports --precision bf16 or fp32"):
        mixed_precision("fp16")
    assert mixed_precision("bf16").param_dtype == torch.bfloat16
    assert mixed_precision("bf16").reduce_dtype == torch.float32


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    command = pretrain_command(tmp_path / "bad", 8, 2) + ["--effective-batch", "24"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "--effective-batch 24 is not divisible by --batch-size 8 x 2 process(es)" in result.stderr


@pytest.mark.slow
def test_fsdp_with_bf16_parameters_trains_close_to_fp32(tmp_path, reference):
    run(pretrain_command(tmp_path / "bf16", 4, 2, 2, "--fsdp", "--precision", "bf16"))
    one, bf16 = losses(reference), losses(tmp_path / "bf16")
    assert len(bf16) == 16 and max(abs(a - b) for a, b in zip(one, bf16)) < 0.05, (one, bf16)


@pytest.mark.slow
def test_a_whole_checkpoint_is_refused_by_a_sharded_run(tmp_path, reference):
    command = pretrain_command(tmp_path / "x", 4, 2, 2, "--fsdp", "--resume",
                               str(CheckpointManager(reference / "checkpoints").complete()[0]))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "is a whole checkpoint (written without --fsdp)" in result.stderr


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid] + [p for child in children for p in process_tree(int(child))]


@pytest.mark.slow
def test_an_fsdp_run_killed_with_sigkill_and_resumed_ends_equal(tmp_path):
    """Both processes and their launcher die at once (a lost node); --resume auto continues."""
    extra = ("--fsdp", "--epochs", "6", "--save-every-steps", "2", "--keep-last", "2")
    run(pretrain_command(tmp_path / "ref", 4, 2, 2, *extra))
    out = tmp_path / "killed"
    victim = subprocess.Popen(pretrain_command(out, 4, 2, 2, *extra), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    manager, deadline = CheckpointManager(out / "checkpoints"), time.monotonic() + 240
    while time.monotonic() < deadline and victim.poll() is None:
        latest = manager.latest()
        if latest is not None and load_training_state(latest)["step"] >= 20:
            break
        time.sleep(0.01)
    for pid in process_tree(victim.pid):  # torchrun starts each worker in a session of its own
        os.kill(pid, signal.SIGKILL)
    victim.wait(timeout=60)
    stopped_at = load_training_state(manager.latest())["step"]
    assert stopped_at < 48, "the run ended before it was killed"
    result = run(pretrain_command(out, 4, 2, 2, *extra, "--resume", "auto"))
    assert f"(step {stopped_at})" in result.stderr
    ref, resumed = final_weights(tmp_path / "ref"), final_weights(out)
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)
    assert losses(out)[-10:] == losses(tmp_path / "ref")[-10:]


def test_every_process_stops_with_the_message_when_the_run_directory_is_locked(tmp_path):
    """Rank 0 finds the directory in use; rank 1 stops too, with the same message, instead of
    waiting at a barrier. Two plain processes (no torchrun, which would end the second itself)."""
    import socket

    from mae.engine.run.lock import lock_run_dir, unlock_run_dir

    out = tmp_path / "busy"
    lock_run_dir(out)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    try:
        ranks = [subprocess.Popen(pretrain_command(out, 8, 1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                                                  "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                                                  "MASTER_PORT": str(port)})
                 for rank in (0, 1)]
        errors = [rank.communicate(timeout=120)[1] for rank in ranks]
    finally:
        unlock_run_dir(out)
    for rank, err in zip(ranks, errors):
        assert rank.returncode == 2, err
        assert err.strip().splitlines()[-1].endswith(f"{out} is in use by another run (pid {os.getpid()} on "
                                                     f"{socket.gethostname()}); wait for it to end or stop it, "
                                                     "or choose another --output-dir"), err
