"""MaskedAutoencoder: masking -> encoder (visible patches only) -> decoder -> loss.

State-dict keys are those of the official `MaskedAutoencoderViT`: the encoder's
(patch_embed, cls_token, pos_embed, blocks, norm) then mask_token, decoder_pos_embed,
decoder_embed, decoder_blocks, decoder_norm, decoder_pred.

encoder_mask_tokens=True is the paper's "encoder w/ [M]" variant (Table 1(c)): the encoder
runs on every patch, the removed ones replaced by the shared mask token (then of the
encoder's width, position added), and the decoder reads the encoder's full sequence, with
no mask tokens of its own. Same masks, same loss.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..util.sizes import to_2tuple
from .linear import Linear, linear
from .masking import mask_plan, removed_mask, take_rows
from .options import check_mask_ratio, num_kept
from .pos_embed import resample_pos_embed, sincos_2d
from .sizes import check_decoder
from .targets import get_target, model_target
from .vit import LAYER_NORM_EPS, Block, VisionTransformer, init_linear_and_norm


@dataclass
class MAEOutput:
    loss: torch.Tensor  # scalar: MSE on removed patches only
    pred: torch.Tensor | None  # [N, L, T], every patch (T = p*p*C for pixel targets); None unless asked
    mask: torch.Tensor  # [N, L], 1 = removed, 0 = kept
    ids_restore: torch.Tensor  # [N, L]


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, L, p*p*C], each patch flattened as (row, col, channel)."""
    n, c, h, w = imgs.shape
    p = patch_size
    x = imgs.reshape(n, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, patch_size: int, grid: tuple[int, int]) -> torch.Tensor:
    """[N, L, p*p*C] -> [N, C, H, W]; the inverse of `patchify` for a (rows, cols) grid."""
    n, length, _ = x.shape
    rows, cols = grid
    if rows * cols != length:
        raise ValueError(f"{length} patches do not fill a {rows}x{cols} grid")
    p = patch_size
    x = x.reshape(n, rows, cols, p, p, -1)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, x.shape[1], rows * p, cols * p)


