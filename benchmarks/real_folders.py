"""The defaults on real folders, with no tuning flag (a benchmark, not a test).

    python benchmarks/real_folders.py [--dataset digits|photos] [--work-dir runs/real_folders] [--jobs N]
                                      [--labels-per-class N]

digits (needs scikit-learn, a benchmark-only dependency: `pip install -c constraints.txt -e
'.[benchmarks]'`): its bundled copy of the UCI handwritten digits (1797 real 8 x 8 scans of 10
digits, no download) becomes WORK/digits/{train,val}/<digit>/<n>.png (every fifth image in val:
360; train: 1437), upscaled to 16 x 16 RGB; pretraining reads WORK/digits/train (labels unused).

photos (needs scikit-image, a test dependency): two held-out folders from the photos bundled
with scikit-image (no download). Pretraining reads WORK/photos/unlabelled: 440 random 32 x 32
crops of 11 photos (a subfolder each; pretraining reads no labels); the probes read
WORK/photos/labelled_N/{train,val}: N (--labels-per-class, default 32) and 16 crops of each of
8 other photos (benchmarks/photo_crops.py: the class is the photo, training crops from its left
three quarters, held-out crops from its right quarter). No pixel of the labelled folder is
pretrained on.

Then, with no optimisation flag at all (the recipe comes from the data; only the architecture
and the loader / thread count are given):

1. `mae pretrain --data UNLABELLED`;
2. `mae linprobe` and `mae finetune` on the labelled folder from that encoder, and from the same
   architecture at random initialisation (`--random-init`): four runs, `--jobs` at a time.

Writes benchmarks/results/real_folders[_photos_N].{md,json}: accuracies, the recipe each command
printed, the commands, wall times and the load average beside each.
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

from mae.engine.run.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# a ViT sized to 8 x 8 scans: 16 x 16 pixels in 4 x 4 patches (16 per digit), width 64, depth 4
ARCH = ["--model", "mae_vit_tiny_patch16", "--img-size", "16", "--patch-size", "4", "--embed-dim", "64", "--depth", "4",
        "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1", "--decoder-num-heads", "4"]
MACHINE = ["--num-workers", "0", "--threads", "1"]
# photos: 32 x 32 crops in 4 x 4 patches (64 per crop), the same width and depth
PHOTO_ARCH = [*ARCH[:2], "--img-size", "32", *ARCH[4:]]
PRETRAIN_PHOTOS = ("camera", "cat", "clock", "coins", "gravel", "moon", "retina", "cell", "page", "text", "horse")


def build_digits(root: Path, labels_per_class: None = None) -> dict:
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


def build_photos(root: Path, labels_per_class: int) -> dict:
    """WORK/photos/unlabelled (40 crops of each PRETRAIN_PHOTOS photo) and labelled_N/{train,val}
    (N and 16 crops of each of photo_crops' 8 photos), all 32 x 32, from fixed seeds: the same
    unlabelled crops and validation crops for every N, and the first N training crops of any larger N."""
    from photo_crops import PHOTOS, photo, write_crops

    assert not set(PHOTOS) & set(PRETRAIN_PHOTOS)
    rng = np.random.default_rng(0)
    for name in PRETRAIN_PHOTOS:
        img = photo(name, short_side=128)
        write_crops(img, 0, img.width, 40, 32, rng, root / "unlabelled" / name)
    labelled = root / f"labelled_{labels_per_class}"
    for k, name in enumerate(PHOTOS):
        img = photo(name, short_side=128)
        split = img.width * 3 // 4
        write_crops(img, 0, split, labels_per_class, 32, np.random.default_rng([1, k]), labelled / "train" / name)
        write_crops(img, split, img.width, 16, 32, np.random.default_rng([2, k]), labelled / "val" / name)
    return {"unlabelled": 40 * len(PRETRAIN_PHOTOS), "train": labels_per_class * len(PHOTOS), "val": 16 * len(PHOTOS)}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(commands: list[list[str]], log: list, jobs: int) -> None:
    """Run `mae` commands, `jobs` at a time (one thread each), logging each one's time, load and recipe."""
    for first in range(0, len(commands), jobs):
        started = []
        for args in commands[first: first + jobs]:
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


DATASETS = {
    # name: (build, architecture, pretraining folder, labelled folder, title, what the images are)
    "digits": (build_digits, ARCH, "digits/train", "digits{labels}",
               "a real labelled folder: UCI handwritten digits (10 classes)",
               "{train} training and {val} validation images (scikit-learn's bundled `load_digits`, every fifth "
               "in val), 8 x 8 scans upscaled to 16 x 16 RGB; pretraining on the training images (labels unused)"),
    "photos": (build_photos, PHOTO_ARCH, "photos/unlabelled", "photos/labelled_{labels}",
               "two held-out real folders: photo crops (8 classes)",
               "pretraining on {unlabelled} random 32 x 32 crops of 11 of scikit-image's bundled photos ("
               + ", ".join(PRETRAIN_PHOTOS) + "); the probes on {train} training and {val} validation crops of 8 "
               "other photos (the class is the photo; training crops from its left three quarters, held-out "
               "crops from its right quarter: benchmarks/photo_crops.py)"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=tuple(DATASETS), default="digits")
    parser.add_argument("--work-dir", default="runs/real_folders")
    parser.add_argument("--jobs", type=int, default=4, help="downstream runs at a time (one thread each)")
    parser.add_argument("--labels-per-class", type=int, default=None,
                        help="photos: labelled training crops per class (default 32; validation: 16)")
    args = parser.parse_args()
    if args.dataset == "digits" and args.labels_per_class is not None:
        parser.error("--labels-per-class is for --dataset photos (the digits are split 4:1)")
    if args.dataset == "photos":
        args.labels_per_class = args.labels_per_class or 32
    build, arch, pretrain_data, labelled, title, what = DATASETS[args.dataset]
    labelled = labelled.format(labels=args.labels_per_class or "")
    work = Path(args.work_dir)
    counts = build(work / args.dataset, args.labels_per_class)
    tag = args.dataset + (f"_{args.labels_per_class}" if args.labels_per_class else "")
    log: list = []

    # --resume auto: a second run of this script continues (exactly) a pretraining that was stopped
    pre = work / f"pretrain_{args.dataset}"
    run([["pretrain", "--data", str(work / pretrain_data), *arch, *MACHINE, "--output-dir", str(pre),
          "--resume", "auto"]], log, 1)
    losses = [r["epoch_loss"] for r in read_metrics(pre) if "epoch_loss" in r]
    results = {"pretrain": {"first_epoch_loss": losses[0], "last_epoch_loss": losses[-1], "epochs": len(losses)}}
    runs = {}  # name: (run directory, command)
    for command in ("linprobe", "finetune"):
        for name, extra in (("mae", []), ("random_init", ["--random-init"])):
            out = work / f"{command}_{tag}_{name}"
            shutil.rmtree(out, ignore_errors=True)  # downstream runs start afresh
            runs[f"{command}_{name}"] = out, [command, "--checkpoint", str(pre), "--data", str(work / labelled),
                                              *MACHINE, "--output-dir", str(out), *extra]
    run([command for _, command in runs.values()], log, args.jobs)
    for name, (out, _) in runs.items():
        results[name] = last_epoch(out)

    stem = "real_folders" if args.dataset == "digits" else f"real_folders_{tag}"
    classes = len([d for d in (work / labelled / "val").iterdir() if d.is_dir()])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"images": counts, "results": results, "commands": log},
                                                     indent=2) + "\n")
    lines = [f"# The defaults on {title}", "",
             f"`python benchmarks/real_folders.py --dataset {args.dataset} --work-dir {args.work_dir} --jobs "
             f"{args.jobs}" + (f" --labels-per-class {args.labels_per_class}" if args.labels_per_class else "")
             + f"`: {what.format(**counts)}. A ViT of width 64, depth 4 (decoder: width 32, depth 1) in "
             "4 x 4 patches, given by architecture flags. No optimisation flag: epochs, batch, warm-up, lr and "
             "mixup come from the recipe chosen from the data (printed below). One thread per command, "
             f"{args.jobs} downstream run(s) at a time, on a shared 2-core CPU (load averages beside each command).",
             "",
             "Flags given: the architecture (these images are far smaller than ViT-B/16's 224 x 224 input), "
             "loader workers and threads (a shared machine), `--resume auto` (the pretraining continues where a "
             "stopped run of this script left it) and `--random-init` for the baseline; none of the optimisation "
             "settings.", "",
             f"Pretraining: epoch loss {results['pretrain']['first_epoch_loss']:.3f} -> "
             f"{results['pretrain']['last_epoch_loss']:.3f} over {results['pretrain']['epochs']} epochs.", "",
             "| val top-1 (top-5), last epoch | MAE encoder | same architecture, random init |", "|---|---:|---:|"]
    for command, name in (("linprobe", "linear probe"), ("finetune", "fine-tune")):
        cells = [f"{results[f'{command}_{n}']['val_top1']:.1f}% ({results[f'{command}_{n}']['val_top5']:.1f}%)"
                 for n in ("mae", "random_init")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Chance: {100 / classes:.1f}%. Commands (wall time of each run, from its metrics.jsonl `wall_s`; "
              "load average before -> after), each with the recipe it printed:", ""]
    for entry in log:
        lines.append(f"    {entry['command']}    # {entry['seconds']} s; load {entry['load_average_before']} "
                     f"-> {entry['load_average_after']}")
        lines += [f"    #   {line}" for line in entry["recipe"]]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
