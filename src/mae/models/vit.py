"""Vision Transformer building blocks and the ViT encoder / classifier.

Parameter names follow timm's ViT, which the official MAE code builds on, so the official
checkpoints load with strict=True:
    patch_embed.proj, cls_token, pos_embed, blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,
    mlp.fc1,mlp.fc2}, norm (or fc_norm with global pooling), head.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..util.sizes import to_2tuple
from .linear import Linear, linear
from .pos_embed import resample_pos_embed, sincos_2d
from .sizes import check_encoder

LAYER_NORM_EPS = 1e-6  # the official models' LayerNorm eps (Hugging Face's default is 1e-12)


class PatchEmbed(nn.Module):
    """[N, C, H, W] image -> [N, (H/p) * (W/p), D] patch tokens (a strided conv)."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.in_chans = in_chans
        for side in self.img_size:
            if side % patch_size:
                raise ValueError(
                    f"img_size {self.img_size} is not divisible by patch_size {patch_size}"
                )
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid_for(self, imgs: torch.Tensor) -> tuple[int, int]:
        """Check an image batch and return its patch grid (rows, cols)."""
        if imgs.ndim != 4:
            raise ValueError(f"expected images of shape [N, C, H, W], got {tuple(imgs.shape)}")
        if not imgs.is_floating_point():
            raise ValueError(
                f"expected floating-point images (float32, or bfloat16 / float16), normalised by the "
                f"training mean and std; got {imgs.dtype} (uint8 pixels: mae.data.Normalize converts them)"
            )
        _, chans, height, width = imgs.shape
        if chans != self.in_chans:
            raise ValueError(f"expected {self.in_chans} image channels, got {chans}")
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"image size {height}x{width} is not divisible by the patch size {p}"
            )
        return height // p, width // p

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.proj(imgs).flatten(2).transpose(1, 2)  # [N, L, D]

    def pixels(self, imgs: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, L, C*p*p], each patch flattened as the conv weight is (C, p, p)."""
        n, c, h, w = imgs.shape
        p = self.patch_size
        x = imgs.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, (h // p) * (w // p), c * p * p)

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, K, C*p*p] patches from `pixels` (any subset) -> [N, K, D]; equals forward's tokens."""
        return linear(pixels, self.proj.weight.flatten(1), self.proj.bias)


