"""Scoring a dataset with fewer classes against a larger head (ImageNet-A / -R against 1000 classes).

A mapping file says, for each class folder of the evaluated dataset, which output of the
head it is. Plain text, one class per line, `#` starts a comment, blank lines are skipped:

    # folder_name  head_index
    n01443537      1
    n01484850      2

or folder names alone, when the head's classes are known by name (the training set's
sorted folder names, as an image-folder dataset numbers them):

    n01443537
    n01484850

The logits are then restricted to the mapped outputs, in the dataset's class order, so
a prediction is always one of the dataset's classes and its labels score them directly.
"""

from dataclasses import dataclass
from pathlib import Path

import torch


def _listing(names, limit: int = 10) -> str:
    names = list(names)
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def read_class_mapping(
    path: str | Path,
    num_classes: int,
    head_classes: list[str] | None = None,
) -> dict[str, int]:
    """A mapping file -> {folder_name: head_index}, checked against the head.

    num_classes: outputs of the head; indices must lie in [0, num_classes).
    head_classes: the head's class names, needed for lines with a name alone.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"class mapping file {path} does not exist")
    head_index = {name: i for i, name in enumerate(head_classes or [])}
    mapping: dict[str, int] = {}
    unknown, out_of_range = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"class mapping file {path} is not UTF-8 text (byte {err.object[err.start]:#04x} "
                         f"at offset {err.start}); save it as UTF-8") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) > 2:
            raise ValueError(f"{path}:{number}: expected 'folder_name [head_index]', got {raw.strip()!r}")
        name = fields[0]
        if name in mapping:
            raise ValueError(f"{path}:{number}: class {name!r} is mapped twice")
        if len(fields) == 2:
            try:
                index = int(fields[1])
            except ValueError:
                raise ValueError(f"{path}:{number}: head index {fields[1]!r} is not an integer") from None
            if not 0 <= index < num_classes:
                out_of_range.append(f"{name} -> {index}")
        elif name in head_index:
            index = head_index[name]
        else:
            unknown.append(name)
            continue
        mapping[name] = index
    if unknown:
        known = "the head's classes" if head_classes else (
            "any class: no head class names are known, so give indices"
        )
        raise ValueError(f"{path}: {len(unknown)} class(es) not among {known}: {_listing(unknown)}")
    if out_of_range:
        raise ValueError(
            f"{path}: head indices outside [0, {num_classes}) for the {num_classes}-class head: "
            f"{_listing(out_of_range)}"
        )
    if not mapping:
        raise ValueError(f"{path} maps no classes")
    return mapping


@dataclass(frozen=True)
class ClassSubset:
    """The dataset's classes (in label order) and the head output each one is scored by.

    By default the prediction is among the dataset's classes only. With `scored`, it is among
    those head outputs instead (a superset of head_indices: e.g. all 200 classes of ImageNet-R
    when the folder holds some of them, or all 1000 outputs).
    """

    names: tuple[str, ...]
    head_indices: tuple[int, ...]
    scored: tuple[int, ...] | None = None

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """[N, num_classes] head logits -> [N, K]: the scored outputs (default: column j for class j)."""
        index = torch.as_tensor(self.scored or self.head_indices, device=logits.device)
        return logits.index_select(-1, index)

    def relabel(self, labels: torch.Tensor) -> torch.Tensor:
        """Dataset labels -> columns of `restrict`'s logits."""
        if self.scored is None:
            return labels
        column = {output: j for j, output in enumerate(self.scored)}
        table = torch.as_tensor([column[i] for i in self.head_indices], device=labels.device)
        return table[labels]


def class_subset(
    mapping: dict[str, int], dataset_classes: list[str], source: str = "the class mapping"
) -> ClassSubset:
    """Line the mapping up with the evaluated dataset's classes (its folder names, label order)."""
    unmapped = [name for name in dataset_classes if name not in mapping]
    if unmapped:
        raise ValueError(
            f"{len(unmapped)} class folder(s) of the evaluated data are not in {source}: {_listing(unmapped)}"
        )
    indices = [mapping[name] for name in dataset_classes]
    if len(set(indices)) != len(indices):
        shared = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(
            f"{source} maps several dataset classes to the same head output(s): {_listing(shared)}"
        )
    return ClassSubset(tuple(dataset_classes), tuple(indices))


def check_same_classes(
    train_classes: list[str],
    val_classes: list[str],
    train_name: str = "training data",
    val_name: str = "validation data",
) -> None:
    """Training and validation must name the same classes in the same order (same label numbers)."""
    if list(train_classes) == list(val_classes):
        return
    only_train = [c for c in train_classes if c not in set(val_classes)]
    only_val = [c for c in val_classes if c not in set(train_classes)]
    parts = []
    if only_val:
        parts.append(f"{len(only_val)} class(es) only in the {val_name}: {_listing(only_val)}")
    if only_train:
        parts.append(f"{len(only_train)} class(es) only in the {train_name}: {_listing(only_train)}")
    if not parts:
        parts.append("the same classes in another order")
    raise ValueError(
        f"the {val_name} classes differ from the {train_name} classes ({'; '.join(parts)}); "
        "labels would not mean the same class — for a subset of the classes, use a class mapping file"
    )
