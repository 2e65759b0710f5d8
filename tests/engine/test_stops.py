"""SIGTERM / SIGINT: finish the step, save, say how to resume, exit 128 + signal; a second
signal stops at once; loader workers neither die of the signal first nor outlive the run."""

import errno
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from helpers import TINY
from mae.cli import main
from mae.engine import PretrainConfig, pretrain
from mae.engine.run.checkpoints import CheckpointManager
from mae.storage.checkpoint_folder import load_training_state
from mae.storage.disk import DiskFull

ARGS = ["--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
        "--depth", "2", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
        "--decoder-num-heads", "4", "--synthetic-size", "32", "--batch-size", "16", "--epochs", "5000",
        "--warmup-epochs", "1", "--threads", "1", "--log-every", "1", "--preview-images", "1"]


PYTHON = Path(sys.executable).name  # how the advice names this interpreter, its folder first on PATH


def start(*args: str) -> subprocess.Popen:
    """`python -m ARGS` in a session of its own, with this interpreter's folder first on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, PATH=path))


def start_run(out: Path, workers: int) -> subprocess.Popen:
    return start("mae.cli", "pretrain", *ARGS, "--num-workers", str(workers), "--output-dir", str(out))


def stderr_at_exit(run: subprocess.Popen) -> str:
    """The run's stderr once it exits; it and its workers are killed if it has not within 2 minutes."""
    try:
        return run.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate(timeout=60)
        raise


def wait_for_steps(out: Path, run: subprocess.Popen, steps: int = 2) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count("\n") >= steps:
            return
        time.sleep(0.05)
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)  # its own session: the loader workers go with it
    _, err = run.communicate(timeout=60)
    raise AssertionError(f"the run did not train: {err[-2000:]}")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("sig, workers, to_group", [(signal.SIGTERM, 0, False), (signal.SIGINT, 1, True)])
def test_a_signal_saves_a_checkpoint_says_how_to_resume_and_exits_non_zero(tmp_path, sig, workers, to_group):
    out = tmp_path / "run"
    run = start_run(out, workers)
    wait_for_steps(out, run)
    if to_group:  # Ctrl-C in a terminal: the loader workers get it too
        os.killpg(run.pid, sig)
    else:
        run.send_signal(sig)
    err = stderr_at_exit(run)
    assert run.returncode == 128 + sig, err
    latest = CheckpointManager(out / "checkpoints").latest()
    step = load_training_state(latest)["step"]
    assert f"stopped by {signal.Signals(sig).name} after step {step} of 10000" in err
    assert f"Resume with: {PYTHON} -m mae.cli pretrain --config {out / 'config.yaml'} --resume auto" in err
    assert "Traceback" not in err


def test_a_stopped_grid_says_to_run_the_same_command_again(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(dict(model="mae_vit_tiny_patch16", **TINY, synthetic_size=32, batch_size=16,
                                        epochs=5000, warmup_epochs=1, num_workers=0, preview_images=1, log_every=1)))
    command = ["ablate", "--base", str(base), "--mask-ratios", "0.5", "0.75", "--knn-images", "16", "--threads", "1",
               "--output-dir", str(tmp_path / "grid")]
    run = start("mae", *command)
    wait_for_steps(tmp_path / "grid" / "base", run)
    run.send_signal(signal.SIGINT)
    err = stderr_at_exit(run)
    assert run.returncode == 128 + signal.SIGINT, err
    assert "mae ablate: stopped by SIGINT after step" in err
    assert ("Resume with the same command (finished runs are kept, the interrupted one continues): "
            f"{PYTHON} -m mae {shlex.join(command)}") in err
    assert "--resume auto" not in err and "Traceback" not in err


TORCHRUN = dict(LOCAL_WORLD_SIZE="4", WORLD_SIZE="4")


