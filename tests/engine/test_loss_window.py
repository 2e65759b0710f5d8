"""The loss window both training loops share: losses stay on the device until read, a read
empties it and says images/s over the time since the last read (or clock restart)."""

import pytest
import torch

from mae.engine.compute.distributed import DistEnv
from mae.engine.run.plan import LossWindow, TrainingDiverged


class NoCheckpoints:
    def newest_verified(self):
        return None


def test_a_read_returns_the_steps_losses_and_empties_the_window(monkeypatch):
    clock = iter([100.0, 102.0, 105.0])
    monkeypatch.setattr("mae.engine.run.plan.time.perf_counter", lambda: next(clock))
    window = LossWindow(DistEnv(), epoch_steps=4, global_batch=8, checkpoints=NoCheckpoints())
    assert window.read(step=0) == ([], 0.0)
    window.add(torch.tensor(1.0))
    window.add(torch.tensor(3.0))
    values, speed = window.read(step=2)
    assert values == [1.0, 3.0] and speed == 8.0  # 2 steps x 8 images in 2 s
    assert window.losses == [] and window.started == 105.0


def test_a_non_finite_loss_stops_naming_its_step():
    window = LossWindow(DistEnv(), epoch_steps=4, global_batch=8, checkpoints=NoCheckpoints())
    for value in (1.0, float("nan")):
        window.add(torch.tensor(value))
    with pytest.raises(TrainingDiverged, match="loss is nan at step 7"):
        window.read(step=7)
