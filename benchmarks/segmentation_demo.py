"""Does the demo's pretraining help segmentation? MAE encoder vs random init on the built-in shapes.

    python benchmarks/segmentation_demo.py [--pretrain-dir runs/demo] [--out-dir runs/segmentation_demo] \
        [--head linear] [--iters 400]

1. Pretrain with configs/demo.yaml into --pretrain-dir (or continue / reuse a run there).
2. `mae segment --config configs/segment_demo.yaml --head H --iters N` from the MAE encoder and,
   with the same budget, from the same architecture at random initialisation (--random-init),
   one after the other, each evaluated every N/4 steps.
Writes benchmarks/results/RECORD.{md,json} (--record, default segmentation_demo): mIoU, mAcc, aAcc, per-class IoU, mIoU
along the way, the commands, their wall times and the load average beside them.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run(args: list[str], log: list) -> None:
    """One `mae` command; its wall time and the load average after it."""
    shown = " ".join(shlex.quote(a) for a in ["mae", *args])
    print(f"$ {shown}", flush=True)
    start = time.perf_counter()
    if subprocess.call([sys.executable, "-m", "mae.cli", *args], cwd=ROOT):
        raise SystemExit(f"failed: {shown}")
    log.append({"command": shown, "seconds": round(time.perf_counter() - start, 1),
                "load_average_after": [round(x, 2) for x in os.getloadavg()]})


def val_curve(run_dir: Path) -> dict:
    """step -> validation mIoU, from the run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["val_mIoU"] for row in rows if "val_mIoU" in row}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-dir", default="runs/demo")
    parser.add_argument("--out-dir", default="runs/segmentation_demo")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each command")
    parser.add_argument("--pretrain-epochs", type=int, default=10, help="pretraining epochs (the demo's 10)")
    parser.add_argument("--pretrain-images", type=int, default=8192, help="built-in images pretraining sees "
                        "(the demo's 8192)")
    parser.add_argument("--head", default="linear", choices=("linear", "upernet"), help="segmentation head")
    parser.add_argument("--iters", type=int, default=400, help="fine-tuning steps of 16 crops, for both")
    parser.add_argument("--record", default="segmentation_demo", help="name of the record in benchmarks/results/")
    args = parser.parse_args()
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose another --out-dir")
    log: list = []
    threads = ["--threads", str(args.threads)]
    run(["pretrain", "--config", "configs/demo.yaml", "--output-dir", args.pretrain_dir, "--resume", "auto",
         "--epochs", str(args.pretrain_epochs), "--synthetic-size", str(args.pretrain_images),
         "--knn-every-epochs", "0", *threads], log)
    budget = ["--head", args.head, "--iters", str(args.iters), "--warmup-iters", str(max(1, args.iters // 20)),
              "--eval-every", str(max(1, args.iters // 4))]
    runs = {"mae": [], "random_init": ["--random-init"]}
    for name, extra in runs.items():
        run(["segment", "--config", "configs/segment_demo.yaml", "--checkpoint", args.pretrain_dir, *budget,
             "--output-dir", str(out / name), *threads, *extra], log)
    results = {name: dict(json.loads((out / name / "results.json").read_text()), val_mIoU=val_curve(out / name))
               for name in runs}
    write_report(args, results, log)
    return 0


def write_report(args, results: dict, log: list) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.record}.json").write_text(json.dumps({"results": results, "commands": log}, indent=2) + "\n")
    lines = ["# Segmentation on the built-in shapes: the demo's MAE encoder vs random init", "",
             f"`python benchmarks/segmentation_demo.py --pretrain-dir {args.pretrain_dir} --out-dir {args.out_dir}"
             f" --threads {args.threads} --pretrain-epochs {args.pretrain_epochs} --pretrain-images "
             f"{args.pretrain_images} --head {args.head} --iters {args.iters} --record {args.record}`, "
             f"torch {torch.__version__}, "
             f"{os.cpu_count()} CPU cores (shared).", "",
             "| 256 held-out images, 9 classes | MAE encoder | same architecture, random init |", "|---|---:|---:|"]
    for key in ("mIoU", "mAcc", "aAcc"):
        lines.append(f"| {key} | {results['mae'][key]:.1f}% | {results['random_init'][key]:.1f}% |")
    for name in results["mae"]["per_class"]:
        cells = [results[n]["per_class"][name]["IoU"] for n in ("mae", "random_init")]
        lines.append(f"| IoU {name} | " + " | ".join("—" if c is None else f"{c:.1f}%" for c in cells) + " |")
    for step in results["mae"]["val_mIoU"]:
        cells = [results[n]["val_mIoU"][step] for n in ("mae", "random_init")]
        lines.append(f"| mIoU after {step} steps | {cells[0]:.1f}% | {cells[1]:.1f}% |")
    lines += ["", f"Same budget for both: configs/segment_demo.yaml with the {args.head} head, {args.iters} steps "
              "of 16 crops (AdamW, layer decay 0.65, warm-up + poly), one run after the other. Commands (wall "
              "time, load average after):", ""]
    lines += [f"    {e['command']}    # {e['seconds']} s, load {e['load_average_after']}" for e in log]
    (RESULTS / f"{args.record}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
