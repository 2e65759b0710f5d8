"""Linear probing end to end: frozen encoder, BatchNorm head folded into the saved classifier."""

import torch

import mae
from mae.data import Normalize, SyntheticShapes
from mae.engine.config.classifier import LinprobeConfig
from mae.engine.eval.knn import knn_monitor
from mae.engine.loops.classifier import SYNTHETIC_VAL_SEED
from mae.engine.loops.linprobe import linprobe


def test_linprobe_trains_only_the_head_and_saves_a_loadable_classifier(encoder, tmp_path):
    out = tmp_path / "lp"
    result = linprobe(LinprobeConfig(checkpoint=str(encoder), output_dir=str(out), synthetic_size=16,
                                     synthetic_val_size=8, batch_size=8, epochs=2, warmup_epochs=1,
                                     num_workers=0))
    assert result.step == 4 and result.best_top1 is not None
    pretrained = mae.load_model(encoder).state_dict()
    probe = mae.load_model(out)  # the newest checkpoint, BatchNorm folded into the linear layer
    assert probe.global_pool == "token" and probe.num_classes == 8
    for key, value in probe.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, pretrained[key]), f"{key} changed: the encoder must stay frozen"
    assert not torch.equal(probe.head.bias, torch.zeros(8))  # the head did train


def test_knn_monitor_reads_loader_batches_and_restores_the_mode(encoder):
    model = mae.load_model(encoder).train()
    images = torch.stack([torch.from_numpy(SyntheticShapes(24, 32, SYNTHETIC_VAL_SEED).pixels(i)).permute(2, 0, 1)
                          for i in range(24)])  # uint8 [24, 3, 32, 32]
    labels = torch.arange(24) % 8
    batches = [(images[:12], labels[:12]), (images[12:], labels[12:])]
    result = knn_monitor(model, batches, batches, Normalize(), k=1)
    assert model.training
    assert result["knn_top1"] == 100.0  # each image finds itself
