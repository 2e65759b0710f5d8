"""The robustness benchmarks: their class lists, how a head is scored on them, the ImageNet-C layout, mCE.

    imagenet-c/  gaussian_noise/1/n01440764/*.JPEG ... 5/   (corruption / severity / class)
    imagenet-a/  n01498041/*.jpg ...                        (200 of the 1000 classes)
    imagenet-r/  n01443537/*.jpg ...                        (200 of the 1000 classes)
    imagenet-sketch/  n01440764/*.JPEG ...                  (the 1000 classes)

A head with 1000 outputs is taken to be an ImageNet-1k head (output k = the k-th sorted
WordNet id); class folders named by WordNet ids are scored against it: ImageNet-A and -R
over their 200 outputs only (the prediction is the best of the 200, as their authors
evaluate), ImageNet-C and -Sketch over all 1000. A head with as many outputs as the folder
has classes is scored directly (a model trained on the same classes, e.g. a corrupted copy
of one's own data). The tables in tables/ name their sources.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..data.class_subsets import ClassSubset

TABLES = Path(__file__).parent / "tables"
SEVERITIES = (1, 2, 3, 4, 5)
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Benchmark:
    name: str  # the flag and report key: imagenet_c, imagenet_a, imagenet_r, imagenet_sketch
    title: str
    subset_table: str | None  # the 200-class list scored instead of the 1000 outputs


BENCHMARKS = {
    "imagenet_c": Benchmark("imagenet_c", "ImageNet-C", None),
    "imagenet_a": Benchmark("imagenet_a", "ImageNet-A", "imagenet_a_wnids.txt"),
    "imagenet_r": Benchmark("imagenet_r", "ImageNet-R", "imagenet_r_wnids.txt"),
    "imagenet_sketch": Benchmark("imagenet_sketch", "ImageNet-Sketch", None),
}


def read_wnids(name: str) -> tuple[str, ...]:
    """A shipped class list: one WordNet id a line, `#` comments."""
    lines = (line.split("#", 1)[0].strip() for line in (TABLES / name).read_text().splitlines())
    return tuple(line for line in lines if line)


@cache
def imagenet_wnids() -> tuple[str, ...]:
    return read_wnids("imagenet_1k_wnids.txt")


@cache
def alexnet_errors() -> dict[str, float]:
    """AlexNet's ImageNet-C top-1 error (fraction) per corruption, averaged over the severities."""
    return json.loads((TABLES / "alexnet_imagenet_c_errors.json").read_text())["errors"]


def head_scoring(benchmark: Benchmark, classes: list[str], num_outputs: int, where: str) -> ClassSubset | None:
    """How the head's logits score the folder's classes (None: directly, label = output)."""
    wnids = imagenet_wnids()
    position = {w: i for i, w in enumerate(wnids)}
    if num_outputs == IMAGENET_CLASSES and all(c in position for c in classes):
        scored = wnids if benchmark.subset_table is None else read_wnids(benchmark.subset_table)
        outside = [c for c in classes if c not in set(scored)]
        if outside:
            raise ValueError(f"{where}: {len(outside)} class folder(s) are not among the "
                             f"{len(scored)} classes of {benchmark.title}: {', '.join(outside[:10])}")
        if list(classes) == list(wnids):
            return None
        return ClassSubset(tuple(classes), tuple(position[c] for c in classes),
                           tuple(position[w] for w in scored))
    if len(classes) == num_outputs:
        return None
    raise ValueError(
        f"{where} has {len(classes)} class folders, but the head has {num_outputs} outputs: score "
        f"{benchmark.title} with an ImageNet-1k head (1000 outputs, folders named by WordNet ids "
        "such as n01440764) or with a head trained on exactly these classes"
    )


def corruption_folders(root: Path) -> dict[str, dict[int, Path]]:
    """An ImageNet-C layout -> {corruption: {severity: folder of class folders}}, checked."""
    if not root.is_dir():
        raise FileNotFoundError(f"--imagenet-c {root}: no such folder")
    found: dict[str, dict[int, Path]] = {}
    for corruption in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        levels = [p for p in corruption.iterdir() if p.is_dir() and not p.name.startswith(".")]
        wrong = sorted(p.name for p in levels if p.name not in {str(s) for s in SEVERITIES})
        if wrong or not levels:
            raise ValueError(
                f"--imagenet-c {root}: expected corruption/severity/class/ folders, severities 1-5, but "
                f"{corruption.name}/ holds {', '.join(wrong[:5]) if wrong else 'no severity folders'}"
            )
        found[corruption.name] = {int(p.name): p for p in sorted(levels, key=lambda p: int(p.name))}
    if not found:
        raise ValueError(f"--imagenet-c {root} holds no corruption folders (corruption/severity/class/)")
    return found


def corruption_summary(errors: dict[str, dict[int, float]]) -> dict:
    """Top-1 errors (%) per corruption and severity -> per-corruption means, CE, mCE.

    CE_c = sum over severities of the error / the same sum for AlexNet (Hendrycks & Dietterich
    2019), i.e. the mean error over the five severities over AlexNet's; mCE is the mean CE over
    the benchmark's 15 corruptions. A CE needs all five severities and a corruption of the
    table; mCE is reported as complete only over all 15. The unnormalised mean error is over
    every corruption present.
    """
    alexnet = alexnet_errors()
    rows = {}
    for corruption, levels in errors.items():
        mean = sum(levels.values()) / len(levels)
        whole = set(levels) == set(SEVERITIES)
        ce = mean / alexnet[corruption] if whole and corruption in alexnet else None  # in %
        rows[corruption] = {"errors": {str(s): e for s, e in sorted(levels.items())}, "mean_error": mean,
                            "ce": ce}
    ces = [row["ce"] for row in rows.values() if row["ce"] is not None]
    return {
        "corruptions": rows,
        "mean_error": sum(r["mean_error"] for r in rows.values()) / len(rows),
        "mce": sum(ces) / len(ces) if ces else None,
        "mce_corruptions": len(ces),
        "mce_complete": len(ces) == len(alexnet),
    }
