"""Semantic segmentation on a ViT encoder: a linear head on the patch map, or UPerNet on a pyramid.

    model, report = build_segmenter(load_encoder("runs/demo"), num_classes=150, head="upernet", img_size=512)
    logits = model(imgs)              # [N, 3, H, W] -> [N, K, H, W], any H, W divisible by the patch

"linear": BatchNorm + a 1x1 convolution on the encoder's patch map [N, D, H/p, W/p]
(`VisionTransformer.forward_dense`), upsampled bilinearly to the input.
"upernet": the ViTDet simple feature pyramid (Li et al. 2022: from the last map alone,
deconvolutions up to strides p/4 and p/2, the map itself, max pooling down to 2p) under
an UPerNet head (Xiao et al. 2018, as mmsegmentation builds it: pyramid pooling on the
coarsest level, lateral 1x1 and top-down path, 3x3 convs, every level fused at the finest).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .classifier import LoadReport, build_classifier
from .vit import VisionTransformer

HEADS = ("linear", "upernet")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an [N, C, H, W] map (as ViTDet's pyramid)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SimpleFeaturePyramid(nn.Module):
    """[N, D, h, w] -> 4 maps [N, C, 4h, 4w], [N, C, 2h, 2w], [N, C, h, w], [N, C, h/2, w/2]."""

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.scales = nn.ModuleList([
            nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), LayerNorm2d(dim // 2), nn.GELU(),
                          nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)),
            nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
            nn.Identity(),
            nn.MaxPool2d(2),
        ])
        self.outputs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, channels, 1, bias=False), LayerNorm2d(channels),
                          nn.Conv2d(channels, channels, 3, padding=1, bias=False), LayerNorm2d(channels))
            for d in (dim // 4, dim // 2, dim, dim)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [out(scale(x)) for scale, out in zip(self.scales, self.outputs)]


class UPerHead(nn.Module):
    """4 maps (finest first, `cin` channels) -> logits [N, K, finest h, finest w]."""

    POOL_SCALES = (1, 2, 3, 6)

    def __init__(self, cin: int, channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.ppm = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(s), conv_bn_relu(cin, channels, 1))
                                 for s in self.POOL_SCALES)
        self.bottleneck = conv_bn_relu(cin + len(self.POOL_SCALES) * channels, channels, 3)
        self.lateral = nn.ModuleList(conv_bn_relu(cin, channels, 1) for _ in range(3))
        self.fpn = nn.ModuleList(conv_bn_relu(channels, channels, 3) for _ in range(3))
        self.fuse = conv_bn_relu(4 * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classify = nn.Conv2d(channels, num_classes, 1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        coarsest = maps[-1]
        pooled = [F.interpolate(p(coarsest), coarsest.shape[-2:], mode="bilinear", align_corners=False)
                  for p in self.ppm]
        levels = [lat(m) for lat, m in zip(self.lateral, maps[:-1])]
        levels.append(self.bottleneck(torch.cat([coarsest, *pooled], 1)))
        for i in range(len(levels) - 1, 0, -1):  # top-down
            levels[i - 1] = levels[i - 1] + F.interpolate(levels[i], levels[i - 1].shape[-2:], mode="bilinear",
                                                          align_corners=False)
        outs = [fpn(level) for fpn, level in zip(self.fpn, levels[:-1])] + [levels[-1]]
        size = outs[0].shape[-2:]
        fused = self.fuse(torch.cat([outs[0]] + [F.interpolate(o, size, mode="bilinear", align_corners=False)
                                                 for o in outs[1:]], 1))
        return self.classify(self.dropout(fused))


class LinearHead(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.classify = nn.Conv2d(dim, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.norm(x))


class Segmenter(nn.Module):
    """encoder (a VisionTransformer, parameters `encoder.*`) + head: images -> per-pixel logits."""

    def __init__(self, encoder: VisionTransformer, num_classes: int, head: str = "linear", channels: int = 256):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        dim = encoder.embed_dim
        self.encoder = encoder
        self.head_kind, self.num_classes = head, num_classes
        if head == "linear":
            self.head = LinearHead(dim, num_classes)
        else:
            self.head = nn.Sequential(SimpleFeaturePyramid(dim, channels), UPerHead(channels, channels, num_classes))

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder.forward_dense(imgs))
        return F.interpolate(logits, imgs.shape[-2:], mode="bilinear", align_corners=False)


def build_segmenter(encoder: VisionTransformer, num_classes: int, head: str = "linear", channels: int = 256,
                    drop_path_rate: float = 0.1, img_size=None,
                    name: str | None = None) -> tuple[Segmenter, LoadReport]:
    """`encoder` (an mae model, as `mae.weights.load.load_encoder` reads it) under a fresh head."""
    encoder, report = build_classifier(encoder, num_classes=1, global_pool="token", drop_path_rate=drop_path_rate,
                                       img_size=img_size, drop_head=True, name=name)
    encoder.head, encoder.num_classes = nn.Identity(), 0
    encoder.config["num_classes"] = 0
    report.missing = [k for k in report.missing if not k.startswith("head.")]
    report.notes = [n for n in report.notes if "head" not in n]
    return Segmenter(encoder, num_classes, head, channels), report
