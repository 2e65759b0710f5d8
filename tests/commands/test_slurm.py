"""The shipped SLURM script, run as SLURM would run it: a dry run on a 2-node allocation prints
a launch command the real parser accepts; with stand-ins for srun and scontrol it trains with
2 local processes, and on SIGTERM it stops the training and requeues the job, which resumes."""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mae.cli import available_commands, build_parser
from mae.engine import CheckpointManager

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm" / "pretrain.sbatch"
TINY_RUN = [
    "--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
    "--depth", "2", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
    "--decoder-num-heads", "4", "--synthetic-size", "64", "--batch-size", "8", "--warmup-epochs", "1",
    "--num-workers", "0", "--threads", "1", "--preview-images", "2", "--fsdp",
]
SRUN = '#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@"\n'  # one task: this machine
SCONTROL = '#!/bin/bash\ncase $1 in show) echo localhost ;; requeue) echo "$2" >> "$REQUEUED" ;; esac\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def slurm_env(tmp_path: Path, nodes: int = 1) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242",
            "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": str(nodes), "MAE_PROCS_PER_NODE": "2",
            "MAE_PYTHON": sys.executable, "MAE_RDZV_PORT": str(free_port()), "REQUEUED": str(tmp_path / "requeued")}


def test_a_dry_run_prints_a_two_node_launch_that_parses(tmp_path):
    env = {**slurm_env(tmp_path, nodes=2), "MAE_DRY_RUN": "1"}
    env.pop("MAE_PROCS_PER_NODE")
    env["SLURM_GPUS_ON_NODE"] = "8"
    result = subprocess.run(["bash", str(SCRIPT), "runs/vitb", "--epochs", "3", "--fsdp"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout)
    assert words[:2] == ["srun", "--ntasks-per-node=1"]
    assert "--nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint localhost:" in result.stdout
    args = build_parser(available_commands()).parse_args(words[words.index("mae.cli") + 1:])
    assert (args.output_dir, args.resume, args.epochs, args.fsdp) == ("runs/vitb", "auto", "3", True)


def test_the_script_needs_a_run_directory(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT)], env=slurm_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "usage: sbatch" in result.stderr


def test_the_script_trains_with_two_local_processes(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(["bash", str(SCRIPT), str(out), *TINY_RUN, "--epochs", "1"], env=slurm_env(tmp_path),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "global batch 16 (8 x 2 process(es) x 1 accumulation)" in (out / "config.yaml").read_text()
    assert CheckpointManager(out / "checkpoints").latest().name == "ckpt-000000004"


@pytest.mark.slow
def test_sigterm_requeues_the_job_and_the_next_start_resumes(tmp_path):
    out, env = tmp_path / "run", slurm_env(tmp_path)
    command = ["bash", str(SCRIPT), str(out), *TINY_RUN, "--epochs", "40", "--save-every-steps", "2"]
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    manager, deadline = CheckpointManager(out / "checkpoints"), time.monotonic() + 240
    while manager.latest() is None and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)  # what SLURM sends to the batch shell on preemption
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 0, stderr
    assert "requeueing job 4242" in stderr and (tmp_path / "requeued").read_text().split() == ["4242"]
    stopped_at = int(manager.latest().name.split("-")[1])
    assert stopped_at < 160

    again = subprocess.run(command, env={**env, "MAE_RDZV_PORT": str(free_port())}, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr and manager.latest().name == "ckpt-000000160"
