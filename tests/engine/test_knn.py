"""Weighted k-NN accuracy: against a per-sample reference, and on a model's features."""

import math

import pytest
import torch
import torch.nn.functional as F

import mae
from mae.engine.eval.knn import extract_features, knn_accuracy, knn_evaluate


def reference_predictions(train, train_labels, val, k, temperature, num_classes):
    """One sample at a time, straight from the definition: [N, num_classes] vote totals."""
    votes = torch.zeros(len(val), num_classes, dtype=torch.float64)
    for i, v in enumerate(val):
        sims = [(float(F.cosine_similarity(v, t, dim=0)), int(label)) for t, label in zip(train, train_labels)]
        for sim, label in sorted(sims, reverse=True)[:k]:
            votes[i, label] += math.exp(sim / temperature)
    return votes


def test_matches_the_per_sample_definition():
    g = torch.Generator().manual_seed(0)
    train, val = torch.randn(60, 8, generator=g), torch.randn(25, 8, generator=g)
    train_labels, val_labels = torch.randint(0, 7, (60,), generator=g), torch.randint(0, 7, (25,), generator=g)
    votes = reference_predictions(train, train_labels, val, k=5, temperature=0.1, num_classes=7)
    top5 = votes.topk(5, dim=1).indices
    expected1 = 100 * (top5[:, 0] == val_labels).double().mean().item()
    expected5 = 100 * (top5 == val_labels[:, None]).any(dim=1).double().mean().item()
    for chunk in (4, 1024):  # chunking does not change the answer
        result = knn_accuracy(train, train_labels, val, val_labels, k=5, temperature=0.1,
                              num_classes=7, chunk_size=chunk)
        assert result["top1"] == pytest.approx(expected1) and result["top5"] == pytest.approx(expected5)
    assert 0 < expected1 < 100  # a case that can fail either way


def test_votes_are_weighted_by_similarity():
    # one very close neighbour of class 0 outweighs two distant ones of class 1 at T = 0.07
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.1, 1.0]])
    labels = torch.tensor([0, 1, 1])
    val = torch.tensor([[1.0, 0.05]])
    assert knn_accuracy(train, labels, val, torch.tensor([0]), k=3)["top1"] == 100.0
    # with a high temperature the votes are nearly equal and the majority wins
    assert knn_accuracy(train, labels, val, torch.tensor([1]), k=3, temperature=100.0)["top1"] == 100.0


def test_separable_classes_and_feature_scale_do_not_matter():
    g = torch.Generator().manual_seed(1)
    centres = torch.eye(4) * 10
    labels = torch.arange(4).repeat(10)
    train = centres[labels] + torch.randn(40, 4, generator=g)
    val = (centres[labels] + torch.randn(40, 4, generator=g)) * 1000  # cosine: scale-free
    result = knn_accuracy(train, labels, val, labels, k=20)
    assert result["top1"] == 100.0 and result["top5"] == 100.0 and result["k"] == 20


def test_model_features_and_end_to_end_monitor():
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", img_size=16, patch_size=8, embed_dim=32, depth=1,
                             num_heads=2, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    g = torch.Generator().manual_seed(2)
    imgs, labels = torch.randn(12, 3, 16, 16, generator=g), torch.arange(12) % 3
    batches = [(imgs[:5], labels[:5]), (imgs[5:], labels[5:])]
    model.train()
    feats, got_labels = extract_features(model, batches, pool="cls")
    assert model.training  # the mode is restored
    with torch.no_grad():
        tokens = model.eval().forward_features(imgs)
    torch.testing.assert_close(feats, tokens[:, 0])
    assert torch.equal(got_labels, labels)
    mean, _ = extract_features(model, batches, pool="mean")
    torch.testing.assert_close(mean, tokens[:, 1:].mean(dim=1))
    # val == train: each sample is its own nearest neighbour, so k = 1 is always right
    assert knn_evaluate(model, batches, batches, k=1)["top1"] == 100.0


def test_bad_input():
    with pytest.raises(ValueError, match="differ in width"):
        knn_accuracy(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, 5), torch.zeros(2))
    with pytest.raises(ValueError, match="exactly one label"):
        knn_accuracy(torch.zeros(3, 4), torch.zeros(2), torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="temperature > 0"):
        knn_accuracy(torch.ones(3, 4), torch.zeros(3), torch.ones(2, 4), torch.zeros(2), temperature=0)
    with pytest.raises(ValueError, match="pool must be one of"):
        extract_features(torch.nn.Linear(2, 2), [], pool="max")
