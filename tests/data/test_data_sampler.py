import pytest
import torch

from mae.data import EvalBatches, KeyedImages, RandomResizedCrop, SyntheticShapes, TrainBatches, make_loader


def global_batches(num_samples, batch, world, accum, epochs=2, seed=0, start=0):
    """Per optimizer step: the samples of all ranks and micro-steps, in position order."""
    streams = [list(TrainBatches(num_samples, batch, epochs, seed, world, r, accum, start)) for r in range(world)]
    steps = []
    for i in range(0, len(streams[0]), accum):
        step = []
        for micro in range(accum):
            for r in range(world):
                step += streams[r][i + micro]
        steps.append(step)
    return steps


def test_one_process_two_processes_and_accumulation_see_the_same_samples():
    reference = global_batches(50, 8, 1, 1)
    assert global_batches(50, 4, 2, 1) == reference
    assert global_batches(50, 4, 1, 2) == reference
    assert global_batches(50, 2, 2, 2) == reference
    assert len(reference) == 2 * (50 // 8)


def test_each_epoch_is_a_fresh_permutation_without_repeats():
    batches = list(TrainBatches(40, 8, epochs=2, seed=1))
    epoch0 = [i for b in batches[:5] for e, i in b if e == 0]
    epoch1 = [i for b in batches[5:] for e, i in b if e == 1]
    assert sorted(epoch0) == list(range(40)) == sorted(epoch1)
    assert epoch0 != epoch1
    assert list(TrainBatches(40, 8, epochs=2, seed=1)) == batches  # a function of (seed, epoch)
    assert list(TrainBatches(40, 8, epochs=2, seed=2)) != batches


def test_resuming_at_a_step_continues_the_same_stream():
    full = list(TrainBatches(30, 4, epochs=3, seed=0, accum_iter=2))
    assert list(TrainBatches(30, 4, epochs=3, seed=0, accum_iter=2, start_step=5)) == full[10:]


def test_too_small_a_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one global batch of 64"):
        TrainBatches(40, 16, epochs=1, world_size=2, accum_iter=2)


def test_eval_batches_cover_every_sample_once_over_ranks():
    seen = [i for r in range(3) for b in EvalBatches(10, 3, 3, r) for _, i in b]
    assert sorted(seen) == list(range(10))


def test_loader_output_does_not_depend_on_the_number_of_workers():
    data = KeyedImages(SyntheticShapes(24, 32), RandomResizedCrop(16), seed=5)
    runs = []
    for workers in (0, 2):
        loader = make_loader(data, TrainBatches(24, 6, epochs=2, seed=5), num_workers=workers)
        runs.append([(imgs, labels) for imgs, labels in loader])
    assert len(runs[0]) == 8
    for (a, la), (b, lb) in zip(*runs):
        assert a.dtype == torch.uint8 and a.shape == (6, 3, 16, 16)
        assert torch.equal(a, b) and torch.equal(la, lb)
