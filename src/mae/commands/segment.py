"""`mae segment`: fine-tune a pretrained encoder for semantic segmentation, scored by mIoU.

    mae segment --checkpoint runs/demo --head upernet --iters 600 --batch-size 16 --lr 1e-3 \\
        --warmup-iters 50 --head-channels 64 --output-dir runs/segment_demo     # built-in shapes
    mae segment --checkpoint mae_pretrain_vit_base.pth --data ~/ADEChallengeData2016 \\
        --num-classes 150 --reduce-zero-label --crop-size 512        # the paper's recipe otherwise

Writes OUT/config.yaml, metrics.jsonl (loss, lr, mIoU), model.safetensors and results.json
(mIoU, mAcc, aAcc and per-class IoU / Acc, as mmsegmentation computes them). For the full
UPerNet / ADE20K schedule on GPUs, `mae convert --to mmseg` hands the encoder to mmsegmentation.
"""

import argparse

from ..engine.config.base import add_config_arguments, config_from_args
from ..engine.config.segment import SegmentConfig

HELP = "fine-tune an encoder for semantic segmentation (linear or UPerNet head) and report mIoU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2]
    add_config_arguments(parser, SegmentConfig)


def run(args: argparse.Namespace) -> int:
    from ..engine.loops.segment import train_segmenter  # loads torch: only when the command runs

    result = train_segmenter(config_from_args(SegmentConfig, args))
    m = result.metrics
    print(f"{result.run_dir}: mIoU {m['mIoU']:.2f}%, mAcc {m['mAcc']:.2f}%, aAcc {m['aAcc']:.2f}%")
    return 0
