"""`mae finetune`: fine-tune a pretrained encoder as a classifier (the official recipe)."""

import argparse
import os
import sys

from ..engine.config import add_config_arguments, config_from_args
from ..engine.downstream import TrainingDiverged
from ..engine.downstream_config import FinetuneConfig
from ..engine.finetune import finetune

HELP = "fine-tune a pretrained encoder as a classifier (single process, or DDP under torchrun)"

EPILOG = """\
examples:
  mae finetune --config configs/finetune_demo.yaml --checkpoint runs/demo
  mae finetune --config configs/finetune_vit_base.yaml --checkpoint mae_pretrain_vit_base.pth \\
      --data ~/imagenet --output-dir runs/ft-vitb
  mae finetune ... --finetune-blocks 4          # partial fine-tuning of the last 4 blocks
  mae finetune --config runs/ft-vitb/config.yaml --resume auto     # continue after a stop
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_config_arguments(parser, FinetuneConfig)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(FinetuneConfig, args)
    try:
        result = finetune(config)
    except TrainingDiverged as err:
        print(f"mae finetune: stopped: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(f"done: {result.step} steps, val top-1 {result.top1:.2f}% (best {result.best_top1:.2f}%), "
              f"checkpoints in {result.run_dir / 'checkpoints'}")
    return 0
