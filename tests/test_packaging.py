"""The wheel is the package a user installs: it carries the recipes, so a named config works
outside a clone. Built here, installed into a fresh virtual environment that reuses this one's
packages (torch is never installed twice), and run from a folder that holds no clone."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(command: list, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed wheel, not a checkout
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_runs_a_named_recipe_outside_the_clone(tmp_path):
    source = tmp_path / "source"  # a copy, so that building writes nothing into the clone
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", tmp_path / "dist", source], tmp_path, timeout=180)
    wheel = next((tmp_path / "dist").glob("mae-*.whl"))

    env = tmp_path / "env"
    run([sys.executable, "-m", "venv", "--without-pip", env], tmp_path, timeout=120)
    python = env / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    tmp_path, timeout=60).stdout.strip())
    (site / "reuse.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # this environment's packages
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site, wheel],
        tmp_path, timeout=180)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([python, "-c", "import mae; print(mae.__file__)"], elsewhere, timeout=60).stdout.strip()
    assert Path(where).is_relative_to(site), f"mae was imported from {where}, not from the installed wheel"
    done = run([python, "-m", "mae", "pretrain", "--config", "demo", "--epochs", "1", "--synthetic-size", "64",
                "--batch-size", "32", "--knn-every-epochs", "0", "--output-dir", "run"], elsewhere, timeout=240)
    assert "done: 2 steps" in done.stdout, done.stdout + done.stderr
    assert (elsewhere / "run" / "config.yaml").is_file()
