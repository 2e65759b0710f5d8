"""`mae finetune`: fine-tune a pretrained encoder as a classifier (the official recipe)."""

import argparse

from ..engine.config.classifier import FinetuneConfig
from .training import add_training_arguments, classifier_summary, run_training

HELP = "fine-tune a pretrained encoder as a classifier (single process, or DDP under torchrun)"

EPILOG = """\
examples:
  mae finetune --config configs/finetune_demo.yaml --checkpoint runs/demo
  mae finetune --config configs/finetune_vit_base.yaml --checkpoint mae_pretrain_vit_base.pth \\
      --data ~/imagenet --output-dir runs/ft-vitb
  mae finetune --config configs/finetune_demo.yaml --checkpoint runs/demo --finetune-blocks 4 \
      --output-dir runs/ft-last4     # partial fine-tuning of the last 4 blocks
  mae finetune --config runs/ft-vitb/config.yaml --resume auto     # continue after a stop
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, FinetuneConfig, EPILOG)


def run(args: argparse.Namespace) -> int:
    from ..engine.loops.finetune import finetune  # loads torch: only when the command runs

    return run_training("finetune", FinetuneConfig, finetune, args, classifier_summary)
