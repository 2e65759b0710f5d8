"""Every command sets up its process in one place (engine/compute/process.py): the threads, the
matmul backend chosen by its flag, and the kept freed memory."""

import pytest

import mae.engine.compute.process as process
import mae.engine.loops.evaluate as evaluate_loop
import mae.engine.loops.segment as segment_loop
import mae.engine.run.plan as run_plan
from mae.engine.config.classifier import EvalConfig, FinetuneConfig
from mae.engine.config.pretrain import PretrainConfig
from mae.engine.config.segment import SegmentConfig


class SetUp(Exception):
    pass


def record(threads=None, matmul_backend="auto"):
    raise SetUp(threads, matmul_backend)


@pytest.mark.parametrize("module, run, config", [
    (run_plan, lambda c: run_plan.plan_run(c, None, 64), PretrainConfig(threads=2, matmul_backend="blas")),
    (run_plan, lambda c: run_plan.plan_run(c, None, 64), FinetuneConfig(checkpoint="x", threads=2,
                                                                         matmul_backend="blas")),
    (segment_loop, segment_loop.train_segmenter, SegmentConfig(checkpoint="x", threads=2, matmul_backend="blas")),
    (evaluate_loop, evaluate_loop.evaluate, EvalConfig(checkpoint="x", threads=2, matmul_backend="blas")),
])
def test_each_loop_sets_up_its_process_from_its_flags_first(monkeypatch, module, run, config):
    monkeypatch.setattr(module, "set_up_process", record)
    with pytest.raises(SetUp) as done:
        run(config)
    assert done.value.args == (2, "blas")


def test_the_set_up_applies_threads_backend_and_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(process.torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    monkeypatch.setattr(process, "set_matmul_backend", lambda name: calls.append(("backend", name)))
    monkeypatch.setattr(process, "keep_freed_memory", lambda: calls.append(("memory",)))
    process.set_up_process(3, "onednn")
    process.set_up_process(None, "blas")
    assert calls == [("threads", 3), ("backend", "onednn"), ("memory",), ("backend", "blas"), ("memory",)]
