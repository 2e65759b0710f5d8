from .mae import MAEOutput, MaskedAutoencoder, patchify, unpatchify
from .vit import VisionTransformer
from .zoo import create_model, model_config, model_names

__all__ = [
    "MAEOutput",
    "MaskedAutoencoder",
    "VisionTransformer",
    "create_model",
    "model_config",
    "model_names",
    "patchify",
    "unpatchify",
]
