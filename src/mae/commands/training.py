"""What the training commands (pretrain, finetune, linprobe) share: flags from a config
class, data and checkpoint warnings as plain lines, a divergence or a full disk as a message
and exit status 1, a stop on SIGTERM / SIGINT as a message and exit status 128 + signal."""

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable

from ..engine.config.base import add_config_arguments, config_from_args
from ..storage.disk import FULL_ERRNOS, DiskFull
from ..util.text import format_duration


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def add_training_arguments(parser: argparse.ArgumentParser, config_class: type, epilog: str) -> None:
    parser.epilog = epilog
    add_config_arguments(parser, config_class)


def run_training(command: str, config_class: type, train: Callable, args: argparse.Namespace,
                 summary: Callable) -> int:
    """Build the config from the flags, train, print `summary(result)` once. Exit status 1 if
    training diverged or the disk filled up, 128 + the signal after a stop on SIGTERM / SIGINT."""
    from ..engine.run.plan import RUN_WARNINGS, TrainingDiverged  # load torch: only when a command runs
    from ..engine.run.stops import TrainingStopped

    config = config_from_args(config_class, args)
    default_showwarning = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RUN_WARNINGS):
            print(f"mae {command}: warning: {message}", file=sys.stderr)
        else:
            default_showwarning(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    start = time.monotonic()
    try:
        result = train(config)
    except (TrainingDiverged, DiskFull) as err:
        if is_main_process():
            print(f"mae {command}: stopped: {err.strerror if isinstance(err, DiskFull) else err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in FULL_ERRNOS:
            raise
        if is_main_process():  # a write other than a checkpoint's (metrics, pictures)
            print(f"mae {command}: stopped: no space left on device writing {err.filename or 'the run'}; "
                  "free some space, then --resume auto", file=sys.stderr)
        return 1
    except TrainingStopped as err:
        if is_main_process():
            print(f"mae {command}: {err}", file=sys.stderr)
        return err.exit_code
    finally:
        warnings.showwarning = default_showwarning
    if is_main_process():
        print(f"{summary(result)}; {format_duration(time.monotonic() - start)} in all")
    return 0


def classifier_summary(result) -> str:
    """The last line of `mae finetune` and `mae linprobe`."""
    return (f"done: {result.step} steps, val top-1 {result.top1:.2f}% (best {result.best_top1:.2f}%), "
            f"checkpoints in {result.run_dir / 'checkpoints'}")
