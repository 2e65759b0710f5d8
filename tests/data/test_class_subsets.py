"""Class-subset evaluation: mapping files, restricted logits, and the errors that name classes."""

import pytest
import torch

from mae.data.class_subsets import check_same_classes, class_subset, read_class_mapping

HEAD = [f"n{i:04d}" for i in range(10)]  # the head's classes, in label order


def write(tmp_path, text):
    path = tmp_path / "mapping.txt"
    path.write_text(text)
    return path


def test_indices_names_comments_and_restricted_logits(tmp_path):
    path = write(tmp_path, "# subset of a 10-class head\n\nn0007 7\nn0002   # by name\nn0005\t5\n")
    mapping = read_class_mapping(path, num_classes=10, head_classes=HEAD)
    assert mapping == {"n0007": 7, "n0002": 2, "n0005": 5}
    subset = class_subset(mapping, ["n0002", "n0005", "n0007"])  # the evaluated folder's classes
    logits = torch.arange(20.0).reshape(2, 10)
    torch.testing.assert_close(subset.restrict(logits), logits[:, [2, 5, 7]])
    # a prediction is always a dataset class: the best mapped output, whatever the others say
    logits = torch.zeros(1, 10)
    logits[0, 9], logits[0, 5] = 100.0, 1.0
    assert subset.restrict(logits).argmax(dim=1).item() == 1  # dataset label of n0005


def test_unknown_classes_are_named(tmp_path):
    path = write(tmp_path, "n0001\nn9999\nzebra\n")
    with pytest.raises(ValueError, match=r"2 class\(es\) not among the head's classes: n9999, zebra"):
        read_class_mapping(path, num_classes=10, head_classes=HEAD)
    with pytest.raises(ValueError, match="no head class names are known"):
        read_class_mapping(write(tmp_path, "n0001\n"), num_classes=10)
    mapping = read_class_mapping(write(tmp_path, "n0001 1\nn0002 2\n"), num_classes=10)
    with pytest.raises(ValueError, match=r"1 class folder\(s\) of the evaluated data are not in .*: n0003"):
        class_subset(mapping, ["n0001", "n0002", "n0003"])


def test_malformed_files_are_refused_with_the_line(tmp_path):
    cases = {
        "n0001 1\nn0002 12\n": r"outside \[0, 10\).*n0002 -> 12",
        "n0001 1\nn0001 2\n": r"mapping.txt:2: class 'n0001' is mapped twice",
        "n0001 one\n": r"mapping.txt:1: head index 'one' is not an integer",
        "n0001 1 2\n": r"mapping.txt:1: expected 'folder_name \[head_index\]'",
        "# nothing\n": "maps no classes",
    }
    for text, message in cases.items():
        with pytest.raises(ValueError, match=message):
            read_class_mapping(write(tmp_path, text), num_classes=10, head_classes=HEAD)
    with pytest.raises(ValueError, match="does not exist"):
        read_class_mapping(tmp_path / "missing.txt", num_classes=10)
    with pytest.raises(ValueError, match="same head output"):
        class_subset({"a": 1, "b": 1}, ["a", "b"])


def test_training_and_validation_classes_must_agree():
    check_same_classes(["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match=r"only in the validation data: c.*only in the training data: b"):
        check_same_classes(["a", "b"], ["a", "c"])
    with pytest.raises(ValueError, match="another order"):
        check_same_classes(["a", "b"], ["b", "a"])
