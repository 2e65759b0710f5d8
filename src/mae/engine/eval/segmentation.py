"""mIoU, mean accuracy and pixel accuracy, summed over a dataset as mmsegmentation's IoUMetric does.

Per image, pixels labelled with the ignore index are dropped; then per class c the areas
of (prediction == c and label == c), prediction == c, label == c are added up over the
dataset. IoU_c = intersection / union, Acc_c = intersection / label area; a class that
never occurs in the labels has no Acc (NaN) and, unless predicted, no IoU; mIoU and mAcc
are the means over the classes that have one. aAcc = all intersections / all labelled pixels.
"""

import math

import torch


class SegmentationMetrics:
    def __init__(self, num_classes: int, ignore_index: int):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.areas = torch.zeros(3, num_classes, dtype=torch.float64)  # intersect, pred, label

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """pred, label: int [H, W] (or any equal shapes)."""
        keep = label != self.ignore_index
        pred, label = pred[keep].long().cpu(), label[keep].long().cpu()
        k = self.num_classes
        self.areas[0] += torch.bincount(label[pred == label], minlength=k)[:k].double()
        self.areas[1] += torch.bincount(pred, minlength=k)[:k].double()
        self.areas[2] += torch.bincount(label, minlength=k)[:k].double()

    def result(self, class_names=None) -> dict:
        intersect, pred, label = self.areas
        union = pred + label - intersect
        iou = (intersect / union).tolist()  # 0 / 0 -> nan
        acc = (intersect / label).tolist()

        def nanmean(values):
            present = [v for v in values if not math.isnan(v)]
            return 100 * sum(present) / len(present) if present else float("nan")

        names = list(class_names) if class_names is not None else [str(c) for c in range(self.num_classes)]
        return {
            "mIoU": nanmean(iou), "mAcc": nanmean(acc),
            "aAcc": 100 * float(intersect.sum() / label.sum()) if label.sum() else float("nan"),
            "per_class": {name: {"IoU": None if math.isnan(i) else 100 * i, "Acc": None if math.isnan(a) else 100 * a}
                          for name, i, a in zip(names, iou, acc)},
        }
