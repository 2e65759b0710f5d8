"""`mae eval`: top-1 / top-5 accuracy of a classifier on a labelled image folder, or robustness.

    mae eval --checkpoint runs/ft --data ~/imagenet/val
    mae eval --checkpoint runs/ft --data ~/birds/test --class-map birds_in_head.txt
    mae eval --checkpoint mae_finetuned_vit_base.pth --imagenet-c ~/imagenet-c \\
        --imagenet-a ~/imagenet-a --imagenet-r ~/imagenet-r --imagenet-sketch ~/sketch \\
        --output robustness.json                   # + robustness.md: mCE, per-corruption errors

ImageNet-A and -R are scored over their 200 classes of a 1000-class head (the class lists
ship with mae), ImageNet-C and -Sketch over all 1000; a head trained on the folders' own
classes (e.g. `mae corrupt` applied to one's own data) is scored directly.
"""

import argparse

from ..engine.config.base import add_config_arguments, config_from_args
from ..engine.config.classifier import EvalConfig

HELP = ("evaluate a classifier (top-1 / top-5) on a labelled image folder, a class subset of it, or "
        "the robustness benchmarks (ImageNet-C mCE, -A, -R, -Sketch)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = __doc__.split("\n", 2)[2]
    add_config_arguments(parser, EvalConfig)


def run(args: argparse.Namespace) -> int:
    from ..engine.loops.evaluate import evaluate  # loads torch: only when the command runs

    return evaluate(config_from_args(EvalConfig, args))
