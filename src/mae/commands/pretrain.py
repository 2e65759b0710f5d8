"""`mae pretrain`: masked-autoencoder pretraining from a YAML config and/or flags."""

import argparse
import os
import sys
import warnings

from ..data import DataWarning
from ..engine.config import add_config_arguments, config_from_args
from ..engine.pretrain import TrainingDiverged, pretrain
from ..engine.pretrain_config import PretrainConfig

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
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_config_arguments(parser, PretrainConfig)


_default_showwarning = warnings.showwarning


def _show_data_warning(message, category, filename, lineno, file=None, line=None):
    """Data warnings as one plain line (they name the files); others as usual."""
    if issubclass(category, DataWarning):
        print(f"mae pretrain: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(PretrainConfig, args)
    warnings.showwarning = _show_data_warning
    try:
        result = pretrain(config)
    except TrainingDiverged as err:
        if os.environ.get("RANK", "0") == "0":
            print(f"mae pretrain: stopped: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(f"done: {result.step} steps, last loss {result.loss if result.loss is None else round(result.loss, 4)}, "
              f"checkpoint {result.checkpoint}, pictures in {result.run_dir}")
    return 0
