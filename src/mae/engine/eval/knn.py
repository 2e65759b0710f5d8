"""k-nearest-neighbour accuracy of frozen features: a cheap monitor of what an encoder learned.

Features are L2-normalised, so a dot product is the cosine similarity. Each validation
sample takes its k most similar training samples, and each of those votes for its class
with weight exp(similarity / T) (k = 20, T = 0.07, the weighted k-NN of instance
discrimination / DINO). The classes with the most votes are the top-1 / top-5 predictions.
Everything is batched over chunks of validation samples; no per-sample Python loop.
"""

from collections.abc import Iterable

import torch
import torch.nn.functional as F

KNN_POOLS = ("cls", "mean")


@torch.no_grad()
def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Weighted k-NN top-1 / top-5 accuracy (in %) of val features against train features.

    train_features [M, D], train_labels [M], val_features [N, D], val_labels [N]; features
    need not be normalised (they are, here). Returns {"top1", "top5", "k", "num_train", "num_val"}.
    """
    if train_features.ndim != 2 or val_features.ndim != 2:
        raise ValueError("features must be [num_samples, dim] matrices")
    if train_features.shape[1] != val_features.shape[1]:
        raise ValueError(
            f"train and val features differ in width: {train_features.shape[1]} vs {val_features.shape[1]}"
        )
    if len(train_features) != len(train_labels) or len(val_features) != len(val_labels):
        raise ValueError("every feature row needs exactly one label")
    if len(train_features) == 0 or len(val_features) == 0:
        raise ValueError("k-NN needs at least one train and one val sample")
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    if num_classes is None:
        num_classes = int(max(train_labels.max(), val_labels.max())) + 1
    k = min(k, len(train_features))
    top = min(5, num_classes)

    train = F.normalize(train_features.float(), dim=1)  # [M, D]
    train_labels = train_labels.to(train.device, torch.long)
    correct1 = correct5 = 0
    for start in range(0, len(val_features), chunk_size):
        val = F.normalize(val_features[start:start + chunk_size].float().to(train.device), dim=1)  # [B, D]
        labels = val_labels[start:start + chunk_size].to(train.device, torch.long)  # [B]
        similarity, index = (val @ train.T).topk(k, dim=1)  # [B, k]
        weights = (similarity / temperature).exp()  # [B, k]
        votes = torch.zeros(len(val), num_classes, device=train.device)  # [B, C]
        votes.scatter_add_(1, train_labels[index], weights)
        predictions = votes.topk(top, dim=1).indices  # [B, top]
        hits = predictions == labels[:, None]  # [B, top]
        correct1 += int(hits[:, 0].sum())
        correct5 += int(hits.any(dim=1).sum())
    total = len(val_features)
    return {
        "top1": 100.0 * correct1 / total,
        "top5": 100.0 * correct5 / total,
        "k": k,
        "num_train": len(train_features),
        "num_val": total,
    }


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    batches: Iterable,
    pool: str = "cls",
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder features of (images, labels) batches: ([N, D] float32, [N] long), on `device`.

    pool="cls": the cls token after the final norm; "mean": the mean of the patch tokens.
    The model runs in eval mode (its mode is restored afterwards), without masking.
    """
    if pool not in KNN_POOLS:
        raise ValueError(f"pool must be one of {KNN_POOLS}, got {pool!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    features, labels = [], []
    try:
        for images, targets in batches:
            tokens = model.forward_features(images.to(device, non_blocking=True))  # [B, 1 + L, D]
            pooled = tokens[:, 0] if pool == "cls" else tokens[:, 1:].mean(dim=1)  # [B, D]
            features.append(pooled.float())
            labels.append(torch.as_tensor(targets).to(device, torch.long))
    finally:
        model.train(was_training)
    if not features:
        raise ValueError("no batches to extract features from")
    return torch.cat(features), torch.cat(labels)


def knn_evaluate(
    model: torch.nn.Module,
    train_batches: Iterable,
    val_batches: Iterable,
    k: int = 20,
    temperature: float = 0.07,
    pool: str = "cls",
    num_classes: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """k-NN accuracy of a model's encoder: features of both sets, then `knn_accuracy`."""
    train_features, train_labels = extract_features(model, train_batches, pool, device)
    val_features, val_labels = extract_features(model, val_batches, pool, device)
    return knn_accuracy(
        train_features, train_labels, val_features, val_labels, k, temperature, num_classes
    )


def knn_monitor(
    model: torch.nn.Module,
    train_batches: Iterable,
    val_batches: Iterable,
    normalize=None,
    k: int = 20,
    temperature: float = 0.07,
    pool: str = "cls",
    num_classes: int | None = None,
) -> dict[str, float]:
    """k-NN accuracy from inside a training loop, as {"knn_top1", "knn_top5"} for metrics.jsonl.

    The batches are (images, labels) as a loader gives them (uint8 for `mae.data` loaders);
    `normalize` (e.g. `mae.data.Normalize`, on the model's device) runs on each image batch
    first. The model's mode is restored afterwards.
    """
    device = next(model.parameters()).device

    def prepared(batches):
        for images, labels in batches:
            images = images.to(device, non_blocking=True)
            yield (normalize(images) if normalize is not None else images), labels

    result = knn_evaluate(model, prepared(train_batches), prepared(val_batches), k, temperature, pool,
                          num_classes, device)
    return {"knn_top1": result["top1"], "knn_top5": result["top5"]}
