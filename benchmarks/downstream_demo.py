"""What the demo's pretraining is worth downstream, on the built-in dataset (a benchmark, not a test).

    python benchmarks/downstream_demo.py [--pretrain-dir runs/demo] [--out-dir runs/downstream_demo]

1. Pretrain with configs/demo.yaml into --pretrain-dir (or continue / reuse a run there).
2. Linear probe (configs/linprobe_demo.yaml) and k-NN (k 20, T 0.07, cls token) of the MAE
   encoder and of the same architecture at random initialisation (--random-init).
3. Fine-tune (configs/finetune_demo.yaml) from MAE and from scratch with the same budget.
Writes benchmarks/results/downstream_demo.{md,json} with the numbers and the commands.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from mae.data import Normalize, SyntheticShapes
from mae.engine.compute import distributed
from mae.engine.eval.knn import knn_monitor
from mae.engine.loops.classifier import SYNTHETIC_TRAIN_SEED, SYNTHETIC_VAL_SEED, eval_loader
from mae.engine.run.metrics import read_metrics
from mae.models.vit import VisionTransformer
from mae.weights.load import constructor_kwargs, load_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def mae_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mae.cli", *args]


def run(command: list[str], log: list) -> float:
    shown = " ".join(shlex.quote(a) for a in ["mae", *command[3:]])
    print(f"$ {shown}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    log.append({"command": shown, "seconds": round(seconds, 1)})
    return seconds


def final_epoch(run_dir: Path) -> dict:
    return [r for r in read_metrics(run_dir) if "val_top1" in r][-1]


def knn(encoder: VisionTransformer, train_size: int, val_size: int) -> dict:
    size = 2 * encoder.config["img_size"][0]
    env = distributed.DistEnv()
    loaders = [eval_loader(SyntheticShapes(n, size, seed), encoder.config["img_size"][0], 3, 256, 0, env)
               for n, seed in ((train_size, SYNTHETIC_TRAIN_SEED), (val_size, SYNTHETIC_VAL_SEED))]
    return knn_monitor(encoder, *loaders, Normalize())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-dir", default="runs/demo")
    parser.add_argument("--out-dir", default="runs/downstream_demo")
    args = parser.parse_args()
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose another --out-dir")
    log: list = []

    run(mae_command("pretrain", "--config", "configs/demo.yaml", "--output-dir", args.pretrain_dir,
                    "--resume", "auto"), log)

    results = {}
    for name, extra in (("mae", []), ("random_init", ["--random-init"])):
        lp_dir = out / f"linprobe_{name}"
        run(mae_command("linprobe", "--config", "configs/linprobe_demo.yaml", "--checkpoint", args.pretrain_dir,
                        "--output-dir", str(lp_dir), *extra), log)
        results[f"linprobe_{name}"] = final_epoch(lp_dir)
        ft_dir = out / f"finetune_{name}"
        run(mae_command("finetune", "--config", "configs/finetune_demo.yaml", "--checkpoint", args.pretrain_dir,
                        "--output-dir", str(ft_dir), *extra), log)
        results[f"finetune_{name}"] = final_epoch(ft_dir)

    pretrained = load_model(args.pretrain_dir)
    torch.manual_seed(0)
    random_init = VisionTransformer(**dict(constructor_kwargs(VisionTransformer, dict(pretrained.config)),
                                           num_classes=0))
    for name, encoder in (("mae", pretrained), ("random_init", random_init)):
        results[f"knn_{name}"] = knn(encoder, 8192, 1024)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "downstream_demo.json").write_text(json.dumps({"results": results, "commands": log}, indent=2) + "\n")
    rows = [
        ("linear probe (top-1 / top-5, last epoch)", "linprobe", "val_top1", "val_top5"),
        ("k-NN, k 20, T 0.07 (top-1 / top-5)", "knn", "knn_top1", "knn_top5"),
        ("fine-tune (top-1 / top-5, last epoch)", "finetune", "val_top1", "val_top5"),
    ]
    lines = ["# Downstream value of the demo's pretraining (built-in dataset, 8 classes)", "",
             f"`python benchmarks/downstream_demo.py --pretrain-dir {args.pretrain_dir} --out-dir {args.out_dir}`"
             f" on {torch.get_num_threads()} CPU threads, torch {torch.__version__}.", "",
             "| evaluation | MAE encoder | same architecture, random init |", "|---|---|---|"]
    for title, kind, k1, k5 in rows:
        cells = [f"{results[f'{kind}_{n}'][k1]:.1f}% / {results[f'{kind}_{n}'][k5]:.1f}%"
                 for n in ("mae", "random_init")]
        lines.append(f"| {title} | {cells[0]} | {cells[1]} |")
    lines += ["", "Validation: 1024 images of the built-in dataset not seen in pretraining (chance: 12.5%). "
              "Training: the 8192 pretraining images for the linear probe and as k-NN neighbours, the "
              "first 2048 of them for fine-tuning. Commands (wall time):", ""]
    lines += [f"    {entry['command']}    # {entry['seconds']} s" for entry in log]
    (RESULTS / "downstream_demo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
