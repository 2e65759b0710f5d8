"""The paper's Table 2 baseline: an encoder that runs on all patches, with mask tokens.

"encoder w/ [M]" (He et al. 2021, Sec. 3 and Table 2): every removed patch is replaced by
one shared, learned mask token before the encoder, so the encoder processes all L
patches; the decoder then reads the encoder's L outputs directly. Same loss, same mask.
It exists to measure what skipping the removed patches saves.
"""

import torch
import torch.nn as nn

from ..masking import random_masking
from ..models.mae import MaskedAutoencoder


class MaskTokenEncoderMAE(MaskedAutoencoder):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))
        nn.init.normal_(self.encoder_mask_token, std=0.02)

    def forward_encoder(self, imgs, mask_ratio: float, noise=None, mask_type: str = "random"):
        x, cls = self.embed(imgs)  # [N, L, D] with positions, [N, 1, D]
        _, mask, ids_restore = random_masking(x, mask_ratio, noise, mask_type, self.patch_embed.grid_for(imgs))
        pos = self.pos_embed_for(self.patch_embed.grid_for(imgs))[:, 1:]  # [1, L, D]
        removed = mask.unsqueeze(-1).bool()  # [N, L, 1]
        # a removed patch becomes the mask token, which keeps its position
        x = torch.where(removed, (self.encoder_mask_token + pos).to(x.dtype), x)
        x = torch.cat([cls, x], dim=1)  # [N, 1 + L, D]
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def decoder_features(self, latent: torch.Tensor, ids_restore: torch.Tensor, grid=None):
        return self.decode_tokens(self.decoder_embed(latent), grid)  # already in patch order
