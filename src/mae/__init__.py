"""mae: masked-autoencoder pretraining of Vision Transformers (He et al., 2021).

    import mae
    model = mae.create_model("mae_vit_base_patch16", norm_pix_loss=True)
    out = model(imgs, mask_ratio=0.75)        # out.loss, out.mask, out.ids_restore
    out = model(imgs, return_pred=True)       # also out.pred, every patch predicted
    feats = model.forward_features(imgs)      # encoder only, no masking
    model = mae.load_model("runs/demo")       # ours, official .pth, or Hugging Face
"""

from .util import threads  # noqa: F401  first: sets OpenMP's wait policy before torch loads it
from .models import MAEOutput, MaskedAutoencoder, VisionTransformer, create_model, model_names
from .viz import reconstruct, visualize
from .weights.export import export_model
from .weights.load import load_model
from .weights.format import save_model

__version__ = "0.1.0"

__all__ = [
    "MAEOutput",
    "MaskedAutoencoder",
    "VisionTransformer",
    "create_model",
    "export_model",
    "load_model",
    "model_names",
    "reconstruct",
    "save_model",
    "visualize",
]
