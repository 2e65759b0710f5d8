"""What runs print: counts in words, TensorBoard for the downstream commands too."""

import io

import pytest

from mae.data import SyntheticShapes
from mae.engine.downstream_config import LinprobeConfig
from mae.engine.linprobe import linprobe
from mae.engine.monitor import Progress
from mae.text import format_count, plural


def test_counts_read_as_words():
    assert [plural(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert [format_count(n) for n in (840, 1540, 5_530_000, 86_000_000, 1_200_000_000)] == \
        ["840", "1.54k", "5.53M", "86M", "1.2B"]
    assert repr(SyntheticShapes(1, 64)) == "SyntheticShapes(1 image of 64 x 64 px before the crop, 8 classes, seed=0)"


def test_linprobe_takes_tensorboard_and_names_the_package_it_needs(encoder, tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs the tensorboard package.*pip install tensorboard"):
            linprobe(LinprobeConfig(checkpoint=str(encoder), output_dir=str(tmp_path / "lp"), synthetic_size=16,
                                    synthetic_val_size=8, batch_size=8, epochs=1, num_workers=0, tensorboard=True))
    else:
        result = linprobe(LinprobeConfig(checkpoint=str(encoder), output_dir=str(tmp_path / "lp"), synthetic_size=16,
                                         synthetic_val_size=8, batch_size=8, epochs=1, num_workers=0,
                                         tensorboard=True))
        assert any((result.run_dir / "tensorboard").iterdir())


class ZeroWidthTerminal(io.StringIO):
    """A terminal (isatty) whose size is unknown: no real file descriptor behind it."""

    def isatty(self):
        return True


def test_progress_on_a_terminal_without_a_width_prints_plain_lines():
    stream = ZeroWidthTerminal()
    progress = Progress(10, stream=stream, desc="pretrain")
    assert progress.bar is None
    progress.update(5)
    progress.report({"loss": 0.5})
    progress.close()
    assert "pretrain step 5/10 | loss 0.5" in stream.getvalue()
