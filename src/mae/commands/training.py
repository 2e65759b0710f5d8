"""What the training commands (pretrain, finetune, linprobe) share: flags from a config
class, data and checkpoint warnings as plain lines, a divergence or a full disk as a message
and exit status 1, a stop on SIGTERM / SIGINT as a message and exit status 128 + signal."""

import argparse
import os
import shlex
import shutil
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


def _as_typed(path: str) -> str:
    """The file's name where PATH finds this very file, else its path."""
    name = os.path.basename(path)
    return name if shutil.which(name) == os.path.abspath(path) else path


def program() -> str:
    """How this process was started, as the start of a command line that runs mae the same way:
    `mae`, `python -m mae` or `python -m mae.cli`, or under torchrun `torchrun --nproc-per-node N -m mae.cli`."""
    module = getattr(sys.modules["__main__"].__spec__, "name", "")
    if module == "mae" or module.startswith("mae."):
        start = ["-m", module.removesuffix(".__main__")]
    elif os.path.basename(sys.argv[0]) == "mae":
        start = [_as_typed(sys.argv[0])]
    else:  # mae.cli.main called from other Python code
        return "mae"
    if "LOCAL_WORLD_SIZE" in os.environ:  # one of torchrun's processes
        per_node = os.environ["LOCAL_WORLD_SIZE"]
        nodes = int(os.environ["WORLD_SIZE"]) // int(per_node)
        launcher = ["torchrun", *(["--nnodes", str(nodes)] if nodes > 1 else []), "--nproc-per-node", per_node]
    else:
        launcher = [_as_typed(sys.executable)] if start[0] == "-m" else []
    return shlex.join(launcher + start)


def resume_advice(stop, rerun: list[str] | None) -> str:
    """A TrainingStopped run's own resume command, or with `rerun` (the command line, as for a grid)
    that command again."""
    if rerun is None:
        return f"Resume with: {program()} {shlex.join(stop.resume)}"
    return (f"Resume with the same command (finished runs are kept, the interrupted one continues): "
            f"{program()} {shlex.join(rerun)}")


def run_training(command: str, config_class: type, train: Callable, args: argparse.Namespace,
                 summary: Callable, rerun_resumes: bool = False) -> int:
    """Build the config from the flags, train, print `summary(result)` once. Exit status 1 if
    training diverged or the disk filled up, 128 + the signal after a stop on SIGTERM / SIGINT.
    With `rerun_resumes` the stop message advises the same command line, not the run's resume."""
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
            rerun = args._argv if rerun_resumes else None
            print(f"mae {command}: {err}. {resume_advice(err, rerun)}", file=sys.stderr)
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
