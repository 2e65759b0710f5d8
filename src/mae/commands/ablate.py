"""`mae ablate`: a grid of short pretraining runs, each probed by k-NN (and a short fine-tuning),
as the paper's Table 1."""

import argparse

from ..engine.config.ablate import AblateConfig
from ..util.text import plural
from .training import add_training_arguments, run_training

HELP = ("pretrain a grid of settings around a base one with the same budget, probe each encoder (k-NN, "
        "and a short fine-tuning with --finetune-epochs)")

EPILOG = """\
examples:
  mae ablate --config configs/ablate_demo.yaml                     # the recorded demo grid
  mae ablate --base configs/demo.yaml --mask-ratios 0.5 0.75 0.9 --mask-types random block grid \\
      --mask-tokens decoder encoder --finetune-epochs 4 --output-dir runs/ablate-demo
  mae ablate --config configs/ablate_demo.yaml --data ~/photos/train --knn-val-data ~/photos/val \\
      --output-dir runs/ablate-photos
Run the same command again to continue: finished runs are kept, an interrupted one resumes.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, AblateConfig, EPILOG)


def _summary(table: dict) -> str:
    done = [r for r in table["rows"] if "knn_top1" in r]
    best = max(done, key=lambda r: r["knn_top1"])
    return (f"done: {plural(len({r['run'] for r in done}), 'run')}; best k-NN top-1 {best['knn_top1']:.1f}% "
            f"({best['setting']} {best['value']}); table in ablation.md")


def run(args: argparse.Namespace) -> int:
    from ..engine.loops.ablate import ablate  # loads torch: only when the command runs

    return run_training("ablate", AblateConfig, ablate, args, _summary, rerun_resumes=True)
