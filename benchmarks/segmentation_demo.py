"""Does the demo's pretraining help segmentation? MAE encoder vs random init on the built-in shapes.

    python benchmarks/segmentation_demo.py [--pretrain-dir runs/demo] [--out-dir runs/segmentation_demo]

1. Pretrain with configs/demo.yaml into --pretrain-dir (or continue / reuse a run there).
2. `mae segment --config configs/segment_demo.yaml` from the MAE encoder and, with the same
   budget, from the same architecture at random initialisation (--random-init).
Writes benchmarks/results/segmentation_demo.{md,json}: mIoU, mAcc, aAcc, per-class IoU,
the commands, their wall times and the load average beside them.
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
    shown = " ".join(shlex.quote(a) for a in ["mae", *args])
    print(f"$ {shown}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mae.cli", *args], check=True, cwd=ROOT)
    log.append({"command": shown, "seconds": round(time.perf_counter() - start, 1),
                "load_average_after": [round(x, 2) for x in os.getloadavg()]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-dir", default="runs/demo")
    parser.add_argument("--out-dir", default="runs/segmentation_demo")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each command")
    parser.add_argument("--pretrain-epochs", type=int, default=10, help="pretraining epochs (the demo's 10)")
    parser.add_argument("--pretrain-images", type=int, default=8192, help="built-in images pretraining sees "
                        "(the demo's 8192)")
    args = parser.parse_args()
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose another --out-dir")
    log: list = []
    threads = ["--threads", str(args.threads)]
    run(["pretrain", "--config", "configs/demo.yaml", "--output-dir", args.pretrain_dir, "--resume", "auto",
         "--epochs", str(args.pretrain_epochs), "--synthetic-size", str(args.pretrain_images),
         "--knn-every-epochs", "0", *threads], log)
    results = {}
    for name, extra in (("mae", []), ("random_init", ["--random-init"])):
        run_dir = out / name
        run(["segment", "--config", "configs/segment_demo.yaml", "--checkpoint", args.pretrain_dir,
             "--output-dir", str(run_dir), *threads, *extra], log)
        results[name] = json.loads((run_dir / "results.json").read_text())

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "segmentation_demo.json").write_text(json.dumps({"results": results, "commands": log}, indent=2) + "\n")
    lines = ["# Segmentation on the built-in shapes: the demo's MAE encoder vs random init", "",
             f"`python benchmarks/segmentation_demo.py --pretrain-dir {args.pretrain_dir} --out-dir {args.out_dir}"
             f" --threads {args.threads} --pretrain-epochs {args.pretrain_epochs} --pretrain-images "
             f"{args.pretrain_images}`, torch {torch.__version__}, {os.cpu_count()} CPU cores (shared).", "",
             "| 256 held-out images, 9 classes | MAE encoder | same architecture, random init |", "|---|---:|---:|"]
    for key in ("mIoU", "mAcc", "aAcc"):
        lines.append(f"| {key} | {results['mae'][key]:.1f}% | {results['random_init'][key]:.1f}% |")
    for name in results["mae"]["per_class"]:
        cells = [results[n]["per_class"][name]["IoU"] for n in ("mae", "random_init")]
        lines.append(f"| IoU {name} | " + " | ".join("—" if c is None else f"{c:.1f}%" for c in cells) + " |")
    lines += ["", "Same budget for both: configs/segment_demo.yaml (UPerNet on the simple feature pyramid, "
              "200 steps of 16 crops, AdamW, layer decay 0.65, warm-up + poly). Commands (wall time, "
              "load average after):", ""]
    lines += [f"    {e['command']}    # {e['seconds']} s, load {e['load_average_after']}" for e in log]
    (RESULTS / "segmentation_demo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
