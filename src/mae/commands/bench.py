"""`mae bench`: training-step throughput, FLOPs, MFU and memory, side by side with peers."""

import argparse
import dataclasses
import shlex

from ..engine.config.base import add_config_arguments, config_from_args, flag
from ..engine.config.bench import BenchConfig

HELP = "measure a pretraining step (images/s, FLOPs, MFU, memory), optionally beside Hugging Face"

EPILOG = """\
examples:
  mae bench --model mae_vit_small_patch16 --batch-size 8 --compare hf --compare mask-token
  mae bench --model mae_vit_tiny_patch16 --batch-size 32 --no-compile --precision fp32     # eager, fp32
  mae bench --model mae_vit_large_patch16 --device cuda --batch-size 256 --compare hf \\
      --out bench.json                                            # also bench.md, a Markdown table
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    add_config_arguments(parser, BenchConfig)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(BenchConfig, args)
    from ..benchmarking.bench import bench  # loads torch: only when the command runs

    return bench(config, command_line(config))


def command_line(config: BenchConfig) -> str:
    """The full command that reproduces this run, every setting spelled out."""
    words = ["mae", "bench"]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            words.append(flag(field.name) if value else "--no-" + field.name.replace("_", "-"))
        elif field.metadata.get("repeatable"):  # a flag given once per item (--compare)
            for item in value:
                words += [flag(field.name), str(item)]
        elif isinstance(value, tuple):  # one flag with several values (--img-size H W)
            words += [flag(field.name), *map(str, value)]
        else:
            words += [flag(field.name), str(value)]
    return shlex.join(words)