class MaskedAutoencoder(VisionTransformer):
    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans=3,
        embed_dim=1024,
        depth=24,
        num_heads=16,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mlp_ratio=4.0,
        norm_pix_loss=False,
        layer_norm_eps=LAYER_NORM_EPS,
        mask_ratio=0.75,
        target="pixels",
        encoder_mask_tokens=False,
    ):
        check_decoder(decoder_embed_dim, decoder_depth, decoder_num_heads)
        super().__init__(
            img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, layer_norm_eps=layer_norm_eps
        )
        check_mask_ratio(mask_ratio)
        target = model_target(target, norm_pix_loss)  # what the decoder predicts (mae.models.targets)
        self.target, self.norm_pix_loss = get_target(target), target == "norm_pix"
        self.mask_ratio = mask_ratio  # used when forward is given none
        self.encoder_mask_tokens = bool(encoder_mask_tokens)
        self.config = dict(
            img_size=list(to_2tuple(img_size)),
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            norm_pix_loss=self.norm_pix_loss,
            layer_norm_eps=layer_norm_eps,
            mask_ratio=mask_ratio,
            target=target,
            encoder_mask_tokens=self.encoder_mask_tokens,
        )

        self.decoder_embed = Linear(embed_dim, decoder_embed_dim)
        # the one token every removed patch becomes: in the decoder, or (the variant) in the encoder
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim if encoder_mask_tokens else decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            sincos_2d(decoder_embed_dim, self.grid_size), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, layer_norm_eps=layer_norm_eps)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=layer_norm_eps)
        self.decoder_pred = Linear(decoder_embed_dim, self.target.dim(patch_size, in_chans))

        self.apply(init_linear_and_norm)
        nn.init.normal_(self.mask_token, std=0.02)

    # ----------------------------------------------------------------------------------
    def set_img_size(self, img_size) -> None:
        old_grid = self.grid_size
        super().set_img_size(img_size)
        table = resample_pos_embed(self.decoder_pos_embed.data, old_grid, self.grid_size)
        self.decoder_pos_embed = nn.Parameter(table, requires_grad=False)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        self.patch_embed.grid_for(imgs)
        return patchify(imgs, self.patch_embed.patch_size)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        return unpatchify(x, self.patch_embed.patch_size, grid or self.grid_size)

    # ----------------------------------------------------------------------------------
    def forward_encoder(self, imgs, mask_ratio: float, noise=None, mask_type: str = "random"):
        """-> (latent [N, 1 + K, D], or [N, 1 + L, D] with encoder mask tokens; mask; ids_restore)."""
        if self.encoder_mask_tokens:
            return self._encode_with_mask_tokens(imgs, mask_ratio, noise, mask_type)
        grid = self.patch_embed.grid_for(imgs)
        pos = self.pos_embed_for(grid)  # [1, 1 + L, D]
        n, length = imgs.shape[0], grid[0] * grid[1]
        # choose the kept patches first and embed only those: the embedding is a linear map
        # per patch, so this equals embedding all and gathering, at (1 - mask_ratio) the cost
        ids_keep, ids_restore = mask_plan(n, length, mask_ratio, noise, imgs.device, mask_type, grid)
        pixels = self.patch_embed.pixels(imgs)  # [N, L, C*p*p]
        x = self.patch_embed.embed_pixels(take_rows(pixels, ids_keep)) + pos[0, 1:][ids_keep]  # [N, K, D]
        mask = removed_mask(ids_restore, ids_keep.shape[1], torch.promote_types(x.dtype, torch.float32))
        cls = (self.cls_token + pos[:, :1]).expand(n, -1, -1)  # [N, 1, D]
        x = torch.cat([cls, x], dim=1)  # [N, 1 + K, D]
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def _encode_with_mask_tokens(self, imgs, mask_ratio: float, noise, mask_type: str):
        grid = self.patch_embed.grid_for(imgs)
        x, cls = self.embed(imgs)  # [N, L, D] with positions, [N, 1, D]
        ids_keep, ids_restore = mask_plan(x.shape[0], x.shape[1], mask_ratio, noise, imgs.device, mask_type, grid)
        mask = removed_mask(ids_restore, ids_keep.shape[1], torch.promote_types(x.dtype, torch.float32))
        pos = self.pos_embed_for(grid)[:, 1:]  # [1, L, D]
        # a removed patch becomes the mask token at its position: its pixels never reach the output
        x = torch.where(mask.unsqueeze(-1).bool(), (self.mask_token + pos).to(x.dtype), x)
        x = torch.cat([cls, x], dim=1)  # [N, 1 + L, D]
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor, grid=None) -> torch.Tensor:
        """Encoder output [N, 1 + K, D] (1 + L: encoder mask tokens) -> every patch's pixels [N, L, p*p*C]."""
        return self.decoder_pred(self.decoder_features(latent, ids_restore, grid))

    def decoder_features(self, latent: torch.Tensor, ids_restore: torch.Tensor, grid=None) -> torch.Tensor:
        """Encoder output [N, 1 + K, D] (1 + L: encoder mask tokens) -> normed decoder tokens [N, L, Dd]."""
        x = self.decoder_embed(latent)  # [N, 1 + K, Dd]
        if self.encoder_mask_tokens:  # the encoder's output is every patch already, in patch order
            return self.decode_tokens(x, grid)
        n, kept, _ = x.shape
        length = ids_restore.shape[1]
        # one shared mask token for every removed patch, then back to patch order
        mask_tokens = self.mask_token.expand(n, length + 1 - kept, -1)  # [N, L - K, Dd]
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)  # [N, L, Dd], shuffled order
        patches = take_rows(patches, ids_restore)
        x = torch.cat([x[:, :1], patches], dim=1)  # [N, 1 + L, Dd]
        return self.decode_tokens(x, grid)

    def decode_tokens(self, x: torch.Tensor, grid=None) -> torch.Tensor:
        """Decoder tokens of every patch, in patch order [N, 1 + L, Dd] -> normed [N, L, Dd]."""
        grid = grid or self.grid_size
        pos = self.decoder_pos_embed
        if grid != self.grid_size:
            pos = resample_pos_embed(pos, self.grid_size, grid)
        x = x + pos
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_norm(x[:, 1:])  # drop the cls token

    def reconstruction_target(self, patches: torch.Tensor) -> torch.Tensor:
        """Patchified pixels [N, *, p*p*C] -> what the decoder learns to predict [N, *, T]."""
        patches = patches.to(torch.promote_types(patches.dtype, torch.float32))  # even under bf16
        return self.target(patches, self.patch_embed.patch_size, self.patch_embed.in_chans)

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor):
        """The official signature: pred [N, L, T] for every patch, averaged over the removed ones.

        Equals the loss `forward` computes from the removed patches alone.
        """
        target = self.reconstruction_target(self.patchify(imgs))
        loss = F.mse_loss(pred.to(target.dtype), target, reduction="none").mean(dim=-1)  # [N, L]
        # clamp keeps mask_ratio=0 finite (no removed patch: loss 0) without a host sync
        return (loss * mask).sum() / mask.sum().clamp_min(1)

    def removed_loss(self, imgs: torch.Tensor, pred_removed: torch.Tensor, ids_removed: torch.Tensor,
                     channels_first: bool = False):
        """MSE of the removed patches' predictions [N, R, T] against their targets, in one op.

        Every sample removes the same number R of patches, so the mean over all of them
        equals the official per-patch mean averaged over the removed patches.
        channels_first=True: each patch's predictions come as the image holds its pixels,
        (channel, row, column), not patchify's (row, column, channel) (see `head_channels_first`).
        """
        if ids_removed.shape[1] == 0:  # mask_ratio 0: nothing removed, loss 0
            return pred_removed.sum().to(torch.promote_types(pred_removed.dtype, torch.float32))
        # [N, L, C*p*p] (the image's order) or [N, L, p*p*C] (patchify's)
        patches = self.patch_embed.pixels(imgs) if channels_first else self.patchify(imgs)
        target = self.reconstruction_target(take_rows(patches, ids_removed))  # [N, R, T], each from its own pixels
        return F.mse_loss(pred_removed.to(target.dtype), target)

    def head_channels_first(self, features: torch.Tensor) -> torch.Tensor:
        """decoder_pred [N, R, Dd] -> [N, R, T] with each patch's outputs (channel, row, column).

        The same weights, their rows reordered: a pixel target's loss then reads the image's
        patches in its own memory order, where patchify's order would move every channel
        innermost (a transposition of the whole image that compiled kernels vectorize badly).
        """
        p2, c = self.patch_embed.patch_size**2, self.patch_embed.in_chans
        order = torch.arange(p2 * c, device=features.device).view(p2, c).t().reshape(-1)  # [T]
        head = self.decoder_pred
        return linear(features, head.weight[order], head.bias[order])

    def forward(self, imgs: torch.Tensor, mask_ratio: float | None = None, noise=None,
                mask_type: str = "random", return_pred: bool = False) -> MAEOutput:
        """mask_ratio=None: the model's own (`self.mask_ratio`, from its config).
        mask_type: random, block or grid (see mae.models.masking); any of them from `noise` [N, L].

        The decoder's head and the loss run on the removed patches only; `return_pred=True`
        also predicts every patch (out.pred, for pictures and comparisons), at a little cost.
        """
        mask_ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        grid = self.patch_embed.grid_for(imgs)
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise, mask_type)
        features = self.decoder_features(latent, ids_restore, grid)  # [N, L, Dd]
        kept = num_kept(ids_restore.shape[1], mask_ratio)
        ids_removed = torch.argsort(ids_restore, dim=1)[:, kept:]  # [N, R], in shuffled order
        pred = None
        if return_pred:
            pred = self.decoder_pred(features)  # [N, L, T]
            loss = self.removed_loss(imgs, take_rows(pred, ids_removed), ids_removed)
        elif getattr(self.target, "any_pixel_order", False):
            pred_removed = self.head_channels_first(take_rows(features, ids_removed))  # [N, R, T]
            loss = self.removed_loss(imgs, pred_removed, ids_removed, channels_first=True)
        else:
            pred_removed = self.decoder_pred(take_rows(features, ids_removed))  # [N, R, T]
            loss = self.removed_loss(imgs, pred_removed, ids_removed)
        return MAEOutput(loss=loss, pred=pred, mask=mask, ids_restore=ids_restore)
