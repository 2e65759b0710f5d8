"""The networks: ViT encoder, MAE (encoder + decoder), classifier and segmentation heads, and
what they are built from (masking, targets, position tables, the named sizes)."""

from ..util.lazy import lazy_exports

_EXPORTS = {
    "MAEOutput": ".mae",
    "MaskedAutoencoder": ".mae",
    "VisionTransformer": ".vit",
    "create_model": ".zoo",
    "model_config": ".zoo",
    "model_names": ".zoo",
    "patchify": ".mae",
    "unpatchify": ".mae",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
