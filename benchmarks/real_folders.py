"""The defaults on a real labelled folder, with no tuning flag (a benchmark, not a test).

    python benchmarks/real_folders.py [--work-dir runs/real_folders]

Needs scikit-learn (a benchmark-only dependency: `pip install -c constraints.txt -e '.[benchmarks]'`):
its bundled copy of the UCI handwritten digits (1797 real 8 x 8 scans of 10 digits, no
download) becomes WORK/digits/{train,val}/<digit>/<n>.png (every fifth image in val: 360;
train: 1437), upscaled to 16 x 16 RGB. Then, with no optimisation flag at all (the recipe
comes from the data; only the architecture and the loader / thread count are given):

1. `mae pretrain --data WORK/digits/train` (labels unused);
2. `mae linprobe` and `mae finetune` on WORK/digits from that encoder, and from the same
   architecture at random initialisation (`--random-init`): four runs side by side.

Writes benchmarks/results/real_folders.{md,json}: accuracies, the recipe each command printed,
the commands, wall times and the load average beside each.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mae.engine.monitor import read_metrics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# a ViT sized to 8 x 8 scans: 16 x 16 pixels in 4 x 4 patches (16 per digit), width 64, depth 4
ARCH = ["--model", "mae_vit_tiny_patch16", "--img-size", "16", "--patch-size", "4", "--embed-dim", "64", "--depth", "4",
        "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1", "--decoder-num-heads", "4"]
MACHINE = ["--num-workers", "0", "--threads", "1"]


def build_digits(root: Path) -> dict:
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts = {"train": 0, "val": 0}
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):  # files rewritten: same bytes
        split = "val" if i % 5 == 0 else "train"
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        gray = Image.fromarray((pixels * (255 / 16)).round().astype(np.uint8), "L")
        gray.resize((16, 16), Image.BILINEAR).convert("RGB").save(folder / f"{i:04d}.png")
        counts[split] += 1
    return counts


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(commands: list[list[str]], log: list) -> None:
    """Run `mae` commands side by side (one thread each), logging each one's time, load and recipe."""
    started = []
    for args in commands:
        shown = " ".join(shlex.quote(a) for a in ["mae", *args])
        print(f"$ {shown}", flush=True)
        process = subprocess.Popen([sys.executable, "-m", "mae.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        started.append((shown, process, load_average(), time.perf_counter()))
    for shown, process, before, start in started:  # each one's own wall time, whatever the order they end in
        output = process.communicate()[0]
        seconds = last_wall_s(shown) or time.perf_counter() - start
        print(output[-2000:], flush=True)
        if process.returncode:
            raise SystemExit(f"`{shown}` failed with status {process.returncode}")
        recipe = [line.strip() for line in output.splitlines()
                  if line.startswith(("recipe", "  ")) or "warning" in line or "resuming" in line]
        log.append({"command": shown, "seconds": round(seconds, 1), "load_average_before": before,
                    "load_average_after": load_average(), "recipe": recipe})


def last_wall_s(command: str) -> float | None:
    """The run's own wall time, from the last record of its metrics.jsonl (None if it has none)."""
    words = shlex.split(command)
    run_dir = Path(words[words.index("--output-dir") + 1])
    records = read_metrics(run_dir)
    return records[-1].get("wall_s") if records else None


def last_epoch(run_dir: Path) -> dict:
    return [r for r in read_metrics(run_dir) if "val_top1" in r][-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="runs/real_folders")
    args = parser.parse_args()
    work = Path(args.work_dir)
    data = work / "digits"
    counts = build_digits(data)
    log: list = []

    # --resume auto: a second run of this script continues (exactly) a pretraining that was stopped
    pre = work / "pretrain"
    run([["pretrain", "--data", str(data / "train"), *ARCH, *MACHINE, "--output-dir", str(pre), "--resume", "auto"]],
        log)
    losses = [r["epoch_loss"] for r in read_metrics(pre) if "epoch_loss" in r]
    results = {"pretrain": {"first_epoch_loss": losses[0], "last_epoch_loss": losses[-1], "epochs": len(losses)}}
    runs = {f"{command}_{name}": [command, "--checkpoint", str(pre), "--data", str(data), *MACHINE,
                                  "--output-dir", str(work / f"{command}_{name}"), *extra]
            for command in ("linprobe", "finetune") for name, extra in (("mae", []), ("random_init", ["--random-init"]))}
    for name in runs:
        shutil.rmtree(work / name, ignore_errors=True)  # downstream runs start afresh
    run(list(runs.values()), log)
    for name in runs:
        results[name] = last_epoch(work / name)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "real_folders.json").write_text(json.dumps({"images": counts, "results": results, "commands": log},
                                                          indent=2) + "\n")
    lines = ["# The defaults on a real labelled folder: UCI handwritten digits (10 classes)", "",
             f"`python benchmarks/real_folders.py --work-dir {args.work_dir}`: {counts['train']} training and "
             f"{counts['val']} validation images (scikit-learn's bundled `load_digits`, every fifth in val), "
             "8 x 8 scans upscaled to 16 x 16 RGB; a ViT of width 64, depth 4 (decoder: width 32, depth 1) "
             "in 4 x 4 patches, given by architecture flags. No optimisation flag: epochs, batch, warm-up, lr and mixup come from the "
             "recipe chosen from the data (printed below). One thread per command, on a shared 2-core "
             "CPU (load averages beside each command).", "",
             "Flags given: the architecture (8 x 8 scans are far smaller than ViT-B/16's 224 x 224 input), "
             "loader workers and threads (a shared machine), `--resume auto` (the pretraining continues where a "
             "stopped run of this script left it) and `--random-init` for the baseline; none of the optimisation "
             "settings.", "",
             f"Pretraining: epoch loss {results['pretrain']['first_epoch_loss']:.3f} -> "
             f"{results['pretrain']['last_epoch_loss']:.3f} over {results['pretrain']['epochs']} epochs.", "",
             "| val top-1 (top-5), last epoch | MAE encoder | same architecture, random init |", "|---|---:|---:|"]
    for command, title in (("linprobe", "linear probe"), ("finetune", "fine-tune")):
        cells = [f"{results[f'{command}_{n}']['val_top1']:.1f}% ({results[f'{command}_{n}']['val_top5']:.1f}%)"
                 for n in ("mae", "random_init")]
        lines.append(f"| {title} | {cells[0]} | {cells[1]} |")
    lines += ["", "Chance: 10%. Commands (wall time; load average before -> after; the four downstream runs side by "
              "side), each with the recipe it printed:", ""]
    for entry in log:
        lines.append(f"    {entry['command']}    # {entry['seconds']} s; load {entry['load_average_before']} "
                     f"-> {entry['load_average_after']}")
        lines += [f"    #   {line}" for line in entry["recipe"]]
    (RESULTS / "real_folders.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
