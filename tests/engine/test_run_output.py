"""What runs print: counts in words, TensorBoard for the downstream commands too, and
pretraining's reconstructions in TensorBoard."""

import io
import sys

import numpy as np
import pytest
import tqdm
from PIL import Image

from mae.data import SyntheticShapes
from mae.engine.config.classifier import LinprobeConfig
from mae.engine.config.pretrain import PretrainConfig
from mae.engine.loops.linprobe import linprobe
from mae.engine.loops.pretrain import pretrain
from mae.engine.run import metrics
from mae.engine.run.metrics import MetricsLogger, Progress
from mae.util.text import format_count, plural


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


class FakeClock:
    """Both clocks a Progress reads (its own and tqdm's), moved by hand."""

    def __init__(self, monkeypatch):
        self.now = 1000.0
        monkeypatch.setattr(metrics.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(tqdm.std, "time", lambda: self.now)
        monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)

    def steps(self, progress: Progress, count: int, seconds: float) -> None:
        for _ in range(count):
            self.now += seconds
            progress.update()


def test_the_eta_leaves_out_the_first_step_that_compiles(monkeypatch):
    """The reported case: a 10-minute compile in step 1 made a 75-minute run read `eta 16h28m`."""
    clock = FakeClock(monkeypatch)
    stream = ZeroWidthTerminal()
    progress = Progress(1000, stream=stream, desc="pretrain")
    clock.steps(progress, 1, 600.0)
    clock.steps(progress, 15, 1.0)
    progress.report({"loss": 0.5})
    assert stream.getvalue().endswith("pretrain step 16/1000 | loss 0.5 | eta 16m24s\n")


def test_the_bar_starts_its_clock_after_the_first_step(monkeypatch):
    clock = FakeClock(monkeypatch)
    monkeypatch.setattr(metrics, "terminal_columns", lambda stream: 80)
    progress = Progress(1000, initial=100, stream=io.StringIO(), desc="pretrain")
    clock.steps(progress, 1, 600.0)
    clock.steps(progress, 15, 1.0)
    shown = str(progress.bar)
    progress.close()
    assert "116/1000 [00:15<14:44" in shown, shown


def test_without_tensorboard_the_hint_names_the_package_that_works(tmp_path, monkeypatch):
    """Whether or not this environment has tensorboard: as if it had not."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it raises ImportError
    with pytest.raises(ValueError, match=r"needs the tensorboard package.*pip install tensorboard.*package named "
                                         r"mae on the package index is another project"):
        MetricsLogger(tmp_path, tensorboard=True)


def test_pretraining_shows_the_same_images_reconstructed_in_tensorboard_at_each_picture(tmp_path):
    """Every picture the run draws (each --preview-every-epochs epoch, and the end) also goes to
    TensorBoard as one grid: the same fixed images each time, their reconstructions changing."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    pretrain(PretrainConfig(model="mae_vit_tiny_patch16", img_size=32, patch_size=8, embed_dim=64, depth=2,
                            num_heads=4, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4,
                            synthetic_size=16, batch_size=8, epochs=2, blr=1e-2, num_workers=0, threads=1,
                            preview_images=2, preview_every_epochs=1, tensorboard=True, output_dir=str(out)))
    events = accumulator.EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    images = events.Images("reconstruction")
    assert [e.step for e in images] == [2, 4, 4]  # epochs 1 and 2, then the end of the run
    grids = [np.asarray(Image.open(io.BytesIO(e.encoded_image_string))) for e in images]
    assert all(g.shape == (2 * 32 + 2, 4 * 32 + 3 * 2, 3) for g in grids)  # 2 images x 4 columns, 2-px gaps
    originals = [g[:, :32] for g in grids]
    assert all(np.array_equal(originals[0], o) for o in originals)
    assert not np.array_equal(grids[0][:, 2 * 34:], grids[1][:, 2 * 34:])  # the reconstructions moved