@pytest.mark.parametrize("main_module, argv0, env, on_path, elsewhere", [
    ("mae.__main__", "", {}, "python3 -m mae", "{bin}/python3 -m mae"),
    ("mae.cli", "", {}, "python3 -m mae.cli", "{bin}/python3 -m mae.cli"),
    (None, "{bin}/mae", {}, "mae", "{bin}/mae"),
    ("mae.cli", "", TORCHRUN, "torchrun --nproc-per-node 4 -m mae.cli", "torchrun --nproc-per-node 4 -m mae.cli"),
    ("mae.cli", "", dict(TORCHRUN, WORLD_SIZE="8"), "torchrun --nnodes 2 --nproc-per-node 4 -m mae.cli",
     "torchrun --nnodes 2 --nproc-per-node 4 -m mae.cli"),
    ("pytest", "", {}, "mae", "mae"),  # mae.cli.main called from other code
])
def test_the_advice_starts_mae_as_this_process_was_started(tmp_path, monkeypatch, main_module, argv0, env, on_path,
                                                          elsewhere):
    from mae.commands.training import program

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3", "mae"):
        (bin_dir / name).touch(mode=0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python3"))
    monkeypatch.setattr(sys, "argv", [argv0.format(bin=bin_dir)])
    monkeypatch.setitem(sys.modules, "__main__", SimpleNamespace(__spec__=main_module and SimpleNamespace(
        name=main_module)))
    for name in ("LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert program() == on_path
    monkeypatch.setenv("PATH", str(tmp_path))  # neither is found there: their paths are named
    assert program() == elsewhere.format(bin=bin_dir)


def test_a_second_signal_stops_at_once():
    script = textwrap.dedent("""
        import os, signal, sys
        from mae.engine.run.stops import StopOnSignal
        stop = StopOnSignal()
        stop.install()
        os.kill(os.getpid(), signal.SIGTERM)
        print("first: asked to stop", stop.name, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        print("still running after the second", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout == "first: asked to stop SIGTERM\n"
    assert done.returncode == -signal.SIGTERM


def test_loader_workers_exit_with_a_killed_parent(tmp_path):
    out = tmp_path / "run"
    run = start_run(out, workers=2)
    wait_for_steps(out, run)
    workers = children(run.pid)
    assert len(workers) >= 2
    run.kill()
    run.wait(timeout=60)
    deadline = time.monotonic() + 3  # torch's own watchdog alone would take 5 s or more
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers)


RUN = dict(model="mae_vit_tiny_patch16", **TINY, synthetic_size=32, batch_size=16, epochs=2,
           warmup_epochs=1, num_workers=0, preview_images=1, save_every_steps=1)


def test_a_full_disk_during_a_save_is_one_line_and_keeps_older_checkpoints(tmp_path, monkeypatch, capsys,
                                                                            one_thread):
    import mae.storage.tensors

    real, calls = mae.storage.tensors.save_file, {"n": 0}

    def fills_up(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] > 4:  # two checkpoints (model + state each), then the disk is full
            Path(path).write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(mae.storage.tensors, "save_file", fills_up)
    out = tmp_path / "run"
    with pytest.raises(DiskFull, match=f"not enough free space in {out / 'checkpoints'} for checkpoint "
                                       r"ckpt-000000003: needs about \d+\.\d MB, \d+\.\d MB free"):
        pretrain(PretrainConfig(**RUN, output_dir=str(out)))
    kept = CheckpointManager(out / "checkpoints")
    assert [p.name for p in kept.complete()] == ["ckpt-000000001", "ckpt-000000002"]
    assert kept.newest_verified().name == "ckpt-000000002"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["ckpt-000000001", "ckpt-000000002"]

    calls["n"] = 4  # the first save fails
    cli_args = ["pretrain", *ARGS, "--epochs", "1", "--num-workers", "0", "--save-every-steps", "1",
                "--output-dir", str(tmp_path / "cli")]
    assert main(cli_args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"mae pretrain: stopped: not enough free space in {tmp_path / 'cli' / 'checkpoints'}")


def test_too_little_free_space_at_start_up_is_refused_before_training(tmp_path, monkeypatch, capsys):
    import shutil

    import mae.storage.disk as disk

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: usage._replace(free=0))
    out = tmp_path / "run"
    with pytest.raises(DiskFull, match=f"not enough free space in {out} for the run's config and a checkpoint: "
                                       r"needs about \d+\.\d MB, 0.0 MB free"):
        pretrain(PretrainConfig(**RUN, output_dir=str(out)))
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoints").exists()


def test_a_full_disk_while_logging_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    from mae.engine.run.metrics import MetricsLogger

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(MetricsLogger, "log", full)
    out = tmp_path / "run"
    assert main(["pretrain", *ARGS, "--epochs", "1", "--num-workers", "0", "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"mae pretrain: stopped: no space left on device writing {out / 'metrics.jsonl'}; "
                       "free some space, then --resume auto")
