"""`mae linprobe`: linear probing of a frozen pretrained encoder (the official recipe)."""

import argparse

from ..engine.config.classifier import LinprobeConfig
from .training import add_training_arguments, classifier_summary, run_training

HELP = "train a linear probe on a frozen pretrained encoder (single process, or DDP under torchrun)"

EPILOG = """\
examples:
  mae linprobe --config configs/linprobe_demo.yaml --checkpoint runs/demo
  mae linprobe --config configs/linprobe_vit_base.yaml --checkpoint mae_pretrain_vit_base.pth \\
      --data ~/imagenet --output-dir runs/lin-vitb
  mae linprobe --config runs/lin-vitb/config.yaml --resume auto     # continue after a stop
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, LinprobeConfig, EPILOG)


def run(args: argparse.Namespace) -> int:
    from ..engine.loops.linprobe import linprobe  # loads torch: only when the command runs

    return run_training("linprobe", LinprobeConfig, linprobe, args, classifier_summary)
