"""What a run tells the user: metrics.jsonl (+ TensorBoard), a progress bar or plain log lines."""

import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ...storage.files import write_text_atomic
from ...util.text import format_duration

METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of OUT/metrics.jsonl. A torn last line (the run died while writing it) is
    left out; any other line that is not a JSON object is an error naming the file and line."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    lines = path.read_bytes().decode("utf-8", "replace").split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # no newline after it: a write cut short
                break
            raise ValueError(f"{path} line {number} is not a JSON record ({err}); remove or fix that line") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {number} is not a JSON object: {line[:60]!r}")
        records.append(record)
    return records


class MetricsLogger:
    """One JSON object per line in OUT/metrics.jsonl; optionally the same scalars to TensorBoard,
    and pictures (`image`: pretraining's reconstructions) there too.

    A fresh run starts the file anew. A resumed run keeps the records up to the step it
    resumes from and drops later ones (written after that checkpoint by the run that was
    stopped) and a torn last line, so the file reads as one uninterrupted run. Each record also
    gets `time` (Unix seconds) and `wall_s`: seconds of the run so far, counted on from the kept
    records.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = False,
                 resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        self.writer = None
        self.start, self.wall_before = time.monotonic(), 0.0
        if not enabled:
            return
        kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= resume_step] if resume_step is not None else []
        self.wall_before = max((r.get("wall_s", 0.0) for r in kept), default=0.0)
        text = "".join(json.dumps(r) + "\n" for r in kept)
        write_text_atomic(self.path, text)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError(
                    "--tensorboard needs the tensorboard package, in the environment that runs mae: "
                    "pip install tensorboard (e.g. .venv/bin/pip install tensorboard; the package named "
                    "mae on the package index is another project)"
                ) from None
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        clock = {"time": round(time.time(), 3), "wall_s": round(self.wall_before + time.monotonic() - self.start, 2)}
        with open(self.path, "a") as f:
            f.write(json.dumps({**record, **clock}) + "\n")
        if self.writer is not None:
            step = record.get("step", 0)
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)

    def image(self, tag: str, image, step: int) -> None:
        """An RGB image [H, W, 3] in [0, 1] to TensorBoard (when it is on), at `step`."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def terminal_columns(stream) -> int:
    """Columns of the terminal `stream` writes to; 0 when it is none or reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (AttributeError, OSError, ValueError):
        return 0


class Progress:
    """A tqdm bar on a terminal; plain log lines (with ETA) when output goes to a file or to a
    terminal that reports no width.

    The rate behind the ETA counts the steps after the first `warmup_steps` only: those also
    compile the model (minutes on a CPU) or warm up its kernels, and counted in they would make
    the time left look many times longer. The bar is started anew at that point, so that tqdm's
    own rate and elapsed time count from there too.
    """

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train", stream=None,
                 warmup_steps: int = 1):
        self.stream = stream or sys.stderr
        self.total, self.enabled, self.desc = total, enabled, desc
        self.done = initial
        self.warmup_end = initial + warmup_steps
        self.clock: tuple[float, int] | None = None  # (time, steps done) when the warm-up ended
        interactive = enabled and terminal_columns(self.stream) > 0
        self.bar = self._new_bar(leave=False) if interactive else None  # replaced after the warm-up

    def _new_bar(self, leave: bool = True, postfix=None) -> tqdm:
        return tqdm(total=self.total, initial=self.done, desc=self.desc, unit="step", dynamic_ncols=True,
                    file=self.stream, leave=leave, postfix=postfix)

    def set_total(self, total: int) -> None:
        """The step count, for work whose size is known only once it starts."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self.bar is not None:
            self.bar.update(steps)
        if self.clock is None and self.done >= self.warmup_end:
            self.clock = (time.perf_counter(), self.done)
            if self.bar is not None:
                postfix = self.bar.postfix
                self.bar.close()
                self.bar = self._new_bar(postfix=postfix)

    def _steps_per_s(self) -> float:
        """Steps per second since the warm-up; 0 before any step after it."""
        if self.clock is None:
            return 0.0
        since, done = self.clock
        elapsed = time.perf_counter() - since
        return (self.done - done) / elapsed if elapsed > 0 else 0.0

    def report(self, values: dict) -> None:
        """Show the latest values: as the bar's postfix, or as one log line."""
        if not self.enabled:
            return
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            return
        rate = self._steps_per_s()
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        fields = " | ".join(f"{k} {v}" for k, v in shown.items())
        self.write(f"{self.desc} step {self.done}/{self.total} | {fields} | eta {format_duration(eta)}")

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
