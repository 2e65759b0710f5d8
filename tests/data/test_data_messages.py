"""What `--data` values that cannot work are told: compressed archives, a split folder for pretraining."""

import warnings

import numpy as np
import pytest
from PIL import Image

from mae.data import DataWarning, build_source
from mae.data.loader import warn_split_folders


def test_a_compressed_archive_or_a_plain_file_says_what_to_give(tmp_path):
    (tmp_path / "photos.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(ValueError, match=r"photos.tar.gz is a compressed archive: .* unpack it"):
        build_source(str(tmp_path / "photos.tar.gz"))
    (tmp_path / "list.txt").write_text("a.jpg\n")
    with pytest.raises(ValueError, match=r"list.txt is a file: give a folder of images or uncompressed .tar"):
        build_source(str(tmp_path / "list.txt"))


def test_pretraining_on_a_folder_with_train_and_val_is_warned_about(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / "a.png")
    source = build_source(str(tmp_path))
    with pytest.warns(DataWarning, match=r"holds train/ and val/: .* give --data .*train"):
        warn_split_folders(source, str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_split_folders(build_source(str(tmp_path / "train")), str(tmp_path / "train"))