def plain_bf16_max_tokens() -> int:
    """Below how many tokens the plain path beats SDPA in bf16 on this CPU.

    Measured (benchmarks/attention_paths.py, docs/benchmarks.md), one layer forward + backward,
    the widths of ViT-T/S/B: with AMX (Intel Xeon) plain is 1.5-4x faster up to 197 tokens,
    still at 401, mostly slower at 785; without it (AMD Zen 5, AVX512-BF16) 1.25-4.3x faster
    through 577 tokens and mostly slower at 785. In float32 SDPA is as fast or faster everywhere.
    """
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return 400 if amx else 785


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    `fused=True` runs F.scaled_dot_product_attention (flash / memory-efficient kernels
    where available); `fused=False` is the plain matmul-softmax path. `fused=None` (the
    default) picks per call: the plain path on CPU for sequences shorter than its dtype's
    PLAIN_CPU_MAX_TOKENS, SDPA elsewhere. All choices compute the same function.

    q, k and v are views into the one qkv matmul's output: SDPA reads them in place (its
    scale is its default, 1/sqrt(head_dim)); the plain path's batched matmuls need each in
    head-major order, and the scaling of q is that one copy of it.
    """

    # plain path below this many tokens, per dtype, on CPU (absent dtypes: SDPA always)
    PLAIN_CPU_MAX_TOKENS = {torch.bfloat16: plain_bf16_max_tokens()}

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, fused: bool | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused = fused
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [N, H, L, hd]
        if self.use_sdpa(q):
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # [N, H, L, L]
            x = attn.softmax(dim=-1) @ v
        x = x.transpose(1, 2).reshape(n, length, dim)
        return self.proj(x)

    def use_sdpa(self, q: torch.Tensor) -> bool:
        if self.fused is not None:
            return self.fused
        plain_is_faster = q.device.type == "cpu" and q.shape[-2] < self.PLAIN_CPU_MAX_TOKENS.get(q.dtype, 0)
        return not plain_is_faster


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.act = nn.GELU()  # exact (erf) GELU, as the official models
        self.fc2 = Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability `p`."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0, layer_norm_eps=LAYER_NORM_EPS):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_linear_and_norm(module: nn.Module) -> None:
    """Official MAE init: xavier-uniform linear weights, zero biases, LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VisionTransformer(nn.Module):
    """ViT encoder with a cls token and an optional linear classification head.

    global_pool="token": features are the normed cls token (keys `norm.*`).
    global_pool="avg": features are the mean of the patch tokens through `fc_norm`
    (the official fine-tuning default; there is then no final `norm`).
    """

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
        global_pool="token",
        drop_path_rate=0.0,
        layer_norm_eps=LAYER_NORM_EPS,
    ):
        super().__init__()
        check_encoder(img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio)
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        self.config = dict(
            img_size=list(to_2tuple(img_size)), patch_size=patch_size, in_chans=in_chans,
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias, num_classes=num_classes, global_pool=global_pool,
            drop_path_rate=drop_path_rate, layer_norm_eps=layer_norm_eps,
        )  # constructor kwargs, saved with the weights
        self.global_pool = global_pool
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            sincos_2d(embed_dim, self.patch_embed.grid_size), requires_grad=False
        )
        rates = torch.linspace(0, drop_path_rate, depth).tolist()  # stochastic depth decay rule
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=r, layer_norm_eps=layer_norm_eps)
            for r in rates
        )
        if global_pool == "avg":
            self.fc_norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        else:
            self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.head = Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_encoder()

    def _init_encoder(self) -> None:
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # like a linear layer, not a conv
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(init_linear_and_norm)

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.patch_embed.grid_size

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position table for a patch grid, resampled in 2-D when it is not the built one."""
        if grid == self.grid_size:
            return self.pos_embed
        return resample_pos_embed(self.pos_embed, self.grid_size, grid)

    def set_img_size(self, img_size) -> None:
        """Rebuild for another input resolution; the position table is resampled in 2-D."""
        img_size = to_2tuple(img_size)
        new = PatchEmbed(img_size, self.patch_embed.patch_size, self.patch_embed.in_chans, 1)
        table = resample_pos_embed(self.pos_embed.data, self.grid_size, new.grid_size)
        self.pos_embed = nn.Parameter(table, requires_grad=self.pos_embed.requires_grad)
        self.patch_embed.img_size, self.patch_embed.grid_size = new.img_size, new.grid_size
        self.patch_embed.num_patches = new.num_patches
        self.config["img_size"] = list(img_size)

    def embed(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens with their position added, and the cls token with its own."""
        grid = self.patch_embed.grid_for(imgs)
        pos = self.pos_embed_for(grid)  # [1, 1 + L, D]
        x = self.patch_embed(imgs) + pos[:, 1:]  # [N, L, D]
        cls = (self.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)  # [N, 1, D]
        return x, cls

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.global_pool == "avg" else self.norm(x)

    def forward_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """Encoder on all patches: [N, C, H, W] -> [N, 1 + L, D] (normed unless avg-pooled)."""
        x, cls = self.embed(imgs)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def forward_dense(self, imgs: torch.Tensor) -> torch.Tensor:
        """Patch tokens as a feature map, for dense tasks: [N, C, H, W] -> [N, D, H/p, W/p]."""
        rows, cols = self.patch_embed.grid_for(imgs)
        tokens = self.forward_features(imgs)[:, 1:]  # [N, L, D], row-major over the grid
        return tokens.transpose(1, 2).reshape(len(imgs), -1, rows, cols)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            pooled = self.fc_norm(features[:, 1:].mean(dim=1))
        else:
            pooled = features[:, 0]
        return pooled if pre_logits else self.head(pooled)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(imgs))
