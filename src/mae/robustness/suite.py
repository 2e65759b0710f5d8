"""Scoring a classifier on the robustness benchmarks: one report (dict -> JSON, Markdown) for all of them.

    plan = plan_suite({"imagenet_c": "~/imagenet-c", "imagenet_r": "~/imagenet-r"}, num_outputs=1000)
    report = run_suite(plan, score)     # score(source, subset, crop_fraction) -> metrics dict

Everything that can be checked without reading pixels is checked by `plan_suite`, before
any compute: folder layouts, class folders against the head. ImageNet-C is scored at crop
fraction 1 (its images are already the 224-pixel centre crops of the validation set); the
others through the usual evaluation view.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..data import ImageFolder
from ..data.class_subsets import ClassSubset
from .benchmarks import BENCHMARKS, Benchmark, corruption_folders, corruption_summary, head_scoring


@dataclass
class Task:
    """One folder of class folders to score."""

    benchmark: Benchmark
    folder: Path
    subset: ClassSubset | None
    classes_scored: int  # outputs the prediction is chosen among
    corruption: str | None = None
    severity: int | None = None


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _task(benchmark: Benchmark, folder: Path, num_outputs: int, **where) -> Task:
    classes = _class_folders(folder)
    if not classes:
        raise ValueError(f"--{benchmark.name.replace('_', '-')} {folder} has no class subfolders "
                         "(labels come from them)")
    subset = head_scoring(benchmark, classes, num_outputs, str(folder))
    scored = len(subset.scored or subset.head_indices) if subset else num_outputs
    return Task(benchmark, folder, subset, scored, **where)


def plan_suite(folders: dict[str, str], num_outputs: int) -> list[Task]:
    """{benchmark name: folder} -> the folders to score, each checked against the head."""
    tasks = []
    for name, root in folders.items():
        benchmark, root = BENCHMARKS[name], Path(root).expanduser()
        if name == "imagenet_c":
            for corruption, levels in corruption_folders(root).items():
                tasks += [_task(benchmark, folder, num_outputs, corruption=corruption, severity=severity)
                          for severity, folder in levels.items()]
        elif not root.is_dir():
            raise FileNotFoundError(f"--{name.replace('_', '-')} {root}: no such folder")
        else:
            tasks.append(_task(benchmark, root, num_outputs))
    return tasks


def run_suite(tasks: list[Task], score: Callable, log: Callable = print) -> dict:
    """Score every task -> {benchmark name: results}; errors are 100 - top-1, in %."""
    report: dict = {}
    c_errors: dict[str, dict[int, float]] = {}
    c_images = 0
    for task in tasks:
        crop = 1.0 if task.corruption else None
        metrics = score(ImageFolder(task.folder), task.subset, crop)
        what = f"{task.corruption} severity {task.severity}" if task.corruption else task.benchmark.title
        log(f"{what}: top-1 {metrics['top1']:.2f}% ({metrics['count']} images)")
        if task.corruption:
            c_errors.setdefault(task.corruption, {})[task.severity] = 100 - metrics["top1"]
            c_images += metrics["count"]
            continue
        report[task.benchmark.name] = {
            "data": str(task.folder), "images": metrics["count"], "top1": metrics["top1"],
            "top5": metrics["top5"], "error": 100 - metrics["top1"], "classes_scored": task.classes_scored,
        }
    if c_errors:
        c_root = next(t.folder.parent.parent for t in tasks if t.corruption)
        report["imagenet_c"] = {"data": str(c_root), "images": c_images, **corruption_summary(c_errors)}
    return report
