"""Named model configurations. Keyword names follow the official constructor.

The names and sizes are plain Python, so that configs and `--help` list them without loading
torch; the model class is imported when a model is built or its options are checked."""

import inspect

# The paper's decoder (512 wide, 8 blocks, 16 heads) for B/L/H; lighter ones for CPU work.
CONFIGS: dict[str, dict] = {
    "mae_vit_tiny_patch16": dict(
        patch_size=16, embed_dim=192, depth=12, num_heads=3,
        decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4,
    ),
    "mae_vit_small_patch16": dict(
        patch_size=16, embed_dim=384, depth=12, num_heads=6,
        decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8,
    ),
    "mae_vit_base_patch16": dict(
        patch_size=16, embed_dim=768, depth=12, num_heads=12,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
    ),
    "mae_vit_large_patch16": dict(
        patch_size=16, embed_dim=1024, depth=24, num_heads=16,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
    ),
    "mae_vit_huge_patch14": dict(
        patch_size=14, embed_dim=1280, depth=32, num_heads=16,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
    ),
}


def model_names() -> list[str]:
    return sorted(CONFIGS)


def model_config(name: str, **overrides) -> dict:
    """The full constructor kwargs of a named model, with overrides applied."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    from .mae import MaskedAutoencoder

    unknown = set(overrides) - set(inspect.signature(MaskedAutoencoder).parameters)
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)} for {name}")
    config = dict(img_size=224, in_chans=3, mlp_ratio=4.0, norm_pix_loss=False)
    config.update(CONFIGS[name])
    config.update(overrides)
    return config


def create_model(name: str = "mae_vit_base_patch16", **overrides) -> "MaskedAutoencoder":  # noqa: F821
    """Build a named MAE model; any constructor kwarg may be overridden."""
    from .mae import MaskedAutoencoder

    return MaskedAutoencoder(**model_config(name, **overrides))
