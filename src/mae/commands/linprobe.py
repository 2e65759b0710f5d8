"""`mae linprobe`: linear probing of a frozen pretrained encoder (the official recipe)."""

import argparse
import os
import sys

from ..engine.config import add_config_arguments, config_from_args
from ..engine.downstream import TrainingDiverged
from ..engine.downstream_config import LinprobeConfig
from ..engine.linprobe import linprobe

HELP = "train a linear probe on a frozen pretrained encoder (single process, or DDP under torchrun)"

EPILOG = """\
examples:
  mae linprobe --config configs/linprobe_demo.yaml --checkpoint runs/demo
  mae linprobe --config configs/linprobe_vit_base.yaml --checkpoint mae_pretrain_vit_base.pth \\
      --data ~/imagenet --output-dir runs/lin-vitb
  mae linprobe --config runs/lin-vitb/config.yaml --resume auto     # continue after a stop
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_config_arguments(parser, LinprobeConfig)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(LinprobeConfig, args)
    try:
        result = linprobe(config)
    except TrainingDiverged as err:
        print(f"mae linprobe: stopped: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(f"done: {result.step} steps, val top-1 {result.top1:.2f}% (best {result.best_top1:.2f}%), "
              f"checkpoints in {result.run_dir / 'checkpoints'}")
    return 0
