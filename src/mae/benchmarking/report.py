"""Where a benchmark ran, and its results as JSON and as a Markdown table."""

import json
import os
import platform
import sys
from pathlib import Path

import torch

from ..storage.files import atomic_write
from ..util.text import format_size
from ..util.threads import cpu_name


def machine(device: str) -> dict:
    """The machine, as far as it shapes the numbers (load: other work on the same cores)."""
    info = dict(
        cpu=cpu_name(), cpu_cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
        python=platform.python_version(), torch=torch.__version__, platform=platform.platform(),
    )
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    if torch.device(device).type == "cuda":
        index = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
    if "transformers" in sys.modules:
        info["transformers"] = sys.modules["transformers"].__version__
    return info


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f}"


def markdown_table(run: dict) -> str:
    """One row per variant; `x ours` is its step time over the reference's, paired per round."""
    s = run["settings"]
    title = (f"{run.get('model', '')} {format_size(s['img_size'])}, batch {s['batch']}, mask {s['mask_ratio']}, "
             f"{s['precision']}{', compiled' if s['compile'] else ''}, {s['device']}; "
             f"peak {run['peak_flops_per_s'] / 1e12:.2f} TFLOP/s ({run['matmul_dtype']}, best of the "
             f"matmuls and the steps)")
    lines = [
        f"**{title.strip()}**", "",
        f"| variant | step ms | images/s | GFLOP/img | TFLOP/s | MFU | saved act. MiB | step peak MiB "
        f"| time / {run['reference']} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run["results"]:
        lines.append(
            f"| {r['variant']} | {r['step_s_median'] * 1000:,.1f} | {r['images_per_s']:,.1f} "
            f"| {r['flops_per_image'] / 1e9:,.2f} | {r['achieved_flops_per_s'] / 1e12:.3f} "
            f"| {100 * r['mfu']:.1f}% | {_mib(r['saved_activation_bytes'])} | {_mib(r['step_peak_bytes'])} "
            f"| {r['time_vs_reference']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def machine_line(info: dict) -> str:
    parts = [info.get("gpu"), f"{info['cpu']} ({info['cpu_cores']} cores, {info['torch_threads']} torch threads)",
             f"torch {info['torch']}", info.get("transformers") and f"transformers {info['transformers']}",
             "1-min load average %s" % info["load_average_1min"] if "load_average_1min" in info else None]
    return "; ".join(p for p in parts if p)


def write_results(path: str | Path, record: dict, table: str) -> tuple[Path, Path]:
    """Write `record` (with "command" and "machine") as JSON, and beside it (same stem, .md)
    the command, the machine and `table`; both atomically."""
    path = Path(path)
    json_path = path if path.suffix == ".json" else path.with_suffix(".json")
    md_path = json_path.with_suffix(".md")
    text = json.dumps(record, indent=1) + "\n"
    markdown = f"`{record['command']}`\n\nMachine: {machine_line(record['machine'])}\n\n{table}"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
    atomic_write(md_path, lambda tmp: Path(tmp).write_text(markdown))
    return json_path, md_path


def publish(table: str, record: dict, out: str | Path | None) -> None:
    """Print `table`, and with `out` write it and `record` there (see `write_results`)."""
    print(table, end="")
    if out:
        for path in write_results(out, record, table):
            print("wrote", path)
