"""Two processes (torchrun, gloo) with half the batch each match one process with the full batch
(the two-process run also accumulates over two micro-steps, skipping the gradient sync on the first)."""

import json
import subprocess
import sys

import torch

from mae.engine import CheckpointManager
from mae.engine.checkpoint import load_model_state

from helpers import assert_same_trained_weights

ARGS = [
    "--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
    "--depth", "2", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
    "--decoder-num-heads", "4", "--synthetic-size", "128", "--epochs", "2", "--warmup-epochs", "1",
    "--blr", "1e-2", "--num-workers", "0", "--threads", "1", "--log-every", "1", "--preview-images", "2",
]


def pretrain_command(out, batch_size, processes, accum_iter=1):
    tail = ["mae.cli", "pretrain", *ARGS, "--batch-size", str(batch_size), "--accum-iter", str(accum_iter),
            "--output-dir", str(out)]
    if processes == 1:
        return [sys.executable, "-m", *tail]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", *tail]


def losses(out):
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def test_two_gloo_processes_match_one_process_with_the_full_batch(tmp_path):
    single = subprocess.run(pretrain_command(tmp_path / "one", 16, 1), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    double = subprocess.run(pretrain_command(tmp_path / "two", 4, 2, accum_iter=2), capture_output=True, text=True,
                            timeout=300)
    assert double.returncode == 0, double.stderr
    assert "2 process(es) on cpu" in (tmp_path / "two" / "config.yaml").read_text()
    assert "global batch 16 (4 x 2 process(es) x 2 accumulation)" in (tmp_path / "two" / "config.yaml").read_text()

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 16
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4, (one, two)
    a = load_model_state(CheckpointManager(tmp_path / "one" / "checkpoints").latest())
    b = load_model_state(CheckpointManager(tmp_path / "two" / "checkpoints").latest())
    assert_same_trained_weights(a, b)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    command = pretrain_command(tmp_path / "bad", 8, 2) + ["--effective-batch", "24"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "--effective-batch 24 is not divisible by --batch-size 8 x 2 process(es)" in result.stderr
