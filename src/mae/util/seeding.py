"""Random draws as functions of (seed, purpose, keys...), never of how many draws came before."""

import numpy as np
import torch

# one stream per purpose, so that e.g. step 3's mask noise and epoch 3's order are unrelated
MASK_STREAM = 0x3A5C
GLOBAL_STREAM = 0x610B
PREVIEW_STREAM = 0x9E71


def derive_seed(seed: int, stream: int, *keys: int) -> int:
    """A 63-bit seed mixed from the keys (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed, stream, *keys]).generate_state(1, np.uint64)[0] >> 1)


def generator(seed: int, stream: int, *keys: int) -> torch.Generator:
    """A CPU generator for these keys (CPU draws are the same on every machine and device)."""
    return torch.Generator().manual_seed(derive_seed(seed, stream, *keys))


def mask_noise(seed: int, step: int, rows: int, num_patches: int) -> torch.Tensor:
    """The uniform noise [rows, L] that masks optimizer step `step` (rows: the global batch)."""
    return torch.rand(rows, num_patches, generator=generator(seed, MASK_STREAM, step))


def seed_global_rng(seed: int, step: int, rank: int) -> None:
    """Reseed torch's global generator for this step and process, for any layer that draws
    from it (dropout, drop path): then no RNG state has to be carried across a resume."""
    torch.manual_seed(derive_seed(seed, GLOBAL_STREAM, step, rank))
