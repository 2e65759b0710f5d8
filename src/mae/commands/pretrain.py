"""`mae pretrain`: masked-autoencoder pretraining from a YAML config and/or flags."""

import argparse

from ..engine.config.pretrain import PretrainConfig
from .training import add_training_arguments, run_training

HELP = "pretrain a masked autoencoder (single process, or DDP under torchrun)"

EPILOG = """\
examples:
  mae pretrain --config configs/demo.yaml
  mae pretrain --data ~/imagenet/train --model mae_vit_base_patch16 --norm-pix-loss \\
      --epochs 800 --effective-batch 4096 --batch-size 64 --output-dir runs/vitb
  torchrun --nproc_per_node 8 -m mae.cli pretrain --config configs/pretrain_vit_base_800ep.yaml \\
      --data ~/imagenet/train
  mae pretrain --config runs/vitb/config.yaml --resume auto     # continue after a stop
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, PretrainConfig, EPILOG)


def _summary(result) -> str:
    loss = "" if result.loss is None else f", last loss {result.loss:.4f}"  # None: nothing left to train
    return f"done: {result.step} steps{loss}, checkpoint {result.checkpoint}, pictures in {result.run_dir}"


def run(args: argparse.Namespace) -> int:
    from ..engine.loops.pretrain import pretrain  # loads torch: only when the command runs

    return run_training("pretrain", PretrainConfig, pretrain, args, _summary)
